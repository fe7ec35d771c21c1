"""Implementation shortfall of a run or a simulation, by cause: :func:`shortfall` → :class:`Shortfall`.

The attribution rules are those of :mod:`tradeloop.core.shortfall` (definitions in ``docs/concepts.md``). Where the
numbers come from:

* a **stored run**: its frozen snapshot, params, positions and fallback prices give the book again (the sizing is
  deterministic: :func:`tradeloop.venue.providers.prepare_book`), its stored orders and fills what happened;
* a **Simulation** (in memory): its :attr:`~tradeloop.workflows.simulation.Simulation.ledger`
  (:class:`tradeloop.core.shortfall.PeriodLedger`: the dense causes of every slot, the order causes, the costs, the
  paper and implemented returns), built when first read by a second pass over the simulation's dates
  (:func:`tradeloop.workflows.history.replay_ledger`);
* a **stored simulation**: the ``simulation_shortfall`` rows :func:`tradeloop.store.simulations.save_simulation`
  wrote with it (covered by its ``simulation.save`` audit event, so ``tradeloop verify`` detects an edit).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd

from ..core import shortfall as k
from ..core.codes import RISK_PREFIX, risk_rule_names
from ..display import facts_html, short_repr
from ..errors import RunNotFound, ValidationError
from ..store.db import Store
from ..venue.providers import prepare_book, size_book
from .run import RunResult, load_run
from .simulation import Simulation

__all__ = ["Shortfall", "ShortfallData", "shortfall", "simulation_data", "run_data", "run_shortfalls", "ITEMS"]

#: Date-level reference items stored beside the causes and costs (see :data:`ShortfallData`).
ITEMS = k.CAUSES + k.COSTS + ("paper", "implemented")
_BPS = 1e4


def _costs(data: "ShortfallData", prefix: str = "") -> list[np.ndarray]:
    """Each cost of :data:`tradeloop.core.shortfall.COSTS`: per (date, portfolio), or per row with ``prefix`` ``s_``."""
    return [getattr(data, prefix + c) for c in k.COSTS]


@dataclass(frozen=True, eq=False)
class ShortfallData:
    """The attribution of one run or simulation as arrays (``D`` dates, ``P`` portfolios, ``K`` causes, ``M``
    (portfolio, symbol) rows); :class:`Shortfall` builds its frames from it, the store keeps it as long rows.

    Per (date, portfolio): ``value`` (portfolio value V before trading), ``paper_weight`` / ``implemented_weight``
    (Σ w, Σ ŵ), ``paper_return`` / ``implemented_gross`` (Σ w r, Σ ŵ r over the period to the next date; 0 on the
    last date), ``slippage`` / ``commission`` / ``borrow`` (currency: the costs of :data:`COSTS`, ``borrow`` charged
    for the period that starts at the date); per (date, portfolio, cause) ``gap`` (Σ g), ``abs_gap`` (Σ |g|),
    ``contribution`` (Σ g r). Per row: ``symbol``, ``portfolio_of`` (index), ``sector`` and per cause ``s_gap``,
    ``s_abs_gap``, ``s_contribution`` summed over dates, ``s_slippage`` / ``s_commission`` / ``s_borrow``
    (currency) and ``s_cost_return`` ``(M, len(COSTS))`` (Σ cost / V).
    """

    kind: str
    id: str | Callable[[], str]
    dates: np.ndarray
    portfolios: np.ndarray
    named: bool
    value: np.ndarray
    paper_weight: np.ndarray
    implemented_weight: np.ndarray
    paper_return: np.ndarray
    implemented_gross: np.ndarray
    slippage: np.ndarray
    commission: np.ndarray
    borrow: np.ndarray
    gap: np.ndarray
    abs_gap: np.ndarray
    contribution: np.ndarray
    symbol: np.ndarray
    portfolio_of: np.ndarray
    sector: np.ndarray
    s_gap: np.ndarray
    s_abs_gap: np.ndarray
    s_contribution: np.ndarray
    s_slippage: np.ndarray
    s_commission: np.ndarray
    s_borrow: np.ndarray
    s_cost_return: np.ndarray
    causes: tuple = k.CAUSES


def _from_ledger(L: k.PeriodLedger, **fields) -> ShortfallData:
    costs = {c: getattr(L, c) for c in k.COSTS}
    costs.update({f"s_{c}": L.slot_costs[:, j] for j, c in enumerate(k.COSTS)})
    return ShortfallData(
        paper_weight=L.paper_weight, implemented_weight=L.implemented_weight, paper_return=L.paper_return,
        implemented_gross=L.implemented_return, gap=L.gap, abs_gap=L.abs_gap, contribution=L.contribution,
        s_gap=L.slot_gap, s_abs_gap=L.slot_abs_gap, s_contribution=L.slot_contribution,
        s_cost_return=L.slot_cost_return, **costs, **fields)


def simulation_data(sim: Simulation) -> ShortfallData:
    """The attribution of an in-memory simulation: the ledger its date loop filled."""
    if sim.ledger is None:
        raise ValidationError("this simulation has no shortfall ledger (simulate it with this tradeloop)")
    P, S = len(sim.portfolios), len(sim.universe)
    names = np.append(sim.sectors, None).astype(object)
    sector = names[np.minimum(sim.ledger.symbol_sector, len(sim.sectors))]
    return _from_ledger(sim.ledger, kind="simulation", id=lambda: sim.simulation_id, dates=sim.dates, portfolios=sim.portfolios,
                        named=sim.named_portfolios, value=sim.day_pv, symbol=np.tile(sim.universe, P),
                        portfolio_of=np.repeat(np.arange(P), S), sector=np.tile(sector, P))


def _risk_masks(reasons: pd.Series) -> np.ndarray:
    """Risk bits from ``risk:<rules>`` reject reasons (0 for any other reason)."""
    text = reasons.astype(object).where(reasons.notna(), "").astype(str)
    bits = np.zeros(len(text), dtype=np.int64)
    risky = text.str.startswith(RISK_PREFIX).to_numpy()
    if risky.any():  # one pass per rule, none per order: ';' + rules + ';' holds ';rule;' for each of its rules
        wrapped = ";" + text[risky].str.removeprefix(RISK_PREFIX) + ";"
        for bit, rule in enumerate(risk_rule_names()):
            bits[risky] |= wrapped.str.contains(f";{rule};", regex=False).to_numpy().astype(np.int64) << bit
    return bits


def _run_book(store: Store, run_id: str) -> tuple[pd.DataFrame, float, object]:
    """Every symbol of a stored run with its sized order (``sized_side`` / ``sized_qty``: before the rebalancing
    controls), its risk decisions (``book.attrs["risk_decisions"]``) and what became of it (stored orders and
    fills)."""
    run = load_run(store, run_id)
    snapshot = store.load_snapshot(run.snapshot_id)
    book = prepare_book(run, snapshot)
    decisions = book.attrs.get("risk_decisions")
    sized = size_book(run, snapshot).set_index("symbol")
    book = book.assign(sized_side=book["symbol"].map(sized["side"]).to_numpy(dtype=object),
                       sized_qty=book["symbol"].map(sized["qty"]).to_numpy(dtype=np.int64))
    orders = store.orders(run_id)
    fills = store.fills(run_id)
    state = orders.set_index("client_order_id").loc[:, ["qty", "status", "filled_qty", "reject_reason",
                                                        "limit_price"]]
    book = book.drop(columns="limit_price").join(state.rename(columns={"qty": "order_qty"}), on="client_order_id")
    ref = orders.loc[:, ["client_order_id", "price", "side"]].rename(columns={"price": "price_ref"})
    f = fills.merge(ref, on="client_order_id", how="left")
    sign = np.where(f["side"].to_numpy() == "SELL", -1.0, 1.0)
    f = f.assign(slippage=k.slippage(sign * f["qty"].to_numpy(dtype=float), f["price"].to_numpy(dtype=float),
                                     f["price_ref"].to_numpy(dtype=float)))
    per_order = f.groupby("client_order_id")[["slippage", "commission"]].sum()
    book = book.join(per_order, on="client_order_id")
    book.attrs["risk_decisions"] = decisions
    created = store.get_run(run_id)["created_at"]
    return book, float(snapshot.portfolio_value), created


def _run_cuts(book: pd.DataFrame) -> tuple | None:
    """A run's skip and resize decisions by book row, as :class:`~tradeloop.core.shortfall.OrderPath` takes them."""
    dec = pd.DataFrame(book.attrs.get("risk_decisions") or {"action": []})
    dec = dec.loc[dec["action"].isin(["skip", "resize"])]
    if not len(dec):
        return None
    row = pd.Index(book["symbol"]).get_indexer(dec["symbol"])
    return (row, dec["rule"].to_numpy(dtype=object), dec["qty_before"].to_numpy(dtype=np.int64),
            dec["qty_after"].to_numpy(dtype=np.int64), dec["side"].to_numpy(dtype=object) == "SELL")


