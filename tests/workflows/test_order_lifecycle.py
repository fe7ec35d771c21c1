"""Order lifecycles through the real store and CLI: multi-step runs, events replaying to stored states, atomicity,
the v5 migration, `tradeloop show --order` and `tradeloop providers`."""

from __future__ import annotations

import json

import duckdb
import numpy as np
import pandas as pd
import pytest
from support import DATA

from tradeloop import (
    FIX_ORD_STATUS,
    LEAN_ORDER_STATUS,
    MockExecutionProvider,
    RunParams,
    Store,
    create_run,
    execute_run,
    freeze_snapshot,
    lifecycle_paths,
    replay_order_events,
)
from tradeloop.core.engine import FillResult
from tradeloop.core.fsm import ORDER_STATUSES
from tradeloop.errors import IllegalTransition
from tradeloop.store.schema import SCHEMA_V1
from tradeloop.venue.providers import FIX_TO_TRADELOOP, LEAN_TO_TRADELOOP


@pytest.fixture
def volume_snapshot(sample_snapshot):
    """The sample snapshot with a volume per symbol: some orders fit one step, some need several."""
    w = sample_snapshot.weights.copy()
    w["volume"] = np.where(np.arange(len(w)) % 3 == 0, 1_000_000.0, np.where(np.arange(len(w)) % 3 == 1, 2_000.0, np.nan))
    return freeze_snapshot(w, portfolio_value=1_000_000, model_version="test-v1")


def _assert_events_replay(store, run_id):
    events = store.order_events(run_id)
    replay = replay_order_events(events).set_index("client_order_id")
    orders = store.orders(run_id).set_index("client_order_id")
    touched = orders.loc[orders["status"] != "NEW"]
    assert sorted(replay.index) == sorted(touched.index)
    assert replay.loc[touched.index, "status"].tolist() == touched["status"].tolist()
    assert replay.loc[touched.index, "filled_qty"].tolist() == touched["filled_qty"].tolist()
    return events, orders


def test_multi_step_run_partial_fills_and_events_replay(store, volume_snapshot, positions, fallback_prices):
    params = RunParams.from_dict({"liquidity": {"model": "VolumeParticipation", "max_rate": 0.1}, "steps": 2,
                                  "slippage": {"model": "FixedBpsSlippage", "bps": 5},
                                  "commission": {"model": "PerShareCommission", "rate": 0.005, "minimum": 1.0}})
    run = create_run(store, volume_snapshot, params=params, positions=positions, fallback_prices=fallback_prices)
    result = execute_run(store, run.run_id)
    assert result.status == "done"
    events, orders = _assert_events_replay(store, run.run_id)
    # 10 % of 2,000 = 200 shares per step, floored to the lot: orders bigger than 2 steps' worth end CANCELED
    assert {"FILLED", "CANCELED"} <= set(orders["status"])
    canceled = orders.loc[orders["status"] == "CANCELED"]
    assert (canceled["reject_reason"] == "unfilled_at_close").all() and (canceled["filled_qty"] > 0).any()
    assert set(events["to_status"]) >= {"SUBMITTED", "PARTIAL", "FILLED", "CANCELED"}
    assert set(events["step"].dropna().astype(int)) == {1, 2}
    fills = store.fills(run.run_id)
    assert fills.groupby("client_order_id")["seq"].max().max() == 2
    # re-running the done run touches nothing
    before = store.table_counts()
    execute_run(store, run.run_id)
    after = store.table_counts()
    assert {k: after[k] for k in ("trade_fills", "order_events")} == {k: before[k] for k in ("trade_fills", "order_events")}


def test_limit_orders_that_do_not_cross_end_canceled_in_the_store(store, sample_snapshot, fallback_prices):
    params = RunParams.from_dict({"order_type": "LIMIT", "limit_offset_bps": -10, "steps": 3})
    run = create_run(store, sample_snapshot, params=params, fallback_prices=fallback_prices)
    assert execute_run(store, run.run_id).orders == {"CANCELED": 47}
    events, _ = _assert_events_replay(store, run.run_id)
    paths = lifecycle_paths(events)
    assert set(paths["path"]) == {"NEW > SUBMITTED > CANCELED " + str(q) + " (unfilled_at_close)"
                                  for q in store.orders(run.run_id)["qty"]}
    crossing = create_run(store, sample_snapshot, params=RunParams.from_dict({"order_type": "LIMIT",
                                                                              "limit_offset_bps": 10}),
                          fallback_prices=fallback_prices)
    assert execute_run(store, crossing.run_id).orders == {"FILLED": 47}


