"""The SQL views decode every code exactly as the table of codes says: a status, reject reason or risk rule that
the views spell differently from :mod:`tradeloop.core.codes` fails here."""

from __future__ import annotations

import duckdb
import pytest

from tradeloop import Store
from tradeloop.core import codes
from tradeloop.store import schema


def _one_order_per_code(con) -> None:
    """A simulation with one order per (outcome, risk mask) pair: ``order_key`` = outcome * 100000 + mask."""
    con.execute("INSERT INTO simulations VALUES ('sim-v', 'd', 'm', '{}', 'MARKET', '[1]', NULL, '[\"\"]', 1, 1, "
                "'2024-01-02', '2024-01-02', 0, 0, 0, 'x', now())")
    con.execute("INSERT INTO simulation_runs (simulation_id, run_id, date, portfolio, portfolio_value, cash_before, "
                "n_orders, n_filled, n_blocked, n_missing_price, n_canceled, buy_notional, sell_notional, commission, "
                "cash_after, end_value, n_positions, blocked_by_code) VALUES ('sim-v', 'sim-v-20240102', "
                "'2024-01-02', '', 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 0, '{}')")
    masks = len(codes.risk_mask_names())
    for o in codes.rows(codes.OUTCOME):
        con.execute("INSERT INTO simulation_orders (simulation_id, date, portfolio, order_key, symbol, sell, qty, "
                    "lot_size, target_weight, current_qty, untrimmed_qty, status_code, risk_mask, fill_price, "
                    "commission) SELECT 'sim-v', '2024-01-02', '', ? * 100000 + m, 'AAA', false, 10, 1, 0.1, 0, 10, "
                    "?, m, 1.0, 0 FROM range(?) r(m)", [o.code, o.code, masks])


@pytest.fixture
def decoded(store):
    with store.transaction():
        _one_order_per_code(store.con)
    return store.con.execute("SELECT order_key, status, reject_reason, risk_codes, filled_qty FROM "
                             "simulation_orders_v ORDER BY order_key").fetchall()


def test_the_views_decode_every_outcome_and_every_risk_mask(decoded):
    mask_names = codes.risk_mask_names()
    outcomes = codes.rows(codes.OUTCOME)
    assert len(decoded) == len(outcomes) * len(mask_names)
    for key, status, reason, risk_codes, filled in decoded:
        outcome = codes.rows(codes.OUTCOME)[key // 100000]
        mask = key % 100000
        assert outcome.code == key // 100000
        assert risk_codes == mask_names[mask]
        assert status == outcome.status
        if outcome.reason is None:
            assert reason is None
        elif outcome.reason == "risk":
            assert reason == codes.RISK_PREFIX + mask_names[mask]
        else:
            assert reason == outcome.reason
        assert filled == (10 if outcome.status == "FILLED" else 0)


def test_every_risk_rule_has_its_own_bit_in_the_view():
    sql = schema.risk_codes_sql("m")
    for rule in codes.rows(codes.RISK_RULE):
        assert f"m & {1 << rule.bit} <> 0 THEN '{rule.name}'" in sql


def test_a_new_database_and_an_upgraded_one_have_the_generated_views(tmp_path, monkeypatch):
    def view_sql(db):
        con = duckdb.connect(str(db), read_only=True)
        try:
            return dict(con.execute("SELECT view_name, sql FROM duckdb_views() WHERE NOT internal").fetchall())
        finally:
            con.close()

    with Store(tmp_path / "new.duckdb"):
        pass
    with monkeypatch.context() as m:
        m.setattr(schema, "MIGRATIONS", [x for x in schema.MIGRATIONS if x[0] <= 6])
        m.setattr(schema, "SCHEMA_VERSION", 6)
        with Store(tmp_path / "v6.duckdb"):
            pass
    before = view_sql(tmp_path / "v6.duckdb")
    with Store(tmp_path / "v6.duckdb") as store:
        assert store.schema_version() == schema.SCHEMA_VERSION
    after = view_sql(tmp_path / "v6.duckdb")
    assert after == view_sql(tmp_path / "new.duckdb")
    assert after["simulation_orders_v"] != before["simulation_orders_v"]  # v7 replaced the hand-written view
