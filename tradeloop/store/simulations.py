"""Simulations in the store: write one (its rows and its ``simulation.save`` audit event) in one transaction, and
read its rows back the way the event's digests cover them.

The event carries one digest per table (:data:`DIGESTS`), computed with :func:`tradeloop.core.digest.table_digest`
(the typed ``v2:`` form runs use too) from the Arrow tables the rows are written from; :func:`simulation_tables`
reads them back in the same order, so :func:`tradeloop.workflows.verify.verify_simulation` recomputes the very same
bytes. Simulations saved before that recorded only ``orders_digest`` as sha256 of raw order arrays
(:func:`legacy_orders_digest`).
"""

from __future__ import annotations

import hashlib
import json
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa

from ..core.codes import risk_rule_names
from ..core.digest import table_digest
from ..errors import ValidationError
from .sql import fetch_dict, insert_arrow, utcnow

__all__ = ["save_simulation", "SimulationRecord", "simulation_record", "simulation_totals", "TOTAL_COLUMNS",
           "SIM_EVENT", "SIM_RUN_COLUMNS", "DIGESTS", "simulation_digests",
           "legacy_orders_digest", "simulation_tables", "get_simulation", "simulations", "simulation_ids",
           "simulation_runs", "simulation_orders", "shortfall_rows", "LATER_DIGESTS"]

SIM_EVENT = "simulation.save"

#: Columns of ``simulation_runs`` taken from a simulation's summary (``portfolio`` only when it has one); the
#: ``blocked_<rule>`` counts are stored together as ``blocked_by_code`` JSON.
SIM_RUN_COLUMNS = (
    "date", "portfolio", "run_id", "portfolio_value", "cash_before", "n_orders", "n_filled", "n_blocked",
    "n_missing_price", "n_canceled", "n_partial", "buy_notional", "sell_notional", "commission", "turnover",
    "cash_after", "end_value", "gross_exposure", "net_exposure", "n_positions",
)

#: table -> (payload key of its digest, payload key of its row count, columns digested, stored order of rows)
DIGESTS = {
    "simulation_orders": ("orders_digest", "orders", (
        "date", "portfolio", "order_key", "symbol", "sell", "qty", "limit_price", "price", "sector", "lot_size",
        "target_weight", "current_qty", "untrimmed_qty", "status_code", "risk_mask", "avg_fill_price", "fill_price",
        "commission", "filled_qty", "n_fills"), ("date", "portfolio", "symbol")),
    "simulation_runs": ("runs_digest", "runs", SIM_RUN_COLUMNS + ("blocked_by_code",), ("date", "portfolio")),
    "simulation_order_fills": ("fills_digest", "order_fills", ("date", "portfolio", "order_key", "seq", "qty",
                                                               "commission"), ("date", "portfolio", "order_key",
                                                                               "seq")),
    "simulation_shortfall": ("shortfall_digest", "shortfall_rows", (
        "level", "date", "portfolio", "symbol", "sector", "item", "weight_gap", "abs_weight_gap", "contribution",
        "amount"), ("level", "date", "portfolio", "symbol", "item")),
    # every risk decision (skip, resize, reject, block) of the simulation; saved before decisions: none
    "risk_decisions": ("decisions_digest", "decisions", ("date", "portfolio", "run_id", "client_order_id", "symbol",
                                                         "side", "rule", "observed", "limit_value", "action",
                                                         "qty_before", "qty_after"),
                       ("date", "portfolio", "symbol", "rule")),
}
#: Digests a simulation saved before that table existed does not record (checked only when it has rows).
LATER_DIGESTS = {"shortfall_digest": 8, "decisions_digest": 9}


def simulation_digests(tables: dict[str, pa.Table]) -> dict[str, str]:
    """The digest of each table's rows (in their stored order): ``orders_digest``, ``runs_digest``,
    ``fills_digest``. Columns a table lacks are digested as all-null (the ``portfolio`` of a simulation without
    named portfolios is ``''``)."""
    out = {}
    for table, (key, _, columns, _) in DIGESTS.items():
        data = tables[table]
        for col in columns:
            if col not in data.column_names:
                filler = (pa.DictionaryArray.from_arrays(pa.array(np.zeros(data.num_rows, np.int32)), pa.array([""]))
                          if col == "portfolio" else pa.nulls(data.num_rows, pa.int64()))
                data = data.append_column(col, filler)
        out[key] = table_digest(data, columns)
    return out


