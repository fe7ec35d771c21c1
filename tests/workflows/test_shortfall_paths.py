"""tl.shortfall through a stored run and a one-date simulation (same hand-computed numbers), over histories (the
per-period identity against the realized values), stored simulations (round trip, audit) and the CLI."""

import itertools
import json

import numpy as np
import pandas as pd
import pytest
from engines import DATE, ENGINES, MODEL_VERSION
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_history_baseline import histories

import tradeloop as tl
from tradeloop.core.shortfall import CAUSES, COSTS
from tradeloop.core.synthetic import synthetic_history
from tradeloop.store.simulations import save_simulation
from tradeloop.workflows.history import simulate
from tradeloop.workflows.shortfall import shortfall

V = 10_000.0
_CALLS = itertools.count()


def _case(name, directory, rows, params=None, positions=None, dry_run=False):
    """One case through a stored run (``run``) or a one-date simulation (``history``): its Shortfall."""
    rows = pd.DataFrame(rows)
    params = tl.RunParams.from_dict(params or {})
    positions = None if positions is None else pd.DataFrame(positions)
    if name == "run":
        snapshot = tl.freeze_snapshot(rows, portfolio_value=V, model_version=MODEL_VERSION,
                                      default_lot_size=params.lot_size)
        with tl.Store(directory / f"case-{next(_CALLS)}.duckdb") as store:
            result = tl.run_snapshot(store, snapshot, params=params, positions=positions, dry_run=dry_run,
                                     run_id="case-run")
            return shortfall(result, store)
    weights = rows.loc[:, ["symbol", "weight"]].assign(date=DATE)
    prices = rows.drop(columns="weight").assign(date=DATE)
    if "price" not in prices:
        prices["price"] = np.nan
    return shortfall(simulate(weights, prices, portfolio_value=V, params=params, positions=positions,
                              model_version=MODEL_VERSION))


@pytest.fixture(params=ENGINES)
def path(request, tmp_path):
    """The ``engine`` idea for shortfall: each case through a stored run and through a one-date simulation."""
    return lambda *args, **kw: _case(request.param, tmp_path, *args, **kw)


def _gaps(sf) -> dict:
    """Nonzero weight gap per cause."""
    gap = sf.by_cause["weight_gap"].dropna()
    return {c: round(float(v), 12) for c, v in gap.items() if abs(v) > 1e-15}


def test_rounding_alone(path):
    sf = path({"symbol": ["A"], "weight": [0.5], "price": [30.0]}, {"lot_size": 10})
    assert _gaps(sf) == {"rounding": pytest.approx(0.5 - 160 * 30 / V)}
    assert sf.total == 0.0


def test_cash_trim_alone(path):
    sf = path({"symbol": ["A"], "weight": [1.0], "price": [10.0]}, {"cash_buffer": 0.1})
    assert _gaps(sf) == {"cash_trim": pytest.approx(100 * 10 / V)}


def test_a_buy_the_cash_trim_takes_to_nothing_is_all_cash_trim(path):
    # 9,000 of cash for 10,000 of buys: each scaled by 0.9, B's 50 shares floor to 0 lots of 50
    sf = path({"symbol": ["A", "B"], "weight": [0.5, 0.5], "price": [10.0, 100.0], "lot_size": [1, 50]},
              {"cash_buffer": 0.1})
    assert _gaps(sf) == {"cash_trim": pytest.approx((50 * 10 + 50 * 100) / V)}


def test_risk_block_alone_and_two_rules_share_it(path):
    one = path({"symbol": ["A"], "weight": [0.6], "price": [10.0]}, {"risk": {"max_order_notional": 5000}})
    assert _gaps(one) == {"risk:max_order_notional": pytest.approx(0.6)}
    two = path({"symbol": ["A"], "weight": [0.6], "price": [10.0]},
               {"risk": {"max_order_notional": 5000, "max_position_ratio": 0.5}})
    assert _gaps(two) == {"risk:max_order_notional": pytest.approx(0.3), "risk:max_position_ratio": pytest.approx(0.3)}


