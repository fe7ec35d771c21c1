"""The database schema: the migrations that build it, version by version, and the views generated from the table
of codes (:mod:`tradeloop.core.codes`).

Migrations are applied in order, each missing version in the same transaction as its ``schema_version`` row, so a
file written by any earlier tradeloop is brought up to date and a failing migration leaves the file as it was.
Add a new (version, sql) pair at the end; never edit one that has shipped (v3 and v6 keep their hand-written
views for that reason; v7 replaces them with the generated ones). A new outcome or risk rule in
:mod:`tradeloop.core.codes` changes the generated views: append a migration ``(n, simulation_views_sql())`` so
existing files get them too (``tests/store/test_views.py`` fails until the views decode every code).
"""

from __future__ import annotations

import duckdb

from ..core.codes import OUTCOME, RISK_PREFIX, RISK_RULE, code_of, rows
from ..errors import NotATradeloopDatabase, TradeloopError
from .sql import utcnow

__all__ = ["MIGRATIONS", "SCHEMA_VERSION", "TABLES", "RISK_DECISION_COLUMNS", "ORDER_IDENTITY", "ORDER_STATE", "migrate", "check_ours",
           "check_file_header",
           "simulation_views_sql", "status_case_sql", "reject_reason_case_sql", "risk_codes_sql"]

SCHEMA_V1 = """
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

#: v3: simulations.
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

#: v6: partial fills in simulations. ``filled_qty`` / ``n_fills`` are NULL for an order that fills whole or
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
    (1, SCHEMA_V1),
    (2, """
CREATE TABLE IF NOT EXISTS run_artifacts (
    run_id VARCHAR PRIMARY KEY, notebook_path VARCHAR NOT NULL, source_notebook VARCHAR, sha256 VARCHAR NOT NULL,
    parameters JSON NOT NULL, papermill_status VARCHAR NOT NULL, error VARCHAR, batch_id VARCHAR,
    snapshot_file VARCHAR, created_at TIMESTAMP NOT NULL);
CREATE INDEX IF NOT EXISTS run_artifacts_batch ON run_artifacts (batch_id);
"""),  # v2: run_artifacts, one executed-notebook artifact per run (re-running replaces it)
    (3, _SCHEMA_V3),  # v3: simulations, their per-date runs and orders
    # v4: run ownership / leases
    (4, _SCHEMA_V4),
    # v5: the execution step of each order event (multi-step runs: PARTIAL fills, then close)
    (5, "ALTER TABLE order_events ADD COLUMN IF NOT EXISTS step INTEGER;"),
    # v6: simulations with a liquidity model and several steps: partial fills, several fills per order
    (6, _SCHEMA_V6),
]


def risk_codes_sql(mask: str = "o.risk_mask") -> str:
    """SQL text of the ``;``-joined names of the risk rules whose bits are set in ``mask`` (``''`` for none)."""
    parts = ",\n".join(f"                CASE WHEN {mask} & {1 << c.bit} <> 0 THEN '{c.name}' END"
                        for c in rows(RISK_RULE))
    return f"concat_ws(';',\n{parts})"


def status_case_sql(code: str = "status_code") -> str:
    """SQL text decoding an outcome code (``simulation_orders.status_code``) to its order status."""
    whens = " ".join(f"WHEN {c.code} THEN '{c.status}'" for c in rows(OUTCOME))
    return f"CASE {code} {whens} END"


def reject_reason_case_sql(code: str = "status_code", risk_codes: str = "risk_codes") -> str:
    """SQL text decoding an outcome code to its reject reason (NULL for none; ``risk:<rules>`` for risk)."""
    whens = []
    for c in rows(OUTCOME):
        if c.reason == "risk":
            whens.append(f"WHEN {c.code} THEN '{RISK_PREFIX}' || {risk_codes}")
        elif c.reason is not None:
            whens.append(f"WHEN {c.code} THEN '{c.reason}'")
    return f"CASE {code} {' '.join(whens)} END"


def simulation_views_sql() -> str:
    """``simulation_orders_v`` (and ``simulation_fills`` over it) with every code decoded from the table of codes."""
    filled = code_of(OUTCOME, "filled")
    return f"""
