"""What the compiled kernels (``tradeloop/core/jit``) cost a fresh process: compiling, loading from the disk cache.

Run (from the repository root)::

    python -m benchmarks.compile_cost                  # 3 rounds: benchmarks/results/compile_cost.md
    python -m benchmarks.compile_cost --rounds 1 --out /tmp/c.md

Each round gives numba a fresh, empty cache folder (``$NUMBA_CACHE_DIR``) and starts two Python processes in turn:

1. **fresh environment**: the cache is empty, so the first ``simulate`` (10 dates × 20 symbols) and the first single
   run (50 symbols, ``run_snapshot`` into a temporary database) compile every kernel they call;
2. **cached**: a new process with the same cache folder: the kernels load from disk.

In each process the same calls run a second time ("again": everything loaded, the steady state).

Each process reports ``import tradeloop`` and the time of each call; ``numba`` is imported on the first call that
needs a kernel, so its import (~0.2 s) is part of that call. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]

_CHILD = r"""
import json, sys, tempfile, time
from pathlib import Path
t0 = time.perf_counter()
import tradeloop as tl
t_import = time.perf_counter() - t0
from benchmarks.run import single_run_inputs
w, p = tl.synthetic_history(10, 20, seed=1)
table, params = single_run_inputs(50)
params = tl.RunParams.from_dict(params)
out = {"import tradeloop": t_import}
for label in ("first call", "second call"):
    with tempfile.TemporaryDirectory() as tmp, tl.Store(Path(tmp) / "t.duckdb") as store:
        calls = (("simulate", lambda: tl.simulate(w, p, portfolio_value=1e6, params=params)),
                 ("single run", lambda: tl.run_snapshot(store, tl.freeze_snapshot(
                     table, portfolio_value=1e6, model_version=label), params=params)))
        for name, fn in calls:
            t0 = time.perf_counter()
            fn()
            out[f"{name}, {label}"] = time.perf_counter() - t0
print(json.dumps(out))
"""


def _child(cache: str) -> dict:
    env = {**os.environ, "NUMBA_CACHE_DIR": cache, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", _CHILD], env=env, cwd=ROOT, capture_output=True, text=True,
                          check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def measure(rounds: int) -> dict:
    """Per round: the fresh process's and the cached process's timings."""
    fresh, cached = [], []
    for _ in range(rounds):
        with tempfile.TemporaryDirectory() as cache:
            fresh.append(_child(cache))
            cached.append(_child(cache))
    return {"fresh": fresh, "cached": cached, "load": os.getloadavg()[0]}


def report(r: dict) -> str:
    keys = list(r["fresh"][0])
    lines = ["# Compiled kernels: first call in a fresh environment, from the disk cache, and again", "",
             f"x86_64, {os.cpu_count()} cores, Python {sys.version.split()[0]}; {len(r['fresh'])} rounds, "
             f"best (median) in ms; load {r['load']:.2f}.", "",
             "| call | fresh environment (empty cache) | new process, cached kernels |", "|---|---|---|"]
    for k in keys:
        cells = []
        for side in ("fresh", "cached"):
            v = np.array([row[k] for row in r[side]]) * 1e3
            cells.append(f"{v.min():,.1f} ({np.median(v):,.1f})")
        lines.append(f"| {k} | {cells[0]} | {cells[1]} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "compile_cost.md"))
    args = ap.parse_args(argv)
    text = report(measure(args.rounds))
    Path(args.out).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
