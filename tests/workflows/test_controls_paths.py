"""Rebalancing controls through both paths (a stored run and a one-date simulation): hand-computed cases, one per
rule and action.

``skip``, ``resize`` and ``reject`` mean the same on both paths, so one expected table serves both; ``block`` is
asserted per path (a run ends ``blocked`` and its other orders stay NEW; a simulation date sends nothing: the other
orders are REJECTED ``blocked``).
"""

from __future__ import annotations

import pytest

V = 100_000.0


def rows(symbols, weights, prices, **extra) -> dict:
    return {"symbol": list(symbols), "weight": list(weights), "price": list(prices),
            **{k: list(v) for k, v in extra.items()}}


def held(**qty) -> dict:
    return {"symbol": list(qty), "qty": list(qty.values())}


#: name -> (rows, params, positions, expected orders {symbol: (side, qty, status, reject_reason)})
CASES = {
    # A: 0.5 × 100,000 / 10 = 5,000 shares; B: 0.004 × 100,000 / 10 = 40 shares = 400 < 1,000: dust, not sent
    "min_order_notional skip": (
        rows("AB", [0.5, 0.004], [10.0, 10.0]), {"min_order_notional": 1_000}, None,
        {"A": ("BUY", 5000, "FILLED", "")}),
    # B: 40 shares < 50
    "min_order_qty skip": (
        rows("AB", [0.5, 0.004], [10.0, 10.0]), {"min_order_qty": 50}, None,
        {"A": ("BUY", 5000, "FILLED", "")}),
    # A held 4,950 @ 10 = 0.495, target 0.5: drift 0.005 < 0.01, skipped; B drift 0.2 trades 2,000;
    # C (weight 0, held 10: drift 0.001) is a liquidation and is never skipped
    "no_trade_band skip, never a liquidation": (
        rows("ABC", [0.5, 0.2, 0.0], [10.0, 10.0, 10.0]), {"no_trade_band": 0.01}, held(A=4950, C=10),
        {"B": ("BUY", 2000, "FILLED", ""), "C": ("SELL", 10, "FILLED", "")}),
    # A: |0.5 − 0.49| / 0.5 = 0.02 < 0.05, skipped; B: |0.2 − 0.185| / 0.2 = 0.075 trades 150; C liquidated
    "no_trade_band_relative skip, never a liquidation": (
        rows("ABC", [0.5, 0.2, 0.0], [10.0, 10.0, 10.0]), {"no_trade_band_relative": 0.05},
        held(A=4900, B=1850, C=10),
        {"B": ("BUY", 150, "FILLED", ""), "C": ("SELL", 10, "FILLED", "")}),
    # B may not be bought, C not traded at all (its liquidation too)
    "restricted reject": (
        rows("ABC", [0.5, 0.2, 0.0], [10.0, 10.0, 10.0]), {"restricted": {"no_buy": ["B"], "no_trade": ["C"]}},
        held(C=10),
        {"A": ("BUY", 5000, "FILLED", ""), "B": ("BUY", 2000, "REJECTED", "risk:restricted"),
         "C": ("SELL", 10, "REJECTED", "risk:restricted")}),
    # A: 5,000 > 0.1 × 20,000 = 2,000: cut to 2,000; B: 2,000 <= 0.1 × 50,000
    "max_adv_participation resize": (
        rows("AB", [0.5, 0.2], [10.0, 10.0], adv=[20_000.0, 50_000.0]), {"max_adv_participation": 0.1}, None,
        {"A": ("BUY", 2000, "FILLED", ""), "B": ("BUY", 2000, "FILLED", "")}),
    # lots of 100: 0.1 × 25,050 = 2,505 -> 25 lots = 2,500
    "max_adv_participation resize keeps lots": (
        rows("AB", [0.5, 0.2], [10.0, 10.0], adv=[25_050.0, 50_000.0], lot_size=[100, 100]),
        {"max_adv_participation": 0.1}, None,
        {"A": ("BUY", 2500, "FILLED", ""), "B": ("BUY", 2000, "FILLED", "")}),
    "max_adv_participation reject": (
        rows("AB", [0.5, 0.2], [10.0, 10.0], adv=[20_000.0, 50_000.0]),
        {"max_adv_participation": 0.1, "on_breach": {"max_adv_participation": "reject"}}, None,
        {"A": ("BUY", 5000, "REJECTED", "risk:max_adv_participation"), "B": ("BUY", 2000, "FILLED", "")}),
    # notionals A 50,000, B 20,000, C 20,000: B and C tie, the first symbol is kept; C is the third order
    "max_orders reject": (
        rows("ABC", [0.5, 0.2, 0.2], [10.0, 10.0, 10.0]), {"max_orders": 2}, None,
        {"A": ("BUY", 5000, "FILLED", ""), "B": ("BUY", 2000, "FILLED", ""),
         "C": ("BUY", 2000, "REJECTED", "risk:max_orders")}),
    # turnover (50,000 + 30,000) / 100,000 = 0.8 > 0.5: factor 0.625 -> A 3,125 -> 3,120, B 937.5 -> 930 (lots of
    # 10); 31,200 + 18,600 = 49,800 <= 50,000
    "max_turnover resize pro rata in lots": (
        rows("AB", [0.5, 0.3], [10.0, 20.0], lot_size=[10, 10]), {"max_turnover": 0.5}, None,
        {"A": ("BUY", 3120, "FILLED", ""), "B": ("BUY", 930, "FILLED", "")}),
    # 5,000 × 10 = 50,000 > 30,000: cut to 3,000
    "max_order_notional resize": (
        rows("AB", [0.5, 0.2], [10.0, 10.0]),
        {"max_order_notional": 30_000, "on_breach": {"max_order_notional": "resize"}}, None,
        {"A": ("BUY", 3000, "FILLED", ""), "B": ("BUY", 2000, "FILLED", "")}),
    "max_order_notional reject": (
        rows("AB", [0.5, 0.2], [10.0, 10.0]),
        {"max_order_notional": 30_000, "on_breach": {"max_order_notional": "reject"}}, None,
        {"A": ("BUY", 5000, "REJECTED", "risk:max_order_notional"), "B": ("BUY", 2000, "FILLED", "")}),
    # 0.3 × 100,000 / 10 = 3,000 shares at most
    "max_position_ratio resize": (
        rows("AB", [0.5, 0.2], [10.0, 10.0]),
        {"max_position_ratio": 0.3, "on_breach": {"max_position_ratio": "resize"}}, None,
        {"A": ("BUY", 3000, "FILLED", ""), "B": ("BUY", 2000, "FILLED", "")}),
    # A held 1,000: 0.25 × 100,000 / 10 − 1,000 = 1,500 more
    "single_name_cap resize": (
        rows("AB", [0.5, 0.2], [10.0, 10.0]),
        {"single_name_caps": {"A": 0.25}, "on_breach": {"single_name_cap": "resize"}}, held(A=1000),
        {"A": ("BUY", 1500, "FILLED", ""), "B": ("BUY", 2000, "FILLED", "")}),
    # the original rules named in on_breach: the same rejection on both paths
    "max_position_ratio reject": (
        rows("AB", [0.5, 0.2], [10.0, 10.0]),
        {"max_position_ratio": 0.3, "on_breach": {"max_position_ratio": "reject"}}, None,
        {"A": ("BUY", 5000, "REJECTED", "risk:max_position_ratio"), "B": ("BUY", 2000, "FILLED", "")}),
    "single_name_cap reject": (
        rows("AB", [0.5, 0.2], [10.0, 10.0]),
        {"single_name_caps": {"A": 0.25}, "on_breach": {"single_name_cap": "reject"}}, None,
        {"A": ("BUY", 5000, "REJECTED", "risk:single_name_cap"), "B": ("BUY", 2000, "FILLED", "")}),
    # sector T: 0.5 + 0.2 = 0.7 > 0.6, both grow it; sector U: 0.1
    "sector_cap reject": (
        rows("ABC", [0.5, 0.2, 0.1], [10.0, 10.0, 10.0], sector=["T", "T", "U"]),
        {"sector_cap": 0.6, "on_breach": {"sector_cap": "reject"}}, None,
        {"A": ("BUY", 5000, "REJECTED", "risk:sector_cap"), "B": ("BUY", 2000, "REJECTED", "risk:sector_cap"),
         "C": ("BUY", 1000, "FILLED", "")}),
    # A held −1,000 (−0.1) and sold to −0.2: it grows gross exposure 0.2 + 0.7 = 0.9 > 0.8, as does B
    "max_gross_exposure reject": (
        rows("AB", [-0.2, 0.7], [10.0, 10.0]),
        {"max_gross_exposure": 0.8, "allow_short": True, "on_breach": {"max_gross_exposure": "reject"}},
        held(A=-1000),
        {"A": ("SELL", 1000, "REJECTED", "risk:max_gross_exposure"),
         "B": ("BUY", 7000, "REJECTED", "risk:max_gross_exposure")}),
    "no_short reject": (
        rows("AB", [-0.01, 0.2], [10.0, 10.0]), {"on_breach": {"no_short": "reject"}}, held(A=100),
        {"A": ("SELL", 200, "REJECTED", "risk:no_short"), "B": ("BUY", 2000, "FILLED", "")}),
    # A held 100, target −100: SELL 200 would go short; cut to the 100 held
    "no_short resize": (
        rows("AB", [-0.01, 0.2], [10.0, 10.0]), {"on_breach": {"no_short": "resize"}}, held(A=100),
        {"A": ("SELL", 100, "FILLED", ""), "B": ("BUY", 2000, "FILLED", "")}),
}


