"""Execution providers: the switch point between the mock venue and a real one.

A provider implements four steps, called by :func:`tradeloop.workflows.run.execute_run` in this order:

``prepare(run, snapshot) -> book``
    Build the proposed book (every symbol, current and target position; rows with a ``client_order_id`` are orders).
``risk_check(run, book) -> RiskCheck(passed, blocked, reasons)``
    Split the orders into passed and blocked; ``reasons`` is the ``params.risk`` record.
``execute(run, orders, dry_run) -> FillResult``
    Work the non-terminal orders (stored columns plus ``volume`` from the frozen snapshot): updated order states,
    new fills, order events. ``dry_run`` must have no effect. Calling it again with the same orders must give the
    same fills (same ``fill_id``), and it must never move a terminal order.
``finalize(run, result)``
    Called once per execution attempt, after the run's final state is committed (close sessions, flush logs);
    ``result`` is None when the run was blocked or failed.

Writing a provider: subclass :class:`BaseProvider`, implement ``execute`` (and ``finalize`` if it holds
resources), check it with :func:`tradeloop.testing.assert_conformance`, and register it in your package's
``pyproject.toml``::

    [project.entry-points."tradeloop.providers"]
    myvenue = "mypackage.venue:MyVenueProvider"

:class:`BaseProvider` implements ``prepare`` and ``risk_check`` with tradeloop's pure functions, so a new venue
only writes ``execute`` (and ``finalize`` if it holds resources). Providers are found by name in :data:`PROVIDERS`:
the built-ins and the ``tradeloop.providers`` entry-point group, so another package can add one without touching
tradeloop. The four steps are declared once, in :class:`ExecutionProvider`; a provider is checked against it when
it is loaded.
"""

from __future__ import annotations

from typing import NamedTuple, Protocol

import numpy as np
import pandas as pd

from ..core.engine import EVENT_COLUMNS, FILL_COLUMNS, FillResult, work_orders
from ..core.controls import DECISION_FRAME_COLUMNS, control_book
from ..core.risk import check_risk, risk_summary
from ..core.sizing import ORDER_COLUMNS, build_book, build_orders, client_order_ids
from ..core.snapshot import DecisionSnapshot
from ..core.trade_run import TradeRun
from ..errors import PluginError, ProviderUnavailable, ValidationError
from .registry import GROUPS, Registry

__all__ = [
    "ExecutionProvider", "BaseProvider", "MockExecutionProvider", "LeanExecutionProvider", "RiskCheck",
    "get_provider", "provider_names", "provider_table", "orders_of", "with_market_data", "risk_rejections", "prepare_book", "size_book", "PROVIDERS",
    "LEAN_ORDER_STATUS", "FIX_ORD_STATUS", "LEAN_TO_TRADELOOP", "FIX_TO_TRADELOOP", "LEAN_ORDER_FIELDS",
]


class RiskCheck(NamedTuple):
    """The risk outcome of a book: ``passed`` orders, ``blocked`` ones (a rule whose action is ``block``: the run
    is blocked), ``reasons`` (the ``params.risk`` record), ``rejected`` orders (REJECTED one by one, the run goes on)
    and the ``decisions`` (:data:`tradeloop.core.controls.DECISION_FRAME_COLUMNS` plus ``client_order_id``)."""

    passed: pd.DataFrame
    blocked: pd.DataFrame
    reasons: dict
    rejected: pd.DataFrame | None = None
    decisions: pd.DataFrame | None = None


class ExecutionProvider(Protocol):
    """The contract of an execution provider, declared once: :func:`get_provider` checks every provider it loads
    against it, and :mod:`tradeloop.testing` (the conformance kit) checks it first and then its behaviour.

    To write one: subclass :class:`BaseProvider` (it implements ``prepare`` and ``risk_check``), set ``name``,
    write ``execute`` (and ``finalize`` if it holds resources), make it pass
    :func:`tradeloop.testing.assert_conformance`, and register it in the ``tradeloop.providers`` entry-point group.
    The steps and their rules are in this module's docstring.
    """

    name: str

    def prepare(self, run: "TradeRun", snapshot: DecisionSnapshot) -> pd.DataFrame:
        """The proposed book: every symbol, current and target position; rows with a client_order_id are orders."""

    def risk_check(self, run: "TradeRun", book: pd.DataFrame) -> RiskCheck:
        """Split the book's orders into passed and blocked; ``reasons`` is the ``params.risk`` record."""

    def execute(self, run: "TradeRun", orders: pd.DataFrame, dry_run: bool) -> FillResult:
        """Work the non-terminal orders: same orders, same fills; never move a terminal order; dry_run does nothing."""

    def finalize(self, run: "TradeRun", result: FillResult | None) -> None:
        """Called once per execution attempt after the run's final state is committed (None: blocked or failed)."""


