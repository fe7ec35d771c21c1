"""The book after a date's fills, compiled: holdings and cash carried to the next date, and the day's exposures.

:func:`settle` is the last step of a date of :func:`tradeloop.workflows.history.simulate`: the fills move the
holdings and the cash of their portfolio, and the holdings marked to market give each portfolio's gross and net
exposure and its number of positions. Every per-portfolio sum runs in slot order, the way ``np.bincount(weights=)``
adds (so one portfolio, several portfolios, a partition of them and the books of a stacked sweep all add alike).
"""

from __future__ import annotations

import numpy as np

from . import kernel

__all__ = ["settle", "warm"]


@kernel
def settle(hold, cash, rows, sell, filled, flow, group, marks, cash_after, gross, net, npos):
    """Apply one date's fills in place: ``hold[rows] ±= filled`` (SELL −), ``cash_after = cash + Σ flow`` per
    portfolio (``group`` of each slot); then per portfolio Σ|hold × mark|, Σ hold × mark and the count of
    non-zero holdings into ``gross``, ``net``, ``npos``."""
    P = len(cash)
    for p in range(P):
        cash_after[p] = 0.0
        gross[p] = 0.0
        net[p] = 0.0
        npos[p] = 0
    for k in range(len(rows)):
        i = rows[k]
        cash_after[group[i]] += flow[k]
        hold[i] += -filled[k] if sell[k] else filled[k]
    for p in range(P):
        cash_after[p] = cash[p] + cash_after[p]
    for i in range(len(hold)):
        g = group[i]
        value = hold[i] * marks[i]
        gross[g] += abs(value)
        net[g] += value
        if hold[i] != 0:
            npos[g] += 1


def warm() -> None:
    """Compile (or load) :func:`settle` for the dtypes the date loop passes."""
    P = np.zeros(1)
    settle(np.zeros(2, dtype=np.int64), P, np.zeros(1, dtype=np.intp), np.zeros(1, dtype=np.bool_),
           np.zeros(1, dtype=np.int64), np.zeros(1), np.zeros(2, dtype=np.intp), np.ones(2), np.zeros(1), np.zeros(1),
           np.zeros(1), np.zeros(1, dtype=np.int64))
