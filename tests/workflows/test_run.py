"""Mock integration and regression: snapshot -> run -> orders -> risk -> execution -> fills -> audit, in DuckDB."""

import dataclasses
import json

import duckdb
import numpy as np
import pandas as pd
import pytest

from tradeloop import (
    MockExecutionProvider,
    RunConflict,
    RunParams,
    Store,
    ValidationError,
    create_run,
    execute_run,
    freeze_snapshot,
    run_snapshot,
)
from tradeloop.core.digest import frame_digest, verify_chain
from tradeloop.store.db import ORDER_IDENTITY, ORDER_STATE
from tradeloop.workflows.faults import CRASH_POINTS

CONTENT = ["client_order_id", "run_id", "symbol", "side", "qty", "order_type", "price", "status", "filled_qty",
           "avg_fill_price", "reject_reason"]


def execute(store, snapshot, **kw):
    run = create_run(store, snapshot, **kw)
    return execute_run(store, run.run_id)


def test_snapshot_to_fills_through_the_store(store, sample_snapshot, pass_params, fallback_prices, positions):
    result = execute(store, sample_snapshot, params=pass_params, fallback_prices=fallback_prices, positions=positions)
    assert result.status == "done" and result.error is None
    orders, fills = store.orders(result.run_id), store.fills(result.run_id)
    assert result.orders == {"FILLED": len(orders)} and len(fills) == len(orders) == result.fills
    merged = orders.merge(fills, on="client_order_id", suffixes=("", "_fill"))
    assert (merged["filled_qty"] == merged["qty_fill"]).all()
    sign = np.where(merged["side"] == "BUY", 1, -1)
    np.testing.assert_allclose(merged["price_fill"], np.round(merged["price"] * (1 + sign * 5e-4), 6))
    assert (merged["commission"] >= 1.0).all()
    # fallback prices were used where the snapshot had none, and OLDCO (held, no longer targeted) was sold
    by_symbol = orders.set_index("symbol")
    assert by_symbol.loc["S007", "price_source"] == "fallback"
    assert by_symbol.loc["OLDCO", ["side", "qty"]].tolist() == ["SELL", 500]
    events = store.order_events(result.run_id)
    assert len(events) == 2 * len(orders)  # NEW -> SUBMITTED -> FILLED for each


def test_order_without_any_price_is_rejected_missing_price(store, sample_snapshot, pass_params):
    result = execute(store, sample_snapshot, params=pass_params)
    orders = store.orders(result.run_id).set_index("symbol")
    assert result.status == "done"
    assert orders.loc[["S007", "S023"], "status"].tolist() == ["REJECTED", "REJECTED"]
    assert orders.loc[["S007", "S023"], "reject_reason"].tolist() == ["missing_price", "missing_price"]
    assert not store.fills(result.run_id)["client_order_id"].isin(orders.loc[["S007", "S023"], "client_order_id"]).any()


def test_rerun_reuses_orders_and_never_duplicates(store, sample_snapshot, pass_params, fallback_prices):
    first = execute(store, sample_snapshot, params=pass_params, fallback_prices=fallback_prices)
    orders_before, fills_before = store.orders(first.run_id), store.fills(first.run_id)
    again = execute_run(store, first.run_id)
    also = execute(store, sample_snapshot, params=pass_params, fallback_prices=fallback_prices)  # same inputs
    assert also.run_id == first.run_id
    for result in (again, also):
        assert result.to_dict() == first.to_dict()
    pd.testing.assert_frame_equal(store.orders(first.run_id), orders_before)  # terminal orders untouched, to updated_at
    pd.testing.assert_frame_equal(store.fills(first.run_id), fills_before)
    audit = store.audit_events(first.run_id)
    assert [json.loads(p)["attempt"] for p in audit["payload"]] == [1, 2, 3]
    assert store.table_counts()["trade_runs"] == 1


def test_duplicate_orders_are_refused_by_the_schema_itself(store, sample_snapshot):
    result = execute(store, sample_snapshot)
    coid = store.orders(result.run_id)["client_order_id"].iloc[0]
    with pytest.raises(duckdb.ConstraintException):
        store.con.execute("INSERT INTO trade_orders SELECT * FROM trade_orders WHERE client_order_id = ?", [coid])


def test_execution_results_match_the_audit_record(store, sample_snapshot, pass_params, fallback_prices):
    result = execute(store, sample_snapshot, params=pass_params, fallback_prices=fallback_prices)
    event = store.audit_events(result.run_id).iloc[-1]
    payload = json.loads(event["payload"])
    orders, fills = store.orders(result.run_id), store.fills(result.run_id)
    assert event["event_type"] == "trade_run.execute"
    assert payload["snapshot_id"] == sample_snapshot.snapshot_id
    assert payload["risk_params"] == pass_params.risk.to_dict()
    assert payload["counts"]["orders_by_status"] == orders["status"].value_counts().to_dict()
    assert payload["counts"]["fills"] == len(fills)
    assert payload["counts"]["notional"] == pytest.approx(result.notional)
    assert payload["orders_digest"] == frame_digest(orders, ORDER_IDENTITY + ORDER_STATE, "client_order_id")
    assert verify_chain(store.audit_events()) == []


