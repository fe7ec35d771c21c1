"""Tamper evidence: every kind of edit to a finished run's rows or to the audit trail is caught by verify.

A clean database with four runs (done, blocked by risk, failed on the reserved lean provider, dry run) is built once;
each test copies it, tampers with it through a raw DuckDB connection (as an attacker or a careless script would),
and checks that :func:`tradeloop.verify_store` and ``tradeloop verify`` report it.
"""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path

import duckdb
import pytest
from support import DATA

from tradeloop import (
    Store,
    create_run,
    execute_run,
    load_params,
    load_snapshot_file,
    verify_store,
)
from tradeloop.cli import EXIT_VERIFY_DIFFERENCES
from tradeloop.core.digest import event_hash

DONE = "run-done"
BLOCKED = "run-blocked"


@pytest.fixture(scope="module")
def clean_db(tmp_path_factory):
    db = tmp_path_factory.mktemp("verify") / "clean.duckdb"
    snap = load_snapshot_file(DATA / "sample_snapshot.csv", portfolio_value=1_000_000, model_version="v-test")
    import pandas as pd

    pos, fb = pd.read_csv(DATA / "positions.csv"), pd.read_csv(DATA / "fallback_prices.csv")
    with Store(db) as store:
        for run_id, params, provider, dry in ((DONE, "params_pass.json", "mock", False),
                                              (BLOCKED, "params_block.json", "mock", False),
                                              ("run-lean", "params_pass.json", "lean", False),
                                              ("run-dry", "params_pass.json", "mock", True)):
            run = create_run(store, snap, params=load_params(DATA / params), positions=pos, fallback_prices=fb,
                             provider=provider, dry_run=dry, run_id=run_id)
            execute_run(store, run.run_id)
        execute_run(store, DONE)  # a re-run: a second audit event, nothing else
        assert [store.get_run(r)["status"] for r in (DONE, BLOCKED, "run-lean", "run-dry")] == [
            "done", "blocked", "failed", "done"]
    return db


def _forge_event(con):
    """Append an event with a valid hash (an attacker who knows the algorithm) claiming the current digests."""
    seq, prev = con.execute("SELECT seq, event_hash FROM audit_events ORDER BY seq DESC LIMIT 1").fetchone()
    payload = json.loads(con.execute(f"SELECT payload FROM audit_events WHERE run_id = '{DONE}' ORDER BY seq DESC "
                                     "LIMIT 1").fetchone()[0])
    from tradeloop.core.digest import canonical_json, frame_digest
    from tradeloop.store.db import ORDER_IDENTITY, ORDER_STATE

    orders = con.execute(f"SELECT * FROM trade_orders WHERE run_id = '{DONE}'").df()
    fills = con.execute(f"SELECT * FROM trade_fills WHERE run_id = '{DONE}'").df()
    payload["orders_digest"] = frame_digest(orders, ORDER_IDENTITY + ORDER_STATE, "client_order_id")
    payload["fills_digest"] = frame_digest(fills, ("fill_id", "client_order_id", "seq", "qty", "price", "commission"),
                                           "fill_id")
    body = canonical_json(payload)
    eid = f"evt-{seq + 1:08d}-forged00"
    con.execute("INSERT INTO audit_events VALUES (?, ?, ?, ?, ?, ?, ?, now())",
                [eid, seq + 1, DONE, "trade_run.execute", body, prev, event_hash(prev, seq + 1, eid, DONE,
                                                                                  "trade_run.execute", body)])


def _patch_params(run_id: str, patch: str) -> str:
    return f"UPDATE trade_runs SET params = json_merge_patch(params, '{patch}') WHERE run_id = '{run_id}'"


