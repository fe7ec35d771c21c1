"""Rebalancing controls and the breach policy: one kernel that decides every order, on both paths.

:func:`decide` takes the sized orders of one or many books (plain numpy, as :func:`tradeloop.core.sizing.size_orders`
leaves them) and applies, in this order, each stage to the orders the earlier ones left:

==========================  ==================================================================================
rule (``risk.<key>``)       breached when (actions allowed; the default first)
==========================  ==================================================================================
no_trade_band               ``|target weight − current weight|`` < band (skip)
no_trade_band_relative      ``|target weight − current weight|`` < band × ``|target weight|`` (skip)
min_order_qty               order quantity < minimum (skip)
min_order_notional          ``qty × price`` < minimum (skip)
restricted                  a BUY of a ``no_buy`` symbol, any order of a ``no_trade`` symbol (reject, block)
max_adv_participation       ``qty`` > fraction × the symbol's ``adv`` (resize, reject, block)
max_orders                  more than N orders: all but the N largest by notional, ties by symbol (reject, block)
max_turnover                ``Σ |qty × price| / portfolio value`` > cap (resize: pro rata, then floored; block)
the six original rules      :func:`tradeloop.core.risk.risk_checks` on the orders left (see :mod:`~.risk`):
                            block in a run and reject in a simulation by default; ``resize`` for
                            max_order_notional, max_position_ratio, single_name_cap and no_short
==========================  ==================================================================================

Liquidations (a target weight of 0 for a held position; the whole position, or what the cash trim left of a
short's cover) are never skipped by the band or dust rules: otherwise a small holding could never be closed. Orders without a price are left to execution
(``missing_price``) except by ``restricted``. A value at its limit passes (:mod:`tradeloop.core.tolerance`).

Actions (``risk.on_breach: {rule: action}``, defaults in :mod:`tradeloop.core.codes`): ``skip`` the order is not
sent; ``resize`` it is cut to the largest lot multiple that satisfies the rule (never below 0, so never to the
other side; cut to 0 it is not sent); ``reject`` it is REJECTED with ``risk:<rules>`` and the rest proceed (it no
longer counts in the later stages); ``block`` the whole book is blocked (a run ends ``blocked``, a simulation date
sends nothing). Every one of them is a decision row (:class:`Decisions`): the one place that records them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import ValidationError
from . import codes
from .tolerance import LIMIT_RTOL, exceeds, floor_lots

__all__ = ["decide", "Decided", "Decisions", "ACTION_NAMES", "BLOCK", "REJECT", "RESIZE", "SKIP", "policy",
           "RULE_BITS", "describe"]

ACTION_NAMES = codes.names(codes.ACTION)
BLOCK, REJECT, RESIZE, SKIP = (codes.code_of(codes.ACTION, a) for a in ("block", "reject", "resize", "skip"))
#: Bit of each risk rule (its row in the table of codes).
RULE_BITS = {c.name: c.bit for c in codes.rows(codes.RISK_RULE)}
_RULE_BY_BIT = {c.bit: c.name for c in codes.rows(codes.RISK_RULE)}
_RESIZE_RULES = {"max_order_notional", "max_position_ratio", "single_name_cap", "no_short"}


def policy(limits, simulation: bool) -> dict[str, int]:
    """The action code of every rule: ``limits.on_breach``, else the rule's default for this path."""
    chosen = dict(limits.on_breach)
    return {r: codes.code_of(codes.ACTION, chosen.get(r) or codes.default_action(r, simulation)) for r in RULE_BITS}


@dataclass(frozen=True)
class Decisions:
    """One row per (order, rule) decision: ``row`` (the order's row in the kernel's input), ``rule`` (its bit),
    ``action`` (code), ``observed`` and ``limit`` (the rule's measure and limit), ``qty_before`` / ``qty_after``
    (unsigned; 0 after = not sent), ``sell``."""

    row: np.ndarray
    rule: np.ndarray
    action: np.ndarray
    observed: np.ndarray
    limit: np.ndarray
    qty_before: np.ndarray
    qty_after: np.ndarray
    sell: np.ndarray

    def __len__(self) -> int:
        return len(self.row)


