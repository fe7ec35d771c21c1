"""tradeloop benchmark: simulate vs persist vs a per-order Python loop vs vectorbt, plus the single-run path.

Run (from the repository root, after ``pip install -e '.[dev,bench]'``)::

    python -m benchmarks.run                       # all sizes, writes benchmarks/results/benchmark.{json,md}
    python -m benchmarks.run --sizes small --repeat 1 --loop-dates 5 --no-vectorbt --out /tmp/b   # quick

Every measurement of one size runs in its own subprocess, so its peak RSS is its own. Times are wall-clock
(``time.perf_counter``), the best of ``--repeat`` runs; the machine's load average is recorded before and after each
measurement because the machine may be shared. Nothing here is asserted: the numbers are reported.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
SIZES = {"small": (250, 500), "medium": (2520, 1000), "large": (2520, 4000)}
#: Dates the per-order loop runs per size (then extrapolated linearly to all dates).
LOOP_DATES = {"small": 250, "medium": 60, "large": 15}
PORTFOLIO_VALUE = 100_000_000.0
PARAMS = {
    "cash_buffer": 0.02,
    "risk": {"max_order_notional": 2_000_000, "max_position_ratio": 0.05, "sector_cap": 0.35,
             "max_gross_exposure": 1.0, "allow_short": False},
    "slippage": {"model": "FixedBpsSlippage", "bps": 5},
    "commission": {"model": "BpsCommission", "bps": 1},
}


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e3


def _load() -> float:
    return round(os.getloadavg()[0], 2)


def _best(fn, repeat: int):
    times, out = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return min(times), float(np.median(times)), out


# ---------------------------------------------------------------- workers (one subprocess each)
def worker_tradeloop(size: str, repeat: int, loop_dates: int | None) -> dict:
    import tradeloop as tl
    from benchmarks.loop_baseline import loop_simulate

    D, S = SIZES[size]
    weights, prices = tl.synthetic_history(D, S, seed=42)
    params = tl.RunParams.from_dict(PARAMS)
    rows = len(weights)
    rss_inputs = _rss_mb()
    load0 = _load()
    best, median, sim = _best(lambda: tl.simulate(weights, prices, portfolio_value=PORTFOLIO_VALUE, params=params),
                              repeat)
    peak_sim = _peak_mb()
    t0 = time.perf_counter()
    _ = sim.orders  # materialize the orders DataFrame (order keys, categoricals)
    frame_s = time.perf_counter() - t0
    out = {"size": size, "dates": D, "symbols": S, "weight_rows": rows, "orders": sim.n_orders,
           "simulate_s": best, "simulate_median_s": median, "simulate_rows_per_s": rows / best,
           "orders_frame_s": frame_s, "rss_inputs_mb": rss_inputs, "peak_rss_mb": peak_sim,
           "peak_added_mb": peak_sim - rss_inputs, "load_before": load0, "load_after_simulate": _load()}
    with tempfile.TemporaryDirectory() as tmp:
        with tl.Store(Path(tmp) / "bench.duckdb") as store:
            t0 = time.perf_counter()
            saved = tl.save_simulation(store, sim)
            out["persist_s"] = time.perf_counter() - t0
            t0 = time.perf_counter()
            again = tl.save_simulation(store, sim)
            out["persist_again_s"] = time.perf_counter() - t0
            assert saved["orders"] == sim.n_orders and again["new"] is False
    out["persist_rows_per_s"] = sim.n_orders / out["persist_s"]
    # the DuckDB part alone: the orders' Arrow table inserted into an empty database in one transaction
    t0 = time.perf_counter()
    table = sim.orders_arrow()
    out["arrow_build_s"] = time.perf_counter() - t0
    with tempfile.TemporaryDirectory() as tmp, tl.Store(Path(tmp) / "insert.duckdb") as store:
        t0 = time.perf_counter()
        with store.transaction():
            store.insert_arrow("simulation_orders", table, table.column_names, {"simulation_id": "x", "portfolio": ""})
        out["db_insert_s"] = time.perf_counter() - t0
    out["db_insert_rows_per_s"] = sim.n_orders / out["db_insert_s"]
    del table
    out["peak_rss_after_persist_mb"] = _peak_mb()
    n_loop = min(loop_dates or LOOP_DATES[size], D)
    first = weights["date"].drop_duplicates().iloc[:n_loop]
    w_slice = weights.loc[weights["date"].isin(first)]
    p_slice = prices.loc[prices["date"].isin(first)]
    t0 = time.perf_counter()
    loop_orders, _ = loop_simulate(w_slice, p_slice, portfolio_value=PORTFOLIO_VALUE, params=params)
    loop_s = time.perf_counter() - t0
    out.update({"loop_dates": n_loop, "loop_measured_s": loop_s, "loop_s": loop_s * D / n_loop,
                "loop_extrapolated": n_loop < D, "loop_orders_measured": len(loop_orders)})
    # the loop and simulate agree on the slice (a cheap sanity check; the tests check exact equality)
    sim_slice = tl.simulate(w_slice, p_slice, portfolio_value=PORTFOLIO_VALUE, params=params)
    out["loop_matches_simulate"] = len(loop_orders) == sim_slice.n_orders
    out["load_after"] = _load()
    return out


def worker_vectorbt(size: str, repeat: int) -> dict:
    try:
        import vectorbt as vbt
    except ImportError as e:
        return {"size": size, "vectorbt": None,
                "vectorbt_skipped": f"vectorbt is not installed ({e}); pip install -e '.[bench]' to include it"}
    import tradeloop as tl

    D, S = SIZES[size]
    weights, prices = tl.synthetic_history(D, S, seed=42)
    t0 = time.perf_counter()
    close = prices.pivot(index="date", columns="symbol", values="price")
    size_df = weights.pivot(index="date", columns="symbol", values="weight")
    pivot_s = time.perf_counter() - t0
    kwargs = dict(size_type="targetpercent", group_by=True, cash_sharing=True, call_seq="auto",
                  init_cash=PORTFOLIO_VALUE, fees=1e-4, slippage=5e-4)
    tiny = pd.DataFrame(np.full((3, 2), 10.0))
    load0 = _load()
    t0 = time.perf_counter()
    vbt.Portfolio.from_orders(tiny, pd.DataFrame(np.full((3, 2), 0.4)), **kwargs)
    compile_s = time.perf_counter() - t0
    rss0 = _rss_mb()
    best, median, pf = _best(lambda: vbt.Portfolio.from_orders(close, size_df, **kwargs), repeat)
    return {"size": size, "vectorbt": vbt.__version__, "vectorbt_s": best, "vectorbt_median_s": median,
            "vectorbt_compile_s": compile_s, "vectorbt_pivot_s": pivot_s,
            "vectorbt_orders": int(pf.orders.count().sum() if hasattr(pf.orders.count(), "sum") else pf.orders.count()),
            "vectorbt_peak_rss_mb": _peak_mb(), "vectorbt_peak_added_mb": _peak_mb() - rss0,
            "load_before_vectorbt": load0, "load_after_vectorbt": _load()}


def single_run_inputs(n_symbols: int) -> tuple[pd.DataFrame, dict]:
    """The single-run snapshot table (symbol, weight, price, sector, lot_size) and its params dict."""
    rng = np.random.default_rng(3)
    sym = [f"S{i:05d}" for i in range(n_symbols)]
    raw = rng.gamma(2.0, 1.0, n_symbols)
    table = pd.DataFrame({"symbol": sym, "weight": np.round(raw / raw.sum() * 0.95, 6),
                          "price": np.round(rng.lognormal(np.log(50), 0.7, n_symbols), 2),
                          "sector": [f"G{i % 11}" for i in range(n_symbols)],
                          "lot_size": rng.choice([1, 1, 10, 100], n_symbols)})
    return table, {**PARAMS, "risk": {**PARAMS["risk"], "max_order_notional": 1e7}}


def worker_single_run(n_symbols: int, repeat: int) -> dict:
    """One snapshot of ``n_symbols`` end to end: freeze -> create run -> build -> risk -> mock execute -> persist
    -> audit, in a warm process (imports done, a first run already executed)."""
    import cProfile
    import io
    import pstats

    import tradeloop as tl

    table, params = single_run_inputs(n_symbols)
    params = tl.RunParams.from_dict(params)
    times = []
    with tempfile.TemporaryDirectory() as tmp, tl.Store(Path(tmp) / "single.duckdb") as store:
        def one(i):
            snap = tl.freeze_snapshot(table, portfolio_value=1e8 + i, model_version="bench")
            return tl.run_snapshot(store, snap, params=params)

        one(0)  # warm-up: imports, DuckDB plans
        one(1)
        for i in range(repeat):
            t0 = time.perf_counter()
            result = one(10 + i)
            times.append(time.perf_counter() - t0)
        assert result.status == "done", result
        prof = cProfile.Profile()
        prof.enable()
        one(999)
        prof.disable()
    buf = io.StringIO()
    pstats.Stats(prof, stream=buf).sort_stats("cumulative").print_stats(25)
    return {"symbols": n_symbols, "single_run_ms": 1e3 * min(times), "single_run_median_ms": 1e3 * float(np.median(times)),
            "orders": sum(result.orders.values()), "profile": buf.getvalue(), "load": _load()}


# ---------------------------------------------------------------- driver
def _run_worker(*args: str) -> dict:
    proc = subprocess.run([sys.executable, "-m", "benchmarks.run", "--worker", *args], cwd=ROOT,
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"benchmark worker {args} failed:\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _fmt(x, unit=""):
    if x is None:
        return "–"
    if isinstance(x, float):
        return f"{x:,.3g}{unit}" if abs(x) < 100 else f"{x:,.0f}{unit}"
    return f"{x:,}{unit}"


def markdown(report: dict) -> str:
    m = report["machine"]
    lines = [
        "# tradeloop benchmark", "",
        f"Command: `{report['command']}`  ",
        f"Commit {m['commit']}, Python {m['python']}, {m['cpus']} CPUs, numpy {m['numpy']}, pandas {m['pandas']}, "
        f"duckdb {m['duckdb']}, vectorbt {m['vectorbt'] or 'not installed'}. Load average at start {m['load_start']}, "
        f"at end {m['load_end']} (the machine is shared; times are the best of {report['repeat']}).", "",
        "| dates × symbols | weight rows | orders | simulate (build+risk+fill) | rows/s | peak RSS (added) | "
        "persist | orders/s persisted (DuckDB insert alone) | per-order loop | tradeloop / loop | vectorbt "
        "(first call) | tradeloop / vectorbt |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in report["sizes"]:
        loop = f"{_fmt(r['loop_s'], ' s')}{' (extrapolated from ' + str(r['loop_dates']) + ' dates)' if r['loop_extrapolated'] else ''}"
        vb = (f"{_fmt(r['vectorbt_s'], ' s')} ({_fmt(r['vectorbt_compile_s'], ' s')})" if r.get("vectorbt_s")
              else "skipped")
        ratio_vb = f"{r['vectorbt_s'] / r['simulate_s']:.2f}× faster" if r.get("vectorbt_s") else "–"
        lines.append(
            f"| {r['dates']:,} × {r['symbols']:,} | {r['weight_rows']:,} | {r['orders']:,} | {_fmt(r['simulate_s'], ' s')} "
            f"| {_fmt(r['simulate_rows_per_s'])} | {_fmt(r['peak_rss_mb'], ' MB')} ({_fmt(r['peak_added_mb'], ' MB')}) "
            f"| {_fmt(r['persist_s'], ' s')} | {_fmt(r['persist_rows_per_s'])} "
            f"({_fmt(r.get('db_insert_rows_per_s'))}) | {loop} "
            f"| {r['loop_s'] / r['simulate_s']:.0f}× faster | {vb} | {ratio_vb} |")
    s = report.get("single_run")
    if s:
        where = (f" Measured at commit {s['commit']} (`{s['command']}`), load average {s['load_start']} → "
                 f"{s['load_end']}." if "commit" in s else "")
        lines += ["", f"Single run, one {s['symbols']:,}-symbol snapshot end to end (freeze → build → risk → mock "
                      f"execute → persist → audit), warm: **{s['single_run_ms']:.0f} ms** best, "
                      f"{s['single_run_median_ms']:.0f} ms median ({s['orders']} orders).{where}"]
    notes = report.get("notes", [])
    if notes:
        lines += ["", *[f"- {n}" for n in notes]]
    if s:
        lines += ["", "<details><summary>Single-run profile (cumulative)</summary>", "", "```", s["profile"].strip(),
                  "```", "</details>"]
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="small,medium,large",
                    help="comma-separated: small, medium, large; 'none' measures the single run only and keeps the "
                         "size table of the previous report in --out")
    ap.add_argument("--repeat", type=int, default=3, help="runs per timing; the best is reported")
    ap.add_argument("--loop-dates", type=int, default=None, help="dates the per-order loop runs (default per size)")
    ap.add_argument("--no-vectorbt", action="store_true", help="skip vectorbt")
    ap.add_argument("--single-run-symbols", type=int, default=3000, help="0 skips the single-run measurement")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results"), help="output folder")
    ap.add_argument("--worker", nargs="+", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        kind, *rest = args.worker
        if kind == "tradeloop":
            res = worker_tradeloop(rest[0], int(rest[1]), int(rest[2]) or None)
        elif kind == "vectorbt":
            res = worker_vectorbt(rest[0], int(rest[1]))
        else:
            res = worker_single_run(int(rest[0]), int(rest[1]))
        print(json.dumps(res))
        return

    import duckdb

    try:
        import vectorbt
        vbt_version = vectorbt.__version__
    except ImportError:
        vbt_version = None
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    report = {
        "command": "python -m benchmarks.run " + " ".join(argv if argv is not None else sys.argv[1:]),
        "repeat": args.repeat,
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "numpy": np.__version__,
                    "pandas": pd.__version__, "duckdb": duckdb.__version__, "vectorbt": vbt_version,
                    "commit": commit or "unknown", "load_start": _load()},
        "sizes": [],
        "notes": [
            "simulate: tradeloop.workflows.history() on the in-memory tables (validation, factorization, the date loop with "
            "build + risk + fill); `orders_frame_s` in the JSON is the extra time to materialize the orders DataFrame.",
            "persist: save_simulation() into a fresh DuckDB file, one transaction (order keys, inputs digest, Arrow "
            "table, runs, simulation row, audit event); orders/s = orders written / that time. In brackets: the "
            "DuckDB INSERT of the prebuilt Arrow table alone.",
            "per-order loop: benchmarks/loop_baseline.py, the same rules one order at a time (tests prove it gives "
            "identical results); on the larger sizes it runs the first dates only and is extrapolated linearly.",
            "vectorbt: Portfolio.from_orders(size_type='targetpercent', cash_sharing, call_seq='auto', fees, "
            "slippage) on the pivoted price and weight matrices (pivot time excluded). It expresses target-percent "
            "rebalancing with costs but not lot sizes, the cash buffer, pro-rata trimming or the risk rules, so it "
            "solves an easier problem. Its first call in a fresh process is reported separately (numba compiles on "
            "the very first run on a machine, ~7 s here, then loads its on-disk cache).",
        ],
    }
    sizes = [] if args.sizes == "none" else args.sizes.split(",")
    previous = Path(args.out) / "benchmark.json"
    if not sizes and previous.exists():  # single run only: keep the size table of the last full run
        kept = json.loads(previous.read_text())
        report.update({k: kept[k] for k in ("command", "repeat", "machine", "sizes", "notes") if k in kept})
    for size in sizes:
        print(f"[{size}] tradeloop …", file=sys.stderr, flush=True)
        res = _run_worker("tradeloop", size, str(args.repeat), str(args.loop_dates or 0))
        if args.no_vectorbt:
            res["vectorbt_skipped"] = "--no-vectorbt"
        else:
            print(f"[{size}] vectorbt …", file=sys.stderr, flush=True)
            vb = _run_worker("vectorbt", size, str(args.repeat))
            if vb.get("vectorbt_skipped"):
                print(vb["vectorbt_skipped"], file=sys.stderr)
            res.update(vb)
        report["sizes"].append(res)
    if args.single_run_symbols:
        print("[single run] …", file=sys.stderr, flush=True)
        load0 = _load()
        report["single_run"] = _run_worker("single", str(args.single_run_symbols), str(max(args.repeat, 5)))
        report["single_run"].update({"commit": commit or "unknown", "load_start": load0, "load_end": _load(),
                                     "command": "python -m benchmarks.run " + " ".join(
                                         argv if argv is not None else sys.argv[1:])})
    if sizes or "load_end" not in report["machine"]:
        report["machine"]["load_end"] = _load()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "benchmark.json").write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
    (out / "benchmark.md").write_text(markdown(report))
    print(markdown(report))


if __name__ == "__main__":
    main()
