"""The fast path's date loop, compiled: a simulation's dates without rebalancing controls or a liquidity model.

:func:`step_date` sizes every slot (:func:`~tradeloop.core.jit.sizing.size_book`), turns the trades into orders,
checks them (:func:`~tradeloop.core.jit.risk.check_day`) and works them in one closing step
(:func:`~tradeloop.core.jit.execution.step`) at the slippage prices; :func:`close_date` keeps the date's orders and
settles the book (:func:`~tradeloop.core.jit.book.settle`); :func:`run_dates` runs a range of dates, each with its
market (:mod:`tradeloop.core.jit.market`), the built-in fees (:mod:`tradeloop.core.jit.costs`) and the decisions of
the orders a rule rejects. The kernels are the ones the single run's wrappers call: this module strings them
together. The Python side (``tradeloop.workflows.history._fast_dates``) calls :func:`run_dates` and does each date
it hands back with :func:`step_date` and :func:`close_date` around what only Python does.
"""

from __future__ import annotations

import numba  # noqa: F401  (kernel modules import numba; the package does not)
import numpy as np

from . import kernel
from .book import settle
from .costs import fee, slipped
from .execution import outcomes, start_status, step
from .execution import settle as settle_fees
from .market import borrow, market_day
from .risk import check_day, decisions, rules
from .sizing import OK, size_book

__all__ = ["step_date", "close_date", "keep_trimmed", "run_dates", "INT_ROWS", "FLOAT_ROWS", "warm"]

#: Rows of :func:`step_date`'s ``ints`` (per order; ``now`` and ``fill_qty``: the first ``k`` columns).
INT_ROWS = ("pos", "sell", "qty", "current", "untrimmed", "risk", "outcome", "filled", "now", "fill_qty")
POS, SELL, QTY, CURRENT, UNTRIMMED, RISK, OUTCOME, FILLED, NOW, FILL_QTY = range(10)
#: Rows of :func:`step_date`'s ``floats`` (per order; ``fill_px``: the first ``k`` columns).
FLOAT_ROWS = ("fill_price", "flow", "fill_px")
FILL_PRICE, FLOW, FILL_PX = range(3)



