"""Two ways through the engine for the same one-date case: a stored single run, and a one-date history.

The ``engine`` fixture (``conftest.py``) hands a test one :class:`Engine` per path, the way empyrical re-runs one
class of hand-computed cases across input types. Both adapters take the same inputs (a weights-and-prices table, a
portfolio value, :class:`tradeloop.RunParams`, optional positions) and return the same normalized
:class:`Outcome`, so a case states its expected orders and fills once and each path is compared with them.

* ``run``: :func:`tradeloop.freeze_snapshot` + :func:`tradeloop.run_snapshot` into a fresh DuckDB file, then the
  stored orders and fills read back through :class:`tradeloop.Store` (the snapshot's default lot size is
  ``params.lot_size``, as ``tradeloop run`` does).
* ``history``: :func:`tradeloop.simulate` over one date with the same weights, prices, positions and params.

Only the public API (``import tradeloop as tl``) is used, so refactors inside the package do not touch this file.

The one documented difference is kept visible, not normalized away: a run with any risk-flagged order ends
``blocked`` and submits nothing (the other orders stay NEW), while a simulation REJECTS only the flagged orders and
fills the rest. :attr:`Outcome.flagged` (which orders risk flagged, by which rule codes) is the same on both paths;
tests assert the path-specific rest explicitly with :attr:`Engine.name`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

import tradeloop as tl

DATE = "2024-01-02"
MODEL_VERSION = "m1"
#: Columns of :attr:`Outcome.orders` (indexed by symbol; one order per symbol in a one-date case).
ORDER_COLUMNS = ("side", "qty", "untrimmed_qty", "limit_price", "status", "filled_qty", "avg_fill_price",
                 "reject_reason", "risk_codes")
#: Columns of :attr:`Outcome.fills`, sorted by symbol then seq.
FILL_COLUMNS = ("symbol", "seq", "qty", "price", "commission")
_RISK = "risk:"


@dataclass(frozen=True, eq=False)
class Outcome:
    """What one path did with one case, in one shape for both paths.

    ``orders``: one row per order, indexed by ``symbol``, with :data:`ORDER_COLUMNS` (``reject_reason`` and
    ``risk_codes`` are ``""`` when empty). ``fills``: :data:`FILL_COLUMNS`. ``run_status``: the stored run's status
    on the ``run`` path; None on the ``history`` path (a simulation has no run status).
    """

    path: str
    orders: pd.DataFrame
    fills: pd.DataFrame
    run_status: str | None

    @property
    def flagged(self) -> dict[str, str]:
        """Symbol -> ``;``-joined risk rule codes, for every order risk flagged."""
        codes = self.orders["risk_codes"]
        return codes[codes != ""].to_dict()

    def order(self, symbol: str) -> dict:
        """One order's normalized columns as a plain dict."""
        return self.orders.loc[symbol].to_dict()

    def fill_rows(self) -> list[tuple]:
        """Fills as ``(symbol, seq, qty, price, commission)`` tuples, for exact comparison with a case table."""
        return [(s, int(q), int(n), float(p), float(c)) for s, q, n, p, c in self.fills.itertuples(index=False)]


def _text(col: pd.Series) -> pd.Series:
    """A text column with missing values as ``""`` (stored NULLs, NaN, categoricals alike)."""
    return col.astype(object).where(col.notna(), "").astype(str)


def _normal_orders(orders: pd.DataFrame, risk_codes: pd.Series) -> pd.DataFrame:
    out = pd.DataFrame({
        "symbol": _text(orders["symbol"]).to_numpy(),
        "side": _text(orders["side"]).to_numpy(),
        "qty": orders["qty"].astype("int64").to_numpy(),
        "untrimmed_qty": orders["untrimmed_qty"].astype("int64").to_numpy(),
        "limit_price": orders["limit_price"].astype(float).to_numpy(),
        "status": _text(orders["status"]).to_numpy(),
        "filled_qty": orders["filled_qty"].astype("int64").to_numpy(),
        "avg_fill_price": orders["avg_fill_price"].astype(float).to_numpy(),
        "reject_reason": _text(orders["reject_reason"]).to_numpy(),
        "risk_codes": _text(risk_codes).to_numpy(),
    })
    assert out["symbol"].is_unique, "a one-date case has one order per symbol"
    return out.set_index("symbol").sort_index().loc[:, list(ORDER_COLUMNS)]


