"""Implementation shortfall by cause: the pure kernel (arrays in, arrays out; no I/O).

At a decision the **paper portfolio** holds ``w_i × V / p_i`` shares of each symbol (fractional, no costs) and the
**implemented portfolio** holds what the run reached, ``q0_i + f_i`` (current plus filled shares), valued at the same
decision prices: ``ŵ_i = (q0_i + f_i) × p_i / V``. The weight gap ``g_i = w_i − ŵ_i`` is split along the order's own
path, each step taking the quantity it removed, so the causes of a symbol sum to its gap exactly::

    w V/p ─rounding─▶ T (lot-floored target) ─cash_trim─▶ q0 + d (trimmed order) ─risk:<rule>─▶ q0 + d' (decisions)
          ─risk:<rule>─▶ 0 if blocked ─missing_price | liquidity | limit_not_crossed | not_executed─▶ q0 + f

* ``rounding = w − T p / V`` (every symbol with a price, traded or not);
* ``cash_trim = (untrimmed − trimmed) × p / V`` (buys only are trimmed; a buy trimmed to nothing is still one);
* ``risk:<rule>``: a decision that resizes an order (``qty_before → qty_after``) takes ``± (before − after) p / V``;
  an order a rule blocks or rejects takes its whole quantity; when several rules block one order, each of the ``k``
  rules takes ``1/k`` of it (the rules are checked on the same order, none of them comes first);
* the rest of an order that was not filled ``± (qty − filled) p / V`` goes to ``liquidity`` (canceled at the close
  after a volume cap or a partial fill), ``limit_not_crossed`` (a LIMIT order whose limit the price never reached),
  or ``not_executed`` (never worked to its end: a blocked run's held-back orders, a dry run, a failed run);
* a symbol without a price cannot be sized: its whole gap ``w − (q0 + f) × mark / V`` is ``missing_price`` (``mark``
  the last known price, 0 when none is known).

**Explicit costs** (currency): ``slippage = ± filled × (fill price − reference price)`` (positive = a cost: a BUY
filled above, a SELL below the reference), and ``commission``.

**Over a history** with returns ``r_i`` from one decision to the next (``mark_{t+1} / mark_t − 1``; 0 where no mark
is known), the paper return ``Σ w_i r_i`` minus the implemented return ``Σ ŵ_i r_i − (slippage + commission) / V``
is ``Σ_cause Σ_i g_{cause,i} r_i + slippage / V + commission / V`` exactly (cash earns nothing in both). A single run
or the last date of a history has no later price: its opportunity costs are 0 at the decision prices (the mock venue
trades on a frozen quote), only its explicit costs count.

Causes are the ``shortfall_cause`` rows of :mod:`tradeloop.core.codes` (:data:`CAUSES`); gaps are returned sparse
(row, cause, gap) for the order causes, dense for ``rounding`` and ``cash_trim``.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .codes import RISK_PREFIX, risk_rule_names, shortfall_cause_names

__all__ = [
    "CAUSES", "COSTS", "ROUNDING", "CASH_TRIM", "MISSING_PRICE", "LIQUIDITY", "LIMIT_NOT_CROSSED", "NOT_EXECUTED",
    "NO_CAUSE", "cause_index", "risk_cause", "rounding_gap", "trim_gap", "order_gap", "unfilled_cause",
    "limit_crossed", "risk_split", "decision_gaps", "shared_cuts", "slippage", "implemented_weight",
    "period_returns", "attribute", "OrderPath", "PeriodLedger",
]

#: Every cause, in the order an order meets them (``risk:<rule>`` for each risk rule, in bit order).
CAUSES = shortfall_cause_names()
#: The explicit costs, in currency (``borrow``: a simulation's ``borrow_bps_per_year`` on the short market value).
COSTS = ("slippage", "commission", "borrow")
_INDEX = {name: i for i, name in enumerate(CAUSES)}
ROUNDING, CASH_TRIM, MISSING_PRICE, LIQUIDITY, LIMIT_NOT_CROSSED, NOT_EXECUTED = (
    _INDEX[n] for n in ("rounding", "cash_trim", "missing_price", "liquidity", "limit_not_crossed", "not_executed"))
#: ``unfilled_cause`` of an order with nothing left unfilled.
NO_CAUSE = -1
#: Cause index of each risk rule, by the rule's bit.
_RISK_BY_BIT = np.array([_INDEX[RISK_PREFIX + r] for r in risk_rule_names()], dtype=np.int64)


def cause_index(name: str) -> int:
    """Position of a cause in :data:`CAUSES`; KeyError names the known causes."""
    try:
        return _INDEX[name]
    except KeyError:
        raise KeyError(f"no shortfall cause {name!r}; known: {list(CAUSES)}") from None


def risk_cause(rule: str) -> int:
    """Cause index of a risk rule by its name (``max_order_notional`` → ``risk:max_order_notional``)."""
    return cause_index(RISK_PREFIX + rule)


def _per_value(x, price, value):
    """``x × price / value`` with 0 where the price is unknown."""
    out = x * price / value
    missing = np.isnan(price)
    return np.where(missing, 0.0, out) if missing.any() else out


def rounding_gap(weight, price, target, value) -> np.ndarray:
    """``w − T p / V``: paper quantity to the lot-floored target ``T`` (signed shares); 0 without a price."""
    missing = np.isnan(price)
    out = weight - target * price / value
    return np.where(missing, 0.0, out) if missing.any() else out


def trim_gap(untrimmed, qty, price, value) -> np.ndarray:
    """``(untrimmed − trimmed) p / V``: what the cash trim took from a buy (sells are never trimmed)."""
    return _per_value(untrimmed - qty, price, value)


def order_gap(weight, price, mark, value, current, signed_qty, signed_filled) -> np.ndarray:
    """The gap an order leaves after sizing: ``(d − f) p / V`` for a priced order (``d`` its signed quantity after any
    resize, ``f`` filled; a blocked order has ``f = 0``), ``w − (q0 + f) × mark / V`` for an order without a price."""
    missing = np.isnan(price)
    with np.errstate(invalid="ignore"):
        priced = (signed_qty - signed_filled) * price / value
        unpriced = weight - (current + signed_filled) * np.nan_to_num(mark) / value
    return np.where(missing, unpriced, priced)


def limit_crossed(sell, price, limit) -> np.ndarray:
    """Did the reference price reach the limit (BUY: price <= limit, SELL: price >= limit)? True without a limit."""
    with np.errstate(invalid="ignore"):
        crossed = np.where(sell, price >= limit, price <= limit)
    return crossed | np.isnan(limit)


def unfilled_cause(*, missing, blocked, canceled, crossed, finished) -> np.ndarray:
    """Cause index of what an unblocked order left unfilled: ``missing_price`` (no price), ``limit_not_crossed`` /
    ``liquidity`` (canceled at the close with or without reaching its limit), ``not_executed`` (not ``finished``:
    never worked to its end); :data:`NO_CAUSE` for blocked and fully worked orders (their gap is 0 or risk's)."""
    out = np.full(len(missing), NO_CAUSE, dtype=np.int64)
    out[~finished] = NOT_EXECUTED
    out[canceled & crossed] = LIQUIDITY
    out[canceled & ~crossed] = LIMIT_NOT_CROSSED
    out[missing] = MISSING_PRICE
    out[blocked & ~missing] = NO_CAUSE
    return out


def risk_split(mask, gap) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The gap of blocked orders split equally over the rules that blocked each (``mask``: bits of the risk rules).

    Returns ``(row, cause, gap)`` for every (blocked order, rule) pair, rows in order.
    """
    mask = np.asarray(mask, dtype=np.int64)
    rows = np.flatnonzero(mask)
    if not len(rows):
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, np.zeros(0)
    bits = (mask[rows, None] >> np.arange(len(_RISK_BY_BIT))[None, :]) & 1
    share = gap[rows] / bits.sum(axis=1)
    r, b = np.nonzero(bits)
    return rows[r], _RISK_BY_BIT[b], share[r]


def decision_gaps(row, rule, qty_before, qty_after, sign, price, value) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Risk decisions that skipped or resized orders (``qty_before → qty_after`` shares; ``rule`` names or bits), as
    ``(row, cause, gap)``: each takes ``sign × (before − after) × p / V`` of its symbol's gap (``sign``, ``price``,
    ``value`` per decision). Decisions that cut the same order from the same quantity (rules checked together, none
    first) share the cut by the airport rule (:func:`shared_cuts`)."""
    rule = np.asarray(rule)
    if not len(rule):
        cause = np.zeros(0, np.int64)
    elif rule.dtype.kind in "iu":
        cause = _RISK_BY_BIT[rule.astype(np.int64)]
    else:
        cause = np.array([risk_cause(str(r)) for r in rule], dtype=np.int64)
    row = np.asarray(row, dtype=np.int64)
    cut = shared_cuts(row, np.asarray(qty_before), np.asarray(qty_after))
    return row, cause, _per_value(sign * cut, np.asarray(price, dtype=float), value)


def shared_cuts(row, before, after) -> np.ndarray:
    """The shares each decision takes: ``before − after``, except where several decisions cut one row from the same
    ``before`` (the original rules resize the same order at once; the order keeps the smallest ``after``). Those
    share the cut as the airport game's Shapley value does: sorted from the mildest cut, each segment between
    successive ``after`` values is split equally among the decisions that cut at least that far (a rule alone
    takes its whole cut; k rules cutting to the same quantity take 1/k each, as k rules blocking an order do)."""
    before = before.astype(np.float64)
    after = after.astype(np.float64)
    cut = before - after
    if len(row) < 2:
        return cut
    order = np.lexsort((-after, before, row))
    r, b = row[order], before[order]
    same = (r[1:] == r[:-1]) & (b[1:] == b[:-1])
    if not same.any():
        return cut
    first = np.flatnonzero(np.r_[True, ~same])
    out = cut.copy()
    for lo, hi in zip(first, np.r_[first[1:], len(r)]):  # the few orders several rules resized at once
        if hi - lo < 2:
            continue
        idx = order[lo:hi]  # mildest cut first
        levels = np.r_[before[idx[0]], after[idx]]
        part = -np.diff(levels) / np.arange(hi - lo, 0, -1)  # segment l shared by the hi - lo - l deepest cuts
        out[idx] = np.cumsum(part)
    return out


def slippage(signed_filled, fill_price, price) -> np.ndarray:
    """``f × (fill price − reference price)`` per order (signed shares: positive is a cost); 0 where nothing filled."""
    with np.errstate(invalid="ignore"):
        out = signed_filled * (fill_price - price)
    return np.where(signed_filled != 0, out, 0.0)


def implemented_weight(held, mark, value) -> np.ndarray:
    """``ŵ = held × mark / V`` (0 where no mark is known)."""
    return held * np.nan_to_num(mark) / value


def period_returns(mark, next_mark) -> np.ndarray:
    """``next_mark / mark − 1``; 0 where either mark is unknown (NaN or 0: a mark, once known, stays known)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        r = np.divide(next_mark, mark)
    r -= 1.0
    ok = np.isfinite(r)
    return r if ok.all() else np.where(ok & (np.nan_to_num(next_mark) > 0), r, 0.0)


def attribute(*, weight, price, mark, value, current, target, untrimmed, sized, qty, filled, sell, risk_mask,
              unfilled, decisions=None) -> np.ndarray:
    """The weight gap of every row of one decision, split by cause: an ``(n, len(CAUSES))`` matrix.

    Rows are symbols (traded or not). ``target`` is the signed lot-floored target, ``untrimmed`` / ``sized`` /
    ``qty`` / ``filled`` unsigned order quantities (before the trim, after it, after any resize decisions, filled;
    0 for a symbol without an order), ``sell`` the side, ``risk_mask`` the bits of the rules that blocked it,
    ``unfilled`` its :func:`unfilled_cause`, ``decisions`` ``(row, rule, qty_before, qty_after)`` arrays. Each row
    sums to ``weight − (current ± filled) × mark / V`` (``mark`` = ``price`` where known).
    """
    n = len(weight)
    sign = np.where(sell, -1, 1)
    out = np.zeros((n, len(CAUSES)))
    out[:, ROUNDING] = rounding_gap(weight, price, target, value)
    out[:, CASH_TRIM] = sign * trim_gap(untrimmed, sized, price, value)
    gap = order_gap(weight, price, mark, value, current, sign * qty, sign * filled)
    rows, cause, part = risk_split(np.where(np.isnan(price), 0, risk_mask), gap)
    np.add.at(out, (rows, cause), part)
    has = unfilled != NO_CAUSE
    np.add.at(out, (np.flatnonzero(has), unfilled[has]), gap[has])
    if decisions is not None and len(decisions[0]):
        d_row = np.asarray(decisions[0], dtype=np.int64)
        rows, cause, part = decision_gaps(d_row, decisions[1], decisions[2], decisions[3], sign[d_row],
                                          np.asarray(price)[d_row], np.broadcast_to(value, (n,))[d_row])
        np.add.at(out, (rows, cause), part)
    return out


class OrderPath(NamedTuple):
    """What became of one date's orders, for :meth:`PeriodLedger.decision` (arrays over the orders).

    ``slots`` their (portfolio, symbol) slots, ``sell``, ``qty`` (after any resize), ``filled``, ``current``,
    ``fill_price`` (NaN where nothing filled), ``commission`` (currency), ``risk`` (bits of the rules that blocked
    it), ``canceled`` (at the close), ``limit`` (NaN: MARKET), ``finished`` (worked to its end; None: all were),
    ``slippage`` (currency; None: from ``fill_price``). ``decisions``: the date's skip and resize decisions by
    **slot**, orders sent or not (a skipped order or one cut to 0 is no order): ``(slot, rule, qty_before,
    qty_after, sell)``, ``rule`` the rule's bit or name.
    """

    slots: np.ndarray
    sell: np.ndarray
    qty: np.ndarray
    filled: np.ndarray
    current: np.ndarray
    fill_price: np.ndarray
    commission: np.ndarray
    risk: np.ndarray
    canceled: np.ndarray
    limit: np.ndarray | None = None
    finished: np.ndarray | None = None
    slippage: np.ndarray | None = None
    decisions: tuple | None = None


class PeriodLedger:
    """A history's attribution, filled date by date (a run is its one date): for a simulation, by a second pass over
    its dates when the attribution is first asked for (:func:`tradeloop.workflows.history.replay_ledger`), so the
    date loop itself carries none of it.

    :meth:`decision` records a date: the paper and implemented weights, the dense causes (``rounding`` and
    ``cash_trim`` concern every (portfolio, symbol) slot, traded or not), the order causes of the few orders with
    a gap (blocked, unfilled, unpriced, resized) and the explicit costs. :meth:`period`, called with the next date's
    marks, turns the gaps into that period's return contributions.

    Arrays (``D`` dates, ``P`` portfolios, ``N = P × S`` slots, ``K`` causes): ``paper_weight`` /
    ``implemented_weight`` (Σ w, Σ ŵ), ``paper_return`` / ``implemented_return`` (Σ w r, Σ ŵ r: before costs),
    ``slippage`` / ``commission`` / ``borrow`` (currency, :data:`COSTS`) ``(D, P)``; ``gap`` / ``abs_gap`` /
    ``contribution`` ``(D, P, K)``; per slot ``slot_gap`` / ``slot_abs_gap`` / ``slot_contribution`` ``(N, K)``,
    ``slot_costs`` (currency) and ``slot_cost_return`` (Σ cost / V) ``(N, len(COSTS))``.
    """

    def __init__(self, n_dates: int, group: np.ndarray, n_groups: int):
        D, P, N, K = n_dates, n_groups, len(group), len(CAUSES)
        self.group, self.P = group, P
        for name in ("paper_weight", "paper_return", "implemented_return", *COSTS):
            setattr(self, name, np.zeros((D, P)))
        self.gap, self.abs_gap, self.contribution = (np.zeros((D, P, K)) for _ in range(3))
        # per slot, cause-major: a cause's row is contiguous, so the dense causes add to it without a stride
        self._slot = np.zeros((3, K, N))  # gap, |gap|, contribution
        self._costs = np.zeros((2 * len(COSTS), N))  # each cost (currency), then each / V
        self._open: tuple | None = None

    @property
    def implemented_weight(self) -> np.ndarray:
        """Σ ŵ per (date, portfolio): Σ w minus every cause's gap (the causes of a symbol sum to its gap)."""
        return self.paper_weight - self.gap.sum(axis=2)

    slot_gap = property(lambda self: self._slot[0].T)
    slot_abs_gap = property(lambda self: self._slot[1].T)
    slot_contribution = property(lambda self: self._slot[2].T)
    slot_costs = property(lambda self: self._costs[:len(COSTS)].T)
    slot_cost_return = property(lambda self: self._costs[len(COSTS):].T)

    def _sum(self, values: np.ndarray, slots: np.ndarray | None = None) -> np.ndarray:
        if self.P == 1:
            return values.sum(keepdims=True)
        group = self.group if slots is None else self.group[slots]
        return np.bincount(group, weights=values, minlength=self.P)

    def _dot(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Σ a b per portfolio."""
        return np.dot(a, b).reshape(1) if self.P == 1 else self._sum(a * b)

    def decision(self, t: int, *, weight, price, value, target, trimmed, held, mark, orders: OrderPath) -> None:
        """Date ``t`` over every slot: ``value`` (V, per slot or a scalar), ``target`` the signed lot-floored
        targets, ``trimmed`` the shares the cash trim removed (signed), ``held`` the positions reached, ``mark`` the
        valuation price (NaN or 0: unknown; kept until the next :meth:`period`, so the caller must not change it in
        place meanwhile); ``orders`` what became of its orders."""
        if np.isnan(mark).any():
            mark = np.nan_to_num(mark)
        rg = rounding_gap(weight, price, target, value)
        tg = trim_gap(trimmed, 0, price, value) if trimmed.any() else None
        wh = held * mark / value
        self.paper_weight[t] = self._sum(weight)  # Σ ŵ is Σ w minus the gaps: summed at the end (implemented_weight)
        for j, g in ((ROUNDING, rg), (CASH_TRIM, tg)):
            if g is not None:
                ag = np.abs(g)
                self.gap[t, :, j], self.abs_gap[t, :, j] = self._sum(g), self._sum(ag)
                self._slot[0, j] += g
                self._slot[1, j] += ag
        self._costs_of(t, orders, price, value)
        parts = [self._orders(orders, weight, price, value, mark)]
        if orders.decisions is not None and len(orders.decisions[0]):
            parts.append(self._decisions(orders.decisions, price, value))
        coo = self._record(t, [p for p in parts if p is not None])
        self._open = (t, weight, wh, rg, tg, mark, coo, value)

    def _costs_of(self, t, o: OrderPath, price, value) -> None:
        """Slippage and commission of date ``t``'s orders, per portfolio and per slot."""
        s = o.slots
        if o.slippage is None:
            with np.errstate(invalid="ignore"):
                slip = np.where(o.sell, -o.filled, o.filled) * (o.fill_price - price[s])
            if np.isnan(slip).any():  # nothing filled: no fill price
                slip = np.where(o.filled != 0, slip, 0.0)
        else:
            slip = o.slippage
        self.slippage[t], self.commission[t] = self._sum(slip, s), self._sum(o.commission, s)
        v = value if np.ndim(value) == 0 else value[s]
        C = len(COSTS)
        for row, cost in enumerate((slip, o.commission)):  # one row at a time: numpy's fast 1-d path
            np.add.at(self._costs[row], s, cost)
            np.add.at(self._costs[row + C], s, cost / v)

    def _orders(self, o: OrderPath, weight, price, value, mark) -> tuple | None:
        """The order causes of the orders with a gap (blocked, unfilled, unpriced) as ``(slot, cause, gap)``."""
        s = o.slots
        p = price[s]
        missing = np.isnan(p)
        n = np.flatnonzero((o.risk != 0) | (o.qty != o.filled) | missing)
        if not len(n):
            return None
        sn = s[n]
        vn = value if np.ndim(value) == 0 else value[sn]
        sign = np.where(o.sell[n], -1, 1)
        gap = order_gap(weight[sn], p[n], mark[sn], vn, o.current[n], sign * o.qty[n], sign * o.filled[n])
        mask = np.where(missing[n], 0, o.risk[n])
        crossed = np.ones(len(n), dtype=bool) if o.limit is None else limit_crossed(o.sell[n], p[n], o.limit[n])
        finished = np.ones(len(n), dtype=bool) if o.finished is None else o.finished[n]
        unfilled = unfilled_cause(missing=missing[n], blocked=mask != 0, canceled=o.canceled[n], crossed=crossed,
                                  finished=finished)
        rb, cb, gb = risk_split(mask, gap)
        has = np.flatnonzero(unfilled != NO_CAUSE)
        return sn[np.r_[rb, has]], np.r_[cb, unfilled[has]], np.r_[gb, gap[has]]

    def _decisions(self, decisions, price, value) -> tuple:
        """Skip and resize decisions (by slot) as ``(slot, cause, gap)``."""
        slot, rule, before, after, sell = decisions
        slot = np.asarray(slot, dtype=np.int64)
        v = value if np.ndim(value) == 0 else value[slot]
        return decision_gaps(slot, rule, before, after, np.where(sell, -1, 1), price[slot], v)

    def _record(self, t, parts) -> tuple | None:
        """Add date ``t``'s ``(slot, cause, gap)`` parts to the gaps; returns them for :meth:`period`."""
        if not parts:
            return None
        slot, cause, g = (np.concatenate(x) for x in zip(*parts)) if len(parts) > 1 else parts[0]
        slot = slot.astype(np.int64, copy=False)
        port = np.zeros(len(slot), dtype=np.int64) if self.P == 1 else self.group[slot]
        np.add.at(self.gap[t], (port, cause), g)
        np.add.at(self.abs_gap[t], (port, cause), np.abs(g))
        np.add.at(self._slot[0], (cause, slot), g)
        np.add.at(self._slot[1], (cause, slot), np.abs(g))
        return slot, port, cause, g

    def period(self, next_mark, borrow: tuple | None = None) -> None:
        """The period from the last :meth:`decision` to the date whose marks are ``next_mark``: records its return
        contributions (nothing before the first decision) and ``borrow`` ``(per portfolio, per slot)``, the borrow
        cost (currency) charged at its end for the short positions held through it."""
        if self._open is None:
            return
        t, weight, wh, rg, tg, mark, coo, value = self._open
        r = period_returns(mark, next_mark)
        self.paper_return[t], self.implemented_return[t] = self._dot(weight, r), self._dot(wh, r)
        for j, g in ((ROUNDING, rg), (CASH_TRIM, tg)):
            if g is not None:
                gr = g * r
                self.contribution[t, :, j] = self._sum(gr)
                self._slot[2, j] += gr
        if coo is not None:
            slot, port, cause, g = coo
            gr = g * r[slot]
            np.add.at(self.contribution[t], (port, cause), gr)
            np.add.at(self._slot[2], (cause, slot), gr)
        if borrow is not None:
            j = COSTS.index("borrow")
            self.borrow[t] = borrow[0]
            self._costs[j] += borrow[1]
            self._costs[j + len(COSTS)] += borrow[1] / value
        self._open = None
