"""What the shortfall attribution costs next to ``simulate`` itself, in ONE process, alternating.

Run (from the repository root)::

    python -m benchmarks.shortfall_cost                      # 2,520 dates × 4,000 symbols, best/median of 5
    python -m benchmarks.shortfall_cost --dates 250 --symbols 500 --repeat 3      # quick

The attribution rides on the simulation's own date loop (:class:`tradeloop.core.shortfall.PeriodLedger`: the
dense causes of every slot, the causes and costs of the date's orders); :func:`tradeloop.workflows.shortfall.shortfall`
then only builds its frames. Measured per round, alternating so both see the same load:

* ``simulate`` as shipped (with the in-loop part);
* ``simulate`` with the in-loop part switched off (a do-nothing ledger and order gap patched in);
* ``shortfall(sim)`` on the simulation of the first.

attribution = (with − without) + shortfall; the ratio is attribution / without. CPU seconds of the process are
reported too (less sensitive to the other processes of a shared machine), and the load average before and after.
Nothing is asserted.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

from benchmarks.run import PARAMS, PORTFOLIO_VALUE


class _NoLedger:
    """A ledger that records nothing (what simulate cost before the attribution)."""

    def __init__(self, *args, **kwargs):
        pass

    def period(self, next_mark, borrow=None):
        pass

    def decision(self, *args, **kwargs):
        pass


def _timed(fn):
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - wall, time.process_time() - cpu


def measure(dates: int, symbols: int, repeat: int) -> dict:
    import tradeloop as tl
    from tradeloop.workflows import history
    from tradeloop.workflows.shortfall import shortfall

    weights, prices = tl.synthetic_history(dates, symbols, seed=42) if hasattr(tl, "synthetic_history") else \
        __import__("tradeloop.core.synthetic", fromlist=["x"]).synthetic_history(dates, symbols, seed=42)
    params = tl.RunParams.from_dict(PARAMS)
    real_ledger, real_path = history.PeriodLedger, history.OrderPath

    def without():
        history.PeriodLedger, history.OrderPath = _NoLedger, lambda *a, **kw: None
        try:
            return history.simulate(weights, prices, portfolio_value=PORTFOLIO_VALUE, params=params)
        finally:
            history.PeriodLedger, history.OrderPath = real_ledger, real_path

    def with_attribution():
        sim, w_with, c_with = _timed(lambda: history.simulate(weights, prices, portfolio_value=PORTFOLIO_VALUE,
                                                              params=params))
        _, w_post, c_post = _timed(lambda: shortfall(sim).by_cause)
        return w_with, w_post, c_with, c_post

    def no_attribution():
        _, w_without, c_without = _timed(without)  # the simulation is dropped before the next measurement
        return w_without, c_without

    rows = []
    for i in range(repeat):  # alternate which goes first: the second of a pair runs on a warmer (or fuller) heap
        if i % 2:
            w_without, c_without = no_attribution()
            w_with, w_post, c_with, c_post = with_attribution()
        else:
            w_with, w_post, c_with, c_post = with_attribution()
            w_without, c_without = no_attribution()
        rows.append((w_with, w_without, w_post, c_with, c_without, c_post))
    a = np.array(rows)
    ratio_wall = (a[:, 0] - a[:, 1] + a[:, 2]) / a[:, 1]
    ratio_cpu = (a[:, 3] - a[:, 4] + a[:, 5]) / a[:, 4]
    return {"rounds": a, "ratio_wall": ratio_wall, "ratio_cpu": ratio_cpu, "orders": None}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dates", type=int, default=2520)
    ap.add_argument("--symbols", type=int, default=4000)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args(argv)
    load_before = os.getloadavg()[0]
    out = measure(args.dates, args.symbols, args.repeat)
    load_after = os.getloadavg()[0]
    a = out["rounds"]
    print(f"simulate {args.dates:,} × {args.symbols:,}, {args.repeat} alternating rounds; load average "
          f"{load_before:.2f} -> {load_after:.2f}")
    print("round  simulate(with) simulate(without) shortfall()   [wall s]   CPU s: with without shortfall")
    for i, r in enumerate(a):
        print(f"{i + 1:5d}  {r[0]:14.3f} {r[1]:17.3f} {r[2]:11.3f}              {r[3]:.3f} {r[4]:.3f} {r[5]:.3f}")
    for name in ("wall", "cpu"):
        x = out[f"ratio_{name}"]
        print(f"attribution / simulate ({name}): best {x.min():.3f}, median {np.median(x):.3f}")
    best = a.min(axis=0)
    print(f"from the best times (wall): ({best[0]:.3f} - {best[1]:.3f} + {best[2]:.3f}) / {best[1]:.3f} = "
          f"{(best[0] - best[1] + best[2]) / best[1]:.3f}; CPU: {(best[3] - best[4] + best[5]) / best[4]:.3f}")


if __name__ == "__main__":
    main()
