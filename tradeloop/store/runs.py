"""Runs in the store: frozen snapshots, runs and their inputs, orders, fills, order events and run leases.

Functions of an open DuckDB connection; :class:`tradeloop.store.db.Store` wraps each in a session (and the writes
that must be atomic in a transaction). Bulk writes scan DataFrames; uniqueness (one order per client_order_id,
one fill per fill_id) is enforced by the schema.
"""

from __future__ import annotations

from datetime import datetime

import duckdb
import pandas as pd

from ..core.snapshot import SNAPSHOT_COLUMNS, DecisionSnapshot, content_hash
from ..errors import TradeloopError
from .schema import ORDER_IDENTITY, ORDER_STATE
from .sql import fetch_dict, insert_frame, utcnow

__all__ = [
    "save_snapshot", "load_snapshot", "insert_run", "get_run", "run_inputs", "update_run", "runs", "latest_run_id",
    "insert_orders", "update_orders", "orders", "insert_fills", "fills", "insert_order_events",
    "order_events", "get_lease", "set_lease", "renew_lease", "release_lease", "batch_artifacts", "run_totals",
    "run_record", "integrity",
]

FILL_COLUMNS = ("fill_id", "run_id", "client_order_id", "seq", "qty", "price", "commission", "filled_at")
EVENT_COLUMNS = ("client_order_id", "seq", "run_id", "step", "from_status", "to_status", "qty", "price", "reason",
                 "at")


# ---------------------------------------------------------------------- snapshots
def save_snapshot(con: duckdb.DuckDBPyConnection, snapshot: DecisionSnapshot) -> bool:
    """Store a snapshot once (call inside a transaction); False when it was already stored (same content)."""
    known = con.execute("SELECT content_hash FROM decision_snapshots WHERE snapshot_id = ?",
                        [snapshot.snapshot_id]).fetchone()
    if known:
        if known[0] != snapshot.content_hash:
            raise TradeloopError(f"snapshot {snapshot.snapshot_id} is stored with different content")
        return False
    con.execute("INSERT INTO decision_snapshots VALUES (?, ?, ?, ?, ?, ?)",
                [snapshot.snapshot_id, snapshot.content_hash, snapshot.model_version, snapshot.portfolio_value,
                 len(snapshot.weights), utcnow()])
    rows = snapshot.weights.assign(snapshot_id=snapshot.snapshot_id)
    insert_frame(con, "snapshot_weights", rows, ("snapshot_id",) + SNAPSHOT_COLUMNS, ignore_conflicts=False)
    if "adv" in rows.columns:
        insert_frame(con, "snapshot_adv", rows, ("snapshot_id", "symbol", "adv"), ignore_conflicts=False)
    return True


def load_snapshot(con: duckdb.DuckDBPyConnection, snapshot_id: str, where: str) -> DecisionSnapshot:
    """Read a frozen snapshot back and check it against its content hash (``where`` names the file in errors)."""
    head = con.execute("SELECT content_hash, model_version, portfolio_value FROM decision_snapshots "
                       "WHERE snapshot_id = ?", [snapshot_id]).fetchone()
    if head is None:
        raise TradeloopError(f"snapshot {snapshot_id!r} is not in {where!r}")
    cols = ", ".join(f"w.{c}" for c in SNAPSHOT_COLUMNS)
    weights = con.execute(f"SELECT {cols}, a.adv FROM snapshot_weights w LEFT JOIN snapshot_adv a USING "
                          "(snapshot_id, symbol) WHERE w.snapshot_id = ? ORDER BY w.symbol", [snapshot_id]).df()
    if not weights["adv"].notna().any():
        weights = weights.drop(columns="adv")
    weights["symbol"] = weights["symbol"].astype(object)
    weights["sector"] = weights["sector"].astype(object).where(weights["sector"].notna(), None)
    weights["lot_size"] = weights["lot_size"].astype("int64")
    if content_hash(weights, head[1], head[2]) != head[0]:
        raise TradeloopError(f"snapshot {snapshot_id!r} was modified after it was frozen (content hash differs)")
    return DecisionSnapshot(snapshot_id, head[1], float(head[2]), weights, head[0])