@dataclass(frozen=True)
class Decided:
    """What :func:`decide` leaves: ``delta`` the signed trade per row (0: no order), ``is_order`` and ``sell`` per
    row (orders to record, including rejected and unsized ones), ``mask`` (uint16) the bits of the rules that
    reject or block the order, ``blocked`` per group, and the :class:`Decisions`."""

    delta: np.ndarray
    is_order: np.ndarray
    sell: np.ndarray
    mask: np.ndarray
    blocked: np.ndarray
    decisions: Decisions


class _Log:
    def __init__(self):
        self.parts: list[tuple] = []

    def add(self, rows, rule: str, action: int, observed, limit, before, after, sell) -> None:
        rows = np.asarray(rows, dtype=np.intp)
        if len(rows):
            n = len(rows)
            self.parts.append((rows, np.full(n, RULE_BITS[rule], np.int8), np.full(n, action, np.int8),
                               np.broadcast_to(np.asarray(observed, np.float64), (n,)),
                               np.broadcast_to(np.asarray(limit, np.float64), (n,)),
                               np.asarray(before, np.int64), np.broadcast_to(np.asarray(after, np.int64), (n,)),
                               np.asarray(sell, bool)))

    def done(self) -> Decisions:
        if not self.parts:
            empty = np.zeros(0)
            return Decisions(empty.astype(np.intp), empty.astype(np.int8), empty.astype(np.int8), empty, empty,
                             empty.astype(np.int64), empty.astype(np.int64), empty.astype(bool))
        cols = [np.concatenate(c) for c in zip(*self.parts)]
        order = np.lexsort((cols[1], cols[0]))
        return Decisions(*(c[order] for c in cols))


def _floor_to(limit_qty, lot):
    """Whole lots in ``limit_qty`` shares (>= 0)."""
    return np.maximum(floor_lots(np.asarray(limit_qty, np.float64) / lot), 0).astype(np.int64) * lot


def _step_down(q, lot, breaches):
    """One lot less where the rounded quantity still breaches (the tolerance of the floor may round up)."""
    return np.where(breaches(q) & (q > 0), q - lot, q)


class _State:
    """The book the stages work on: signed trades, which rows are live orders, the decision log."""

    def __init__(self, delta, weight, price, lot, current, missing, codes_, ngroups, pv_row, pv):
        self.delta = delta.astype(np.int64, copy=True)
        unsized = missing & (weight != 0) & (delta == 0)
        self.is_order = (delta != 0) | unsized
        self.sell = (delta < 0) | (unsized & (weight < 0))
        self.priced = ~missing
        self.px = np.where(missing, 0.0, price)
        self.live = self.is_order.copy()
        self.mask = np.zeros(len(delta), dtype=np.uint16)
        self.blocked = np.zeros(ngroups, dtype=bool)
        self.weight, self.lot, self.current, self.codes, self.ngroups = weight, lot, current, codes_, ngroups
        self.pv_row, self.pv = pv_row, pv
        self.log = _Log()

    @property
    def qty(self):
        return np.abs(self.delta)

    def drop(self, rows, rule, observed, limit) -> None:
        """Skip: not sent."""
        self.log.add(rows, rule, SKIP, observed, limit, self.qty[rows], 0, self.sell[rows])
        self.delta[rows] = 0
        self.live[rows] = False
        self.is_order[rows] = False

    def breach(self, rows, rule, action, observed, limit) -> None:
        """Reject or block: the order stays recorded, REJECTED; a block also blocks its book."""
        self.log.add(rows, rule, action, observed, limit, self.qty[rows], 0, self.sell[rows])
        self.mask[rows] |= np.uint16(1 << RULE_BITS[rule])
        self.live[rows] = False
        if action == BLOCK:
            self.blocked[self.codes[rows]] = True

    def resize(self, rows, rule, observed, limit, new_qty) -> None:
        new_qty = np.minimum(np.maximum(new_qty, 0), self.qty[rows]).astype(np.int64)
        self.log.add(rows, rule, RESIZE, observed, limit, self.qty[rows], new_qty, self.sell[rows])
        self.delta[rows] = np.where(self.sell[rows], -new_qty, new_qty)
        gone = rows[new_qty == 0]
        self.live[gone] = False
        self.is_order[gone] = False

    def apply(self, rule, action, rows, observed, limit, new_qty=None) -> None:
        rows = np.asarray(rows, dtype=np.intp)
        if not len(rows):
            return
        if action == SKIP:
            self.drop(rows, rule, observed, limit)
        elif action == RESIZE:
            self.resize(rows, rule, observed, limit, new_qty)
        else:
            self.breach(rows, rule, action, observed, limit)