def _normal_fills(fills: pd.DataFrame) -> pd.DataFrame:
    out = pd.DataFrame({
        "symbol": _text(fills["symbol"]).to_numpy(),
        "seq": fills["seq"].astype("int64").to_numpy(),
        "qty": fills["qty"].astype("int64").to_numpy(),
        "price": fills["price"].astype(float).to_numpy(),
        "commission": fills["commission"].astype(float).to_numpy(),
    })
    return out.sort_values(["symbol", "seq"], kind="stable").reset_index(drop=True)


class Engine:
    """One path through the engine; call it with a case's inputs to get its :class:`Outcome`."""

    name = "engine"

    def __call__(self, rows: pd.DataFrame | dict, *, value: float, params: tl.RunParams | dict | None = None,
                 positions: pd.DataFrame | dict | None = None) -> Outcome:
        rows = pd.DataFrame(rows)
        if params is None or isinstance(params, dict):
            params = tl.RunParams.from_dict(params or {})
        if positions is not None:
            positions = pd.DataFrame(positions)
        return self.run(rows, value, params, positions)

    def run(self, rows: pd.DataFrame, value: float, params: tl.RunParams,
            positions: pd.DataFrame | None) -> Outcome:
        raise NotImplementedError

    def __repr__(self) -> str:
        return self.name


class RunEngine(Engine):
    """A stored single run (mock provider) on a fresh DuckDB file."""

    name = "run"

    def __init__(self, directory: Path):
        self.directory = Path(directory)
        self.calls = 0

    def run(self, rows, value, params, positions) -> Outcome:
        self.calls += 1
        snapshot = tl.freeze_snapshot(rows, portfolio_value=value, model_version=MODEL_VERSION,
                                      default_lot_size=params.lot_size)
        with tl.Store(self.directory / f"run-{self.calls}.duckdb") as store:
            result = tl.run_snapshot(store, snapshot, params=params, positions=positions, run_id="case-run")
            orders = store.orders(result.run_id)
            fills = store.fills(result.run_id)
        reason = _text(orders["reject_reason"])
        codes = reason.where(reason.str.startswith(_RISK), "").str.removeprefix(_RISK)
        fills = fills.merge(orders[["client_order_id", "symbol"]], on="client_order_id", how="left")
        return Outcome(self.name, _normal_orders(orders, codes), _normal_fills(fills), result.status)


class HistoryEngine(Engine):
    """A one-date :func:`tradeloop.simulate` with the same inputs."""

    name = "history"

    def run(self, rows, value, params, positions) -> Outcome:
        weights = rows.loc[:, ["symbol", "weight"]].assign(date=DATE)
        prices = rows.drop(columns="weight").assign(date=DATE)
        if "price" not in prices:
            prices["price"] = np.nan
        sim = tl.simulate(weights, prices, portfolio_value=value, params=params, positions=positions,
                          model_version=MODEL_VERSION)
        orders = sim.orders
        return Outcome(self.name, _normal_orders(orders, orders["risk_codes"]), _normal_fills(sim.fills), None)


ENGINES = ("run", "history")


def make_engine(name: str, directory: Path) -> Engine:
    """The adapter called ``name`` (one of :data:`ENGINES`), storing what it writes under ``directory``."""
    if name == "run":
        return RunEngine(directory)
    if name == "history":
        return HistoryEngine()
    raise ValueError(f"no engine named {name!r}; known: {ENGINES}")
