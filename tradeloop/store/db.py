"""Store: the DuckDB file holding snapshots, runs, orders, fills, order events and the audit trail.

The only object that touches the database. Bulk writes go through registered DataFrames (columnar scans), never
row-by-row inserts; uniqueness (one order per client_order_id, one fill per fill_id) is enforced by the schema.
Write methods do not commit on their own: callers group them with :meth:`Store.transaction` so that every state
change is all-or-nothing.
"""

from __future__ import annotations

import functools
import os
import re
import time
import uuid
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

import duckdb
import pandas as pd

from ..core.digest import GENESIS_HASH, canonical_json, event_hash
from ..core.snapshot import SNAPSHOT_COLUMNS, DecisionSnapshot, content_hash
from ..errors import RunNotFound, StoreBusy, TradeloopError, ValidationError

__all__ = ["Store", "default_db_path", "lock_timeout", "SCHEMA_VERSION", "utcnow"]

DEFAULT_DB = "tradeloop.duckdb"
DEFAULT_LOCK_TIMEOUT = 30.0

_SCHEMA_V1 = """
CREATE TABLE IF NOT EXISTS decision_snapshots (
    snapshot_id VARCHAR PRIMARY KEY, content_hash VARCHAR NOT NULL, model_version VARCHAR NOT NULL,
    portfolio_value DOUBLE NOT NULL, n_symbols INTEGER NOT NULL, created_at TIMESTAMP NOT NULL);
CREATE TABLE IF NOT EXISTS snapshot_weights (
    snapshot_id VARCHAR NOT NULL, symbol VARCHAR NOT NULL, weight DOUBLE NOT NULL, price DOUBLE, sector VARCHAR,
    lot_size BIGINT NOT NULL, volume DOUBLE, PRIMARY KEY (snapshot_id, symbol));
CREATE TABLE IF NOT EXISTS trade_runs (
    run_id VARCHAR PRIMARY KEY, snapshot_id VARCHAR NOT NULL, provider VARCHAR NOT NULL, dry_run BOOLEAN NOT NULL,
    status VARCHAR NOT NULL, params JSON NOT NULL, error VARCHAR, attempts INTEGER NOT NULL DEFAULT 0,
    created_at TIMESTAMP NOT NULL, started_at TIMESTAMP, finished_at TIMESTAMP, updated_at TIMESTAMP NOT NULL);
CREATE TABLE IF NOT EXISTS run_positions (
    run_id VARCHAR NOT NULL, symbol VARCHAR NOT NULL, qty BIGINT NOT NULL, PRIMARY KEY (run_id, symbol));
CREATE TABLE IF NOT EXISTS run_fallback_prices (
    run_id VARCHAR NOT NULL, symbol VARCHAR NOT NULL, price DOUBLE NOT NULL, PRIMARY KEY (run_id, symbol));
CREATE TABLE IF NOT EXISTS trade_orders (
    client_order_id VARCHAR PRIMARY KEY, run_id VARCHAR NOT NULL, symbol VARCHAR NOT NULL, side VARCHAR NOT NULL,
    qty BIGINT NOT NULL, order_type VARCHAR NOT NULL, limit_price DOUBLE, price DOUBLE, price_source VARCHAR,
    sector VARCHAR, lot_size BIGINT NOT NULL, target_weight DOUBLE NOT NULL, current_qty BIGINT NOT NULL,
    target_qty BIGINT NOT NULL, untrimmed_qty BIGINT NOT NULL, status VARCHAR NOT NULL,
    filled_qty BIGINT NOT NULL DEFAULT 0, avg_fill_price DOUBLE, reject_reason VARCHAR,
    created_at TIMESTAMP NOT NULL, updated_at TIMESTAMP NOT NULL);
CREATE INDEX IF NOT EXISTS trade_orders_run ON trade_orders (run_id);
CREATE TABLE IF NOT EXISTS trade_fills (
    fill_id VARCHAR PRIMARY KEY, run_id VARCHAR NOT NULL, client_order_id VARCHAR NOT NULL, seq INTEGER NOT NULL,
    qty BIGINT NOT NULL, price DOUBLE NOT NULL, commission DOUBLE NOT NULL, filled_at TIMESTAMP NOT NULL);
CREATE INDEX IF NOT EXISTS trade_fills_run ON trade_fills (run_id);
CREATE TABLE IF NOT EXISTS order_events (
    client_order_id VARCHAR NOT NULL, seq INTEGER NOT NULL, run_id VARCHAR NOT NULL, from_status VARCHAR NOT NULL,
    to_status VARCHAR NOT NULL, qty BIGINT, price DOUBLE, reason VARCHAR, "at" TIMESTAMP NOT NULL,
    PRIMARY KEY (client_order_id, seq));
CREATE TABLE IF NOT EXISTS audit_events (
    event_id VARCHAR PRIMARY KEY, seq BIGINT NOT NULL UNIQUE, run_id VARCHAR, event_type VARCHAR NOT NULL,
    payload JSON NOT NULL, prev_hash VARCHAR NOT NULL, event_hash VARCHAR NOT NULL, created_at TIMESTAMP NOT NULL);
"""