def test_missing_price_alone(path):
    sf = path({"symbol": ["A", "B"], "weight": [0.4, 0.5], "price": [np.nan, 10.0]})
    assert _gaps(sf) == {"missing_price": pytest.approx(0.4)}


def test_liquidity_alone(path):
    sf = path({"symbol": ["A"], "weight": [0.5], "price": [10.0], "volume": [2000.0]},
              {"liquidity": {"model": "VolumeParticipation", "max_rate": 0.1}})
    assert _gaps(sf) == {"liquidity": pytest.approx(300 * 10 / V)}


def test_limit_not_crossed_alone(path):
    sf = path({"symbol": ["A"], "weight": [0.5], "price": [10.0]}, {"order_type": "LIMIT", "limit_offset_bps": -10})
    assert _gaps(sf) == {"limit_not_crossed": pytest.approx(0.5)}


def test_explicit_costs_alone(path):
    sf = path({"symbol": ["A"], "weight": [0.5], "price": [10.0]},
              {"slippage": {"model": "FixedBpsSlippage", "bps": 5},
               "commission": {"model": "PerShareCommission", "rate": 0.01, "minimum": 1.0}})
    assert _gaps(sf) == {}
    out = sf.to_dict()
    assert out["explicit_costs"] == {"slippage": pytest.approx(500 * 0.005), "commission": pytest.approx(5.0),
                                     "borrow": 0.0}
    assert out["causes"]["slippage"] == pytest.approx(2.5) and out["causes"]["commission"] == pytest.approx(5.0)
    assert out["total_bps"] == pytest.approx(7.5)


#: Rebalancing controls (V = 10,000, price 10 unless said): name -> (rows, params, positions, weight gap per
#: cause, implemented Σ ŵ). An order a control skips or cuts is its rule's, by name, on both paths.
CONTROL_CASES = {
    # B: 0.01 × 10,000 / 10 = 10 shares, 100 < 500: dust, not sent
    "min_order_notional skip": ({"symbol": ["A", "B"], "weight": [0.5, 0.01], "price": [10.0, 10.0]},
                                {"risk": {"min_order_notional": 500}}, None, {"risk:min_order_notional": 0.01}, 0.5),
    # B held 300 (0.30), target 0.29: a SELL of 10 < 50 shares, not sent: the gap is −0.01
    "min_order_qty skip of a sell": ({"symbol": ["A", "B"], "weight": [0.5, 0.29], "price": [10.0, 10.0]},
                                     {"risk": {"min_order_qty": 50}}, {"symbol": ["B"], "qty": [300]},
                                     {"risk:min_order_qty": -0.01}, 0.8),
    # B held 300, target 0.31: drift 0.01 < 0.02
    "no_trade_band skip": ({"symbol": ["A", "B"], "weight": [0.5, 0.31], "price": [10.0, 10.0]},
                           {"risk": {"no_trade_band": 0.02}}, {"symbol": ["B"], "qty": [300]},
                           {"risk:no_trade_band": 0.01}, 0.8),
    # |0.31 − 0.30| / 0.31 = 0.032 < 0.1
    "no_trade_band_relative skip": ({"symbol": ["A", "B"], "weight": [0.5, 0.31], "price": [10.0, 10.0]},
                                    {"risk": {"no_trade_band_relative": 0.1}}, {"symbol": ["B"], "qty": [300]},
                                    {"risk:no_trade_band_relative": 0.01}, 0.8),
    # A: 300 shares > 0.5 × ADV 50 = 25, in lots of 100: cut to 0, not an order
    "max_adv_participation resize to nothing": (
        {"symbol": ["A", "B"], "weight": [0.3, 0.5], "price": [10.0, 10.0], "adv": [50.0, 1e6]},
        {"lot_size": 100, "risk": {"max_adv_participation": 0.5}}, None, {"risk:max_adv_participation": 0.3}, 0.5),
    # A: 300 → 0.5 × 500 = 250 shares
    "max_adv_participation resize": (
        {"symbol": ["A", "B"], "weight": [0.3, 0.5], "price": [10.0, 10.0], "adv": [500.0, 1e6]},
        {"risk": {"max_adv_participation": 0.5}}, None, {"risk:max_adv_participation": 0.05}, 0.75),
    # A held 300, target 0: a SELL of 300 cut to 2,000 / 10 = 200 (100 left held: −0.01 per 10 shares)
    "max_order_notional resize of a sell": (
        {"symbol": ["A", "B"], "weight": [0.0, 0.15], "price": [10.0, 10.0]},
        {"risk": {"max_order_notional": 2000, "on_breach": {"max_order_notional": "resize"}}},
        {"symbol": ["A"], "qty": [300]}, {"risk:max_order_notional": -0.1}, 0.25),
    # A: 600 shares; max_order_notional allows 500, max_position_ratio 400: the cut 600 → 400 is shared as the
    # airport rule does: 600 → 500 by both (0.05 each), 500 → 400 by max_position_ratio alone (0.1)
    "two rules resize one order": (
        {"symbol": ["A"], "weight": [0.6], "price": [10.0]},
        {"risk": {"max_order_notional": 5000, "max_position_ratio": 0.4,
                  "on_breach": {"max_order_notional": "resize", "max_position_ratio": "resize"}}}, None,
        {"risk:max_order_notional": 0.05, "risk:max_position_ratio": 0.15}, 0.4),
    # A: 3,000 → 0.5 × 5,000 = 2,500 shares; then at most one order: B (5,000) kept, A rejected
    "resized then rejected": (
        {"symbol": ["A", "B"], "weight": [0.3, 0.5], "price": [1.0, 1.0], "adv": [5_000.0, 1e6]},
        {"risk": {"max_adv_participation": 0.5, "max_orders": 1}}, None,
        {"risk:max_adv_participation": 0.05, "risk:max_orders": 0.25}, 0.5),
}


