"""simulate(): same rules as a single run, per-order risk blocks, carry-forward, persistence, CLI, bad input."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from support import DATA

import tradeloop as tl
from tradeloop import RunParams, Store, ValidationError
from tradeloop.core.digest import verify_chain
from tradeloop.store.simulations import save_simulation
from tradeloop.workflows.history import simulate

CONTENT = ["symbol", "side", "qty", "price", "lot_size", "target_weight", "current_qty", "target_qty",
           "untrimmed_qty", "status", "filled_qty", "avg_fill_price", "reject_reason"]


def _sample_history():
    """The bundled snapshot as a one-date history: snapshot prices, else fallback prices."""
    snap = pd.read_csv(DATA / "sample_snapshot.csv")
    fb = pd.read_csv(DATA / "fallback_prices.csv")
    weights = snap.loc[:, ["symbol", "weight"]].assign(date="2024-01-02")
    prices = snap.loc[:, ["symbol", "price", "sector", "lot_size"]]
    prices["price"] = prices["price"].fillna(prices["symbol"].map(fb.set_index("symbol")["price"]))
    extra = fb.loc[~fb["symbol"].isin(snap["symbol"])].assign(lot_size=1)
    prices = pd.concat([prices, extra], ignore_index=True).assign(date="2024-01-02")
    return weights, prices


def _norm(df):
    out = df.loc[:, CONTENT].copy()
    for c in ("symbol", "side", "status", "reject_reason"):
        out[c] = out[c].astype(object).where(out[c].notna(), None)
    for c in ("qty", "lot_size", "current_qty", "target_qty", "untrimmed_qty", "filled_qty"):
        out[c] = out[c].astype("int64")
    return out.sort_values(["symbol", "side"]).reset_index(drop=True)


PARAM_VARIANTS = {
    "pass": {},
    "limit": {"order_type": "LIMIT", "limit_offset_bps": -3},  # every limit is away from the price: all CANCELED
    "trim": {"cash_buffer": 0.3, "commission": {"model": "BpsCommission", "bps": 2}},
}


@pytest.mark.parametrize("variant", list(PARAM_VARIANTS))
def test_one_date_history_equals_tradeloop_run(cli, tmp_path, variant):
    params = {**json.loads((DATA / "params_pass.json").read_text()), **PARAM_VARIANTS[variant]}
    pfile = tmp_path / "params.json"
    pfile.write_text(json.dumps(params))
    db = tmp_path / "run.duckdb"
    res = cli("run", "--snapshot", DATA / "sample_snapshot.csv", "--portfolio-value", "1000000", "--model-version",
              "m1", "--params", pfile, "--positions", DATA / "positions.csv", "--fallback-prices",
              DATA / "fallback_prices.csv", "--db", db, "--json")
    assert res.returncode == 0, res.stderr
    run_id = json.loads(res.stdout)["run_id"]
    with Store(db, read_only=True) as store:
        run_orders = store.orders(run_id)
        run_fills = store.fills(run_id).merge(run_orders[["client_order_id", "symbol", "side"]], on="client_order_id")

    weights, prices = _sample_history()
    sim = simulate(weights, prices, portfolio_value=1_000_000, params=RunParams.from_dict(params),
                   positions=pd.read_csv(DATA / "positions.csv"), model_version="m1")
    assert len(run_orders) > 40
    pd.testing.assert_frame_equal(_norm(sim.orders), _norm(run_orders), check_dtype=False)
    fills_cols = ["symbol", "side", "qty", "price", "commission"]
    got = sim.fills.assign(symbol=lambda f: f["symbol"].astype(object), side=lambda f: f["side"].astype(object))
    pd.testing.assert_frame_equal(got.loc[:, fills_cols].sort_values(["symbol", "side"]).reset_index(drop=True),
                                  run_fills.loc[:, fills_cols].sort_values(["symbol", "side"]).reset_index(drop=True),
                                  check_dtype=False)
    if variant == "limit":
        assert set(sim.orders["status"]) == {"CANCELED"}


def test_risk_blocks_per_order_where_a_run_blocks_as_a_whole(cli, tmp_path):
    db = tmp_path / "run.duckdb"
    res = cli("run", "--snapshot", DATA / "sample_snapshot.csv", "--portfolio-value", "1000000", "--model-version",
              "m1", "--params", DATA / "params_block.json", "--positions", DATA / "positions.csv",
              "--fallback-prices", DATA / "fallback_prices.csv", "--db", db, "--json")
    assert res.returncode == 3
    run_id = json.loads(res.stdout)["run_id"]
    with Store(db, read_only=True) as store:
        run_orders = store.orders(run_id)
        assert store.fills(run_id).empty  # the run submitted nothing
    weights, prices = _sample_history()
    sim = simulate(weights, prices, portfolio_value=1_000_000, params=tl.load_params(DATA / "params_block.json"),
                   positions=pd.read_csv(DATA / "positions.csv"), model_version="m1")
    o = sim.orders
    blocked = o.loc[o["risk_codes"].astype(str) != ""]
    run_blocked = run_orders.loc[run_orders["reject_reason"].fillna("").str.startswith("risk:")]
    assert sorted(blocked["symbol"].astype(str)) == sorted(run_blocked["symbol"]) and len(blocked) == 4
    assert (blocked["status"] == "REJECTED").all()
    assert (blocked["reject_reason"].astype(str) == "risk:max_order_notional").all()
    assert (blocked["filled_qty"] == 0).all()
    # the others fill: per-order blocking, unlike the run
    others = o.loc[(o["risk_codes"].astype(str) == "") & o["price"].notna()]
    assert len(others) > 30 and (others["status"] == "FILLED").all()
    assert sim.summary.loc[0, "n_blocked"] == 4 and sim.summary.loc[0, "blocked_max_order_notional"] == 4


def test_holdings_and_cash_carry_forward():
    w, p = tl.synthetic_history(12, 15, seed=5)
    params = RunParams(cash_buffer=0.02, commission=tl.PerShareCommission(rate=0.01, minimum=1.0))
    sim = simulate(w, p, portfolio_value=250_000, params=params)
    s = sim.summary
    np.testing.assert_array_equal(s["cash_before"].to_numpy()[1:], s["cash_after"].to_numpy()[:-1])
    pos = sim.positions
    o = sim.orders
    for t in range(1, len(sim.dates)):
        prev = pos.loc[pos["date"] == sim.dates[t - 1]]
        held = prev.set_index(prev["symbol"].astype(str))["qty"]
        day = o.loc[o["date"] == sim.dates[t]]
        current = day.set_index(day["symbol"].astype(str))["current_qty"]
        assert (current == held.reindex(current.index).fillna(0).astype(int)).all()
        # next value = cash + holdings at today's prices
        today = p.loc[p["date"] == sim.dates[t]]
        px = today.set_index(today["symbol"].astype(str))["price"]
        value = s.loc[t - 1, "cash_after"] + float((held * px.reindex(held.index)).sum())
        assert s.loc[t, "portfolio_value"] == pytest.approx(value, rel=1e-12)
    # with no blocks, cash after buys never dips below the buffer minus fees
    assert (s["cash_after"] >= 0.02 * s["portfolio_value"] - s["commission"] - 1e-6).all()
    assert (o["qty"] % o["lot_size"] == 0).all()


def test_portfolios_are_independent():
    w, p = tl.synthetic_history(6, 10, seed=2, n_portfolios=2)
    params = tl.load_params(DATA / "params_pass.json")
    both = simulate(w, p, portfolio_value={"P0": 1e6, "P1": 5e5}, params=params)
    for name, value in (("P0", 1e6), ("P1", 5e5)):
        one = simulate(w.loc[w["portfolio"] == name].drop(columns="portfolio"), p, portfolio_value=value, params=params)
        mine = both.orders.loc[both.orders["portfolio"] == name].reset_index(drop=True)
        cols = ["date", "symbol", "side", "qty", "status", "fill_price", "commission", "risk_codes"]
        pd.testing.assert_frame_equal(mine.loc[:, cols].astype({"symbol": object, "side": object, "status": object,
                                                                 "risk_codes": object}),
                                      one.orders.loc[:, cols].astype({"symbol": object, "side": object,
                                                                      "status": object, "risk_codes": object}))
        np.testing.assert_array_equal(both.summary.loc[both.summary["portfolio"] == name, "cash_after"],
                                      one.summary["cash_after"])


def test_positions_per_portfolio():
    w, p = tl.synthetic_history(3, 4, seed=2, n_portfolios=2)
    pos = pd.DataFrame({"portfolio": ["P1"], "symbol": ["S00002"], "qty": [50]})
    sim = simulate(w, p, portfolio_value=1e6, positions=pos)
    first = sim.orders.loc[(sim.orders["date"] == sim.dates[0]) & (sim.orders["symbol"] == "S00002")]
    assert first.set_index(first["portfolio"].astype(str))["current_qty"].to_dict() == {"P0": 0, "P1": 50}
    with pytest.raises(ValidationError, match="positions need a 'portfolio' column"):
        simulate(w, p, portfolio_value=1e6, positions=pos.drop(columns="portfolio"))


def test_missing_prices_are_rejected_and_valued_at_last_price():
    w, p = tl.synthetic_history(4, 5, seed=9)
    p = p.copy()
    gone = (p["date"] == p["date"].unique()[2]) & (p["symbol"] == "S00001")
    p.loc[gone, "price"] = np.nan
    sim = simulate(w, p, portfolio_value=1e5)
    o = sim.orders
    row = o.loc[(o["date"] == p["date"].unique()[2]) & (o["symbol"] == "S00001")]
    assert row["status"].tolist() == ["REJECTED"] and row["reject_reason"].tolist() == ["missing_price"]
    mark = sim.positions.loc[(sim.positions["date"] == p["date"].unique()[2]) & (sim.positions["symbol"] == "S00001"),
                             "price"]
    last = p.loc[(p["date"] == p["date"].unique()[1]) & (p["symbol"] == "S00001"), "price"]
    assert mark.tolist() == last.tolist()


def test_inputs_are_not_mutated():
    w, p = tl.synthetic_history(5, 6, seed=1)
    w0, p0 = w.copy(), p.copy()
    simulate(w, p, portfolio_value=1e5, params=tl.load_params(DATA / "params_pass.json")).orders
    pd.testing.assert_frame_equal(w, w0)
    pd.testing.assert_frame_equal(p, p0)


def test_unsorted_and_text_inputs_give_the_same_simulation():
    w, p = tl.synthetic_history(5, 8, seed=4)
    a = simulate(w, p, portfolio_value=1e6)
    shuffled = w.sample(frac=1.0, random_state=1).astype({"symbol": str, "date": str})
    b = simulate(shuffled, p.sample(frac=1.0, random_state=2).astype({"symbol": str, "sector": str}),
                 portfolio_value=1e6)
    assert a.simulation_id == b.simulation_id
    pd.testing.assert_frame_equal(a.summary, b.summary)


def _bad(kind):
    w, p = tl.synthetic_history(3, 4, seed=1)
    w = w.astype({"symbol": object})
    p = p.astype({"symbol": object})
    kw = {}
    if kind == "nan_weight":
        w.loc[5, "weight"] = np.nan
    elif kind == "dup":
        w = pd.concat([w, w.iloc[[2]]], ignore_index=True)
    elif kind == "column":
        w = w.rename(columns={"weight": "wieght"})
    elif kind == "leverage":
        w.loc[w["date"] == w["date"].max(), "weight"] = 0.5
    elif kind == "no_prices":
        p = p.loc[p["date"] != p["date"].max()]
    elif kind == "price":
        p.loc[3, "price"] = -1.0
    elif kind == "sector":
        p = p.drop(columns="sector")
        kw["params"] = RunParams.from_dict({"risk": {"sector_cap": 0.5}})
    elif kind == "symbol":
        w.loc[0, "symbol"] = "BAD SYM"
    return w, p, kw


@pytest.mark.parametrize("kind, message", [
    ("nan_weight", "weights: weight for 'S00001@2015-01-05"),
    ("dup", "weights: duplicate row for S00002@2015-01-02"),
    ("column", "weights is missing column(s) ['weight']"),
    ("leverage", "weights on 2015-01-06 sum to 2"),
    ("no_prices", "prices have no row for date 2015-01-06"),
    ("price", "prices: price for 'S00003@2015-01-02' is"),
    ("sector", "sector is unknown for ['S00000'"),
    ("symbol", "symbol 'BAD SYM' is not allowed"),
])
def test_bad_input_is_refused_by_name(kind, message):
    w, p, kw = _bad(kind)
    with pytest.raises(ValidationError) as e:
        simulate(w, p, portfolio_value=1e5, **kw).orders
    assert message in str(e.value)


def test_save_is_bulk_idempotent_and_audited(store):
    w, p = tl.synthetic_history(8, 12, seed=3)
    sim = simulate(w, p, portfolio_value=1e6, params=tl.load_params(DATA / "params_block.json"), model_version="m9")
    first = save_simulation(store, sim)
    assert first["new"] and first["orders"] == sim.n_orders and first["runs"] == 8
    again = simulate(w, p, portfolio_value=1e6, params=tl.load_params(DATA / "params_block.json"), model_version="m9")
    assert again.simulation_id == sim.simulation_id
    assert save_simulation(store, again) == {"simulation_id": sim.simulation_id, "new": False, "orders": 0, "runs": 0}
    con = store.con
    assert con.execute("SELECT count(*), count(DISTINCT client_order_id) FROM simulation_orders_v").fetchone() == (
        sim.n_orders, sim.n_orders)
    assert con.execute("SELECT count(*) FROM simulation_fills").fetchone()[0] == len(sim.fills)
    stored = store.simulation_orders(sim.simulation_id)
    np.testing.assert_array_equal(stored["client_order_id"].to_numpy(), sim.client_order_ids())
    np.testing.assert_array_equal(stored["order_key"].to_numpy(dtype=np.uint64), sim.order_keys)
    mine = sim.orders
    for col in ("run_id", "symbol", "side", "order_type", "status", "risk_codes", "reject_reason", "sector"):
        np.testing.assert_array_equal(stored[col].fillna("-").astype(str).to_numpy(),
                                      mine[col].astype(object).fillna("-").astype(str).to_numpy(), err_msg=col)
    for col in ("qty", "price", "lot_size", "target_weight", "current_qty", "target_qty", "untrimmed_qty",
                "filled_qty", "avg_fill_price", "fill_price", "commission"):
        np.testing.assert_array_equal(stored[col].to_numpy(dtype=float), mine[col].to_numpy(dtype=float), err_msg=col)
    assert (mine["reject_reason"].astype(str) == "risk:max_order_notional").sum() > 0
    runs = store.simulation_runs(sim.simulation_id)
    np.testing.assert_allclose(runs["cash_after"], sim.summary["cash_after"])
    events = store.audit_events()
    assert events["event_type"].tolist() == ["simulation.save"] and verify_chain(events) == []
    # another simulation under the same explicit id is refused, and nothing of it is written
    other = simulate(w, p, portfolio_value=2e6, simulation_id=sim.simulation_id)
    with pytest.raises(ValidationError, match="stored already for different inputs"):
        save_simulation(store, other)
    assert con.execute("SELECT count(*) FROM simulation_orders").fetchone()[0] == sim.n_orders


def test_cli_simulate_end_to_end(cli, tmp_path):
    w, p = tl.synthetic_history(10, 8, seed=6)
    w.to_csv(tmp_path / "w.csv", index=False)
    p.to_parquet(tmp_path / "p.parquet")
    db = tmp_path / "sim.duckdb"
    args = ["simulate", "--weights", tmp_path / "w.csv", "--prices", tmp_path / "p.parquet", "--portfolio-value",
            "1000000", "--model-version", "m1", "--params", DATA / "params_block.json", "--db", db]
    res = cli(*args)
    assert res.returncode == 0, res.stderr
    assert "simulate: 100%" in res.stderr and "orders" in res.stdout
    res2 = cli(*args, "--json")
    info = json.loads(res2.stdout)
    assert info["new"] is False and info["dates"] == 10
    expected = simulate(w, p, portfolio_value=1e6, params=tl.load_params(DATA / "params_block.json"),
                        model_version="m1")
    assert info["simulation_id"] == expected.simulation_id and info["orders"] == expected.n_orders
    with Store(db, read_only=True) as store:
        assert store.simulations()["n_orders"].tolist() == [expected.n_orders]
    bad = cli("simulate", "--weights", tmp_path / "w.csv", "--prices", tmp_path / "missing.csv",
              "--portfolio-value", "1", "--model-version", "m1", "--db", db)
    assert bad.returncode == 2 and bad.stderr.strip().splitlines()[-1].startswith("error: prices file")
    assert "Example:" in cli("simulate", "--help").stdout


def test_order_keys_are_the_run_formula():
    w, p = tl.synthetic_history(3, 5, seed=8, n_portfolios=2)
    sim = simulate(w, p, portfolio_value=1e6, model_version="mv-7")
    o = sim.orders
    expected = tl.core.sizing.order_keys(o["run_id"].astype(object).to_numpy(), o["symbol"].astype(object).to_numpy(),
                                    o["side"].astype(object).to_numpy(), "mv-7")
    np.testing.assert_array_equal(o["order_key"].to_numpy(), expected)
    assert o["run_id"].astype(str).iloc[0] == f"{sim.simulation_id}-20150102-P0"
    ids = tl.client_order_ids(o["run_id"].astype(object).to_numpy(), o["symbol"].astype(object).to_numpy(),
                              o["side"].astype(object).to_numpy(), "mv-7")
    np.testing.assert_array_equal(sim.client_order_ids(), ids)


def test_dense_and_sparse_layouts_agree():
    """Dense inputs take a fast path (slices, inputs read back later); a sparse layout must give the same orders."""
    w, p = tl.synthetic_history(6, 9, seed=11)
    params = tl.load_params(DATA / "params_pass.json")
    dense = simulate(w, p, portfolio_value=5e5, params=params)
    p = p.astype({"symbol": object, "sector": object})
    extra = p.loc[p["symbol"] == "S00000"].assign(symbol="ZZZ")  # priced, never weighted: weights become sparse
    sparse = simulate(w.astype({"symbol": object}), pd.concat([p, extra], ignore_index=True), portfolio_value=5e5,
                      params=params)
    assert "weight" not in dense.orders_raw and "weight" in sparse.orders_raw
    cols = ["date", "symbol", "side", "qty", "price", "lot_size", "sector", "target_weight", "current_qty", "status",
            "fill_price", "commission", "risk_codes"]
    pd.testing.assert_frame_equal(dense.orders[cols].astype(object), sparse.orders[cols].astype(object))
    pd.testing.assert_frame_equal(dense.positions.astype({"symbol": object}),
                                  sparse.positions.astype({"symbol": object}))