#: v4: who is executing a run. A row exists while a run is ``running``; a run left ``running`` whose owner process is
#: dead (same host) or whose lease expired is abandoned and may be taken over (see :mod:`tradeloop.workflows.run`).
#: No primary key: a lease is deleted and re-inserted in one transaction, and the table stays tiny.
_SCHEMA_V4 = """
CREATE TABLE IF NOT EXISTS run_leases (
    run_id VARCHAR NOT NULL, owner_pid INTEGER NOT NULL, owner_host VARCHAR NOT NULL, acquired_at TIMESTAMP NOT NULL,
    heartbeat_at TIMESTAMP NOT NULL, expires_at TIMESTAMP NOT NULL);
"""

#: The part of ``simulation_orders_v`` that v3 and v6 share: risk codes decoded from the bitmask, and the readable
#: client_order_id formatted from the order key exactly as :func:`tradeloop.core.sizing.format_client_order_ids` does.
_SIM_ORDER_COLUMNS = """\
            concat_ws(';',
                CASE WHEN o.risk_mask & 1 <> 0 THEN 'max_order_notional' END,
                CASE WHEN o.risk_mask & 2 <> 0 THEN 'max_position_ratio' END,
                CASE WHEN o.risk_mask & 4 <> 0 THEN 'single_name_cap' END,
                CASE WHEN o.risk_mask & 8 <> 0 THEN 'sector_cap' END,
                CASE WHEN o.risk_mask & 16 <> 0 THEN 'max_gross_exposure' END,
                CASE WHEN o.risk_mask & 32 <> 0 THEN 'no_short' END) AS risk_codes
        FROM simulation_orders o JOIN simulations s USING (simulation_id)
        JOIN simulation_runs r USING (simulation_id, date, portfolio))
    SELECT simulation_id, run_id, date, portfolio,
        symbol || '-' || left(side, 1) || '-' || (
            SELECT string_agg(substr('0123456789abcdefghjkmnpqrstvwxyz', ((order_key >> (60 - 5 * i)) & 31)::INTEGER + 1, 1), '' ORDER BY i)
            FROM range(13) r(i)) AS client_order_id,
"""

#: v3: simulations (issue 4).
_SCHEMA_V3 = """
CREATE TABLE IF NOT EXISTS simulations (
    simulation_id VARCHAR PRIMARY KEY, inputs_digest VARCHAR NOT NULL, model_version VARCHAR NOT NULL,
    params JSON NOT NULL, order_type VARCHAR NOT NULL, portfolio_value JSON NOT NULL, initial_cash JSON,
    portfolios JSON NOT NULL, n_dates INTEGER NOT NULL, n_symbols INTEGER NOT NULL, first_date TIMESTAMP,
    last_date TIMESTAMP, n_orders BIGINT NOT NULL, n_fills BIGINT NOT NULL, n_blocked BIGINT NOT NULL,
    orders_digest VARCHAR NOT NULL, created_at TIMESTAMP NOT NULL);
CREATE TABLE IF NOT EXISTS simulation_runs (
    simulation_id VARCHAR NOT NULL, run_id VARCHAR NOT NULL, date TIMESTAMP NOT NULL, portfolio VARCHAR NOT NULL,
    portfolio_value DOUBLE NOT NULL, cash_before DOUBLE NOT NULL, n_orders BIGINT NOT NULL, n_filled BIGINT NOT NULL,
    n_blocked BIGINT NOT NULL, n_missing_price BIGINT NOT NULL, n_canceled BIGINT NOT NULL,
    buy_notional DOUBLE NOT NULL, sell_notional DOUBLE NOT NULL, commission DOUBLE NOT NULL, turnover DOUBLE,
    cash_after DOUBLE NOT NULL, end_value DOUBLE NOT NULL, gross_exposure DOUBLE, net_exposure DOUBLE,
    n_positions BIGINT NOT NULL, blocked_by_code JSON NOT NULL, PRIMARY KEY (simulation_id, run_id));
-- Orders as a compact fact table (numbers and two dictionary-encoded names); simulation_orders_v adds the
-- readable columns of trade_orders: run_id, client_order_id, side, order_type, target_qty, status, filled_qty,
-- risk_codes, reject_reason.
CREATE TABLE IF NOT EXISTS simulation_orders (
    simulation_id VARCHAR NOT NULL, date TIMESTAMP NOT NULL, portfolio VARCHAR NOT NULL, order_key UBIGINT NOT NULL,
    symbol VARCHAR NOT NULL, sell BOOLEAN NOT NULL, qty BIGINT NOT NULL, limit_price DOUBLE, price DOUBLE,
    sector VARCHAR, lot_size BIGINT NOT NULL, target_weight DOUBLE NOT NULL, current_qty BIGINT NOT NULL,
    untrimmed_qty BIGINT NOT NULL, status_code TINYINT NOT NULL, risk_mask UTINYINT NOT NULL,
    avg_fill_price DOUBLE, fill_price DOUBLE, commission DOUBLE NOT NULL);
CREATE OR REPLACE VIEW simulation_orders_v AS
    WITH o AS (
        SELECT o.*, r.run_id, s.order_type, CASE WHEN o.sell THEN 'SELL' ELSE 'BUY' END AS side,
{_SIM_ORDER_COLUMNS}        order_key, symbol, side, qty, order_type, limit_price, price, sector, lot_size, target_weight, current_qty,
        current_qty + CASE WHEN sell THEN -qty ELSE qty END AS target_qty, untrimmed_qty,
        CASE status_code WHEN 0 THEN 'FILLED' WHEN 3 THEN 'CANCELED' ELSE 'REJECTED' END AS status,
        CASE WHEN status_code = 0 THEN qty ELSE 0 END AS filled_qty, avg_fill_price, fill_price, commission,
        risk_codes,
        CASE status_code WHEN 1 THEN 'risk:' || risk_codes WHEN 2 THEN 'missing_price'
            WHEN 3 THEN 'unfilled_at_close' END AS reject_reason
    FROM o;
CREATE OR REPLACE VIEW simulation_fills AS
    SELECT simulation_id, run_id, date, portfolio, client_order_id || '-1' AS fill_id, client_order_id, 1 AS seq,
           filled_qty AS qty, fill_price AS price, commission
    FROM simulation_orders_v WHERE filled_qty > 0;
"""
_SCHEMA_V3 = _SCHEMA_V3.replace("{_SIM_ORDER_COLUMNS}", _SIM_ORDER_COLUMNS)

