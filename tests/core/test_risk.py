"""RiskEngine: each rule blocks exactly the orders that break it, with a code and a readable reason."""

import pandas as pd
import pytest

from tradeloop import RiskLimits, RunParams, ValidationError, build_book, check_risk


def book(weights, prices, *, sectors=None, positions=None, value=100_000, **kw):
    w = pd.DataFrame({"symbol": [f"S{i}" for i in range(len(weights))], "weight": weights, "price": prices})
    if sectors is not None:
        w["sector"] = sectors
    return build_book(w, value, positions=positions, **kw)


def blocked(checked):
    return dict(zip(checked["symbol"], checked["risk_codes"]))


def test_no_limits_pass_everything():
    checked = check_risk(book([0.5, 0.4], [10.0, 20.0]), RiskLimits())
    assert (checked["risk_codes"] == "").all() and (checked["risk_reason"] == "").all()


def test_max_order_notional_blocks_large_orders():
    checked = check_risk(book([0.5, 0.1], [10.0, 20.0]), RiskLimits(max_order_notional=20_000))
    assert blocked(checked) == {"S0": "max_order_notional", "S1": ""}
    assert checked.loc[0, "risk_reason"] == "order notional 50,000.00 exceeds max_order_notional 20,000.00"


def test_max_position_ratio_blocks_positions_that_grow_too_big():
    checked = check_risk(book([0.3, 0.1], [10.0, 10.0]), RiskLimits(max_position_ratio=0.25))
    assert blocked(checked) == {"S0": "max_position_ratio", "S1": ""}
    assert "30.0000% exceeds max_position_ratio 25.0000%" in checked.loc[0, "risk_reason"]


def test_max_position_ratio_does_not_block_a_reduction():
    pos = pd.DataFrame({"symbol": ["S0"], "qty": [5_000]})  # 50% held, target 30%: a sell that reduces it
    checked = check_risk(book([0.3], [10.0], positions=pos), RiskLimits(max_position_ratio=0.25))
    assert blocked(checked) == {"S0": ""}


def test_single_name_cap_applies_to_the_named_symbol_only():
    checked = check_risk(book([0.1, 0.1], [10.0, 10.0]), RiskLimits(single_name_caps={"S1": 0.05}))
    assert blocked(checked) == {"S0": "", "S1": "single_name_cap"}


def test_sector_cap_blocks_growth_in_a_crowded_sector():
    b = book([0.2, 0.2, 0.2], [10.0, 10.0, 10.0], sectors=["Tech", "Tech", "Energy"])
    checked = check_risk(b, RiskLimits(sector_cap=0.3))
    assert blocked(checked) == {"S0": "sector_cap", "S1": "sector_cap", "S2": ""}
    assert "sector gross weight 40.0000% exceeds sector_cap 30.0000%" in checked.loc[0, "risk_reason"]
    per_sector = check_risk(b, RiskLimits(sector_caps={"Tech": 0.5, "Energy": 0.1}))
    assert blocked(per_sector) == {"S0": "", "S1": "", "S2": "sector_cap"}


def test_sector_cap_with_unknown_sector_is_a_validation_error():
    b = book([0.2, 0.2], [10.0, 10.0], sectors=["Tech", None])
    with pytest.raises(ValidationError, match=r"sector is unknown for \['S1'\]"):
        check_risk(b, RiskLimits(sector_cap=0.3))


def test_max_gross_exposure_counts_longs_and_shorts():
    checked = check_risk(book([0.6, -0.5], [10.0, 10.0]), RiskLimits(max_gross_exposure=1.0, allow_short=True))
    assert blocked(checked) == {"S0": "max_gross_exposure", "S1": "max_gross_exposure"}


def test_no_short_unless_allowed():
    b = book([0.2, -0.1], [10.0, 10.0])
    assert blocked(check_risk(b, RiskLimits())) == {"S0": "", "S1": "no_short"}
    assert blocked(check_risk(b, RiskLimits(allow_short=True))) == {"S0": "", "S1": ""}


def test_several_rules_are_all_reported():
    checked = check_risk(book([0.5], [10.0]), RiskLimits(max_order_notional=1_000, max_position_ratio=0.1))
    assert checked.loc[0, "risk_codes"] == "max_order_notional;max_position_ratio"
    assert checked.loc[0, "risk_reason"].count("exceeds") == 2


