"""K parameter combinations of one history as ONE pass of the date loop over K stacked books.

A sweep often varies only the risk limits, the cash buffer or the costs (slippage, commission) of a simulation.
The inputs (weights, prices, starting positions) are then the same for every combination, and so is everything
the date loop does except the numbers those parameters feed. :func:`simulate_stacked` lays the K books side by side
as K × P portfolios of one history (the loop already works every portfolio of a date at once) and runs the date
loop of :func:`tradeloop.workflows.history.simulate` once:

* the cash buffer becomes one value per book, the risk limits one value per (book, portfolio, symbol) slot (a rule a
  combination switches off has no limit on its slots), the single-name and sector caps per slot as well;
* the slippage and commission models are called once per distinct model, each on the orders of the books that use
  it (:class:`PerBook`);
* every sum the loop takes stays within one book and runs over the same values in the same order as in a separate
  simulation, so each combination's :class:`~tradeloop.workflows.simulation.Simulation` is equal to the one
  ``simulate`` returns for it, order for order and bit for bit (tested, with hypothesis).

Combinations must agree on everything else (:func:`stackable` says whether they do): lot size, order type, limit
offset, liquidity model and steps, starting cash, ``max_leverage`` and borrow rate; and none may set a rebalancing
control or ``on_breach`` (those run through :func:`tradeloop.core.controls.decide`, whose budgets such as
``max_turnover`` and ``max_orders`` are kept per portfolio over a date; a sweep runs such combinations one by one).
One combination's error (a quantity that is
not exact, a held symbol without a sector while some combination sets a sector cap) stops the whole pass.
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping, Sequence
from dataclasses import fields, replace
from types import SimpleNamespace

import numpy as np
import pandas as pd

from ..core.risk import RiskLimits, sector_limits
from ..errors import ValidationError
from . import history
from .params import RunParams
from .simulation import Simulation

__all__ = ["simulate_stacked", "stackable", "STACKED_FIELDS", "PerBook"]

#: The RunParams fields combinations of one stacked pass may differ in.
STACKED_FIELDS = ("risk", "cash_buffer", "slippage", "commission")
#: Risk limit fields that become per-slot caps (``name_cap``, ``sector_limit``) rather than per-slot limits.
_CAP_FIELDS = ("single_name_caps", "sector_caps", "sector_cap")


def stackable(params_list: Sequence[RunParams]) -> bool:
    """True when the combinations differ only in :data:`STACKED_FIELDS` and their risk limits can be laid out per
    slot (numeric limits, caps, the same ``allow_short`` and the like)."""
    if not params_list:
        return False
    first = params_list[0]
    for p in params_list[1:]:
        if replace(p, **{f: getattr(first, f) for f in STACKED_FIELDS}) != first:
            return False
    if any(p.risk.controls_active for p in params_list):
        return False  # rebalancing controls and on_breach run through controls.decide, one book at a time
    return _stacked_limit_values([p.risk for p in params_list]) is not None


def _stacked_limit_values(limits: Sequence[RiskLimits]) -> dict | None:
    """Per field: the common value, or a list of per-combination numbers (None: no limit); None if not stackable."""
    out = {}
    for f in fields(RiskLimits):
        values = [getattr(lim, f.name) for lim in limits]
        if f.name in _CAP_FIELDS or all(v == values[0] for v in values):
            out[f.name] = values[0] if f.name not in _CAP_FIELDS else values
        elif all(v is None or (isinstance(v, numbers.Real) and not isinstance(v, bool)) for v in values):
            out[f.name] = values
        else:
            return None
    if len({lim.uses_sectors for lim in limits}) > 1 or len({bool(lim.single_name_caps) for lim in limits}) > 1:
        return None  # a book without the rule would raise (unknown sector) or look up caps it does not have
    return out


class PerBook:
    """A slippage or commission model per book, called once per distinct model on the rows of its books.

    :func:`tradeloop.core.engine.execute_step` passes the book of each row (``books``) when it is given one.
    """

    def __init__(self, models: Sequence, method: str):
        distinct: list = []
        index = []
        for m in models:
            if m not in distinct:
                distinct.append(m)
            index.append(distinct.index(m))
        self.models, self.model_of_book, self.method = distinct, np.array(index, dtype=np.intp), method

    def __call__(self, a: np.ndarray, b: np.ndarray, books: np.ndarray) -> np.ndarray:
        if len(self.models) == 1:  # every book the same model: one call, no gather
            return np.asarray(getattr(self.models[0], self.method)(a, b), dtype=np.float64)
        which = self.model_of_book[books]
        out = np.empty(len(which), dtype=np.float64)
        for k, model in enumerate(self.models):
            rows = np.flatnonzero(which == k)
            if len(rows):
                out[rows] = getattr(model, self.method)(a[rows], b[rows])
        return out

    def fill_prices(self, side, price, books=None):
        return self(np.asarray(side), np.asarray(price, dtype="float64"), books)

    def commissions(self, qty, price, books=None):
        return self(np.asarray(qty), np.asarray(price, dtype="float64"), books)


def _stacked_inputs(h: history.HistoryInputs, K: int) -> history.HistoryInputs:
    """``h`` with its portfolios repeated K times: book k's slots are ``k × P × S + slot``."""
    N = h.P * h.S
    books = {"portfolios": np.tile(h.portfolios, K), "hold0": np.tile(h.hold0, K), "pv0": np.tile(h.pv0, K),
             "cash0": None if h.cash0 is None else np.tile(h.cash0, K)}
    if h.dense_w:  # the loop slices a date's weights: wd and wpos are not read (the digest is the unstacked h's)
        wvalue = np.tile(h.wvalue.reshape(len(h.dates), N), (1, K)).ravel()
        return replace(h, wvalue=wvalue, wbounds=h.wbounds * K, **books)
    rows = np.tile(np.arange(len(h.wvalue)), K)
    book = np.repeat(np.arange(K), len(h.wvalue))
    order = np.lexsort((rows, book, np.tile(h.wd, K)))
    rows, book = rows[order], book[order]
    wvalue, wd = h.wvalue[rows], h.wd[rows]
    wpos = h.wpos[rows].astype(np.int64) + book * N
    wbounds = np.r_[0, np.cumsum(np.bincount(wd, minlength=len(h.dates)))]
    return replace(h, wd=wd, wpos=wpos, wvalue=wvalue, wbounds=wbounds, **books)