#: v6: partial fills in simulations (issue 6). ``filled_qty`` / ``n_fills`` are NULL for an order that fills whole or
#: not at all (rows written before v6, or without a liquidity model): the status says which. An order filled over
#: several steps (``n_fills > 1``) has one ``simulation_order_fills`` row per fill; every other filled order is its
#: own single fill (seq 1), so the fast path writes no fill rows at all.
_SCHEMA_V6 = """
ALTER TABLE simulation_orders ADD COLUMN IF NOT EXISTS filled_qty BIGINT;
ALTER TABLE simulation_orders ADD COLUMN IF NOT EXISTS n_fills INTEGER;
ALTER TABLE simulation_runs ADD COLUMN IF NOT EXISTS n_partial BIGINT;
CREATE TABLE IF NOT EXISTS simulation_order_fills (
    simulation_id VARCHAR NOT NULL, date TIMESTAMP NOT NULL, portfolio VARCHAR NOT NULL, order_key UBIGINT NOT NULL,
    seq INTEGER NOT NULL, qty BIGINT NOT NULL, commission DOUBLE NOT NULL,
    PRIMARY KEY (simulation_id, date, portfolio, order_key, seq));
CREATE OR REPLACE VIEW simulation_orders_v AS
    WITH o AS (
        SELECT o.*, r.run_id, s.order_type, CASE WHEN o.sell THEN 'SELL' ELSE 'BUY' END AS side,
{_SIM_ORDER_COLUMNS}        order_key, symbol, side, qty, order_type, limit_price, price, sector, lot_size, target_weight, current_qty,
        current_qty + CASE WHEN sell THEN -qty ELSE qty END AS target_qty, untrimmed_qty,
        CASE status_code WHEN 0 THEN 'FILLED' WHEN 3 THEN 'CANCELED' ELSE 'REJECTED' END AS status,
        coalesce(filled_qty, CASE WHEN status_code = 0 THEN qty ELSE 0 END) AS filled_qty,
        coalesce(n_fills, CASE WHEN status_code = 0 THEN 1 ELSE 0 END) AS n_fills, avg_fill_price, fill_price,
        commission, risk_codes,
        CASE status_code WHEN 1 THEN 'risk:' || risk_codes WHEN 2 THEN 'missing_price'
            WHEN 3 THEN 'unfilled_at_close' END AS reject_reason
    FROM o;
CREATE OR REPLACE VIEW simulation_fills AS
    SELECT simulation_id, run_id, date, portfolio, client_order_id || '-1' AS fill_id, client_order_id, 1 AS seq,
           filled_qty AS qty, fill_price AS price, commission
    FROM simulation_orders_v WHERE filled_qty > 0 AND n_fills = 1
    UNION ALL
    SELECT o.simulation_id, o.run_id, o.date, o.portfolio, o.client_order_id || '-' || f.seq AS fill_id,
           o.client_order_id, f.seq, f.qty, o.fill_price AS price, f.commission
    FROM simulation_orders_v o JOIN simulation_order_fills f USING (simulation_id, date, portfolio, order_key)
    WHERE o.n_fills > 1;
"""
_SCHEMA_V6 = _SCHEMA_V6.replace("{_SIM_ORDER_COLUMNS}", _SIM_ORDER_COLUMNS)

