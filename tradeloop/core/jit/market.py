"""A date's market, compiled: the weight, price, lot, mark and sector of every slot, and the borrow charged.

A simulation keeps its inputs as rows sorted by date (:class:`tradeloop.workflows.history.HistoryInputs`);
:func:`market_day` spreads one date's rows over the (portfolio, symbol) slots, carrying each symbol's last known
price (its mark) and sector forward. :func:`borrow` is the cost of the shorts held into a date. Both are the only
implementations of their steps: the Python date loops and the compiled one call them alike.
"""

from __future__ import annotations

import numba  # noqa: F401  (kernel modules import numba; the package does not)
import numpy as np

from . import kernel

__all__ = ["market_day", "spread", "borrow", "warm"]


@kernel
def spread(values, a, b, psym, fill, S, out):
    """One date's price rows ``a`` to ``b`` over the slots (``out``: P × S, portfolio-major): ``values[r]`` at
    symbol ``psym[r]``, ``fill`` where a symbol has no row, every portfolio's slots alike."""
    out[:S] = fill
    for r in range(a, b):
        out[psym[r]] = values[r]
    for first in range(S, len(out), S):
        out[first:first + S] = out[:S]


@kernel
def market_day(t, wvalue, wbounds, wpos, dense_w, pprice, plot, psec, psym, pbounds, lot_size, last_px, last_sec,
               weight, price, lot, mark, marks, sec):
    """Fill date ``t``'s slot vectors (length P × S, portfolio-major): ``weight`` (0 without a row), ``price``
    (NaN without one), ``lot`` (``lot_size`` without one), ``mark`` (the last known price, NaN if never priced), ``marks`` (the mark, 0 if never priced: what
    holdings are valued at) and ``sec`` (the last known sector code; ``last_sec``'s fill if never known). ``last_px`` / ``last_sec`` (per
    symbol) are carried in place."""
    S, N = len(last_px), len(weight)
    wa, wb = wbounds[t], wbounds[t + 1]
    if dense_w:  # every slot has its row, in order
        for i in range(N):
            weight[i] = wvalue[wa + i]
    else:
        weight[:] = 0.0
        for r in range(wa, wb):
            weight[wpos[r]] = wvalue[r]
    pa, pb = pbounds[t], pbounds[t + 1]
    spread(pprice, pa, pb, psym, np.nan, S, price)
    spread(plot, pa, pb, psym, lot_size, S, lot)
    for r in range(pa, pb):
        s = psym[r]
        if not np.isnan(pprice[r]):
            last_px[s] = pprice[r]
        if psec[r] >= 0:
            last_sec[s] = psec[r]
    for s in range(S):
        px = last_px[s]
        mark[s], marks[s], sec[s] = px, 0.0 if np.isnan(px) else px, last_sec[s]
    for first in range(S, N, S):  # the other portfolios' slots repeat the first's
        mark[first:first + S] = mark[:S]
        marks[first:first + S] = marks[:S]
        sec[first:first + S] = sec[:S]


@kernel
def borrow(hold, marks, group, rate, days, per_book, per_slot):
    """The borrow charged on a date: per slot ``|short value| × rate × days / 365`` (``rate`` = bps per year / 1e4,
    the short value ``min(hold, 0) × mark``), and per book its slots' short value summed in slot order, charged
    alike; into ``per_book`` / ``per_slot`` (``per_slot`` may be empty: not asked)."""
    f = days / 365.0
    per_book[:] = 0.0
    slots = len(per_slot) > 0
    for i in range(len(hold)):
        value = np.float64(min(hold[i], 0)) * marks[i]
        per_book[group[i]] += value
        if slots:
            per_slot[i] = -value * rate * f
    for g in range(len(per_book)):
        per_book[g] = -per_book[g] * rate * f


def warm() -> None:
    """Compile (or load) the kernels for the types the date loops pass: a tiny simulation on the stepwise path (a
    liquidity model that never caps) with borrowing, so ``market_day``, ``spread`` and ``borrow`` are called from
    Python exactly as :mod:`tradeloop.workflows.history` calls them (the compiled loop's own calls: ``day.warm``)."""
    import tradeloop as tl

    w, p = tl.synthetic_history(2, 3, seed=1)
    p["volume"] = 1e12
    params = {"borrow_bps_per_year": 100.0, "risk": {"allow_short": True},
              "liquidity": {"model": "VolumeParticipation", "max_rate": 1.0}, "steps": 1}
    tl.simulate(w.assign(weight=-w["weight"]), p, portfolio_value=1e6, params=tl.RunParams.from_dict(params))