def _reforge_snapshot(con):
    """Change a snapshot value no run uses (a volume, with no liquidity model) and recompute its content hash."""
    from tradeloop.core.snapshot import SNAPSHOT_COLUMNS, content_hash

    sid, model, value = con.execute("SELECT snapshot_id, model_version, portfolio_value FROM decision_snapshots"
                                    ).fetchone()
    con.execute("UPDATE snapshot_weights SET volume = 123456 WHERE symbol = 'S000'")
    weights = con.execute(f"SELECT {', '.join(SNAPSHOT_COLUMNS)} FROM snapshot_weights WHERE snapshot_id = ? "
                          "ORDER BY symbol", [sid]).df()
    weights["symbol"] = weights["symbol"].astype(object)
    weights["sector"] = weights["sector"].astype(object).where(weights["sector"].notna(), None)
    weights["lot_size"] = weights["lot_size"].astype("int64")
    con.execute("UPDATE decision_snapshots SET content_hash = ? WHERE snapshot_id = ?",
                [content_hash(weights, model, value), sid])


FIRST_FILL = f"(SELECT min(fill_id) FROM trade_fills WHERE run_id = '{DONE}')"
FIRST_ORDER = f"(SELECT min(client_order_id) FROM trade_orders WHERE run_id = '{DONE}')"

