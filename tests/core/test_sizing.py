"""OrderBuilder: target_notional = weight × value; qty = floor(notional / price / lot) × lot; trim buys to cash."""

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tradeloop import RunParams, ValidationError, build_book, build_orders, client_order_ids
from tradeloop.core.sizing import size_orders
from tradeloop.core.tolerance import LIMIT_RTOL


def weights(**cols):
    return pd.DataFrame(cols)


def test_quantity_is_floor_of_notional_over_price_in_whole_lots():
    w = weights(symbol=["A", "B", "C"], weight=[0.5, 0.3, 0.1], price=[10.0, 33.0, 7.0], lot_size=[1, 10, 100])
    orders = build_orders(w, 10_000, run_id="r", model_version="m")
    assert orders["symbol"].tolist() == ["A", "B", "C"]
    # A: 5000/10 = 500; B: 3000/33 = 90.9 -> 9 lots of 10; C: 1000/7 = 142.8 -> 1 lot of 100
    assert orders["qty"].tolist() == [500, 90, 100]
    assert (orders["side"] == "BUY").all()
    assert (orders["qty"] % orders["lot_size"] == 0).all()


def test_binary_fractions_do_not_lose_a_lot():
    # 0.29 × 100 / 1 is 28.999999999999996 in floating point; a researcher expects 29 shares
    orders = build_orders(weights(symbol=["A"], weight=[0.29], price=[1.0]), 100, run_id="r", model_version="m")
    assert orders["qty"].tolist() == [29]


def test_default_lot_size_applies_to_rows_without_one():
    orders = build_orders(weights(symbol=["A"], weight=[0.5], price=[1.0]), 1_000, lot_size=100, run_id="r",
                          model_version="m")
    assert orders["qty"].tolist() == [500] and orders["lot_size"].tolist() == [100]


def test_zero_quantity_rows_produce_no_order():
    w = weights(symbol=["A", "B", "C"], weight=[0.0, 0.001, 0.5], price=[10.0, 500.0, 10.0])
    orders = build_orders(w, 10_000, run_id="r", model_version="m")
    assert orders["symbol"].tolist() == ["C"]


def test_orders_are_the_difference_to_current_positions():
    w = weights(symbol=["A", "B"], weight=[0.2, 0.1], price=[10.0, 10.0])
    pos = pd.DataFrame({"symbol": ["A", "B", "Z"], "qty": [100, 300, 50], "price": [10.0, 10.0, 4.0]})
    orders = build_orders(w, 10_000, positions=pos, run_id="r", model_version="m").set_index("symbol")
    assert orders.loc["A", ["side", "qty"]].tolist() == ["BUY", 100]   # 200 target - 100 held
    assert orders.loc["B", ["side", "qty"]].tolist() == ["SELL", 200]  # 100 target - 300 held
    assert orders.loc["Z", ["side", "qty"]].tolist() == ["SELL", 50]   # not targeted any more: sold down
    assert orders.loc["Z", "target_weight"] == 0


def test_negative_weight_targets_a_short_rounded_toward_zero():
    orders = build_orders(weights(symbol=["A"], weight=[-0.25], price=[30.0]), 1_000, run_id="r", model_version="m")
    assert orders[["side", "qty", "target_qty"]].values.tolist() == [["SELL", 8, -8]]  # 250/30 = 8.3 -> 8


def test_cash_buffer_trims_buys_pro_rata_and_keeps_lots():
    w = weights(symbol=["A", "B"], weight=[0.5, 0.5], price=[1.0, 1.0], lot_size=[10, 10])
    book = build_book(w, 1_000, cash_buffer=0.1)
    assert book["untrimmed_qty"].tolist() == [500, 500]
    assert book["qty"].tolist() == [450, 450]  # 900 available after a 10% buffer
    assert (book["qty"] % 10 == 0).all()
    assert (book["qty"] * 1.0).sum() <= 900