@kernel
def step_date(weight, price, lot, hold, group, pv0, first, marks, cash, derive_cash, cash_buffer, buffers, name_cap,
              sec, nsectors, sector_table, sector_offset, order_lim, pos_lim, gross_lim, no_short, rtol, buy_px,
              sell_px, buy_limit, sell_limit, slip_kind, slip_bps, book_of_slot, of_status, risk_code, blocked_code):
    """Size, check and execute one date's slots: :func:`size_book`, the orders (a trade, or a weight without a
    price: an order of unknown size), :func:`check_day`, then one closing :func:`step` at the slippage model's
    prices of each slot (``buy_px`` / ``sell_px``; ``buy_limit`` / ``sell_limit`` the LIMIT prices, empty for
    MARKET orders) and the outcome codes.

    The portfolio values are ``pv0`` on the ``first`` date, else each group's ``cash`` plus its holdings at
    ``marks`` (summed in slot order, as ``np.bincount`` sums).

    Returns ``(status, row, bad, flagged, k, ints, floats, sized, cash, pv, lost, detail, post, sector_lim)``:
    ``status``/``row`` those of
    :func:`size_book` and ``bad`` :func:`check_day`'s (nothing else is meaningful unless OK and -1);
    ``flagged``: some order breaks a rule; per order (columns), ``ints`` rows :data:`INT_ROWS` and ``floats`` rows
    :data:`FLOAT_ROWS`, the first ``k`` columns of ``now`` / ``fill_qty`` / ``fill_px`` listing the fills (for
    the commission model); ``sized`` the signed trade and its untrimmed size per slot; ``cash`` each group's cash
    the sizing started from; ``pv`` the values; ``lost`` how many slots the cash trim took to no order;
    ``detail`` the rules' ``(blocked, observed)`` over every slot when ``flagged`` (:func:`rules`), ``post`` the
    positions after the orders and ``sector_lim`` each slot's sector cap.
    """
    n, ngroups = len(weight), len(pv0)
    if first:
        pv = pv0
    else:
        pv = np.zeros(ngroups)
        for i in range(n):
            pv[group[i]] += hold[i] * marks[i]
        for g in range(ngroups):
            pv[g] = cash[g] + pv[g]
    target, missing = np.empty(n), np.empty(n, dtype=np.bool_)
    sized = np.empty((2, n), dtype=np.int64)
    delta, untrimmed = sized[0], sized[1]
    parts = np.zeros((4, ngroups))
    status, row = size_book(weight, price, lot, hold, group, pv, cash, derive_cash, cash_buffer, buffers, target,
                            delta, untrimmed, missing, parts)
    group_cash = parts[0].copy() if derive_cash else cash
    if status != OK:
        return (status, row, -1, False, 0, np.empty((10, 0), dtype=np.int64), np.empty((3, 0)), sized, group_cash, pv,
                0, _no_detail(), np.empty(0, dtype=np.int64), np.empty(0))
    is_order, sell = np.empty(n, dtype=np.bool_), np.empty(n, dtype=np.bool_)
    qty = np.empty(n, dtype=np.int64)
    m = lost = 0
    for i in range(n):
        d = delta[i]
        unsized = missing[i] and weight[i] != 0 and d == 0
        is_order[i] = d != 0 or unsized
        sell[i] = d < 0 or (unsized and weight[i] < 0)
        qty[i] = abs(d)
        m += is_order[i]
        lost += untrimmed[i] != 0 and d == 0
    checked = check_day(is_order, price, qty, delta, hold, pv, group, ngroups, name_cap, sec, nsectors, sector_table,
                        sector_offset, order_lim, pos_lim, gross_lim, no_short, rtol)
    post, post_w, growing, mask, sec_codes, sector_lim, bad = checked
    if bad >= 0:
        return (status, row, bad, False, 0, np.empty((10, 0), dtype=np.int64), np.empty((3, 0)), sized, group_cash, pv,
                0, _no_detail(), post, sector_lim)
    ints, floats = np.empty((10, m), dtype=np.int64), np.empty((3, m))
    side_sell, risk, px, model_px = np.empty(m, dtype=np.bool_), np.empty(m, dtype=np.uint8), np.empty(m), \
        np.empty(m)
    is_limit, tabled, by_book = len(buy_limit) > 0, len(buy_px) > 0, len(book_of_slot) > 0
    limit = np.empty(m if is_limit else 0)
    flagged = False
    j = 0
    for i in range(n):
        if not is_order[i]:
            continue
        ints[POS, j], ints[SELL, j], ints[QTY, j], ints[CURRENT, j] = i, sell[i], qty[i], hold[i]
        ints[UNTRIMMED, j], ints[RISK, j] = untrimmed[i], mask[i]
        side_sell[j], risk[j], px[j] = sell[i], mask[i], price[i]
        if tabled:
            model_px[j] = sell_px[i] if sell[i] else buy_px[i]
        else:
            b = book_of_slot[i] if by_book else 0
            model_px[j] = slipped(slip_kind[b], slip_bps[b], sell[i], price[i])
        if is_limit:
            limit[j] = sell_limit[i] if sell[i] else buy_limit[i]
        flagged |= mask[i] != 0
        j += 1
    # fresh empties and a bool variable, not module globals or a literal: numba would type those read-only / as a
    # literal and compile the callees once more
    no_bool, no_float, close = np.empty(0, dtype=np.bool_), np.empty(0), m >= 0
    status_j = start_status(risk, no_bool)
    _, step_ints, step_floats, k = step(status_j, ints[QTY], np.zeros(m, dtype=np.int64), px, side_sell, limit,
                                        np.ones(m if is_limit else 0, dtype=np.bool_), no_float, model_px,
                                        no_float, close)
    outcome, fill_price = outcomes(status_j, risk, no_bool, of_status, risk_code, blocked_code, step_ints[1],
                                   step_floats[0])
    for j in range(m):
        ints[OUTCOME, j], ints[FILLED, j] = outcome[j], step_ints[1, j]
        floats[FILL_PRICE, j], floats[FLOW, j] = fill_price[j], step_floats[1, j]
    for j in range(k):
        ints[NOW, j], ints[FILL_QTY, j], floats[FILL_PX, j] = step_ints[2, j], step_ints[3, j], step_floats[3, j]
    blocked, observed = _no_detail()
    if flagged:  # what each rule observed, for the decisions (the rules again, keeping their details)
        blocked, observed = np.empty((6, n), dtype=np.bool_), np.empty((4, n))
        rules(is_order, price, qty, delta, post, post_w, growing, group, ngroups, name_cap, sec_codes, sector_lim,
              order_lim, pos_lim, gross_lim, no_short, rtol, np.empty(n, dtype=np.uint8), blocked, observed)
    return (status, row, -1, flagged, k, ints, floats, sized, group_cash, pv, lost, (blocked, observed), post,
            sector_lim)