@pytest.mark.parametrize("limits, message", [
    (dict(max_order_notional=-1), "risk.max_order_notional is -1; it must be > 0"),
    (dict(max_position_ratio=float("nan")), "risk.max_position_ratio is nan"),
    (dict(single_name_caps={"A": 0}), "risk.single_name_caps['A'] is 0"),
    (dict(allow_short="yes"), "risk.allow_short is 'yes'"),
])
def test_bad_limits_are_refused_by_name(limits, message):
    with pytest.raises(ValidationError) as e:
        RiskLimits(**limits)
    assert message in str(e.value)


def test_unknown_risk_key_is_refused():
    with pytest.raises(ValidationError, match=r"unknown key\(s\) \['max_notional'\]"):
        RiskLimits.from_dict({"max_notional": 5})


def test_check_risk_does_not_mutate_the_book():
    b = book([0.5, 0.1], [10.0, 20.0])
    before = b.copy(deep=True)
    check_risk(b, RiskLimits(max_order_notional=1))
    pd.testing.assert_frame_equal(b, before)


# --- at the limit: within 1e-9 relative of a limit passes (tradeloop.core.tolerance), on both paths (``engine``)

def _statuses(out):
    return {sym: (o["qty"], o["status"], o["risk_codes"]) for sym, o in out.orders.iterrows()}


def test_order_notional_at_the_limit_passes(engine):
    # 390 × 0.07 is 27.300000000000004 in binary
    w = pd.DataFrame({"symbol": ["A"], "weight": [1.0], "price": [0.07]})
    assert blocked(check_risk(build_book(w, 27.3), RiskLimits(max_order_notional=27.3))) == {"A": ""}
    out = engine(w, value=27.3, params=RunParams(risk=RiskLimits(max_order_notional=27.3)))
    assert _statuses(out) == {"A": (390, "FILLED", "")}
    assert out.run_status in ("done", None)


def test_order_notional_beyond_the_tolerance_is_blocked(engine):
    w = pd.DataFrame({"symbol": ["A"], "weight": [1.0], "price": [0.07]})
    out = engine(w, value=27.3, params=RunParams(risk=RiskLimits(max_order_notional=27.2999)))
    assert _statuses(out) == {"A": (390, "REJECTED", "max_order_notional")}
    assert out.run_status in ("blocked", None)


def test_sector_gross_weight_at_the_cap_passes(engine):
    # 10 % + 20 % is 0.30000000000000004 in binary
    w = pd.DataFrame({"symbol": ["A", "B"], "weight": [0.1, 0.2], "price": [1.0, 1.0], "sector": ["Tech", "Tech"]})
    assert blocked(check_risk(build_book(w, 100.0), RiskLimits(sector_cap=0.3))) == {"A": "", "B": ""}
    out = engine(w, value=100.0, params=RunParams(risk=RiskLimits(sector_cap=0.3)))
    assert _statuses(out) == {"A": (10, "FILLED", ""), "B": (20, "FILLED", "")}


def test_sector_gross_weight_beyond_the_cap_is_blocked(engine):
    w = pd.DataFrame({"symbol": ["A", "B"], "weight": [0.1, 0.2], "price": [1.0, 1.0], "sector": ["Tech", "Tech"]})
    out = engine(w, value=100.0, params=RunParams(risk=RiskLimits(sector_cap=0.2999)))
    assert out.flagged == {"A": "sector_cap", "B": "sector_cap"}
    assert _statuses(out) == {"A": (10, "REJECTED", "sector_cap"), "B": (20, "REJECTED", "sector_cap")}


@pytest.mark.parametrize("limits", [
    RiskLimits(max_position_ratio=0.3),       # 3 × 0.1 / 1.0 = 0.30000000000000004
    RiskLimits(single_name_caps={"A": 0.3}),
    RiskLimits(max_gross_exposure=0.3),
], ids=["max_position_ratio", "single_name_cap", "max_gross_exposure"])
def test_weights_at_the_limit_pass(engine, limits):
    w = pd.DataFrame({"symbol": ["A"], "weight": [0.3], "price": [0.1]})
    assert blocked(check_risk(build_book(w, 1.0), limits)) == {"A": ""}
    assert _statuses(engine(w, value=1.0, params=RunParams(risk=limits))) == {"A": (3, "FILLED", "")}
