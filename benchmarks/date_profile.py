"""Where a date of the compiled loop goes: each compiled step timed alone on one date's inputs, and the loop per date.

Run (from the repository root)::

    python -m benchmarks.date_profile --size small      # 250 × 500; --size large: 2,520 × 4,000

The loop (:func:`tradeloop.core.jit.day.run_dates`) calls its steps inside compiled code, where no profiler sees
them. So one simulation runs with a commission model of its own (a subclass of the built-in ``BpsCommission``, same
fees), which makes the loop hand every date to the Python side, whose compiled calls are recorded on date
``--date``; each step is then timed alone on those inputs (CPU best of 5 × ``--calls``), beside the whole loop's CPU
time per date in an ordinary ``simulate`` and the input checks. Nothing is asserted; the load average is printed.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import time

import numpy as np

from benchmarks.run import PARAMS, PORTFOLIO_VALUE, SIZES


def _best(fn, calls: int) -> float:
    fn()
    best = float("inf")
    for _ in range(5):
        t0 = time.process_time()
        for _ in range(calls):
            fn()
        best = min(best, (time.process_time() - t0) / calls)
    return best


def _recorded(module, name: str, date: int, seen: dict):
    """Wrap ``module.name`` to keep a copy of its arguments on its ``date``-th call."""
    inner = getattr(module, name)

    def spy(*args):
        seen[name] = seen.get(name, 0) + 1
        if seen[name] == date:
            seen[name, "args"] = [a.copy() if isinstance(a, np.ndarray) else a for a in args]
        return inner(*args)

    setattr(module, name, spy)
    return inner


def _loop_share(day, history, run, repeat: int) -> tuple[float, float, float]:
    """CPU best of ``simulate``, and the input checks' and the compiled loop's CPU per simulation."""
    spent = {"prepare": 0.0, "loop": 0.0}
    timed = {"loop": (day, "run_dates"), "prepare": (history, "prepare_history")}
    inner = {k: getattr(m, n) for k, (m, n) in timed.items()}
    for key, (module, name) in timed.items():
        def wrapper(*a, _key=key, **k):
            t0 = time.process_time()
            out = inner[_key](*a, **k)
            spent[_key] += time.process_time() - t0
            return out
        setattr(module, name, wrapper)
    run()
    spent.update(prepare=0.0, loop=0.0)
    total = _best(run, repeat)
    for key, (module, name) in timed.items():
        setattr(module, name, inner[key])
    calls = 5 * repeat + 1
    return total, spent["prepare"] / calls, spent["loop"] / calls


def measure(size: str, date: int, calls: int) -> dict:
    import tradeloop as tl
    import tradeloop.core.jit as jit
    from tradeloop.core.jit import day, execution, market, risk, sizing
    from tradeloop.workflows import history

    jit.warm()
    D, S = SIZES[size]
    weights, prices = tl.synthetic_history(D, S, seed=42)
    params = tl.RunParams.from_dict(PARAMS)
    total, prepare, loop = _loop_share(day, history, lambda: tl.simulate(
        weights, prices, portfolio_value=PORTFOLIO_VALUE, params=params), 20 if D * S < 10**6 else 2)

    class OwnBps(tl.BpsCommission):
        """The built-in fees from a type of its own: the loop hands every date to Python."""

    seen: dict = {}
    steps = {name: _recorded(module, name, date, seen) for module, name in
             ((day, "step_date"), (day, "close_date"), (market, "market_day"))}
    try:
        own = dataclasses.replace(params, commission=OwnBps(params.commission.bps))
        tl.simulate(weights, prices, portfolio_value=PORTFOLIO_VALUE, params=own)
    finally:
        for (module, name) in ((day, "step_date"), (day, "close_date"), (market, "market_day")):
            setattr(module, name, steps[name])
    a = seen["step_date", "args"]
    out = steps["step_date"](*a)
    weight, price, lot, hold, group, pv0, _, _, cash, derive, buffer, buffers, name_cap, sec, nsec, table, offset, \
        order_lim, pos_lim, gross_lim, no_short, rtol = a[:22]
    N, P, pv, delta = len(weight), len(pv0), out[9], out[7][0]
    is_order, qty = delta != 0, np.abs(delta)
    rows = np.flatnonzero(is_order)
    m = len(rows)

    def size_book():
        parts = np.zeros((4, P))
        sized = np.empty((2, N), dtype=np.int64)
        return sizing.size_book(weight, price, lot, hold, group, pv, cash, derive, buffer, buffers, np.empty(N),
                                sized[0], sized[1], np.empty(N, dtype=np.bool_), parts)

    def execute():
        status = execution.start_status(np.zeros(m, dtype=np.uint8), np.empty(0, dtype=np.bool_))
        return execution.step(status, qty[rows], np.zeros(m, dtype=np.int64), price[rows], delta[rows] < 0,
                              np.empty(0), np.empty(0, dtype=np.bool_), np.empty(0), price[rows], np.empty(0), True)

    def close():
        c = list(seen["close_date", "args"])
        c[8], c[15] = c[8].copy(), np.zeros(1, dtype=np.int64)  # holdings and the row counter: fresh each call
        return steps["close_date"](*c)

    parts = {
        "market_day": lambda: steps["market_day"](*seen["market_day", "args"]),
        "step_date": lambda: steps["step_date"](*a),
        "  size_book": size_book,
        "  check_day": lambda: risk.check_day(is_order, price, qty, delta, hold, pv, group, P, name_cap, sec, nsec,
                                              table, offset, order_lim, pos_lim, gross_lim, no_short, rtol),
        "  start_status + step": execute,
        "close_date": close,
        "an empty compiled call": lambda: day._no_detail(),
    }
    return {"size": size, "D": D, "S": S, "orders_that_date": m, "load": os.getloadavg()[0], "simulate_cpu": total,
            "input_checks": prepare, "loop_per_date": loop / D,
            "steps_us": {k: _best(fn, calls) * 1e6 for k, fn in parts.items()}}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", default="small", choices=sorted(SIZES))
    ap.add_argument("--date", type=int, default=50, help="the date whose inputs the steps are timed on (1-based)")
    ap.add_argument("--calls", type=int, default=200)
    r = measure(**vars(ap.parse_args(argv)))
    print(f"{r['D']:,} × {r['S']:,}, load {r['load']:.1f}, {r['orders_that_date']:,} orders that date")
    print(f"simulate CPU best {r['simulate_cpu'] * 1e3:.1f} ms: input checks {r['input_checks'] * 1e3:.1f} ms, "
          f"compiled loop {r['loop_per_date'] * 1e6:.1f} µs a date")
    for name, us in r["steps_us"].items():
        print(f"| {name} | {us:.1f} µs |")


if __name__ == "__main__":
    main()
