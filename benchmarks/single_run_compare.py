"""Before/after of the single-run path in ONE process: this checkout's tradeloop against a git revision's.

Run (from the repository root)::

    python -m benchmarks.single_run_compare --base 867e4fd --runs 15

The ``--base`` revision's ``tradeloop`` package is extracted with ``git archive`` into a temporary folder and
imported as ``tradeloop_base`` (its imports are relative, so it loads side by side with this checkout's). Both
versions then run the same 3,000-symbol snapshot (the one ``benchmarks.run`` measures), alternately, each on its own
fresh DuckDB file, after two warm-up runs each; the medians and their ratio are printed. Alternating in one process
keeps the comparison fair on a shared machine whose load changes from minute to minute. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import importlib
import os
import subprocess
import sys
import tarfile
import tempfile
import time
from io import BytesIO
from pathlib import Path

import numpy as np

from benchmarks.run import ROOT, single_run_inputs


def _load_base(rev: str, folder: Path):
    blob = subprocess.run(["git", "archive", rev, "tradeloop"], cwd=ROOT, capture_output=True, check=True).stdout
    with tarfile.open(fileobj=BytesIO(blob)) as tar:
        tar.extractall(folder, filter="data")
    (folder / "tradeloop").rename(folder / "tradeloop_base")
    sys.path.insert(0, str(folder))
    return importlib.import_module("tradeloop_base")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--base", default="HEAD", help="git revision to compare against (default HEAD)")
    ap.add_argument("--runs", type=int, default=15, help="timed runs per version")
    ap.add_argument("--symbols", type=int, default=3000, help="snapshot size")
    args = ap.parse_args(argv)

    import tradeloop as new
    with tempfile.TemporaryDirectory() as tmp:
        base = _load_base(args.base, Path(tmp) / "src")
        versions = {"base": base, "new": new}
        table, params_dict = single_run_inputs(args.symbols)
        stores = {k: m.Store(Path(tmp) / f"{k}.duckdb") for k, m in versions.items()}
        params = {k: m.RunParams.from_dict(params_dict) for k, m in versions.items()}

        def one(k, i):
            m = versions[k]
            snap = m.freeze_snapshot(table, portfolio_value=1e8 + i, model_version="bench")
            t0 = time.perf_counter()
            result = m.run_snapshot(stores[k], snap, params=params[k])
            return time.perf_counter() - t0, result

        times = {k: [] for k in versions}
        freeze = {k: [] for k in versions}
        for i in range(2):  # warm-up
            for k in versions:
                one(k, i)
        load0 = os.getloadavg()[0]
        for i in range(args.runs):
            for k in (("base", "new") if i % 2 == 0 else ("new", "base")):
                t0 = time.perf_counter()
                dt, result = one(k, 100 + i)
                freeze[k].append(time.perf_counter() - t0 - dt)
                times[k].append(time.perf_counter() - t0)
                assert result.status == "done", result
        b, n = np.median(times["base"]), np.median(times["new"])
        print(f"load average {load0:.2f} -> {os.getloadavg()[0]:.2f}; {args.runs} alternating warm runs each, "
              f"{args.symbols} symbols")
        for k in versions:
            print(f"{k:>4} ({args.base if k == 'base' else 'checkout'}): median {1e3 * np.median(times[k]):.0f} ms, "
                  f"best {1e3 * min(times[k]):.0f} ms (freeze {1e3 * np.median(freeze[k]):.0f} ms of it)")
        print(f"new / base = {n / b:.2f} ({b / n:.2f}x faster)")


if __name__ == "__main__":
    main()
