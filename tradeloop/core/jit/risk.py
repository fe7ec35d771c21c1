"""The pre-trade risk step compiled: the post-trade book and the six original rules of :mod:`tradeloop.core.risk`.

Inputs are aligned rows (one per order slot). A limit is an array: empty when its rule is off, one value for every
row, or one value per row (a stacked sweep), NaN meaning "no limit for this row" (never exceeded). Per-book gross
exposure and per-(book, sector) exposure are sums in row order, the sums ``np.bincount(weights=)`` made.

Kernels:

* :func:`post_trade`: ``post`` (position after the order), ``post_w`` (its weight) and ``growing``;
* :func:`rules`: the rule mask per row and, when asked for, each rule's blocked flags and observed values;
* :func:`check_day`: the two in one call for the date loop, with the (book, sector) buckets and sector limits
  gathered inside, and the first held row without a sector returned for the caller to name.

The bits of the mask are the rules' bits in :mod:`tradeloop.core.codes` (0-5, in :data:`RULES` order).
"""

from __future__ import annotations

import numba  # noqa: F401  (kernel modules import numba; tradeloop.core.jit.kernel compiles with it)
import numpy as np

from ..codes import RISK_RULE, rows
from . import kernel

__all__ = ["RULES", "BITS", "post_trade", "rules", "check_day", "warm"]

#: The six original rules in check order; ``BITS[k]`` is rule k's bit in a risk mask.
RULES = ("max_order_notional", "max_position_ratio", "single_name_cap", "sector_cap", "max_gross_exposure",
         "no_short")
BITS = tuple(next(c.bit for c in rows(RISK_RULE) if c.name == r) for r in RULES)
_NOTIONAL, _POSITION, _NAME, _SECTOR, _GROSS, _SHORT = BITS
#: Rows of ``observed`` (:func:`rules`): order notional, |post weight|, sector exposure, gross exposure.
OBSERVED = ("notional", "weight", "sector", "gross")


@kernel
def _fill_post(is_order, price, pv, pv_codes, current, signed, post, post_w, growing):
    """``post = current + signed`` on order rows; ``post_w = post × price / pv`` (price 0 where missing; the row's
    pv is ``pv[pv_codes[i]]``, else ``pv[i]``, else the one ``pv[0]``); ``growing``: a priced order whose position
    grows in absolute size."""
    n = len(is_order)
    by_code = len(pv_codes) > 0
    one = len(pv) == 1
    for i in range(n):
        p = price[i]
        priced = not np.isnan(p)
        px = p if priced else 0.0
        q = current[i] + signed[i] if is_order[i] else current[i]
        post[i] = q
        j = pv_codes[i] if by_code else (0 if one else i)
        post_w[i] = q * px / pv[j]
        growing[i] = abs(q) > abs(current[i]) and is_order[i] and priced


@kernel
def _exceeds(x, lim, rtol):
    """``x > lim + rtol × |lim|``; NaN limit: False (:func:`tradeloop.core.tolerance.exceeds`)."""
    return x > lim + rtol * abs(lim)


@kernel
def _limit(lim, i):
    return lim[0] if len(lim) == 1 else lim[i]


@kernel
def rules(is_order, price, qty, signed, post, post_w, growing, codes, ngroups, name_cap, sec_codes, sector_lim,
          order_lim, pos_lim, gross_lim, no_short, rtol, mask, blocked, observed):
    """Write each row's rule bits into ``mask`` (uint8).

    ``name_cap`` / ``sec_codes`` + ``sector_lim`` / ``order_lim`` / ``pos_lim`` / ``gross_lim``: empty when the rule
    is off. ``blocked`` (6 × n bool, :data:`RULES` order) and ``observed`` (4 × n float, :data:`OBSERVED`; NaN for
    a rule that is off) are written when they have rows (else pass them with 0 rows).
    """
    n = len(is_order)
    detail = blocked.shape[0] > 0
    by_book = len(gross_lim) > 0
    sectors = len(sec_codes) > 0
    gross = np.zeros(ngroups if by_book else 0)
    nbuckets = 0
    for i in range(len(sec_codes)):
        nbuckets = max(nbuckets, sec_codes[i] + 1)
    exposure = np.zeros(nbuckets)
    for i in range(n):  # in row order: the sums np.bincount(weights=) made
        a = abs(post_w[i])
        if by_book:
            gross[codes[i]] += a
        if sectors:
            exposure[sec_codes[i]] += a
    for i in range(n):
        p = price[i]
        priced = not np.isnan(p)
        notional = qty[i] * (p if priced else 0.0)
        a = abs(post_w[i])
        g = growing[i]
        sector = exposure[sec_codes[i]] if sectors else np.nan
        book = gross[codes[i]] if by_book else np.nan
        h0 = len(order_lim) > 0 and _exceeds(notional, _limit(order_lim, i), rtol) and is_order[i] and priced
        h1 = len(pos_lim) > 0 and g and _exceeds(a, _limit(pos_lim, i), rtol)
        h2 = len(name_cap) > 0 and g and _exceeds(a, name_cap[i], rtol)
        h3 = sectors and g and _exceeds(sector, sector_lim[i], rtol)
        h4 = by_book and g and _exceeds(book, _limit(gross_lim, i), rtol)
        h5 = no_short and is_order[i] and signed[i] < 0 and post[i] < 0
        mask[i] = (h0 << _NOTIONAL) | (h1 << _POSITION) | (h2 << _NAME) | (h3 << _SECTOR) | (h4 << _GROSS) \
            | (h5 << _SHORT)
        if detail:
            blocked[0, i], blocked[1, i], blocked[2, i] = h0, h1, h2
            blocked[3, i], blocked[4, i], blocked[5, i] = h3, h4, h5
            observed[0, i], observed[1, i], observed[2, i], observed[3, i] = notional, a, sector, book