@pytest.mark.parametrize("name", list(CONTROL_CASES))
def test_an_order_a_control_skips_or_cuts_is_its_rules(path, name):
    rows, params, positions, gaps, implemented = CONTROL_CASES[name]
    sf = path(rows, params, positions)
    assert _gaps(sf) == {c: pytest.approx(g) for c, g in gaps.items()}
    # the causes sum to the gap between the paper weights and the positions reached
    assert sf.by_date["implemented_weight"].tolist() == [pytest.approx(implemented)]
    assert sf.by_date["paper_weight"].iloc[0] - sf.by_cause["weight_gap"].sum() == pytest.approx(implemented)


def test_the_two_paths_give_the_same_attribution_with_controls(tmp_path):
    # A cut by ADV, B dust, C inside the band (a sell), D cut by max_order_notional, E liquidated, G restricted
    rows = {"symbol": list("ABCDEFG"), "weight": [0.15, 0.006, 0.15, 0.3, 0.0, 0.25, 0.1],
            "price": [10.0, 1.0, 20.0, 5.0, 8.0, 12.0, 9.0], "adv": [200.0, 1e6, 1e6, 1e6, 1e6, 1e6, 1e6]}
    params = {"lot_size": 10, "cash_buffer": 0.05, "commission": {"model": "BpsCommission", "bps": 1},
              "risk": {"min_order_notional": 100, "no_trade_band": 0.005, "max_adv_participation": 0.5,
                       "max_turnover": 0.6, "restricted": {"no_buy": ["G"]},
                       "max_order_notional": 2000, "on_breach": {"max_order_notional": "resize"}}}
    positions = {"symbol": ["C", "E", "F"], "qty": [74, 100, 200]}
    got = {name: _case(name, tmp_path, rows, params, positions) for name in ENGINES}
    run, hist = got["run"], got["history"]
    risky = {c for c in _gaps(run) if c.startswith("risk:")}
    assert {"risk:min_order_notional", "risk:no_trade_band", "risk:max_adv_participation", "risk:restricted",
            "risk:max_order_notional"} <= risky
    pd.testing.assert_frame_equal(run.by_cause, hist.by_cause, rtol=1e-12)
    pd.testing.assert_frame_equal(run.by_symbol, hist.by_symbol, rtol=1e-12, check_dtype=False)
    for sf in (run, hist):
        assert sf.by_date["paper_weight"].iloc[0] - sf.by_cause["weight_gap"].sum() == pytest.approx(
            sf.by_date["implemented_weight"].iloc[0], abs=1e-12)