def legacy_orders_digest(orders: pa.Table) -> str:
    """The ``orders_digest`` tradeloop wrote before :func:`simulation_digests`: sha256 of the raw bytes of
    ``order_key``, ``qty``, ``status_code``, ``fill_price``, ``commission`` and, with partial fills, ``filled_qty``."""
    parts = [("order_key", "<u8"), ("qty", "<i8"), ("status_code", "i1"), ("fill_price", "<f8"), ("commission", "<f8")]
    if orders.num_rows and orders.column("filled_qty").null_count < orders.num_rows:
        parts.append(("filled_qty", "<i8"))
    digest = hashlib.sha256()
    for col, dtype in parts:
        values = orders.column(col).to_numpy()
        digest.update(np.ascontiguousarray(values.astype(dtype)).data)
    return digest.hexdigest()


def simulation_tables(con, simulation_id: str) -> dict[str, pa.Table]:
    """A simulation's stored rows per digested table, as Arrow, in the order its digests cover them."""
    out = {}
    with warnings.catch_warnings():  # DuckDB suggests con.sql, which refuses to run after a partly fetched result
        warnings.filterwarnings("ignore", "Arrow output on a DB-API result", UserWarning)
        for table, (_, _, columns, order) in DIGESTS.items():
            sort = ", ".join(order) + (", client_order_id" if table == "risk_decisions" else "")
            out[table] = con.execute(f"SELECT {', '.join(columns)} FROM {table} WHERE simulation_id = ? "
                                     f"ORDER BY {sort}", [simulation_id]).to_arrow_table()
    return out


@dataclass(frozen=True)
class SimulationRecord:
    """What :func:`save_simulation` writes for one simulation, as plain data: its ``simulations`` row, the
    ``simulation.save`` event's totals and its rows as Arrow tables (:func:`simulation_record` builds it). Small to
    pickle, so a worker process or a Dask worker computes it and the one writing process stores it."""

    simulation_id: str
    inputs_digest: str
    row: tuple
    info: dict
    tables: dict


def simulation_record(sim) -> SimulationRecord:
    """The rows of a :class:`~tradeloop.workflows.simulation.Simulation` ready to store (pure: no database)."""
    tables = _tables(sim)
    p = sim.params
    row = (sim.model_version, json.dumps(p.to_dict(), sort_keys=True), p.order_type,
           json.dumps(sim.portfolio_value.tolist()),
           None if sim.initial_cash is None else json.dumps(sim.initial_cash.tolist()),
           json.dumps([str(x) for x in sim.portfolios]), len(sim.dates), len(sim.universe),
           pd.Timestamp(sim.dates[0]).to_pydatetime() if len(sim.dates) else None,
           pd.Timestamp(sim.dates[-1]).to_pydatetime() if len(sim.dates) else None)
    info = {**sim.describe(), "_named": bool(sim.named_portfolios)}
    return SimulationRecord(sim.simulation_id, sim.inputs_digest, row, info, tables)


def save_simulation(store, sim) -> dict:
    """Persist a simulation in one transaction: its ``simulations`` row, one ``simulation_runs`` row per (date,
    portfolio), every order in ``simulation_orders``, the fills of orders filled in several steps in
    ``simulation_order_fills`` (every fill is in the ``simulation_fills`` view) and a ``simulation.save`` audit
    event carrying counts and a digest of each of those tables (:func:`simulation_digests`).

    Bulk writes go through Arrow scans. Idempotent: saving the same simulation again writes nothing and returns
    ``new: False``; a different simulation under an existing ``simulation_id`` is refused.

    Parameters
    ----------
    store : Store
    sim : tradeloop.workflows.history.Simulation or SimulationRecord
        A simulation, or its rows computed elsewhere (:func:`simulation_record`).

    Returns
    -------
    dict
        ``simulation_id``, ``new`` (bool), ``orders`` and ``runs`` (rows written).
    """
    sid = sim.simulation_id
    with store.transaction():
        existing = store.get_simulation(sid)
        if existing is not None:
            if existing["inputs_digest"] != sim.inputs_digest:
                raise ValidationError(f"simulation_id {sid!r} is stored already for different inputs")
            return {"simulation_id": sid, "new": False, "orders": 0, "runs": 0}
        rec = sim if isinstance(sim, SimulationRecord) else simulation_record(sim)
        counts = _write(store, rec)
    return {"simulation_id": sid, "new": True, "orders": counts["simulation_orders"],
            "runs": counts["simulation_runs"]}