def test_missing_price_and_risk_block_events(store, sample_snapshot, block_params):
    run = create_run(store, sample_snapshot)  # two symbols have no price without the fallback file
    execute_run(store, run.run_id)
    events, orders = _assert_events_replay(store, run.run_id)
    rejected = orders.loc[orders["status"] == "REJECTED"]
    assert len(rejected) == 2 and set(rejected["reject_reason"]) == {"missing_price"}
    assert events.loc[events["client_order_id"].isin(rejected.index), ["from_status", "to_status", "reason"]
                      ].values.tolist() == [["NEW", "REJECTED", "missing_price"]] * 2
    blocked = create_run(store, sample_snapshot, params=block_params)
    assert execute_run(store, blocked.run_id).status == "blocked"
    events, orders = _assert_events_replay(store, blocked.run_id)
    assert events["reason"].str.startswith("risk:").all() and events["step"].isna().all()


def test_replay_refuses_illegal_or_broken_histories():
    base = pd.DataFrame({"client_order_id": ["A", "A"], "seq": [1, 2], "from_status": ["NEW", "SUBMITTED"],
                         "to_status": ["SUBMITTED", "FILLED"], "qty": [10, 10]})
    assert replay_order_events(base)[["status", "filled_qty"]].values.tolist() == [["FILLED", 10]]
    with pytest.raises(IllegalTransition, match=r"order 'A': its first event \(seq 2\) starts at 'SUBMITTED', not 'NEW'"):
        replay_order_events(base.iloc[1:])
    gap = base.assign(from_status=["NEW", "PARTIAL"])
    with pytest.raises(IllegalTransition, match="event seq 2 starts at 'PARTIAL' but the previous event ended at "
                                                "'SUBMITTED'"):
        replay_order_events(gap)
    illegal = base.assign(to_status=["FILLED", "CANCELED"], from_status=["NEW", "FILLED"])
    with pytest.raises(IllegalTransition, match="cannot go from 'NEW' to 'FILLED'"):
        replay_order_events(illegal)


class _UnstorableEvents(MockExecutionProvider):
    """Returns a valid execution whose event rows the database refuses (qty is text)."""

    def execute(self, run, orders, dry_run):
        r = super().execute(run, orders, dry_run)
        return FillResult(r.orders, r.fills, r.events.assign(qty="lots"))


def test_order_events_commit_with_the_state_change_or_not_at_all(store, sample_snapshot, fallback_prices):
    run = create_run(store, sample_snapshot, fallback_prices=fallback_prices)
    result = execute_run(store, run.run_id, provider=_UnstorableEvents())
    assert result.status == "failed" and "lots" in result.error
    counts = store.table_counts()
    assert counts["trade_fills"] == 0 and counts["order_events"] == 0
    assert set(store.orders(run.run_id)["status"]) == {"NEW"}
    assert execute_run(store, run.run_id).status == "done"  # the retry goes through and is consistent
    _assert_events_replay(store, run.run_id)


def test_migration_v5_on_a_version_1_database(tmp_path):
    path = tmp_path / "old.duckdb"
    con = duckdb.connect(str(path))
    con.execute(SCHEMA_V1)
    con.execute("CREATE TABLE schema_version (version INTEGER NOT NULL, applied_at TIMESTAMP NOT NULL)")
    con.execute("INSERT INTO schema_version VALUES (1, now())")
    con.execute("INSERT INTO order_events VALUES ('A-B-1', 1, 'r', 'NEW', 'SUBMITTED', 5, 1.0, NULL, now())")
    con.close()
    with Store(path) as s:
        assert 5 in {r[0] for r in s.con.execute("SELECT version FROM schema_version").fetchall()}
        ev = s.order_events("r")
        assert ev[["client_order_id", "to_status"]].values.tolist() == [["A-B-1", "SUBMITTED"]]
        assert "step" in ev.columns and ev["step"].isna().all()
    with Store(path) as s:  # applying again is a no-op
        assert s.con.execute("SELECT count(*) FROM schema_version WHERE version = 5").fetchone()[0] == 1