def test_the_two_paths_give_the_same_attribution(tmp_path):
    rows = {"symbol": ["A", "B", "C", "D"], "weight": [0.3, 0.25, 0.2, 0.0], "price": [10.0, 33.0, 7.0, 12.0],
            "volume": [1000.0, 50.0, 1e6, 10.0]}
    params = {"cash_buffer": 0.3, "lot_size": 10, "slippage": {"model": "FixedBpsSlippage", "bps": 5},
              "commission": {"model": "BpsCommission", "bps": 1}, "steps": 2,
              "liquidity": {"model": "VolumeParticipation", "max_rate": 0.5}}
    positions = {"symbol": ["D", "C"], "qty": [50, 10]}
    got = {name: _case(name, tmp_path, rows, params, positions) for name in ENGINES}
    run, hist = got["run"], got["history"]
    pd.testing.assert_frame_equal(run.by_cause, hist.by_cause, rtol=1e-12)
    pd.testing.assert_frame_equal(run.by_symbol, hist.by_symbol, rtol=1e-12, check_dtype=False)
    assert run.kind == "run" and hist.kind == "simulation"


def test_a_run_that_never_executed_is_not_executed(tmp_path):
    rows = pd.DataFrame({"symbol": ["A", "B"], "weight": [0.6, 0.3], "price": [10.0, 10.0]})
    snapshot = tl.freeze_snapshot(rows, portfolio_value=V, model_version=MODEL_VERSION)
    with tl.Store(tmp_path / "x.duckdb") as store:
        dry = tl.run_snapshot(store, snapshot, dry_run=True, run_id="dry")
        blocked = tl.run_snapshot(store, snapshot, run_id="blocked",
                                  params=tl.RunParams.from_dict({"risk": {"max_order_notional": 5000}}))
        assert blocked.status == "blocked"
        assert _gaps(shortfall("dry", store)) == {"not_executed": pytest.approx(0.9)}
        # the rule's order is the rule's; the order the blocked run held back was never worked
        assert _gaps(shortfall("blocked", store)) == {"risk:max_order_notional": pytest.approx(0.6),
                                                      "not_executed": pytest.approx(0.3)}
        assert dry.status == "done"


def _history(n_dates, n_symbols, seed, params):
    w, p = synthetic_history(n_dates, n_symbols, seed=seed)
    return w, p, simulate(w, p, portfolio_value=1e6, params=tl.RunParams.from_dict(params))


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10_000), buffer=st.sampled_from([0.0, 0.05]), cap=st.sampled_from([None, 0.04]),
       limit=st.booleans())
def test_per_period_contributions_sum_to_the_return_gap(seed, buffer, cap, limit):
    params = {"cash_buffer": buffer, "slippage": {"model": "FixedBpsSlippage", "bps": 3},
              "commission": {"model": "BpsCommission", "bps": 2}, "risk": {"max_position_ratio": cap}}
    if limit:
        params.update(order_type="LIMIT", limit_offset_bps=2)
    w, p, sim = _history(6, 15, seed, params)
    by = shortfall(sim).by_date
    # paper return from the inputs; implemented return from the values the simulation reached
    px = p.pivot(index="date", columns="symbol", values="price")
    ret = (px.shift(-1) / px - 1).fillna(0.0)
    wt = w.pivot(index="date", columns="symbol", values="weight").reindex_like(ret).fillna(0.0)
    paper = (wt * ret).sum(axis=1).to_numpy()
    value = sim.summary["portfolio_value"].to_numpy()
    # after the last date: its value at that date's prices, after the costs of its trades
    implemented = np.append(value[1:], sim.summary["end_value"].iloc[-1]) / value - 1
    items = by[list(CAUSES) + list(COSTS)].sum(axis=1).to_numpy() / 1e4
    np.testing.assert_allclose(paper - implemented, items, atol=1e-12)
    np.testing.assert_allclose(by["paper_return"] - by["implemented_return"], items, atol=1e-13)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(histories())
