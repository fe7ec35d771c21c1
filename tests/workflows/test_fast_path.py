"""The date loop's fast path (no rebalancing control, no liquidity model: the compiled loop over dates) against the
stepwise path every other simulation takes; the compiled loop against the dates it hands back to Python (models of
their own); and a slippage model of its own asked a block of dates at a time."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import dataclasses

import tradeloop as tl
from tradeloop import RunParams
from tradeloop.venue.commission import PerShareCommission
from tradeloop.venue.slippage import FixedBpsSlippage
from tradeloop.workflows import history
from tradeloop.workflows.history import simulate

BASE = {"cash_buffer": 0.02, "slippage": {"model": "FixedBpsSlippage", "bps": 7},
        "commission": {"model": "PerShareCommission", "rate": 0.005, "minimum": 1.0},
        "risk": {"max_position_ratio": 0.08, "max_order_notional": 60_000, "sector_cap": 0.4,
                 "max_gross_exposure": 1.0, "allow_short": True}}
#: A liquidity model that never caps: the orders then take the stepwise path and must end exactly as on the fast one.
NEVER_CAPS = {"liquidity": {"model": "VolumeParticipation", "max_rate": 1.0}, "steps": 1}
SHARED = ["date", "portfolio", "symbol", "side", "qty", "status", "filled_qty", "fill_price", "commission",
          "reject_reason", "risk_codes", "target_qty", "current_qty", "untrimmed_qty"]


def _history(order_type: str = "MARKET", n_portfolios: int = 1, seed: int = 5):
    w, p = tl.synthetic_history(12, 25, seed=seed, n_portfolios=n_portfolios)
    w["weight"] = np.where(np.random.default_rng(seed).uniform(size=len(w)) < 0.2, -w["weight"], w["weight"])
    p["volume"] = 1e12  # the cap (max_rate × volume) never binds
    p.loc[np.random.default_rng(seed + 1).uniform(size=len(p)) < 0.03, "price"] = np.nan  # unsized orders too
    params = dict(BASE, order_type=order_type, **({"limit_offset_bps": 3} if order_type == "LIMIT" else {}))
    return w, p, params


@pytest.mark.parametrize("order_type", ["MARKET", "LIMIT"])
@pytest.mark.parametrize("n_portfolios", [1, 3])
def test_the_fast_path_ends_every_order_as_the_stepwise_path(order_type, n_portfolios):
    w, p, params = _history(order_type, n_portfolios)
    fast = simulate(w, p, portfolio_value=1e6, params=RunParams.from_dict(params))
    stepwise = simulate(w, p, portfolio_value=1e6, params=RunParams.from_dict({**params, **NEVER_CAPS}))
    a, b = fast.orders, stepwise.orders
    assert len(a) and (a["status"] == "REJECTED").any() and (a["status"] == "FILLED").any()
    assert len(fast.risk_decisions) and a["reject_reason"].eq("missing_price").any()
    shared = [c for c in SHARED if c in a]
    pd.testing.assert_frame_equal(a[shared], b[shared])
    for table in ("summary", "risk_decisions"):  # the params differ, and so do the simulation and run ids
        x, y = getattr(fast, table), getattr(stepwise, table)
        ids = [c for c in x if c.endswith("_id") or c == "order_key"]
        pd.testing.assert_frame_equal(x.drop(columns=ids), y.drop(columns=ids))


class OwnSlippage(FixedBpsSlippage):
    """A slippage model of its own (not a built-in type): the loop asks it for tables of prices, in Python."""


class OwnCommission(PerShareCommission):
    """A commission model of its own: the loop hands every date with a fill back to Python for its fees."""


def _own_models(params: RunParams) -> RunParams:
    return dataclasses.replace(params, slippage=OwnSlippage(params.slippage.bps),
                               commission=OwnCommission(params.commission.rate, params.commission.minimum))


@pytest.mark.parametrize("order_type", ["MARKET", "LIMIT"])
@pytest.mark.parametrize("n_portfolios", [1, 3])
@pytest.mark.parametrize("borrow", [0.0, 250.0])
def test_the_compiled_loop_ends_every_date_as_the_python_side_does(order_type, n_portfolios, borrow):
    w, p, params = _history(order_type, n_portfolios)
    params = RunParams.from_dict({**params, "borrow_bps_per_year": borrow})
    compiled = simulate(w, p, portfolio_value=1e6, params=params)
    python = simulate(w, p, portfolio_value=1e6, params=_own_models(params))
    assert len(compiled.risk_decisions) and (compiled.summary["borrow_cost"].sum() > 0) == (borrow > 0)
    ids = ["run_id", "order_key", "client_order_id", "simulation_id"]
    for table in ("orders", "summary", "risk_decisions"):
        x, y = getattr(compiled, table), getattr(python, table)
        pd.testing.assert_frame_equal(x.drop(columns=ids, errors="ignore"), y.drop(columns=ids, errors="ignore"))
    for name in ("day_pv", "day_cash_before", "day_cash_after", "day_borrow", "day_holdings"):
        np.testing.assert_array_equal(getattr(compiled, name), getattr(python, name))
    assert compiled.shortfall_arrow().equals(python.shortfall_arrow())  # the ledger's replay reads the same rows


@pytest.mark.parametrize("order_type", ["MARKET", "LIMIT"])
@pytest.mark.parametrize("own", [False, True])
def test_model_prices_asked_a_block_of_dates_ahead_equal_one_date_at_a_time(order_type, own, monkeypatch):
    w, p, params = _history(order_type, n_portfolios=2)
    params = RunParams.from_dict(params)
    params = _own_models(params) if own else params
    whole = simulate(w, p, portfolio_value=1e6, params=params)
    monkeypatch.setattr(history, "MODEL_BLOCK_SLOTS", 1)  # one date a block
    per_date = simulate(w, p, portfolio_value=1e6, params=params)
    pd.testing.assert_frame_equal(whole.orders, per_date.orders)
    pd.testing.assert_frame_equal(whole.summary, per_date.summary)


def test_buys_the_cash_trim_takes_to_nothing_are_kept_alike_on_every_path():
    w, p, params = _history("MARKET", n_portfolios=2)
    p["lot_size"] = 100  # whole lots of 100: a trimmed buy often floors to none
    w["weight"] = w["weight"].abs() / w.groupby(["date", "portfolio"])["weight"].transform(lambda x: x.abs().sum())
    params = RunParams.from_dict({**params, "cash_buffer": 0.3, "risk": {**params["risk"], "max_gross_exposure": 1.2}})
    compiled = simulate(w, p, portfolio_value=1e6, params=params)
    python = simulate(w, p, portfolio_value=1e6, params=_own_models(params))
    stepwise = simulate(w, p, portfolio_value=1e6, params=RunParams.from_dict({**params.to_dict(), **NEVER_CAPS}))
    shortfall = compiled.shortfall_arrow().to_pandas()
    trim = shortfall[(shortfall["item"] == "cash_trim") & (shortfall["level"] == "symbol")]
    assert (trim["abs_weight_gap"] > 0).any()  # trimmed buys, some of them to nothing, in the shortfall
    for other in (python, stepwise):
        pd.testing.assert_frame_equal(compiled.orders[SHARED], other.orders[SHARED])
        pd.testing.assert_frame_equal(shortfall.drop(columns=["simulation_id"], errors="ignore"),
                                      other.shortfall_arrow().to_pandas().drop(columns=["simulation_id"],
                                                                               errors="ignore"))
