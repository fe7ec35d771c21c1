"""Before/after of the one execution engine, in ONE process: this checkout's tradeloop against a git revision's.

Run (from the repository root)::

    python -m benchmarks.engine_compare                 # base dec8747, writes benchmarks/results/engine_compare.md
    python -m benchmarks.engine_compare --dates 250 --symbols 500 --out /tmp/e.md     # quick

The ``--base`` revision's package is imported as ``tradeloop_base`` with the loader of
:mod:`benchmarks.single_run_compare`. Measured, alternating base and new so both see the same machine load:

* ``simulate`` on the synthetic history of ``benchmarks.run`` (default 2,520 dates × 4,000 symbols, its params):
  best of ``--repeat`` runs each, wall clock and CPU time of the process (less sensitive to other processes on a
  shared machine); both must give the same ``simulation_id`` and order count;
* the 3,000-symbol single run (:func:`benchmarks.single_run_compare.single_run_inputs`: freeze + ``run_snapshot``
  on a fresh DuckDB file per version, after two warm-up runs), best and median of ``--runs``, wall and CPU.

The load average before and after is printed and written with the numbers. Nothing is asserted about speed.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.run import PARAMS, PORTFOLIO_VALUE, ROOT
from benchmarks.single_run_compare import _load_base, single_run_inputs


def time_simulate(versions: dict, dates: int, symbols: int, repeat: int) -> dict:
    """Seconds per ``simulate`` of each version, alternating; checks that both give the same simulation."""
    import tradeloop as tl

    weights, prices = tl.synthetic_history(dates, symbols, seed=42)
    params = {k: m.RunParams.from_dict(PARAMS) for k, m in versions.items()}
    times = {k: [] for k in versions}
    cpu = {k: [] for k in versions}
    ids = {}
    names = list(versions)
    for i in range(repeat):
        for k in (names if i % 2 == 0 else names[::-1]):
            t0, c0 = time.perf_counter(), time.process_time()
            sim = versions[k].simulate(weights, prices, portfolio_value=PORTFOLIO_VALUE, params=params[k])
            times[k].append(time.perf_counter() - t0)
            cpu[k].append(time.process_time() - c0)
            ids[k] = (sim.simulation_id, sim.n_orders)
            del sim
    if len(set(ids.values())) != 1:
        raise SystemExit(f"the versions disagree: {ids}")
    return {"times": times, "cpu": cpu, "orders": ids[names[0]][1], "rows": len(weights)}


def time_single_run(versions: dict, tmp: Path, n_symbols: int, runs: int) -> dict:
    """Seconds per single run (freeze + ``run_snapshot``) of each version, alternating, each on its own DuckDB file,
    after two warm-up runs each: ``{"wall": {name: [...]}, "cpu": {name: [...]}}`` (CPU of the process: DuckDB's
    threads included)."""
    table, params_dict = single_run_inputs(n_symbols)
    stores = {k: m.Store(tmp / f"{k}.duckdb") for k, m in versions.items()}
    params = {k: m.RunParams.from_dict(params_dict) for k, m in versions.items()}
    out = {"wall": {k: [] for k in versions}, "cpu": {k: [] for k in versions}}
    names = list(versions)
    for i in range(runs + 2):
        for k in (names if i % 2 == 0 else names[::-1]):
            m = versions[k]
            t0, c0 = time.perf_counter(), time.process_time()
            snap = m.freeze_snapshot(table, portfolio_value=1e8 + i, model_version="bench")
            result = m.run_snapshot(stores[k], snap, params=params[k])
            if i >= 2:  # the first two are warm-up
                out["wall"][k].append(time.perf_counter() - t0)
                out["cpu"][k].append(time.process_time() - c0)
            assert result.status == "done", result
    return out


def markdown(args, sim: dict, run: dict, loads: list[float]) -> str:
    b, n = min(sim["times"]["base"]), min(sim["times"]["new"])
    rc = run["cpu"]
    run = run["wall"]
    rb, rn = np.median(run["base"]), np.median(run["new"])
    return "\n".join([
        "# One execution engine: before / after (one process, alternating)",
        "",
        f"base = `{args.base}` (imported as `tradeloop_base`), new = this checkout; {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} cores, Python {platform.python_version()}.",
        f"Load average (1 min) before / after the simulate runs / after the single runs: "
        f"{' / '.join(f'{x:.2f}' for x in loads)} (the machine is shared; both versions see the same load).",
        "",
        "| measurement | base | new | new / base |",
        "|---|---|---|---|",
        f"| simulate {args.dates:,} × {args.symbols:,} ({sim['rows']:,} weight rows, {sim['orders']:,} orders), best of "
        f"{args.repeat} | {b:.2f} s | {n:.2f} s | {n / b:.3f} |",
        f"| simulate, CPU seconds, best of {args.repeat} | {min(sim['cpu']['base']):.2f} s | {min(sim['cpu']['new']):.2f} s "
        f"| {min(sim['cpu']['new']) / min(sim['cpu']['base']):.3f} |",
        f"| simulate, CPU seconds, median of {args.repeat} | {np.median(sim['cpu']['base']):.2f} s | "
        f"{np.median(sim['cpu']['new']):.2f} s | {np.median(sim['cpu']['new']) / np.median(sim['cpu']['base']):.3f} |",
        f"| simulate, median of {args.repeat} | {np.median(sim['times']['base']):.2f} s | "
        f"{np.median(sim['times']['new']):.2f} s | {np.median(sim['times']['new']) / np.median(sim['times']['base']):.3f} |",
        f"| single run {args.run_symbols:,} symbols, median of {args.runs} | {1e3 * rb:.0f} ms | {1e3 * rn:.0f} ms | "
        f"{rn / rb:.3f} |",
        f"| single run, best of {args.runs} | {1e3 * min(run['base']):.0f} ms | {1e3 * min(run['new']):.0f} ms | "
        f"{min(run['new']) / min(run['base']):.3f} |",
        f"| single run, CPU, median of {args.runs} | {1e3 * np.median(rc['base']):.0f} ms | "
        f"{1e3 * np.median(rc['new']):.0f} ms | {np.median(rc['new']) / np.median(rc['base']):.3f} |",
        f"| single run, CPU, best of {args.runs} | {1e3 * min(rc['base']):.0f} ms | {1e3 * min(rc['new']):.0f} ms | "
        f"{min(rc['new']) / min(rc['base']):.3f} |",
        "",
        "All times (wall): " + "; ".join(f"simulate {k} " + ", ".join(f"{t:.2f}" for t in v)
                                         for k, v in sim["times"].items()) + ".",
        "All times (CPU): " + "; ".join(f"simulate {k} " + ", ".join(f"{t:.2f}" for t in v)
                                        for k, v in sim["cpu"].items()) + ".",
        "",
    ])


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--base", default="dec8747", help="git revision to compare against (default dec8747)")
    ap.add_argument("--dates", type=int, default=2520)
    ap.add_argument("--symbols", type=int, default=4000)
    ap.add_argument("--repeat", type=int, default=3, help="simulate runs per version (best is reported)")
    ap.add_argument("--run-symbols", type=int, default=3000, help="single-run snapshot size")
    ap.add_argument("--runs", type=int, default=9, help="timed single runs per version")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "engine_compare.md")
    args = ap.parse_args(argv)

    import tradeloop as new
    with tempfile.TemporaryDirectory() as tmp:
        versions = {"base": _load_base(args.base, Path(tmp) / "src"), "new": new}
        loads = [os.getloadavg()[0]]
        sim = time_simulate(versions, args.dates, args.symbols, args.repeat)
        loads.append(os.getloadavg()[0])
        run = time_single_run(versions, Path(tmp), args.run_symbols, args.runs)
        loads.append(os.getloadavg()[0])
    text = markdown(args, sim, run, loads)
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)


if __name__ == "__main__":
    main()
