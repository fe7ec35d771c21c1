"""Batch throughput: runs per minute of ``run_batch`` with 1 and with N workers on the same snapshots.

    .venv/bin/python benchmarks/batch_throughput.py [--runs 8] [--workers 4]

Each configuration executes the run notebook once per snapshot (a real papermill kernel per run) into a fresh
database; the speed-up is the ratio against the 1-worker run measured in the same process. Results are printed and
written to benchmarks/results/batch_throughput.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import pandas as pd

import tradeloop as tl

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "data"


def make_snapshots(folder: Path, n: int) -> None:
    base = pd.read_csv(DATA / "sample_snapshot.csv")
    for i in range(n):
        scale = 1.0 - (pd.Series(range(len(base))) * (i + 1) % 11) / 110  # distinct, deterministic weights
        base.assign(weight=(base["weight"] * scale).round(6)).to_csv(folder / f"snap_{i:03d}.csv", index=False)


def measure(snapshots: Path, workers: int, work: Path) -> dict:
    start = time.perf_counter()
    result = tl.run_batch(snapshots, portfolio_value=1_000_000, model_version="bench-v1",
                          params_file=DATA / "params_pass.json", fallback_prices_file=DATA / "fallback_prices.csv",
                          workers=workers, out=work / f"out{workers}", db=work / f"w{workers}.duckdb", progress=False)
    seconds = time.perf_counter() - start
    assert result.counts == {"done": len(result.records)}, result.summary()
    return {"workers": workers, "runs": len(result.records), "seconds": round(seconds, 2),
            "runs_per_minute": round(60 * len(result.records) / seconds, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=8)
    parser.add_argument("--workers", type=int, default=4)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="tradeloop-bench-") as tmp:
        work = Path(tmp)
        (work / "snaps").mkdir()
        make_snapshots(work / "snaps", args.runs)
        base = measure(work / "snaps", 1, work)
        par = measure(work / "snaps", args.workers, work)
    report = {"machine": f"{platform.machine()}, {os.cpu_count()} cpu(s), Python {platform.python_version()}",
              "baseline": base, "parallel": par,
              "speedup": round(par["runs_per_minute"] / base["runs_per_minute"], 2)}
    out = ROOT / "benchmarks" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "batch_throughput.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
