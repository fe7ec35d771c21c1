"""The execution step compiled: status transitions, fill quantities, average prices and cash flows in one pass.

:func:`tradeloop.core.engine.execute_step` calls the slippage model (fill prices of every order), then
:func:`step` (everything but the fees; :func:`step_logged` also lists the state changes), then the commission model on the fills :func:`step` lists, then
:func:`settle` (fees into the cash flows). :func:`close_open` is the close of the time in force alone and
:func:`outcomes` / :func:`start_status` the history's codes before and after a date's step.

The status and reason codes are literals here, checked against :mod:`tradeloop.core.codes` on import: a kernel
cached on disk is recompiled only when this file changes, so the codes must live in it (a change of the table fails
the import instead of running stale code).
"""

from __future__ import annotations

import numba  # noqa: F401  (kernel modules import numba; the package does not)
import numpy as np

from .. import codes
from . import kernel

NEW, SUBMITTED, PARTIAL, FILLED, CANCELED, REJECTED = 0, 1, 2, 3, 4, 5
FIRST_TERMINAL = 3
MISSING_PRICE, UNFILLED_AT_CLOSE = 0, 1
NO_REASON = -1
assert [codes.code_of(codes.ORDER_STATUS, s) for s in ("NEW", "SUBMITTED", "PARTIAL", "FILLED", "CANCELED",
                                                       "REJECTED")] == [NEW, SUBMITTED, PARTIAL, FILLED, CANCELED,
                                                                        REJECTED]
assert min(c.code for c in codes.rows(codes.ORDER_STATUS) if c.terminal) == FIRST_TERMINAL
assert [codes.code_of(codes.REJECT_REASON, r) for r in ("missing_price", "unfilled_at_close")] == [
    MISSING_PRICE, UNFILLED_AT_CLOSE]

_MAX = np.finfo(np.float64).max


@kernel
def _round6(x):
    """``np.round(x, 6)`` as numpy computes it (× 1e6, rint, ÷ 1e6; numba's ``np.round`` differs on overflow)."""
    return np.rint(x * 1e6) / 1e6


@kernel
def _average(prev_avg, prev_filled, px, q):
    """Volume-weighted average after a fill of ``q`` at ``px``, rounded to 6 decimals (``nan_to_num`` of the
    previous average, as numpy's formula had it)."""
    if np.isnan(prev_avg):
        prev_avg = 0.0
    elif prev_avg == np.inf:
        prev_avg = _MAX
    elif prev_avg == -np.inf:
        prev_avg = -_MAX
    return _round6((prev_avg * np.float64(prev_filled) + px * np.float64(q)) / np.float64(prev_filled + q))


@kernel
def average_prices(prev_avg, prev_filled, px, q):
    """:func:`_average` per row (float64, int64, float64, int64 arrays of one length)."""
    out = np.empty(len(px))
    for i in range(len(px)):
        out[i] = _average(prev_avg[i], prev_filled[i], px[i], q[i])
    return out


@kernel
def step(status, qty, filled, price, sell, limit, is_limit, caps, model_px, avg, close):
    """One execution step over a batch; ``status`` (int8, the caller's copy) is updated in place.

    Empty ``is_limit`` / ``caps`` / ``avg``: every order MARKET / no cap / no average kept. ``model_px``: the
    slippage model's price of every order. Returns ``(reason, ints, floats, n_now)``: ``ints`` rows = fill qty, shares
    filled after the step, and (first ``n_now`` entries) the rows that filled and their quantities; ``floats``
    rows = fill price, cash flow without fees, average price (``avg`` given), and the prices of those fills. (Few
    returned arrays: handing an array back to Python costs about as much as a numpy call.)
    """
    n = len(qty)
    reason, ints, floats = np.empty(n, dtype=np.int8), np.empty((4, n), dtype=np.int64), np.empty((4, n))
    none8, none64, nonef = np.empty(0, dtype=np.int8), np.empty(0, dtype=np.int64), np.empty(0)
    k, _ = _step(status, qty, filled, price, sell, limit, is_limit, caps, model_px, avg, close, reason, ints, floats,
                 False, none64, none8, none8, none64, nonef, none8)
    return reason, ints, floats, k


