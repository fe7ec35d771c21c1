"""tradeloop against vectorbt and the per-order loop, in ONE process, alternating: ratios on a shared machine.

Run (from the repository root, after ``pip install -e '.[dev,bench]'``)::

    python -m benchmarks.ratios                      # the three sizes and the sweep row: benchmarks/results/ratios.md
    python -m benchmarks.ratios --sizes small --repeat 3 --no-sweep --out /tmp/r.md

Per size: ``tl.simulate`` and vectorbt's ``Portfolio.from_orders(size_type='targetpercent')`` (the
:mod:`benchmarks.run` settings; compiled once before timing, its pivot of the long tables outside the timing) take
turns ``--repeat`` times, then the per-order loop of :mod:`benchmarks.loop_baseline` runs its first
``LOOP_DATES`` dates (extrapolated linearly) between two more ``simulate`` calls. Best and median of each, the
ratios of the bests, tradeloop's CPU time (``time.process_time``) beside its wall time, and the load average
before and after. The sweep row is :func:`benchmarks.sweep.measure`: 64 combinations over 250 × 500 as one stacked
pass against one simulation and 64 separate ones, in one process. Nothing is asserted about speed.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks.run import LOOP_DATES, PARAMS, PORTFOLIO_VALUE, ROOT, SIZES


def _timed(fn, cpu: list | None = None) -> float:
    t0, c0 = time.perf_counter(), time.process_time()
    fn()
    if cpu is not None:
        cpu.append(time.process_time() - c0)
    return time.perf_counter() - t0


def measure(size: str, repeat: int) -> dict:
    import tradeloop as tl
    from benchmarks.loop_baseline import loop_simulate

    D, S = SIZES[size]
    weights, prices = tl.synthetic_history(D, S, seed=42)
    params = tl.RunParams.from_dict(PARAMS)
    runs = {"tradeloop": lambda: tl.simulate(weights, prices, portfolio_value=PORTFOLIO_VALUE, params=params)}
    try:
        import vectorbt as vbt
    except ImportError:
        vbt = None
    if vbt is not None:
        close = prices.pivot(index="date", columns="symbol", values="price")
        target = weights.pivot(index="date", columns="symbol", values="weight")
        kwargs = dict(size_type="targetpercent", group_by=True, cash_sharing=True, call_seq="auto",
                      init_cash=PORTFOLIO_VALUE, fees=1e-4, slippage=5e-4)
        vbt.Portfolio.from_orders(pd.DataFrame(np.full((3, 2), 10.0)), pd.DataFrame(np.full((3, 2), 0.4)), **kwargs)
        runs["vectorbt"] = lambda: vbt.Portfolio.from_orders(close, target, **kwargs)
    runs["tradeloop"]()  # warm
    load = [os.getloadavg()[0]]
    times = {k: [] for k in runs}
    cpu: list[float] = []
    for i in range(repeat):
        for k in (list(runs) if i % 2 == 0 else list(runs)[::-1]):
            times[k].append(_timed(runs[k], cpu if k == "tradeloop" else None))
    n_loop = min(LOOP_DATES[size], D)
    first = weights["date"].drop_duplicates().iloc[:n_loop]
    w_slice, p_slice = weights.loc[weights["date"].isin(first)], prices.loc[prices["date"].isin(first)]
    loop_s = _timed(lambda: loop_simulate(w_slice, p_slice, portfolio_value=PORTFOLIO_VALUE, params=params))
    times["tradeloop"].append(_timed(runs["tradeloop"], cpu))
    load.append(os.getloadavg()[0])
    best = {k: min(v) for k, v in times.items()}
    return {"size": size, "D": D, "S": S, "best": best, "median": {k: float(np.median(v)) for k, v in times.items()},
            "cpu_best": min(cpu), "loop_s": loop_s * D / n_loop, "loop_dates": n_loop, "load": load,
            "vs_vectorbt": best["vectorbt"] / best["tradeloop"] if "vectorbt" in best else None,
            "vs_loop": loop_s * D / n_loop / best["tradeloop"]}


def _extrapolated(r: dict) -> str:
    return f" (from {r['loop_dates']} dates)" if r["loop_dates"] < r["D"] else ""


def _ratio(x: float | None) -> str:
    return "–" if x is None else f"{x:.2f}×"


def _ms(x: float) -> str:
    return f"{x * 1e3:,.1f} ms" if x < 1 else f"{x:,.2f} s"


def markdown(results: list[dict], sweep: dict | None = None) -> str:
    lines = ["# tradeloop / vectorbt / per-order loop, one process, alternating", "",
             f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python "
             f"{platform.python_version()}; params of `benchmarks.run`.", "",
             "| dates × symbols | tradeloop best (median) | tradeloop CPU best | vectorbt best (median) "
             "| tradeloop faster than vectorbt | per-order loop | tradeloop faster than the loop | load before / after |",
             "|---|---|---|---|---|---|---|---|"]
    for r in results:
        vb = (f"{_ms(r['best']['vectorbt'])} ({_ms(r['median']['vectorbt'])})"
              if r["vs_vectorbt"] else "not installed")
        lines.append(
            f"| {r['D']:,} × {r['S']:,} | {_ms(r['best']['tradeloop'])} ({_ms(r['median']['tradeloop'])}) "
            f"| {_ms(r['cpu_best'])} | {vb} | {_ratio(r['vs_vectorbt'])} "
            f"| {r['loop_s']:.2f} s{_extrapolated(r)} | {r['vs_loop']:.0f}× "
            f"| {r['load'][0]:.2f} / {r['load'][1]:.2f} |")
    if sweep is not None:
        k = sweep["combinations"]
        names = ("one simulation", f"stacked pass of {k}", f"stacked pass of {k}, every order column read",
                 f"{k} separate simulations")
        lines += ["", f"Sweep: {k} combinations over {sweep['dates']:,} × {sweep['symbols']:,} "
                  f"({sweep['orders']:,} orders in all), `benchmarks.sweep` in one process, alternating.", "",
                  "| run | best (median) | CPU best | best / one simulation (median; CPU) |", "|---|---|---|---|"]
        for n in names:
            if n in sweep["best"]:
                lines.append(f"| {n} | {_ms(sweep['best'][n])} ({_ms(sweep['median'][n])}) | "
                             f"{_ms(sweep['cpu_best'][n])} | {sweep['over_one_best'][n]:.1f}× "
                             f"({sweep['over_one_median'][n]:.1f}×; {sweep['over_one_cpu_best'][n]:.1f}×) |")
        lines.append(f"\nLoad during the sweep: {' / '.join(f'{x:.2f}' for x in sweep['load'])}.")
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="small,medium,large", help="comma-separated names of benchmarks.run.SIZES")
    ap.add_argument("--no-sweep", action="store_true", help="skip the sweep row")
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "ratios.md")
    args = ap.parse_args(argv)
    results = [measure(s, args.repeat) for s in args.sizes.split(",") if s]
    sweep = None
    if not args.no_sweep:
        from benchmarks.sweep import measure as measure_sweep

        sweep = measure_sweep(250, 500, 64, max(3, args.repeat // 2), separate=True)
    text = markdown(results, sweep)
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)


if __name__ == "__main__":
    main()