def run_data(store: Store, run_id: str) -> ShortfallData:
    """The attribution of a stored run: its one decision through the ledger a history uses (no later price, so only
    its explicit costs are a return)."""
    book, V, created = _run_book(store, run_id)
    n = len(book)
    sell = book["side"].to_numpy(dtype=object) == "SELL"
    price = book["price"].to_numpy(dtype=float)
    current = book["current_qty"].to_numpy(dtype=np.int64)
    untrimmed = book["untrimmed_qty"].to_numpy(dtype=np.int64)
    sized, sized_sell = book["sized_qty"].to_numpy(dtype=np.int64), book["sized_side"].to_numpy(dtype=object) == "SELL"
    filled = book["filled_qty"].fillna(0).to_numpy(dtype=np.int64)
    held = current + np.where(sell, -filled, filled)
    o = np.flatnonzero(book["client_order_id"].notna().to_numpy())
    status = book["status"].astype(object).to_numpy()[o]
    path = k.OrderPath(
        slots=o, sell=sell[o], qty=book["order_qty"].to_numpy()[o].astype(np.int64), filled=filled[o],
        current=current[o], fill_price=np.full(len(o), np.nan),
        commission=book["commission"].fillna(0.0).to_numpy(dtype=float)[o],
        risk=_risk_masks(book["reject_reason"].iloc[o]), canceled=status == "CANCELED",
        limit=book["limit_price"].to_numpy(dtype=float)[o], finished=np.isin(status, ["FILLED", "CANCELED"]),
        slippage=book["slippage"].fillna(0.0).to_numpy(dtype=float)[o], decisions=_run_cuts(book))
    ledger = k.PeriodLedger(1, np.zeros(n, dtype=np.intp), 1)
    ledger.decision(0, weight=book["target_weight"].to_numpy(dtype=float), price=price, value=V,
                    target=current + np.where(sized_sell, -untrimmed, untrimmed), trimmed=untrimmed - sized,
                    held=held, mark=price, orders=path)
    return _from_ledger(
        ledger, kind="run", id=run_id, dates=np.array([pd.Timestamp(created).to_datetime64()], "datetime64[ns]"),
        portfolios=np.array([""], dtype=object), named=False, value=np.full((1, 1), V),
        symbol=book["symbol"].to_numpy(dtype=object), portfolio_of=np.zeros(n, dtype=np.int64),
        sector=book["sector"].astype(object).where(book["sector"].notna(), None).to_numpy(dtype=object))