@kernel
def close_date(t, ints, floats, fee_of, weight, price, lot, sec, hold, group, marks, cash, pv, recover, orders, n_out,
               counts, day):
    """Keep date ``t``'s orders (the columns ``orders`` from row ``n_out[0]``; the inputs columns only unless
    ``recover``) with their fees ``fee_of``, its values and cash, and settle its fills into ``hold`` and the day's
    cash after, exposures and positions (:func:`~tradeloop.core.jit.book.settle`)."""
    pos, sell, qty, current, untrimmed, status, risk, fill_price, commission, o_price, o_lot, o_sec, o_weight = orders
    d_pv, d_cash_before, d_cash_after, d_gross, d_net, d_npos, _ = day
    n, m = n_out[0], ints.shape[1]
    for j in range(m):
        i, r = ints[POS, j], n + j
        pos[r], sell[r], qty[r], current[r] = i, ints[SELL, j] != 0, ints[QTY, j], ints[CURRENT, j]
        untrimmed[r], status[r], risk[r] = ints[UNTRIMMED, j], ints[OUTCOME, j], ints[RISK, j]
        fill_price[r], commission[r] = floats[FILL_PRICE, j], fee_of[j]
        if not recover:
            o_price[r], o_lot[r], o_sec[r], o_weight[r] = price[i], lot[i], sec[i], weight[i]
    n_out[0], counts[t] = n + m, m
    d_cash_before[t, :] = cash
    d_pv[t, :] = pv
    settle(hold, cash, ints[POS], ints[SELL], ints[FILLED], floats[FLOW], group, marks, d_cash_after[t], d_gross[t],
           d_net[t], d_npos[t])


@kernel
def keep_trimmed(t, delta, untrimmed, columns, n_out):
    """The buys the cash trim took to nothing on date ``t`` (a slot with an ``untrimmed`` order and no ``delta``),
    into ``columns`` (``t``, ``pos``, ``signed``, ``trimmed``: the shortfall's replay reads their target and trim)
    from row ``n_out[0]``; the caller leaves room for one row per slot."""
    c_t, c_pos, c_signed, c_trimmed = columns
    r = n_out[0]
    for i in range(len(delta)):
        if untrimmed[i] != 0 and delta[i] == 0:
            c_t[r], c_pos[r], c_signed[r], c_trimmed[r] = t, i, untrimmed[i], untrimmed[i]
            r += 1
    n_out[0] = r