def test_risk_block_is_explained_in_params_and_audit(store, sample_snapshot, block_params, fallback_prices):
    result = execute(store, sample_snapshot, params=block_params, fallback_prices=fallback_prices)
    assert result.status == "blocked"
    assert len(result.blocked_reasons) == 4
    assert all("exceeds max_order_notional 35,000.00" in r for r in result.blocked_reasons)
    run = store.get_run(result.run_id)
    outcome = json.loads(run["params"])["risk"]["outcome"]
    assert outcome["passed"] is False and outcome["blocked_by_code"] == {"max_order_notional": 4}
    payload = json.loads(store.audit_events(result.run_id).iloc[-1]["payload"])
    assert payload["status"] == "blocked" and payload["risk"]["blocked"] == outcome["blocked"]
    orders = store.orders(result.run_id)
    rejected = orders[orders.status == "REJECTED"]
    assert len(rejected) == 4 and (rejected["reject_reason"] == "risk:max_order_notional").all()
    assert set(orders["status"]) == {"NEW", "REJECTED"}  # nothing submitted
    assert store.fills(result.run_id).empty


def test_dry_run_submits_nothing(store, sample_snapshot, pass_params, fallback_prices):
    result = execute(store, sample_snapshot, params=pass_params, fallback_prices=fallback_prices, dry_run=True)
    assert result.status == "done" and result.dry_run
    assert set(store.orders(result.run_id)["status"]) == {"NEW"}
    assert store.fills(result.run_id).empty and store.order_events(result.run_id).empty


def test_lean_provider_fails_clearly_and_is_audited(store, sample_snapshot):
    result = execute(store, sample_snapshot, provider="lean")
    assert result.status == "failed"
    assert result.error == "reserved: live Lean/IB execution is not available in this phase"
    payload = json.loads(store.audit_events(result.run_id).iloc[-1]["payload"])
    assert payload["error"] == result.error and payload["status"] == "failed"


class FlakyVenue(MockExecutionProvider):
    """A real mock venue that loses its connection on the first attempt."""

    calls = 0

    def execute(self, run, orders, dry_run):
        FlakyVenue.calls += 1
        if FlakyVenue.calls == 1:
            raise ConnectionError("venue dropped the session")
        return super().execute(run, orders, dry_run)


def test_failed_run_can_be_rerun_to_completion(store, sample_snapshot, fallback_prices):
    run = create_run(store, sample_snapshot, fallback_prices=fallback_prices)
    failed = execute_run(store, run.run_id, provider=FlakyVenue())
    assert failed.status == "failed" and failed.error == "ConnectionError: venue dropped the session"
    assert set(store.orders(run.run_id)["status"]) == {"NEW"}
    done = execute_run(store, run.run_id, provider=FlakyVenue())
    assert done.status == "done" and set(done.orders) == {"FILLED"}
    assert store.get_run(run.run_id)["attempts"] == 2
    statuses = [json.loads(p)["status"] for p in store.audit_events(run.run_id)["payload"]]
    assert statuses == ["failed", "done"]


def test_bad_input_writes_nothing(store, sample_snapshot):
    before = store.table_counts()
    with pytest.raises(ValidationError, match="max_leverage"):
        create_run(store, sample_snapshot, params=RunParams(max_leverage=0.5))
    with pytest.raises(ValidationError, match="positions: qty for 'A' is 1.5"):
        create_run(store, sample_snapshot, positions=pd.DataFrame({"symbol": ["A"], "qty": [1.5]}))
    with pytest.raises(ValidationError, match="provider 'ib' is unknown"):
        create_run(store, sample_snapshot, provider="ib")
    unsectored = freeze_snapshot(pd.DataFrame({"symbol": ["A"], "weight": [0.1], "price": [1.0]}),
                                 portfolio_value=100, model_version="m")
    with pytest.raises(ValidationError, match=r"sector is unknown for \['A'\]"):
        create_run(store, unsectored, params=RunParams.from_dict({"risk": {"sector_cap": 0.5}}))
    assert store.table_counts() == before