def _stacked_rules(h: history.HistoryInputs, stacked: history.HistoryInputs,
                   params_list: Sequence[RunParams]) -> history._Rules:
    """The loop's per-slot constants for K books: limits per slot, the buffer per portfolio, models per book."""
    K, per_book = len(params_list), h.P * h.S
    book_of_slot = np.repeat(np.arange(K), per_book)
    limits = [p.risk for p in params_list]
    values = _stacked_limit_values(limits)
    risk = {}
    for name, v in values.items():
        if name in _CAP_FIELDS or not isinstance(v, list):
            risk[name] = v if name not in _CAP_FIELDS else None
        else:
            per = np.array([np.nan if x is None else float(x) for x in v])
            risk[name] = per[book_of_slot]
    risk = SimpleNamespace(**risk, uses_sectors=limits[0].uses_sectors)
    risk.single_name_caps = bool(limits[0].single_name_caps)
    name_cap = sector_limit = sector_offset = None
    if limits[0].single_name_caps:
        names = pd.Series(h.universe)
        caps = _per_distinct(limits, lambda lim: tuple(lim.single_name_caps.items()),
                             lambda lim: np.tile(names.map(lim.single_name_caps).to_numpy(dtype="float64"), h.P))
        name_cap = np.concatenate(caps)
    if limits[0].uses_sectors:  # per book: its sector limits, index n_sectors = unknown sector
        names = pd.Series(list(h.sectors) + [None], dtype=object)
        caps = _per_distinct(limits, lambda lim: (lim.sector_cap, tuple(lim.sector_caps.items())),
                             lambda lim: sector_limits(lim, names.map(lim.sector_caps).to_numpy(dtype="float64")))
        sector_limit = np.concatenate(caps)
        sector_offset = book_of_slot * (len(h.sectors) + 1)
    base = history._rules(h, params_list[0])
    return replace(base, group=np.repeat(np.arange(stacked.P, dtype=np.intp), h.S), name_cap=name_cap,
                   sector_limit=sector_limit, sector_offset=sector_offset, risk=risk,
                   cash_buffer=np.repeat(np.array([p.cash_buffer for p in params_list], dtype="float64"), h.P),
                   slippage=PerBook([p.slippage for p in params_list], "fill_prices"),
                   commission=PerBook([p.commission for p in params_list], "commissions"),
                   book_of_slot=book_of_slot, books=K)


