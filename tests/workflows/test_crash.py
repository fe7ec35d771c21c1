"""Crash safety: kill the real CLI with SIGKILL at every crash point, check the database, re-run, compare.

The hook is ``TRADELOOP_CRASH_AT`` (see tradeloop/faults.py). ``TRADELOOP_FILL_BATCH=7`` makes execution commit its
fills in several batches so that ``after_fill_batch`` leaves a half-filled run behind.
"""

from __future__ import annotations

import json
import signal
from datetime import timedelta

import numpy as np
import pandas as pd
import pytest
from support import DATA, run_cli

from tradeloop import Store, StoreBusy, create_run, execute_run, verify_store
from tradeloop.store.db import ORDER_IDENTITY, ORDER_STATE, utcnow
from tradeloop.workflows.faults import CRASH_POINTS

ORDER_COLS = list(ORDER_IDENTITY + ORDER_STATE)
FILL_COLS = ["fill_id", "run_id", "client_order_id", "seq", "qty", "price", "commission"]


def _write_limit_case(d):
    """30 symbols, LIMIT orders, 3 symbols without any price (REJECTED), sells of held positions."""
    rng = np.random.default_rng(11)
    n = 30
    syms = [f"L{i:02d}" for i in range(n)]
    price = np.round(rng.uniform(5, 300, n), 2).astype(object)
    price[[3, 17, 25]] = None
    pd.DataFrame({"symbol": syms, "weight": np.round(rng.dirichlet(np.ones(n)) * 0.9, 6), "price": price,
                  "sector": [("A", "B", "C")[i % 3] for i in range(n)]}).to_csv(d / "snap.csv", index=False)
    pd.DataFrame({"symbol": ["L01", "L02", "GONE"], "qty": [500, 40, 70]}).to_csv(d / "pos.csv", index=False)
    pd.DataFrame({"symbol": ["GONE"], "price": [9.5]}).to_csv(d / "fb.csv", index=False)
    (d / "params.json").write_text(json.dumps({"order_type": "LIMIT", "limit_offset_bps": 10, "cash_buffer": 0.01,
                                               "slippage": {"model": "FixedBpsSlippage", "bps": 3},
                                               "commission": {"model": "BpsCommission", "bps": 1}}))
    return ["--snapshot", d / "snap.csv", "--positions", d / "pos.csv", "--fallback-prices", d / "fb.csv",
            "--params", d / "params.json", "--portfolio-value", "500000", "--model-version", "limit-v1"]


def _write_large_case(d):
    """240 symbols with lot sizes 1/10/100 and per-share commissions."""
    rng = np.random.default_rng(5)
    n = 240
    syms = [f"B{i:03d}" for i in range(n)]
    pd.DataFrame({"symbol": syms, "weight": np.round(rng.dirichlet(np.ones(n)) * 0.97, 7),
                  "price": np.round(rng.lognormal(4, 0.7, n), 2), "lot_size": rng.choice([1, 10, 100], n)}
                 ).to_csv(d / "snap.csv", index=False)
    pd.DataFrame({"symbol": syms[:20], "qty": rng.integers(1, 400, 20)}).to_csv(d / "pos.csv", index=False)
    (d / "params.json").write_text(json.dumps({"commission": {"model": "PerShareCommission", "rate": 0.004}}))
    return ["--snapshot", d / "snap.csv", "--positions", d / "pos.csv", "--params", d / "params.json",
            "--portfolio-value", "25000000", "--model-version", "large-v1"]


def _sample_case(d, params="params_pass.json"):
    return ["--snapshot", DATA / "sample_snapshot.csv", "--positions", DATA / "positions.csv",
            "--fallback-prices", DATA / "fallback_prices.csv", "--params", DATA / params,
            "--portfolio-value", "1000000", "--model-version", "sample-v1"]


CASES = {"sample": _sample_case, "limit": _write_limit_case, "large": _write_large_case,
         "blocked": lambda d: _sample_case(d, "params_block.json")}
EXPECTED_STATUS = {"sample": "done", "limit": "done", "large": "done", "blocked": "blocked"}
EXIT = {"done": 0, "blocked": 3}


def _rows(db):
    with Store(db, read_only=True) as s:
        run_id = s.runs()["run_id"].iloc[0]
        orders = s.orders(run_id).loc[:, ORDER_COLS].sort_values("client_order_id").reset_index(drop=True)
        fills = s.fills(run_id).loc[:, FILL_COLS].sort_values("fill_id").reset_index(drop=True)
        return s.get_run(run_id)["status"], orders, fills


