"""Merging worker databases into a target (no kernels): rows, state updates and the audit hash chain."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tradeloop as tl
from tradeloop.core.digest import verify_chain
from tradeloop.store.merge import merge_database, seed_database

DATA = Path(__file__).resolve().parents[2] / "data"

INPUTS = dict(snapshot_file=DATA / "sample_snapshot.csv", fallback_prices_file=DATA / "fallback_prices.csv",
              positions_file=DATA / "positions.csv", portfolio_value=1_000_000, model_version="merge-v1")
PARAMS = [DATA / "params_pass.json", DATA / "params_block.json", None]


@pytest.fixture(scope="module")
def workers(tmp_path_factory):
    """Three worker databases, each holding one run executed there (as a batch notebook would)."""
    d = tmp_path_factory.mktemp("workers")
    paths = []
    for i, params in enumerate(PARAMS):
        path = d / f"w{i}.duckdb"
        tl.run_from_files(d / "unused.duckdb", work_db=path, params_file=params, **INPUTS)
        paths.append(path)
    assert not (d / "unused.duckdb").exists()  # work_db took the place of db_path
    return paths


def _state(db):
    with tl.Store(db, read_only=True) as s:
        return s.table_counts(), verify_chain(s.audit_events()), s.runs().set_index("run_id")["status"].to_dict()


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(order=st.lists(st.integers(0, 2), min_size=1, max_size=6))
def test_merge_any_order_and_repeats_keeps_one_valid_chain(workers, tmp_path_factory, order):
    """Whatever the order, and merging a worker twice: a valid chain, each event once, no duplicate rows."""
    db = tmp_path_factory.mktemp("target") / "t.duckdb"
    with tl.Store(db) as target:
        for i in order:
            merge_database(target, workers[i])
    counts, chain, statuses = _state(db)
    distinct = sorted(set(order))
    assert chain == []
    assert counts["audit_events"] == len(distinct) == counts["trade_runs"] == len(statuses)
    assert counts["trade_orders"] == sum(_state(workers[i])[0]["trade_orders"] for i in distinct)
    assert counts["decision_snapshots"] == 1  # the same snapshot in every worker, stored once


def test_merge_appends_after_existing_chain_and_updates_state(tmp_path, workers):
    db = tmp_path / "t.duckdb"
    run = tl.run_from_files(db, params_file=PARAMS[0], **INPUTS)  # the target already has the run (attempt 1)
    work = tmp_path / "w.duckdb"
    with tl.Store(db) as target:
        copied = seed_database(target, work, run_id=run.run_id, snapshot_id=run.result.snapshot_id)
    assert copied["trade_orders"] == len(run.orders) and copied["trade_runs"] == 1
    again = tl.run_from_files(db, work_db=work, params_file=PARAMS[0], **INPUTS)  # continues the seeded run
    assert again.run_id == run.run_id
    with tl.Store(db) as target:
        merged = merge_database(target, work)
        merge_database(target, work)  # a second merge adds nothing
        attempts = target.get_run(run.run_id)["attempts"]
    assert merged["audit_events"] == 1
    counts, chain, statuses = _state(db)
    assert chain == [] and counts["audit_events"] == 2 and attempts == 2
    assert counts["trade_fills"] == len(run.fills)  # nothing re-filled
    assert tl.audit_check(db, run.run_id) == []


def test_merge_is_one_transaction(tmp_path, workers):
    """A failure while recording the artifact rolls the whole merge back."""
    db = tmp_path / "t.duckdb"

    def boom(store):
        raise RuntimeError("artifact write failed")

    with tl.Store(db) as target:
        with pytest.raises(RuntimeError):
            merge_database(target, workers[0], after=boom)
    counts, chain, _ = _state(db)
    assert sum(counts.values()) == 0 and chain == []


def test_migration_v2_on_v1_database(tmp_path):
    """A database written before run_artifacts existed gains the table in place."""
    db = tmp_path / "old.duckdb"
    with tl.Store(db):
        pass
    con = duckdb.connect(str(db))
    con.execute("DROP TABLE run_artifacts")
    con.execute("DELETE FROM schema_version WHERE version >= 2")
    con.close()
    with tl.Store(db) as s:
        assert s.schema_version() >= 2
        assert s.con.execute("SELECT count(*) FROM run_artifacts").fetchone()[0] == 0


def test_report_of_dry_run_and_audit_mismatch(tmp_path):
    db = tmp_path / "r.duckdb"
    report = tl.run_from_files(db, params_file=PARAMS[0], dry_run=True, **INPUTS)
    assert report.result.dry_run and report.fills.empty
    assert (report.weights["achieved_qty"] == report.weights["current_qty"]).all()
    cash = report.cash.set_index("item")["amount"]
    assert cash["cash before"] == cash["cash after"]
    assert tl.audit_check(db, report.run_id) == []
    con = duckdb.connect(str(db))
    con.execute("UPDATE trade_orders SET status = 'CANCELED' WHERE run_id = ? AND symbol = 'S000'", [report.run_id])
    con.close()
    problems = tl.audit_check(db, report.run_id)
    assert any(p.startswith("orders_by_status") for p in problems)
    assert any(p.startswith("orders_digest") for p in problems)
    assert tl.audit_line(problems, report.result).startswith("MISMATCH")


@pytest.mark.parametrize("risk_limits, message", [
    ({"max_order_notional": -5}, "max_order_notional"),
    ({"no_such_limit": 1}, "no_such_limit"),
    ("tight", "risk_limits must be a mapping"),
])
def test_run_from_files_bad_inline_limits_write_nothing(tmp_path, risk_limits, message):
    db = tmp_path / "bad.duckdb"
    with pytest.raises(tl.ValidationError, match=message):
        tl.run_from_files(db, params_file=PARAMS[0], risk_limits=risk_limits, **INPUTS)
    assert not db.exists()


def test_report_tables_are_deterministic(tmp_path):
    a = tl.run_from_files(tmp_path / "a.duckdb", params_file=PARAMS[0], **INPUTS)
    b = tl.load_report(tmp_path / "a.duckdb", a.run_id)
    for name in ("orders", "fills", "risk", "weights", "sectors", "cash"):
        pd.testing.assert_frame_equal(getattr(a, name), getattr(b, name))
    assert a.summary() == b.summary()
    from tradeloop.reporting import plots

    def bars(fig, i=0, size="get_height"):
        return [getattr(p, size)() for p in fig.axes[i].patches]

    # each figure draws its report's numbers (an Axes exists on any Figure; what is on it is the test)
    fills = plots.plot_fills(a)
    per_symbol = a.fills.groupby("symbol", sort=True)["notional"].sum()
    largest = per_symbol.reindex(per_symbol.abs().sort_values(ascending=False, kind="stable").index)
    assert bars(fills) == pytest.approx([*largest.iloc[:20], largest.iloc[20:].sum()], rel=1e-12)  # top 20 + other
    assert sum(bars(fills, 1)) == len(a.fills)  # the distribution counts every fill once
    cash = plots.plot_cash(a)
    c = a.cash.set_index("item")["amount"]
    top = cash.axes[0].patches[3]  # the commission step ends the waterfall
    assert top.get_y() + top.get_height() == pytest.approx(c["cash after"], abs=0.005)
    assert bars(cash)[0] == c["cash before"] and bars(cash)[-1] == c["cash after"]
    sectors = plots.plot_sector_notional(a)
    assert bars(sectors, size="get_width") == pytest.approx(
        a.sectors["buy_notional"].tolist() + (-a.sectors["sell_notional"]).tolist(), abs=1e-9)
    assert len(bars(plots.plot_weights(a))) == 2 * (min(len(a.weights), 25) + (len(a.weights) > 25))  # + other
    assert len(bars(plots.plot_exposure(a))) == 3 * a.weights["sector"].fillna("(none)").nunique()
    table = tl.batch_table(tmp_path / "a.duckdb")
    batch = plots.plot_batch(table)
    assert bars(batch, 0) == table["status"].value_counts().sort_index().tolist()
    assert bars(batch, 1) == table["notional"].tolist()


def test_report_of_run_with_missing_prices(tmp_path):
    """No fallback prices: two orders are REJECTED missing_price, the rest fill (regression: fills.py events)."""
    report = tl.run_from_files(tmp_path / "m.duckdb", snapshot_file=DATA / "sample_snapshot.csv",
                               portfolio_value=1_000_000, model_version="m1")
    assert report.result.status == "done", report.result.error
    rejected = report.orders.loc[report.orders["status"] == "REJECTED"]
    assert len(rejected) == 2 and (rejected["reject_reason"] == "missing_price").all()
    assert report.result.fills == len(report.orders) - 2
    assert report.weights.loc[report.weights["price"].isna(), "achieved_weight"].isna().all()