#: kind -> (SQL statements or a function of the connection, a phrase the report must contain)
TAMPER = {
    "fill price updated": ([f"UPDATE trade_fills SET price = price + 0.01 WHERE fill_id = {FIRST_FILL}"],
                           "price is"),
    "fill qty and order filled_qty updated together": (
        [f"UPDATE trade_fills SET qty = qty + 1 WHERE fill_id = {FIRST_FILL}",
         f"UPDATE trade_orders SET filled_qty = filled_qty + 1 WHERE client_order_id = {FIRST_ORDER}"], "qty is"),
    "fill commission updated": ([f"UPDATE trade_fills SET commission = 0 WHERE fill_id = {FIRST_FILL}"],
                                "commission is"),
    "fill deleted": ([f"DELETE FROM trade_fills WHERE fill_id = {FIRST_FILL}"], "is missing from the database"),
    "extra fill inserted": ([f"INSERT INTO trade_fills SELECT client_order_id || '-2', run_id, client_order_id, 2, qty, "
                             f"price, commission, filled_at FROM trade_fills WHERE fill_id = {FIRST_FILL}"],
                            "the replay does not produce it"),
    "order deleted": ([f"DELETE FROM trade_orders WHERE client_order_id = {FIRST_ORDER}"],
                      "is missing from the database"),
    "order and its fills deleted": ([f"DELETE FROM trade_fills WHERE client_order_id = {FIRST_ORDER}",
                                     f"DELETE FROM trade_orders WHERE client_order_id = {FIRST_ORDER}"],
                                    "is missing from the database"),
    "order qty updated": ([f"UPDATE trade_orders SET qty = qty * 2 WHERE client_order_id = {FIRST_ORDER}"],
                          ": qty is"),
    "order status updated": ([f"UPDATE trade_orders SET status = 'CANCELED' WHERE client_order_id = {FIRST_ORDER}"],
                             "status is 'CANCELED'"),
    "extra order inserted": ([f"INSERT INTO trade_orders SELECT 'FAKE-B-0000000000000', * EXCLUDE (client_order_id) "
                              f"FROM trade_orders WHERE client_order_id = {FIRST_ORDER}"],
                             "FAKE-B-0000000000000 is in the database but the replay does not produce it"),
    "blocked order un-rejected": ([f"UPDATE trade_orders SET status = 'NEW', reject_reason = NULL WHERE run_id = "
                                   f"'{BLOCKED}' AND status = 'REJECTED'"], "status is 'NEW'"),
    "order event deleted": ([f"DELETE FROM order_events WHERE client_order_id = {FIRST_ORDER} AND seq = 2"],
                            "order events of"),
    "order event edited": ([f"UPDATE order_events SET price = price + 1 WHERE client_order_id = {FIRST_ORDER} AND "
                            "seq = 2"], "differ in qty/price/reason"),
    "run status edited": ([f"UPDATE trade_runs SET status = 'done' WHERE run_id = '{BLOCKED}'"],
                          "status is 'done' in the database, the replay gives 'blocked'"),
    "run risk params edited": ([f"UPDATE trade_runs SET params = json_merge_patch(params, "
                                "'{\"risk\": {\"max_order_notional\": 1000000}}') "
                                f"WHERE run_id = '{BLOCKED}'"], "the replay gives 'done'"),
    "run slippage params edited": ([f"UPDATE trade_runs SET params = json_merge_patch(params, "
                                    "'{\"slippage\": {\"model\": \"FixedBpsSlippage\", \"bps\": 50}}') "
                                    f"WHERE run_id = '{DONE}'"], "price is"),
    "run positions edited": ([f"UPDATE run_positions SET qty = qty + 100 WHERE run_id = '{DONE}'"], "current_qty is"),
    "snapshot weight edited": (["UPDATE snapshot_weights SET weight = weight + 0.001 WHERE symbol = 'S000'"],
                               "modified after it was frozen"),
    "run deleted": ([f"DELETE FROM trade_runs WHERE run_id = '{DONE}'"], "which is not in trade_runs"),
    "audit payload edited": (["UPDATE audit_events SET payload = replace(payload, '\"attempt\":1', '\"attempt\":9') "
                              "WHERE seq = 1"], "was modified"),
    "audit hash rewritten": (["UPDATE audit_events SET event_hash = repeat('a', 64) WHERE seq = 2"],
                             "was modified"),
    "audit events reordered": (["UPDATE audit_events SET seq = -1 WHERE seq = 1",
                                "UPDATE audit_events SET seq = 1 WHERE seq = 2",
                                "UPDATE audit_events SET seq = 2 WHERE seq = -1"], "does not follow its predecessor"),
    "audit event deleted": (["DELETE FROM audit_events WHERE seq = 2"], "seq 2 is missing"),
    "audit event appended with a broken hash": (
        ["INSERT INTO audit_events SELECT 'evt-x', 99, run_id, event_type, payload, prev_hash, event_hash, created_at "
         "FROM audit_events WHERE seq = 1"], "evt-x (seq 99)"),
    "fill edited and the chain re-forged": (
        [f"UPDATE trade_fills SET price = price * 0.99 WHERE fill_id = {FIRST_FILL}", _forge_event], "price is"),
    # --- edits that do not change the replay's result: caught by the execute event's record (payload version 2)
    "order event step renumbered": ([f"UPDATE order_events SET step = step + 1 WHERE client_order_id = {FIRST_ORDER}"],
                                    "step is [2, 2] in the database, the replay gives [1, 1]"),
    "unused param max_leverage edited": ([_patch_params(DONE, '{"max_leverage": 3}')], "params_digest"),
    "unused param steps edited": ([_patch_params(DONE, '{"steps": 2}')], "params_digest"),
    "unused param limit_offset_bps edited on a MARKET run": ([_patch_params(DONE, '{"limit_offset_bps": 25}')],
                                                            "params_digest"),
    "run error edited": ([f"UPDATE trade_runs SET error = 'broker timeout' WHERE run_id = '{DONE}'"],
                         "error: database has 'broker timeout'"),
    "run attempts edited": ([f"UPDATE trade_runs SET attempts = attempts + 3 WHERE run_id = '{DONE}'"],
                            "attempts: database has 5"),
    "unused fallback price added": ([f"INSERT INTO run_fallback_prices VALUES ('{DONE}', 'ZZZ_UNUSED', 12.5)"],
                                    "fallback_prices_digest"),
    "zero position added": ([f"INSERT INTO run_positions VALUES ('{DONE}', 'ZZZ_ZERO', 0)"], "positions_digest"),
    "snapshot edited with its content hash re-forged": ([_reforge_snapshot], "snapshot_hash"),
    # --- rows no workflow leaves behind
    "orphan snapshot weights": (["INSERT INTO snapshot_weights VALUES ('snap-ghost', 'ZZZ', 0.1, 10, NULL, 1, NULL)"],
                                "snapshot_weights has 1 row(s) of snapshot snap-ghost"),
    "unused snapshot row": ([f"INSERT INTO decision_snapshots VALUES ('snap-ghost', '{'0' * 64}', 'm', 1e6, 0, now())"],
                            "snapshot snap-ghost is stored but no run uses it"),
    "snapshot n_symbols edited": (["UPDATE decision_snapshots SET n_symbols = n_symbols + 1"], "n_symbols is"),
    "orders of a run that does not exist": (
        [f"INSERT INTO trade_orders SELECT 'GHOST-B-0000000000000', 'run-ghost', * EXCLUDE (client_order_id, run_id) "
         f"FROM trade_orders WHERE client_order_id = {FIRST_ORDER}"], "trade_orders has 1 row(s) of run run-ghost"),
    "fake live lease": ([f"INSERT INTO run_leases VALUES ('{DONE}', 1, 'elsewhere', now(), now(), "
                         "now() + INTERVAL 1 DAY)"], f"run_leases has 1 lease(s) for run {DONE}, which is done"),
}