def _per_distinct(limits: Sequence[RiskLimits], key, build) -> list[np.ndarray]:
    """``build(lim)`` for each book, computed once per distinct ``key(lim)``."""
    done: dict = {}
    return [done[key(lim)] if key(lim) in done else done.setdefault(key(lim), build(lim)) for lim in limits]


def _split_rows(cols: dict, per_book: int, K: int) -> list[dict]:
    """Rows with a stacked slot ``pos`` (the risk decisions) per book, each book's ``pos`` its own slot."""
    book = cols["pos"] // per_book
    order = np.argsort(book, kind="stable")
    bounds = np.r_[0, np.cumsum(np.bincount(book, minlength=K))]
    cols = {name: np.take(col, order) for name, col in cols.items()}
    cols["pos"] = cols["pos"] - (book[order] * per_book).astype(cols["pos"].dtype)
    return [{name: col[bounds[k]:bounds[k + 1]] for name, col in cols.items()} for k in range(K)]


class _BookRows:
    """Where each book's orders are among the stacked rows. The loop appends a date's orders in slot order, so the
    rows are sorted by (date, book, slot): each (date, book) is one run, all found by one search over that key."""

    def __init__(self, orders: dict, n_dates: int, K: int, per_book: int):
        self.per_book, self.K = per_book, K
        pos, t = orders["pos"], orders["t"]  # needles of the columns' own dtypes: no converted copy of a column
        firsts = (np.arange(K + 1) * per_book).astype(pos.dtype)
        dates = np.searchsorted(t, np.arange(n_dates + 1).astype(t.dtype))
        self.bounds = np.empty(n_dates * K + 1, dtype=np.int64)
        for t in range(n_dates):  # within a date the slots increase: K + 1 searches, no pass over every row
            self.bounds[t * K:(t + 1) * K + 1] = dates[t] + np.searchsorted(pos[dates[t]:dates[t + 1]], firsts)

    def index(self, k: int) -> np.ndarray:
        """Book ``k``'s stacked rows, in the (date, slot) order of its own simulation."""
        starts, ends = self.bounds[k:-1:self.K], self.bounds[k + 1::self.K]
        lengths = ends - starts
        before = np.cumsum(lengths) - lengths  # book k's rows of the earlier dates
        return np.arange(int(lengths.sum()), dtype=np.int64) + np.repeat(starts - before, lengths)


class _BookColumns(Mapping):
    """One book's order columns, each gathered from the stacked ones when first read: the pass itself copies
    nothing per book, and a sweep that stores its combinations one by one gathers one book at a time."""

    def __init__(self, cols: dict, rows: _BookRows, k: int):
        self._cols, self._rows, self._k, self._done = cols, rows, k, {}
        self._index: np.ndarray | None = None

    def __getitem__(self, name: str) -> np.ndarray:
        if name not in self._done:
            if self._index is None:
                self._index = self._rows.index(self._k)
            col = np.take(self._cols[name], self._index)
            if name == "pos":
                col -= col.dtype.type(self._k * self._rows.per_book)
            self._done[name] = col
        return self._done[name]

    def __contains__(self, name) -> bool:
        return name in self._cols

    def __iter__(self):
        return iter(self._cols)

    def __len__(self) -> int:
        return len(self._cols)