def _write(store, rec: SimulationRecord) -> dict:
    """Insert a record's rows, its ``simulations`` row and its audit event (inside the caller's transaction)."""
    constants = {"simulation_id": rec.simulation_id}
    info = {k: v for k, v in rec.info.items() if not k.startswith("_")}
    if not rec.info["_named"]:
        constants["portfolio"] = ""
    counts = {}
    for table, data in rec.tables.items():
        extra = {k: v for k, v in constants.items() if k not in data.column_names}
        counts[table] = insert_arrow(store.con, table, data, data.column_names, extra) if data.num_rows else 0
    digests = simulation_digests(rec.tables)
    store.con.execute(
        "INSERT INTO simulations VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [rec.simulation_id, rec.inputs_digest, *rec.row, counts["simulation_orders"], info["fills"], info["blocked"],
         digests["orders_digest"], utcnow()],
    )
    store.append_audit(rec.simulation_id, SIM_EVENT, {
        **info, **digests, "inputs_digest": rec.inputs_digest, "runs": counts["simulation_runs"],
        "order_fills": counts["simulation_order_fills"], "shortfall_rows": counts["simulation_shortfall"],
        "decisions": counts["risk_decisions"]})
    return counts


def _tables(sim) -> dict[str, pa.Table]:
    """The rows of a simulation per table, as Arrow, in their stored order (see :data:`DIGESTS`)."""
    rules = risk_rule_names()
    summary = sim.summary
    runs = summary.loc[:, [c for c in SIM_RUN_COLUMNS if c in summary.columns]]
    blocked = summary.loc[:, [f"blocked_{c}" for c in rules]].to_numpy()
    runs = runs.assign(blocked_by_code=[
        json.dumps({c: int(v) for c, v in zip(rules, row) if v}, sort_keys=True) for row in blocked])
    fills = sim.multi_fill_arrow() if sim.fills_raw is not None else pa.table({})
    if fills.num_rows:
        fills = fills.sort_by([(c, "ascending") for c in ("date", "portfolio", "order_key", "seq")
                               if c in fills.column_names])
    decisions = sim.risk_decisions.rename(columns={"limit": "limit_value"})
    decisions = decisions.sort_values(["date", "portfolio", "symbol", "rule", "client_order_id"], kind="stable")
    return {"simulation_orders": sim.orders_arrow(),
            "simulation_runs": pa.Table.from_pandas(runs, preserve_index=False),
            "simulation_order_fills": fills, "simulation_shortfall": sim.shortfall_arrow(),
            "risk_decisions": pa.Table.from_pandas(decisions, preserve_index=False)}


def shortfall_rows(con, simulation_id: str) -> pd.DataFrame:
    """A simulation's ``simulation_shortfall`` rows (empty when it was saved before they were recorded)."""
    exists = con.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name = 'simulation_shortfall'").fetchone()[0]
    if not exists:
        return pd.DataFrame(columns=list(DIGESTS["simulation_shortfall"][2]))
    cols = ", ".join(DIGESTS["simulation_shortfall"][2])
    return con.execute(f"SELECT {cols} FROM simulation_shortfall WHERE simulation_id = ? ORDER BY level, date, "
                       "portfolio, symbol, item", [simulation_id]).df()


def get_simulation(con, simulation_id: str) -> dict | None:
    """The ``simulations`` row of a simulation as a dict, or None."""
    return fetch_dict(con, "SELECT * FROM simulations WHERE simulation_id = ?", [simulation_id])


