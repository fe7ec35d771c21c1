"""Rebalancing controls: the fast path of ``simulate`` before / after, in ONE process, and the time with every control.

Run (from the repository root)::

    python -m benchmarks.controls_compare                       # base main, 2,520 dates × 4,000 symbols
    python -m benchmarks.controls_compare --base a47a215 --dates 250 --symbols 500 --out /tmp/c.md

``--base`` (a git revision) is imported as ``tradeloop_base`` (the loader of :mod:`benchmarks.single_run_compare`).
Measured, alternating base and new so both see the same load: ``simulate`` on the synthetic history with the
benchmark's params (no rebalancing control set: the fast path), best and median of ``--repeat`` runs, wall clock and
CPU seconds; both must give the same simulation id and orders. Then the new version with every control set
(:data:`CONTROLS`, ``adv`` = 20 × the synthetic volume). The load average is printed beside the numbers.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.run import PARAMS, PORTFOLIO_VALUE, ROOT
from benchmarks.single_run_compare import _load_base

#: Every rebalancing control (each with its default action), on top of the benchmark's params.
CONTROLS = {"min_order_notional": 500.0, "min_order_qty": 5, "no_trade_band": 0.0001, "no_trade_band_relative": 0.02,
            "max_turnover": 0.5, "restricted": {"no_buy": ["S00001", "S00002"], "no_trade": ["S00003"]},
            "max_adv_participation": 0.1, "max_orders": 3_000}


def _time(fn, repeat: int, names: list, runs: dict) -> dict:
    times = {k: [] for k in names}
    cpu = {k: [] for k in names}
    out = {}
    for i in range(repeat):
        for k in (names if i % 2 == 0 else names[::-1]):
            t0, c0 = time.perf_counter(), time.process_time()
            sim = fn(k)
            times[k].append(time.perf_counter() - t0)
            cpu[k].append(time.process_time() - c0)
            out[k] = (sim.simulation_id, sim.n_orders) if runs.get(k) else sim.n_orders
            del sim
    return {"times": times, "cpu": cpu, "ids": out}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--base", default="main")
    ap.add_argument("--dates", type=int, default=2520)
    ap.add_argument("--symbols", type=int, default=4000)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "controls_compare.md")
    args = ap.parse_args(argv)

    import tradeloop as new

    weights, prices = new.synthetic_history(args.dates, args.symbols, seed=42)
    prices = prices.assign(adv=prices["volume"] * 20.0) if "volume" in prices else prices.assign(adv=1e6)
    with tempfile.TemporaryDirectory() as tmp:
        versions = {"base": _load_base(args.base, Path(tmp) / "src"), "new": new}
        params = {k: m.RunParams.from_dict(PARAMS) for k, m in versions.items()}
        loads = [os.getloadavg()[0]]
        fast = _time(lambda k: versions[k].simulate(weights, prices.drop(columns="adv"),
                                                    portfolio_value=PORTFOLIO_VALUE, params=params[k]),
                     args.repeat, ["base", "new"], {"base": 1, "new": 1})
        loads.append(os.getloadavg()[0])
    if len(set(fast["ids"].values())) != 1:
        raise SystemExit(f"the versions disagree: {fast['ids']}")
    full = new.RunParams.from_dict({**PARAMS, "risk": {**PARAMS["risk"], **CONTROLS}})
    ctl = _time(lambda k: new.simulate(weights, prices, portfolio_value=PORTFOLIO_VALUE, params=full),
                max(2, args.repeat // 2), ["controls"], {})
    loads.append(os.getloadavg()[0])
    t, c = fast["times"], fast["cpu"]
    rows = [
        "# Rebalancing controls: simulate before / after (one process, alternating)",
        "",
        f"base = `{args.base}` (imported as `tradeloop_base`), new = this checkout; {os.cpu_count()} cores. "
        f"Load average (1 min) before / after the fast-path runs / after the controls runs: "
        f"{' / '.join(f'{x:.2f}' for x in loads)} (shared machine: both versions see the same load).",
        "",
        "| measurement | base | new | new / base |",
        "|---|---|---|---|",
        f"| fast path {args.dates:,} × {args.symbols:,}, best of {args.repeat} | {min(t['base']):.2f} s | "
        f"{min(t['new']):.2f} s | {min(t['new']) / min(t['base']):.3f} |",
        f"| fast path, median | {np.median(t['base']):.2f} s | {np.median(t['new']):.2f} s | "
        f"{np.median(t['new']) / np.median(t['base']):.3f} |",
        f"| fast path, CPU seconds, best | {min(c['base']):.2f} s | {min(c['new']):.2f} s | "
        f"{min(c['new']) / min(c['base']):.3f} |",
        f"| fast path, CPU seconds, median | {np.median(c['base']):.2f} s | {np.median(c['new']):.2f} s | "
        f"{np.median(c['new']) / np.median(c['base']):.3f} |",
        f"| every control set ({ctl['ids']['controls']:,} orders), best of {len(ctl['times']['controls'])} | | "
        f"{min(ctl['times']['controls']):.2f} s | {min(ctl['times']['controls']) / min(t['new']):.3f} of the fast path |",
        f"| every control set, CPU seconds, best / median | | {min(ctl['cpu']['controls']):.2f} s / "
        f"{np.median(ctl['cpu']['controls']):.2f} s | {min(ctl['cpu']['controls']) / min(c['new']):.3f} of the fast path |",
        "",
        "All times (wall): " + "; ".join(f"{k} " + ", ".join(f"{x:.2f}" for x in v)
                                          for k, v in {**t, **ctl["times"]}.items()) + ".",
        "All times (CPU): " + "; ".join(f"{k} " + ", ".join(f"{x:.2f}" for x in v)
                                         for k, v in {**c, **ctl["cpu"]}.items()) + ".",
        "",
    ]
    text = "\n".join(rows)
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)


if __name__ == "__main__":
    main()