def _tamper(clean_db, tmp_path, steps):
    db = tmp_path / "tampered.duckdb"
    shutil.copy(clean_db, db)
    con = duckdb.connect(str(db))
    for step in steps:
        step(con) if callable(step) else con.execute(step)
    con.close()
    return db


def test_a_clean_database_verifies(clean_db, cli):
    with Store(clean_db, read_only=True) as s:
        result = verify_store(s)
    assert result.ok, result.differences
    assert len(result.runs) == 4 and result.audit_events == 5
    proc = cli("verify", "--all", "--db", clean_db)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "verified 4 run(s) and 5 audit event(s)" in proc.stdout and "all agree" in proc.stdout


@pytest.mark.parametrize("kind", list(TAMPER))
def test_every_kind_of_tampering_is_caught(kind, clean_db, tmp_path):
    steps, phrase = TAMPER[kind]
    db = _tamper(clean_db, tmp_path, steps)
    with Store(db, read_only=True) as s:
        result = verify_store(s)
    assert not result.ok, kind
    assert any(phrase in d for d in result.differences), (kind, result.differences)


def test_the_cli_lists_every_difference_and_exits_5(clean_db, tmp_path, cli):
    steps = TAMPER["fill price updated"][0] + TAMPER["order deleted"][0] + TAMPER["audit payload edited"][0]
    db = _tamper(clean_db, tmp_path, steps)
    proc = cli("verify", "--db", db)
    assert proc.returncode == EXIT_VERIFY_DIFFERENCES
    lines = proc.stdout.splitlines()
    assert any(line.startswith("DIFF audit chain:") and "was modified" in line for line in lines)
    assert any("price is" in line for line in lines)
    assert any("is missing from the database" in line for line in lines)
    assert "difference(s)" in lines[-1]
    one = cli("verify", "run-lean", "--db", db, "--json")  # that run itself is intact; the chain is not
    body = json.loads(one.stdout)
    assert one.returncode == EXIT_VERIFY_DIFFERENCES and body["runs"] == ["run-lean"]
    assert body["differences"] and all(d.startswith("audit chain") for d in body["differences"])


def test_verify_usage_errors(clean_db, cli):
    both = cli("verify", DONE, "--all", "--db", clean_db)
    assert both.returncode == 2 and "not both" in both.stderr
    missing = cli("verify", "run-nope", "--db", clean_db)
    assert missing.returncode == 2 and "'run-nope'" in missing.stderr


def test_partial_fill_and_limit_runs_replay_exactly(store, sample_snapshot, fallback_prices):
    """Replays use the snapshot's market data (volume), so multi-step partial fills and limits verify clean."""
    from tradeloop import RunParams, freeze_snapshot

    weights = sample_snapshot.weights.assign(volume=2_000.0)
    snapshot = freeze_snapshot(weights, portfolio_value=1_000_000, model_version="test-v1")
    params = [
        RunParams.from_dict({"steps": 3, "liquidity": {"model": "VolumeParticipation", "max_rate": 0.1}}),
        RunParams.from_dict({"order_type": "LIMIT", "limit_offset_bps": -1,
                             "slippage": {"model": "FixedBpsSlippage", "bps": 2}}),
    ]
    for p in params:
        run = create_run(store, snapshot, params=p, fallback_prices=fallback_prices)
        result = execute_run(store, run.run_id)
        assert result.status == "done"
        statuses = set(store.orders(run.run_id)["status"])
        assert statuses & {"CANCELED"}, statuses  # the models really left orders unfilled
        verification = verify_store(store, [run.run_id])
        assert verification.ok, verification.differences


