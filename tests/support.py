"""Helpers shared by the test modules (imported as ``support``: ``conftest`` is ambiguous with notebooks/conftest.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "data"


def run_cli(*args: str, env: dict | None = None, cwd: Path | None = None, timeout: float = 120):
    """Run the real ``tradeloop`` program in a subprocess; returns the CompletedProcess (text mode)."""
    full_env = {**os.environ, **(env or {})}
    full_env.pop("TRADELOOP_DEBUG", None)
    return subprocess.run(
        [sys.executable, "-m", "tradeloop", *map(str, args)],
        capture_output=True, text=True, env=full_env, cwd=cwd or ROOT, timeout=timeout,
    )


def one_date_paths(weights, portfolio_value: float, params=None, *, db_path: Path):
    """The orders of one target-weights table on both paths: a stored single run and a one-date simulation.

    ``weights``: ``symbol``, ``weight``, ``price`` [, ``sector``, ``lot_size``]. Returns ``{"run": ..., "simulate":
    ...}``, each a frame of ``symbol, side, qty, status, reject_reason`` sorted by symbol, plus the run's status.
    """
    import pandas as pd

    from tradeloop import RunParams, Store, freeze_snapshot, run_snapshot, simulate

    params = params or RunParams()
    cols = ["symbol", "side", "qty", "status", "reject_reason"]
    snap = freeze_snapshot(weights, portfolio_value=portfolio_value, model_version="m1")
    with Store(db_path) as store:
        result = run_snapshot(store, snap, params=params)
        run = store.orders(result.run_id)
    day = weights.assign(date="2024-01-02")
    sim = simulate(day.loc[:, ["date", "symbol", "weight"]], day.drop(columns="weight"),
                   portfolio_value=portfolio_value, params=params, model_version="m1")
    frames = {
        "run": run.loc[:, cols],
        "simulate": sim.orders.loc[:, cols].astype({"side": str, "status": str, "reject_reason": object}),
    }
    frames = {k: f.sort_values("symbol").reset_index(drop=True) for k, f in frames.items()}
    for f in frames.values():
        f["reject_reason"] = f["reject_reason"].where(f["reject_reason"].notna(), None)
    return frames, result.status