def test_sells_fund_buys():
    w = weights(symbol=["A", "B"], weight=[0.0, 0.9], price=[10.0, 10.0])
    pos = pd.DataFrame({"symbol": ["A"], "qty": [90]})
    book = build_book(w, 1_000, positions=pos, cash_buffer=0.0).set_index("symbol")
    # cash = 1000 - 900 held = 100; selling A frees 900; B needs 900 -> fits without trimming
    assert book.loc["A", ["side", "qty"]].tolist() == ["SELL", 90]
    assert book.loc["B", ["side", "qty"]].tolist() == ["BUY", 90]


def test_insufficient_cash_trims_until_buys_fit():
    w = weights(symbol=["A", "B", "C"], weight=[0.4, 0.4, 0.2], price=[3.0, 7.0, 11.0])
    book = build_book(w, 1_000, cash=500.0)
    spent = (book["qty"] * book["price"]).sum()
    assert spent <= 500 and spent > 450
    assert (book["qty"] < book["untrimmed_qty"]).all()


def test_explicit_cash_overrides_value_minus_holdings():
    w = weights(symbol=["A"], weight=[1.0], price=[1.0])
    assert build_book(w, 1_000, cash=100.0)["qty"].tolist() == [100]


def test_missing_price_becomes_an_unsized_order_for_execution_to_reject():
    w = weights(symbol=["A", "B"], weight=[0.1, 0.2], price=[10.0, np.nan])
    orders = build_orders(w, 1_000, run_id="r", model_version="m").set_index("symbol")
    assert orders.loc["B", "qty"] == 0 and np.isnan(orders.loc["B", "price"])
    assert orders.loc["B", "side"] == "BUY"


def test_groups_are_built_in_one_call_each_with_its_own_value():
    w = pd.DataFrame({
        "date": ["d1", "d1", "d2", "d2"], "symbol": ["A", "B", "A", "B"], "weight": [0.5, 0.5, 0.2, 0.8],
        "price": [10.0, 10.0, 10.0, 10.0], "portfolio_value": [1_000, 1_000, 2_000, 2_000],
    })
    orders = build_orders(w, run_id="date", model_version="m", group_by=["date"])
    assert orders[["date", "symbol", "qty"]].values.tolist() == [
        ["d1", "A", 50], ["d1", "B", 50], ["d2", "A", 40], ["d2", "B", 160]]
    assert orders["run_id"].tolist() == ["d1", "d1", "d2", "d2"]
    single = build_orders(w[w.date == "d2"].drop(columns="date"), run_id="d2", model_version="m")
    assert single["client_order_id"].tolist() == orders.loc[orders.date == "d2", "client_order_id"].tolist()


def test_limit_orders_get_a_limit_price_offset_by_bps():
    w = weights(symbol=["A", "B"], weight=[0.5, -0.1], price=[100.0, 50.0])
    orders = build_orders(w, 10_000, run_id="r", model_version="m", order_type="LIMIT", limit_offset_bps=10)
    assert orders["limit_price"].tolist() == [100.1, 49.95]
    with pytest.raises(ValidationError, match="limit_offset_bps"):
        build_orders(w, 10_000, order_type="LIMIT")
    with pytest.raises(ValidationError, match="order_type is 'STOP'"):
        build_orders(w, 10_000, order_type="STOP")


def test_client_order_id_is_deterministic_and_depends_on_every_part():
    base = client_order_ids("run-1", "AAPL", "BUY", "m1")[0]
    assert base == client_order_ids("run-1", "AAPL", "BUY", "m1")[0]
    assert base.startswith("AAPL-B-") and len(base) == len("AAPL-B-") + 13
    others = {client_order_ids(*args)[0] for args in [("run-2", "AAPL", "BUY", "m1"), ("run-1", "MSFT", "BUY", "m1"),
                                                         ("run-1", "AAPL", "SELL", "m1"), ("run-1", "AAPL", "BUY", "m2")]}
    assert base not in others and len(others) == 4
    vector = client_order_ids(["run-1", "run-2"], ["AAPL", "AAPL"], "BUY", "m1")
    assert vector[0] == base and vector[1] != base