def _got(out) -> dict:
    return {s: (o["side"], o["qty"], o["status"], o["reject_reason"]) for s, o in out.orders.iterrows()}


@pytest.mark.parametrize("name", list(CASES))
def test_control_case(engine, name):
    data, risk, positions, expected = CASES[name]
    out = engine(data, value=V, params={"risk": risk}, positions=positions)
    assert _got(out) == expected, f"{engine.name}: {name}"
    if engine.name == "run":
        assert out.run_status == "done"


def test_the_band_never_skips_a_cash_trimmed_cover_of_a_short(engine):
    # C held short -10 @ 10, weight 0; cash 100,100 less the 1 % buffer = 99,100 for 100,100 of buys: every buy is
    # cut by 99,100 / 100,100 (A 10,000 -> 9,900, C's cover 10 -> 9). C's drift 0.001 is inside the band, yet the
    # cut cover is still a liquidation and is sent
    out = engine(rows("AC", [1.0, 0.0], [10.0, 10.0]), value=V,
                 params={"cash_buffer": 0.01, "risk": {"no_trade_band": 0.01, "allow_short": True}},
                 positions=held(C=-10))
    assert _got(out) == {"A": ("BUY", 9900, "FILLED", ""), "C": ("BUY", 9, "FILLED", "")}, engine.name