def _liquidation(s: _State) -> np.ndarray:
    """Orders toward a target weight of 0 from a held position: closing it, or part of it when the cash trim cut
    the buy that covers a short."""
    return (s.weight == 0) & (s.current != 0) & (s.delta != 0)


def _below(observed, limit):
    return observed < limit - LIMIT_RTOL * abs(limit)


def _skip_stage(s: _State, limits) -> None:
    candidates = s.live & s.priced & ~_liquidation(s)
    if limits.no_trade_band is not None or limits.no_trade_band_relative is not None:
        with np.errstate(invalid="ignore", divide="ignore"):
            drift = np.abs(s.weight - s.current * s.px / s.pv_row)
        if limits.no_trade_band is not None:
            rows = np.flatnonzero(candidates & s.live & _below(drift, limits.no_trade_band))
            s.apply("no_trade_band", SKIP, rows, drift[rows], limits.no_trade_band)
        if limits.no_trade_band_relative is not None:
            with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
                rel = drift / np.abs(s.weight)
            rows = np.flatnonzero(candidates & s.live & (s.weight != 0) & _below(rel, limits.no_trade_band_relative))
            s.apply("no_trade_band_relative", SKIP, rows, rel[rows], limits.no_trade_band_relative)
    if limits.min_order_qty is not None:
        q = s.qty.astype(np.float64)
        rows = np.flatnonzero(candidates & s.live & _below(q, limits.min_order_qty))
        s.apply("min_order_qty", SKIP, rows, q[rows], limits.min_order_qty)
    if limits.min_order_notional is not None:
        notional = s.qty * s.px
        rows = np.flatnonzero(candidates & s.live & _below(notional, limits.min_order_notional))
        s.apply("min_order_notional", SKIP, rows, notional[rows], limits.min_order_notional)


def _restricted_stage(s: _State, limits, act, no_buy, no_trade) -> None:
    if not limits.restricted:
        return
    hit = np.zeros(len(s.delta), dtype=bool)
    if no_trade is not None:
        hit |= no_trade
    if no_buy is not None:
        hit |= no_buy & ~s.sell
    rows = np.flatnonzero(s.live & hit)
    s.apply("restricted", act["restricted"], rows, s.qty[rows].astype(np.float64), 0.0)


def _adv_stage(s: _State, limits, act, adv, label) -> None:
    frac = limits.max_adv_participation
    if frac is None:
        return
    need = s.live & s.priced
    if adv is None or np.isnan(adv[need]).any():
        i = int(np.flatnonzero(need & (np.isnan(adv) if adv is not None else True))[0])
        raise ValidationError(f"adv is missing for {label(i)}; risk.max_adv_participation is set, so every symbol "
                              "with an order needs an adv (average daily volume) value")
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        share = np.where(need, s.qty / adv, 0.0)
    rows = np.flatnonzero(need & exceeds(s.qty, frac * np.where(need, adv, 0.0)))
    if not len(rows):
        return
    new = None
    if act["max_adv_participation"] == RESIZE:
        cap = frac * adv[rows]
        new = _step_down(_floor_to(cap, s.lot[rows]), s.lot[rows], lambda q: exceeds(q, cap))
    s.apply("max_adv_participation", act["max_adv_participation"], rows, share[rows], frac, new)


def _max_orders_stage(s: _State, limits, act) -> None:
    n = limits.max_orders
    if n is None:
        return
    rows = np.flatnonzero(s.live)
    notional = s.qty[rows] * s.px[rows]
    # largest notional first; ties (and unpriced orders, notional 0) by row order, i.e. by symbol within a book
    order = np.lexsort((rows, -notional, s.codes[rows]))
    ranked, grp = rows[order], s.codes[rows][order]
    starts = np.r_[0, np.flatnonzero(grp[1:] != grp[:-1]) + 1] if len(grp) else np.zeros(0, np.intp)
    rank = np.arange(len(grp)) - np.repeat(starts, np.diff(np.r_[starts, len(grp)])) + 1
    over = rank > n
    s.apply("max_orders", act["max_orders"], ranked[over], rank[over].astype(np.float64), float(n))