def test_causes_sum_to_every_gap_with_random_controls_and_borrow(history):
    """Random rebalancing controls, breach policies, borrow rates, shorts, missing prices and volume caps: per
    (date, symbol) the causes sum to ``w − held × mark / V`` (summed over dates per symbol, over symbols per date),
    and per period the causes and costs sum to the paper return minus the simulation's own return."""
    weights, prices, params, positions, value = history
    pos = pd.DataFrame({"symbol": list(positions), "qty": list(positions.values())}) if positions else None
    sim = simulate(weights, prices, portfolio_value=value, params=params, positions=pos)
    sf = shortfall(sim)
    s = sim.summary
    V = pd.Series(s["portfolio_value"].to_numpy(), index=pd.DatetimeIndex(s["date"]))
    held = sim.positions.assign(date=lambda f: pd.DatetimeIndex(f["date"]))
    held = held.pivot_table(index="date", columns="symbol", values="market_value", aggfunc="sum", observed=True)
    held = held.reindex(index=V.index, columns=sim.universe).fillna(0.0).div(V, axis=0)
    w = weights.assign(date=pd.to_datetime(weights["date"])).pivot(index="date", columns="symbol", values="weight")
    w = w.reindex(index=V.index, columns=sim.universe).fillna(0.0)
    np.testing.assert_allclose(sf.by_date["implemented_weight"], held.sum(axis=1), atol=1e-12)
    np.testing.assert_allclose(sf.by_date["paper_weight"] - sf.by_date["implemented_weight"],
                               (w - held).sum(axis=1), atol=1e-12)
    by_symbol = sf.by_symbol.set_index("symbol")["weight_gap"].reindex(sim.universe).fillna(0.0)
    np.testing.assert_allclose(by_symbol.to_numpy(), (w - held).sum(axis=0).to_numpy(), atol=1e-12)
    # per period: paper Σ w r at the marks (last known price), implemented from the values the simulation reached;
    # a period that starts holding a symbol with no known mark (valued 0, r = 0 by definition) is left out
    marks = prices.assign(date=pd.to_datetime(prices["date"])).pivot(index="date", columns="symbol", values="price")
    marks = marks.reindex(index=V.index, columns=sim.universe).ffill()
    r = (marks.shift(-1) / marks - 1).fillna(0.0)
    paper = (w * r).sum(axis=1).to_numpy()
    implemented = np.append(V.to_numpy()[1:], s["end_value"].iloc[-1]) / V.to_numpy() - 1
    items = sf.by_date[list(CAUSES) + list(COSTS)].sum(axis=1).to_numpy() / 1e4
    unvalued = sim.positions.loc[sim.positions["price"].isna() & (sim.positions["qty"] != 0), "date"]
    known = ~V.index.isin(pd.DatetimeIndex(unvalued))
    np.testing.assert_allclose((paper - implemented)[known], items[known], atol=1e-11)
    assert sf.to_dict()["total_bps"] == pytest.approx(sum(sf.to_dict()["causes"].values()), abs=1e-9)


def test_the_date_loop_keeps_no_ledger_it_is_built_once_when_first_asked():
    _, _, sim = _history(6, 15, 2, {"cash_buffer": 0.05})
    assert sim._ledger is None  # simulate itself pays nothing for the attribution
    first = shortfall(sim)
    assert sim._ledger is not None and sim.ledger is sim.ledger
    assert shortfall(sim).to_dict() == first.to_dict()