# ---------------------------------------------------------------------- simulations
V6 = Path(__file__).parents[1] / "data" / "schema_v6.duckdb.gz"


def _history_files(tmp_path):
    import numpy as np

    from tradeloop import synthetic_history

    weights, prices = synthetic_history(5, 8, seed=6, n_portfolios=2)
    rng = np.random.default_rng(6)
    thin = rng.uniform(size=len(prices)) < 0.4
    prices["volume"] = np.where(thin, rng.integers(0, 400, len(prices)).astype(float), prices["volume"].astype(float))
    params = tmp_path / "limited.json"
    params.write_text(json.dumps({"liquidity": {"model": "VolumeParticipation", "max_rate": 0.1}, "steps": 3,
                                  "risk": {"max_order_notional": 150_000}}))
    weights.to_csv(tmp_path / "weights.csv", index=False)
    prices.to_csv(tmp_path / "prices.csv", index=False)
    return tmp_path / "weights.csv", tmp_path / "prices.csv", params


@pytest.fixture(scope="module")
def sim_db(tmp_path_factory):
    """Runs and two simulations (one with partial fills over several steps), all saved through the real CLI."""
    from support import run_cli

    tmp = tmp_path_factory.mktemp("verify-sims")
    db = tmp / "sims.duckdb"
    weights, prices, limited = _history_files(tmp)
    common = ["--weights", weights, "--prices", prices, "--portfolio-value", "1000000", "--model-version", "m1",
              "--db", db, "--no-progress"]
    ids = {}
    for name, params in (("plain", DATA / "params_pass.json"), ("partial", limited)):
        proc = run_cli("simulate", *common, "--params", params, "--json")
        assert proc.returncode == 0, proc.stdout + proc.stderr
        ids[name] = json.loads(proc.stdout)["simulation_id"]
    proc = run_cli("run", "--snapshot", DATA / "sample_snapshot.csv", "--portfolio-value", "1000000",
                   "--model-version", "m1", "--fallback-prices", DATA / "fallback_prices.csv", "--db", db)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return db, ids


def test_a_clean_database_with_runs_and_simulations_verifies(sim_db, cli):
    sim_db, ids = sim_db
    for args in (("verify", "--db", sim_db), ("verify", "--all", "--db", sim_db)):
        proc = cli(*args)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert "2 simulation(s)" in proc.stdout and "all agree" in proc.stdout
    with Store(sim_db, read_only=True) as s:
        result = verify_store(s)
        assert result.ok, result.differences
        assert result.simulations == tuple(sorted(ids.values())) and len(result.runs) == 1
        assert s.con.execute("SELECT count(*) FROM simulation_order_fills").fetchone()[0] > 0


