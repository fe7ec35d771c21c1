"""The order-sizing kernel: the arithmetic of :func:`tradeloop.core.sizing.size_orders`, compiled.

One pass over the rows rounds each target to whole lots and accumulates each group's holdings, sell proceeds and buy
costs (sequential sums in row order, as ``numpy.bincount`` does); one pass over the groups gives the cash and the
trim factor; a last pass over the rows trims the buys of the groups that need it. The float operations are those of
the numpy formulas they replaced, in the same order. Errors come back as a status and a row for the caller to name.
"""

from __future__ import annotations

import numba  # a kernel module: imported where sizing is first used, never by ``import tradeloop``
import numpy as np
from numba import types

from ..tolerance import FLOOR_ATOL, LIMIT_RTOL
from ..validate import MAX_QTY
from . import kernel

__all__ = ["OK", "NOT_EXACT", "CASH_NOT_FINITE", "BAD_GROUP", "size_book", "warm"]

#: Statuses :func:`size_book` returns.
OK, NOT_EXACT, CASH_NOT_FINITE, BAD_GROUP = 0, 1, 2, 3
#: Rows of the ``parts`` array: each group's cash, sell proceeds, buy costs and cash available for buys.
CASH, SELLS, BUYS, AVAILABLE = 0, 1, 2, 3

_MAX_QTY = float(MAX_QTY)
_TRIM_SLACK = 1.0 + LIMIT_RTOL


@kernel
def _lots(weight, price, lot, current, codes, group_pv, target, delta, untrimmed, missing, parts):
    """Lot-rounded targets (``target``, float, signed), the trade ``delta`` and ``untrimmed`` per row, and each
    group's held value, sell proceeds and buy costs summed in row order into ``parts``. Returns ``(status, row)``:
    the first row whose target is not exact, or whose group is out of range."""
    ngroups = parts.shape[1]
    bad = -1
    for i in range(len(weight)):
        g = codes[i]
        if g < 0 or g >= ngroups:
            return BAD_GROUP, i
        w, p = weight[i], price[i]
        miss = np.isnan(p)
        t = abs(w * group_pv[g])
        t = t / p
        t = t / lot[i]
        t = np.floor(t + FLOOR_ATOL) * lot[i]
        t = np.copysign(t, w)
        target[i] = t
        missing[i] = miss
        if miss:  # unknown size: target 0 for a zero weight, else left as it is (the order is rejected later)
            q = current[i] if w != 0 else 0
            p = 0.0
        elif abs(t) < _MAX_QTY:
            q = np.int64(t)
        else:  # not finite or beyond 2**53 shares
            if bad < 0:
                bad = i
            q = 0
        d = q - current[i]
        delta[i] = d
        untrimmed[i] = abs(d)
        parts[CASH, g] += current[i] * p
        value = d * p
        if not value >= 0.0:  # np.minimum(value, 0.0): NaN propagates
            parts[SELLS, g] += value
        if not value <= 0.0:  # np.maximum(value, 0.0)
            parts[BUYS, g] += value
    return (NOT_EXACT, bad) if bad >= 0 else (OK, -1)


@kernel
def _trim_factors(group_pv, group_cash, derive_cash, cash_buffer, buffers, parts, over, factor):
    """Each group's cash (given, or its value minus its holdings), sell proceeds, cash available after the buffer,
    whether its buys exceed that and by which factor to scale them. Returns whether every amount is finite and
    whether any group is over."""
    finite, any_over = True, False
    for g in range(parts.shape[1]):
        cash = group_pv[g] - parts[CASH, g] if derive_cash else group_cash[g]
        sells = 0.0 - parts[SELLS, g]
        buys = parts[BUYS, g]
        buffer = buffers[g] if len(buffers) else cash_buffer
        available = cash + sells - buffer * group_pv[g]
        parts[CASH, g], parts[SELLS, g], parts[AVAILABLE, g] = cash, sells, available
        finite &= np.isfinite(cash) and np.isfinite(sells) and np.isfinite(buys) and np.isfinite(available)
        over[g] = buys > available + LIMIT_RTOL * abs(available)  # tolerance.exceeds
        if over[g]:
            any_over = True
            factor[g] = (available if available > 0.0 else 0.0) / (buys if buys > 0.0 else 1.0)
        else:
            factor[g] = 1.0
    return finite, any_over


def _array(dtype, ndim=1, readonly=True):
    return types.Array(dtype, ndim, "C", readonly=readonly)


_F8, _I8, _B1 = types.float64, types.int64, types.boolean
_IN_F8, _IN_I8, _OUT_F8, _OUT_I8 = _array(_F8), _array(_I8), _array(_F8, readonly=False), _array(_I8, readonly=False)
#: The one signature: inputs typed read-only, so a writable array (converted for free) and a read-only one (pandas
#: hands those out) share it; any other dtype, dimension or layout is refused instead of compiled again.
SIGNATURE = types.UniTuple(_I8, 2)(
    _IN_F8, _IN_F8, _IN_I8, _IN_I8, _array(numba.from_dtype(np.intp)), _IN_F8, _IN_F8, _B1, _F8, _IN_F8,
    _OUT_F8, _OUT_I8, _OUT_I8, _array(_B1, readonly=False), _array(_F8, 2, readonly=False),
)


@kernel(signature_or_function=SIGNATURE)
def size_book(weight, price, lot, current, codes, group_pv, group_cash, derive_cash, cash_buffer, buffers,
              target, delta, untrimmed, missing, parts):
    """Size every row (see :func:`tradeloop.core.sizing.size_orders`): fills ``target`` (the float target before the
    exactness check), ``delta``, ``untrimmed``, ``missing`` and ``parts`` (zeros on entry, shape (4, ngroups));
    ``group_cash`` is read unless ``derive_cash``; ``buffers`` is each group's cash buffer, or empty: then
    ``cash_buffer`` is every group's.
    Returns ``(status, row)``: :data:`OK`, :data:`NOT_EXACT` (``row`` the first such row), :data:`CASH_NOT_FINITE`
    or :data:`BAD_GROUP` (``row`` the row)."""
    status, row = _lots(weight, price, lot, current, codes, group_pv, target, delta, untrimmed, missing, parts)
    if status != OK:
        return status, row
    ngroups = parts.shape[1]
    over = np.empty(ngroups, dtype=np.bool_)
    factor = np.empty(ngroups)
    finite, any_over = _trim_factors(group_pv, group_cash, derive_cash, cash_buffer, buffers, parts, over, factor)
    if not finite:
        return CASH_NOT_FINITE, -1
    if any_over:  # floor in lots, a quotient within the tolerance below a whole lot counting as that lot
        for i in range(len(delta)):
            g = codes[i]
            if delta[i] > 0 and over[g]:
                x = delta[i] * factor[g]
                x = x / lot[i]
                x = x * _TRIM_SLACK
                delta[i] = np.int64(np.floor(x) * lot[i])
    return OK, -1


def warm() -> None:
    """Compile (or load from the disk cache) :func:`size_book` for the dtypes :mod:`tradeloop.core.sizing` passes."""
    from ..sizing import size_orders

    one = np.ones(1)
    size_orders(one / 2, one, np.ones(1, np.int64), np.zeros(1, np.int64), np.zeros(1, np.intp), one * 10, None, 0.0)