def _split_fills(fills: dict, rows: _BookRows, n_orders: int, K: int) -> list[dict]:
    """Each book's fills (a liquidity model), ``order`` renumbered to the book's own order rows."""
    book_of_row = np.empty(n_orders, dtype=np.int64)
    row_in_book = np.empty(n_orders, dtype=np.int64)
    for k in range(K):
        index = rows.index(k)
        book_of_row[index], row_in_book[index] = k, np.arange(len(index))
    f_book = book_of_row[fills["order"]]
    order = np.argsort(f_book, kind="stable")
    bounds = np.r_[0, np.cumsum(np.bincount(f_book, minlength=K))]
    cols = {name: np.take(col, order) for name, col in fills.items()}
    cols["order"] = row_in_book[cols["order"]]
    return [{name: col[bounds[k]:bounds[k + 1]] for name, col in cols.items()} for k in range(K)]


def _split(out: dict, h: history.HistoryInputs, K: int) -> list[tuple]:
    """Each book's orders (gathered lazily, :class:`_BookColumns`), fills, risk decisions, per-date arrays (views)
    and sizing rows (what the shortfall replay needs beyond the orders) out of the stacked loop's output."""
    per_book = h.P * h.S
    o = out["orders"]
    rows = _BookRows(o, len(h.dates), K, per_book)
    fills = [None] * K if out["fills"] is None else _split_fills(out["fills"], rows, len(o["t"]), K)
    decisions = _split_rows(out["decisions"], per_book, K)
    sizing = _split_rows(out["sizing"], per_book, K)
    return [(_BookColumns(o, rows, k), fills[k], {name: a[:, k * h.P:(k + 1) * h.P] for name, a in out["day"].items()},
             sizing[k], decisions[k]) for k in range(K)]


def simulate_stacked(weights: pd.DataFrame, prices: pd.DataFrame, params_list: Sequence[RunParams], *,
                     portfolio_value: float | Mapping[str, float], positions: pd.DataFrame | None = None,
                     cash: float | Mapping[str, float] | None = None,
                     model_version: str = "sim") -> list[Simulation]:
    """One :class:`Simulation` per entry of ``params_list``, equal to ``simulate(weights, prices, params=p, …)`` for
    each, computed in one pass of the date loop (see the module docstring).

    Raises
    ------
    ValidationError
        ``params_list`` is empty or its combinations differ in more than :data:`STACKED_FIELDS` (see
        :func:`stackable`); or any error ``simulate`` raises for one of the combinations.
    """
    params_list = list(params_list)
    if not stackable(params_list):
        raise ValidationError("simulate_stacked: the combinations must be one or more RunParams that differ only in "
                              f"{', '.join(STACKED_FIELDS)} (numeric risk limits and caps)")
    history.check_model_version(model_version)
    h = history.prepare_history(weights, prices, portfolio_value=portfolio_value, params=params_list[0],
                                positions=positions, cash=cash)
    K = len(params_list)
    stacked = _stacked_inputs(h, K) if K > 1 else h
    rules = _stacked_rules(h, stacked, params_list) if K > 1 else history._rules(h, params_list[0])
    out = history._run_dates(stacked, rules, progress=False)
    parts = _split(out, h, K) if K > 1 else [(out["orders"], out["fills"], out["day"], out["sizing"],
                                              out["decisions"])]
    return [history.make_simulation(h, rules.recover, params, model_version, None,
                                    {"orders": orders, "fills": fills, "day": day, "sizing": sizing,
                                     "decisions": decisions})
            for params, (orders, fills, day, sizing, decisions) in zip(params_list, parts)]
