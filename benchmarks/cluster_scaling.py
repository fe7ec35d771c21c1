"""Sweep and batch scaling: serial vs local processes vs a Dask LocalCluster (1 and 2 workers).

    .venv/bin/python -m benchmarks.cluster_scaling [--dates 250] [--symbols 500] [--combinations 24] [--snapshots 16]
                                                  [--repeat 3] [--skip-batch]

Sweep: ``tl.sweep`` of ``--combinations`` combinations over a ``--dates`` × ``--symbols`` synthetic history into a
fresh database each time, (a) serially in this process, one combination after the other (``stack=False``),
(b) in 2 local processes, (c) ``--scheduler local`` with 1 worker, (d) with 2 workers, (e) as one stacked pass of
the date loop in this process (``tl.sweep``'s default without a scheduler: the combinations differ only in limits,
buffers and costs), each storing every combination; the cluster's start and stop are part of the time (that is
what a user waits for), and are also reported on their own. ``stacked-compute`` is the stacked pass alone
(:func:`~tradeloop.workflows.sweep_kernel.simulate_stacked`, nothing stored). Batch: ``tl.run_batch`` of ``--snapshots`` snapshot notebooks on 2 local threads vs a LocalCluster of
2 workers. Configurations alternate within each repeat (in reverse order every other repeat); the best and the median
are reported with the machine's load. Results go to benchmarks/results/cluster_scaling.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import tradeloop as tl

from .batch_throughput import DATA, make_snapshots

ROOT = Path(__file__).resolve().parents[1]


def grid(n: int) -> list[dict]:
    """``n`` distinct params objects: cash buffers × position caps × slippage."""
    out = []
    for i in range(n):
        out.append({"cash_buffer": round(0.01 * (i % 4), 2), "risk": {"max_position_ratio": [0.004, 0.006, None][i % 3]},
                    "slippage": {"model": "FixedBpsSlippage", "bps": 2 + i // 12}})
    return out


def sweep_once(w, p, combos, config: tuple, work: Path) -> float:
    scheduler, workers, stack = config
    db = work / f"sweep-{time.monotonic_ns()}.duckdb"
    start = time.perf_counter()
    result = tl.sweep(w, p, grid=combos, portfolio_value=1e6, model_version="bench", scheduler=scheduler,
                      workers=workers, db=db, progress=False, stack=stack)
    seconds = time.perf_counter() - start
    assert result.counts == {"new": len(combos)}, result.summary()
    assert ("stacked pass" in result.ran_on) == (stack and scheduler is None and not workers), result.ran_on
    db.unlink()
    return seconds


def stacked_compute(w, p, combos) -> float:
    from tradeloop.workflows.sweep_kernel import simulate_stacked

    params = [tl.RunParams.from_dict(c) for c in combos]
    start = time.perf_counter()
    simulate_stacked(w, p, params, portfolio_value=1e6, model_version="bench")
    return time.perf_counter() - start


def cluster_overhead(workers: int) -> float:
    from tradeloop.workflows.executors import open_pool

    start = time.perf_counter()
    with open_pool("local", workers) as pool:
        pool.submit(len, [1]).result()
    return time.perf_counter() - start


def batch_once(snaps: Path, scheduler, workers, work: Path) -> float:
    tag = time.monotonic_ns()
    start = time.perf_counter()
    result = tl.run_batch(snaps, portfolio_value=1_000_000, model_version="bench-v1",
                          params_file=DATA / "params_pass.json", fallback_prices_file=DATA / "fallback_prices.csv",
                          workers=workers, scheduler=scheduler, out=work / f"out-{tag}", db=work / f"b-{tag}.duckdb",
                          progress=False)
    seconds = time.perf_counter() - start
    assert result.counts == {"done": len(result.records)}, result.summary()
    return seconds


def stats(times: list[float], n: int) -> dict:
    best, median = min(times), statistics.median(times)
    return {"seconds": [round(t, 2) for t in times], "best_s": round(best, 2), "median_s": round(median, 2),
            "per_minute_best": round(60 * n / best, 1), "per_minute_median": round(60 * n / median, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dates", type=int, default=250)
    parser.add_argument("--symbols", type=int, default=500)
    parser.add_argument("--combinations", type=int, default=24)
    parser.add_argument("--snapshots", type=int, default=16)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--skip-batch", action="store_true")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args()
    w, p = tl.synthetic_history(args.dates, args.symbols, seed=1)
    combos = grid(args.combinations)
    configs = {"serial": (None, None, False), "processes-2": (None, 2, True), "localcluster-1": ("local", 1, True),
               "localcluster-2": ("local", 2, True), "stacked": (None, None, True)}
    load = [os.getloadavg()[0]]
    times = {k: [] for k in configs}
    times["stacked-compute"] = []
    with tempfile.TemporaryDirectory(prefix="tradeloop-bench-") as tmp:
        work = Path(tmp)
        for i in range(args.repeat):
            for name, config in (list(configs.items()) if i % 2 == 0 else list(configs.items())[::-1]):
                times[name].append(sweep_once(w, p, combos, config, work))
                load.append(os.getloadavg()[0])
            times["stacked-compute"].append(stacked_compute(w, p, combos))
        sweep = {k: stats(v, len(combos)) for k, v in times.items()}
        for k in sweep:
            sweep[k]["speedup_vs_serial_median"] = round(sweep["serial"]["median_s"] / sweep[k]["median_s"], 2)
        overhead = {f"localcluster-{n}": round(min(cluster_overhead(n) for _ in range(2)), 2) for n in (1, 2)}
        batch = {}
        if not args.skip_batch:
            snaps = work / "snaps"
            snaps.mkdir()
            make_snapshots(snaps, args.snapshots)
            bt = {"threads-2": [], "localcluster-2": []}
            for _ in range(max(1, args.repeat - 1)):
                bt["threads-2"].append(batch_once(snaps, None, 2, work))
                bt["localcluster-2"].append(batch_once(snaps, "local", 2, work))
                load.append(os.getloadavg()[0])
            batch = {k: stats(v, args.snapshots) for k, v in bt.items()}
    report = {"machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                          "load_1min": [round(x, 2) for x in load]},
              "sweep": {"dates": args.dates, "symbols": args.symbols, "combinations": len(combos), **sweep},
              "cluster_start_stop_s": overhead, "batch": {"snapshots": args.snapshots, **batch}}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "cluster_scaling.json").write_text(json.dumps(report, indent=1))
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