@kernel
def step_logged(status, qty, filled, price, sell, limit, is_limit, caps, model_px, avg, close):
    """:func:`step` that also returns the state changes: ``(order, from, to, qty, price, reason)`` arrays, grouped
    by order, each order's in the order they happened."""
    n = len(qty)
    reason, ints, floats = np.empty(n, dtype=np.int8), np.empty((4, n), dtype=np.int64), np.empty((4, n))
    m = 3 * n  # at most submit, fill and close-out per order
    ev_order, ev_from, ev_to = np.empty(m, dtype=np.int64), np.empty(m, dtype=np.int8), np.empty(m, dtype=np.int8)
    ev_qty, ev_price, ev_reason = np.empty(m, dtype=np.int64), np.empty(m), np.empty(m, dtype=np.int8)
    k, e = _step(status, qty, filled, price, sell, limit, is_limit, caps, model_px, avg, close, reason, ints, floats,
                 True, ev_order, ev_from, ev_to, ev_qty, ev_price, ev_reason)
    return (reason, ints, floats, k,
            (ev_order[:e].copy(), ev_from[:e].copy(), ev_to[:e].copy(), ev_qty[:e].copy(), ev_price[:e].copy(),
             ev_reason[:e].copy()))


@kernel
def _step(status, qty, filled, price, sell, limit, is_limit, caps, model_px, avg, close, reason, ints, floats, log,
          ev_order, ev_from, ev_to, ev_qty, ev_price, ev_reason):
    """The loop of :func:`step` into its output arrays; returns (fills, events)."""
    n = len(qty)
    fill_qty, new_filled, now, q_now = ints[0], ints[1], ints[2], ints[3]
    fill_px, flow, avg_out, px_now = floats[0], floats[1], floats[2], floats[3]
    has_limit, has_caps, has_avg = len(is_limit) > 0, len(caps) > 0, len(avg) > 0
    k = e = 0
    for i in range(n):
        p, px, buy = price[i], model_px[i], not sell[i]
        crosses = True
        if has_limit and is_limit[i]:  # never a worse price than the limit; fills only when the price crosses it
            lim = limit[i]
            if buy:
                crosses = p <= lim
                px = px if (px <= lim or np.isnan(px)) else lim
            else:
                crosses = p >= lim
                px = px if (px >= lim or np.isnan(px)) else lim
        fill_px[i], reason[i], fill_qty[i], new_filled[i], flow[i] = px, NO_REASON, 0, filled[i], 0.0
        if has_avg:
            avg_out[i] = avg[i]
        s = status[i]
        if s >= FIRST_TERMINAL:
            continue
        if np.isnan(p):  # no price: a NEW order is REJECTED, one already working CANCELED
            gone = REJECTED if s == NEW else CANCELED
            if log:
                ev_order[e], ev_from[e], ev_to[e], ev_price[e], ev_reason[e] = i, s, gone, p, MISSING_PRICE
                ev_qty[e] = qty[i] if s == NEW else qty[i] - filled[i]
                e += 1
            status[i], reason[i] = gone, MISSING_PRICE
            continue
        if s == NEW:
            if log:
                ev_order[e], ev_from[e], ev_to[e], ev_qty[e], ev_price[e], ev_reason[e] = (
                    i, NEW, SUBMITTED, qty[i], p, NO_REASON)
                e += 1
            s = SUBMITTED
        q = 0
        if crosses:
            rest = qty[i] - filled[i]
            if has_caps:  # an unknown (NaN) cap lets nothing fill; the minimum is taken in floats, as numpy did
                cap = caps[i]
                if np.isnan(cap) or cap < 0.0:
                    cap = 0.0
                rest_f = np.float64(rest)
                q = np.int64(rest_f if rest_f <= cap else cap)
            else:
                q = rest
        fill_qty[i] = q
        done_qty = filled[i] + q
        new_filled[i] = done_qty
        if q > 0:
            now[k], q_now[k], px_now[k] = i, q, px
            k += 1
            flow[i] = (1.0 if sell[i] else -1.0) * np.float64(q) * px
            if has_avg:
                avg_out[i] = _average(avg[i], filled[i], px, q)
            to = FILLED if done_qty >= qty[i] else PARTIAL
            if log:
                ev_order[e], ev_from[e], ev_to[e], ev_qty[e], ev_price[e], ev_reason[e] = i, s, to, q, px, NO_REASON
                e += 1
            s = to
        if close and s < FIRST_TERMINAL:  # the close of the time in force
            if log:
                ev_order[e], ev_from[e], ev_to[e], ev_qty[e], ev_price[e], ev_reason[e] = (
                    i, s, CANCELED, qty[i] - done_qty, p, UNFILLED_AT_CLOSE)
                e += 1
            s = CANCELED
            reason[i] = UNFILLED_AT_CLOSE
        status[i] = s
    return k, e


