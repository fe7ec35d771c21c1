"""Simulations in the store: write one (its rows and its ``simulation.save`` audit event) in one transaction."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pandas as pd

from ..core.codes import risk_rule_names
from ..errors import ValidationError
from .sql import fetch_dict, utcnow

__all__ = ["save_simulation", "SIM_EVENT", "SIM_RUN_COLUMNS", "get_simulation", "simulations", "simulation_runs",
           "simulation_orders"]

SIM_EVENT = "simulation.save"

#: Columns of ``simulation_runs`` taken from a simulation's summary (``portfolio`` only when it has one); the
#: ``blocked_<rule>`` counts are stored together as ``blocked_by_code`` JSON.
SIM_RUN_COLUMNS = (
    "date", "portfolio", "run_id", "portfolio_value", "cash_before", "n_orders", "n_filled", "n_blocked",
    "n_missing_price", "n_canceled", "n_partial", "buy_notional", "sell_notional", "commission", "turnover",
    "cash_after", "end_value", "gross_exposure", "net_exposure", "n_positions",
)


def save_simulation(store, sim) -> dict:
    """Persist a simulation in one transaction: its ``simulations`` row, one ``simulation_runs`` row per (date,
    portfolio), every order in ``simulation_orders``, the fills of orders filled in several steps in
    ``simulation_order_fills`` (every fill is in the ``simulation_fills`` view) and a
    ``simulation.save`` audit event carrying counts and a digest of the orders.

    Bulk writes go through Arrow scans. Idempotent: saving the same simulation again writes nothing and returns
    ``new: False``; a different simulation under an existing ``simulation_id`` is refused.

    Parameters
    ----------
    store : Store
    sim : tradeloop.workflows.history.Simulation

    Returns
    -------
    dict
        ``simulation_id``, ``new`` (bool), ``orders`` and ``runs`` (rows written).
    """
    import pyarrow as pa

    sid = sim.simulation_id
    rules = risk_rule_names()
    with store.transaction():
        existing = store.get_simulation(sid)
        if existing is not None:
            if existing["inputs_digest"] != sim.inputs_digest:
                raise ValidationError(f"simulation_id {sid!r} is stored already for different inputs")
            return {"simulation_id": sid, "new": False, "orders": 0, "runs": 0}
        constants = {"simulation_id": sid}
        if not sim.named_portfolios:
            constants["portfolio"] = ""
        table = sim._orders_arrow()
        n_orders = store.insert_arrow("simulation_orders", table, table.column_names, constants)
        if sim.fills_raw is not None:
            steps = sim._multi_fill_arrow()
            if steps.num_rows:
                store.insert_arrow("simulation_order_fills", steps, steps.column_names, constants)
        summary = sim.summary
        runs = summary.loc[:, [c for c in SIM_RUN_COLUMNS if c in summary.columns]]
        blocked = summary.loc[:, [f"blocked_{c}" for c in rules]].to_numpy()
        runs = runs.assign(blocked_by_code=[
            json.dumps({c: int(v) for c, v in zip(rules, row) if v}, sort_keys=True) for row in blocked])
        if not sim.named_portfolios:
            runs = runs.assign(portfolio="")
        run_cols = list(runs.columns)
        n_runs = store.insert_arrow("simulation_runs", pa.Table.from_pandas(runs, preserve_index=False), run_cols,
                                    {"simulation_id": sid})
        st = sim.orders_raw["status"]
        digest = hashlib.sha256()
        parts = [sim.order_keys, sim.orders_raw["qty"], st, sim.orders_raw["fill_price"], sim.orders_raw["commission"]]
        if sim.fills_raw is not None:  # partial fills: what filled is not implied by the status
            parts.append(sim.filled_qty)
        for part in parts:
            digest.update(np.ascontiguousarray(part).data)
        info = sim.describe()
        store.con.execute(
            "INSERT INTO simulations VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [sid, sim.inputs_digest, sim.model_version, json.dumps(sim.params.to_dict(), sort_keys=True),
             sim.params.order_type,
             json.dumps(sim.portfolio_value.tolist()),
             None if sim.initial_cash is None else json.dumps(sim.initial_cash.tolist()),
             json.dumps([str(p) for p in sim.portfolios]), len(sim.dates), len(sim.universe),
             pd.Timestamp(sim.dates[0]).to_pydatetime() if len(sim.dates) else None,
             pd.Timestamp(sim.dates[-1]).to_pydatetime() if len(sim.dates) else None,
             n_orders, info["fills"], info["blocked"], digest.hexdigest(), utcnow()],
        )
        store.append_audit(sid, SIM_EVENT, {**info, "inputs_digest": sim.inputs_digest,
                                            "orders_digest": digest.hexdigest(), "runs": n_runs})
    return {"simulation_id": sid, "new": True, "orders": n_orders, "runs": n_runs}


def get_simulation(con, simulation_id: str) -> dict | None:
    """The ``simulations`` row of a simulation as a dict, or None."""
    return fetch_dict(con, "SELECT * FROM simulations WHERE simulation_id = ?", [simulation_id])


def simulations(con) -> pd.DataFrame:
    return con.execute(
        "SELECT simulation_id, model_version, n_dates, n_symbols, first_date, last_date, n_orders, n_fills, "
        "n_blocked, created_at FROM simulations ORDER BY created_at, simulation_id").df()


def simulation_runs(con, simulation_id: str) -> pd.DataFrame:
    return con.execute("SELECT * FROM simulation_runs WHERE simulation_id = ? ORDER BY date, portfolio",
                       [simulation_id]).df()


def simulation_orders(con, simulation_id: str, run_id: str | None = None) -> pd.DataFrame:
    """A simulation's orders with their readable ``client_order_id`` (all of them, or one run's)."""
    where, args = "simulation_id = ?", [simulation_id]
    if run_id is not None:
        where, args = where + " AND run_id = ?", args + [run_id]
    return con.execute(f"SELECT * FROM simulation_orders_v WHERE {where} ORDER BY date, portfolio, symbol", args).df()