#: Schema migrations, applied in order, each in the same transaction as its ``schema_version`` row. Every version
#: missing from ``schema_version`` is applied, so a file written by any earlier tradeloop is brought up to date.
#: Add a new (version, sql) pair at the end; never edit one that has shipped.
MIGRATIONS: list[tuple[int, str]] = [
    (1, _SCHEMA_V1),
    (2, """
CREATE TABLE IF NOT EXISTS run_artifacts (
    run_id VARCHAR PRIMARY KEY, notebook_path VARCHAR NOT NULL, source_notebook VARCHAR, sha256 VARCHAR NOT NULL,
    parameters JSON NOT NULL, papermill_status VARCHAR NOT NULL, error VARCHAR, batch_id VARCHAR,
    snapshot_file VARCHAR, created_at TIMESTAMP NOT NULL);
CREATE INDEX IF NOT EXISTS run_artifacts_batch ON run_artifacts (batch_id);
"""),  # v2 (issue 3): run_artifacts, one executed-notebook artifact per run (re-running replaces it)
    (3, _SCHEMA_V3),  # issue 4: simulations, their per-date runs and orders
    # v4 (issue 5): run ownership / leases
    (4, _SCHEMA_V4),
    # v5 (issue 6): the execution step of each order event (multi-step runs: PARTIAL fills, then close)
    (5, "ALTER TABLE order_events ADD COLUMN IF NOT EXISTS step INTEGER;"),
    # v6 (issue 6): simulations with a liquidity model and several steps: partial fills, several fills per order
    (6, _SCHEMA_V6),
]
SCHEMA_VERSION = max(v for v, _ in MIGRATIONS)

#: Order columns the loop writes once (identity) and the ones execution updates (state).
ORDER_IDENTITY = (
    "client_order_id", "run_id", "symbol", "side", "qty", "order_type", "limit_price", "price", "price_source",
    "sector", "lot_size", "target_weight", "current_qty", "target_qty", "untrimmed_qty",
)
ORDER_STATE = ("status", "filled_qty", "avg_fill_price", "reject_reason")
_LOCK_ERROR = re.compile(r"lock|Conflicting", re.IGNORECASE)


def utcnow() -> datetime:
    """Naive UTC timestamp (DuckDB TIMESTAMP columns carry no zone)."""
    return datetime.now(timezone.utc).replace(tzinfo=None)


def _check_timeout(value, what: str) -> float:
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        raise ValidationError(f"{what} is {value!r}; it must be a number of seconds >= 0") from None
    if not (seconds >= 0 and seconds < float("inf")):
        raise ValidationError(f"{what} is {value!r}; it must be a number of seconds >= 0")
    return seconds


def lock_timeout() -> float:
    """Seconds a Store waits for another process to release the file: ``$TRADELOOP_LOCK_TIMEOUT``, default 30."""
    raw = os.environ.get("TRADELOOP_LOCK_TIMEOUT")
    return DEFAULT_LOCK_TIMEOUT if raw in (None, "") else _check_timeout(raw, "TRADELOOP_LOCK_TIMEOUT")


def _in_session(method):
    """Run a Store method inside a session: the file is opened for the call (unless one is open) and released."""

    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        with self.session():
            return method(self, *args, **kwargs)

    return wrapper


def default_db_path() -> Path:
    """``$TRADELOOP_DB`` if set, else ``./tradeloop.duckdb``."""
    return Path(os.environ.get("TRADELOOP_DB") or DEFAULT_DB)


