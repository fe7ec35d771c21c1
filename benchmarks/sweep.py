"""A sweep of K parameter combinations as one stacked pass vs one simulation and vs K separate simulations.

Run (from the repository root)::

    python -m benchmarks.sweep                          # 64 combinations over 250 × 500
    python -m benchmarks.sweep --dates 2520 --symbols 1000 --combinations 16

The combinations are a grid over the cash buffer, max order notional, max position ratio and commission bps of the
:mod:`benchmarks.run` params (4 × 4 × 2 × 2 = 64 by default). Times are wall clock, best and median of ``--repeat``,
alternating the measurements (in reverse order every other repeat) so they see the same machine load, with CPU
time (``time.process_time``) beside wall time; the load average is printed beside them. The stacked pass gathers
each combination's order columns when first read, so it is timed both as returned and with every column read.
Each stacked combination is checked equal to its separate simulation (order count and cash path) once.
Nothing is asserted about speed.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import time

import numpy as np

from benchmarks.run import PARAMS, PORTFOLIO_VALUE


def grid(k: int) -> list[dict]:
    """``k`` params dicts: the benchmark params with buffer, notional, ratio and commission varied."""
    combos = itertools.product((0.0, 0.01, 0.02, 0.05), (5e5, 1e6, 2e6, None), (0.05, 0.1), (1, 3))
    out = []
    for buf, notional, ratio, bps in itertools.islice(itertools.cycle(combos), k):
        risk = {**PARAMS["risk"], "max_order_notional": notional, "max_position_ratio": ratio}
        out.append({**PARAMS, "cash_buffer": buf, "risk": risk, "commission": {"model": "BpsCommission", "bps": bps}})
    return out


def _gather(sims) -> int:
    """Read every order column of every combination (what storing them needs): the stacked pass gathers each
    combination's columns on first read."""
    return sum(len(sim.orders_raw[name]) for sim in sims for name in sim.orders_raw)


def measure(dates: int, symbols: int, k: int, repeat: int, separate: bool) -> dict:
    import tradeloop as tl
    from tradeloop.workflows.sweep_kernel import simulate_stacked

    w, p = tl.synthetic_history(dates, symbols, seed=42)
    params = [tl.RunParams.from_dict(d) for d in grid(k)]
    runs = {
        "one simulation": lambda: tl.simulate(w, p, portfolio_value=PORTFOLIO_VALUE, params=params[0]),
        f"stacked pass of {k}": lambda: simulate_stacked(w, p, params, portfolio_value=PORTFOLIO_VALUE),
        f"stacked pass of {k}, every order column read": lambda: _gather(
            simulate_stacked(w, p, params, portfolio_value=PORTFOLIO_VALUE)),
    }
    if separate:
        runs[f"{k} separate simulations"] = lambda: [tl.simulate(w, p, portfolio_value=PORTFOLIO_VALUE, params=q)
                                                     for q in params]
    wall = {name: [] for name in runs}
    cpu = {name: [] for name in runs}
    loads = [os.getloadavg()[0]]
    for i in range(repeat):
        for name in (list(runs) if i % 2 == 0 else list(runs)[::-1]):
            t0, c0 = time.perf_counter(), time.process_time()
            runs[name]()
            wall[name].append(time.perf_counter() - t0)
            cpu[name].append(time.process_time() - c0)
        loads.append(os.getloadavg()[0])
    stacked = simulate_stacked(w, p, params, portfolio_value=PORTFOLIO_VALUE)
    for q, sim in zip(params, stacked):
        alone = tl.simulate(w, p, portfolio_value=PORTFOLIO_VALUE, params=q)
        if sim.n_orders != alone.n_orders or not np.array_equal(sim.day_cash_after, alone.day_cash_after):
            raise SystemExit("a stacked combination differs from its separate simulation")
    one, one_cpu = min(wall["one simulation"]), min(cpu["one simulation"])
    return {"dates": dates, "symbols": symbols, "combinations": k, "load": loads,
            "orders": int(sum(s.n_orders for s in stacked)),
            "best": {n: min(t) for n, t in wall.items()}, "median": {n: float(np.median(t)) for n, t in wall.items()},
            "cpu_best": {n: min(t) for n, t in cpu.items()},
            "over_one_best": {n: min(t) / one for n, t in wall.items()},
            "over_one_median": {n: float(np.median(t)) / float(np.median(wall["one simulation"]))
                                for n, t in wall.items()},
            "over_one_cpu_best": {n: min(t) / one_cpu for n, t in cpu.items()}}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dates", type=int, default=250)
    ap.add_argument("--symbols", type=int, default=500)
    ap.add_argument("--combinations", type=int, default=64)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--no-separate", action="store_true", help="skip the K separate simulations")
    args = ap.parse_args(argv)
    out = measure(args.dates, args.symbols, args.combinations, args.repeat, not args.no_separate)
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