def _head(data: ShortfallData) -> dict:
    """``date`` (and ``portfolio``) columns of the (date, portfolio) rows, date-major."""
    D, P = data.value.shape
    cols = {"date": np.repeat(data.dates, P)}
    if data.named:
        cols["portfolio"] = np.tile(data.portfolios, D)
    return cols


@dataclass(frozen=True, eq=False)
class Shortfall:
    """Implementation shortfall of a run or a simulation, split by cause (see ``docs/concepts.md``).

    All ``bps`` are basis points of the portfolio value V before trading (a history: summed over its periods; several
    portfolios: their mean); weight gaps are fractions of V; ``amount`` and the cost columns of ``by_symbol`` are in
    currency.

    Attributes
    ----------
    total : float
        Σ over periods of (paper return − implemented return) in bps: the sum of ``by_cause.bps``.
    by_cause : DataFrame
        Index ``cause`` (every cause of :data:`tradeloop.core.shortfall.CAUSES`, then the costs ``slippage``,
        ``commission`` and ``borrow``): ``bps``, ``weight_gap`` (Σ g, signed), ``abs_weight_gap`` (Σ |g|),
        ``amount`` (currency, costs only).
    by_symbol : DataFrame
        ``[portfolio,] symbol, sector, weight_gap, abs_weight_gap, bps, slippage, commission, borrow`` then the
        weight gap of each cause (one column per cause): one row per symbol with a gap or a cost, largest
        ``abs_weight_gap`` first.
    by_sector : DataFrame
        ``by_symbol`` summed per ``[portfolio,] sector`` (a history: each symbol's last known sector).
    by_date : DataFrame
        ``date, [portfolio,] portfolio_value, paper_return, implemented_return, gap_bps`` then one bps column per
        cause, ``slippage``, ``commission``, ``borrow`` (bps) and ``paper_weight``, ``implemented_weight`` (Σ w,
        Σ ŵ): one row per decision; ``paper_return − implemented_return`` is ``gap_bps / 1e4``, the sum of the
        cause and cost columns. A run is one row (its creation time), as is the last date of a history: no later
        price, so only its costs.
    cumulative : DataFrame
        ``date, [portfolio,]`` the running sum of every cause and cost column of ``by_date``, ``total_bps`` (their
        sum), ``paper_value`` and ``implemented_value`` (1 compounded by each period's return), ``value_gap_bps``
        (their difference ×1e4) and ``compounding_bps`` (``value_gap_bps − total_bps``: what compounding adds to
        the arithmetic sum).
    tracking_error : float
        Standard deviation of the periods' return gaps (bps per period, pooled over portfolios; NaN with fewer
        than two periods).
    """

    data: ShortfallData

    @property
    def kind(self) -> str:
        return self.data.kind

    @property
    def id(self) -> str:
        """The run or simulation id (a simulation's is hashed from its inputs only when first read)."""
        return self.data.id() if callable(self.data.id) else self.data.id

    @cached_property
    def by_date(self) -> pd.DataFrame:
        d = self.data
        D, P = d.value.shape
        V = d.value.ravel()
        cols = _head(d)
        costs = sum(_costs(d)).ravel() / V
        parts = {c: d.contribution[:, :, j].ravel() * _BPS for j, c in enumerate(d.causes)}
        parts.update({c: x.ravel() / V * _BPS for c, x in zip(k.COSTS, _costs(d))})
        cols.update(portfolio_value=V, paper_return=d.paper_return.ravel(),
                    implemented_return=d.implemented_gross.ravel() - costs,
                    gap_bps=np.sum(list(parts.values()), axis=0), **parts,
                    paper_weight=d.paper_weight.ravel(), implemented_weight=d.implemented_weight.ravel())
        return pd.DataFrame(cols)

    @cached_property
    def cumulative(self) -> pd.DataFrame:
        d, by = self.data, self.by_date
        items = list(d.causes) + list(k.COSTS)
        keys = ["portfolio"] if d.named else []
        grouped = by.groupby(keys, sort=False) if keys else None
        cum = (grouped[items].cumsum() if keys else by[items].cumsum())
        out = by.loc[:, ["date"] + keys].join(cum)
        out["total_bps"] = cum.sum(axis=1)
        growth = pd.DataFrame({"paper_value": 1 + by["paper_return"], "implemented_value": 1 + by["implemented_return"]})
        values = growth.groupby(by["portfolio"], sort=False).cumprod() if keys else growth.cumprod()
        out = out.join(values)
        out["value_gap_bps"] = (out["paper_value"] - out["implemented_value"]) * _BPS
        out["compounding_bps"] = out["value_gap_bps"] - out["total_bps"]
        return out

    @cached_property
    def by_cause(self) -> pd.DataFrame:
        d = self.data
        P = d.value.shape[1]
        bps = self.by_date[list(d.causes) + list(k.COSTS)].sum() / P
        none = np.full(len(k.COSTS), np.nan)
        gap = np.append(d.gap.sum(axis=(0, 1)), none)
        abs_gap = np.append(d.abs_gap.sum(axis=(0, 1)), none)
        amount = np.r_[np.full(len(d.causes), np.nan), [x.sum() for x in _costs(d)]]
        out = pd.DataFrame({"bps": bps.to_numpy(), "weight_gap": gap, "abs_weight_gap": abs_gap, "amount": amount},
                           index=pd.Index(list(d.causes) + list(k.COSTS), name="cause"))
        return out

    @cached_property
    def total(self) -> float:
        return math.fsum(self.by_cause["bps"].tolist())

    @cached_property
    def tracking_error(self) -> float:
        by = self.by_date
        periods = by.loc[by["date"] != by["date"].max(), "gap_bps"]  # the last date starts no period
        return float(periods.std(ddof=1)) if len(periods) > 1 else float("nan")

    @cached_property
    def by_symbol(self) -> pd.DataFrame:
        d = self.data
        cols = {}
        if d.named:
            cols["portfolio"] = d.portfolios[d.portfolio_of]
        P = d.value.shape[1]
        cols.update(symbol=d.symbol, sector=d.sector, weight_gap=d.s_gap.sum(axis=1),
                    abs_weight_gap=np.abs(d.s_gap).sum(axis=1),
                    bps=(d.s_contribution.sum(axis=1) + d.s_cost_return.sum(axis=1)) * _BPS / P,
                    **dict(zip(k.COSTS, _costs(d, "s_"))))
        cols.update({c: d.s_gap[:, j] for j, c in enumerate(d.causes)})
        out = pd.DataFrame(cols)
        keep = (d.s_abs_gap.sum(axis=1) > 0) | np.any([x != 0 for x in _costs(d, "s_")], axis=0)
        return out.loc[keep].sort_values("abs_weight_gap", ascending=False, kind="stable").reset_index(drop=True)

    @cached_property
    def by_sector(self) -> pd.DataFrame:
        keys = (["portfolio"] if self.data.named else []) + ["sector"]
        by = self.by_symbol.drop(columns="symbol").assign(sector=self.by_symbol["sector"].fillna("(none)"))
        return by.groupby(keys, sort=True).sum(numeric_only=True).reset_index()

    def to_dict(self) -> dict:
        """The ``tradeloop shortfall --json`` object: ``id``, ``kind``, ``total_bps``, ``causes`` (bps, summing to
        ``total_bps``), ``explicit_costs`` (currency) and ``weight_gap`` (Σ |g| per cause)."""
        by = self.by_cause
        causes = {c: float(v) for c, v in by["bps"].items()}
        return {"id": self.id, "kind": self.kind, "total_bps": math.fsum(causes.values()), "causes": causes,
                "explicit_costs": {c: float(by.loc[c, "amount"]) for c in k.COSTS},
                "weight_gap": {c: float(by.loc[c, "abs_weight_gap"]) for c in self.data.causes}}

    def plot(self, kind: str | None = None):
        """A matplotlib Figure: ``waterfall`` (paper Σ w → each cause → implemented Σ ŵ; the default for a run),
        ``cumulative`` (cumulative bps by cause over time; the default for a history) or ``values`` (paper vs
        implemented value curves)."""
        from ..reporting import plots

        kind = kind or ("waterfall" if len(self.data.dates) == 1 else "cumulative")
        draw = {"waterfall": plots.shortfall_waterfall, "cumulative": plots.shortfall_cumulative,
                "values": plots.shortfall_values}.get(kind)
        if draw is None:
            raise ValidationError(f"plot kind is {kind!r}; allowed: 'waterfall', 'cumulative', 'values'")
        return draw(self)

    def __repr__(self) -> str:
        return short_repr("Shortfall", self.id, kind=self.kind, total_bps=round(self.total, 4),
                          dates=len(self.data.dates))

    def _repr_html_(self) -> str:
        by = self.by_cause
        top = by.loc[by["bps"].abs().sort_values(ascending=False).index[:6]]
        facts = [("kind", self.kind), ("total", f"{self.total:,.4f} bps"), ("dates", len(self.data.dates))]
        facts += [(f"{c}", f"{r.bps:,.4f} bps, Σ|g| {r.abs_weight_gap:.6f}" if c not in k.COSTS
                   else f"{r.bps:,.4f} bps ({r.amount:,.2f})") for c, r in top.iterrows()]
        return facts_html(f"Shortfall {self.id}", facts,
                          footer=".by_cause, .by_symbol, .by_sector, .by_date, .cumulative, .plot()")


