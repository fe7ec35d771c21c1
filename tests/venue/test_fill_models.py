"""Fill models on hand-computed cases: slippage, commissions, liquidity (PARTIAL over steps), limits, close."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tradeloop import (
    BpsCommission,
    FixedBpsSlippage,
    NoLiquidityLimit,
    PerShareCommission,
    RunParams,
    ValidationError,
    VolumeParticipation,
    fill_orders,
    replay_order_events,
    work_orders,
)
from tradeloop.core.fsm import check_order_history


def _orders(rows) -> pd.DataFrame:
    """rows: (symbol, side, qty, price, volume[, limit_price[, lot_size]])."""
    out = []
    for r in rows:
        sym, side, qty, price, volume = r[:5]
        limit = r[5] if len(r) > 5 else np.nan
        lot = r[6] if len(r) > 6 else 1
        out.append({"client_order_id": f"{sym}-{side[0]}", "run_id": "r1", "symbol": sym, "side": side, "qty": qty,
                    "price": price, "order_type": "MARKET" if np.isnan(limit) else "LIMIT", "limit_price": limit,
                    "volume": volume, "lot_size": lot})
    return pd.DataFrame(out)


def test_slippage_and_commission_to_the_cent():
    orders = _orders([("A", "BUY", 100, 100.0, np.nan), ("B", "SELL", 200, 50.0, np.nan),
                      ("C", "BUY", 333, 10.0, np.nan), ("D", "BUY", 1000, 20.0, np.nan)])
    r = fill_orders(orders, slippage=FixedBpsSlippage(5), commission=PerShareCommission(0.005, 1.0))
    f = r.fills.set_index("client_order_id")
    # BUY 100 × (1 + 5/1e4) = 100.05; SELL 50 × (1 − 5/1e4) = 49.975
    assert f.loc["A-B", "price"] == 100.05 and f.loc["B-S", "price"] == 49.975
    assert f.loc["C-B", "price"] == 10.005 and f.loc["D-B", "price"] == 20.01
    # max(qty × 0.005, 1.00): 100 → 1.00 (minimum), 200 → 1.00, 333 → 1.665 → 1.67 (half up), 1000 → 5.00
    assert f["commission"].tolist() == [1.00, 1.00, 1.67, 5.00]
    bps = fill_orders(orders, slippage=FixedBpsSlippage(5), commission=BpsCommission(10)).fills["commission"]
    # 100 × 100.05 × 10 bp = 10.005 → 10.01; 200 × 49.975 × 10 bp = 9.995 → 10.00 (half up);
    # 333 × 10.005 × 10 bp = 3.331665 → 3.33; 1000 × 20.01 × 10 bp = 20.01
    assert bps.tolist() == [10.01, 10.00, 3.33, 20.01]
    assert r.orders["status"].tolist() == ["FILLED"] * 4


def test_partial_fills_across_steps_until_filled():
    # 10 % of 2,500 shares per step = 250, floored to the 100-share lot = 200 per step: 200 + 200 + 100.
    orders = _orders([("A", "BUY", 500, 10.0, 2500.0, np.nan, 100)])
    r = work_orders(orders, steps=5, liquidity=VolumeParticipation(0.1), commission=PerShareCommission(0.005, 1.0))
    assert r.orders.loc[0, "status"] == "FILLED" and r.orders.loc[0, "filled_qty"] == 500
    assert r.fills[["fill_id", "seq", "qty", "commission"]].values.tolist() == [
        ["A-B-1", 1, 200, 1.0], ["A-B-2", 2, 200, 1.0], ["A-B-3", 3, 100, 1.0]]
    assert r.events[["step", "from_status", "to_status", "qty"]].values.tolist() == [
        [1, "NEW", "SUBMITTED", 500], [1, "SUBMITTED", "PARTIAL", 200], [2, "PARTIAL", "PARTIAL", 200],
        [3, "PARTIAL", "FILLED", 100]]
    assert r.orders.loc[0, "n_fills"] == 3


def test_partial_then_canceled_at_close():
    orders = _orders([("A", "BUY", 500, 10.0, 2500.0, np.nan, 100), ("B", "SELL", 50, 20.0, 1e6)])
    r = work_orders(orders, steps=2, liquidity=VolumeParticipation(0.1))
    a = r.orders.set_index("client_order_id").loc["A-B"]
    assert (a["status"], a["filled_qty"], a["reject_reason"]) == ("CANCELED", 400, "unfilled_at_close")
    last = r.events.loc[r.events["client_order_id"] == "A-B"].iloc[-1]
    assert (last["step"], last["from_status"], last["to_status"], last["qty"], last["reason"]) == (
        2, "PARTIAL", "CANCELED", 100, "unfilled_at_close")
    assert r.orders.set_index("client_order_id").loc["B-S", "status"] == "FILLED"
    # one step, no close: the order stays working (PARTIAL) for the next step
    open_ = fill_orders(orders, liquidity=VolumeParticipation(0.1), close=False)
    assert open_.orders["status"].tolist() == ["PARTIAL", "FILLED"]


def test_missing_volume_policy_and_zero_volume():
    orders = _orders([("A", "BUY", 500, 10.0, np.nan), ("B", "BUY", 500, 10.0, 0.0)])
    unlimited = work_orders(orders, steps=3, liquidity=VolumeParticipation(0.1))
    assert unlimited.orders["status"].tolist() == ["FILLED", "CANCELED"]  # B: no volume traded, nothing fills
    zero = work_orders(orders, steps=3, liquidity=VolumeParticipation(0.1, missing_volume="zero"))
    assert zero.orders["status"].tolist() == ["CANCELED", "CANCELED"]
    # an order that never filled goes SUBMITTED -> CANCELED at close
    assert zero.events.loc[zero.events["client_order_id"] == "A-B", "to_status"].tolist() == ["SUBMITTED", "CANCELED"]


def test_limit_orders_that_do_and_do_not_cross():
    orders = _orders([
        ("A", "BUY", 100, 100.0, np.nan, 101.0),     # crosses: fills at 100.05 (better than the limit)
        ("B", "BUY", 100, 100.0, np.nan, 100.02),    # crosses, but slippage would pass the limit: capped at 100.02
        ("C", "BUY", 100, 100.0, np.nan, 99.0),      # does not cross
        ("D", "SELL", 100, 100.0, np.nan, 99.0),     # crosses: 99.95
        ("E", "SELL", 100, 100.0, np.nan, 101.0),    # does not cross
    ])
    r = work_orders(orders, steps=3, slippage=FixedBpsSlippage(5))
    o = r.orders.set_index("symbol")
    assert o["status"].to_dict() == {"A": "FILLED", "B": "FILLED", "C": "CANCELED", "D": "FILLED", "E": "CANCELED"}
    assert r.fills.set_index("client_order_id")["price"].to_dict() == {"A-B": 100.05, "B-B": 100.02, "D-S": 99.95}
    c = r.events.loc[r.events["client_order_id"] == "C-B"]
    # stays SUBMITTED through the steps, then CANCELED at close
    assert c[["step", "from_status", "to_status", "reason"]].values.tolist() == [
        [1, "NEW", "SUBMITTED", None], [3, "SUBMITTED", "CANCELED", "unfilled_at_close"]]
    assert o.loc["C", "reject_reason"] == "unfilled_at_close"


def test_missing_price_rejected_and_working_order_canceled():
    orders = _orders([("A", "BUY", 100, np.nan, 1000.0)])
    r = work_orders(orders, steps=2)
    assert r.orders[["status", "reject_reason"]].values.tolist() == [["REJECTED", "missing_price"]]
    assert r.fills.empty
    working = orders.assign(status="PARTIAL", filled_qty=40, n_fills=1, avg_fill_price=10.0)
    c = fill_orders(working)
    assert c.orders[["status", "filled_qty"]].values.tolist() == [["CANCELED", 40]]
    assert c.events[["from_status", "to_status", "qty", "reason"]].values.tolist() == [
        ["PARTIAL", "CANCELED", 60, "missing_price"]]


def test_repeated_step_gives_same_fill_ids_and_terminal_orders_untouched():
    orders = _orders([("A", "BUY", 500, 10.0, 2500.0, np.nan, 100)])
    a = work_orders(orders, steps=2, liquidity=VolumeParticipation(0.1))
    b = work_orders(orders, steps=2, liquidity=VolumeParticipation(0.1))
    pd.testing.assert_frame_equal(a.fills, b.fills)
    again = work_orders(a.orders, steps=2, liquidity=VolumeParticipation(0.1))
    assert again.fills.empty and again.events.empty
    pd.testing.assert_frame_equal(again.orders, a.orders)


def test_functions_do_not_mutate_inputs():
    orders = _orders([("A", "BUY", 500, 10.0, 2500.0, 11.0, 100), ("B", "SELL", 70, np.nan, 5.0)])
    before = orders.copy(deep=True)
    work_orders(orders, steps=3, liquidity=VolumeParticipation(0.2), slippage=FixedBpsSlippage(3),
                commission=PerShareCommission(0.01, 1))
    fill_orders(orders, close=False)
    pd.testing.assert_frame_equal(orders, before)


@pytest.mark.parametrize("spec, message", [
    ({"liquidity": {"model": "VolumeParticipation", "max_rate": 0}}, "params.liquidity.max_rate is 0; it must be > 0"),
    ({"liquidity": {"model": "VolumeParticipation", "max_rate": 1.5}}, "params.liquidity.max_rate is 1.5; it is a "
                                                                       "fraction of volume and must be <= 1"),
    ({"liquidity": {"model": "VolumeParticipation", "max_rate": "x"}}, "params.liquidity.max_rate is 'x'"),
    ({"liquidity": {"model": "VolumeParticipation", "max_rate": 0.1, "missing_volume": "skip"}},
     "params.liquidity.missing_volume is 'skip'; allowed: 'unlimited', 'zero'"),
    ({"liquidity": {"model": "VolumePct"}}, "params.liquidity.model is 'VolumePct'; allowed: ['NoLiquidityLimit', "
                                            "'VolumeParticipation']"),
    ({"liquidity": {"model": "VolumeParticipation", "rate": 0.1}}, "params.liquidity (VolumeParticipation) has "
                                                                   "unknown key(s) ['rate']"),
    ({"steps": 0}, "params.steps is 0; it must be a whole number from 1 to 1000"),
    ({"steps": 2.5}, "params.steps is 2.5"),
    ({"steps": True}, "params.steps is True"),
])
def test_bad_execution_params_name_the_field(spec, message):
    with pytest.raises(ValidationError) as e:
        RunParams.from_dict(spec)
    assert message in str(e.value)


def test_params_round_trip_with_models():
    p = RunParams.from_dict({"liquidity": {"model": "VolumeParticipation", "max_rate": 0.25}, "steps": 4,
                             "order_type": "LIMIT", "limit_offset_bps": -10})
    assert p.liquidity == VolumeParticipation(0.25) and p.steps == 4
    assert RunParams.from_dict(p.to_dict()) == p
    assert p.to_dict()["liquidity"] == {"model": "VolumeParticipation", "max_rate": 0.25, "missing_volume": "unlimited"}
    assert RunParams().liquidity == NoLiquidityLimit() and RunParams().steps == 1


_order_rows = st.lists(
    st.tuples(
        st.sampled_from(["BUY", "SELL"]),
        st.integers(1, 40),                                  # lots
        st.sampled_from([1, 10, 100]),                       # lot size
        st.one_of(st.just(np.nan), st.floats(1, 500)),       # price
        st.one_of(st.just(np.nan), st.floats(0, 50_000)),    # volume
        st.one_of(st.just(np.nan), st.floats(-200, 200)),    # limit offset in bps (NaN = market)
    ),
    min_size=1, max_size=12,
)


@settings(max_examples=60, deadline=None)
@given(rows=_order_rows, steps=st.integers(1, 4), rate=st.floats(0.01, 1.0))
def test_invariants_of_multi_step_execution(rows, steps, rate):
    orders = pd.DataFrame([{
        "client_order_id": f"S{i}-{side[0]}", "run_id": "r", "symbol": f"S{i}", "side": side, "qty": lots * lot,
        "lot_size": lot, "price": price, "volume": volume,
        "order_type": "MARKET" if np.isnan(off) else "LIMIT",
        "limit_price": np.nan if np.isnan(off) or np.isnan(price) else round(price * (1 + off / 1e4), 4),
    } for i, (side, lots, lot, price, volume, off) in enumerate(rows)])
    model = VolumeParticipation(rate)
    r = work_orders(orders, steps=steps, liquidity=model, slippage=FixedBpsSlippage(2),
                    commission=PerShareCommission(0.005, 1.0))
    o = r.orders.set_index("client_order_id")
    per_order = r.fills.groupby("client_order_id")["qty"].sum().reindex(o.index, fill_value=0)
    assert (per_order == o["filled_qty"]).all() and (o["filled_qty"] <= o["qty"]).all()
    # every fill respects the per-step cap and the lot size; everything ends terminal after the close
    caps = pd.Series(model.step_caps(orders["volume"].to_numpy(), orders["lot_size"].to_numpy()),
                     index=orders["client_order_id"])
    assert (r.fills["qty"].to_numpy() <= caps.loc[r.fills["client_order_id"]].to_numpy()).all()
    assert (r.fills["qty"].to_numpy() % o.loc[r.fills["client_order_id"], "lot_size"].to_numpy() == 0).all()
    assert set(o["status"]) <= {"FILLED", "CANCELED", "REJECTED"}
    assert ((o["status"] == "FILLED") == (o["filled_qty"] == o["qty"])).all()
    # LIMIT fills respect the limit: BUY at or below it, SELL at or above it
    f = r.fills.merge(orders[["client_order_id", "side", "limit_price"]], on="client_order_id")
    lim = f["limit_price"].notna()
    assert ((f["side"] == "BUY") & lim <= (f["price"] <= f["limit_price"])).all()
    assert ((f["side"] == "SELL") & lim <= (f["price"] >= f["limit_price"])).all()
    # the events replay to the final states, and the whole run is one legal history
    replay = replay_order_events(r.events.assign(seq=r.events.groupby("client_order_id").cumcount() + 1))
    moved = o.loc[replay["client_order_id"]]
    assert replay["status"].tolist() == moved["status"].tolist()
    assert replay["filled_qty"].tolist() == moved["filled_qty"].tolist()
    before = orders.assign(status="NEW").set_index("client_order_id")["status"]
    check_order_history(before, o["status"], r.events)


_prices = st.lists(st.one_of(st.floats(1e-9, 1e12), st.just(np.nan), st.floats(1e300, 1.7e308)), min_size=1,
                   max_size=40)


@settings(max_examples=150, deadline=None)
@given(_prices, st.floats(0, 9_999.99), st.data())
def test_built_in_slippage_is_its_formula_to_the_bit(prices, bps, data):
    price = np.array(prices)
    side = np.array(data.draw(st.lists(st.sampled_from(["BUY", "SELL"]), min_size=len(price), max_size=len(price))))
    with np.errstate(over="ignore", invalid="ignore"):  # the docstring's formula, in numpy
        raw = price * (1.0 + np.where(side == "BUY", 1.0, -1.0) * bps / 1e4)
        rounded = np.round(raw, 6)
    want = np.where((rounded > 0) & np.isfinite(rounded), rounded, raw)
    np.testing.assert_array_equal(FixedBpsSlippage(bps).fill_prices(side, price).view(np.int64), want.view(np.int64))


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 10**12), st.floats(1e-6, 1e6)), min_size=1, max_size=40),
       st.floats(0, 999.99), st.floats(0, 1e6), st.floats(0, 9_999.99))
def test_built_in_commissions_are_their_formulas_to_the_bit(fills, rate, minimum, bps):
    qty, price = np.array([f[0] for f in fills]), np.array([f[1] for f in fills])
    cents = lambda x: np.floor(x * 100.0 + 0.5 + 1e-9) / 100.0  # noqa: E731  (half up, as documented)
    per_share = cents(np.maximum(qty.astype(np.float64) * rate, minimum))
    by_bps = cents(qty.astype(np.float64) * price * bps / 1e4)
    np.testing.assert_array_equal(PerShareCommission(rate, minimum).commissions(qty, price), per_share)
    np.testing.assert_array_equal(BpsCommission(bps).commissions(qty, price), by_bps)
