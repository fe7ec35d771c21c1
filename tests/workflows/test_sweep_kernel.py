"""simulate_stacked: K combinations in one pass equal K separate simulations, combination by combination."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tradeloop as tl
from tradeloop.errors import ValidationError
from tradeloop.workflows.sweep_kernel import PerBook, simulate_stacked, stackable

FRAMES = ("orders", "fills", "summary", "positions", "cash", "risk_decisions")


def _history(seed: int = 3, portfolios: int = 1, missing: bool = False, dates: int = 12, symbols: int = 25):
    w, p = tl.synthetic_history(dates, symbols, seed=seed, n_portfolios=portfolios)
    if missing:  # holes in the prices and some shorts: the unsized-order and short paths
        p = p.copy()
        p.loc[p.index % 17 == 3, "price"] = np.nan
        w = w.copy()
        w.loc[w.index % 11 == 0, "weight"] *= -1
        w = w[w.index % 13 != 5]  # sparse weights: a held symbol without a row is sold down
    return w, p


def _assert_same(stacked: tl.Simulation, alone: tl.Simulation) -> None:
    assert stacked.simulation_id == alone.simulation_id
    for name in FRAMES:
        pd.testing.assert_frame_equal(getattr(stacked, name), getattr(alone, name), check_exact=True, obj=name)
    a, b = tl.shortfall(stacked), tl.shortfall(alone)  # the attribution the loop fills, date by date
    for name in ("by_date", "by_cause", "by_symbol", "by_sector"):
        pd.testing.assert_frame_equal(getattr(a, name), getattr(b, name), check_exact=True, obj=f"shortfall {name}")
    assert a.to_dict() == b.to_dict()
    assert stacked.describe() == alone.describe()


def _check(w, p, params_list, **kwargs) -> list[tl.Simulation]:
    sims = simulate_stacked(w, p, params_list, **kwargs)
    assert len(sims) == len(params_list)
    for sim, params in zip(sims, params_list):
        _assert_same(sim, tl.simulate(w, p, params=params, **kwargs))
    return sims


GRID = [
    {"cash_buffer": 0.0},
    {"cash_buffer": 0.05, "risk": {"max_order_notional": 20_000, "max_position_ratio": 0.06}},
    {"cash_buffer": 0.02, "risk": {"max_gross_exposure": 0.8, "max_position_ratio": 0.05},
     "slippage": {"model": "FixedBpsSlippage", "bps": 5}, "commission": {"model": "BpsCommission", "bps": 1}},
    {"risk": {"max_order_notional": 5_000}, "commission": {"model": "PerShareCommission", "rate": 0.01,
                                                           "minimum": 1.0}},
]


@pytest.mark.parametrize("portfolios", [1, 3])
@pytest.mark.parametrize("missing", [False, True])
def test_each_combination_equals_its_own_simulation(portfolios, missing):
    w, p = _history(portfolios=portfolios, missing=missing)
    params = [tl.RunParams.from_dict({**g, "risk": {**g.get("risk", {}), "allow_short": missing}}) for g in GRID]
    sims = _check(w, p, params, portfolio_value=1e6)
    # the combinations really differ: the loop did not give every book the first one's parameters
    assert len({s.summary.drop(columns="run_id").to_csv() for s in sims}) == len(sims)


def test_risk_decisions_and_shortfall_per_combination():
    """Each combination keeps only its own risk decisions (slots renumbered to its book) and its own shortfall."""
    w, p = _history(seed=4, missing=True)
    params = [tl.RunParams.from_dict({"risk": {"max_order_notional": notional, "max_position_ratio": ratio,
                                               "allow_short": True}})
              for notional, ratio in ((4_000, 0.05), (None, 0.04), (15_000, None), (None, None))]
    sims = _check(w, p, params, portfolio_value=1e6)
    counts = [len(s.risk_decisions) for s in sims]
    assert counts[3] == 0 < min(counts[:3]) and len(set(counts[:3])) == 3
    rules = [set(s.risk_decisions["rule"]) for s in sims]
    assert rules[1] == {"max_position_ratio"} and rules[2] == {"max_order_notional"}
    assert len({tl.shortfall(s).total for s in sims}) == 4


def test_an_equal_borrow_rate_is_stacked():
    w, p = _history(seed=6, missing=True)
    params = [tl.RunParams.from_dict({"borrow_bps_per_year": 75, "cash_buffer": buf,
                                      "risk": {"allow_short": True, "max_order_notional": n}})
              for buf, n in ((0.0, None), (0.03, 8_000))]
    sims = _check(w, p, params, portfolio_value=5e5)
    assert all(s.describe()["borrow_cost"] > 0 for s in sims)


@pytest.mark.parametrize("risk", [
    {"min_order_notional": 500}, {"no_trade_band": 0.002}, {"max_turnover": 0.3}, {"max_orders": 5},
    {"restricted": {"no_buy": ["S0001"]}}, {"on_breach": {"max_order_notional": "resize"}, "max_order_notional": 9e3},
])
def test_rebalancing_controls_are_not_stacked(risk):
    """Controls run through controls.decide with per-portfolio budgets: such combinations are refused here, and a
    sweep runs them one by one (tests/workflows/test_sweep.py)."""
    with_control = tl.RunParams.from_dict({"risk": risk})
    assert not stackable([tl.RunParams(), with_control])
    assert not stackable([with_control, with_control])
    with pytest.raises(ValidationError, match="differ only in"):
        simulate_stacked(*_history(), [tl.RunParams(), with_control], portfolio_value=1e6)


def test_sector_and_name_caps_per_combination():
    w, p = _history(seed=5)
    symbols = sorted(w["symbol"].unique())
    params = [tl.RunParams.from_dict({"risk": {"sector_cap": cap, "single_name_caps": {symbols[0]: name},
                                               "sector_caps": {sorted(p["sector"].unique())[0]: cap / 2}}})
              for cap, name in ((0.3, 0.01), (0.5, 0.04), (0.2, 0.02))]
    sims = _check(w, p, params, portfolio_value=2e6)
    assert len({int((s.orders["risk_codes"] != "").sum()) for s in sims}) > 1


def test_liquidity_and_limit_orders_over_several_steps():
    w, p = _history(seed=8)
    p = p.assign(volume=np.where(np.arange(len(p)) % 5 == 0, np.nan, 400.0))
    shared = {"order_type": "LIMIT", "limit_offset_bps": 8, "steps": 3,
              "liquidity": {"model": "VolumeParticipation", "max_rate": 0.1}}
    params = [tl.RunParams.from_dict({**shared, "slippage": {"model": "FixedBpsSlippage", "bps": bps},
                                      "cash_buffer": buf}) for bps, buf in ((0, 0.0), (9, 0.01), (3, 0.1))]
    sims = _check(w, p, params, portfolio_value=3e5)
    assert all(s.fills_raw is not None for s in sims)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    combos=st.lists(st.tuples(
        st.sampled_from([0.0, 0.01, 0.05]),
        st.one_of(st.none(), st.sampled_from([3_000.0, 10_000.0, 40_000.0])),
        st.one_of(st.none(), st.sampled_from([0.03, 0.05, 0.1])),
        st.one_of(st.none(), st.sampled_from([0.7, 0.9, 1.0])),
        st.sampled_from([0.0, 2.0, 7.5]),
        st.sampled_from([0.0, 1.0, 4.0]),
    ), min_size=1, max_size=6),
    seed=st.integers(0, 50),
    value=st.sampled_from([1e5, 7.7e5, 3e6]),
    shorts=st.booleans(),
    borrow=st.sampled_from([0.0, 40.0]),
)
def test_stacked_equals_separate_for_any_grid(combos, seed, value, shorts, borrow):
    w, p = _history(seed=seed, dates=6, symbols=15, missing=shorts)
    params = [tl.RunParams.from_dict({
        "cash_buffer": buf, "borrow_bps_per_year": borrow,
        "risk": {"max_order_notional": notional, "max_position_ratio": ratio, "max_gross_exposure": gross,
                 "allow_short": shorts},
        "slippage": {"model": "FixedBpsSlippage", "bps": slip}, "commission": {"model": "BpsCommission", "bps": fee},
    }) for buf, notional, ratio, gross, slip, fee in combos]
    _check(w, p, params, portfolio_value=value)


def test_combinations_that_differ_elsewhere_are_refused():
    w, p = _history()
    params = [tl.RunParams(), tl.RunParams.from_dict({"lot_size": 10})]
    assert not stackable(params)
    assert not stackable([])
    with pytest.raises(ValidationError, match="differ only in risk, cash_buffer, slippage, commission"):
        simulate_stacked(w, p, params, portfolio_value=1e6)
    short = [tl.RunParams.from_dict({"risk": {"allow_short": True}}), tl.RunParams()]
    assert not stackable(short)  # allow_short is one switch for the whole pass
    assert stackable([tl.RunParams.from_dict({"cash_buffer": 0.1}), tl.RunParams()])


class _Counting:
    """A commission model that counts its calls and charges its rate per share."""

    def __init__(self, rate):
        self.rate, self.calls = rate, 0

    def commissions(self, qty, price):
        self.calls += 1
        return np.asarray(qty, dtype="float64") * self.rate


def test_per_book_calls_each_distinct_model_once_on_its_rows():
    a, b = _Counting(1.0), _Counting(10.0)
    per = PerBook([a, b, a], "commissions")
    books = np.array([0, 1, 2, 2, 1, 0])
    fees = per.commissions(np.arange(1, 7), np.ones(6), books)
    assert fees.tolist() == [1.0, 20.0, 3.0, 4.0, 50.0, 6.0]
    assert (a.calls, b.calls) == (1, 1)
