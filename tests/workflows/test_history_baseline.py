"""Property: the vectorized simulation equals a plain per-order Python loop (benchmarks/loop_baseline.py) exactly."""

from __future__ import annotations

import sys

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support import ROOT

from tradeloop import RunParams
from tradeloop.workflows.history import simulate

sys.path.insert(0, str(ROOT))
from benchmarks.loop_baseline import loop_simulate  # noqa: E402


@st.composite
def histories(draw):
    n_dates = draw(st.integers(1, 5))
    n_sym = draw(st.integers(1, 6))
    symbols = [f"X{i}" for i in range(n_sym)]
    dates = pd.bdate_range("2021-03-01", periods=n_dates)
    allow_short = draw(st.booleans())
    low = -0.3 if allow_short else 0.0
    rows, prows = [], []
    sectors = {s: draw(st.sampled_from(["A", "B", "C"])) for s in symbols}
    lots = {s: draw(st.sampled_from([1, 1, 10, 100])) for s in symbols}
    for d in dates:
        ws = {s: draw(st.one_of(st.just(0.0), st.floats(low, 0.45, allow_nan=False).map(lambda x: round(x, 4))))
              for s in symbols if draw(st.booleans()) or d == dates[0]}
        gross = sum(abs(v) for v in ws.values())
        if gross > 1.0:
            ws = {s: round(v / gross * 0.99, 4) for s, v in ws.items()}
        rows += [{"date": d, "symbol": s, "weight": v} for s, v in ws.items()]
        for s in symbols:
            price = draw(st.one_of(st.floats(1.0, 300.0).map(lambda x: round(x, 2)), st.just(float("nan"))))
            if d != dates[0] and draw(st.integers(0, 9)) == 0:
                continue  # no price row at all that date
            # thin volumes so that a participation cap binds; NaN = unknown volume
            volume = draw(st.sampled_from([float("nan"), 0.0, 150.0, 1_000.0, 4_321.0, 1e9]))
            prows.append({"date": d, "symbol": s, "price": price, "sector": sectors[s], "lot_size": lots[s],
                          "volume": volume, "adv": draw(st.sampled_from([0.0, 300.0, 5_000.0, 1e7]))})
    if not rows:
        rows = [{"date": dates[0], "symbol": symbols[0], "weight": 0.0}]
    for d in dates:  # every date needs one price row
        if not any(r["date"] == d for r in prows):
            prows.append({"date": d, "symbol": symbols[0], "price": 10.0, "sector": sectors[symbols[0]],
                          "lot_size": lots[symbols[0]], "volume": 500.0, "adv": 5_000.0})
    weights = pd.DataFrame(rows)
    weights = weights.loc[weights["date"].isin(dates)]
    prices = pd.DataFrame(prows)
    opt = lambda s: st.one_of(st.none(), s)  # noqa: E731
    risk = {
        "max_order_notional": draw(opt(st.floats(1_000, 200_000))),
        "max_position_ratio": draw(opt(st.floats(0.05, 0.5))),
        "single_name_caps": draw(st.dictionaries(st.sampled_from(symbols), st.floats(0.01, 0.4), max_size=2)),
        "sector_cap": draw(opt(st.floats(0.1, 0.9))),
        "sector_caps": draw(st.dictionaries(st.sampled_from(["A", "B"]), st.floats(0.05, 0.9), max_size=1)),
        "max_gross_exposure": draw(opt(st.floats(0.3, 1.2))),
        "allow_short": allow_short,
    }
    if draw(st.booleans()):  # rebalancing controls and breach policies
        risk.update({
            "min_order_notional": draw(opt(st.floats(10, 5_000))),
            "min_order_qty": draw(opt(st.integers(1, 60))),
            "no_trade_band": draw(opt(st.floats(0.001, 0.05))),
            "no_trade_band_relative": draw(opt(st.floats(0.01, 0.5))),
            "max_turnover": draw(opt(st.floats(0.05, 1.5))),
            "restricted": draw(st.fixed_dictionaries({}, optional={
                "no_buy": st.lists(st.sampled_from(symbols), max_size=2),
                "no_trade": st.lists(st.sampled_from(symbols), max_size=1)})),
            "max_adv_participation": draw(opt(st.floats(0.01, 1.0))),
            "max_orders": draw(opt(st.integers(1, 5))),
            "on_breach": draw(st.fixed_dictionaries({}, optional={
                "max_order_notional": st.sampled_from(["block", "reject", "resize"]),
                "max_position_ratio": st.sampled_from(["reject", "resize"]),
                "single_name_cap": st.sampled_from(["reject", "resize"]),
                "no_short": st.sampled_from(["reject", "resize"]),
                "sector_cap": st.sampled_from(["block", "reject"]),
                "max_turnover": st.sampled_from(["resize", "block"]),
                "restricted": st.sampled_from(["reject", "block"]),
                "max_adv_participation": st.sampled_from(["resize", "reject", "block"]),
                "max_orders": st.sampled_from(["reject", "block"])})),
        })
    limit = draw(st.booleans())
    liquidity = draw(st.one_of(
        st.just({"model": "NoLiquidityLimit"}),
        st.builds(lambda r, m: {"model": "VolumeParticipation", "max_rate": r, "missing_volume": m},
                  st.sampled_from([0.05, 0.1, 0.33, 1.0]), st.sampled_from(["unlimited", "zero"]))))
    params = RunParams.from_dict({
        "cash_buffer": draw(st.sampled_from([0.0, 0.01, 0.05, 0.2])),
        "max_leverage": 2.0,
        "order_type": "LIMIT" if limit else "MARKET",
        "limit_offset_bps": draw(st.sampled_from([-5.0, 0.0, 3.0, 10.0])) if limit else None,
        "risk": {k: v for k, v in risk.items() if v is not None},
        "slippage": draw(st.sampled_from([{"model": "NoSlippage"}, {"model": "FixedBpsSlippage", "bps": 5}])),
        "commission": draw(st.sampled_from([
            {"model": "NoCommission"}, {"model": "PerShareCommission", "rate": 0.005, "minimum": 1.0},
            {"model": "BpsCommission", "bps": 2}])),
        "liquidity": liquidity,
        "steps": draw(st.integers(1, 4)),
        "borrow_bps_per_year": draw(st.sampled_from([0.0, 0.0, 50.0, 300.0])),
    })
    positions = {s: draw(st.sampled_from([0, 0, 10, 100, 35])) for s in symbols}
    value = draw(st.sampled_from([10_000.0, 250_000.0, 1_000_000.0]))
    return weights, prices, params, {s: q for s, q in positions.items() if q}, value


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(histories())
def test_simulate_equals_the_per_order_loop(history):
    weights, prices, params, positions, value = history
    pos = pd.DataFrame({"symbol": list(positions), "qty": list(positions.values())}) if positions else None
    sim = simulate(weights, prices, portfolio_value=value, params=params, positions=pos)
    orders, days = loop_simulate(weights, prices, portfolio_value=value, params=params, positions=positions)
    got = sim.orders
    cols = ["symbol", "side", "qty", "current_qty", "target_qty", "untrimmed_qty", "status", "risk_codes",
            "fill_price", "commission", "filled_qty", "n_fills", "avg_fill_price"]
    mine = got.loc[:, ["date"] + cols].astype({c: object for c in ("symbol", "side", "status", "risk_codes")})
    theirs = pd.DataFrame(orders, columns=["date"] + cols)
    pd.testing.assert_frame_equal(mine.reset_index(drop=True), theirs.astype(mine.dtypes.to_dict()),
                                  check_exact=True)
    np.testing.assert_array_equal(sim.summary["cash_after"].to_numpy(), [d["cash_after"] for d in days])
    np.testing.assert_array_equal(sim.summary["portfolio_value"].to_numpy(), [d["portfolio_value"] for d in days])