# ---------------------------------------------------------------------- runs
def insert_run(con: duckdb.DuckDBPyConnection, run: dict, positions: pd.DataFrame | None,
               fallback_prices: pd.DataFrame | None) -> bool:
    """Create a queued run with its inputs (call inside a transaction); False if the run id exists already."""
    if con.execute("SELECT 1 FROM trade_runs WHERE run_id = ?", [run["run_id"]]).fetchone():
        return False
    now = utcnow()
    con.execute("INSERT INTO trade_runs (run_id, snapshot_id, provider, dry_run, status, params, attempts, "
                "created_at, updated_at) VALUES (?, ?, ?, ?, 'queued', ?, 0, ?, ?)",
                [run["run_id"], run["snapshot_id"], run["provider"], run["dry_run"], run["params"], now, now])
    if positions is not None:
        insert_frame(con, "run_positions", positions.assign(run_id=run["run_id"]), ("run_id", "symbol", "qty"),
                     ignore_conflicts=False)
    if fallback_prices is not None:
        insert_frame(con, "run_fallback_prices", fallback_prices.assign(run_id=run["run_id"]),
                     ("run_id", "symbol", "price"), ignore_conflicts=False)
    return True


def get_run(con: duckdb.DuckDBPyConnection, run_id: str) -> dict | None:
    """The ``trade_runs`` row of a run as a dict, or None."""
    return fetch_dict(con, "SELECT * FROM trade_runs WHERE run_id = ?", [run_id])


def latest_run_id(con: duckdb.DuckDBPyConnection) -> str | None:
    """The most recently created run (ties: the smallest run id), or None when there are none."""
    row = con.execute("SELECT run_id FROM trade_runs ORDER BY created_at DESC, run_id LIMIT 1").fetchone()
    return None if row is None else row[0]


def run_inputs(con: duckdb.DuckDBPyConnection, run_id: str) -> tuple[pd.DataFrame | None, pd.DataFrame | None]:
    """The positions and fallback prices a run was created with (None when it had none)."""
    pos = con.execute("SELECT symbol, qty FROM run_positions WHERE run_id = ? ORDER BY symbol", [run_id]).df()
    fb = con.execute("SELECT symbol, price FROM run_fallback_prices WHERE run_id = ? ORDER BY symbol", [run_id]).df()
    return (pos if len(pos) else None), (fb if len(fb) else None)


def run_record(con: duckdb.DuckDBPyConnection, run_id: str) -> dict | None:
    """Everything stored about a run besides its orders and fills (what its execute audit event records): ``row``
    (the ``trade_runs`` row), ``snapshot_hash`` (its snapshot's content hash, None when that row is missing),
    ``positions`` and ``fallback_prices`` (as :func:`run_inputs`), ``events`` (as :func:`order_events`) and
    ``risk_decisions`` (as :func:`risk_decisions`).
    None when there is no such run."""
    row = get_run(con, run_id)
    if row is None:
        return None
    head = con.execute("SELECT content_hash FROM decision_snapshots WHERE snapshot_id = ?",
                       [row["snapshot_id"]]).fetchone()
    positions, fallback = run_inputs(con, run_id)
    return {"row": row, "snapshot_hash": None if head is None else head[0], "positions": positions,
            "fallback_prices": fallback, "events": order_events(con, run_id),
            "risk_decisions": risk_decisions(con, run_id)}


#: Rows of a run's record that must belong to a stored run (table -> its run column).
_RUN_ROWS = ("run_positions", "run_fallback_prices", "trade_orders", "trade_fills", "order_events")


