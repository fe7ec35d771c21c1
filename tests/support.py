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


def history_files(d: Path, dates: int, symbols: int, *, seed: int, grid: dict | list | None = None) -> dict:
    """A synthetic weight history written to ``d`` as ``weights.csv`` and ``prices.csv`` (and ``grid`` as
    ``grid.json``): ``{"dir", "weights", "prices"}``, the frames as the files hold them."""
    import json

    import tradeloop as tl

    w, p = tl.synthetic_history(dates, symbols, seed=seed)
    w.to_csv(d / "weights.csv", index=False)
    p.to_csv(d / "prices.csv", index=False)
    if grid is not None:
        (d / "grid.json").write_text(json.dumps(grid))
    return {"dir": d, "weights": w, "prices": p}


def sweep_cli(d: Path, db: Path, *extra, grid: str | Path = "grid.json", model_version: str = "m",
              env: dict | None = None):
    """``tradeloop sweep --json`` over the files of :func:`history_files` in ``d`` (``grid`` relative to ``d``)."""
    return run_cli("sweep", "--weights", d / "weights.csv", "--prices", d / "prices.csv", "--grid", d / grid,
                   "--portfolio-value", "1000000", "--model-version", model_version, "--db", db, "--json", *extra,
                   env=env, timeout=300)
