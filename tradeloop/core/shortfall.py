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
    "limit_crossed", "risk_split", "decision_gaps", "slippage", "implemented_weight", "period_returns", "attribute",
    "OrderPath", "PeriodLedger",
]

#: Every cause, in the order an order meets them (``risk:<rule>`` for each risk rule, in bit order).
CAUSES = shortfall_cause_names()
#: The explicit costs, in currency.
COSTS = ("slippage", "commission")
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
    with np.errstate(invalid="ignore"):
        out = x * price / value
    return np.where(np.isnan(price), 0.0, out)


def rounding_gap(weight, price, target, value) -> np.ndarray:
    """``w − T p / V``: paper quantity to the lot-floored target ``T`` (signed shares); 0 without a price."""
    with np.errstate(invalid="ignore"):
        out = weight - target * price / value
    return np.where(np.isnan(price), 0.0, out)


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
    """Risk decisions that resized orders (``qty_before → qty_after`` shares, ``rule`` names), as ``(row, cause,
    gap)``: each takes ``sign × (before − after) × p / V`` of its order's gap (``sign``, ``price``, ``value`` per
    decision)."""
    cause = np.array([risk_cause(str(r)) for r in rule], dtype=np.int64) if len(rule) else np.zeros(0, np.int64)
    gap = _per_value(sign * (np.asarray(qty_before) - np.asarray(qty_after)), np.asarray(price, dtype=float), value)
    return np.asarray(row, dtype=np.int64), cause, gap


def slippage(signed_filled, fill_price, price) -> np.ndarray:
    """``f × (fill price − reference price)`` per order (signed shares: positive is a cost); 0 where nothing filled."""
    with np.errstate(invalid="ignore"):
        out = signed_filled * (fill_price - price)
    return np.where(signed_filled != 0, out, 0.0)


def implemented_weight(held, mark, value) -> np.ndarray:
    """``ŵ = held × mark / V`` (0 where no mark is known)."""
    return held * np.nan_to_num(mark) / value