def test_a_partitioned_simulation_with_controls_trims_and_borrow_has_the_same_shortfall():
    """The sizing rows a partitioned simulation's portfolios keep (trims, slots the controls skipped) are merged
    like its risk decisions: its attribution equals the one-process simulation's to the last bit."""
    from tradeloop.workflows.partition import simulate_partitioned

    w, p = synthetic_history(15, 40, seed=7, n_portfolios=3)
    p = p.assign(adv=p["volume"])
    params = tl.RunParams.from_dict({
        "cash_buffer": 0.2, "lot_size": 10, "borrow_bps_per_year": 100,
        "risk": {"min_order_notional": 3000, "no_trade_band": 0.002, "max_adv_participation": 0.001,
                 "max_turnover": 0.3, "max_position_ratio": 0.04, "on_breach": {"max_position_ratio": "resize"}}})
    value = {"P0": 1e6, "P1": 5e5, "P2": 2e6}
    a = shortfall(simulate(w, p, portfolio_value=value, params=params))
    b = shortfall(simulate_partitioned(w, p, portfolio_value=value, params=params, workers=2))
    causes = set(_gaps(a))
    assert {"cash_trim", "risk:min_order_notional", "risk:no_trade_band", "risk:max_position_ratio"} <= causes
    for name in ("by_cause", "by_symbol", "by_date"):
        pd.testing.assert_frame_equal(getattr(a, name), getattr(b, name), check_exact=True)


def test_frictionless_history_has_only_rounding_below_one_share_per_name():
    w, p, sim = _history(12, 20, 5, {"lot_size": 1})
    p = p.assign(lot_size=1)
    sim = simulate(w, p, portfolio_value=1e6, params=tl.RunParams.from_dict({"lot_size": 1}))
    sf = shortfall(sim)
    nonzero = sf.by_cause.loc[sf.by_cause["abs_weight_gap"].fillna(0) > 0].index.tolist()
    assert nonzero == ["rounding"]
    assert (sf.by_cause.loc[list(COSTS), "amount"] == 0).all()
    # each name's rounding is under one share at that date's price: bound per date by Σ price / V
    bound = p.groupby("date")["price"].sum().to_numpy() / sf.by_date["portfolio_value"].to_numpy()
    per_date = sf.data.abs_gap[:, 0, CAUSES.index("rounding")]
    assert (per_date < bound).all() and (per_date > 0).any()


def test_cash_buffer_costs_its_share_of_the_market_return():
    rng = np.random.default_rng(7)
    dates = pd.bdate_range("2024-01-01", periods=30)
    symbols = [f"S{i:02d}" for i in range(20)]
    market = np.cumprod(np.r_[1.0, 1 + rng.normal(0, 0.02, len(dates) - 1)])
    base = rng.uniform(20, 200, len(symbols))
    prices = pd.DataFrame([(d, s, b * m) for d, m in zip(dates, market) for s, b in zip(symbols, base)],
                          columns=["date", "symbol", "price"])
    raw = rng.uniform(0.5, 1.5, (len(dates), len(symbols)))
    weights = pd.DataFrame([(d, s, x) for d, row in zip(dates, raw / raw.sum(axis=1, keepdims=True))
                            for s, x in zip(symbols, row)], columns=["date", "symbol", "weight"])
    sim = simulate(weights, prices, portfolio_value=1e9, params=tl.RunParams.from_dict({"cash_buffer": 0.02}))
    by = shortfall(sim).by_date.iloc[:-1]
    market_return = market[1:] / market[:-1] - 1
    np.testing.assert_allclose(by["cash_trim"].to_numpy() / 1e4, 0.02 * market_return, atol=1e-6)
    assert by["rounding"].abs().max() < 1e-2