class Store:
    """A tradeloop database file. Use as a context manager; writes go inside :meth:`transaction`.

    A Store does not hold the file while idle: each method opens it for its own duration (:meth:`session` holds it
    across several calls), because DuckDB lets only one process at a time open a file for writing. A process that
    finds the file held waits, up to ``timeout`` seconds, then raises :class:`StoreBusy` naming the holder's pid.

    Parameters
    ----------
    path : str or Path, optional
        The DuckDB file (created if absent); default :func:`default_db_path`.
    timeout : float, optional
        Seconds to wait while another process holds the file before raising :class:`StoreBusy`; default
        ``$TRADELOOP_LOCK_TIMEOUT``, else 30.
    read_only : bool
        Open without write access (several readers may share a file no writer holds).
    """

    def __init__(self, path: str | Path | None = None, *, timeout: float | None = None, read_only: bool = False):
        self.path = Path(path) if path is not None else default_db_path()
        if self.path.is_dir():
            raise ValidationError(f"database path {str(self.path)!r} is a directory; give a file name")
        if not read_only:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        elif not self.path.exists():
            raise ValidationError(f"database {str(self.path)!r} does not exist")
        self.timeout = lock_timeout() if timeout is None else _check_timeout(timeout, "timeout")
        self.read_only = read_only
        self._con: duckdb.DuckDBPyConnection | None = None
        self._pinned = False
        self._in_tx = False
        if str(path) == ":memory:":  # an in-memory database lives only as long as its connection: keep it open
            _ = self.con
        if not read_only:
            with self.session():
                self._migrate()

    def _connect(self, timeout: float, read_only: bool) -> duckdb.DuckDBPyConnection:
        deadline = time.monotonic() + timeout
        delay = 0.02
        while True:
            try:
                return duckdb.connect(str(self.path), read_only=read_only)
            except duckdb.ConnectionException as e:
                # This process already has the file open read-write (e.g. a notebook inside ``session()``): DuckDB
                # refuses a second configuration, so a reader shares the open database instead.
                if read_only and "different configuration" in str(e):
                    return duckdb.connect(str(self.path), read_only=False)
                raise TradeloopError(f"cannot open database {str(self.path)!r}: {e}") from None
            except duckdb.IOException as e:
                if not _LOCK_ERROR.search(str(e)):
                    raise TradeloopError(f"cannot open database {str(self.path)!r}: {e}") from None
                if time.monotonic() >= deadline:
                    holder = re.search(r"held in (.*?) \(PID (\d+)\)", str(e)) or re.search(r"\(PID (\d+)\)", str(e))
                    if holder is None:
                        who = "another process"
                    elif holder.lastindex == 2:
                        who = f"process {holder.group(2)} ({holder.group(1)})"
                    else:
                        who = f"process {holder.group(1)}"
                    raise StoreBusy(
                        f"database {str(self.path)!r} is in use by {who}; waited {timeout:g}s "
                        "(close the other session, or raise the wait with Store(timeout=...) or "
                        "TRADELOOP_LOCK_TIMEOUT)"
                    ) from None
                time.sleep(delay)
                delay = min(delay * 2, 0.5)

    @contextmanager
    def session(self):
        """Hold the database file for a block of operations and yield the connection.

        Every public method opens the file when it starts and releases it when it returns, so an idle Store (a
        notebook's, say) never blocks another process; wrap several calls in ``session()`` to pay for one open and
        to keep other processes out between them. Opening waits up to ``timeout`` seconds for another process to
        release the file, then raises :class:`StoreBusy` naming that process. Nested use joins the open session.
        """
        if self._con is not None:
            yield self._con
            return
        self._con = self._connect(self.timeout, self.read_only)
        try:
            yield self._con
        finally:
            con, self._con = self._con, None
            self._in_tx = False
            con.close()

    @property
    def con(self) -> duckdb.DuckDBPyConnection:
        """The open connection. Outside :meth:`session` this opens one and keeps it (and the file) until
        :meth:`close`: fine for a quick query, but prefer ``with store.session() as con``."""
        if self._con is None:
            self._con = self._connect(self.timeout, self.read_only)
            self._pinned = True
        return self._con

    def close(self) -> None:
        """Release the file if a connection is still open (the Store stays usable: the next call reopens it)."""
        if self._con is not None and not self._in_tx:
            self._con.close()
            self._con = None
            self._pinned = False

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @contextmanager
    def transaction(self):
        """All writes inside commit together or not at all. Nested use joins the outer transaction."""
        if self._in_tx:
            yield self
            return
        with self.session() as con:
            con.execute("BEGIN TRANSACTION")
            self._in_tx = True
            try:
                yield self
            except BaseException:
                con.execute("ROLLBACK")
                raise
            else:
                con.execute("COMMIT")
            finally:
                self._in_tx = False

    # ------------------------------------------------------------------ schema
    def _migrate(self) -> None:
        with self.transaction():
            self.con.execute(
                "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL, applied_at TIMESTAMP NOT NULL)"
            )
            applied = {r[0] for r in self.con.execute("SELECT version FROM schema_version").fetchall()}
            if applied and max(applied) > SCHEMA_VERSION:
                raise TradeloopError(
                    f"database {str(self.path)!r} has schema version {max(applied)}; this tradeloop reads up to "
                    f"{SCHEMA_VERSION} (upgrade tradeloop)"
                )
            for version, sql in MIGRATIONS:
                if version not in applied:
                    self.con.execute(sql)
                    self.con.execute("INSERT INTO schema_version VALUES (?, ?)", [version, utcnow()])

    @_in_session
    def schema_version(self) -> int:
        return int(self.con.execute("SELECT max(version) FROM schema_version").fetchone()[0])

    @_in_session
    def _insert_frame(self, table: str, df: pd.DataFrame, columns, *, ignore_conflicts: bool = True) -> int:
        """Bulk insert through a DataFrame scan; returns how many rows were new.

        The frame is found by DuckDB's replacement scan (a local variable named in the query) rather than
        ``register``, which creates and drops a view in the catalog: ~1.5 ms per insert, a run makes five.
        """
        if df.empty:
            return 0
        _tradeloop_rows = df.loc[:, list(columns)]  # noqa: F841  (scanned by name)
        cols = ", ".join(f'"{c}"' for c in columns)
        conflict = " ON CONFLICT DO NOTHING" if ignore_conflicts else ""
        return int(self.con.execute(
            f"INSERT INTO {table} ({cols}) SELECT {cols} FROM _tradeloop_rows{conflict}").fetchone()[0])

    def _unregister(self, name: str) -> None:
        try:
            self.con.unregister(name)
        except duckdb.TransactionException:
            pass  # the statement failed and aborted the transaction: keep its error, not this one (issue 6)

    # ------------------------------------------------------------------ snapshots
    def save_snapshot(self, snapshot: DecisionSnapshot) -> bool:
        """Store a snapshot once; returns False when it was already stored (same content, same id)."""
        with self.transaction():
            known = self.con.execute(
                "SELECT content_hash FROM decision_snapshots WHERE snapshot_id = ?", [snapshot.snapshot_id]
            ).fetchone()
            if known:
                if known[0] != snapshot.content_hash:
                    raise TradeloopError(f"snapshot {snapshot.snapshot_id} is stored with different content")
                return False
            self.con.execute(
                "INSERT INTO decision_snapshots VALUES (?, ?, ?, ?, ?, ?)",
                [snapshot.snapshot_id, snapshot.content_hash, snapshot.model_version, snapshot.portfolio_value,
                 len(snapshot.weights), utcnow()],
            )
            self._insert_frame("snapshot_weights", snapshot.weights.assign(snapshot_id=snapshot.snapshot_id),
                               ("snapshot_id",) + SNAPSHOT_COLUMNS, ignore_conflicts=False)
            return True

    @_in_session
    def load_snapshot(self, snapshot_id: str) -> DecisionSnapshot:
        """Read a frozen snapshot back and check it against its content hash."""
        head = self.con.execute(
            "SELECT content_hash, model_version, portfolio_value FROM decision_snapshots WHERE snapshot_id = ?",
            [snapshot_id],
        ).fetchone()
        if head is None:
            raise TradeloopError(f"snapshot {snapshot_id!r} is not in {str(self.path)!r}")
        weights = self.con.execute(
            f"SELECT {', '.join(SNAPSHOT_COLUMNS)} FROM snapshot_weights WHERE snapshot_id = ? ORDER BY symbol",
            [snapshot_id],
        ).df()
        weights["symbol"] = weights["symbol"].astype(object)
        weights["sector"] = weights["sector"].astype(object).where(weights["sector"].notna(), None)
        weights["lot_size"] = weights["lot_size"].astype("int64")
        if content_hash(weights, head[1], head[2]) != head[0]:
            raise TradeloopError(f"snapshot {snapshot_id!r} was modified after it was frozen (content hash differs)")
        return DecisionSnapshot(snapshot_id, head[1], float(head[2]), weights, head[0])

    # ------------------------------------------------------------------ runs
    def insert_run(self, run: dict, positions: pd.DataFrame | None, fallback_prices: pd.DataFrame | None) -> bool:
        """Create a queued run with its inputs; returns False if the run id exists already."""
        with self.transaction():
            if self.con.execute("SELECT 1 FROM trade_runs WHERE run_id = ?", [run["run_id"]]).fetchone():
                return False
            now = utcnow()
            self.con.execute(
                "INSERT INTO trade_runs (run_id, snapshot_id, provider, dry_run, status, params, attempts, "
                "created_at, updated_at) VALUES (?, ?, ?, ?, 'queued', ?, 0, ?, ?)",
                [run["run_id"], run["snapshot_id"], run["provider"], run["dry_run"], run["params"], now, now],
            )
            if positions is not None:
                self._insert_frame("run_positions", positions.assign(run_id=run["run_id"]), ("run_id", "symbol", "qty"),
                                   ignore_conflicts=False)
            if fallback_prices is not None:
                self._insert_frame("run_fallback_prices", fallback_prices.assign(run_id=run["run_id"]),
                                   ("run_id", "symbol", "price"), ignore_conflicts=False)
            return True

    @_in_session
    def get_run(self, run_id: str) -> dict:
        cur = self.con.execute("SELECT * FROM trade_runs WHERE run_id = ?", [run_id])
        row = cur.fetchone()
        if row is None:
            raise RunNotFound(f"run {run_id!r} is not in {str(self.path)!r}")
        return dict(zip([d[0] for d in cur.description], row))

    @_in_session
    def run_inputs(self, run_id: str) -> tuple[pd.DataFrame | None, pd.DataFrame | None]:
        """The positions and fallback prices a run was created with (None when it had none)."""
        pos = self.con.execute("SELECT symbol, qty FROM run_positions WHERE run_id = ? ORDER BY symbol", [run_id]).df()
        fb = self.con.execute(
            "SELECT symbol, price FROM run_fallback_prices WHERE run_id = ? ORDER BY symbol", [run_id]
        ).df()
        return (pos if len(pos) else None), (fb if len(fb) else None)

    @_in_session
    def update_run(self, run_id: str, **fields) -> None:
        fields["updated_at"] = utcnow()
        sets = ", ".join(f"{k} = ?" for k in fields)
        self.con.execute(f"UPDATE trade_runs SET {sets} WHERE run_id = ?", [*fields.values(), run_id])

    @_in_session
    def runs(self) -> pd.DataFrame:
        return self.con.execute(
            "SELECT run_id, snapshot_id, provider, dry_run, status, attempts, error, created_at, finished_at "
            "FROM trade_runs ORDER BY created_at, run_id"
        ).df()

    # ------------------------------------------------------------------ orders and fills
    def _first_rows(self, table: str, rows: pd.DataFrame) -> bool:
        """True when no row of ``table`` belongs to the runs of ``rows`` yet (their first insert).

        Order ids hash the run id in (and fill ids extend them), so the first insert of a run's orders or fills
        cannot meet an existing key: it may skip ``ON CONFLICT``, whose per-row check costs as much as the insert
        itself. A key that did exist (a 64-bit hash collision) then fails the transaction instead of being skipped.
        """
        runs = rows["run_id"].unique().tolist()
        if len(runs) == 1:
            hit = self.con.execute(f"SELECT 1 FROM {table} WHERE run_id = ? LIMIT 1", runs).fetchall()
        else:
            hit = self.con.execute(f"SELECT 1 FROM {table} WHERE run_id = ANY(?) LIMIT 1", [runs]).fetchall()
        return not hit

    @_in_session
    def insert_orders(self, orders: pd.DataFrame) -> int:
        """Insert orders as NEW; an order whose client_order_id exists is left exactly as it is."""
        if orders.empty:
            return 0
        now = utcnow()
        frame = orders.assign(status="NEW", filled_qty=0, avg_fill_price=float("nan"), reject_reason=None,
                              created_at=now, updated_at=now)
        return self._insert_frame("trade_orders", frame, ORDER_IDENTITY + ORDER_STATE + ("created_at", "updated_at"),
                                  ignore_conflicts=not self._first_rows("trade_orders", orders))

    @_in_session
    def update_orders(self, orders: pd.DataFrame) -> int:
        """Write the state columns of the given orders (matched by client_order_id)."""
        if orders.empty:
            return 0
        _tradeloop_rows = orders.loc[:, ["client_order_id", *ORDER_STATE]]  # noqa: F841  (scanned by name)
        sets = ", ".join(f"{c} = u.{c}" for c in ORDER_STATE)
        return int(self.con.execute(
            f"UPDATE trade_orders SET {sets}, updated_at = ? FROM _tradeloop_rows u "
            "WHERE trade_orders.client_order_id = u.client_order_id", [utcnow()]
        ).fetchone()[0])

    @_in_session
    def orders(self, run_id: str, *, fill_counts: bool = True) -> pd.DataFrame:
        """A run's orders by symbol and side: the ``trade_orders`` columns, plus ``n_fills`` (its stored fills)
        unless ``fill_counts`` is false."""
        if not fill_counts:
            return self.con.execute("SELECT * FROM trade_orders WHERE run_id = ? ORDER BY symbol, side", [run_id]).df()
        return self.con.execute(
            "SELECT o.*, coalesce(f.n_fills, 0) AS n_fills FROM trade_orders o LEFT JOIN "
            "(SELECT client_order_id, count(*) AS n_fills FROM trade_fills WHERE run_id = ? GROUP BY 1) f "
            "USING (client_order_id) WHERE o.run_id = ? ORDER BY o.symbol, o.side", [run_id, run_id]
        ).df()

    @_in_session
    def insert_fills(self, fills: pd.DataFrame) -> int:
        """Insert fills; a fill whose fill_id exists is left as it is."""
        if fills.empty:
            return 0
        return self._insert_frame("trade_fills", fills.assign(filled_at=utcnow()),
                                  ("fill_id", "run_id", "client_order_id", "seq", "qty", "price", "commission",
                                   "filled_at"), ignore_conflicts=not self._first_rows("trade_fills", fills))

    @_in_session
    def fills(self, run_id: str) -> pd.DataFrame:
        return self.con.execute("SELECT * FROM trade_fills WHERE run_id = ? ORDER BY fill_id", [run_id]).df()

    @_in_session
    def insert_order_events(self, events: pd.DataFrame) -> int:
        """Append order events; each order's ``seq`` continues after its last stored event."""
        if events.empty:
            return 0
        last = self.con.execute(
            "SELECT client_order_id, max(seq) AS last_seq FROM order_events WHERE run_id = ANY(?) GROUP BY 1",
            [events["run_id"].unique().tolist()],
        ).df()
        ev = events.reset_index(drop=True)
        seq = ev.groupby("client_order_id", sort=False).cumcount().to_numpy(dtype="int64") + 1
        if len(last):  # orders with earlier events continue after their last one
            seq += ev["client_order_id"].map(last.set_index("client_order_id")["last_seq"]).fillna(0).to_numpy(
                dtype="int64")
        ev["seq"] = seq
        if "step" not in ev:
            ev["step"] = None
        return self._insert_frame("order_events", ev.assign(at=utcnow()),
                                  ("client_order_id", "seq", "run_id", "step", "from_status", "to_status", "qty",
                                   "price", "reason", "at"), ignore_conflicts=False)

    @_in_session
    def order_events(self, run_id: str, client_order_id: str | None = None) -> pd.DataFrame:
        """A run's order events (or one order's), ordered by client_order_id then ``seq``.

        Columns: client_order_id, seq, run_id, from_status, to_status, qty, price, reason, at, step.
        """
        sql = "SELECT * FROM order_events WHERE run_id = ?"
        args = [run_id]
        if client_order_id is not None:
            sql += " AND client_order_id = ?"
            args.append(client_order_id)
        return self.con.execute(sql + " ORDER BY client_order_id, seq", args).df()

    # ------------------------------------------------------------------ audit
    def append_audit(self, run_id: str | None, event_type: str, payload: dict) -> dict:
        """Append one event to the hash chain (inside the caller's transaction, so it commits with the change)."""
        with self.transaction():
            last = self.con.execute(
                "SELECT seq, event_hash FROM audit_events ORDER BY seq DESC LIMIT 1"
            ).fetchone()
            seq, prev = (last[0] + 1, last[1]) if last else (1, GENESIS_HASH)
            event_id = f"evt-{seq:08d}-{uuid.uuid4().hex[:8]}"
            body = canonical_json(payload)
            digest = event_hash(prev, seq, event_id, run_id, event_type, body)
            self.con.execute(
                "INSERT INTO audit_events VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [event_id, seq, run_id, event_type, body, prev, digest, utcnow()],
            )
            return {"event_id": event_id, "seq": seq, "event_hash": digest}

    @_in_session
    def audit_events(self, run_id: str | None = None) -> pd.DataFrame:
        if run_id is None:
            return self.con.execute("SELECT * FROM audit_events ORDER BY seq").df()
        return self.con.execute("SELECT * FROM audit_events WHERE run_id = ? ORDER BY seq", [run_id]).df()

    # ------------------------------------------------------------------ run leases
    @_in_session
    def get_lease(self, run_id: str) -> dict | None:
        """The lease of a running run: owner_pid, owner_host, acquired_at, heartbeat_at, expires_at (or None)."""
        cur = self.con.execute("SELECT * FROM run_leases WHERE run_id = ? ORDER BY acquired_at DESC LIMIT 1", [run_id])
        row = cur.fetchone()
        return None if row is None else dict(zip([d[0] for d in cur.description], row))

    @_in_session
    def set_lease(self, run_id: str, owner_pid: int, owner_host: str, expires_at: datetime) -> None:
        """Take (or take over) the lease of a run; call inside the transaction that marks it running."""
        now = utcnow()
        self.con.execute("DELETE FROM run_leases WHERE run_id = ?", [run_id])
        self.con.execute("INSERT INTO run_leases VALUES (?, ?, ?, ?, ?, ?)",
                         [run_id, int(owner_pid), owner_host, now, now, expires_at])

    @_in_session
    def renew_lease(self, run_id: str, expires_at: datetime) -> None:
        """Heartbeat: push the lease's expiry forward (each committed step of a run does this)."""
        self.con.execute("UPDATE run_leases SET heartbeat_at = ?, expires_at = ? WHERE run_id = ?",
                         [utcnow(), expires_at, run_id])

    @_in_session
    def release_lease(self, run_id: str) -> None:
        self.con.execute("DELETE FROM run_leases WHERE run_id = ?", [run_id])

    # ------------------------------------------------------------------ simulations (issue 4)
    @_in_session
    def insert_arrow(self, table: str, data, columns, constants: dict | None = None) -> int:
        """Bulk insert an Arrow table (or DataFrame) through one scan; ``constants`` are bound as parameters."""
        name = f"_arrow_{uuid.uuid4().hex}"
        self.con.register(name, data)
        try:
            constants = constants or {}
            cols = list(constants) + list(columns)
            select = ", ".join(["?"] * len(constants) + [f'"{c}"' for c in columns])
            names = ", ".join(f'"{c}"' for c in cols)
            return int(self.con.execute(f"INSERT INTO {table} ({names}) SELECT {select} FROM {name}",
                                        list(constants.values())).fetchone()[0])
        finally:
            self._unregister(name)

    @_in_session
    def get_simulation(self, simulation_id: str) -> dict | None:
        cur = self.con.execute("SELECT * FROM simulations WHERE simulation_id = ?", [simulation_id])
        row = cur.fetchone()
        return None if row is None else dict(zip([d[0] for d in cur.description], row))

    @_in_session
    def simulations(self) -> pd.DataFrame:
        return self.con.execute(
            "SELECT simulation_id, model_version, n_dates, n_symbols, first_date, last_date, n_orders, n_fills, "
            "n_blocked, created_at FROM simulations ORDER BY created_at, simulation_id").df()

    @_in_session
    def simulation_runs(self, simulation_id: str) -> pd.DataFrame:
        return self.con.execute(
            "SELECT * FROM simulation_runs WHERE simulation_id = ? ORDER BY date, portfolio", [simulation_id]).df()

    @_in_session
    def simulation_orders(self, simulation_id: str, run_id: str | None = None) -> pd.DataFrame:
        """A simulation's orders with their readable ``client_order_id`` (all of them, or one run's)."""
        where, args = "simulation_id = ?", [simulation_id]
        if run_id is not None:
            where, args = where + " AND run_id = ?", args + [run_id]
        return self.con.execute(
            f"SELECT * FROM simulation_orders_v WHERE {where} ORDER BY date, portfolio, symbol", args).df()

    @_in_session
    def table_counts(self) -> dict[str, int]:
        """Row count of every tradeloop table (tests use it to prove nothing was written)."""
        tables = ("decision_snapshots", "snapshot_weights", "trade_runs", "run_positions", "run_fallback_prices",
                  "trade_orders", "trade_fills", "order_events", "audit_events")
        return {t: int(self.con.execute(f"SELECT count(*) FROM {t}").fetchone()[0]) for t in tables}