def prepare_book(run: "TradeRun", snapshot: DecisionSnapshot) -> pd.DataFrame:
    """The run's book: snapshot prices, else fallback prices; orders sized by the run's params.

    Returns the :func:`tradeloop.core.sizing.build_book` columns after the rebalancing controls
    (:func:`tradeloop.core.controls.control_book`: ``risk_codes``, ``risk_action``, ``risk_reason``) plus the order
    columns (``client_order_id``, ``run_id``, ``order_type``, ``limit_price``) filled on order rows and empty on the
    others; the risk decisions ride along in ``book.attrs["risk_decisions"]`` (read by ``risk_check``).
    """
    p = run.params
    book, decisions = control_book(size_book(run, snapshot), p.risk)
    orders = build_orders(None, book=book, run_id=run.run_id, model_version=snapshot.model_version,
                          order_type=p.order_type, limit_offset_bps=p.limit_offset_bps)
    extra = orders.loc[:, ["symbol", "client_order_id", "run_id", "order_type", "limit_price"]]
    book = book.merge(extra, on="symbol", how="left", sort=False)
    decisions.insert(0, "client_order_id", client_order_ids(run.run_id, decisions["symbol"].to_numpy(dtype=object),
                                                            decisions["side"].to_numpy(dtype=object),
                                                            snapshot.model_version))
    # as plain lists: pandas compares attrs when frames are combined, which a DataFrame cannot answer
    book.attrs["risk_decisions"] = decisions.to_dict(orient="list")
    return book


def size_book(run: "TradeRun", snapshot: DecisionSnapshot) -> pd.DataFrame:
    """The sizing half of :func:`prepare_book` (the :func:`tradeloop.core.sizing.build_book` frame, no order ids):
    what a run's creation checks before its first write (sizing refuses quantities that are not exact)."""
    p = run.params
    targets = snapshot.weights.loc[:, ["symbol", "weight", "price", "sector", "lot_size"]].copy()
    targets["price_source"] = np.where(targets["price"].notna(), "snapshot", None)
    positions = run.positions
    if run.fallback_prices is not None:
        fb = run.fallback_prices.set_index("symbol")["price"]
        use = targets["price"].isna() & targets["symbol"].isin(fb.index)
        if use.any():  # an empty str-dtype selection cannot be assigned into the float column (pandas 3)
            targets.loc[use, "price"] = targets.loc[use, "symbol"].map(fb).to_numpy(dtype="float64")
            targets.loc[use, "price_source"] = "fallback"
        if positions is not None:
            positions = positions.assign(price=positions["symbol"].map(fb))
    book = build_book(targets, snapshot.portfolio_value, cash_buffer=p.cash_buffer, lot_size=p.lot_size,
                      positions=positions, cash=p.cash)
    book.loc[book["price_source"].eq("positions"), "price_source"] = "fallback"
    if "adv" in snapshot.weights:  # average daily volume, read by risk.max_adv_participation
        book["adv"] = book["symbol"].map(snapshot.weights.set_index("symbol")["adv"]).to_numpy(dtype="float64")
    return book


def with_market_data(orders: pd.DataFrame, snapshot: DecisionSnapshot) -> pd.DataFrame:
    """The orders a venue works, with the market data its fill models read (``volume``, from the frozen snapshot)."""
    return orders.assign(volume=orders["symbol"].map(snapshot.weights.set_index("symbol")["volume"]))