def test_a_stored_simulation_gives_the_same_shortfall_and_an_edit_is_caught(tmp_path):
    params = {"cash_buffer": 0.05, "risk": {"max_position_ratio": 0.05},
              "slippage": {"model": "FixedBpsSlippage", "bps": 5}}
    w, p, sim = _history(8, 30, 3, params)
    w2 = pd.concat([w.assign(portfolio="a"), w.assign(portfolio="b", weight=w["weight"] * 0.5)])
    sims = [sim, simulate(w2, p, portfolio_value={"a": 1e6, "b": 2e6}, params=tl.RunParams.from_dict(params))]
    with tl.Store(tmp_path / "s.duckdb") as store:
        for s in sims:
            save_simulation(store, s)
            here, stored = shortfall(s), shortfall(s.simulation_id, store)
            for frame in ("by_cause", "by_date", "by_symbol", "by_sector", "cumulative"):
                pd.testing.assert_frame_equal(getattr(here, frame), getattr(stored, frame), check_dtype=False,
                                              rtol=1e-12)
            assert here.to_dict() == stored.to_dict()
        assert tl.verify_store(store).ok
        store.con.execute("UPDATE simulation_shortfall SET contribution = contribution + 1e-6 WHERE rowid = 3")
        result = tl.verify_store(store)
    assert not result.ok
    assert any("simulation_shortfall does not match" in d for d in result.differences)


def _short_history(bps=365.0):
    """AAA held short 100 shares @ 50 for 7 days: 5,000 × 365 bps × 7 / 365 = 3.50 charged on the second date."""
    w = pd.DataFrame({"date": ["2024-01-02", "2024-01-09"], "symbol": "AAA", "weight": [-0.05, -0.05]})
    p = pd.DataFrame({"date": ["2024-01-02", "2024-01-09"], "symbol": "AAA", "price": [50.0, 50.0]})
    return simulate(w, p, portfolio_value=100_000, params=tl.RunParams.from_dict(
        {"risk": {"allow_short": True}, "borrow_bps_per_year": bps}))


def test_borrow_is_a_cost_cause_in_by_cause_total_and_the_json():
    sim = _short_history()
    sf = shortfall(sim)
    assert sim.summary["borrow_cost"].tolist() == pytest.approx([0.0, 3.5], abs=1e-9)
    # the cost of holding the short through the first period is that period's (bps of the first date's value)
    assert sf.by_date["borrow"].tolist() == pytest.approx([3.5 / 100_000 * 1e4, 0.0], abs=1e-12)
    assert sf.by_cause.loc["borrow", "amount"] == pytest.approx(3.5, abs=1e-9)
    assert sf.by_cause.loc["borrow", "bps"] == pytest.approx(0.35, abs=1e-9)
    assert sf.total == pytest.approx(0.35, abs=1e-9)  # flat prices, whole shares: borrow is the whole shortfall
    out = sf.to_dict()
    assert out["explicit_costs"]["borrow"] == pytest.approx(3.5, abs=1e-9)
    assert out["causes"]["borrow"] == pytest.approx(0.35, abs=1e-9)
    assert out["total_bps"] == pytest.approx(sum(out["causes"].values()), abs=1e-12)
    row = sf.by_symbol.set_index("symbol").loc["AAA"]
    assert row["borrow"] == pytest.approx(3.5, abs=1e-9) and row["bps"] == pytest.approx(0.35, abs=1e-9)
    # the period's return gap is the borrow cost: paper 0, implemented V1 / V0 − 1
    by = sf.by_date.iloc[0]
    assert by["paper_return"] - by["implemented_return"] == pytest.approx(3.5 / 100_000, abs=1e-15)
    assert shortfall(_short_history(0.0)).by_cause.loc["borrow", "amount"] == 0.0


def test_borrow_is_stored_digested_verified_and_in_the_cli_json(tmp_path, cli):
    sim = _short_history()
    db = tmp_path / "b.duckdb"
    with tl.Store(db) as store:
        save_simulation(store, sim)
        stored = shortfall(sim.simulation_id, store)
        assert stored.to_dict() == shortfall(sim).to_dict()
        pd.testing.assert_frame_equal(stored.by_symbol, shortfall(sim).by_symbol, check_dtype=False, rtol=1e-12)
        assert tl.verify_store(store).ok
    out = cli("shortfall", sim.simulation_id, "--db", str(db), "--json")
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout)
    assert got["causes"]["borrow"] == pytest.approx(0.35, abs=1e-9)
    assert got["explicit_costs"]["borrow"] == pytest.approx(3.5, abs=1e-9)
    assert abs(sum(got["causes"].values()) - got["total_bps"]) < 1e-9
    with tl.Store(db) as store:
        store.con.execute("UPDATE simulation_shortfall SET amount = amount + 0.01 WHERE item = 'borrow' "
                          "AND level = 'date' AND amount > 0")
        result = tl.verify_store(store)
    assert not result.ok
    assert any("simulation_shortfall does not match" in d for d in result.differences)