CREATE OR REPLACE VIEW simulation_orders_v AS
    WITH o AS (
        SELECT o.*, r.run_id, s.order_type, CASE WHEN o.sell THEN 'SELL' ELSE 'BUY' END AS side,
            {risk_codes_sql()} AS risk_codes
        FROM simulation_orders o JOIN simulations s USING (simulation_id)
        JOIN simulation_runs r USING (simulation_id, date, portfolio))
    SELECT simulation_id, run_id, date, portfolio,
        symbol || '-' || left(side, 1) || '-' || (
            SELECT string_agg(substr('0123456789abcdefghjkmnpqrstvwxyz', ((order_key >> (60 - 5 * i)) & 31)::INTEGER + 1, 1), '' ORDER BY i)
            FROM range(13) r(i)) AS client_order_id,
        order_key, symbol, side, qty, order_type, limit_price, price, sector, lot_size, target_weight, current_qty,
        current_qty + CASE WHEN sell THEN -qty ELSE qty END AS target_qty, untrimmed_qty,
        {status_case_sql()} AS status,
        coalesce(filled_qty, CASE WHEN status_code = {filled} THEN qty ELSE 0 END) AS filled_qty,
        coalesce(n_fills, CASE WHEN status_code = {filled} THEN 1 ELSE 0 END) AS n_fills, avg_fill_price, fill_price,
        commission, risk_codes,
        {reject_reason_case_sql()} AS reject_reason
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


#: v7: the simulation views decode statuses, reject reasons and risk rules from the table of codes.
MIGRATIONS.append((7, simulation_views_sql()))

#: v8: a simulation's implementation shortfall by cause, written with it (see
#: :func:`tradeloop.workflows.shortfall.to_rows`): ``level`` 'date' rows per (date, portfolio, item), 'symbol' rows
#: per (portfolio, symbol, item); items are the causes, the costs ``slippage`` / ``commission`` and the references
#: ``paper`` / ``implemented``.
MIGRATIONS.append((8, """
CREATE TABLE IF NOT EXISTS simulation_shortfall (
    simulation_id VARCHAR NOT NULL, level VARCHAR NOT NULL, date TIMESTAMP, portfolio VARCHAR NOT NULL,
    symbol VARCHAR, sector VARCHAR, item VARCHAR NOT NULL, weight_gap DOUBLE, abs_weight_gap DOUBLE,
    contribution DOUBLE, amount DOUBLE);
"""))

#: Columns of ``risk_decisions``: one row per (order, rule) decision of :func:`tradeloop.core.controls.decide`. A
#: run's rows have ``simulation_id``, ``date`` and ``portfolio`` NULL; a simulation's have its per-date run id.
RISK_DECISION_COLUMNS = ("run_id", "simulation_id", "date", "portfolio", "client_order_id", "symbol", "side", "rule",
                         "observed", "limit_value", "action", "qty_before", "qty_after")
#: v9: rebalancing controls. Their rules need more than 8 bits of ``risk_mask``; every risk decision is a row of
#: ``risk_decisions``; a snapshot's average daily volumes (when it has them) are in ``snapshot_adv``; the views decode
#: the new rules and the ``blocked`` outcome.
_SCHEMA_V8 = """
ALTER TABLE simulation_orders ALTER risk_mask SET DATA TYPE USMALLINT;
CREATE TABLE IF NOT EXISTS snapshot_adv (
    snapshot_id VARCHAR NOT NULL, symbol VARCHAR NOT NULL, adv DOUBLE, PRIMARY KEY (snapshot_id, symbol));
CREATE TABLE IF NOT EXISTS risk_decisions (
    run_id VARCHAR NOT NULL, simulation_id VARCHAR, date TIMESTAMP, portfolio VARCHAR, client_order_id VARCHAR NOT NULL,
    symbol VARCHAR NOT NULL, side VARCHAR NOT NULL, rule VARCHAR NOT NULL, observed DOUBLE, limit_value DOUBLE,
    action VARCHAR NOT NULL, qty_before BIGINT NOT NULL, qty_after BIGINT NOT NULL);
CREATE INDEX IF NOT EXISTS risk_decisions_run ON risk_decisions (run_id);
""" + simulation_views_sql()
MIGRATIONS.append((8, _SCHEMA_V8))
SCHEMA_VERSION = max(v for v, _ in MIGRATIONS)