FIRST_SIM_ORDER = f"(SELECT min(order_key) FROM simulation_orders WHERE simulation_id = '{{partial}}')"
SIM_TAMPER = {
    "simulation order qty edited": (
        [f"UPDATE simulation_orders SET qty = qty + 1 WHERE order_key = {FIRST_SIM_ORDER}"],
        "simulation_orders does not match", "a row was edited"),
    "simulation order commission edited": (
        [f"UPDATE simulation_orders SET commission = commission + 0.01 WHERE order_key = {FIRST_SIM_ORDER}"],
        "simulation_orders does not match", "a row was edited"),
    "simulation run deleted": (
        [f"DELETE FROM simulation_runs WHERE run_id = (SELECT min(run_id) FROM simulation_runs "
         f"WHERE simulation_id = '{{partial}}')"], "simulation_runs does not match", "rows were deleted"),
    "simulation run edited": (
        [f"UPDATE simulation_runs SET end_value = end_value + 1 WHERE simulation_id = '{{partial}}'"],
        "simulation_runs does not match", "a row was edited"),
    "extra simulation order inserted": (
        [f"INSERT INTO simulation_orders SELECT * REPLACE (order_key + 1 AS order_key, 'ZZZ' AS symbol) FROM "
         f"simulation_orders WHERE order_key = {FIRST_SIM_ORDER}"], "simulation_orders does not match",
        "rows were added"),
    "simulation fill edited": (
        [f"UPDATE simulation_order_fills SET qty = qty + 1 WHERE simulation_id = '{{partial}}' AND seq = 1"],
        "simulation_order_fills does not match", "a row was edited"),
    "simulation fill deleted": (
        [f"DELETE FROM simulation_order_fills WHERE simulation_id = '{{partial}}' AND seq = 2"],
        "simulation_order_fills does not match", "rows were deleted"),
    "simulation row edited": (
        [f"UPDATE simulations SET n_blocked = n_blocked + 1 WHERE simulation_id = '{{partial}}'"],
        "simulations.n_blocked is", "{partial}"),
    "simulation save payload edited": (
        [f"UPDATE audit_events SET payload = replace(payload, '\"runs\":10', '\"runs\":11') WHERE run_id = "
         f"'{{partial}}'"], "audit chain:", "was modified"),
    "simulation deleted": ([f"DELETE FROM simulations WHERE simulation_id = '{{plain}}'"],
                           "which is not in trade_runs", "{plain}"),
}


@pytest.mark.parametrize("kind", list(SIM_TAMPER))
def test_every_kind_of_simulation_tampering_is_caught(kind, sim_db, tmp_path):
    sim_db, ids = sim_db
    steps, phrase, detail = SIM_TAMPER[kind]
    db = _tamper(sim_db, tmp_path, [step.format(**ids) for step in steps])
    detail = detail.format(**ids)
    with Store(db, read_only=True) as s:
        result = verify_store(s)
    hits = [d for d in result.differences if phrase in d]
    assert hits and any(detail in d for d in hits), (kind, result.differences)


def test_a_tampered_simulation_exits_5_naming_it(sim_db, tmp_path, cli):
    sim_db, ids = sim_db
    db = _tamper(sim_db, tmp_path, [step.format(**ids) for step in SIM_TAMPER["simulation order qty edited"][0]])
    proc = cli("verify", "--db", db)
    assert proc.returncode == EXIT_VERIFY_DIFFERENCES
    assert any(line.startswith(f"DIFF simulation {ids['partial']}: simulation_orders") for line in proc.stdout.splitlines())


@pytest.fixture
def v6_db(tmp_path):
    db = tmp_path / "v6.duckdb"
    db.write_bytes(gzip.decompress(V6.read_bytes()))
    return db


def test_simulations_saved_by_older_tradeloop_still_verify(v6_db):
    with Store(v6_db) as store:  # migrates the v6 file
        result = verify_store(store)
        assert result.ok, result.differences
        assert set(result.simulations) == {"sim-v6-plain", "sim-v6-partial"}
        assert any("saved before its runs and fills were digested" in n for n in result.notes)
        assert store.simulation_orders("sim-v6-partial")["status"].value_counts().to_dict() == {
            "FILLED": 32, "REJECTED": 23, "CANCELED": 18}
    tampered = _tamper(v6_db, v6_db.parent, [
        "UPDATE simulation_orders SET fill_price = fill_price + 0.5 WHERE simulation_id = 'sim-v6-plain' "
        "AND order_key = (SELECT max(order_key) FROM simulation_orders WHERE simulation_id = 'sim-v6-plain' "
        "AND status_code = 0)"])
    with Store(tampered, read_only=True) as store:
        diffs = verify_store(store).differences
    assert any(d.startswith("simulation sim-v6-plain: simulation_orders does not match") for d in diffs), diffs