def test_building_twice_gives_identical_orders():
    w = weights(symbol=["A", "B"], weight=[0.3, 0.6], price=[13.0, 17.0])
    a = build_orders(w, 12_345, run_id="r", model_version="m", cash_buffer=0.05)
    b = build_orders(w, 12_345, run_id="r", model_version="m", cash_buffer=0.05)
    pd.testing.assert_frame_equal(a, b)


def test_inputs_are_not_mutated():
    w = weights(symbol=["B", "A"], weight=[0.3, 0.6], price=[13.0, np.nan], lot_size=[1, 10])
    pos = pd.DataFrame({"symbol": ["A"], "qty": [10]})
    w0, pos0 = w.copy(deep=True), pos.copy(deep=True)
    build_orders(w, 10_000, positions=pos, run_id="r", model_version="m", cash_buffer=0.1)
    pd.testing.assert_frame_equal(w, w0)
    pd.testing.assert_frame_equal(pos, pos0)


# --- the cash limit, within 1e-9 relative (tradeloop.core.tolerance), on both paths (the ``engine`` fixture)

def test_buys_at_the_cash_limit_are_not_trimmed(engine):
    # 3 × 0.1 is 0.30000000000000004 in binary: within 1e-9 of the cash 0.3, so at the limit, not above it
    w = weights(symbol=["A"], weight=[0.3], price=[0.1])
    book = build_book(w, 1.0, cash=0.3)
    assert book[["side", "qty", "untrimmed_qty"]].values.tolist() == [["BUY", 3, 3]]
    out = engine(w, value=1.0, params=RunParams(cash=0.3))
    a = out.order("A")
    assert (a["side"], a["qty"], a["untrimmed_qty"], a["status"], a["filled_qty"]) == ("BUY", 3, 3, "FILLED", 3)
    assert out.run_status in ("done", None)

def test_buys_beyond_the_cash_tolerance_are_still_trimmed(engine):
    # 0.3000003 of cash needed for 0.3 available: 1e-6 relative, far beyond the tolerance
    w = weights(symbol=["A"], weight=[0.3000003], price=[0.1000001])
    assert build_book(w, 1.0, cash=0.3)["qty"].tolist() == [2]
    out = engine(w, value=1.0, params=RunParams(cash=0.3))
    assert (out.order("A")["qty"], out.order("A")["untrimmed_qty"], out.order("A")["status"]) == (2, 3, "FILLED")


def test_trimmed_buys_reaching_the_cash_within_the_tolerance_keep_the_lot():
    # Two buys of 6 × 0.1 need 1.2 for 0.6 available: factor 0.5 (0.49999999999999994 in binary) must give 3 each
    w = weights(symbol=["A", "B"], weight=[0.6, 0.6], price=[0.1, 0.1])
    book = build_book(w, 1.0, cash=0.6)
    assert book["qty"].tolist() == [3, 3]
    assert float((book["qty"] * book["price"]).sum()) <= 0.6 * (1 + LIMIT_RTOL)


# --- size_orders, the compiled sizing step, called directly

ROW = st.tuples(st.floats(-0.4, 0.4), st.one_of(st.floats(0.01, 1_000.0), st.just(np.nan)),
                st.sampled_from([1, 10, 100]), st.integers(-3_000, 3_000), st.integers(0, 3))
GROUP = st.tuples(st.floats(1_000.0, 1e7), st.one_of(st.none(), st.floats(-1e5, 1e6)), st.floats(0.0, 0.3))


def _bits(*arrays):
    return [(a.dtype.str, a.tobytes()) for a in map(np.asarray, arrays)]


