"""``borrow_bps_per_year``: a simulation charges the short market value for each period held."""

from __future__ import annotations

import pandas as pd
import pytest

import tradeloop as tl


def _history(prices=(50.0, 50.0)):
    w = pd.DataFrame({"date": ["2024-01-02", "2024-01-09"], "symbol": "AAA", "weight": [-0.05, -0.05]})
    p = pd.DataFrame({"date": ["2024-01-02", "2024-01-09"], "symbol": "AAA", "price": list(prices)})
    return w, p


def test_borrow_is_charged_on_the_short_value_per_period_held():
    # date 1: −0.05 × 100,000 / 50 = −100 shares, nothing held before: no cost. Date 2, 7 days later: short value
    # 100 × 50 = 5,000 × 365 bps × 7 / 365 = 5,000 × 0.0365 × 0.019178… = 3.50
    w, p = _history()
    sim = tl.simulate(w, p, portfolio_value=100_000, params=tl.RunParams.from_dict(
        {"risk": {"allow_short": True}, "borrow_bps_per_year": 365}))
    s = sim.summary
    assert s["borrow_cost"].tolist() == pytest.approx([0.0, 3.5], abs=1e-9)
    assert s["cash_before"].iloc[1] == pytest.approx(s["cash_after"].iloc[0] - 3.5, abs=1e-9)
    assert s["portfolio_value"].iloc[1] == pytest.approx(100_000 - 3.5, abs=1e-9)
    assert sim.describe()["borrow_cost"] == 3.5


def test_no_borrow_rate_no_cost_and_the_same_params_json():
    w, p = _history()
    params = tl.RunParams.from_dict({"risk": {"allow_short": True}})
    assert "borrow_bps_per_year" not in params.to_dict()  # ids hashed from params are unchanged
    assert tl.simulate(w, p, portfolio_value=100_000, params=params).summary["borrow_cost"].tolist() == [0.0, 0.0]


def test_bad_borrow_rate_is_refused_by_name():
    with pytest.raises(tl.ValidationError, match="params.borrow_bps_per_year is -1"):
        tl.RunParams.from_dict({"borrow_bps_per_year": -1})