def test_a_run_failed_by_the_machine_is_a_note_not_a_difference(tmp_path, sample_snapshot, fallback_prices, cli):
    """Disk full half way (the first fill batch committed): recorded failed with environmental=true in its audit
    event; verify says so, checks the committed part, exits 0; a re-run completes it and verifies clean."""
    import errno

    db = tmp_path / "full.duckdb"

    def disk_full(point):
        if point == "after_fill_batch":
            raise OSError(errno.ENOSPC, "No space left on device")

    with Store(db) as store:
        run = create_run(store, sample_snapshot, fallback_prices=fallback_prices)
        result = execute_run(store, run.run_id, fill_batch=2, faults=disk_full)
        assert result.status == "failed" and "No space left on device" in result.error
        assert 0 < len(store.fills(run.run_id))  # the first batch stayed committed
        assert json.loads(store.audit_events(run.run_id)["payload"].iloc[-1])["environmental"] is True
    proc = cli("verify", "--db", db)
    assert proc.returncode == 0, proc.stdout
    assert f"note: run {run.run_id} failed for an environmental reason" in proc.stdout
    assert "tradeloop rerun" in proc.stdout and "DIFF" not in proc.stdout
    with Store(db) as store:
        assert execute_run(store, run.run_id).status == "done"
        assert verify_store(store).ok


def test_a_done_run_relabelled_as_a_disk_full_failure_is_still_a_difference(clean_db, tmp_path):
    db = _tamper(clean_db, tmp_path, [f"UPDATE trade_runs SET status = 'failed', error = 'IOException: No space left "
                                      f"on device' WHERE run_id = '{DONE}'"])
    with Store(db, read_only=True) as s:
        result = verify_store(s)
    assert any("status is 'failed' in the database, the replay gives 'done'" in d for d in result.differences)
    assert not any("environmental" in n for n in result.notes)


def test_an_anchor_catches_the_tail_of_the_chain_cut_off(clean_db, tmp_path, cli):
    """Deleting the last events of every run (and the attempts that name them) leaves a consistent shorter chain:
    only an anchor kept outside the database shows it."""
    db = tmp_path / "anchored.duckdb"
    shutil.copy(clean_db, db)
    anchor = tmp_path / "elsewhere" / "anchor.json"
    anchor.parent.mkdir()
    first = cli("verify", "--db", db, "--anchor", anchor)
    assert first.returncode == 0 and "anchor    seq 5 written" in first.stdout, first.stdout
    assert json.loads(anchor.read_text())["seq"] == 5
    assert cli("verify", "--db", db, "--expect-anchor", anchor).returncode == 0
    con = duckdb.connect(str(db))
    con.execute("DELETE FROM audit_events WHERE seq = 5")  # the re-run's event of run-done: the tail
    con.execute(f"UPDATE trade_runs SET attempts = 1 WHERE run_id = '{DONE}'")
    con.close()
    assert cli("verify", "--db", db).returncode == 0  # without the anchor the cut is invisible (documented)
    cut = cli("verify", "--db", db, "--expect-anchor", anchor, "--anchor", anchor)
    assert cut.returncode == EXIT_VERIFY_DIFFERENCES
    assert "it ends at seq 4, before the anchor's event (seq 5" in cut.stdout
    assert "anchor    not written" in cut.stdout and json.loads(anchor.read_text())["seq"] == 5  # kept
    with Store(db) as store:  # new events re-grow the chain past seq 5: the hash at seq 5 differs now
        execute_run(store, DONE)
    regrown = cli("verify", "--db", db, "--expect-anchor", anchor)
    assert regrown.returncode == EXIT_VERIFY_DIFFERENCES and "the anchor says" in regrown.stdout


@pytest.mark.parametrize("content, phrase", [("not json", "is not an anchor written by tradeloop verify"),
                                             ('{"seq": 0, "event_hash": "x"}', "has no valid seq"),
                                             (None, "does not exist")])
def test_a_bad_anchor_file_is_refused_in_one_line(content, phrase, clean_db, tmp_path, cli):
    anchor = tmp_path / "anchor.json"
    if content is not None:
        anchor.write_text(content)
    proc = cli("verify", "--db", clean_db, "--expect-anchor", anchor)
    assert proc.returncode == 2 and phrase in proc.stderr and proc.stderr.count("\n") == 1, proc.stderr