def shortfall(x, store: Store | str | None = None) -> Shortfall:
    """Implementation shortfall of ``x`` by cause.

    Parameters
    ----------
    x : str, RunResult, Simulation
        A stored run id, a :class:`RunResult`, an in-memory :class:`Simulation` or a stored simulation id.
    store : Store or path, optional
        Where a stored run or simulation is (default: ``$TRADELOOP_DB``, else ``./tradeloop.duckdb``); not needed
        for a Simulation.

    Raises
    ------
    RunNotFound
        No run or simulation has that id.
    """
    if isinstance(x, Simulation):
        return Shortfall(simulation_data(x))
    run_id = x.run_id if isinstance(x, RunResult) else x
    if not isinstance(run_id, str):
        raise ValidationError(f"shortfall of {type(x).__name__}: give a run id, a RunResult, a Simulation or a "
                              "simulation id")
    if isinstance(store, Store):
        return _stored(store, run_id)
    from ..settings import Settings

    path = store if store is not None else Settings.from_env().db
    with Store(path, read_only=True, create=False) as opened:
        return _stored(opened, run_id)


def _stored(store: Store, run_id: str) -> Shortfall:
    with store.session():
        if store.get_simulation(run_id) is not None:
            from ..store.simulations import shortfall_rows

            return Shortfall(from_rows(run_id, store.get_simulation(run_id), shortfall_rows(store.con, run_id)))
        try:
            store.get_run(run_id)
        except RunNotFound:
            raise RunNotFound(f"no run or simulation {run_id!r} in {store.path}") from None
        return Shortfall(run_data(store, run_id))


