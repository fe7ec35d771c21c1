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

__all__ = ["RULES", "BITS", "post_trade", "rules", "check_day", "decisions", "warm"]

#: The six original rules in check order; ``BITS[k]`` is rule k's bit in a risk mask.
RULES = ("max_order_notional", "max_position_ratio", "single_name_cap", "sector_cap", "max_gross_exposure",
         "no_short")
BITS = tuple(next(c.bit for c in rows(RISK_RULE) if c.name == r) for r in RULES)
_NOTIONAL, _POSITION, _NAME, _SECTOR, _GROSS, _SHORT = BITS
BITS_ARRAY = np.array(BITS, dtype=np.uint8)
assert list(BITS) == sorted(BITS), "the six rules are checked and explained in bit order"
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
def _threshold(lim, rtol):
    """What a value must exceed to breach ``lim``: ``lim + rtol × |lim|`` (:func:`tradeloop.core.tolerance.exceeds`;
    NaN, no limit, is never exceeded)."""
    return lim + rtol * abs(lim)


@kernel
def _per_row(lim, rtol):
    """``(threshold of the one limit, is it one per row)``; an empty ``lim`` (rule off) is NaN (no limit)."""
    if len(lim) == 0:
        return np.nan, False
    if len(lim) == 1:
        return _threshold(lim[0], rtol), False
    return np.nan, True


@kernel
def _book_sums(post_w, codes, ngroups):
    """Σ |post_w| per book in row order; a run of rows of one book sums in a register (the same additions in the
    same order as ``np.bincount(codes, weights=abs(post_w))``)."""
    out = np.zeros(ngroups)
    n = len(post_w)
    if n == 0:
        return out
    book = codes[0]
    acc = 0.0
    for i in range(n):
        c = codes[i]
        if c != book:
            out[book] = acc
            book = c
            acc = out[c]
        acc += abs(post_w[i])
    out[book] = acc
    return out


@kernel
def _row_flags(notional, a, priced, order, g, short, t_order, t_pos, t_name):
    """The bits of the rules on the row alone (thresholds: :func:`_threshold`)."""
    return ((((notional > t_order) & order & priced) << _NOTIONAL) | ((g & (a > t_pos)) << _POSITION)
            | ((g & (a > t_name)) << _NAME) | (short << _SHORT))


@kernel
def _sum_flags(g, sector, book, t_sector, t_gross):
    """The bits of the rules on sums (sector and book gross exposure)."""
    return ((g & (sector > t_sector)) << _SECTOR) | ((g & (book > t_gross)) << _GROSS)