def simulation_ids(con) -> list[str]:
    return [r[0] for r in con.execute("SELECT simulation_id FROM simulations ORDER BY simulation_id").fetchall()]


def simulations(con) -> pd.DataFrame:
    return con.execute(
        "SELECT simulation_id, model_version, n_dates, n_symbols, first_date, last_date, n_orders, n_fills, "
        "n_blocked, created_at FROM simulations ORDER BY created_at, simulation_id").df()


def simulation_runs(con, simulation_id: str) -> pd.DataFrame:
    return con.execute("SELECT * FROM simulation_runs WHERE simulation_id = ? ORDER BY date, portfolio",
                       [simulation_id]).df()


def simulation_decisions(con, simulation_id: str) -> pd.DataFrame:
    """A simulation's risk decisions (``risk_decisions`` rows), ordered by date, portfolio, symbol, rule."""
    return con.execute("SELECT date, portfolio, run_id, client_order_id, symbol, side, rule, observed, limit_value, "
                       "action, qty_before, qty_after FROM risk_decisions WHERE simulation_id = ? ORDER BY date, "
                       "portfolio, symbol, rule, client_order_id", [simulation_id]).df()


def simulation_orders(con, simulation_id: str, run_id: str | None = None) -> pd.DataFrame:
    """A simulation's orders with their readable ``client_order_id`` (all of them, or one run's)."""
    where, args = "simulation_id = ?", [simulation_id]
    if run_id is not None:
        where, args = where + " AND run_id = ?", args + [run_id]
    return con.execute(f"SELECT * FROM simulation_orders_v WHERE {where} ORDER BY date, portfolio, symbol", args).df()


#: Columns of :func:`simulation_totals`.
TOTAL_COLUMNS = ("simulation_id", "start_value", "final_value", "return", "turnover", "commission", "slippage",
                 "costs", "orders", "filled", "blocked", "missing_price", "canceled")


def simulation_totals(con, simulation_ids: list[str]) -> pd.DataFrame:
    """One row of totals per stored simulation, read from its rows (so a simulation stored earlier reads the same).

    ``start_value`` / ``final_value``: portfolio value on the first date and value after the last date's fills,
    summed over portfolios; ``return`` their ratio − 1; ``turnover`` the sum over dates of (buy + sell) / value,
    averaged over portfolios; ``commission``; ``slippage`` what fills cost against the quote (Σ filled × adverse
    price difference); ``costs`` their sum; order counts by outcome.
    """
    runs = con.execute(
        "WITH r AS (SELECT * FROM simulation_runs WHERE list_contains(?, simulation_id)), "
        "b AS (SELECT simulation_id, min(date) AS d0, max(date) AS d1, count(DISTINCT portfolio) AS np FROM r "
        "GROUP BY 1) "
        "SELECT r.simulation_id, sum(portfolio_value) FILTER (WHERE date = d0) AS start_value, "
        "sum(end_value) FILTER (WHERE date = d1) AS final_value, sum(turnover) / any_value(np) AS turnover, "
        "sum(commission) AS commission, sum(n_orders) AS orders, sum(n_filled) AS filled, sum(n_blocked) AS blocked, "
        "sum(n_missing_price) AS missing_price, sum(n_canceled) AS canceled "
        "FROM r JOIN b USING (simulation_id) GROUP BY 1", [list(simulation_ids)]).df()
    slip = con.execute(
        "SELECT simulation_id, coalesce(sum(filled_qty * CASE WHEN sell THEN price - coalesce(avg_fill_price, "
        "fill_price) ELSE coalesce(avg_fill_price, fill_price) - price END), 0) AS slippage FROM simulation_orders "
        "WHERE list_contains(?, simulation_id) AND filled_qty > 0 GROUP BY 1", [list(simulation_ids)]).df()
    out = runs.merge(slip, on="simulation_id", how="left").fillna({"slippage": 0.0})
    out["return"] = out["final_value"] / out["start_value"] - 1
    out["costs"] = out["commission"] + out["slippage"]
    for c in ("orders", "filled", "blocked", "missing_price", "canceled"):
        out[c] = out[c].astype("int64")
    return out.loc[:, list(TOTAL_COLUMNS)]
