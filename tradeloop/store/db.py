"""Store: the DuckDB file holding snapshots, runs, orders, fills, order events, simulations and the audit trail.

This module owns the connection: opening the file (creating it safely when several processes race to), waiting
for another process that holds it, sessions and transactions. The :class:`Store` facade gives every table's
reads and writes as methods; their SQL lives beside it in :mod:`~tradeloop.store.schema` (migrations, views),
:mod:`~tradeloop.store.runs`, :mod:`~tradeloop.store.audit` (the hash chain's one writer) and
:mod:`~tradeloop.store.simulations`. Write methods do not commit on their own: callers group them with
:meth:`Store.transaction` so that every state change is all-or-nothing.
"""

from __future__ import annotations

import errno
import functools
import os
import re
import time
import uuid
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

import duckdb
import pandas as pd

from ..core.snapshot import DecisionSnapshot
from ..display import facts_html
from ..errors import RunNotFound, StoreBusy, TradeloopError, ValidationError
from . import audit, schema
from . import runs as run_rows
from . import simulations as sim_rows
from .schema import ORDER_IDENTITY, ORDER_STATE, SCHEMA_VERSION
from .sql import insert_arrow, utcnow

__all__ = ["Store", "SCHEMA_VERSION", "ORDER_IDENTITY", "ORDER_STATE", "utcnow"]

DEFAULT_DB = "tradeloop.duckdb"
DEFAULT_LOCK_TIMEOUT = 30.0
_LOCK_ERROR = re.compile(r"lock|Conflicting", re.IGNORECASE)


def _check_timeout(value, what: str) -> float:
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        raise ValidationError(f"{what} is {value!r}; it must be a number of seconds >= 0") from None
    if not (seconds >= 0 and seconds < float("inf")):
        raise ValidationError(f"{what} is {value!r}; it must be a number of seconds >= 0")
    return seconds


def _in_session(method):
    """Run a Store method inside a session: the file is opened for the call (unless one is open) and released."""

    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        with self.session():
            return method(self, *args, **kwargs)

    return wrapper