def test_lean_and_fix_mappings_cover_every_status():
    assert set(LEAN_ORDER_STATUS) == set(ORDER_STATUSES) == set(FIX_ORD_STATUS)
    assert set(LEAN_ORDER_STATUS.values()) == {"New", "Submitted", "PartiallyFilled", "Filled", "Canceled", "Invalid"}
    # inbound mappings are the inverse of the outbound ones
    assert all(LEAN_TO_TRADELOOP[v] == k for k, v in LEAN_ORDER_STATUS.items())
    assert all(FIX_TO_TRADELOOP[code] == k for k, (code, _) in FIX_ORD_STATUS.items())


# --- the real CLI ------------------------------------------------------------------------------------------------
def test_cli_show_order_lifecycle(tmp_path, cli):
    snap = pd.read_csv(DATA / "sample_snapshot.csv").head(6)
    snap["volume"] = [1e6, 2000, 2000, 1e6, 2000, 1e6]
    snap_file = tmp_path / "snap.csv"
    snap.to_csv(snap_file, index=False)
    params = tmp_path / "params.json"
    params.write_text(json.dumps({"liquidity": {"model": "VolumeParticipation", "max_rate": 0.1}, "steps": 2}))
    db = tmp_path / "cli.duckdb"
    ran = cli("run", "--snapshot", snap_file, "--portfolio-value", 2_000_000, "--model-version", "m1", "--params",
              params, "--db", db, "--json")
    assert ran.returncode == 0, ran.stderr
    run_id = json.loads(ran.stdout)["run_id"]
    shown = cli("show", run_id, "--db", db, "--json")
    body = json.loads(shown.stdout)
    canceled = [o for o in body["order_rows"] if o["status"] == "CANCELED"]
    assert canceled and body["order_events"]
    coid = canceled[0]["client_order_id"]
    one = cli("show", run_id, "--order", coid, "--db", db)
    assert one.returncode == 0, one.stderr
    lines = one.stdout.splitlines()
    assert lines[0] == f"order     {coid}  (run {run_id})"
    assert any("SUBMITTED   PARTIAL" in line for line in lines)
    assert any("PARTIAL  CANCELED" in line and "unfilled_at_close" in line for line in lines)
    assert lines[-1] == "replay    events lead to CANCELED: consistent with the stored status"
    text = cli("show", run_id, "--db", db)
    assert "\norder lifecycles (6; one order in detail: --order CLIENT_ORDER_ID)\n" in text.stdout
    assert f"  {coid}  NEW > SUBMITTED > PARTIAL " in text.stdout
    as_json = json.loads(cli("show", run_id, "--order", coid, "--db", db, "--json").stdout)
    assert as_json["consistent"] is True and as_json["replayed_status"] == "CANCELED"
    assert [e["to_status"] for e in as_json["events"]][-1] == "CANCELED"
    bad = cli("show", run_id, "--order", "NOPE-B-0", "--db", db)
    assert bad.returncode == 2 and bad.stderr.startswith(f"error: order 'NOPE-B-0' is not in run '{run_id}'")
    assert "Traceback" not in bad.stderr


def test_cli_providers_and_help(cli):
    listed = cli("providers")
    assert listed.returncode == 0
    assert listed.stdout.splitlines()[0].split() == ["name", "source", "target", "available", "summary"]
    assert any(line.split()[:4] == ["lean", "tradeloop", "tradeloop.venue.providers:LeanExecutionProvider", "no"]
               for line in listed.stdout.splitlines())
    for command in ("providers", "show"):
        helped = cli(command, "--help")
        assert helped.returncode == 0 and "Example:" in helped.stdout
    assert "--order CLIENT_ORDER_ID" in cli("show", "--help").stdout
