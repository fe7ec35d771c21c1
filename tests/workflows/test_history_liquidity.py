"""simulate() with a liquidity model and several steps: partial fills in memory, in the store (schema v6) and per
portfolio; the fast path keeps writing no fill rows."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import tradeloop as tl
import tradeloop.store.schema as store_module
from tradeloop import RunParams, Store
from tradeloop.store.simulations import save_simulation
from tradeloop.workflows.history import simulate

LIMITED = {"liquidity": {"model": "VolumeParticipation", "max_rate": 0.1}, "steps": 3,
           "slippage": {"model": "FixedBpsSlippage", "bps": 2},
           "commission": {"model": "PerShareCommission", "rate": 0.005, "minimum": 1.0}}


def _history(n_dates=6, n_symbols=10, seed=4, n_portfolios=1):
    w, p = tl.synthetic_history(n_dates, n_symbols, seed=seed, n_portfolios=n_portfolios)
    rng = np.random.default_rng(seed)
    thin = rng.uniform(size=len(p)) < 0.4
    p["volume"] = np.where(thin, rng.integers(0, 4000, len(p)).astype(float), p["volume"].astype(float))
    p.loc[rng.uniform(size=len(p)) < 0.05, "volume"] = np.nan
    return w, p


def test_partial_fills_in_memory():
    w, p = _history()
    sim = simulate(w, p, portfolio_value=2e6, params=RunParams.from_dict(LIMITED))
    o, f, s = sim.orders, sim.fills, sim.summary
    partial = (o["status"] == "CANCELED") & (o["filled_qty"] > 0)
    assert partial.any() and (o["n_fills"] == 3).any()
    assert (o.loc[partial, "reject_reason"].astype(str) == "unfilled_at_close").all()
    assert (o["filled_qty"] <= o["qty"]).all() and ((o["status"] == "FILLED") == (o["filled_qty"] == o["qty"])).all()
    # fills: one row per step, seq 1..n_fills, summing to filled_qty and commission per order
    g = f.groupby("order_key")
    per = pd.DataFrame({"qty": g["qty"].sum(), "n": g["seq"].max(), "count": g.size(), "fee": g["commission"].sum()})
    mine = o.set_index("order_key").loc[per.index]
    np.testing.assert_array_equal(per["qty"], mine["filled_qty"])
    np.testing.assert_array_equal(per["n"], mine["n_fills"])
    np.testing.assert_array_equal(per["count"], mine["n_fills"])
    np.testing.assert_allclose(per["fee"], mine["commission"], rtol=0, atol=1e-9)
    assert len(f) == o["n_fills"].sum() and sim.describe()["fills"] == len(f)
    # summary: notional at filled quantities, n_partial, holdings replayed from partial fills
    assert s["n_partial"].sum() == partial.sum()
    buy = o.loc[o["side"] == "BUY"]
    np.testing.assert_allclose(s["buy_notional"].sum(), (buy["filled_qty"] * buy["fill_price"].fillna(0)).sum())
    end = sim.positions.loc[sim.positions["date"] == sim.dates[-1]]
    signed = np.where(o["side"] == "SELL", -o["filled_qty"], o["filled_qty"])
    held = pd.Series(signed).groupby(o["symbol"].astype(str).to_numpy()).sum()
    assert dict(zip(end["symbol"].astype(str), end["qty"])) == {k: v for k, v in held.items() if v}


def test_no_liquidity_model_is_the_fast_path_and_steps_change_nothing():
    w, p = _history()
    base = {k: v for k, v in LIMITED.items() if k not in ("liquidity", "steps")}
    one = simulate(w, p, portfolio_value=2e6, params=RunParams.from_dict(base))
    three = simulate(w, p, portfolio_value=2e6, params=RunParams.from_dict({**base, "steps": 3}))
    assert one.fills_raw is None and "filled" not in one.orders_raw
    cols = ["symbol", "side", "qty", "status", "filled_qty", "n_fills", "fill_price", "commission"]
    pd.testing.assert_frame_equal(one.orders[cols], three.orders[cols])
    # an unlimited participation model takes the general path but gives the same result
    unlimited = simulate(w, p.drop(columns="volume"), portfolio_value=2e6,
                         params=RunParams.from_dict({**base, "liquidity": {"model": "VolumeParticipation"}}))
    assert unlimited.fills_raw is not None
    pd.testing.assert_frame_equal(one.orders[cols], unlimited.orders[cols])
    fcols = ["date", "symbol", "side", "seq", "qty", "price", "commission"]
    pd.testing.assert_frame_equal(one.fills[fcols], unlimited.fills[fcols])
    np.testing.assert_array_equal(one.summary["cash_after"], unlimited.summary["cash_after"])


def test_volume_is_part_of_the_identity_only_under_a_liquidity_model():
    w, p = _history()
    q = p.assign(volume=p["volume"] * 2)
    assert simulate(w, p, portfolio_value=1e6).simulation_id == simulate(w, q, portfolio_value=1e6).simulation_id
    params = RunParams.from_dict(LIMITED)
    assert (simulate(w, p, portfolio_value=1e6, params=params).simulation_id
            != simulate(w, q, portfolio_value=1e6, params=params).simulation_id)


def test_portfolios_are_independent_under_liquidity():
    w, p = _history(5, 8, seed=9, n_portfolios=2)
    params = RunParams.from_dict(LIMITED)
    both = simulate(w, p, portfolio_value={"P0": 1e6, "P1": 3e5}, params=params)
    assert (both.orders["n_fills"] > 1).any()
    cols = ["date", "symbol", "side", "qty", "status", "filled_qty", "n_fills", "avg_fill_price", "commission"]
    for name, value in (("P0", 1e6), ("P1", 3e5)):
        one = simulate(w.loc[w["portfolio"] == name].drop(columns="portfolio"), p, portfolio_value=value,
                       params=params)
        mine = both.orders.loc[both.orders["portfolio"] == name, cols].reset_index(drop=True)
        pd.testing.assert_frame_equal(mine.astype({"symbol": object, "side": object, "status": object}),
                                      one.orders[cols].astype({"symbol": object, "side": object, "status": object}))
        fills = both.fills.loc[both.fills["portfolio"] == name, ["symbol", "seq", "qty", "commission"]]
        pd.testing.assert_frame_equal(fills.reset_index(drop=True).astype({"symbol": object}),
                                      one.fills[["symbol", "seq", "qty", "commission"]].astype({"symbol": object}))


def _stored(store, sim):
    orders = store.simulation_orders(sim.simulation_id)
    fills = store.con.execute("SELECT * FROM simulation_fills WHERE simulation_id = ? ORDER BY fill_id",
                              [sim.simulation_id]).df()
    return orders, fills


@pytest.mark.parametrize("limited", [True, False])
def test_partial_fills_persist_and_read_back(store, limited):
    w, p = _history(n_portfolios=2)
    params = RunParams.from_dict(LIMITED if limited else {})
    sim = simulate(w, p, portfolio_value=1e6, params=params)
    saved = save_simulation(store, sim)
    assert saved["new"] and saved["orders"] == sim.n_orders
    orders, fills = _stored(store, sim)
    mine = sim.orders
    np.testing.assert_array_equal(orders["client_order_id"].to_numpy(), sim.client_order_ids())
    for col in ("filled_qty", "n_fills", "avg_fill_price", "fill_price", "commission"):
        np.testing.assert_array_equal(orders[col].to_numpy(dtype=float), mine[col].to_numpy(dtype=float), err_msg=col)
    for col in ("status", "reject_reason"):
        np.testing.assert_array_equal(orders[col].fillna("-").to_numpy(), mine[col].astype(object).fillna("-"))
    expected = sim.fills
    assert len(fills) == len(expected) and fills["fill_id"].is_unique
    assert (fills["fill_id"] == fills["client_order_id"] + "-" + fills["seq"].astype(str)).all()
    keyed = expected.assign(client_order_id=sim.client_order_ids()[
        pd.Index(sim.order_keys).get_indexer(expected["order_key"])])
    keyed = keyed.sort_values(["client_order_id", "seq"]).reset_index(drop=True)
    got = fills.sort_values(["client_order_id", "seq"]).reset_index(drop=True)
    for col in ("seq", "qty", "price", "commission"):
        np.testing.assert_array_equal(got[col].to_numpy(dtype=float), keyed[col].to_numpy(dtype=float), err_msg=col)
    raw = store.con.execute("SELECT count(filled_qty), count(n_fills) FROM simulation_orders").fetchone()
    step_rows = store.con.execute("SELECT count(*) FROM simulation_order_fills").fetchone()[0]
    if limited:
        assert raw == (sim.n_orders, sim.n_orders) and step_rows == int(mine.loc[mine["n_fills"] > 1, "n_fills"].sum())
        assert step_rows > 0
    else:  # the fast path stores no per-fill data: the status implies it
        assert raw == (0, 0) and step_rows == 0
    runs = store.simulation_runs(sim.simulation_id)
    np.testing.assert_array_equal(runs["n_partial"], sim.summary["n_partial"])
    assert save_simulation(store, sim)["new"] is False


def test_a_version_5_database_is_migrated_to_6(tmp_path, monkeypatch):
    db = tmp_path / "v5.duckdb"
    with monkeypatch.context() as m:
        m.setattr(store_module, "MIGRATIONS", [x for x in store_module.MIGRATIONS if x[0] <= 5])
        m.setattr(store_module, "SCHEMA_VERSION", 5)
        with Store(db) as old:
            assert old.schema_version() == 5
            cols = {r[0] for r in old.con.execute("SELECT column_name FROM duckdb_columns() "
                                                  "WHERE table_name = 'simulation_orders'").fetchall()}
            assert "filled_qty" not in cols
            # a v3-era order row (no filled_qty/n_fills): its fill must still be read from its status
            old.con.execute("INSERT INTO simulations VALUES ('sim-old', 'd', 'm', '{}', 'MARKET', '[1]', NULL, '[\"\"]',"
                            " 1, 1, '2024-01-02', '2024-01-02', 1, 1, 0, 'x', now())")
            old.con.execute("INSERT INTO simulation_runs VALUES ('sim-old', 'sim-old-20240102', '2024-01-02', '', 1e6,"
                            " 1e6, 1, 1, 0, 0, 0, 1000, 0, 0, 0.001, 999000, 1e6, 0.001, 0.001, 1, '{}')")
            old.con.execute("INSERT INTO simulation_orders VALUES ('sim-old', '2024-01-02', '', 42, 'AAA', false, 10,"
                            " NULL, 100, NULL, 1, 0.001, 0, 10, 0, 0, 100, 100, 0)")
    with Store(db) as new:
        assert new.schema_version() == store_module.SCHEMA_VERSION
        row = new.con.execute("SELECT filled_qty, n_fills, status FROM simulation_orders_v").fetchone()
        assert row == (10, 1, "FILLED")
        assert new.con.execute("SELECT seq, qty, price FROM simulation_fills").fetchall() == [(1, 10, 100.0)]
        w, p = _history(3, 5)
        sim = simulate(w, p, portfolio_value=1e6, params=RunParams.from_dict(LIMITED))
        assert save_simulation(new, sim)["new"]
        assert new.con.execute("SELECT count(*) FROM simulation_fills WHERE simulation_id = ?",
                               [sim.simulation_id]).fetchone()[0] == len(sim.fills)
