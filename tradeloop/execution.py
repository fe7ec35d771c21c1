"""Execution providers: the switch point between the mock venue and a real one.

A provider implements four steps, called by :func:`tradeloop.runs.execute_run` in this order:

``prepare(run, snapshot) -> book``
    Build the proposed book (every symbol, current and target position; rows with a ``client_order_id`` are orders).
``risk_check(run, book) -> RiskCheck(passed, blocked, reasons)``
    Split the orders into passed and blocked; ``reasons`` is the ``params.risk`` record.
``execute(run, orders, dry_run) -> FillResult``
    Work the non-terminal orders: updated order states, new fills, order events. ``dry_run`` must have no effect.
``finalize(run, result)``
    Called once after the run's final state is committed (close sessions, flush logs).

:class:`BaseProvider` implements ``prepare`` and ``risk_check`` with tradeloop's pure functions, so a new venue
only writes ``execute`` (and ``finalize`` if it holds resources). Providers are found by name in :data:`PROVIDERS`
and in the ``tradeloop.providers`` entry-point group, so another package can add one without touching tradeloop.
"""

from __future__ import annotations

from importlib.metadata import entry_points
from typing import TYPE_CHECKING, NamedTuple, Protocol

import numpy as np
import pandas as pd

from .errors import ProviderUnavailable, ValidationError
from .fills import EVENT_COLUMNS, FILL_COLUMNS, FillResult, fill_orders
from .orders import ORDER_COLUMNS, build_book, build_orders
from .risk import check_risk, risk_summary
from .snapshot import DecisionSnapshot

if TYPE_CHECKING:
    from .runs import TradeRun

__all__ = [
    "ExecutionProvider", "BaseProvider", "MockExecutionProvider", "LeanExecutionProvider", "RiskCheck",
    "get_provider", "provider_names", "orders_of", "prepare_book", "PROVIDERS",
]


class RiskCheck(NamedTuple):
    passed: pd.DataFrame
    blocked: pd.DataFrame
    reasons: dict


class ExecutionProvider(Protocol):
    name: str

    def prepare(self, run: "TradeRun", snapshot: DecisionSnapshot) -> pd.DataFrame: ...

    def risk_check(self, run: "TradeRun", book: pd.DataFrame) -> RiskCheck: ...

    def execute(self, run: "TradeRun", orders: pd.DataFrame, dry_run: bool) -> FillResult: ...

    def finalize(self, run: "TradeRun", result: FillResult | None) -> None: ...


def prepare_book(run: "TradeRun", snapshot: DecisionSnapshot) -> pd.DataFrame:
    """The run's book: snapshot prices, else fallback prices; orders sized by the run's params.

    Returns the :func:`tradeloop.orders.build_book` columns plus the order columns (``client_order_id``,
    ``run_id``, ``order_type``, ``limit_price``) filled on order rows and empty on the others.
    """
    p = run.params
    targets = snapshot.weights.loc[:, ["symbol", "weight", "price", "sector", "lot_size"]].copy()
    targets["price_source"] = np.where(targets["price"].notna(), "snapshot", None)
    positions = run.positions
    if run.fallback_prices is not None:
        fb = run.fallback_prices.set_index("symbol")["price"]
        use = targets["price"].isna() & targets["symbol"].isin(fb.index)
        targets.loc[use, "price"] = targets.loc[use, "symbol"].map(fb)
        targets.loc[use, "price_source"] = "fallback"
        if positions is not None:
            positions = positions.assign(price=positions["symbol"].map(fb))
    book = build_book(targets, snapshot.portfolio_value, cash_buffer=p.cash_buffer, lot_size=p.lot_size,
                      positions=positions, cash=p.cash)
    book.loc[book["price_source"].eq("positions"), "price_source"] = "fallback"
    orders = build_orders(None, book=book, run_id=run.run_id, model_version=snapshot.model_version,
                          order_type=p.order_type, limit_offset_bps=p.limit_offset_bps)
    extra = orders.loc[:, ["symbol", "client_order_id", "run_id", "order_type", "limit_price"]]
    return book.merge(extra, on="symbol", how="left", sort=False)


def orders_of(book: pd.DataFrame) -> pd.DataFrame:
    """The order rows of a book, with exactly :data:`tradeloop.orders.ORDER_COLUMNS`."""
    return book.loc[book["client_order_id"].notna().to_numpy(), list(ORDER_COLUMNS)].reset_index(drop=True)


class BaseProvider:
    """Order building and risk shared by every provider; subclasses write :meth:`execute`."""

    name = "base"

    def prepare(self, run: "TradeRun", snapshot: DecisionSnapshot) -> pd.DataFrame:
        return prepare_book(run, snapshot)

    def risk_check(self, run: "TradeRun", book: pd.DataFrame) -> RiskCheck:
        checked = check_risk(book, run.params.risk)
        orders = checked.loc[checked["client_order_id"].notna().to_numpy()]
        blocked = orders["risk_codes"].to_numpy() != ""
        return RiskCheck(orders.loc[~blocked], orders.loc[blocked], risk_summary(orders, run.params.risk))

    def execute(self, run: "TradeRun", orders: pd.DataFrame, dry_run: bool) -> FillResult:
        raise NotImplementedError

    def finalize(self, run: "TradeRun", result: FillResult | None) -> None:
        return None

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


def _nothing_done(orders: pd.DataFrame) -> FillResult:
    return FillResult(
        orders=orders,
        fills=pd.DataFrame({c: pd.Series(dtype=object) for c in FILL_COLUMNS}),
        events=pd.DataFrame({c: pd.Series(dtype=object) for c in EVENT_COLUMNS}),
    )


class MockExecutionProvider(BaseProvider):
    """Fills every order at once at its reference price (snapshot, else fallback) through the run's slippage and
    commission models; an order without any price is REJECTED with ``missing_price``."""

    name = "mock"

    def execute(self, run: "TradeRun", orders: pd.DataFrame, dry_run: bool) -> FillResult:
        if dry_run:
            return _nothing_done(orders)
        return fill_orders(orders, slippage=run.params.slippage, commission=run.params.commission)


class LeanExecutionProvider(BaseProvider):
    """Reserved for live execution through QuantConnect Lean / Interactive Brokers; not available in this phase.

    It builds and risk-checks orders like every provider, then fails in :meth:`execute`, so the run ends
    ``failed`` with a clear error and an audit event, and its orders stay NEW.
    """

    name = "lean"

    def execute(self, run: "TradeRun", orders: pd.DataFrame, dry_run: bool) -> FillResult:
        if dry_run:
            return _nothing_done(orders)
        raise ProviderUnavailable("reserved: live Lean/IB execution is not available in this phase")


PROVIDERS: dict[str, type] = {"mock": MockExecutionProvider, "lean": LeanExecutionProvider}


def _entry_point_providers() -> dict[str, object]:
    return {ep.name: ep for ep in entry_points(group="tradeloop.providers")}


def provider_names() -> list[str]:
    """Every provider name: built-in, plus those other packages register in ``tradeloop.providers``."""
    return sorted(set(PROVIDERS) | set(_entry_point_providers()))


def get_provider(name: str) -> ExecutionProvider:
    """Instantiate the provider registered under ``name``."""
    cls = PROVIDERS.get(name)
    if cls is None:
        ep = _entry_point_providers().get(name)
        if ep is None:
            raise ValidationError(f"provider {name!r} is unknown; available: {provider_names()}")
        cls = ep.load()
    return cls()