@kernel
def rules(is_order, price, qty, signed, post, post_w, growing, codes, ngroups, name_cap, sec_codes, sector_lim,
          order_lim, pos_lim, gross_lim, no_short, rtol, mask, blocked, observed):
    """Write each row's rule bits into ``mask`` (uint8).

    ``name_cap``, ``order_lim``, ``pos_lim``, ``gross_lim``: one value for every row or one per row (NaN: none),
    empty when the rule is off; ``sec_codes`` + ``sector_lim`` (per row): empty when the sector rule is off.
    ``blocked`` (6 × n bool, :data:`RULES` order) and ``observed`` (4 × n float, :data:`OBSERVED`; NaN for a rule
    that is off) are written when they have rows (else pass them with 0 rows).
    """
    n = len(is_order)
    gross = _book_sums(post_w, codes, ngroups) if len(gross_lim) > 0 else np.empty(0)
    nbuckets = 0
    for i in range(len(sec_codes)):
        nbuckets = max(nbuckets, sec_codes[i] + 1)
    exposure = np.zeros(nbuckets)
    for i in range(len(sec_codes)):  # in row order: the sums np.bincount(weights=) made
        exposure[sec_codes[i]] += abs(post_w[i])
    t_order, per_order = _per_row(order_lim, rtol)
    t_pos, per_pos = _per_row(pos_lim, rtol)
    t_name, per_name = _per_row(name_cap, rtol)
    t_gross, per_gross = _per_row(gross_lim, rtol)
    sectors, by_book = len(sec_codes) > 0, len(gross) > 0
    # Loops with no branch and no gather vectorize: the rules on the row alone first (one limit for all rows keeps
    # the thresholds out of the loop), then the rules on sums, then the details; helpers get scalars only (an array
    # argument costs reference counting per row).
    if not (per_order or per_pos or per_name or per_gross):
        for i in range(n):
            p = price[i]
            priced = not np.isnan(p)
            mask[i] = _row_flags(qty[i] * (p if priced else 0.0), abs(post_w[i]), priced, is_order[i], growing[i],
                                 no_short & is_order[i] & (signed[i] < 0) & (post[i] < 0), t_order, t_pos, t_name)
    else:
        for i in range(n):
            p = price[i]
            priced = not np.isnan(p)
            mask[i] = _row_flags(qty[i] * (p if priced else 0.0), abs(post_w[i]), priced, is_order[i], growing[i],
                                 no_short & is_order[i] & (signed[i] < 0) & (post[i] < 0),
                                 _threshold(order_lim[i], rtol) if per_order else t_order,
                                 _threshold(pos_lim[i], rtol) if per_pos else t_pos,
                                 _threshold(name_cap[i], rtol) if per_name else t_name)
    if sectors or by_book:
        for i in range(n):
            mask[i] |= _sum_flags(growing[i], exposure[sec_codes[i]] if sectors else np.nan,
                                  gross[codes[i]] if by_book else np.nan,
                                  _threshold(sector_lim[i], rtol) if sectors else np.nan,
                                  _threshold(gross_lim[i], rtol) if per_gross else t_gross)
    if blocked.shape[0] > 0:
        for i in range(n):
            for k in range(6):
                blocked[k, i] = mask[i] >> BITS_ARRAY[k] & 1
            p = price[i]
            observed[0, i] = qty[i] * (0.0 if np.isnan(p) else p)
            observed[1, i] = abs(post_w[i])
            observed[2, i] = exposure[sec_codes[i]] if sectors else np.nan
            observed[3, i] = gross[codes[i]] if by_book else np.nan


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


@kernel
def _at(lim, i):
    """Row ``i``'s value of a limit given once for every row or once per row."""
    return lim[0] if len(lim) == 1 else lim[i]


@kernel
def decisions(blocked, observed, post, name_cap, sector_lim, order_lim, pos_lim, gross_lim, qty, sell, action, t,
              columns, n_out):
    """The decisions of a date's flagged orders when each is rejected (a simulation without rebalancing controls):
    one row per (order, rule it breaks), by row then rule bit, into ``columns`` (``t``, ``pos``, ``rule``,
    ``action``, ``observed``, ``limit``, ``qty_before``, ``qty_after`` = 0, ``sell``) from row ``n_out[0]`` (the
    caller leaves room for 6 rows per order). ``blocked`` / ``observed``: :func:`rules`' details; what each rule
    quotes is its measure and limit (a short's position after the order, against 0)."""
    c_t, c_pos, c_rule, c_action, c_observed, c_limit, c_before, c_after, c_sell = columns
    r = n_out[0]
    for i in range(blocked.shape[1]):
        for k in range(6):  # RULES order is bit order
            if not blocked[k, i]:
                continue
            if k == 0:
                seen, lim = observed[0, i], _at(order_lim, i)
            elif k == 1:
                seen, lim = observed[1, i], _at(pos_lim, i)
            elif k == 2:
                seen, lim = observed[1, i], _at(name_cap, i)
            elif k == 3:
                seen, lim = observed[2, i], sector_lim[i]
            elif k == 4:
                seen, lim = observed[3, i], _at(gross_lim, i)
            else:
                seen, lim = np.float64(post[i]), 0.0
            c_t[r], c_pos[r], c_rule[r], c_action[r] = t, i, BITS_ARRAY[k], action
            c_observed[r], c_limit[r], c_before[r], c_after[r], c_sell[r] = seen, lim, qty[i], 0, sell[i]
            r += 1
    n_out[0] = r


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
