"""Every order rule, risk rule and fill model, through both paths: a stored single run and a one-date history.

The hand-computed cases of ``tests/core/test_sizing.py``, ``tests/core/test_risk.py`` and
``tests/venue/test_fill_models.py``, restated as one-date inputs (weights, prices, positions, params) and run through
the ``engine`` fixture (``tests/engines.py``): once as ``tradeloop run`` stores it, once as ``simulate`` replays it.
Each path is compared with the expected values written here, never with the other path; agreement between the
paths follows. Where the paths differ by design (a risk flag blocks a run as a whole, but rejects only the flagged
orders of a simulation) each path's outcome is asserted explicitly.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pytest

from tradeloop import ValidationError

NAN = np.nan


def rows(symbols, weights, prices, **extra) -> dict:
    return {"symbol": list(symbols), "weight": list(weights), "price": list(prices),
            **{k: list(v) for k, v in extra.items()}}


@dataclass(frozen=True)
class Case:
    """One-date inputs and the hand-computed orders they must give: ``orders`` is symbol -> (side, qty)."""

    rows: dict
    value: float
    orders: dict
    params: dict = field(default_factory=dict)
    positions: dict | None = None
    #: symbol -> (status, filled_qty, reject_reason); default: every order FILLED whole
    outcome: dict | None = None
    #: (symbol, seq, qty, price, commission) sorted by symbol, seq; default: each order filled whole at its price
    fills: list | None = None
    #: symbol -> LIMIT price
    limits: dict | None = None

    def run(self, engine):
        return engine(self.rows, value=self.value, params=self.params, positions=self.positions)


def assert_orders(out, case: Case) -> None:
    got = {s: (o["side"], o["qty"]) for s, o in out.orders.iterrows()}
    assert got == case.orders, f"{out.path}: orders"


# ---------------------------------------------------------------- order rules (tests/core/test_sizing.py)

SIZING = {
    # A: 5000/10 = 500; B: 3000/33 = 90.9 -> 9 lots of 10; C: 1000/7 = 142.8 -> 1 lot of 100
    "floor to whole lots": Case(rows(["A", "B", "C"], [0.5, 0.3, 0.1], [10.0, 33.0, 7.0], lot_size=[1, 10, 100]),
                                10_000, {"A": ("BUY", 500), "B": ("BUY", 90), "C": ("BUY", 100)}),
    # 0.29 × 100 / 1 is 28.999999999999996 in floating point; a researcher expects 29 shares
    "0.29 x 100 keeps its lot": Case(rows(["A"], [0.29], [1.0]), 100, {"A": ("BUY", 29)}),
    # no lot_size column: params.lot_size applies; 550 shares -> 5 lots of 100
    "default lot size": Case(rows(["A"], [0.55], [1.0]), 1_000, {"A": ("BUY", 500)}, params={"lot_size": 100}),
    # A: weight 0 and not held -> no order; B: 10/500 = 0.02 shares -> 0 -> no order
    "zero quantity, no order": Case(rows(["A", "B", "C"], [0.0, 0.001, 0.5], [10.0, 500.0, 10.0]), 10_000,
                                    {"C": ("BUY", 500)}),
    # A: 200 target - 100 held; B: 100 target - 300 held; Z: weight 0, sold down
    "difference to positions": Case(rows(["A", "B", "Z"], [0.2, 0.1, 0.0], [10.0, 10.0, 4.0]), 10_000,
                                    {"A": ("BUY", 100), "B": ("SELL", 200), "Z": ("SELL", 50)},
                                    positions={"symbol": ["A", "B", "Z"], "qty": [100, 300, 50]}),
    # 250/30 = 8.3 -> a short of 8, rounded toward zero
    "short rounded toward zero": Case(rows(["A"], [-0.25], [30.0]), 1_000, {"A": ("SELL", 8)},
                                      params={"risk": {"allow_short": True}}),
    # 500 + 500 wanted, 900 available after a 10% buffer: factor 0.9 -> 450 each, still whole lots of 10
    "cash buffer trims pro rata in lots": Case(rows(["A", "B"], [0.5, 0.5], [1.0, 1.0], lot_size=[10, 10]), 1_000,
                                               {"A": ("BUY", 450), "B": ("BUY", 450)}, params={"cash_buffer": 0.1}),
    # cash 1000 - 900 held = 100; selling A frees 900; B needs 900 -> fits without trimming
    "sells fund buys": Case(rows(["A", "B"], [0.0, 0.9], [10.0, 10.0]), 1_000,
                            {"A": ("SELL", 90), "B": ("BUY", 90)}, positions={"symbol": ["A"], "qty": [90]}),
    # untrimmed 133 @3 + 57 @7 + 18 @11 = 996 > cash 500: factor 500/996 = 0.50201 ->
    # floor(66.77) = 66, floor(28.61) = 28, floor(9.04) = 9 (spends 493)
    "insufficient cash trims every buy": Case(rows(["A", "B", "C"], [0.4, 0.4, 0.2], [3.0, 7.0, 11.0]), 1_000,
                                              {"A": ("BUY", 66), "B": ("BUY", 28), "C": ("BUY", 9)},
                                              params={"cash": 500.0}),
    "explicit cash overrides value minus holdings": Case(rows(["A"], [1.0], [1.0]), 1_000, {"A": ("BUY", 100)},
                                                         params={"cash": 100.0}),
    # BUY 100 × (1 + 10bp) = 100.1, SELL 50 × (1 − 10bp) = 49.95; both cross (no slippage): fill at the price
    "LIMIT prices offset by bps": Case(rows(["A", "B"], [0.5, -0.1], [100.0, 50.0]), 10_000,
                                       {"A": ("BUY", 50), "B": ("SELL", 20)},
                                       params={"order_type": "LIMIT", "limit_offset_bps": 10,
                                               "risk": {"allow_short": True}},
                                       limits={"A": 100.1, "B": 49.95}),
}

UNTRIMMED = {
    "cash buffer trims pro rata in lots": {"A": 500, "B": 500},
    "insufficient cash trims every buy": {"A": 133, "B": 57, "C": 18},
}


@pytest.mark.parametrize("name", list(SIZING))
def test_order_rules(engine, name):
    case = SIZING[name]
    out = case.run(engine)
    assert_orders(out, case)
    o = out.orders
    for symbol, qty in UNTRIMMED.get(name, {}).items():
        assert o.loc[symbol, "untrimmed_qty"] == qty
    if case.limits:
        assert o["limit_price"].to_dict() == case.limits
    else:
        assert o["limit_price"].isna().all()
    # no risk limit is hit, no fees, no liquidity limit: on both paths every order fills whole at its price
    assert out.flagged == {}
    assert out.run_status == ("done" if engine.name == "run" else None)
    assert (o["status"] == "FILLED").all() and (o["filled_qty"] == o["qty"]).all()
    price = dict(zip(case.rows["symbol"], case.rows["price"]))
    assert out.fill_rows() == [(s, 1, q, price[s], 0.0) for s, (_, q) in sorted(case.orders.items())]


# ---------------------------------------------------------------- risk rules (tests/core/test_risk.py)

@dataclass(frozen=True)
class RiskCase:
    """Symbols S0, S1, … at value 100,000; ``flagged`` is symbol -> rule codes for every order risk flags."""

    weights: list
    prices: list
    risk: dict
    orders: dict
    flagged: dict
    sectors: list | None = None
    positions: dict | None = None
    max_leverage: float = 1.0

    def run(self, engine):
        symbols = [f"S{i}" for i in range(len(self.weights))]
        extra = {"sector": self.sectors} if self.sectors else {}
        params = {"risk": self.risk, "max_leverage": self.max_leverage}
        return engine(rows(symbols, self.weights, self.prices, **extra), value=100_000, params=params,
                      positions=self.positions)


RISK = {
    "no limits pass everything": RiskCase([0.5, 0.4], [10.0, 20.0], {},
                                          {"S0": ("BUY", 5_000), "S1": ("BUY", 2_000)}, {}),
    # S0: 5,000 × 10 = 50,000 > 20,000; S1: 500 × 20 = 10,000
    "max_order_notional": RiskCase([0.5, 0.1], [10.0, 20.0], {"max_order_notional": 20_000},
                                   {"S0": ("BUY", 5_000), "S1": ("BUY", 500)}, {"S0": "max_order_notional"}),
    # S0 grows to 30% > 25%; S1 to 10%
    "max_position_ratio": RiskCase([0.3, 0.1], [10.0, 10.0], {"max_position_ratio": 0.25},
                                   {"S0": ("BUY", 3_000), "S1": ("BUY", 1_000)}, {"S0": "max_position_ratio"}),
    # 50% held, target 30%: a sell that reduces a position above the limit is not blocked
    "max_position_ratio lets a reduction through": RiskCase([0.3], [10.0], {"max_position_ratio": 0.25},
                                                            {"S0": ("SELL", 2_000)}, {},
                                                            positions={"symbol": ["S0"], "qty": [5_000]}),
    "single_name_cap on the named symbol only": RiskCase([0.1, 0.1], [10.0, 10.0], {"single_name_caps": {"S1": 0.05}},
                                                         {"S0": ("BUY", 1_000), "S1": ("BUY", 1_000)},
                                                         {"S1": "single_name_cap"}),
    # Tech: 20% + 20% = 40% > 30%; Energy: 20%
    "sector_cap": RiskCase([0.2, 0.2, 0.2], [10.0, 10.0, 10.0], {"sector_cap": 0.3},
                           {"S0": ("BUY", 2_000), "S1": ("BUY", 2_000), "S2": ("BUY", 2_000)},
                           {"S0": "sector_cap", "S1": "sector_cap"}, sectors=["Tech", "Tech", "Energy"]),
    # Tech 40% <= 50%; Energy 20% > 10%
    "sector_caps per sector": RiskCase([0.2, 0.2, 0.2], [10.0, 10.0, 10.0], {"sector_caps": {"Tech": 0.5,
                                                                                              "Energy": 0.1}},
                                       {"S0": ("BUY", 2_000), "S1": ("BUY", 2_000), "S2": ("BUY", 2_000)},
                                       {"S2": "sector_cap"}, sectors=["Tech", "Tech", "Energy"]),
    # gross 60% + 50% = 110% > 100%: longs and shorts both count
    "max_gross_exposure": RiskCase([0.6, -0.5], [10.0, 10.0], {"max_gross_exposure": 1.0, "allow_short": True},
                                   {"S0": ("BUY", 6_000), "S1": ("SELL", 5_000)},
                                   {"S0": "max_gross_exposure", "S1": "max_gross_exposure"}, max_leverage=2.0),
    "no_short unless allowed": RiskCase([0.2, -0.1], [10.0, 10.0], {},
                                        {"S0": ("BUY", 2_000), "S1": ("SELL", 1_000)}, {"S1": "no_short"}),
    "short allowed": RiskCase([0.2, -0.1], [10.0, 10.0], {"allow_short": True},
                              {"S0": ("BUY", 2_000), "S1": ("SELL", 1_000)}, {}),
    # 50,000 > 1,000 and 50% > 10%: both rules reported, in rule order
    "several rules on one order": RiskCase([0.5], [10.0], {"max_order_notional": 1_000, "max_position_ratio": 0.1},
                                           {"S0": ("BUY", 5_000)}, {"S0": "max_order_notional;max_position_ratio"}),
}


@pytest.mark.parametrize("name", list(RISK))
def test_risk_rules(engine, name):
    case = RISK[name]
    out = case.run(engine)
    assert_orders(out, case)
    assert out.flagged == case.flagged
    o = out.orders
    hit = o.index.isin(list(case.flagged))
    assert (o.loc[hit, "status"] == "REJECTED").all()
    assert o.loc[hit, "reject_reason"].to_dict() == {s: "risk:" + c for s, c in case.flagged.items()}
    assert (o.loc[hit, "filled_qty"] == 0).all()
    price = dict(zip([f"S{i}" for i in range(len(case.prices))], case.prices))
    filled = [(s, 1, q, price[s], 0.0) for s, (_, q) in sorted(case.orders.items()) if s not in case.flagged]
    if engine.name == "run":
        # one flagged order blocks the whole run: nothing is submitted, the other orders stay NEW
        if case.flagged:
            assert out.run_status == "blocked"
            assert (o.loc[~hit, "status"] == "NEW").all() and (o.loc[~hit, "filled_qty"] == 0).all()
            assert out.fill_rows() == []
        else:
            assert out.run_status == "done"
            assert (o["status"] == "FILLED").all() and out.fill_rows() == filled
    else:
        # a simulation rejects only the flagged orders and fills the others
        assert out.run_status is None
        assert (o.loc[~hit, "status"] == "FILLED").all()
        assert out.fill_rows() == filled


def test_sector_cap_with_an_unknown_sector_is_refused_by_name(engine):
    with pytest.raises(ValidationError, match=r"sector is unknown for \['S1'\]"):
        RiskCase([0.2, 0.2], [10.0, 10.0], {"sector_cap": 0.3}, {}, {}, sectors=["Tech", None]).run(engine)


# ---------------------------------------------------------------- fill models (tests/venue/test_fill_models.py)

_PER_SHARE = {"model": "PerShareCommission", "rate": 0.005, "minimum": 1.0}
_SLIP5 = {"model": "FixedBpsSlippage", "bps": 5}
# A BUY 100 @100 (0.1005 × 100,000 / 100 = 100.5 -> 100), B SELL the 200 held @50, C BUY 333 @10, D BUY 1002 @20
_COSTS = rows(["A", "B", "C", "D"], [0.1005, 0.0, 0.03335, 0.2005], [100.0, 50.0, 10.0, 20.0])
_COSTS_ORDERS = {"A": ("BUY", 100), "B": ("SELL", 200), "C": ("BUY", 333), "D": ("BUY", 1002)}
_HELD_B = {"symbol": ["B"], "qty": [200]}
# A BUY 500 @10 in lots of 100, 2,500 shares traded per step: 10% = 250 -> 200 per step
_THIN = {"liquidity": {"model": "VolumeParticipation", "max_rate": 0.1}}
# A BUY 50 @100, D SELL the 30 held @100
_LIMIT = rows(["A", "D"], [0.5, 0.0], [100.0, 100.0])
_LIMIT_ORDERS = {"A": ("BUY", 50), "D": ("SELL", 30)}
_HELD_D = {"symbol": ["D"], "qty": [30]}

FILLS = {
    # BUY × (1 + 5bp), SELL × (1 − 5bp); max(qty × 0.005, 1.00): 100 -> 1.00, 200 -> 1.00, 333 -> 1.665 -> 1.67
    # (half up), 1002 -> 5.01
    "fixed bps slippage, per-share commission": Case(
        _COSTS, 100_000, _COSTS_ORDERS, params={"slippage": _SLIP5, "commission": _PER_SHARE}, positions=_HELD_B,
        fills=[("A", 1, 100, 100.05, 1.00), ("B", 1, 200, 49.975, 1.00), ("C", 1, 333, 10.005, 1.67),
               ("D", 1, 1002, 20.01, 5.01)]),
    # 100 × 100.05 × 10bp = 10.005 -> 10.01; 200 × 49.975 × 10bp = 9.995 -> 10.00 (half up);
    # 333 × 10.005 × 10bp = 3.331665 -> 3.33; 1002 × 20.01 × 10bp = 20.05002 -> 20.05
    "fixed bps slippage, bps commission": Case(
        _COSTS, 100_000, _COSTS_ORDERS, params={"slippage": _SLIP5, "commission": {"model": "BpsCommission",
                                                                                   "bps": 10}},
        positions=_HELD_B,
        fills=[("A", 1, 100, 100.05, 10.01), ("B", 1, 200, 49.975, 10.00), ("C", 1, 333, 10.005, 3.33),
               ("D", 1, 1002, 20.01, 20.05)]),
    # 200 + 200 + 100 over three of five steps, the minimum commission on each fill
    "volume participation fills over steps": Case(
        rows(["A"], [0.5], [10.0], lot_size=[100], volume=[2_500.0]), 10_000, {"A": ("BUY", 500)},
        params={**_THIN, "steps": 5, "commission": _PER_SHARE},
        fills=[("A", 1, 200, 10.0, 1.0), ("A", 2, 200, 10.0, 1.0), ("A", 3, 100, 10.0, 1.0)]),
    # two steps fill 400 of 500; the rest is canceled at the close. B trades plenty of volume: filled in step 1
    "volume participation, rest canceled at close": Case(
        rows(["A", "B"], [0.5, 0.0], [10.0, 20.0], lot_size=[100, 1], volume=[2_500.0, 1e6]), 10_000,
        {"A": ("BUY", 500), "B": ("SELL", 50)}, params={**_THIN, "steps": 2},
        positions={"symbol": ["B"], "qty": [50]},
        outcome={"A": ("CANCELED", 400, "unfilled_at_close"), "B": ("FILLED", 50, "")},
        fills=[("A", 1, 200, 10.0, 0.0), ("A", 2, 200, 10.0, 0.0), ("B", 1, 50, 20.0, 0.0)]),
    # unknown volume is unlimited by default; a volume of 0 fills nothing
    "missing volume unlimited, zero volume fills nothing": Case(
        rows(["A", "B"], [0.4, 0.4], [10.0, 10.0], volume=[NAN, 0.0]), 10_000,
        {"A": ("BUY", 400), "B": ("BUY", 400)}, params={**_THIN, "steps": 3},
        outcome={"A": ("FILLED", 400, ""), "B": ("CANCELED", 0, "unfilled_at_close")},
        fills=[("A", 1, 400, 10.0, 0.0)]),
    "missing volume as zero": Case(
        rows(["A", "B"], [0.4, 0.4], [10.0, 10.0], volume=[NAN, 0.0]), 10_000,
        {"A": ("BUY", 400), "B": ("BUY", 400)},
        params={"liquidity": {"model": "VolumeParticipation", "max_rate": 0.1, "missing_volume": "zero"}, "steps": 3},
        outcome={"A": ("CANCELED", 0, "unfilled_at_close"), "B": ("CANCELED", 0, "unfilled_at_close")}, fills=[]),
    # limits 101 (BUY) and 99 (SELL): both cross; 5bp slippage stays inside: 100.05 and 99.95
    "LIMIT crossed, slippage inside the limit": Case(
        _LIMIT, 10_000, _LIMIT_ORDERS, positions=_HELD_D, limits={"A": 101.0, "D": 99.0},
        params={"order_type": "LIMIT", "limit_offset_bps": 100, "slippage": _SLIP5, "steps": 3},
        fills=[("A", 1, 50, 100.05, 0.0), ("D", 1, 30, 99.95, 0.0)]),
    # limits 100.02 and 99.98: both cross, but 5bp slippage would pass them: filled at the limit
    "LIMIT crossed, slippage capped at the limit": Case(
        _LIMIT, 10_000, _LIMIT_ORDERS, positions=_HELD_D, limits={"A": 100.02, "D": 99.98},
        params={"order_type": "LIMIT", "limit_offset_bps": 2, "slippage": _SLIP5, "steps": 3},
        fills=[("A", 1, 50, 100.02, 0.0), ("D", 1, 30, 99.98, 0.0)]),
    # limits 99 (BUY below the price) and 101 (SELL above it): neither crosses; canceled at the close
    "LIMIT not crossed": Case(
        _LIMIT, 10_000, _LIMIT_ORDERS, positions=_HELD_D, limits={"A": 99.0, "D": 101.0},
        params={"order_type": "LIMIT", "limit_offset_bps": -100, "slippage": _SLIP5, "steps": 3},
        outcome={"A": ("CANCELED", 0, "unfilled_at_close"), "D": ("CANCELED", 0, "unfilled_at_close")}, fills=[]),
    # B has no price: an unsized order (qty 0), REJECTED for the missing price; A fills
    "missing price is rejected": Case(
        rows(["A", "B"], [0.1, 0.2], [10.0, NAN]), 1_000, {"A": ("BUY", 10), "B": ("BUY", 0)},
        outcome={"A": ("FILLED", 10, ""), "B": ("REJECTED", 0, "missing_price")}, fills=[("A", 1, 10, 10.0, 0.0)]),
}


def _avg_prices(fills: list) -> dict:
    """Quantity-weighted average price per symbol of the expected fills."""
    by_symbol: dict = {}
    for symbol, _, qty, price, _ in fills:
        q, n = by_symbol.get(symbol, (0, 0.0))
        by_symbol[symbol] = (q + qty, n + qty * price)
    return {s: n / q for s, (q, n) in by_symbol.items()}


@pytest.mark.parametrize("name", list(FILLS))
def test_fill_models(engine, name):
    case = FILLS[name]
    out = case.run(engine)
    assert_orders(out, case)
    assert out.flagged == {}
    assert out.run_status == ("done" if engine.name == "run" else None)
    o = out.orders
    outcome = case.outcome or {s: ("FILLED", q, "") for s, (_, q) in case.orders.items()}
    assert {s: (r["status"], r["filled_qty"], r["reject_reason"]) for s, r in o.iterrows()} == outcome
    if case.limits:
        assert o["limit_price"].to_dict() == case.limits
    assert out.fill_rows() == case.fills
    avg = _avg_prices(case.fills)
    assert set(o.index[o["avg_fill_price"].notna()]) == set(avg)
    for symbol, price in avg.items():
        assert o.loc[symbol, "avg_fill_price"] == pytest.approx(price, rel=1e-12)