#: name -> (rows, params, positions, the orders {symbol: (side, qty)} and which of them breach)
BLOCKS = {
    "restricted block": (rows("AB", [0.5, 0.2], [10.0, 10.0]),
                         {"restricted": {"no_buy": ["B"]}, "on_breach": {"restricted": "block"}},
                         {"A": ("BUY", 5000), "B": ("BUY", 2000)}, {"B": "restricted"}),
    "max_adv_participation block": (
        rows("AB", [0.5, 0.2], [10.0, 10.0], adv=[20_000.0, 50_000.0]),
        {"max_adv_participation": 0.1, "on_breach": {"max_adv_participation": "block"}},
        {"A": ("BUY", 5000), "B": ("BUY", 2000)}, {"A": "max_adv_participation"}),
    "max_orders block": (rows("ABC", [0.5, 0.2, 0.2], [10.0, 10.0, 10.0]),
                         {"max_orders": 2, "on_breach": {"max_orders": "block"}},
                         {"A": ("BUY", 5000), "B": ("BUY", 2000), "C": ("BUY", 2000)}, {"C": "max_orders"}),
    # every order of the rebalance counts in its turnover
    "max_turnover block": (rows("AB", [0.5, 0.3], [10.0, 20.0]),
                           {"max_turnover": 0.5, "on_breach": {"max_turnover": "block"}},
                           {"A": ("BUY", 5000), "B": ("BUY", 1500)}, {"A": "max_turnover", "B": "max_turnover"}),
    "max_position_ratio block in a simulation too": (
        rows("AB", [0.5, 0.2], [10.0, 10.0]),
        {"max_position_ratio": 0.3, "on_breach": {"max_position_ratio": "block"}},
        {"A": ("BUY", 5000), "B": ("BUY", 2000)}, {"A": "max_position_ratio"}),
    "no_short block in a simulation too": (
        rows("AB", [-0.01, 0.2], [10.0, 10.0]), {"on_breach": {"no_short": "block"}},
        {"A": ("SELL", 200), "B": ("BUY", 2000)}, {"A": "no_short"}),
    "max_order_notional block in a simulation too": (
        rows("AB", [0.5, 0.2], [10.0, 10.0]),
        {"max_order_notional": 30_000, "on_breach": {"max_order_notional": "block"}},
        {"A": ("BUY", 5000), "B": ("BUY", 2000)}, {"A": "max_order_notional"}),
}


@pytest.mark.parametrize("name", list(BLOCKS))
def test_block_case(engine, name):
    data, risk, orders, breaching = BLOCKS[name]
    out = engine(data, value=V, params={"risk": risk}, positions=held(A=100) if "no_short" in name else None)
    assert {s: (o["side"], o["qty"]) for s, o in out.orders.iterrows()} == orders
    assert out.flagged == breaching
    assert out.fills.empty
    for symbol, o in out.orders.iterrows():
        if symbol in breaching:
            assert (o["status"], o["reject_reason"]) == ("REJECTED", f"risk:{breaching[symbol]}")
        elif engine.name == "run":
            assert o["status"] == "NEW"
        else:
            assert (o["status"], o["reject_reason"]) == ("REJECTED", "blocked")
    if engine.name == "run":
        assert out.run_status == "blocked"


def test_default_policy_of_the_original_rules_differs_by_path(engine):
    """Without ``on_breach`` the six original rules keep their behaviour: a run is blocked, a simulation rejects
    the breaching order and fills the rest."""
    out = engine(rows("AB", [0.5, 0.2], [10.0, 10.0]), value=V, params={"risk": {"max_order_notional": 30_000}})
    assert out.flagged == {"A": "max_order_notional"}
    if engine.name == "run":
        assert out.run_status == "blocked"
        assert out.order("B")["status"] == "NEW"
    else:
        assert out.order("B")["status"] == "FILLED"


def test_missing_adv_is_a_validation_error_naming_the_symbol(engine):
    from tradeloop import ValidationError

    with pytest.raises(ValidationError, match="adv is missing for 'B'"):
        engine(rows("AB", [0.5, 0.2], [10.0, 10.0], adv=[20_000.0, float("nan")]), value=V,
               params={"risk": {"max_adv_participation": 0.1}})
