"""Merging a worker's scratch database into the target database (how parallel batches share one DuckDB file).

DuckDB lets one process write a file at a time, so ``tradeloop batch --workers N`` never lets two notebooks write
the same file: each task runs in its own scratch database, which :func:`seed_database` first fills with what the
target already knows about that run (so a re-run continues it instead of starting over), and which
:func:`merge_database` then folds back into the target in one transaction, in the batch's own process:

* rows are copied with ``ATTACH`` and ``INSERT … ON CONFLICT DO NOTHING`` (a row the target has is kept), except
  the run's and its orders' state columns, which the worker advanced and which are updated;
* audit events are re-appended onto the target's hash chain by its one writer,
  :func:`tradeloop.store.audit.append_events` (new ``seq``, ``prev_hash``, ``event_hash``; the same ``event_id``,
  payload and time); events whose ``event_id`` the target has already are skipped.

Tables added by later schema versions are merged with ``ON CONFLICT DO NOTHING`` over the columns both files have.
"""

from __future__ import annotations

from pathlib import Path

from .audit import append_events
from .db import Store
from .schema import ORDER_STATE
from .sql import quote_name as _q
from .sql import quote_text

__all__ = ["seed_database", "merge_database", "MergeCounts"]

_ALIAS = "tl_worker"
#: Tables whose rows carry state a re-run advances: (conflict key, columns the worker's row overwrites).
_UPDATED = {
    "trade_runs": ("run_id", ("status", "params", "error", "attempts", "started_at", "finished_at", "updated_at")),
    "trade_orders": ("client_order_id", ORDER_STATE + ("updated_at",)),
}
#: Never copied row by row: bookkeeping of each file, the hash chain (re-appended instead), artifacts (the batch
#: writes them itself), and run leases (they belong to the worker process, which has finished).
_SKIPPED = {"schema_version", "audit_events", "run_artifacts", "run_leases"}
#: Per-run rows a worker needs to continue a run, and how to select them (``?`` is the run id or snapshot id).
_SEED = (
    ("decision_snapshots", "snapshot_id"), ("snapshot_weights", "snapshot_id"), ("trade_runs", "run_id"),
    ("run_positions", "run_id"), ("run_fallback_prices", "run_id"), ("trade_orders", "run_id"),
    ("trade_fills", "run_id"), ("order_events", "run_id"),
)

MergeCounts = dict  # table -> rows inserted or updated; "audit_events" -> events appended


def _columns(store: Store, database: str, table: str) -> list[str]:
    rows = store.con.execute(
        "SELECT column_name FROM duckdb_columns() WHERE database_name = ? AND schema_name = 'main' "
        "AND table_name = ? ORDER BY column_index", [database, table]).fetchall()
    return [r[0] for r in rows]


def _has_key(store: Store, database: str, table: str) -> bool:
    return bool(store.con.execute(
        "SELECT count(*) FROM duckdb_constraints() WHERE database_name = ? AND table_name = ? "
        "AND constraint_type IN ('PRIMARY KEY', 'UNIQUE')", [database, table]).fetchone()[0])


def _tables(store: Store, database: str) -> list[str]:
    rows = store.con.execute(
        "SELECT table_name FROM duckdb_tables() WHERE database_name = ? AND schema_name = 'main' ORDER BY 1",
        [database]).fetchall()
    return [r[0] for r in rows]


def _main_name(store: Store) -> str:
    return store.con.execute("SELECT current_database()").fetchone()[0]


def seed_database(target: Store, work_path: str | Path, *, run_id: str, snapshot_id: str | None) -> dict[str, int]:
    """Create the scratch database ``work_path`` and copy into it the target's rows of ``run_id`` (if any).

    Returns the number of rows copied per table (all zero for a run the target does not have yet).
    """
    work_path = Path(work_path)
    with Store(work_path):  # creates the file at the current schema version
        pass
    main = _main_name(target)
    copied: dict[str, int] = {}
    target.con.execute(f"ATTACH {quote_text(work_path)} AS {_ALIAS}")
    try:
        with target.transaction():
            for table, key in _SEED:
                value = snapshot_id if key == "snapshot_id" else run_id
                cols = [c for c in _columns(target, _ALIAS, table) if c in set(_columns(target, main, table))]
                if value is None or not cols:
                    continue
                names = ", ".join(_q(c) for c in cols)
                copied[table] = int(target.con.execute(
                    f"INSERT INTO {_ALIAS}.main.{_q(table)} ({names}) SELECT {names} FROM {_q(main)}.main.{_q(table)} "
                    f"WHERE {_q(key)} = ? ON CONFLICT DO NOTHING", [value]).fetchone()[0])
    finally:
        target.con.execute(f"DETACH {_ALIAS}")
    return copied


def merge_database(target: Store, work_path: str | Path, *, after=None) -> MergeCounts:
    """Fold a worker's database into ``target`` in one transaction (see the module docstring).

    Parameters
    ----------
    target : Store
        The batch's database, open for writing.
    work_path : path
        The worker's database; nothing else may have it open.
    after : callable, optional
        ``after(target)`` runs inside the same transaction (the batch records the artifact row there), so the
        merged rows and the artifact row commit together.

    Returns
    -------
    dict
        Rows inserted or updated per table, and ``audit_events``: events appended to the chain.
    """
    main = _main_name(target)
    counts: MergeCounts = {}
    target.con.execute(f"ATTACH {quote_text(Path(work_path))} AS {_ALIAS} (READ_ONLY)")
    try:
        with target.transaction():
            target_tables = set(_tables(target, main))
            for table in _tables(target, _ALIAS):
                if table in _SKIPPED or table not in target_tables:
                    continue
                mine = set(_columns(target, main, table))
                cols = [c for c in _columns(target, _ALIAS, table) if c in mine]
                names = ", ".join(_q(c) for c in cols)
                sql = (f"INSERT INTO {_q(main)}.main.{_q(table)} ({names}) "
                       f"SELECT {names} FROM {_ALIAS}.main.{_q(table)} ")
                if table in _UPDATED:
                    key, updated = _UPDATED[table]
                    sets = ", ".join(f"{_q(c)} = EXCLUDED.{_q(c)}" for c in updated if c in cols)
                    sql += f"ON CONFLICT ({_q(key)}) DO UPDATE SET {sets}"
                else:
                    # Copy only the rows the target lacks; a keyed table also refuses duplicates itself.
                    sql += f"EXCEPT SELECT {names} FROM {_q(main)}.main.{_q(table)}"
                    if _has_key(target, main, table):
                        sql += " ON CONFLICT DO NOTHING"
                counts[table] = int(target.con.execute(sql).fetchone()[0])
            counts["audit_events"] = _append_events(target, main)
            if after is not None:
                after(target)
    finally:
        target.con.execute(f"DETACH {_ALIAS}")
    return counts


def _append_events(target: Store, main: str) -> int:
    """Re-chain the worker's events (in their order) after the target's last event."""
    new = target.con.execute(
        f"SELECT event_id, run_id, event_type, payload, created_at FROM {_ALIAS}.main.audit_events w "
        f"WHERE NOT EXISTS (SELECT 1 FROM {_q(main)}.main.audit_events t WHERE t.event_id = w.event_id) "
        "ORDER BY seq").fetchall()
    return len(append_events(target.con, new))