def _turnover_stage(s: _State, limits, act) -> None:
    cap = limits.max_turnover
    if cap is None:
        return
    notional = np.where(s.live, s.qty * s.px, 0.0)
    total = np.bincount(s.codes, weights=notional, minlength=s.ngroups)
    turnover = total / s.pv
    over = exceeds(turnover, cap)
    rows = np.flatnonzero(over[s.codes] & s.live & (notional > 0))
    if not len(rows):
        return
    if act["max_turnover"] != RESIZE:
        s.apply("max_turnover", act["max_turnover"], rows, turnover[s.codes[rows]], cap)
        return
    factor = (cap * s.pv / np.where(total > 0, total, 1.0))[s.codes[rows]]
    lot, q = s.lot[rows], s.qty[rows]
    new = _floor_to(q * factor, lot)
    after = np.bincount(s.codes[rows], weights=new * s.px[rows], minlength=s.ngroups) / s.pv
    still = exceeds(after, cap)[s.codes[rows]]
    if still.any():  # the floor's tolerance rounded a lot up: floor strictly in those books
        new = np.where(still, np.floor(q * factor / lot) * lot, new).astype(np.int64)
    changed = new < q
    s.apply("max_turnover", RESIZE, rows[changed], turnover[s.codes[rows[changed]]], cap, new[changed])


def _resize_target(rule, s: _State, rows, lim):
    """Largest lot multiple each row may trade under one of the original rules (see :data:`_RESIZE_RULES`)."""
    lot, px, cur = s.lot[rows], s.px[rows], s.current[rows]
    if rule == "max_order_notional":
        q = _floor_to(lim / px, lot)
        return _step_down(q, lot, lambda q: exceeds(q * px, lim))
    if rule == "no_short":
        return _floor_to(np.maximum(cur, 0), lot)
    sign = np.where(s.sell[rows], -1, 1)
    pv = s.pv_row[rows]
    room = lim * pv / px - sign * cur  # shares the order may add before |post weight| reaches the limit
    q = _floor_to(room, lot)
    return _step_down(q, lot, lambda q: exceeds(np.abs(cur + sign * q) * px / pv, lim))


def _original_stage(s: _State, limits, act, risk_inputs) -> None:
    from .risk import post_trade, risk_checks

    qty = s.qty
    signed = np.where(s.sell, -qty, qty)
    post, post_w, growing = post_trade(s.live, np.where(s.priced, s.px, np.nan), s.pv_row, s.current, signed)
    checks = risk_checks(limits, is_order=s.live, price=np.where(s.priced, s.px, np.nan), qty=qty, signed=signed,
                         post=post, post_w=post_w, growing=growing, codes=s.codes, ngroups=s.ngroups, **risk_inputs)
    hard = np.zeros(len(qty), dtype=bool)
    for rule, flagged, _, _ in checks:
        if act[rule] != RESIZE:
            hard |= flagged
    target = None
    for rule, flagged, observed, lim in checks:
        rows = np.flatnonzero(flagged)
        observed = np.broadcast_to(np.asarray(observed, np.float64), flagged.shape)
        lim = np.broadcast_to(np.asarray(lim, np.float64), flagged.shape)  # a rule with one limit gives a scalar
        if act[rule] != RESIZE:
            s.apply(rule, act[rule], rows, observed[rows], lim[rows])
            continue
        rows = rows[~hard[rows]]  # a rejected or blocked order is not resized
        if not len(rows):
            continue
        if target is None:
            target = qty.copy()
        new = _resize_target(rule, s, rows, lim[rows])
        target[rows] = np.minimum(target[rows], new)
        s.log.add(rows, rule, RESIZE, observed[rows], lim[rows], qty[rows], new, s.sell[rows])
    if target is not None:
        rows = np.flatnonzero(target < qty)
        s.delta[rows] = np.where(s.sell[rows], -target[rows], target[rows])
        gone = rows[target[rows] == 0]
        s.live[gone] = False
        s.is_order[gone] = False


