"""A simulation over a date history with VolumeParticipation gives the same fills as step-by-step single runs.

``_simulate_history`` is the pure path a history simulation takes: per date, build orders from the positions the
previous date actually reached, then work them with :func:`tradeloop.work_orders` (unfilled rest CANCELED at the
date's close, rebuilt from the new positions the next date). The other path executes one real stored run per date
through the mock provider, each created with the positions left by the previous run's fills.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tradeloop import RunParams, build_book, build_orders, create_run, execute_run, freeze_snapshot, work_orders

PV = 1_000_000.0


def _history(seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    dates = pd.date_range("2024-01-02", periods=4, freq="B").strftime("%Y-%m-%d")
    symbols = ["AAA", "BBB", "CCC", "DDD", "EEE"]
    rows = []
    for d in dates:
        w = rng.uniform(0.02, 0.25, len(symbols))
        rows.append(pd.DataFrame({
            "date": d, "symbol": symbols, "weight": np.round(w / w.sum() * 0.9, 4),
            "price": np.round(rng.uniform(10, 200, len(symbols)), 2),
            "lot_size": [1, 10, 100, 1, 10],
            # thin volumes for some symbols so orders fill only partly and the rest is canceled at the close
            "volume": np.where(rng.uniform(size=len(symbols)) < 0.5, rng.integers(200, 3000, len(symbols)), 1e7),
        }))
    return pd.concat(rows, ignore_index=True)


def _positions_after(positions: pd.DataFrame | None, fills: pd.DataFrame) -> pd.DataFrame:
    signed = fills["qty"].where(fills["side"] == "BUY", -fills["qty"])
    delta = signed.groupby(fills["symbol"]).sum()
    base = positions.set_index("symbol")["qty"] if positions is not None else pd.Series(dtype="int64")
    total = base.add(delta, fill_value=0).astype("int64")
    return total.rename_axis("symbol").reset_index(name="qty").sort_values("symbol").reset_index(drop=True)


def _day_fills(orders: pd.DataFrame, fills: pd.DataFrame, date: str) -> pd.DataFrame:
    f = fills.merge(orders[["client_order_id", "symbol", "side"]], on="client_order_id")
    return f.assign(date=date).loc[:, ["date", "symbol", "side", "seq", "qty", "price", "commission"]]


def _simulate_history(history: pd.DataFrame, params: RunParams) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Pure path: the loop is over dates (each needs the positions the previous one reached), never over orders."""
    positions, out = None, []
    for date, day in history.groupby("date", sort=True):
        targets = day.loc[:, ["symbol", "weight", "price", "lot_size"]].assign(sector=None)
        book = build_book(targets, PV, cash_buffer=params.cash_buffer, lot_size=params.lot_size, positions=positions,
                          cash=params.cash)
        orders = build_orders(None, book=book, run_id=f"sim-{date}", model_version="m1", order_type=params.order_type,
                              limit_offset_bps=params.limit_offset_bps)
        orders["volume"] = orders["symbol"].map(day.set_index("symbol")["volume"])
        r = work_orders(orders, steps=params.steps, slippage=params.slippage, commission=params.commission,
                        liquidity=params.liquidity)
        day_fills = _day_fills(r.orders, r.fills, date)
        out.append(day_fills.merge(r.orders[["symbol", "status"]], on="symbol", how="right").assign(date=date))
        positions = _positions_after(positions, day_fills)
    return pd.concat(out, ignore_index=True), positions


def _single_runs(store, history: pd.DataFrame, params: RunParams) -> tuple[pd.DataFrame, pd.DataFrame]:
    positions, out = None, []
    for date, day in history.groupby("date", sort=True):
        snap = freeze_snapshot(day.drop(columns="date"), portfolio_value=PV, model_version="m1")
        run = create_run(store, snap, params=params, positions=positions, run_id=f"run-{date}")
        assert execute_run(store, run.run_id).status == "done"
        orders, fills = store.orders(run.run_id), store.fills(run.run_id)
        day_fills = _day_fills(orders, fills, date)
        out.append(day_fills.merge(orders[["symbol", "status"]], on="symbol", how="right").assign(date=date))
        positions = _positions_after(positions, day_fills)
    return pd.concat(out, ignore_index=True), positions


def _canonical(df: pd.DataFrame) -> pd.DataFrame:
    cols = ["date", "symbol", "side", "seq", "qty", "price", "commission", "status"]
    return df.loc[:, cols].sort_values(["date", "symbol", "seq"], kind="stable").reset_index(drop=True)


@pytest.mark.parametrize("seed, steps", [(1, 1), (7, 3)])
def test_history_with_volume_participation_equals_step_by_step_runs(store, seed, steps):
    history = _history(seed)
    params = RunParams.from_dict({
        "liquidity": {"model": "VolumeParticipation", "max_rate": 0.1}, "steps": steps,
        "slippage": {"model": "FixedBpsSlippage", "bps": 3},
        "commission": {"model": "PerShareCommission", "rate": 0.005, "minimum": 1.0},
    })
    simulated, sim_positions = _simulate_history(history, params)
    stepped, run_positions = _single_runs(store, history, params)
    assert "CANCELED" in set(simulated["status"]) and "FILLED" in set(simulated["status"])  # the case is not trivial
    pd.testing.assert_frame_equal(_canonical(simulated), _canonical(stepped), check_dtype=False)
    pd.testing.assert_frame_equal(sim_positions, run_positions, check_dtype=False)
