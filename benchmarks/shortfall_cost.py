"""What the shortfall attribution costs next to ``simulate`` itself, in ONE process.

Run (from the repository root)::

    python -m benchmarks.shortfall_cost                      # 2,520 dates × 4,000 symbols, best/median of 5
    python -m benchmarks.shortfall_cost --dates 250 --symbols 500 --repeat 3      # quick

The date loop of ``simulate`` keeps none of the attribution: :attr:`Simulation.ledger` is built when first asked
for, by a second pass over the dates (:func:`tradeloop.workflows.history.replay_ledger`), when
:func:`tradeloop.workflows.shortfall.shortfall` (or ``save_simulation``) reads it. Measured per round:

* ``simulate``;
* ``shortfall(sim).by_cause`` on that simulation: the replay plus the frames.

attribution / simulate is the ratio; CPU seconds of the process are reported beside wall time (less sensitive to the
other processes of a shared machine), with the load average before and after. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

from benchmarks.run import PARAMS, PORTFOLIO_VALUE


def _timed(fn):
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - wall, time.process_time() - cpu


def measure(dates: int, symbols: int, repeat: int) -> np.ndarray:
    """Rows ``(simulate wall, shortfall wall, simulate CPU, shortfall CPU)`` per round."""
    import tradeloop as tl
    from tradeloop.workflows.history import simulate
    from tradeloop.workflows.shortfall import shortfall

    weights, prices = tl.synthetic_history(dates, symbols, seed=42)
    params = tl.RunParams.from_dict(PARAMS)
    rows = []
    for _ in range(repeat):
        sim, w_sim, c_sim = _timed(lambda: simulate(weights, prices, portfolio_value=PORTFOLIO_VALUE, params=params))
        _, w_sf, c_sf = _timed(lambda: shortfall(sim).by_cause)  # noqa: B023  (called at once)
        rows.append((w_sim, w_sf, c_sim, c_sf))
        del sim
    return np.array(rows)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dates", type=int, default=2520)
    ap.add_argument("--symbols", type=int, default=4000)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args(argv)
    load_before = os.getloadavg()[0]
    a = measure(args.dates, args.symbols, args.repeat)
    load_after = os.getloadavg()[0]
    print(f"simulate {args.dates:,} × {args.symbols:,}, {args.repeat} rounds; load average "
          f"{load_before:.2f} -> {load_after:.2f}")
    print("round  simulate  shortfall()   [wall s]   CPU s: simulate shortfall")
    for i, r in enumerate(a):
        print(f"{i + 1:5d}  {r[0]:8.3f} {r[1]:11.3f}              {r[2]:.3f} {r[3]:.3f}")
    for name, (s, f) in {"wall": (0, 1), "CPU": (2, 3)}.items():
        ratio = a[:, f] / a[:, s]
        print(f"attribution / simulate ({name}): best {ratio.min():.3f}, median {np.median(ratio):.3f}; from the best "
              f"times {a[:, f].min():.3f} / {a[:, s].min():.3f} = {a[:, f].min() / a[:, s].min():.3f}")


if __name__ == "__main__":
    main()