def _consistent(db) -> None:
    """What a crash may leave: complete committed steps only (verify treats an unfinished run as a prefix)."""
    with Store(db, read_only=True) as s:
        result = verify_store(s)
        assert result.ok, result.differences
        for run_id in result.runs:
            orders, fills = s.orders(run_id), s.fills(run_id)
            assert orders["client_order_id"].is_unique and fills["fill_id"].is_unique
            summed = fills.groupby("client_order_id")["qty"].sum().reindex(orders["client_order_id"]).fillna(0)
            assert (orders["filled_qty"].to_numpy() == summed.to_numpy()).all()


@pytest.fixture(scope="module")
def baselines(tmp_path_factory):
    """One uninterrupted CLI run per case: (run_id, status, orders, fills, args)."""
    out = {}
    for name, make in CASES.items():
        d = tmp_path_factory.mktemp(f"base-{name}")
        args = make(d)
        proc = run_cli("run", *args, "--db", d / "base.duckdb", "--json")
        status = EXPECTED_STATUS[name]
        assert proc.returncode == EXIT[status], proc.stderr
        run_id = json.loads(proc.stdout)["run_id"]
        assert _rows(d / "base.duckdb")[0] == status
        out[name] = (run_id, *_rows(d / "base.duckdb"), args)
    return out


POINTS = [(case, point) for case in ("sample", "limit", "large") for point in CRASH_POINTS] + [
    ("blocked", "after_claim"), ("blocked", "after_orders"), ("blocked", "before_finalize")]


@pytest.mark.parametrize("case,point", POINTS, ids=[f"{c}-{p}" for c, p in POINTS])
def test_killed_run_recovers_to_the_uninterrupted_result(case, point, baselines, tmp_path):
    run_id, status, orders, fills, args = baselines[case]
    db = tmp_path / "crash.duckdb"
    killed = run_cli("run", *args, "--db", db, env={"TRADELOOP_CRASH_AT": point, "TRADELOOP_FILL_BATCH": "7"})
    assert killed.returncode == -signal.SIGKILL, (point, killed.returncode, killed.stderr)
    _consistent(db)
    if point == "after_fill_batch":  # the run really was caught half-filled
        with Store(db, read_only=True) as s:
            st = s.orders(run_id)["status"]
            assert 0 < (st != "NEW").sum() < len(st)

    again = run_cli("rerun", run_id, "--db", db, "--json")
    assert again.returncode == EXIT[status], again.stderr
    got_status, got_orders, got_fills = _rows(db)
    assert got_status == status
    pd.testing.assert_frame_equal(got_orders, orders)
    pd.testing.assert_frame_equal(got_fills, fills)
    _consistent(db)
    with Store(db, read_only=True) as s:
        events = s.audit_events(run_id)
        if point not in ("after_freeze", "before_finalize"):  # the dead owner is named in an audited transition
            payload = json.loads(events["payload"].iloc[0])
            assert payload["status"] == "failed" and payload["error"].startswith("abandoned by process")


def _running_with_lease(store, snapshot, host, expires):
    run = create_run(store, snapshot)
    with store.transaction():
        store.update_run(run.run_id, status="running", attempts=1)
        store.set_lease(run.run_id, 4_000_000, host, expires)
    return run


def test_a_live_owner_on_another_host_is_refused_by_name(store, sample_snapshot):
    run = _running_with_lease(store, sample_snapshot, "other-host", utcnow() + timedelta(minutes=5))
    before = store.table_counts()
    with pytest.raises(StoreBusy, match=r"process 4000000 on other-host"):
        execute_run(store, run.run_id)
    assert store.table_counts() == before and store.get_run(run.run_id)["status"] == "running"


def test_an_expired_lease_is_taken_over(store, sample_snapshot):
    run = _running_with_lease(store, sample_snapshot, "other-host", utcnow() - timedelta(seconds=1))
    assert execute_run(store, run.run_id).status == "done"
    first = json.loads(store.audit_events(run.run_id)["payload"].iloc[0])
    assert first["error"].startswith("abandoned by process 4000000 on other-host")
    assert store.get_lease(run.run_id) is None


def test_a_dead_pid_on_this_host_is_taken_over_at_once(store, sample_snapshot):
    from tradeloop.workflows.run import _HOST

    run = _running_with_lease(store, sample_snapshot, _HOST, utcnow() + timedelta(hours=1))
    assert execute_run(store, run.run_id).status == "done"