def period_returns(mark, next_mark) -> np.ndarray:
    """``next_mark / mark − 1``; 0 where either mark is unknown or not positive."""
    ok = (mark > 0) & (next_mark > 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(ok, next_mark / np.where(ok, mark, 1.0) - 1.0, 0.0)


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
    ``slippage`` (currency; None: from ``fill_price``), ``decisions`` ``(order, rule, qty_before, qty_after)``.
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
    """A history's attribution, filled date by date by the simulation's own loop (a run is its one date).

    :meth:`decision` records a date: the paper and implemented weights, the dense causes (``rounding`` and
    ``cash_trim`` concern every (portfolio, symbol) slot, traded or not), the order causes of the few orders with
    a gap (blocked, unfilled, unpriced, resized) and the explicit costs. :meth:`period`, called with the next date's
    marks, turns the gaps into that period's return contributions.

    Arrays (``D`` dates, ``P`` portfolios, ``N = P × S`` slots, ``K`` causes): ``paper_weight`` /
    ``implemented_weight`` (Σ w, Σ ŵ), ``paper_return`` / ``implemented_return`` (Σ w r, Σ ŵ r: before costs),
    ``slippage`` / ``commission`` (currency) ``(D, P)``; ``gap`` / ``abs_gap`` / ``contribution`` ``(D, P, K)``;
    per slot ``slot_gap`` / ``slot_abs_gap`` / ``slot_contribution`` ``(N, K)``, ``slot_costs`` (currency) and
    ``slot_cost_return`` (Σ cost / V) ``(N, 2)``.
    """

    def __init__(self, n_dates: int, group: np.ndarray, n_groups: int, *, grouped: bool = False):
        D, P, N, K = n_dates, n_groups, len(group), len(CAUSES)
        self.group, self.P, self.grouped = group, P, grouped
        for name in ("paper_weight", "implemented_weight", "paper_return", "implemented_return", "slippage",
                     "commission"):
            setattr(self, name, np.zeros((D, P)))
        self.gap, self.abs_gap, self.contribution = (np.zeros((D, P, K)) for _ in range(3))
        self.slot_gap, self.slot_abs_gap, self.slot_contribution = (np.zeros((N, K)) for _ in range(3))
        self.slot_costs, self.slot_cost_return = np.zeros((N, 2)), np.zeros((N, 2))
        self._open: tuple | None = None

    def _sum(self, values: np.ndarray, slots: np.ndarray | None = None) -> np.ndarray:
        if self.P == 1 and not self.grouped:  # grouped: one portfolio of a partitioned history sums as the whole
            return values.sum(keepdims=True)
        group = self.group if slots is None else self.group[slots]
        return np.bincount(group, weights=values, minlength=self.P)

    def decision(self, t: int, *, weight, price, value, target, trimmed, held, mark, orders: OrderPath) -> None:
        """Date ``t`` over every slot: ``value`` (V, per slot or a scalar), ``target`` the signed lot-floored
        targets, ``trimmed`` the shares the cash trim removed (signed), ``held`` the positions reached, ``mark`` the
        valuation price (NaN: unknown); ``orders`` what became of its orders."""
        rg = rounding_gap(weight, price, target, value)
        tg = trim_gap(trimmed, 0, price, value) if trimmed.any() else None
        wh = implemented_weight(held, mark, value)
        self.paper_weight[t], self.implemented_weight[t] = self._sum(weight), self._sum(wh)
        for j, g in ((ROUNDING, rg), (CASH_TRIM, tg)):
            if g is not None:
                self.gap[t, :, j], self.abs_gap[t, :, j] = self._sum(g), self._sum(np.abs(g))
                self.slot_gap[:, j] += g
                self.slot_abs_gap[:, j] += np.abs(g)
        coo = self._orders(t, orders, weight, price, value, mark)
        self._open = (t, weight, wh, rg, tg, np.array(mark, dtype=np.float64), coo)

    def _orders(self, t, o: OrderPath, weight, price, value, mark) -> tuple:
        """Costs and order causes of date ``t``'s orders; returns their causes as ``(slot, cause, gap)``."""
        s = o.slots
        p = price[s]
        v = value if np.ndim(value) == 0 else value[s]
        sign = np.where(o.sell, -1, 1)
        slip = slippage(sign * o.filled, o.fill_price, p) if o.slippage is None else o.slippage
        self.slippage[t], self.commission[t] = self._sum(slip, s), self._sum(o.commission, s)
        self.slot_costs[s, 0] += slip
        self.slot_costs[s, 1] += o.commission
        self.slot_cost_return[s, 0] += slip / v
        self.slot_cost_return[s, 1] += o.commission / v
        missing = np.isnan(p)
        need = (o.risk != 0) | (o.qty != o.filled) | missing
        if o.decisions is not None and len(o.decisions[0]):
            need[o.decisions[0]] = True
        n = np.flatnonzero(need)
        if not len(n):
            return None
        vn = v if np.ndim(v) == 0 else v[n]
        gap = order_gap(weight[s[n]], p[n], mark[s[n]], vn, o.current[n], sign[n] * o.qty[n],
                        sign[n] * o.filled[n])
        mask = np.where(missing[n], 0, o.risk[n])
        crossed = np.ones(len(n), dtype=bool) if o.limit is None else limit_crossed(o.sell[n], p[n], o.limit[n])
        finished = np.ones(len(n), dtype=bool) if o.finished is None else o.finished[n]
        unfilled = unfilled_cause(missing=missing[n], blocked=mask != 0, canceled=o.canceled[n], crossed=crossed,
                                  finished=finished)
        rb, cb, gb = risk_split(mask, gap)
        has = np.flatnonzero(unfilled != NO_CAUSE)
        parts = [(rb, cb, gb), (has, unfilled[has], gap[has])]
        if o.decisions is not None and len(o.decisions[0]):
            d = np.asarray(o.decisions[0], dtype=np.int64)
            dr, dc, dg = decision_gaps(np.searchsorted(n, d), o.decisions[1], o.decisions[2], o.decisions[3],
                                       sign[d], p[d], v if np.ndim(v) == 0 else v[d])
            parts.append((dr, dc, dg))
        rows, cause, g = (np.concatenate(x) for x in zip(*parts))
        slot = s[n][rows]
        port = np.zeros(len(slot), dtype=np.int64) if self.P == 1 else self.group[slot]
        np.add.at(self.gap[t], (port, cause), g)
        np.add.at(self.abs_gap[t], (port, cause), np.abs(g))
        np.add.at(self.slot_gap, (slot, cause), g)
        np.add.at(self.slot_abs_gap, (slot, cause), np.abs(g))
        return slot, port, cause, g

    def period(self, next_mark) -> None:
        """The period from the last :meth:`decision` to the date whose marks are ``next_mark``: records its return
        contributions (nothing before the first decision)."""
        if self._open is None:
            return
        t, weight, wh, rg, tg, mark, coo = self._open
        r = period_returns(mark, next_mark)
        self.paper_return[t], self.implemented_return[t] = self._sum(weight * r), self._sum(wh * r)
        for j, g in ((ROUNDING, rg), (CASH_TRIM, tg)):
            if g is not None:
                gr = g * r
                self.contribution[t, :, j] = self._sum(gr)
                self.slot_contribution[:, j] += gr
        if coo is not None:
            slot, port, cause, g = coo
            gr = g * r[slot]
            np.add.at(self.contribution[t], (port, cause), gr)
            np.add.at(self.slot_contribution, (slot, cause), gr)
        self._open = None