@settings(max_examples=200, deadline=None)
@given(st.lists(ROW, max_size=40), st.lists(GROUP, min_size=4, max_size=4), st.booleans())
def test_groups_sized_in_one_call_are_each_sized_as_alone(rows, groups, derive):
    # One call over interleaved groups (per-group cash and buffer) gives each group, to the last bit, what a call
    # with that group's rows alone gives: holdings, proceeds and costs are summed per group in row order.
    weight, price, lot, current, codes = (np.array(c) for c in zip(*rows)) if rows else [np.empty(0)] * 5
    lot, current, codes = lot.astype(np.int64), current.astype(np.int64), codes.astype(np.intp)
    pv, cash, buffer = (np.array([g[k] if g[k] is not None else 0.0 for g in groups]) for k in range(3))
    sized = size_orders(weight, price, lot, current, codes, pv, None if derive else cash, buffer)
    for g in range(4):
        rows_g = np.flatnonzero(codes == g)
        alone = size_orders(weight[rows_g], price[rows_g], lot[rows_g], current[rows_g], np.zeros(len(rows_g), np.intp),
                            pv[g:g + 1], None if derive else cash[g:g + 1], buffer[g])
        assert _bits(alone[0], alone[1], alone[2], alone[3]) == _bits(sized[0][rows_g], sized[1][rows_g],
                                                                      sized[2][g:g + 1], sized[3][rows_g])


def test_any_input_dtype_or_layout_runs_the_one_compiled_signature():
    from tradeloop.core.jit.sizing import size_book

    weight, price = np.array([0.5, -0.25, 0.375, 0.0]), np.array([10.0, 30.0, np.nan, 7.0])
    lot, current = np.array([1, 1, 10, 1]), np.array([0, 3, 10, 5])
    expected = size_orders(weight, price, lot.astype(np.int64), current.astype(np.int64), np.zeros(4, np.intp),
                           np.array([1_000.0]), None, 0.1)
    variants = [  # float32 / int32 / Python lists, strided views, an int buffer, a per-group buffer, given cash
        (weight.astype(np.float32), price, lot.astype(np.int32), current, [0, 0, 0, 0], [1_000], None, 0.1),
        (np.repeat(weight, 2)[::2], np.repeat(price, 2)[::2], lot.tolist(), current.astype(np.int32),
         np.zeros(4, np.int32), np.array([1_000.0]), None, np.array([0.1])),
        (weight, price, lot, current, np.zeros(4, np.int64), np.array([1_000.0]), np.array([expected[2][0]]), 0.1),
    ]
    for args in variants:
        assert _bits(*size_orders(*args)) == _bits(*expected)
    size_orders(weight, price, lot, current, np.zeros(4, np.intp), np.array([1_000.0]), None, 0)
    assert len(size_book.signatures) == 1, size_book.signatures


def test_misaligned_rows_and_unknown_groups_are_refused_before_the_kernel_reads_them():
    one, two = np.ones(1), np.ones(2)
    ints = np.ones(2, np.int64)
    with pytest.raises(ValueError, match="one length"):
        size_orders(two, one, ints, ints, np.zeros(2, np.intp), one, None, 0.0)
    with pytest.raises(ValueError, match="one value per group"):
        size_orders(two, two, ints, ints, np.zeros(2, np.intp), one, two, 0.0)
    for bad in (1, -1):
        with pytest.raises(ValueError, match=rf"codes\[1\] is {bad}; groups are 0..0"):
            size_orders(two, two, ints, ints, np.array([0, bad], np.intp), one, None, 0.0)


def _two_rows(price):
    return (np.array([0.5, 0.2]), np.array([10.0, price]), np.ones(2, np.int64), np.array([0, 1], np.int64),
            np.zeros(2, np.intp), np.array([1_000.0]), None, 0.0)


def test_an_inexact_target_is_refused_naming_its_row():
    with pytest.raises(ValidationError, match=r"^target quantity for row 2 is 2e\+302 shares"):
        size_orders(*_two_rows(1e-300))
    with pytest.raises(ValidationError, match=r"^target quantity for 'B' is 2e\+302 shares"):
        size_orders(*_two_rows(1e-300), label=lambda i: repr("AB"[i]))


def test_holdings_beyond_float_range_are_refused():
    # cash = 1000 - 1 share × inf; the first amount that is not finite is named
    with pytest.raises(ValidationError, match=r"^the book's value overflows \(-inf\)"):
        size_orders(*_two_rows(np.inf))