@kernel
def post_trade(is_order, price, pv, current, signed):
    """``(post, post_w, growing)`` of :func:`_fill_post`, ``pv`` one value or one per row."""
    n = len(is_order)
    post = np.empty(n, np.int64)
    post_w = np.empty(n)
    growing = np.empty(n, np.bool_)
    _fill_post(is_order, price, pv, np.empty(0, np.intp), current, signed, post, post_w, growing)
    return post, post_w, growing


@kernel
def check_day(is_order, price, qty, signed, current, pv, codes, ngroups, name_cap, sec, nsectors, sector_table,
              sector_offset, order_lim, pos_lim, gross_lim, no_short, rtol):
    """One date's risk step: ``(post, post_w, growing, mask, sec_codes, sector_lim, bad)``.

    ``pv`` per book (``codes``: each row's book). ``sec``: each row's sector code (``nsectors``: unknown; empty:
    no sector rule); its bucket is ``codes × (nsectors + 1) + sec`` and its limit ``sector_table[sec +
    sector_offset]`` (``sector_offset`` empty: 0). ``bad`` is the first row held or traded with an unknown sector
    (-1: none); the rules are not checked then.
    """
    n = len(is_order)
    post = np.empty(n, np.int64)
    post_w = np.empty(n)
    growing = np.empty(n, np.bool_)
    mask = np.zeros(n, np.uint8)
    _fill_post(is_order, price, pv, codes, current, signed, post, post_w, growing)
    m = n if len(sec) > 0 else 0
    sec_codes = np.empty(m, np.intp)
    sector_lim = np.empty(m)
    for i in range(m):
        s = sec[i]
        if s == nsectors and post[i] != 0:
            return post, post_w, growing, mask, sec_codes, sector_lim, i
        sec_codes[i] = codes[i] * (nsectors + 1) + s
        sector_lim[i] = sector_table[s + sector_offset[i] if len(sector_offset) > 0 else s]
    rules(is_order, price, qty, signed, post, post_w, growing, codes, ngroups, name_cap, sec_codes, sector_lim,
          order_lim, pos_lim, gross_lim, no_short, rtol, mask, np.empty((0, n), np.bool_), np.empty((0, n)))
    return post, post_w, growing, mask, sec_codes, sector_lim, -1


def warm() -> None:
    """Compile (or load) every kernel with the dtypes :mod:`tradeloop.core.risk` passes."""
    from ..risk import RiskLimits, check_orders, post_trade as post, risk_checks

    n = 3
    is_order = np.array([True, True, False])
    price = np.array([10.0, np.nan, 5.0])
    qty = np.array([4, 2, 0], dtype=np.int64)
    signed = np.array([4, -2, 0], dtype=np.int64)
    current = np.array([0, 1, 3], dtype=np.int64)
    codes = np.zeros(n, dtype=np.intp)
    limits = RiskLimits(max_order_notional=10.0, max_position_ratio=0.1, single_name_caps={"A": 0.1},
                        sector_cap=0.2, max_gross_exposure=1.0)
    p, w, g = post(is_order, price, 100.0, current, signed)
    risk_checks(limits, is_order=is_order, price=price, qty=qty, signed=signed, post=p, post_w=w, growing=g,
                codes=codes, ngroups=1, name_cap=np.full(n, 0.1), sec_codes=codes, sector_lim=np.full(n, 0.2))
    check_orders(limits, is_order=is_order, price=price, qty=qty, signed=signed, current=current,
                 pv=np.array([100.0]), codes=codes, ngroups=1, name_cap=np.full(n, 0.1), sec=np.zeros(n, np.intp),
                 nsectors=1, sector_table=np.array([0.2, np.nan]))