def run_shortfalls(db: Path, run_ids: list[str]) -> dict[str, float]:
    """Implementation shortfall (bps) of each of ``run_ids`` the database has (one read-only open)."""
    out = {}
    if not Path(db).exists():
        return out
    with Store(db, read_only=True) as store:
        known = set(store.con.execute("SELECT run_id FROM trade_runs").df()["run_id"])
        for run_id in run_ids:
            if run_id in known:
                out[run_id] = shortfall(run_id, store).total
    return out


#: Columns of the ``simulation_shortfall`` rows (after ``simulation_id``), and their stored order.
ROW_COLUMNS = ("level", "date", "portfolio", "symbol", "sector", "item", "weight_gap", "abs_weight_gap",
               "contribution", "amount")
ROW_ORDER = ("level", "date", "portfolio", "symbol", "item")


def to_rows(data: ShortfallData):
    """The attribution as long rows (an Arrow table in :data:`ROW_ORDER`).

    ``level = 'date'``: per (date, portfolio), one row per cause (``weight_gap`` Σ g, ``abs_weight_gap`` Σ |g|,
    ``contribution`` Σ g r), per cost (``amount`` in currency, ``contribution`` amount / V), ``paper`` (Σ w, Σ |w|
    is not kept: NULL, Σ w r, ``amount`` = V) and ``implemented`` (Σ ŵ, NULL, Σ ŵ r before costs). ``level =
    'symbol'``: per (portfolio, symbol) with a gap or a cost, one row per nonzero cause (sums over dates) and per
    nonzero cost (``amount``, ``contribution`` Σ cost / V); ``sector`` its last known sector.
    """
    import pyarrow as pa

    D, P = data.value.shape
    K = len(data.causes)
    items = np.array(list(data.causes) + list(k.COSTS) + ["paper", "implemented"], dtype=object)
    n_items = len(items)
    V = data.value.ravel()
    nan = np.full(D * P, np.nan)
    per_item = [
        (data.gap[:, :, j].ravel(), data.abs_gap[:, :, j].ravel(), data.contribution[:, :, j].ravel(), nan)
        for j in range(K)]
    per_item += [(nan, nan, c.ravel() / V, c.ravel()) for c in _costs(data)]
    per_item += [(data.paper_weight.ravel(), nan, data.paper_return.ravel(), V),
                 (data.implemented_weight.ravel(), nan, data.implemented_gross.ravel(), nan)]
    date_cols = {name: np.stack([p[i] for p in per_item], axis=1).ravel() for i, name in
                 enumerate(("weight_gap", "abs_weight_gap", "contribution", "amount"))}
    n = D * P * n_items
    dates = {"level": np.full(n, "date", dtype=object), "date": np.repeat(np.repeat(data.dates, P), n_items),
             "portfolio": np.repeat(np.tile(data.portfolios, D), n_items).astype(object),
             "symbol": np.full(n, None, dtype=object), "sector": np.full(n, None, dtype=object),
             "item": np.tile(items, D * P), **date_cols}
    M = len(data.symbol)
    C = len(k.COSTS)
    s_cost = np.stack(_costs(data, "s_"), 1)
    s_vals = np.concatenate([data.s_gap, np.zeros((M, C))], axis=1)
    s_abs = np.concatenate([data.s_abs_gap, np.full((M, C), np.nan)], axis=1)
    s_con = np.concatenate([data.s_contribution, data.s_cost_return], axis=1)
    s_amt = np.concatenate([np.full((M, K), np.nan), s_cost], axis=1)
    keep = np.concatenate([data.s_abs_gap != 0, s_cost != 0], 1)
    r, c = np.nonzero(keep)
    sym = {"level": np.full(len(r), "symbol", dtype=object), "date": np.full(len(r), np.datetime64("NaT"), "M8[ns]"),
           "portfolio": data.portfolios[data.portfolio_of[r]].astype(object), "symbol": data.symbol[r],
           "sector": data.sector[r], "item": items[c],
           "weight_gap": np.where(c < K, s_vals[r, c], np.nan), "abs_weight_gap": s_abs[r, c],
           "contribution": s_con[r, c], "amount": s_amt[r, c]}
    frame = pd.concat([pd.DataFrame(dates), pd.DataFrame(sym)], ignore_index=True)
    frame = frame.sort_values(list(ROW_ORDER), kind="stable", na_position="last").reset_index(drop=True)
    schema = pa.schema([("level", pa.string()), ("date", pa.timestamp("ns")), ("portfolio", pa.string()),
                        ("symbol", pa.string()), ("sector", pa.string()), ("item", pa.string()),
                        ("weight_gap", pa.float64()), ("abs_weight_gap", pa.float64()),
                        ("contribution", pa.float64()), ("amount", pa.float64())])
    return pa.Table.from_pandas(frame, schema=schema, preserve_index=False)


