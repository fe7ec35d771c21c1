"""Bounds that keep every stored number finite and every share count exact, for any input hypothesis can find:
sizing either refuses a quantity by name or returns one that is exact; bounded rates give positive fill and limit
prices and finite fees."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tradeloop.core.sizing import build_book, limit_prices
from tradeloop.core.validate import MAX_PRICE, MAX_QTY, MIN_PRICE, check_number, check_whole
from tradeloop.errors import ValidationError
from tradeloop.venue.commission import MAX_MINIMUM, MAX_RATE_PER_SHARE, BpsCommission, PerShareCommission
from tradeloop.venue.slippage import FixedBpsSlippage

positive = st.floats(min_value=MIN_PRICE, max_value=MAX_PRICE, allow_nan=False, allow_infinity=False)
bps = st.floats(min_value=0, max_value=10_000, exclude_max=True)


@settings(max_examples=300, deadline=None)
@given(price=positive, pv=st.floats(min_value=1e-300, max_value=1e308), weight=st.floats(-1, 1), lot=st.integers(1, MAX_QTY - 1),
       held=st.integers(-(MAX_QTY - 1), MAX_QTY - 1))
def test_sizing_refuses_by_name_or_gives_exact_quantities(price, pv, weight, lot, held):
    targets = pd.DataFrame({"symbol": ["AAA"], "weight": [weight], "price": [price], "lot_size": [lot]})
    positions = pd.DataFrame({"symbol": ["AAA"], "qty": [held]})
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no numpy RuntimeWarning either way
        try:
            book = build_book(targets, pv, positions=positions)
        except ValidationError as e:
            assert "'AAA'" in str(e) or "overflows" in str(e)
            return
    assert abs(int(book["target_qty"].iloc[0])) < MAX_QTY
    assert int(book["target_qty"].iloc[0]) % lot == 0
    assert np.isfinite(book["cash"]).all()


@given(price=positive, bps=bps)
def test_a_sell_never_fills_at_or_below_zero(price, bps):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        px = FixedBpsSlippage(bps).fill_prices(np.array(["SELL", "BUY"]), np.array([price, price]))
    assert (px > 0).all()
    assert np.isfinite(px[0])


@given(price=positive, offset=st.floats(-10_000, 10_000, exclude_min=True, exclude_max=True))
def test_limit_prices_stay_positive(price, offset):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert (limit_prices(np.array([price, price]), np.array([True, False]), offset) > 0).all()


@given(qty=st.integers(1, MAX_QTY - 1), rate=st.floats(0, MAX_RATE_PER_SHARE, exclude_max=True),
       minimum=st.floats(0, MAX_MINIMUM, exclude_max=True), price=st.floats(1e-6, 1e6), b=bps)
def test_bounded_commissions_are_finite(qty, rate, minimum, price, b):
    assert np.isfinite(PerShareCommission(rate, minimum).commissions(np.array([qty]), np.array([price]))).all()
    assert np.isfinite(BpsCommission(b).commissions(np.array([qty]), np.array([price]))).all()


@pytest.mark.parametrize("value", [10_000, 1e308, float("inf"), -1, 10**400])
def test_bps_bounds_are_one_rule(value):
    with pytest.raises(ValidationError, match="must be"):
        FixedBpsSlippage(value)
    with pytest.raises(ValidationError, match="must be"):
        check_number("x", value, below=10_000)


def test_whole_numbers_stop_below_two_to_the_53():
    assert check_whole("n", MAX_QTY - 1) == MAX_QTY - 1
    with pytest.raises(ValidationError, match=r"below 2\*\*53"):
        check_whole("n", MAX_QTY)