def decide(limits, *, simulation: bool, weight, price, lot, current, delta, missing, codes, ngroups, pv,
           adv=None, no_buy=None, no_trade=None, risk_inputs=None, label=None) -> Decided:
    """Apply the controls and the breach policy to sized orders (see the module docstring).

    Parameters
    ----------
    limits : RiskLimits
    simulation : bool
        Which path's defaults apply to rules ``risk.on_breach`` does not name.
    weight, price, lot, current, delta, missing : arrays
        Per row: target weight, reference price (NaN: none), lot size, current and signed traded quantity (as
        :func:`~tradeloop.core.sizing.size_orders` returns it), no price.
    codes, ngroups, pv : the row's book (0..ngroups-1) and each book's portfolio value.
    adv, no_buy, no_trade : arrays, optional
        Average daily volume (NaN: unknown) and the restricted lists as row masks.
    risk_inputs : dict
        ``name_cap``, ``sec_codes``, ``sector_lim`` for :func:`~tradeloop.core.risk.risk_checks`.
    label : callable
        ``label(i)`` names row ``i`` in an error message.
    """
    pv = np.asarray(pv, dtype=np.float64)
    s = _State(np.asarray(delta), weight, price, lot, current, missing, codes, ngroups, pv[codes], pv)
    act = policy(limits, simulation)
    label = label or (lambda i: f"row {i + 1}")
    _skip_stage(s, limits)
    _restricted_stage(s, limits, act, no_buy, no_trade)
    _adv_stage(s, limits, act, adv, label)
    _max_orders_stage(s, limits, act)
    _turnover_stage(s, limits, act)
    _original_stage(s, limits, act, risk_inputs or {})
    return Decided(s.delta, s.is_order, s.sell, s.mask, s.blocked, s.log.done())


def _num(x: float) -> str:
    return f"{x:,.0f}" if float(x).is_integer() else f"{x:,.4g}"


_DONE = {"block": "blocked", "reject": "rejected", "skip": "skipped"}


def describe(symbol: str, side: str, rule: str, action: str, observed: float, limit: float, qty_before: int,
             qty_after: int) -> str:
    """One decision for people, e.g. ``AAPL BUY 1,200 → 800: max_adv_participation 10 % of ADV 8,000``."""
    if action == "resize":
        head = f"{symbol} {side} {qty_before:,} → {qty_after:,}"
    else:
        head = f"{symbol} {side} {qty_before:,} {_DONE[action]}"
    if rule == "max_adv_participation":
        adv = f" {_num(qty_before / observed)}" if observed > 0 else ""
        what = f"{limit * 100:g} % of ADV{adv}"
    elif rule in ("max_position_ratio", "single_name_cap", "sector_cap", "max_gross_exposure", "max_turnover",
                  "no_trade_band", "no_trade_band_relative"):
        what = f"{observed:.4%} against {limit:.4%}"
    elif rule == "restricted":
        what = "the symbol is restricted"
    elif rule == "max_orders":
        what = f"order {_num(observed)} by notional, at most {_num(limit)}"
    elif rule == "no_short":
        what = f"position would go to {_num(observed)}"
    else:
        what = f"{_num(observed)} against {_num(limit)}"
    return f"{head}: {rule} {what}"


#: Columns of the decisions frame :func:`control_book` returns (and a run stores in ``risk_decisions``).
DECISION_FRAME_COLUMNS = ("symbol", "side", "rule", "observed", "limit", "action", "qty_before", "qty_after")


def decision_frame(dec: Decisions, symbols) -> "pd.DataFrame":
    """:class:`Decisions` as text: :data:`DECISION_FRAME_COLUMNS`, ``symbols`` naming each decision's row."""
    import pandas as pd

    return pd.DataFrame({
        "symbol": np.asarray(symbols, dtype=object)[dec.row] if len(dec) else np.zeros(0, dtype=object),
        "side": np.where(dec.sell, "SELL", "BUY").astype(object),
        "rule": np.array([_RULE_BY_BIT[b] for b in dec.rule], dtype=object),
        "observed": dec.observed, "limit": dec.limit,
        "action": np.array(ACTION_NAMES, dtype=object)[dec.action] if len(dec) else np.zeros(0, dtype=object),
        "qty_before": dec.qty_before, "qty_after": dec.qty_after,
    }, columns=list(DECISION_FRAME_COLUMNS))