def integrity(con: duckdb.DuckDBPyConnection) -> dict[str, list[tuple]]:
    """Rows that no tradeloop workflow leaves behind, by kind (each a list of tuples; empty lists when none):

    ``weights_without_snapshot`` (snapshot_id, rows): ``snapshot_weights`` rows of no ``decision_snapshots`` row;
    ``unused_snapshots`` (snapshot_id,): snapshots no run uses (a snapshot is stored only with its run);
    ``n_symbols`` (snapshot_id, n_symbols, rows): snapshots whose ``n_symbols`` is not their number of weight rows;
    ``rows_without_run`` (table, run_id, rows): per-run rows of a run not in ``trade_runs``;
    ``stray_leases`` (run_id, status or None, leases): ``run_leases`` rows of a run that is not ``running`` (or not
    stored), or several leases of one run (a lease exists only while its run is running, one per run).
    """
    out = {
        "weights_without_snapshot": con.execute(
            "SELECT snapshot_id, count(*) FROM snapshot_weights w WHERE NOT EXISTS (SELECT 1 FROM decision_snapshots "
            "d WHERE d.snapshot_id = w.snapshot_id) GROUP BY 1 ORDER BY 1").fetchall(),
        "unused_snapshots": con.execute(
            "SELECT snapshot_id FROM decision_snapshots d WHERE NOT EXISTS (SELECT 1 FROM trade_runs r "
            "WHERE r.snapshot_id = d.snapshot_id) ORDER BY 1").fetchall(),
        "n_symbols": con.execute(
            "SELECT d.snapshot_id, d.n_symbols, coalesce(w.n, 0) FROM decision_snapshots d LEFT JOIN "
            "(SELECT snapshot_id, count(*) AS n FROM snapshot_weights GROUP BY 1) w USING (snapshot_id) "
            "WHERE d.n_symbols IS DISTINCT FROM coalesce(w.n, 0) ORDER BY 1").fetchall(),
        "rows_without_run": [],
        "stray_leases": con.execute(
            "SELECT l.run_id, r.status, count(*) FROM run_leases l LEFT JOIN trade_runs r USING (run_id) "
            "GROUP BY 1, 2 HAVING r.status IS DISTINCT FROM 'running' OR count(*) > 1 ORDER BY 1").fetchall(),
    }
    for table in _RUN_ROWS:
        out["rows_without_run"] += [(table, *r) for r in con.execute(
            f"SELECT run_id, count(*) FROM {table} t WHERE NOT EXISTS (SELECT 1 FROM trade_runs r "
            "WHERE r.run_id = t.run_id) GROUP BY 1 ORDER BY 1").fetchall()]
    # a run's decisions need its run, a simulation's its simulation
    out["rows_without_run"] += [("risk_decisions", *r) for r in con.execute(
        "SELECT coalesce(simulation_id, run_id), count(*) FROM risk_decisions t WHERE CASE WHEN simulation_id IS NULL "
        "THEN NOT EXISTS (SELECT 1 FROM trade_runs r WHERE r.run_id = t.run_id) ELSE NOT EXISTS (SELECT 1 FROM "
        "simulations s WHERE s.simulation_id = t.simulation_id) END GROUP BY 1 ORDER BY 1").fetchall()]
    return out


def update_run(con: duckdb.DuckDBPyConnection, run_id: str, **fields) -> None:
    fields["updated_at"] = utcnow()
    sets = ", ".join(f"{k} = ?" for k in fields)
    con.execute(f"UPDATE trade_runs SET {sets} WHERE run_id = ?", [*fields.values(), run_id])


