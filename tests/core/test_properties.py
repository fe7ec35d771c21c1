"""Invariants, for any input hypothesis can find: lot multiples, cash never overspent, determinism, idempotent
re-runs, and only legal state transitions."""

import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tradeloop import (
    Store,
    build_book,
    build_orders,
    create_run,
    execute_run,
    fill_orders,
    freeze_snapshot,
)
from tradeloop.core.fsm import check_order_history
from tradeloop.core.tolerance import LIMIT_RTOL
from tradeloop.venue.commission import PerShareCommission
from tradeloop.venue.slippage import FixedBpsSlippage

prices = st.floats(0.5, 5_000, allow_nan=False)
lots = st.sampled_from([1, 1, 5, 10, 100])


@st.composite
def books(draw):
    n = draw(st.integers(1, 25))
    raw = draw(st.lists(st.floats(0, 1), min_size=n, max_size=n))
    scale = draw(st.floats(0.0, 1.5))
    total = sum(raw) or 1.0
    weights = pd.DataFrame({
        "symbol": [f"S{i:02d}" for i in range(n)],
        "weight": [w / total * scale for w in raw],
        "price": draw(st.lists(prices, min_size=n, max_size=n)),
        "lot_size": draw(st.lists(lots, min_size=n, max_size=n)),
    })
    held = draw(st.lists(st.integers(0, 2_000), min_size=n, max_size=n))  # odd lots included
    positions = pd.DataFrame({"symbol": weights["symbol"], "qty": held})
    value = draw(st.floats(1_000, 1e8))
    buffer = draw(st.floats(0, 0.2))
    return weights, positions, value, buffer


@settings(max_examples=200, deadline=None)
@given(books())
def test_quantities_are_lot_multiples_and_buys_fit_the_cash(case):
    weights, positions, value, buffer = case
    held_value = float((positions["qty"] * weights["price"]).sum())
    cash = max(value - held_value, 0.0)
    book = build_book(weights, value, positions=positions, cash=cash, cash_buffer=buffer)
    # Orders are whole lots whenever the position is; an odd-lot position is still closed in full (qty = position).
    round_lots = book["current_qty"] % book["lot_size"] == 0
    assert (book["qty"][round_lots] % book["lot_size"][round_lots] == 0).all()
    assert (book["target_qty"][round_lots] % book["lot_size"][round_lots] == 0).all()
    closed = (book["target_qty"] == 0) & (book["side"] == "SELL")
    assert (book["qty"][closed] == book["current_qty"][closed]).all()
    buys = float((book["qty"] * book["price"])[book["side"] == "BUY"].sum())
    sells = float((book["qty"] * book["price"])[book["side"] == "SELL"].sum())
    available = cash + sells - buffer * value
    assert buys <= max(available, 0.0) * (1 + LIMIT_RTOL) + 1e-6  # at the cash limit within the tolerance


@settings(max_examples=100, deadline=None)
@given(books(), st.text("abcdef0123456789-", min_size=1, max_size=12))
def test_building_twice_gives_identical_orders(case, run_id):
    weights, positions, value, buffer = case
    a = build_orders(weights, value, positions=positions, cash_buffer=buffer, run_id=run_id, model_version="m")
    b = build_orders(weights.sample(frac=1, random_state=1), value, positions=positions, cash_buffer=buffer,
                     run_id=run_id, model_version="m")
    pd.testing.assert_frame_equal(a, b)
    assert a["client_order_id"].is_unique


@settings(max_examples=100, deadline=None)
@given(books(), st.floats(0, 50), st.booleans(), st.integers(0, 3))
def test_fills_only_make_legal_transitions_and_never_overfill(case, bps, limit, repeats):
    weights, positions, value, buffer = case
    orders = build_orders(weights, value, positions=positions, cash_buffer=buffer, run_id="r", model_version="m",
                          order_type="LIMIT" if limit else "MARKET", limit_offset_bps=bps - 25 if limit else None)
    state = orders
    for _ in range(repeats + 1):  # executing again must be a no-op on terminal orders
        result = fill_orders(state, slippage=FixedBpsSlippage(bps), commission=PerShareCommission(0.005, 1.0))
        before = state.set_index("client_order_id")["status"] if "status" in state else pd.Series(
            "NEW", index=state["client_order_id"])
        check_order_history(before, result.orders.set_index("client_order_id")["status"], result.events)
        assert (result.orders["filled_qty"] <= result.orders["qty"]).all()
        if state is not orders:
            assert result.fills.empty and result.events.empty
        state = result.orders


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(books())
def test_rerunning_a_run_is_idempotent(case):
    weights, positions, value, buffer = case
    snapshot = freeze_snapshot(weights.assign(weight=weights["weight"].clip(upper=1.0 / len(weights))),
                               portfolio_value=value, model_version="m")
    with tempfile.TemporaryDirectory() as tmp, Store(Path(tmp) / "p.duckdb") as store:
        run = create_run(store, snapshot, positions=positions)
        first = execute_run(store, run.run_id)
        orders, fills = store.orders(run.run_id), store.fills(run.run_id)
        second = execute_run(store, run.run_id)
        assert second.to_dict() == first.to_dict()
        pd.testing.assert_frame_equal(store.orders(run.run_id), orders)
        pd.testing.assert_frame_equal(store.fills(run.run_id), fills)
        assert np.array_equal(orders["filled_qty"].to_numpy(),
                              orders["client_order_id"].map(fills.groupby("client_order_id")["qty"].sum())
                              .fillna(0).to_numpy())
