"""Every risk decision is explained: the ``risk_decisions`` rows of a run and of a simulation equal what
``tradeloop show --json`` and the audit events report, and ``verify`` catches an edited, added or deleted row."""

from __future__ import annotations

import json

import duckdb
import pandas as pd
import pytest

import tradeloop as tl
from tradeloop.core.digest import decisions_digest
from tradeloop.store.simulations import save_simulation
from tradeloop.workflows.verify import verify_store

RISK = {"max_adv_participation": 0.1, "min_order_qty": 50, "restricted": {"no_buy": ["CCC"]},
        "max_order_notional": 40_000, "on_breach": {"max_order_notional": "reject"}}
# value 100,000: AAA 0.5 @ 10 = 5,000 shares > 0.1 × 20,000 -> 2,000; BBB 0.004 @ 10 = 40 shares < 50, skipped;
# CCC restricted; DDD 0.45 @ 10 = 4,500 = 45,000 > 40,000 rejected
ROWS = pd.DataFrame({"symbol": ["AAA", "BBB", "CCC", "DDD"], "weight": [0.5, 0.004, 0.04, 0.45],
                     "price": [10.0, 10.0, 10.0, 10.0], "adv": [20_000.0, 1e6, 1e6, 1e6]})
EXPECTED = [  # (symbol, side, rule, action, qty_before, qty_after)
    ("AAA", "BUY", "max_adv_participation", "resize", 5000, 2000),
    ("BBB", "BUY", "min_order_qty", "skip", 40, 0),
    ("CCC", "BUY", "restricted", "reject", 400, 0),
    ("DDD", "BUY", "max_order_notional", "reject", 4500, 0),
]


@pytest.fixture
def stored_run(tmp_path):
    db = tmp_path / "d.duckdb"
    snap = tl.freeze_snapshot(ROWS, portfolio_value=100_000, model_version="m1")
    with tl.Store(db) as store:
        result = tl.run_snapshot(store, snap, params=tl.RunParams.from_dict({"risk": RISK}), run_id="r1")
    return db, result


def _rows(frame) -> list[tuple]:
    return [(r.symbol, r.side, r.rule, r.action, int(r.qty_before), int(r.qty_after))
            for r in frame.sort_values("symbol").itertuples()]


def test_run_decisions_equal_show_json_and_the_audit_event(stored_run, cli):
    db, result = stored_run
    assert result.status == "done"
    with tl.Store(db, read_only=True) as store:
        stored = store.risk_decisions("r1")
        orders = store.orders("r1").set_index("symbol")
        event = json.loads(store.audit_events("r1").iloc[-1]["payload"])
    assert _rows(stored) == EXPECTED
    assert orders.loc["AAA", ["qty", "status"]].tolist() == [2000, "FILLED"]
    assert "BBB" not in orders.index  # skipped: never sent
    assert orders.loc["CCC", "reject_reason"] == "risk:restricted"
    assert orders.loc["DDD", "reject_reason"] == "risk:max_order_notional"
    assert set(stored["client_order_id"]) >= set(orders.loc[["AAA", "CCC", "DDD"], "client_order_id"])
    assert event["payload_version"] == 3
    assert event["risk_decisions"] == 4 and event["risk_decisions_digest"] == decisions_digest(stored)
    out = cli("show", "r1", "--db", db, "--json")
    assert out.returncode == 0, out.stderr
    shown = pd.DataFrame(json.loads(out.stdout)["risk_decisions"])
    assert _rows(shown) == EXPECTED
    cols = ["client_order_id", "observed", "limit"]
    assert shown.sort_values("symbol")[cols].to_dict("list") == \
        stored.rename(columns={"limit_value": "limit"}).sort_values("symbol")[cols].to_dict("list")
    assert "AAA BUY 5,000 → 2,000: max_adv_participation 10 % of ADV 20,000" in shown["text"].tolist()
    text = cli("show", "r1", "--db", db)
    assert "risk decisions (4)" in text.stdout and "BBB BUY 40 skipped: min_order_qty 40 against 50" in text.stdout


@pytest.mark.parametrize("tamper, phrase", [
    ("UPDATE risk_decisions SET qty_after = 3000 WHERE symbol = 'AAA'", "risk_decisions"),
    ("DELETE FROM risk_decisions WHERE symbol = 'BBB'", "risk_decisions"),
    ("INSERT INTO risk_decisions SELECT * REPLACE ('EEE' AS symbol) FROM risk_decisions WHERE symbol = 'BBB'",
     "risk_decisions"),
    ("INSERT INTO risk_decisions SELECT * REPLACE ('ghost' AS run_id) FROM risk_decisions WHERE symbol = 'BBB'",
     "ghost"),
])
def test_verify_catches_an_edited_added_or_deleted_run_decision(stored_run, tamper, phrase):
    db, _ = stored_run
    with tl.Store(db) as store:
        assert verify_store(store).ok
    con = duckdb.connect(str(db))
    con.execute(tamper)
    con.close()
    with tl.Store(db) as store:
        v = verify_store(store)
    assert not v.ok
    assert any(phrase in d for d in v.differences), v.differences


def test_a_rerun_keeps_the_same_decisions(stored_run):
    db, _ = stored_run
    with tl.Store(db) as store:
        before = store.risk_decisions("r1")
        tl.execute_run(store, "r1")
        assert store.risk_decisions("r1").equals(before)
        assert verify_store(store).ok


def _history():
    dates = ["2024-01-02", "2024-01-03"]
    w = pd.DataFrame({"date": [d for d in dates for _ in range(4)], "symbol": list(ROWS["symbol"]) * 2,
                      "weight": list(ROWS["weight"]) * 2})
    p = w.drop(columns="weight").assign(price=10.0, adv=list(ROWS["adv"]) * 2)
    return w, p


def test_simulation_decisions_are_saved_shown_and_verified(tmp_path, cli):
    w, p = _history()
    sim = tl.simulate(w, p, portfolio_value=100_000, params=tl.RunParams.from_dict({"risk": RISK}),
                      model_version="m1")
    first = sim.risk_decisions.loc[sim.risk_decisions["date"] == pd.Timestamp("2024-01-02")]
    assert _rows(first) == EXPECTED
    sim_orders = sim.orders.set_index("symbol")
    assert int(sim_orders.loc["AAA", "qty"].iloc[0]) == 2000
    db = tmp_path / "s.duckdb"
    with tl.Store(db) as store:
        save_simulation(store, sim)
        stored = store.simulation_decisions(sim.simulation_id)
        event = json.loads(store.audit_events(sim.simulation_id).iloc[-1]["payload"])
        assert verify_store(store).ok
    assert len(stored) == len(sim.risk_decisions) == event["decisions"]
    assert stored["client_order_id"].tolist() == sim.risk_decisions["client_order_id"].tolist()
    out = cli("show", sim.simulation_id, "--db", db, "--json")
    assert out.returncode == 0, out.stderr
    shown = pd.DataFrame(json.loads(out.stdout)["risk_decisions"])
    assert shown["client_order_id"].tolist() == stored["client_order_id"].tolist()
    assert shown["qty_after"].tolist() == stored["qty_after"].tolist()
    con = duckdb.connect(str(db))
    con.execute("UPDATE risk_decisions SET qty_after = 1 WHERE symbol = 'AAA'")
    con.close()
    with tl.Store(db) as store:
        v = verify_store(store)
    assert any("risk_decisions does not match" in d for d in v.differences), v.differences