def runs(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    return con.execute("SELECT run_id, snapshot_id, provider, dry_run, status, attempts, error, created_at, "
                       "finished_at FROM trade_runs ORDER BY created_at, run_id").df()


def run_list(con: duckdb.DuckDBPyConnection, limit: int | None = None) -> pd.DataFrame:
    """Runs newest first, with their snapshot's model version and their order count."""
    sql = ("SELECT r.created_at, r.run_id, s.model_version, r.snapshot_id, "
           "(SELECT count(*) FROM trade_orders o WHERE o.run_id = r.run_id) AS orders, r.status, r.attempts, "
           "r.provider, r.dry_run, r.error, r.finished_at FROM trade_runs r "
           "LEFT JOIN decision_snapshots s USING (snapshot_id) ORDER BY r.created_at DESC, r.run_id DESC")
    return con.execute(sql + (" LIMIT ?" if limit else ""), [int(limit)] if limit else []).df()


# ---------------------------------------------------------------------- orders, fills, order events
def _first_rows(con: duckdb.DuckDBPyConnection, table: str, rows: pd.DataFrame) -> bool:
    """True when no row of ``table`` belongs to the runs of ``rows`` yet (their first insert).

    Order ids hash the run id in (and fill ids extend them), so the first insert of a run's orders or fills
    cannot meet an existing key: it may skip ``ON CONFLICT``, whose per-row check costs as much as the insert
    itself. A key that did exist (a 64-bit hash collision) then fails the transaction instead of being skipped.
    """
    ids = rows["run_id"].unique().tolist()
    if len(ids) == 1:
        return not con.execute(f"SELECT 1 FROM {table} WHERE run_id = ? LIMIT 1", ids).fetchall()
    return not con.execute(f"SELECT 1 FROM {table} WHERE run_id = ANY(?) LIMIT 1", [ids]).fetchall()


def insert_orders(con: duckdb.DuckDBPyConnection, new: pd.DataFrame) -> int:
    """Insert orders as NEW; an order whose client_order_id exists is left exactly as it is."""
    if new.empty:
        return 0
    now = utcnow()
    frame = new.assign(status="NEW", filled_qty=0, avg_fill_price=float("nan"), reject_reason=None, created_at=now,
                       updated_at=now)
    return insert_frame(con, "trade_orders", frame, ORDER_IDENTITY + ORDER_STATE + ("created_at", "updated_at"),
                        ignore_conflicts=not _first_rows(con, "trade_orders", new))


def update_orders(con: duckdb.DuckDBPyConnection, changed: pd.DataFrame) -> int:
    """Write the state columns of the given orders (matched by client_order_id)."""
    if changed.empty:
        return 0
    _tradeloop_rows = changed.loc[:, ["client_order_id", *ORDER_STATE]]  # noqa: F841  (scanned by name)
    sets = ", ".join(f"{c} = u.{c}" for c in ORDER_STATE)
    return int(con.execute(f"UPDATE trade_orders SET {sets}, updated_at = ? FROM _tradeloop_rows u "
                           "WHERE trade_orders.client_order_id = u.client_order_id", [utcnow()]).fetchone()[0])


def orders(con: duckdb.DuckDBPyConnection, run_id: str, *, fill_counts: bool = True) -> pd.DataFrame:
    """A run's orders by symbol and side: the ``trade_orders`` columns, plus ``n_fills`` (its stored fills)
    unless ``fill_counts`` is false."""
    if not fill_counts:
        return con.execute("SELECT * FROM trade_orders WHERE run_id = ? ORDER BY symbol, side", [run_id]).df()
    return con.execute(
        "SELECT o.*, coalesce(f.n_fills, 0) AS n_fills FROM trade_orders o LEFT JOIN "
        "(SELECT client_order_id, count(*) AS n_fills FROM trade_fills WHERE run_id = ? GROUP BY 1) f "
        "USING (client_order_id) WHERE o.run_id = ? ORDER BY o.symbol, o.side", [run_id, run_id]).df()


def insert_fills(con: duckdb.DuckDBPyConnection, new: pd.DataFrame) -> int:
    """Insert fills; a fill whose fill_id exists is left as it is."""
    if new.empty:
        return 0
    return insert_frame(con, "trade_fills", new.assign(filled_at=utcnow()), FILL_COLUMNS,
                        ignore_conflicts=not _first_rows(con, "trade_fills", new))


def fills(con: duckdb.DuckDBPyConnection, run_id: str) -> pd.DataFrame:
    return con.execute("SELECT * FROM trade_fills WHERE run_id = ? ORDER BY fill_id", [run_id]).df()


def insert_order_events(con: duckdb.DuckDBPyConnection, events: pd.DataFrame) -> int:
    """Append order events; each order's ``seq`` continues after its last stored event."""
    if events.empty:
        return 0
    last = con.execute("SELECT client_order_id, max(seq) AS last_seq FROM order_events WHERE run_id = ANY(?) "
                       "GROUP BY 1", [events["run_id"].unique().tolist()]).df()
    ev = events.reset_index(drop=True)
    seq = ev.groupby("client_order_id", sort=False).cumcount().to_numpy(dtype="int64") + 1
    if len(last):  # orders with earlier events continue after their last one
        seq += ev["client_order_id"].map(last.set_index("client_order_id")["last_seq"]).fillna(0).to_numpy(
            dtype="int64")
    ev["seq"] = seq
    if "step" not in ev:
        ev["step"] = None
    return insert_frame(con, "order_events", ev.assign(at=utcnow()), EVENT_COLUMNS, ignore_conflicts=False)


def order_events(con: duckdb.DuckDBPyConnection, run_id: str, client_order_id: str | None = None) -> pd.DataFrame:
    """A run's order events (or one order's), ordered by client_order_id then ``seq``."""
    sql, args = "SELECT * FROM order_events WHERE run_id = ?", [run_id]
    if client_order_id is not None:
        sql, args = sql + " AND client_order_id = ?", args + [client_order_id]
    return con.execute(sql + " ORDER BY client_order_id, seq", args).df()


# ---------------------------------------------------------------------- run leases
def get_lease(con: duckdb.DuckDBPyConnection, run_id: str) -> dict | None:
    return fetch_dict(con, "SELECT * FROM run_leases WHERE run_id = ? ORDER BY acquired_at DESC LIMIT 1", [run_id])


def set_lease(con: duckdb.DuckDBPyConnection, run_id: str, owner_pid: int, owner_host: str,
              expires_at: datetime) -> None:
    now = utcnow()
    con.execute("DELETE FROM run_leases WHERE run_id = ?", [run_id])
    con.execute("INSERT INTO run_leases VALUES (?, ?, ?, ?, ?, ?)",
                [run_id, int(owner_pid), owner_host, now, now, expires_at])


def renew_lease(con: duckdb.DuckDBPyConnection, run_id: str, expires_at: datetime) -> None:
    con.execute("UPDATE run_leases SET heartbeat_at = ?, expires_at = ? WHERE run_id = ?",
                [utcnow(), expires_at, run_id])


def release_lease(con: duckdb.DuckDBPyConnection, run_id: str) -> None:
    con.execute("DELETE FROM run_leases WHERE run_id = ?", [run_id])


# ---------------------------------------------------------------------- overviews
def batch_artifacts(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """Every notebook artifact: ``run_id, notebook_path, papermill_status, nb_error, batch_id, snapshot_file``
    (no rows when the file predates ``run_artifacts``)."""
    columns = ["run_id", "notebook_path", "papermill_status", "nb_error", "batch_id", "snapshot_file"]
    if not con.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name = 'run_artifacts'").fetchone()[0]:
        return pd.DataFrame(columns=columns)
    return con.execute("SELECT run_id, notebook_path, papermill_status, error AS nb_error, batch_id, snapshot_file "
                       "FROM run_artifacts").df()


def run_totals(con: duckdb.DuckDBPyConnection) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per run: ``run_id, status, error, params, orders`` (distinct orders), and per run with fills:
    ``run_id, fills, notional`` (rounded to cents)."""
    runs_ = con.execute("SELECT r.run_id, r.status, r.error, r.params, count(DISTINCT o.client_order_id) AS orders "
                        "FROM trade_runs r LEFT JOIN trade_orders o USING (run_id) GROUP BY ALL").df()
    fills_ = con.execute("SELECT run_id, count(*) AS fills, round(sum(qty * price), 2) AS notional FROM trade_fills "
                         "GROUP BY run_id").df()
    return runs_, fills_


# ---------------------------------------------------------------------- risk decisions
#: The columns of a run's decisions (:func:`risk_decisions`), in the order their digest covers them.
RUN_DECISION_COLUMNS = ("client_order_id", "symbol", "side", "rule", "observed", "limit_value", "action",
                        "qty_before", "qty_after")


def replace_risk_decisions(con: duckdb.DuckDBPyConnection, run_id: str, decisions: pd.DataFrame) -> int:
    """A run's risk decisions (call inside the transaction that audits the attempt): the attempt's rows replace
    the run's earlier ones (the same inputs give the same decisions)."""
    con.execute("DELETE FROM risk_decisions WHERE run_id = ?", [run_id])
    if decisions is None or decisions.empty:
        return 0
    rows = decisions.rename(columns={"limit": "limit_value"}).assign(run_id=run_id)
    return insert_frame(con, "risk_decisions", rows, ("run_id",) + RUN_DECISION_COLUMNS, ignore_conflicts=False)


def risk_decisions(con: duckdb.DuckDBPyConnection, run_id: str) -> pd.DataFrame:
    """A run's risk decisions, ordered by client_order_id then rule (:data:`RUN_DECISION_COLUMNS`)."""
    cols = ", ".join(RUN_DECISION_COLUMNS)
    return con.execute(f"SELECT {cols} FROM risk_decisions WHERE run_id = ? AND simulation_id IS NULL "
                       "ORDER BY client_order_id, rule", [run_id]).df()