def control_book(book, limits, *, simulation: bool = False):
    """:func:`decide` on a single run's book (:func:`tradeloop.core.sizing.build_book`, plus ``adv`` if known).

    Returns ``(book, decisions)``: the book with ``qty``, ``side`` and ``target_qty`` after skips and resizes (a row
    no longer traded has side None), ``risk_codes`` (``;``-joined rules that reject or block the order),
    ``risk_action`` (``block``, ``reject`` or ``""``) and ``risk_reason`` (one sentence per rule); and the
    decisions (:data:`DECISION_FRAME_COLUMNS`).
    """
    from .risk import rule_sentence, sector_limits

    out = book.copy()
    sym = out["symbol"].to_numpy(dtype=object)
    price = out["price"].to_numpy(dtype="float64")
    current = out["current_qty"].to_numpy(dtype="int64")
    delta = out["target_qty"].to_numpy(dtype="int64") - current
    n = len(out)
    inputs = {}
    if limits.single_name_caps:
        inputs["name_cap"] = out["symbol"].map(limits.single_name_caps).to_numpy(dtype="float64")
    if limits.uses_sectors:
        sector = out["sector"]
        unknown = sector.isna().to_numpy() & (current + delta != 0)
        if unknown.any():
            raise ValidationError(f"sector is unknown for {sym[unknown][:10].tolist()}; a sector cap is set, so every "
                                  "held symbol needs a sector")
        inputs["sector_lim"] = sector_limits(limits, sector.map(limits.sector_caps).to_numpy(dtype="float64",
                                                                                             na_value=np.nan))
        inputs["sec_codes"] = out.groupby("sector", sort=False, dropna=False).ngroup().to_numpy(dtype=np.intp)
    restricted = limits.restricted
    d = decide(limits, simulation=simulation, weight=out["target_weight"].to_numpy(dtype="float64"), price=price,
               lot=out["lot_size"].to_numpy(dtype="int64"), current=current, delta=delta,
               missing=out["missing_price"].to_numpy(dtype=bool), codes=np.zeros(n, dtype=np.intp), ngroups=1,
               pv=out["portfolio_value"].to_numpy(dtype="float64")[:1] if n else np.ones(1),
               adv=out["adv"].to_numpy(dtype="float64") if "adv" in out else None,
               no_buy=np.isin(sym, restricted.get("no_buy", [])), no_trade=np.isin(sym, restricted.get("no_trade", [])),
               risk_inputs=inputs, label=lambda i: repr(sym[i]))
    out["qty"] = np.abs(d.delta)
    out["target_qty"] = current + d.delta
    kept = out["side"].notna().to_numpy() & d.is_order
    out["side"] = np.where(kept, np.where(d.sell, "SELL", "BUY"), None)
    names = [c.name for c in codes.rows(codes.RISK_RULE)]
    frame = decision_frame(d.decisions, sym)
    codes_text = np.full(n, "", dtype=object)  # joined only for the few flagged rows
    flagged_rows = np.flatnonzero(d.mask)
    codes_text[flagged_rows] = [";".join(r for r in names if m >> RULE_BITS[r] & 1)
                                for m in d.mask[flagged_rows].tolist()]
    out["risk_codes"] = codes_text
    flagged = d.mask != 0
    out["risk_action"] = np.where(flagged, "block" if d.blocked.any() else "reject", "")
    reasons = [""] * n
    hard = frame["action"].isin(["block", "reject"]).to_numpy()
    for i, rule, obs, lim in zip(d.decisions.row[hard], frame["rule"][hard], frame["observed"][hard],
                                 frame["limit"][hard]):
        text = rule_sentence(rule, obs, lim)
        reasons[i] = text if not reasons[i] else reasons[i] + "; " + text
    out["risk_reason"] = reasons
    return out, frame
