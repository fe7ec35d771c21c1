"""Cost of opening the database per operation (issue 5's Store) versus holding it in one session.

Run: python benchmarks/bench_store_sessions.py [N]. Prints ratios against the in-session baseline, measured in the
same process on the same file, so the numbers do not depend on the machine's speed.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

import tradeloop as tl

DATA = Path(__file__).resolve().parents[1] / "data"


def _time(fn, n: int) -> float:
    start = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - start) / n


def main(n: int = 50) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "bench.duckdb"
        snap = tl.load_snapshot_file(DATA / "sample_snapshot.csv", portfolio_value=1_000_000, model_version="bench")
        fb = pd.read_csv(DATA / "fallback_prices.csv")
        store = tl.Store(db)
        run_id = tl.run_snapshot(store, snap, params=tl.load_params(DATA / "params_pass.json"),
                                 fallback_prices=fb).run_id
        with store.session():
            held = _time(lambda: store.orders(run_id), n)
        per_call = _time(lambda: store.orders(run_id), n)
        with store.session():
            rerun_held = _time(lambda: tl.execute_run(store, run_id), max(n // 5, 3))
        print(f"store.orders(): in one session {held * 1e3:.2f} ms, opening the file per call {per_call * 1e3:.2f} ms "
              f"(ratio {per_call / held:.1f}x)")
        print(f"execute_run (re-check of a done run, one session inside): {rerun_held * 1e3:.1f} ms "
              f"= {rerun_held / held:.0f}x one held read")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 50)