@kernel
def settle(now, fee_now, fee, flow):
    """The commission model's fees (``fee_now``, one per row of ``now``) into ``fee`` and out of ``flow``."""
    for j in range(len(now)):
        i = now[j]
        fee[i] = fee_now[j]
        flow[i] = flow[i] - fee_now[j]


@kernel
def close_open(status, reason, working):
    """CANCEL (``unfilled_at_close``) every non-terminal order (of ``working``; empty: all), in place; returns the
    mask of those canceled."""
    n = len(status)
    out = np.zeros(n, dtype=np.bool_)
    every = len(working) == 0
    for i in range(n):
        if status[i] < FIRST_TERMINAL and (every or working[i]):
            status[i], reason[i], out[i] = CANCELED, UNFILLED_AT_CLOSE, True
    return out


@kernel
def start_status(risk, held):
    """A date's orders before the step: REJECTED where a risk rule flagged it or its book was held (``held``
    empty: none), else NEW."""
    n = len(risk)
    out = np.empty(n, dtype=np.int8)
    some_held = len(held) > 0
    for i in range(n):
        out[i] = REJECTED if risk[i] != 0 or (some_held and held[i]) else NEW
    return out


@kernel
def outcomes(status, risk, held, of_status, risk_code, blocked_code, filled, fill_px):
    """Outcome codes (``of_status[status]``; ``risk_code`` where a rule flagged the order, ``blocked_code`` where
    only its book was held) and the fill price of each order that filled (NaN otherwise)."""
    n = len(status)
    out = np.empty(n, dtype=np.int8)
    px = np.empty(n)
    some_held = len(held) > 0
    for i in range(n):
        if risk[i] != 0:
            out[i] = risk_code
        elif some_held and held[i]:
            out[i] = blocked_code
        else:
            out[i] = of_status[status[i]]
        px[i] = fill_px[i] if filled[i] > 0 else np.nan
    return out, px


@kernel
def accumulate(fill_qty, fee, flow, fee_sum, flow_sum, n_fills):
    """Add one step's fees, flows and fill counts to the date's totals, in place; returns the rows that filled."""
    rows = np.empty(len(fill_qty), dtype=np.int64)
    k = 0
    for i in range(len(fill_qty)):
        if fill_qty[i] != 0:
            fee_sum[i] += fee[i]
            flow_sum[i] += flow[i]
            n_fills[i] += 1
            rows[k] = i
            k += 1
    return rows[:k]


def warm() -> None:
    """Compile (or load from disk) each kernel for the dtypes the package passes."""
    i8, i64, f8, b = (np.zeros(1, dtype=t) for t in (np.int8, np.int64, np.float64, np.bool_))
    e_b, e_f = np.zeros(0, dtype=np.bool_), np.zeros(0)
    for limit, is_limit, caps, avg in ((e_f, e_b, e_f, e_f), (f8, b, f8, f8)):
        for fn in (step, step_logged):
            fn(i8.copy(), i64 + 1, i64, f8 + 1.0, b, limit, is_limit, caps, f8 + 1.0, avg, True)
    settle(i64, f8, f8.copy(), f8.copy())
    close_open(i8.copy(), i8.copy(), e_b)
    close_open(i8.copy(), i8.copy(), b)
    average_prices(f8, i64, f8, i64 + 1)
    for risk in (np.zeros(1, dtype=np.uint8), np.zeros(1, dtype=np.uint16)):  # without / with controls
        for held in (e_b, b):
            start_status(risk, held)
            outcomes(i8, risk, held, i8, 1, 4, i64, f8)
    accumulate(i64, f8, f8, f8.copy(), f8.copy(), np.zeros(1, dtype=np.int32))
