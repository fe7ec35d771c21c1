"""Schema migration: a database written by schema version 1 (tests/data/schema_v1.duckdb, made by the code before
the v4 migration existed) is brought up to date in place, in one transaction."""

from __future__ import annotations

import shutil
from pathlib import Path

import duckdb
import pytest

import tradeloop.store.schema as store_module
from tradeloop import Store, TradeloopError, execute_run, verify_store

V1 = Path(__file__).parents[1] / "data" / "schema_v1.duckdb"
V1_COUNTS = {"decision_snapshots": 1, "snapshot_weights": 3, "trade_runs": 1, "run_positions": 0,
             "run_fallback_prices": 0, "trade_orders": 3, "trade_fills": 3, "order_events": 6, "audit_events": 1}


@pytest.fixture
def v1_copy(tmp_path):
    db = tmp_path / "old.duckdb"
    shutil.copy(V1, db)
    return db


def _versions(db):
    con = duckdb.connect(str(db), read_only=True)
    try:
        versions = [r[0] for r in con.execute("SELECT version FROM schema_version ORDER BY version").fetchall()]
        tables = {r[0] for r in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
    finally:
        con.close()
    return versions, tables


def test_the_fixture_is_a_version_1_database(v1_copy):
    versions, tables = _versions(v1_copy)
    assert versions == [1] and "run_leases" not in tables


def test_opening_a_version_1_database_migrates_it_in_place(v1_copy):
    with Store(v1_copy) as store:
        assert store.schema_version() == store_module.SCHEMA_VERSION
        assert store.table_counts() == V1_COUNTS  # nothing lost
        assert verify_store(store).ok  # the old run still replays and its audit chain still holds
        assert execute_run(store, "run-v1-fixture").status == "done"  # and it can be re-run (re-checked)
        assert store.table_counts()["trade_fills"] == 3
    versions, tables = _versions(v1_copy)
    assert versions == [v for v, _ in store_module.MIGRATIONS] and "run_leases" in tables


def test_a_failing_migration_leaves_the_file_as_it_was(v1_copy, monkeypatch):
    broken = store_module.MIGRATIONS + [(99, "CREATE TABLE half_done (x INTEGER); SELECT * FROM no_such_table;")]
    monkeypatch.setattr(store_module, "MIGRATIONS", broken)
    monkeypatch.setattr(store_module, "SCHEMA_VERSION", 99)
    with pytest.raises(Exception, match="no_such_table"):
        Store(v1_copy)
    versions, tables = _versions(v1_copy)
    assert versions == [1]  # v4 was rolled back with the failing v99: one transaction
    assert "run_leases" not in tables and "half_done" not in tables


def test_a_database_from_a_newer_tradeloop_is_refused(v1_copy):
    con = duckdb.connect(str(v1_copy))
    con.execute("INSERT INTO schema_version VALUES (999, now())")
    con.close()
    with pytest.raises(TradeloopError, match="schema version 999; this tradeloop reads up to"):
        Store(v1_copy)