class Store:
    """A tradeloop database file. Use as a context manager; writes go inside :meth:`transaction`.

    A Store does not hold the file while idle: each method opens it for its own duration (:meth:`session` holds it
    across several calls), because DuckDB lets only one process at a time open a file for writing. A process that
    finds the file held waits, up to ``timeout`` seconds, then raises :class:`StoreBusy` naming the holder's pid.

    Parameters
    ----------
    path : str or Path, optional
        The DuckDB file (created if absent, unless ``read_only`` or not ``create``); default ``./tradeloop.duckdb``.
        A file that exists must be a tradeloop database: a file that is not a DuckDB file, an empty DuckDB file or
        another application's database raises :class:`~tradeloop.errors.NotATradeloopDatabase` and is not written
        to (no migration is ever committed into it).
    timeout : float, optional
        Seconds to wait while another process holds the file before raising :class:`StoreBusy`; default 30
        (the command line passes ``$TRADELOOP_LOCK_TIMEOUT``, see :mod:`tradeloop.settings`).
    read_only : bool
        Open without write access (several readers may share a file no writer holds).
    create : bool
        Create the file when it does not exist (default); False raises :class:`~tradeloop.errors.ValidationError`
        instead, for commands that only work on a stored run (a mistyped path must not leave a new file behind).
    """

    def __init__(self, path: str | Path | None = None, *, timeout: float | None = None, read_only: bool = False,
                 create: bool = True):
        self.path = Path(path if path is not None else DEFAULT_DB)
        if self.path.is_dir():
            raise ValidationError(f"database path {str(self.path)!r} is a directory; give a file name")
        memory = str(path) == ":memory:"
        if not memory and not self.path.exists() and (read_only or not create):
            raise ValidationError(f"database {str(self.path)!r} does not exist")
        if not memory and self.path.exists():
            schema.check_file_header(self.path)
        if not read_only:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self.timeout = DEFAULT_LOCK_TIMEOUT if timeout is None else _check_timeout(timeout, "timeout")
        self.read_only = read_only
        self._con: duckdb.DuckDBPyConnection | None = None
        self._in_tx = False
        self._checked = memory  # whether the file was found to be a tradeloop database (on the first open)
        if memory:  # an in-memory database lives only as long as its connection: keep it open
            _ = self.con
        elif not read_only and not self.path.exists():
            self._create()
        if not read_only:
            with self.transaction() as store:
                schema.migrate(store.con, self.path)

    def _create(self) -> None:
        """Build a new file beside ``path`` and link it into place, so no process ever opens a half-made file.

        DuckDB writes a new file's header after creating it; a second process opening the path in between fails
        with "not a valid DuckDB database file". Here each creator builds (and migrates) its own temporary file and
        hard-links it to ``path``, which fails when the path exists: the first creator wins, the others drop theirs
        and open the winner's file.
        """
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.new")
        try:
            con = duckdb.connect(str(tmp))
            try:
                con.execute("BEGIN TRANSACTION")
                schema.migrate(con, self.path)
                con.execute("COMMIT")
                con.execute("CHECKPOINT")  # the tables into the file itself: only the file is linked, not its WAL
            finally:
                con.close()
            if tmp.with_name(tmp.name + ".wal").exists():  # a checkpoint that failed quietly (e.g. the disk filled)
                raise OSError(errno.EIO, f"could not write the new database file {str(self.path)!r} completely")
            try:
                os.link(tmp, self.path)
            except FileExistsError:
                pass  # another process created it first: use that one
            except OSError:  # a file system without hard links: a rename, unless someone created it meanwhile
                if not self.path.exists():
                    os.replace(tmp, self.path)
        finally:
            for leftover in (tmp, tmp.with_name(tmp.name + ".wal")):
                leftover.unlink(missing_ok=True)

    def _open(self) -> duckdb.DuckDBPyConnection:
        """Connect; the first time, check that the file is a tradeloop database before anything reads or writes it."""
        con = self._connect(self.timeout, self.read_only)
        if not self._checked:
            try:
                schema.check_ours(con, self.path)
            except BaseException:
                con.close()
                raise
            self._checked = True
        return con

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
        self._con = self._open()
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
            self._con = self._open()
        return self._con

    def close(self) -> None:
        """Release the file if a connection is still open (the Store stays usable: the next call reopens it)."""
        if self._con is not None and not self._in_tx:
            self._con.close()
            self._con = None

    def __repr__(self) -> str:
        return f"Store({str(self.path)!r}{', read_only=True' if self.read_only else ''})"

    def _repr_html_(self) -> str:
        facts = [("path", str(self.path.resolve()) if str(self.path) != ":memory:" else ":memory:"),
                 ("read_only", str(self.read_only).lower())]
        try:
            with self.session():  # opened for this display only: an idle Store keeps the file free
                facts += [("schema version", self.schema_version()), *self.table_counts().items()]
        except (TradeloopError, duckdb.Error) as e:  # closed, busy or not a database: say so, do not raise
            facts.append(("unavailable", str(e).splitlines()[0]))
        return facts_html("tradeloop Store", facts, footer=".runs(), .orders(run_id), .fills(run_id), "
                          ".audit_events(), .simulations() for the rows")

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

    @_in_session
    def schema_version(self) -> int:
        return int(self.con.execute("SELECT max(version) FROM schema_version").fetchone()[0])

    @_in_session
    def table_counts(self) -> dict[str, int]:
        """Row count of every tradeloop table of a run's record (tests use it to prove nothing was written)."""
        return {t: int(self.con.execute(f"SELECT count(*) FROM {t}").fetchone()[0]) for t in schema.TABLES}

    @contextmanager
    def single_threaded(self):
        """A session in which DuckDB runs single-threaded, then restores its setting.

        A run's statements touch a few thousand rows each: splitting them across threads costs more in coordination
        than it saves (about 7 % of a 3,000-symbol run on the 2-core benchmark machine). Bulk work elsewhere
        (simulations) keeps every thread.
        """
        with self.session() as con:
            threads = int(con.execute("SELECT current_setting('threads')").fetchall()[0][0])
            if threads == 1:
                yield self
                return
            con.execute("SET threads = 1")
            try:
                yield self
            finally:
                try:
                    con.execute(f"SET threads = {threads}")
                except duckdb.Error:  # a broken connection: keep the error that broke it
                    pass

    # ------------------------------------------------------------------ snapshots
    def save_snapshot(self, snapshot: DecisionSnapshot) -> bool:
        """Store a snapshot once; returns False when it was already stored (same content, same id)."""
        with self.transaction():
            return run_rows.save_snapshot(self.con, snapshot)

    @_in_session
    def load_snapshot(self, snapshot_id: str) -> DecisionSnapshot:
        """Read a frozen snapshot back and check it against its content hash."""
        return run_rows.load_snapshot(self.con, snapshot_id, str(self.path))

    # ------------------------------------------------------------------ runs
    def insert_run(self, run: dict, positions: pd.DataFrame | None, fallback_prices: pd.DataFrame | None) -> bool:
        """Create a queued run with its inputs; returns False if the run id exists already."""
        with self.transaction():
            return run_rows.insert_run(self.con, run, positions, fallback_prices)

    @_in_session
    def get_run(self, run_id: str) -> dict:
        """The ``trade_runs`` row of a run; :class:`RunNotFound` when there is none."""
        row = run_rows.get_run(self.con, run_id)
        if row is None:
            raise RunNotFound(f"run {run_id!r} is not in {str(self.path)!r}")
        return row

    @_in_session
    def latest_run_id(self) -> str:
        """The most recently created run; :class:`RunNotFound` when there are none."""
        run_id = run_rows.latest_run_id(self.con)
        if run_id is None:
            raise RunNotFound(f"no runs in {str(self.path)!r}")
        return run_id

    @_in_session
    def run_inputs(self, run_id: str) -> tuple[pd.DataFrame | None, pd.DataFrame | None]:
        """The positions and fallback prices a run was created with (None when it had none)."""
        return run_rows.run_inputs(self.con, run_id)

    @_in_session
    def run_record(self, run_id: str) -> dict:
        """Everything stored about a run besides its orders and fills: ``row``, ``snapshot_hash``, ``positions``,
        ``fallback_prices``, ``events`` (see :func:`tradeloop.store.runs.run_record`); :class:`RunNotFound` when
        there is no such run."""
        record = run_rows.run_record(self.con, run_id)
        if record is None:
            raise RunNotFound(f"run {run_id!r} is not in {str(self.path)!r}")
        return record

    @_in_session
    def integrity(self) -> dict[str, list[tuple]]:
        """Rows no tradeloop workflow leaves behind (orphans, stray leases, wrong counts); see
        :func:`tradeloop.store.runs.integrity`."""
        return run_rows.integrity(self.con)

    @_in_session
    def update_run(self, run_id: str, **fields) -> None:
        run_rows.update_run(self.con, run_id, **fields)

    @_in_session
    def runs(self) -> pd.DataFrame:
        return run_rows.runs(self.con)

    @_in_session
    def batch_artifacts(self) -> pd.DataFrame:
        """Every notebook artifact (see :func:`tradeloop.store.runs.batch_artifacts`)."""
        return run_rows.batch_artifacts(self.con)

    @_in_session
    def run_totals(self) -> tuple[pd.DataFrame, pd.DataFrame]:
        """Orders per run and fills/notional per run (see :func:`tradeloop.store.runs.run_totals`)."""
        return run_rows.run_totals(self.con)

    # ------------------------------------------------------------------ orders and fills
    @_in_session
    def run_list(self, limit: int | None = None) -> pd.DataFrame:
        """``created_at, run_id, model_version, snapshot_id, orders, status, attempts, provider, dry_run, error,
        finished_at`` per run, newest first (the ``limit`` newest)."""
        return run_rows.run_list(self.con, limit)

    @_in_session
    def insert_orders(self, orders: pd.DataFrame) -> int:
        """Insert orders as NEW; an order whose client_order_id exists is left exactly as it is."""
        return run_rows.insert_orders(self.con, orders)

    @_in_session
    def update_orders(self, orders: pd.DataFrame) -> int:
        """Write the state columns of the given orders (matched by client_order_id)."""
        return run_rows.update_orders(self.con, orders)

    @_in_session
    def orders(self, run_id: str, *, fill_counts: bool = True) -> pd.DataFrame:
        """A run's orders by symbol and side: the ``trade_orders`` columns, plus ``n_fills`` (its stored fills)
        unless ``fill_counts`` is false."""
        return run_rows.orders(self.con, run_id, fill_counts=fill_counts)

    @_in_session
    def insert_fills(self, fills: pd.DataFrame) -> int:
        """Insert fills; a fill whose fill_id exists is left as it is."""
        return run_rows.insert_fills(self.con, fills)

    @_in_session
    def fills(self, run_id: str) -> pd.DataFrame:
        return run_rows.fills(self.con, run_id)

    @_in_session
    def insert_order_events(self, events: pd.DataFrame) -> int:
        """Append order events; each order's ``seq`` continues after its last stored event."""
        return run_rows.insert_order_events(self.con, events)

    @_in_session
    def order_events(self, run_id: str, client_order_id: str | None = None) -> pd.DataFrame:
        """A run's order events (or one order's), ordered by client_order_id then ``seq``.

        Columns: client_order_id, seq, run_id, from_status, to_status, qty, price, reason, at, step.
        """
        return run_rows.order_events(self.con, run_id, client_order_id)

    def replace_risk_decisions(self, run_id: str, decisions: pd.DataFrame) -> int:
        """Store a run's risk decisions in place of its earlier ones (inside the caller's transaction)."""
        with self.transaction():
            return run_rows.replace_risk_decisions(self.con, run_id, decisions)

    @_in_session
    def simulation_decisions(self, simulation_id: str) -> pd.DataFrame:
        """A stored simulation's risk decisions: date, portfolio, run_id, then the columns of
        :meth:`risk_decisions`, ordered by date, portfolio, symbol, rule."""
        return sim_rows.simulation_decisions(self.con, simulation_id)

    @_in_session
    def risk_decisions(self, run_id: str) -> pd.DataFrame:
        """A run's risk decisions: client_order_id, symbol, side, rule, observed, limit_value, action, qty_before,
        qty_after (one row per order and rule), ordered by client_order_id then rule."""
        return run_rows.risk_decisions(self.con, run_id)

    # ------------------------------------------------------------------ audit
    def append_audit(self, run_id: str | None, event_type: str, payload: dict) -> dict:
        """Append one event to the hash chain (inside the caller's transaction, so it commits with the change)."""
        with self.transaction():
            return audit.append_audit(self.con, run_id, event_type, payload)

    @_in_session
    def audit_events(self, run_id: str | None = None) -> pd.DataFrame:
        return audit.audit_events(self.con, run_id)

    # ------------------------------------------------------------------ run leases
    @_in_session
    def get_lease(self, run_id: str) -> dict | None:
        """The lease of a running run: owner_pid, owner_host, acquired_at, heartbeat_at, expires_at (or None)."""
        return run_rows.get_lease(self.con, run_id)

    @_in_session
    def set_lease(self, run_id: str, owner_pid: int, owner_host: str, expires_at: datetime) -> None:
        """Take (or take over) the lease of a run; call inside the transaction that marks it running."""
        run_rows.set_lease(self.con, run_id, owner_pid, owner_host, expires_at)

    @_in_session
    def renew_lease(self, run_id: str, expires_at: datetime) -> None:
        """Heartbeat: push the lease's expiry forward (each committed step of a run does this)."""
        run_rows.renew_lease(self.con, run_id, expires_at)

    @_in_session
    def release_lease(self, run_id: str) -> None:
        run_rows.release_lease(self.con, run_id)

    # ------------------------------------------------------------------ simulations
    @_in_session
    def insert_arrow(self, table: str, data, columns, constants: dict | None = None) -> int:
        """Bulk insert an Arrow table (or DataFrame) through one scan; ``constants`` are bound as parameters."""
        return insert_arrow(self.con, table, data, columns, constants)

    @_in_session
    def get_simulation(self, simulation_id: str) -> dict | None:
        return sim_rows.get_simulation(self.con, simulation_id)

    @_in_session
    def simulations(self) -> pd.DataFrame:
        return sim_rows.simulations(self.con)

    @_in_session
    def simulation_ids(self) -> list[str]:
        return sim_rows.simulation_ids(self.con)

    @_in_session
    def simulation_tables(self, simulation_id: str) -> dict:
        """A simulation's rows per table as Arrow tables, in the order its audit digests cover them."""
        return sim_rows.simulation_tables(self.con, simulation_id)

    @_in_session
    def simulation_runs(self, simulation_id: str) -> pd.DataFrame:
        return sim_rows.simulation_runs(self.con, simulation_id)

    @_in_session
    def simulation_orders(self, simulation_id: str, run_id: str | None = None) -> pd.DataFrame:
        """A simulation's orders with their readable ``client_order_id`` (all of them, or one run's)."""
        return sim_rows.simulation_orders(self.con, simulation_id, run_id)