def risk_rejections(orders: pd.DataFrame, blocked: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A risk block, as order state: every blocked NEW order becomes REJECTED with reason ``risk:<codes>``.

    Returns the rejected orders (``orders`` rows with ``status`` and ``reject_reason`` set) and their order events
    (``client_order_id, run_id, from_status, to_status, qty, price, reason``).
    """
    codes = blocked.set_index("client_order_id")["risk_codes"]
    rejects = orders.loc[orders["client_order_id"].isin(codes.index) & (orders["status"] == "NEW")].copy()
    rejects["reject_reason"] = "risk:" + rejects["client_order_id"].map(codes)
    rejects["status"] = "REJECTED"
    events = pd.DataFrame({
        "client_order_id": rejects["client_order_id"], "run_id": rejects["run_id"], "from_status": "NEW",
        "to_status": "REJECTED", "qty": rejects["qty"], "price": rejects["price"], "reason": rejects["reject_reason"],
    })
    return rejects, events


def orders_of(book: pd.DataFrame) -> pd.DataFrame:
    """The order rows of a book, with exactly :data:`tradeloop.core.sizing.ORDER_COLUMNS`."""
    return book.loc[book["client_order_id"].notna().to_numpy(), list(ORDER_COLUMNS)].reset_index(drop=True)


class BaseProvider:
    """Order building and risk shared by every provider; subclasses write :meth:`execute`.

    ``available`` is False for a provider reserved for a later phase (``tradeloop providers`` shows it).
    """

    name = "base"
    available = True

    def prepare(self, run: "TradeRun", snapshot: DecisionSnapshot) -> pd.DataFrame:
        return prepare_book(run, snapshot)

    def risk_check(self, run: "TradeRun", book: pd.DataFrame) -> RiskCheck:
        if "risk_action" not in book:  # a book not made by prepare_book: the original rules, which block
            checked = check_risk(book, run.params.risk)
            checked["risk_action"] = np.where(checked["risk_codes"].to_numpy() != "", "block", "")
        else:
            checked = book
        orders = checked.loc[checked["client_order_id"].notna().to_numpy()]
        action = orders["risk_action"].to_numpy()
        return RiskCheck(orders.loc[action == ""], orders.loc[action == "block"],
                         risk_summary(orders, run.params.risk), orders.loc[action == "reject"],
                         _decisions(book))

    def execute(self, run: "TradeRun", orders: pd.DataFrame, dry_run: bool) -> FillResult:
        raise NotImplementedError

    def finalize(self, run: "TradeRun", result: FillResult | None) -> None:
        return None

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


def _decisions(book: pd.DataFrame) -> pd.DataFrame | None:
    """The risk decisions :func:`prepare_book` left on a book (None for a book made elsewhere)."""
    kept = book.attrs.get("risk_decisions")
    if kept is None:
        return None
    return pd.DataFrame(kept, columns=["client_order_id", *DECISION_FRAME_COLUMNS]).astype(
        {"observed": "float64", "limit": "float64", "qty_before": "int64", "qty_after": "int64"})


def _nothing_done(orders: pd.DataFrame) -> FillResult:
    return FillResult(
        orders=orders,
        fills=pd.DataFrame({c: pd.Series(dtype=object) for c in FILL_COLUMNS}),
        events=pd.DataFrame({c: pd.Series(dtype=object) for c in EVENT_COLUMNS}),
    )


class MockExecutionProvider(BaseProvider):
    """The mock venue: fills over params.steps steps through the run's slippage, liquidity and commission models.

    Works the orders with :func:`tradeloop.core.engine.work_orders`. Each step fills at the reference price (snapshot, else fallback) through the run's slippage model, at most
    what the liquidity model allows (PARTIAL otherwise), LIMIT orders only when they cross; fees come from the
    commission model. After the last step, open orders are CANCELED (``unfilled_at_close``); an order without any
    price is REJECTED (``missing_price``). Deterministic: the same orders always give the same fills.
    """

    name = "mock"

    def execute(self, run: "TradeRun", orders: pd.DataFrame, dry_run: bool) -> FillResult:
        if dry_run:
            return _nothing_done(orders)
        p = run.params
        return work_orders(orders, steps=p.steps, slippage=p.slippage, commission=p.commission,
                           liquidity=p.liquidity)


#: tradeloop order status -> QuantConnect Lean ``OrderStatus`` (what a Lean provider reports for it).
LEAN_ORDER_STATUS = {
    "NEW": "New",                    # built and stored, not yet sent: Lean's New (created, not submitted)
    "SUBMITTED": "Submitted",        # accepted by the brokerage, nothing filled
    "PARTIAL": "PartiallyFilled",
    "FILLED": "Filled",
    "CANCELED": "Canceled",          # including end of time in force (reason unfilled_at_close)
    "REJECTED": "Invalid",           # risk block, missing price, brokerage reject
}
#: Lean ``OrderStatus`` -> tradeloop status; None = transient, keep the current status until a final answer.
LEAN_TO_TRADELOOP = {
    "New": "NEW", "Submitted": "SUBMITTED", "PartiallyFilled": "PARTIAL", "Filled": "FILLED",
    "Canceled": "CANCELED", "Invalid": "REJECTED", "CancelPending": None, "UpdateSubmitted": None, "None": None,
}
#: tradeloop order status -> FIX ``OrdStatus`` (tag 39) value and name.
FIX_ORD_STATUS = {
    "NEW": ("A", "Pending New"),     # not yet acknowledged by the venue
    "SUBMITTED": ("0", "New"),       # acknowledged, working, nothing filled
    "PARTIAL": ("1", "Partially filled"),
    "FILLED": ("2", "Filled"),
    "CANCELED": ("4", "Canceled"),
    "REJECTED": ("8", "Rejected"),
}
#: FIX ``OrdStatus`` (tag 39) -> tradeloop status; None = transient (pending cancel/replace), keep the current one.
FIX_TO_TRADELOOP = {
    "A": "NEW", "0": "SUBMITTED", "1": "PARTIAL", "2": "FILLED", "3": "CANCELED", "4": "CANCELED",
    "C": "CANCELED", "8": "REJECTED", "6": None, "E": None, "5": None, "9": None, "7": None, "B": None, "D": None,
}
#: tradeloop order/fill field -> (Lean, FIX tag) it maps to.
LEAN_ORDER_FIELDS = {
    "client_order_id": ("Order.Tag (Lean assigns its own integer Order.Id)", "ClOrdID (11)"),
    "symbol": ("Order.Symbol", "Symbol (55)"),
    "side": ("sign of Order.Quantity (BUY > 0, SELL < 0)", "Side (54): 1 = Buy, 2 = Sell"),
    "qty": ("abs(Order.Quantity)", "OrderQty (38)"),
    "order_type": ("MarketOrder / LimitOrder (OrderType.Market, OrderType.Limit)", "OrdType (40): 1 = Market, 2 = Limit"),
    "limit_price": ("LimitOrder.LimitPrice", "Price (44)"),
    "time in force (params.steps)": ("TimeInForce.Day", "TimeInForce (59): 0 = Day"),
    "fill qty / price": ("OrderEvent.FillQuantity / OrderEvent.FillPrice", "LastQty (32) / LastPx (31)"),
    "filled_qty / avg_fill_price": ("Order.Quantity filled / OrderEvent.FillPrice averaged", "CumQty (14) / AvgPx (6)"),
    "commission": ("OrderEvent.OrderFee", "Commission (12)"),
    "fill_id": ("OrderEvent.Id within the order", "ExecID (17)"),
    "reject_reason": ("OrderEvent.Message", "Text (58), OrdRejReason (103)"),
}


class LeanExecutionProvider(BaseProvider):
    """Reserved for live execution through QuantConnect Lean / Interactive Brokers; not available in this phase.

    It builds and risk-checks orders like every provider, then fails in :meth:`execute`, so the run ends
    ``failed`` with a clear error and an audit event, and its orders stay NEW.

    The specification for the later implementation is the Lean/FIX mapping in ``docs/providers.md`` (statuses
    both ways, fields), written there once; :data:`LEAN_ORDER_STATUS`, :data:`LEAN_TO_TRADELOOP`,
    :data:`FIX_ORD_STATUS`, :data:`FIX_TO_TRADELOOP` and :data:`LEAN_ORDER_FIELDS` are the same tables as data
    (``tests/test_docs.py`` fails when they differ). The provider must pass
    :func:`tradeloop.testing.assert_conformance` like the mock does.
    """

    name = "lean"
    available = False

    def execute(self, run: "TradeRun", orders: pd.DataFrame, dry_run: bool) -> FillResult:
        if dry_run:
            return _nothing_done(orders)
        raise ProviderUnavailable("reserved: live Lean/IB execution is not available in this phase")


#: Providers by name: the built-ins and the ``tradeloop.providers`` entry points (loaded and checked on use).
PROVIDERS = Registry(GROUPS["providers"], ExecutionProvider, {"mock": MockExecutionProvider,
                                                               "lean": LeanExecutionProvider})


def provider_names() -> list[str]:
    """Every provider name: built-in, plus those other packages register in ``tradeloop.providers``."""
    return PROVIDERS.names()


def provider_table() -> pd.DataFrame:
    """Every registered provider.

    Returns
    -------
    DataFrame
        ``name``; ``source`` (``tradeloop`` for the built-in ones, else the distribution that registers it in the
        ``tradeloop.providers`` entry-point group); ``target`` (``module:Class``); ``available`` (False: reserved,
        or it could not be loaded or breaks the contract); ``summary`` (first line of its docstring, or the error).
    """
    eps = PROVIDERS.entry_points()
    rows = []
    for name in PROVIDERS:
        builtin = name in PROVIDERS.builtins
        try:
            cls, error = PROVIDERS[name], None
        except PluginError as e:  # a broken plug-in is listed with its error, not fatal to the listing
            cls, error = None, str(e)
        ep = None if builtin else eps[name]
        doc = (cls.__doc__ or "").strip().splitlines() if cls is not None else []
        rows.append({
            "name": name,
            "source": "tradeloop" if builtin else (getattr(getattr(ep, "dist", None), "name", None) or "entry point"),
            "target": f"{cls.__module__}:{cls.__qualname__}" if builtin else ep.value,
            "available": cls is not None and bool(getattr(cls, "available", True)),
            "summary": error or (doc[0] if doc else ""),
        })
    return pd.DataFrame(rows, columns=["name", "source", "target", "available", "summary"])


def get_provider(name: str) -> ExecutionProvider:
    """Instantiate the provider registered under ``name``, checked against :class:`ExecutionProvider`.

    Raises ValidationError for an unknown name, :class:`~tradeloop.errors.PluginError` for a plug-in that cannot be
    imported or lacks a method of the contract.
    """
    if name not in PROVIDERS:
        raise ValidationError(f"provider {name!r} is unknown; available: {provider_names()}")
    return PROVIDERS[name]()