def from_rows(simulation_id: str, sim_row: dict, rows: pd.DataFrame) -> ShortfallData:
    """A stored simulation's attribution from its ``simulation_shortfall`` rows (:func:`to_rows`)."""
    if not len(rows):
        raise ValidationError(f"simulation {simulation_id!r} was saved before tradeloop recorded shortfall "
                              "attribution; simulate and save it again")
    causes = tuple(c for c in rows["item"].drop_duplicates() if c not in k.COSTS + ("paper", "implemented"))
    causes = tuple(c for c in k.CAUSES if c in causes) + tuple(c for c in causes if c not in k.CAUSES)
    day = rows.loc[rows["level"] == "date"]
    dates = np.sort(day["date"].unique()).astype("datetime64[ns]")
    portfolios = np.sort(day["portfolio"].astype(str).unique()).astype(object)
    D, P = len(dates), len(portfolios)
    wide = day.pivot_table(index=["date", "portfolio"], columns="item", values=list(ROW_COLUMNS[6:]),
                           aggfunc="first", dropna=False)
    wide = wide.reindex(pd.MultiIndex.from_product([dates, portfolios]))

    def get(value, item, fill=0.0):
        col = (value, item)
        out = wide[col].to_numpy(dtype=float) if col in wide.columns else np.full(D * P, fill)
        return np.nan_to_num(out).reshape(D, P)

    cube = {v: np.stack([get(v, c) for c in causes], axis=2) for v in ("weight_gap", "abs_weight_gap", "contribution")}
    sym = rows.loc[rows["level"] == "symbol"]
    keys = sym.loc[:, ["portfolio", "symbol"]].drop_duplicates().reset_index(drop=True)
    index = pd.MultiIndex.from_frame(keys)
    spiv = sym.pivot_table(index=["portfolio", "symbol"], columns="item", values=list(ROW_COLUMNS[6:]),
                           aggfunc="first", dropna=False).reindex(index)

    def sget(value, item):
        col = (value, item)
        return np.nan_to_num(spiv[col].to_numpy(dtype=float)) if col in spiv.columns else np.zeros(len(keys))

    sector = sym.drop_duplicates(["portfolio", "symbol"]).set_index(["portfolio", "symbol"])["sector"].reindex(index)
    portfolio_index = pd.Index(portfolios)
    return ShortfallData(
        kind="simulation", id=simulation_id, dates=dates, portfolios=portfolios,
        named=bool(len(portfolios) > 1 or portfolios[0] != ""), value=get("amount", "paper"),
        paper_weight=get("weight_gap", "paper"), implemented_weight=get("weight_gap", "implemented"),
        paper_return=get("contribution", "paper"), implemented_gross=get("contribution", "implemented"),
        **{c: get("amount", c) for c in k.COSTS},
        gap=cube["weight_gap"], abs_gap=cube["abs_weight_gap"], contribution=cube["contribution"],
        symbol=keys["symbol"].to_numpy(dtype=object),
        portfolio_of=portfolio_index.get_indexer(keys["portfolio"].astype(str)),
        sector=sector.astype(object).where(sector.notna(), None).to_numpy(dtype=object),
        s_gap=np.stack([sget("weight_gap", c) for c in causes], 1).reshape(len(keys), len(causes)),
        s_abs_gap=np.stack([sget("abs_weight_gap", c) for c in causes], 1).reshape(len(keys), len(causes)),
        s_contribution=np.stack([sget("contribution", c) for c in causes], 1).reshape(len(keys), len(causes)),
        **{f"s_{c}": sget("amount", c) for c in k.COSTS},
        s_cost_return=np.stack([sget("contribution", c) for c in k.COSTS], 1).reshape(len(keys), len(k.COSTS)),
        causes=causes,
    )