@kernel
def run_dates(t0, t1, market, work, hold, group, pv0, cash0, derive0, sizing, risk, outcome_codes, slip, tables, fees,
              borrowing, out, recover):
    """Dates ``t0`` to ``t1`` (exclusive) of a simulation without rebalancing controls or liquidity model, each:
    :func:`~tradeloop.core.jit.market.market_day`, the borrow of its shorts, :func:`step_date`, the built-in
    commission of each fill (:func:`~tradeloop.core.jit.costs.fee`) and :func:`close_date`.

    The orders a rule flags are rejected and explained (:func:`~tradeloop.core.jit.risk.decisions`, action
    ``risk[-1]``) and the buys the cash trim took to nothing kept (:func:`keep_trimmed`). Stops at the first date
    the Python side must do (a sizing or sector error to name, a commission model of its own, or fewer free order,
    decision or sizing rows than it may need) and
    returns it, having kept nothing of it but the carried marks (which that date sets again alike); returns ``t1``
    when every date is done. ``tables``: the slippage and LIMIT prices of the dates from ``tables[4]`` on (empty:
    the built-in models ``slip``). A date's starting cash is the previous date's cash after (``cash0`` on date 0,
    or derived from the portfolio value when ``derive0``)."""
    wvalue, wbounds, wpos, dense_w, pprice, plot, psec, psym, pbounds, lot_size, last_px, last_sec = market
    weight, price, lot, mark, marks, sec = work
    name_cap, sectors, nsectors, sector_table, sector_offset, order_lim, pos_lim, gross_lim, no_short, rtol, \
        reject = risk
    of_status, risk_code, blocked_code = outcome_codes
    slip_kind, slip_bps, book_of_slot = slip
    buy_tab, sell_tab, buy_lim_tab, sell_lim_tab, tab_t0 = tables
    fee_kind, fee_a, fee_b = fees
    rate, days = borrowing
    orders, n_out, counts, day, explained, n_explained, trimmed, n_trimmed = out
    d_cash_after, d_borrow = day[2], day[6]
    N, capacity, room, trim_room = len(weight), len(orders[0]), len(explained[0]), len(trimmed[0])
    no_float, no_codes = np.empty(0), np.empty(0, dtype=np.int64)
    for t in range(t0, t1):
        if (n_out[0] + N > capacity or n_explained[0] + 6 * N > room or n_trimmed[0] + N > trim_room
                or len(fee_kind) == 0):
            return t
        market_day(t, wvalue, wbounds, wpos, dense_w, pprice, plot, psec, psym, pbounds, lot_size, last_px,
                   last_sec, weight, price, lot, mark, marks, sec)
        first = t == 0
        derive = first and derive0
        cash = cash0.copy() if first else d_cash_after[t - 1].copy()
        if rate > 0 and not first:  # short market value held since the previous date, at today's marks
            borrow(hold, marks, group, rate, days[t], d_borrow[t], no_float)
            for g in range(len(cash)):
                cash[g] = cash[g] - d_borrow[t, g]
        a = t - tab_t0
        buy_px, sell_px, buy_limit, sell_limit = no_float, no_float, no_float, no_float
        if buy_tab.shape[0] > 0:
            buy_px, sell_px = buy_tab[a], sell_tab[a]
        if buy_lim_tab.shape[0] > 0:
            buy_limit, sell_limit = buy_lim_tab[a], sell_lim_tab[a]
        start_cash = no_float if derive else cash
        date_sec = sec if sectors else no_codes
        r = step_date(weight, price, lot, hold, group, pv0, first, marks, start_cash, derive, sizing[0], sizing[1],
                      name_cap, date_sec, nsectors, sector_table, sector_offset, order_lim, pos_lim, gross_lim,
                      no_short, rtol, buy_px, sell_px, buy_limit, sell_limit, slip_kind, slip_bps, book_of_slot,
                      of_status, risk_code, blocked_code)
        status, _, bad, flagged, k, ints, floats, sized, group_cash, pv, lost, detail, post, sector_lim = r
        if status != OK or bad >= 0:
            return t
        if lost:
            keep_trimmed(t, sized[0], sized[1], trimmed, n_trimmed)
        if flagged:
            sell_all = np.zeros(N, dtype=np.bool_)
            for j in range(ints.shape[1]):
                sell_all[ints[POS, j]] = ints[SELL, j] != 0
            decisions(detail[0], detail[1], post, name_cap, sector_lim, order_lim, pos_lim, gross_lim,
                      np.abs(sized[0]), sell_all, reject, t, explained, n_explained)
        fee_of, fee_now = np.zeros(ints.shape[1]), np.empty(k)
        by_book = len(book_of_slot) > 0
        for f in range(k):
            b = book_of_slot[ints[POS, ints[NOW, f]]] if by_book else 0
            fee_now[f] = fee(fee_kind[b], fee_a[b], fee_b[b], ints[FILL_QTY, f], floats[FILL_PX, f])
        settle_fees(ints[NOW, :k], fee_now, fee_of, floats[FLOW])
        close_date(t, ints, floats, fee_of, weight, price, lot, sec, hold, group, marks, group_cash, pv, recover,
                   orders, n_out, counts, day)
    return t1


@kernel
def _no_detail():
    return np.empty((6, 0), dtype=np.bool_), np.empty((4, 0))


def warm() -> None:
    """Compile (or load) both kernels for the dtypes :func:`tradeloop.workflows.history.simulate` passes."""
    import tradeloop as tl

    w, p = tl.synthetic_history(2, 3, seed=1)
    tl.simulate(w, p, portfolio_value=1e6)
