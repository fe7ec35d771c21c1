"""A simulation over a date history with VolumeParticipation gives the same orders and fills as step-by-step runs.

One path is :func:`tradeloop.workflows.history` over the whole history. The other executes one real stored run per date
through the mock provider (:func:`tradeloop.create_run` + :func:`tradeloop.execute_run`), each created with the
positions its predecessor's stored fills reached and the cash they left (tracked here from the stored fills, not
taken from the simulation), so both value the portfolio the same way: the unfilled rest of a partial order is
CANCELED at each date's close and the next date sizes its orders from the positions actually reached.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from tradeloop import RunParams, create_run, execute_run, freeze_snapshot, simulate

PV = 1_000_000.0


def _history(seed: int, missing_volumes: bool = False) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    dates = pd.date_range("2024-01-02", periods=4, freq="B").strftime("%Y-%m-%d")
    symbols = ["AAA", "BBB", "CCC", "DDD", "EEE"]
    rows = []
    for d in dates:
        w = rng.uniform(0.02, 0.25, len(symbols))
        volume = np.where(rng.uniform(size=len(symbols)) < 0.5, rng.integers(200, 3000, len(symbols)), 1e7)
        if missing_volumes:
            volume[rng.uniform(size=len(symbols)) < 0.25] = np.nan
        rows.append(pd.DataFrame({
            "date": d, "symbol": symbols, "weight": np.round(w / w.sum() * 0.9, 4),
            "price": np.round(rng.uniform(10, 200, len(symbols)), 2),
            "lot_size": [1, 10, 100, 1, 10],
            # thin volumes for some symbols so orders fill only partly and the rest is canceled at the close
            "volume": volume,
        }))
    return pd.concat(rows, ignore_index=True)


def _single_runs(store, history: pd.DataFrame, params: RunParams):
    """One stored run per date; returns (orders, fills, final positions, cash after each date)."""
    positions, cash, orders_out, fills_out, cash_out = None, None, [], [], []
    for date, day in history.groupby("date", sort=True):
        px = day.set_index("symbol")["price"]
        value = PV if positions is None else cash + float((positions.set_index("symbol")["qty"] * px).sum())
        snap = freeze_snapshot(day.drop(columns="date"), portfolio_value=value, model_version="m1")
        run = create_run(store, snap, params=dataclasses.replace(params, cash=cash), positions=positions,
                         run_id=f"run-{date}")
        assert execute_run(store, run.run_id).status == "done"
        orders, fills = store.orders(run.run_id), store.fills(run.run_id)
        fills = fills.merge(orders[["client_order_id", "symbol", "side"]], on="client_order_id")
        signed = fills["qty"].where(fills["side"] == "BUY", -fills["qty"])
        cash = (value if cash is None else cash) + float((-signed * fills["price"] - fills["commission"]).sum())
        delta = signed.groupby(fills["symbol"]).sum()
        base = positions.set_index("symbol")["qty"] if positions is not None else pd.Series(dtype="int64")
        total = base.add(delta, fill_value=0).astype("int64")
        positions = total.rename_axis("symbol").reset_index(name="qty")
        orders_out.append(orders.assign(date=date))
        fills_out.append(fills.assign(date=date))
        cash_out.append(cash)
    return pd.concat(orders_out, ignore_index=True), pd.concat(fills_out, ignore_index=True), positions, cash_out


ORDER_COLS = ["date", "symbol", "side", "qty", "current_qty", "status", "filled_qty", "avg_fill_price",
              "reject_reason"]
FILL_COLS = ["date", "symbol", "side", "seq", "qty", "price", "commission"]


def _canonical(df: pd.DataFrame, cols) -> pd.DataFrame:
    out = df.loc[:, cols].copy()
    for c in ("date", "symbol", "side", "status", "reject_reason"):
        if c in out:
            out[c] = out[c].astype(object).where(out[c].notna(), None).astype(str)
    out["date"] = pd.to_datetime(out["date"]).dt.strftime("%Y-%m-%d")
    return out.sort_values([c for c in ("date", "symbol", "seq") if c in cols], kind="stable").reset_index(drop=True)


CASES = {
    "one step": (1, {}, False),
    "three steps": (7, {"steps": 3}, False),
    # no volume = no fill, LIMIT orders at the quote (slippage capped at the limit), two steps
    "limit, missing volume": (11, {"steps": 2, "order_type": "LIMIT", "limit_offset_bps": 0.0,
                                   "liquidity": {"model": "VolumeParticipation", "max_rate": 0.2,
                                                 "missing_volume": "zero"}}, True),
}


@pytest.mark.parametrize("case", list(CASES))
def test_history_with_volume_participation_equals_step_by_step_runs(store, case):
    seed, extra, missing_volumes = CASES[case]
    history = _history(seed, missing_volumes)
    params = RunParams.from_dict({
        "liquidity": {"model": "VolumeParticipation", "max_rate": 0.1},
        "slippage": {"model": "FixedBpsSlippage", "bps": 3},
        "commission": {"model": "PerShareCommission", "rate": 0.005, "minimum": 1.0},
        **extra,
    })
    sim = simulate(history.loc[:, ["date", "symbol", "weight"]],
                   history.loc[:, ["date", "symbol", "price", "lot_size", "volume"]],
                   portfolio_value=PV, params=params, model_version="m1")
    run_orders, run_fills, run_positions, run_cash = _single_runs(store, history, params)

    o = sim.orders
    partial = (o["status"] == "CANCELED") & (o["filled_qty"] > 0)
    assert partial.any() and (o["status"] == "FILLED").any() and (o["n_fills"] > 1).any() == (params.steps > 1)
    pd.testing.assert_frame_equal(_canonical(o, ORDER_COLS), _canonical(run_orders, ORDER_COLS), check_dtype=False)
    pd.testing.assert_frame_equal(_canonical(sim.fills, FILL_COLS), _canonical(run_fills, FILL_COLS),
                                  check_dtype=False)
    last = sim.positions.loc[sim.positions["date"] == sim.dates[-1]]
    held = run_positions.loc[run_positions["qty"] != 0].sort_values("symbol")
    assert dict(zip(last["symbol"].astype(str), last["qty"])) == dict(zip(held["symbol"], held["qty"]))
    np.testing.assert_allclose(sim.summary["cash_after"].to_numpy(), run_cash, rtol=0, atol=1e-6)
    # per-order totals agree with the fill rows
    by_order = sim.fills.groupby("order_key")["qty"].sum()
    np.testing.assert_array_equal(o.set_index("order_key").loc[by_order.index, "filled_qty"], by_order.to_numpy())
