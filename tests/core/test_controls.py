"""The controls kernel (:func:`tradeloop.core.controls.decide`): resize never breaches and never flips a side, the
band never skips a liquidation, decisions explain every change; and the ``risk`` keys are validated by name."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from tradeloop import RunParams, ValidationError
from tradeloop.core.controls import RESIZE, RULE_BITS, SKIP, decide, describe
from tradeloop.core.risk import RiskLimits
from tradeloop.core.sizing import size_orders
from tradeloop.core.tolerance import exceeds


def _book(draw_rows, pv=1_000_000.0):
    weight = np.array([r[0] for r in draw_rows])
    price = np.array([r[1] for r in draw_rows])
    lot = np.array([r[2] for r in draw_rows], dtype=np.int64)
    current = np.array([r[3] for r in draw_rows], dtype=np.int64)
    codes = np.zeros(len(weight), dtype=np.intp)
    delta, _, _, missing = size_orders(weight, price, lot, current, codes, np.array([pv]), None, 0.0)
    return weight, price, lot, current, delta, missing, codes


ROWS = st.lists(st.tuples(st.floats(-0.3, 0.3), st.floats(1.0, 500.0), st.sampled_from([1, 10, 100]),
                          st.integers(-2000, 2000)), min_size=1, max_size=12)


@settings(max_examples=150, deadline=None)
@given(ROWS, st.floats(0.001, 0.2), st.floats(1_000, 100_000), st.floats(0.05, 1.0), st.floats(0.01, 0.3),
       st.lists(st.floats(0.0, 50_000.0), min_size=12, max_size=12))
def test_resize_never_breaches_and_never_flips_a_side(data, frac, notional, turnover, ratio, advs):
    pv = 1_000_000.0
    weight, price, lot, current, delta, missing, codes = _book(data, pv)
    adv = np.array(advs[: len(weight)])
    limits = RiskLimits(max_adv_participation=frac, max_order_notional=notional, max_turnover=turnover,
                        max_position_ratio=ratio, allow_short=True,
                        on_breach={"max_order_notional": "resize", "max_position_ratio": "resize"})
    d = decide(limits, simulation=False, weight=weight, price=price, lot=lot, current=current, delta=delta,
               missing=missing, codes=codes, ngroups=1, pv=np.array([pv]), adv=adv)
    assert d.mask.sum() == 0 and not d.blocked.any()  # every rule here resizes
    assert np.all(np.sign(d.delta) * np.sign(delta) >= 0), "a side flipped"
    assert np.all(np.abs(d.delta) <= np.abs(delta))
    q = np.abs(d.delta)
    resized = np.unique(d.decisions.row[d.decisions.action == RESIZE])
    assert np.all(q[resized] % lot[resized] == 0), "a resized order is not a lot multiple"
    assert not exceeds(q, frac * adv).any()
    assert not exceeds(q * price, notional).any()
    assert not exceeds((q * price).sum() / pv, turnover)
    post = current + d.delta
    growing = np.abs(post) > np.abs(current)
    assert not (growing & exceeds(np.abs(post) * price / pv, ratio)).any()
    # every change is explained: rows whose quantity changed have a decision saying so
    changed = np.flatnonzero(q != np.abs(delta))
    assert set(changed) <= set(d.decisions.row.tolist())
    for row in changed:
        mine = d.decisions.row == row
        assert d.decisions.qty_after[mine].min() == q[row]


@settings(max_examples=100, deadline=None)
@given(ROWS, st.floats(0.0001, 0.5), st.floats(0.01, 0.9))
# weights sum to 1.03125: the cash trim cuts the cover of the short (-2 -> -1), still a liquidation
@example([(0.28125, 1.0, 1, 0), (0.3, 1.0, 1, -2), (0.25, 1.0, 1, 0), (0.0, 1.0, 1, 0), (0.25, 1.0, 1, 0),
          (0.0, 1.0, 1, 0), (0.25, 1.0, 1, 0)], 0.5, 0.5)
def test_the_band_never_skips_a_liquidation(data, band, rel):
    pv = 1_000_000.0
    data = [(0.0 if i % 2 else w, p, lot, cur) for i, (w, p, lot, cur) in enumerate(data)]
    weight, price, lot, current, delta, missing, codes = _book(data, pv)
    limits = RiskLimits(no_trade_band=band, no_trade_band_relative=rel, allow_short=True)
    d = decide(limits, simulation=False, weight=weight, price=price, lot=lot, current=current, delta=delta,
               missing=missing, codes=codes, ngroups=1, pv=np.array([pv]))
    liquidation = (weight == 0) & (current != 0)
    assert np.array_equal(d.delta[liquidation], delta[liquidation])
    skipped = d.decisions.row[d.decisions.action == SKIP]
    assert not liquidation[skipped].any()
    assert np.all(d.delta[skipped] == 0)


def test_turnover_resize_is_pro_rata_in_lots():
    # 600 × 100 + 400 × 50 = 80,000 on 100,000 against 0.5: factor 0.625 -> 375 -> 370, 250 -> 250 (lots of 10)
    weight = np.array([0.6, 0.2])
    d = decide(RiskLimits(max_turnover=0.5), simulation=False, weight=weight, price=np.array([100.0, 50.0]),
               lot=np.array([10, 10]), current=np.array([0, 0]), delta=np.array([600, 400]),
               missing=np.array([False, False]), codes=np.zeros(2, dtype=np.intp), ngroups=1,
               pv=np.array([100_000.0]))
    assert d.delta.tolist() == [370, 250]
    assert d.decisions.rule.tolist() == [RULE_BITS["max_turnover"]] * 2
    assert d.decisions.qty_before.tolist() == [600, 400] and d.decisions.qty_after.tolist() == [370, 250]
    assert d.decisions.observed.tolist() == [0.8, 0.8]


def test_a_decision_reads_like_a_sentence():
    assert describe("AAPL", "BUY", "max_adv_participation", "resize", 1200 / 8000, 0.1, 1200, 800) == \
        "AAPL BUY 1,200 → 800: max_adv_participation 10 % of ADV 8,000"
    assert describe("B", "BUY", "restricted", "reject", 2000, 0, 2000, 0) == \
        "B BUY 2,000 rejected: restricted the symbol is restricted"


@pytest.mark.parametrize("risk, message", [
    ({"on_breach": {"max_turnover": "reject"}}, "risk.on_breach.max_turnover is 'reject'; allowed: 'resize', 'block'"),
    ({"on_breach": {"sector_cap": "resize"}}, "risk.on_breach.sector_cap is 'resize'; allowed: 'block', 'reject'"),
    ({"on_breach": {"min_order_qty": "block"}}, "risk.on_breach.min_order_qty is 'block'; allowed: 'skip'"),
    ({"on_breach": {"max_foo": "reject"}}, "risk.on_breach has unknown rule 'max_foo'"),
    ({"on_breach": "reject"}, "risk.on_breach is 'reject'; it must be an object"),
    ({"min_order_qty": 2.5}, "risk.min_order_qty is 2.5; it must be a whole number"),
    ({"max_orders": 0}, "risk.max_orders is 0; it must be a whole number"),
    ({"max_turnover": -1}, "risk.max_turnover is -1; it must be > 0"),
    ({"no_trade_band": "0.1"}, "risk.no_trade_band is '0.1'; it must be a finite number"),
    ({"max_adv_participation": float("nan")}, "risk.max_adv_participation is nan"),
    ({"restricted": {"no_sell": ["A"]}}, "risk.restricted is"),
    ({"restricted": {"no_buy": "AAPL"}}, "risk.restricted.no_buy is 'AAPL'; it must be a list of symbols"),
    ({"restricted": {"no_trade": ["BRK/B"]}}, "risk.restricted.no_trade has symbol 'BRK/B'"),
])
def test_bad_controls_are_refused_by_name(risk, message):
    with pytest.raises(ValidationError, match=message.replace("(", r"\(").replace(")", r"\)")):
        RunParams.from_dict({"risk": risk})


def test_controls_left_at_their_defaults_keep_the_params_json():
    """A run without the new keys hashes the same params text as before they existed (same run ids)."""
    plain = RunParams.from_dict({"risk": {"max_order_notional": 10}}).to_dict()["risk"]
    assert set(plain) == {"max_order_notional", "max_position_ratio", "single_name_caps", "sector_cap",
                          "sector_caps", "max_gross_exposure", "allow_short"}
    full = RunParams.from_dict({"risk": {"max_orders": 3, "on_breach": {"restricted": "block"}}})
    assert RunParams.from_dict(full.to_dict()) == full