def test_cumulative_compounding_is_the_difference_of_the_value_curves():
    _, _, sim = _history(20, 25, 11, {"cash_buffer": 0.03, "commission": {"model": "BpsCommission", "bps": 5}})
    sf = shortfall(sim)
    cum = sf.cumulative
    paper = np.cumprod(1 + sf.by_date["paper_return"].to_numpy())
    np.testing.assert_allclose(cum["paper_value"], paper)
    np.testing.assert_allclose(cum["total_bps"], sf.by_date["gap_bps"].cumsum())
    np.testing.assert_allclose(cum["compounding_bps"], cum["value_gap_bps"] - cum["total_bps"])
    assert cum["total_bps"].iloc[-1] == pytest.approx(sf.total)
    assert np.isfinite(sf.tracking_error) and sf.tracking_error > 0
    assert "Shortfall" in sf._repr_html_()
    # Σ ŵ: the positions reached, valued at the date's marks, over the value before trading
    held = sim.positions.groupby("date")["market_value"].sum().reindex(sf.by_date["date"]).fillna(0.0).to_numpy()
    np.testing.assert_allclose(sf.by_date["implemented_weight"], held / sf.by_date["portfolio_value"], atol=1e-12)


def test_shortfall_refuses_what_it_cannot_attribute(tmp_path):
    with tl.Store(tmp_path / "e.duckdb") as store:
        with pytest.raises(tl.RunNotFound, match="no run or simulation 'nope'"):
            shortfall("nope", store)
    with pytest.raises(tl.ValidationError, match="give a run id"):
        shortfall(42)


def test_cli_shortfall_json_and_tables(cli, tmp_path):
    db = tmp_path / "c.duckdb"
    assert cli("demo", "--db", str(db)).returncode == 0
    run_id = json.loads(cli("runs", "--db", str(db), "--json").stdout)[0]["run_id"]
    out = cli("shortfall", run_id, "--db", str(db), "--json")
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout)
    assert set(got) == {"id", "kind", "total_bps", "causes", "explicit_costs", "weight_gap"}
    assert got["id"] == run_id and got["kind"] == "run"
    assert abs(sum(got["causes"].values()) - got["total_bps"]) < 1e-9
    assert set(got["explicit_costs"]) == {"slippage", "commission", "borrow"} == set(COSTS)
    assert set(got["weight_gap"]) == set(CAUSES) and set(got["causes"]) == set(CAUSES) | set(COSTS)
    with tl.Store(db, read_only=True) as store:
        assert got == json.loads(json.dumps(shortfall(run_id, store).to_dict()))
    for by in ("cause", "symbol", "sector", "date"):
        text = cli("shortfall", run_id, "--by", by, "--db", str(db))
        assert text.returncode == 0 and f"run {run_id}: shortfall" in text.stdout
    bad = cli("shortfall", "nope", "--db", str(db))
    assert bad.returncode == 2 and bad.stderr.strip().count("\n") == 0
    assert bad.stderr.startswith("error: no run or simulation 'nope'")


def test_plots_are_figures_and_an_unknown_kind_is_refused():
    _, _, sim = _history(5, 10, 2, {"cash_buffer": 0.05})
    sf = tl.shortfall(sim)
    for kind in ("waterfall", "cumulative", "values", None):
        assert sf.plot(kind).axes
    with pytest.raises(tl.ValidationError, match="plot kind is 'pie'"):
        sf.plot("pie")