def test_same_snapshot_and_params_give_identical_orders_and_fills(tmp_path, sample_snapshot, pass_params,
                                                                  fallback_prices):
    tables = []
    for name in ("a.duckdb", "b.duckdb"):
        with Store(tmp_path / name) as s:
            result = execute(s, sample_snapshot, params=pass_params, fallback_prices=fallback_prices)
            fills = s.fills(result.run_id).drop(columns="filled_at")
            tables.append((s.orders(result.run_id)[CONTENT].to_csv(), fills.to_csv()))
    assert tables[0] == tables[1]


def test_store_reloads_the_frozen_snapshot_exactly(store, sample_snapshot):
    store.save_snapshot(sample_snapshot)
    again = store.load_snapshot(sample_snapshot.snapshot_id)
    assert again == sample_snapshot
    pd.testing.assert_frame_equal(again.weights, sample_snapshot.weights, check_dtype=False)
    assert store.save_snapshot(sample_snapshot) is False


# --- a run id is an idempotency key: the same id with other inputs is refused, nothing written -------------------
def _conflict(store, snapshot, changed: dict, base: dict):
    before = store.table_counts()
    with pytest.raises(RunConflict) as info:
        create_run(store, snapshot, run_id="R", **{**base, **changed})
    assert store.table_counts() == before
    return str(info.value)


def test_a_run_id_reused_with_different_inputs_is_refused(store, sample_snapshot, pass_params, block_params,
                                                          fallback_prices, positions):
    base = dict(params=pass_params, fallback_prices=fallback_prices, positions=positions)
    first = execute(store, sample_snapshot, run_id="R", **base)
    assert first.status == "done"
    stricter = dataclasses.replace(pass_params, risk=dataclasses.replace(pass_params.risk, max_order_notional=50_000))
    assert _conflict(store, sample_snapshot, {"params": stricter}, base).startswith(
        "run 'R' exists with different params: risk.max_order_notional stored 100000, given 50000")
    assert "risk.max_order_notional" in _conflict(store, sample_snapshot, {"params": block_params}, base)
    moved = positions.assign(qty=np.where(positions["symbol"] == "OLDCO", 499, positions["qty"]))
    assert _conflict(store, sample_snapshot, {"positions": moved}, base).startswith(
        "run 'R' exists with different positions: symbols ['OLDCO']")
    assert _conflict(store, sample_snapshot, {"positions": None}, base).startswith(
        "run 'R' exists with different positions: symbols [")
    cheaper = fallback_prices.assign(price=fallback_prices["price"] * 0.5)
    assert "exists with different fallback prices: symbols [" in _conflict(store, sample_snapshot,
                                                                        {"fallback_prices": cheaper}, base)
    other = freeze_snapshot(sample_snapshot.weights, portfolio_value=2e6, model_version="test-v1")
    assert _conflict(store, other, {}, base).startswith(
        f"run 'R' exists with different snapshot: stored {sample_snapshot.snapshot_id}, given {other.snapshot_id}")
    assert "different provider, dry_run: provider stored 'mock', given 'lean'; dry_run stored False, given True" in \
        _conflict(store, sample_snapshot, {"provider": "lean", "dry_run": True}, base)
    # the same inputs: today's behaviour, the stored run is re-checked
    again = execute(store, sample_snapshot, run_id="R", **base)
    assert again.status == "done" and again.orders == first.orders and again.fills == first.fills


def test_a_reused_run_id_with_different_inputs_is_refused_by_run_snapshot_too(store, sample_snapshot, pass_params,
                                                                              fallback_prices):
    run_snapshot(store, sample_snapshot, params=pass_params, fallback_prices=fallback_prices, run_id="R")
    before = store.table_counts()
    with pytest.raises(RunConflict, match="exists with different params"):
        run_snapshot(store, sample_snapshot, params=RunParams(), fallback_prices=fallback_prices, run_id="R")
    assert store.table_counts() == before


def test_execution_settings_are_checked_before_anything_is_written(store, sample_snapshot, pass_params):
    before = store.table_counts()
    with pytest.raises(ValidationError, match="lease_seconds is 0; it must be > 0"):
        run_snapshot(store, sample_snapshot, params=pass_params, lease_seconds=0)
    with pytest.raises(ValidationError, match="fill_batch is 0; it must be a whole number >= 1"):
        run_snapshot(store, sample_snapshot, params=pass_params, fill_batch=0)
    assert store.table_counts() == before


def test_the_faults_hook_sees_every_crash_point_in_order(store, sample_snapshot, pass_params, fallback_prices):
    seen = []
    result = run_snapshot(store, sample_snapshot, params=pass_params, fallback_prices=fallback_prices, fill_batch=7,
                          faults=seen.append)
    assert result.status == "done"
    assert seen == ["after_freeze", "after_claim", "after_orders", "mid_fills", "after_fill_batch",
                    "before_finalize"]
    assert set(seen) == set(CRASH_POINTS)