#: Order columns the loop writes once (identity) and the ones execution updates (state).
ORDER_IDENTITY = (
    "client_order_id", "run_id", "symbol", "side", "qty", "order_type", "limit_price", "price", "price_source",
    "sector", "lot_size", "target_weight", "current_qty", "target_qty", "untrimmed_qty",
)
ORDER_STATE = ("status", "filled_qty", "avg_fill_price", "reject_reason")
#: The tables of a run's record, in the order :meth:`tradeloop.store.db.Store.table_counts` lists them.
TABLES = ("decision_snapshots", "snapshot_weights", "trade_runs", "run_positions", "run_fallback_prices",
          "trade_orders", "trade_fills", "order_events", "audit_events")


#: Tables and columns every tradeloop database has had since schema version 1: another application's file does not
#: have them all by chance (a ``trade_runs`` or ``schema_version`` table alone is a common name).
_SIGNATURE = {
    "schema_version": ("version", "applied_at"),
    "decision_snapshots": ("snapshot_id", "content_hash", "model_version"),
    "trade_runs": ("run_id", "snapshot_id", "provider", "status", "params", "attempts"),
    "audit_events": ("event_id", "seq", "payload", "prev_hash", "event_hash"),
}
#: Bytes 8-11 of every DuckDB database file.
_DUCKDB_MAGIC = b"DUCK"


def check_file_header(path) -> None:
    """Refuse a file that is not a DuckDB database at all, before DuckDB opens (and possibly writes) it.

    Raises
    ------
    NotATradeloopDatabase
        The file is empty (0 bytes) or does not start like a DuckDB file.
    """
    try:
        with open(path, "rb") as f:
            head = f.read(12)
    except OSError as e:
        raise TradeloopError(f"cannot open database {str(path)!r}: {e.strerror}") from None
    if head[8:12] == _DUCKDB_MAGIC:
        return
    what = "it is an empty file (0 bytes)" if not head else "it is not a DuckDB file"
    raise NotATradeloopDatabase(f"{str(path)!r} is not a tradeloop database: {what}; it was left as it is")


def check_ours(con: duckdb.DuckDBPyConnection, path) -> None:
    """Refuse an open DuckDB file that tradeloop did not create; reads the catalog only.

    Tradeloop builds a new file whole (tables and all) before linking it into place (see
    :meth:`tradeloop.store.db.Store._create`), so a DuckDB file without tables, or without tradeloop's tables, was
    made by something else: migrating it would write tradeloop's tables into another application's database.

    Raises
    ------
    NotATradeloopDatabase
        The file has no tables, or lacks one of the tables and columns every tradeloop database has.
    """
    tables: dict[str, set[str]] = {}
    for table, column in con.execute(
            "SELECT table_name, column_name FROM duckdb_columns() WHERE database_name = current_database() "
            "AND schema_name = 'main'").fetchall():
        tables.setdefault(table, set()).add(column)
    if not tables:
        raise NotATradeloopDatabase(
            f"{str(path)!r} is not a tradeloop database: it is a DuckDB file with no tables (tradeloop creates its "
            "files whole, tables included); it was left as it is: remove it or give another path")
    missing = [t for t, columns in _SIGNATURE.items() if not set(columns) <= tables.get(t, set())]
    if missing:
        names = sorted(tables)
        shown = ", ".join(names[:5]) + (", …" if len(names) > 5 else "")
        raise NotATradeloopDatabase(
            f"{str(path)!r} is not a tradeloop database: it is another application's DuckDB file (tables {shown}; "
            f"no tradeloop {', '.join(missing)}); it was left as it is")


def migrate(con: duckdb.DuckDBPyConnection, path) -> None:
    """Apply every migration the file lacks, inside the caller's transaction.

    Reads :data:`MIGRATIONS` and :data:`SCHEMA_VERSION` when called (tests replace them to build older files).

    Raises
    ------
    TradeloopError
        The file was written by a newer tradeloop (a schema version this one does not know).
    """
    con.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL, applied_at TIMESTAMP NOT NULL)")
    applied = {r[0] for r in con.execute("SELECT version FROM schema_version").fetchall()}
    if applied and max(applied) > SCHEMA_VERSION:
        raise TradeloopError(
            f"database {str(path)!r} has schema version {max(applied)}; this tradeloop reads up to "
            f"{SCHEMA_VERSION} (upgrade tradeloop)"
        )
    for version, sql in MIGRATIONS:
        if version not in applied:
            con.execute(sql)
            con.execute("INSERT INTO schema_version VALUES (?, ?)", [version, utcnow()])
