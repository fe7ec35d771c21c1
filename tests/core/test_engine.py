"""The mock venue: fills at the reference price through slippage and commission; no price means REJECTED."""

import numpy as np
import pandas as pd

from tradeloop import FixedBpsSlippage, PerShareCommission, fill_orders
from tradeloop.venue.commission import BpsCommission


def orders(**kw):
    base = dict(client_order_id=["A-B-x", "B-S-y"], run_id="r", side=["BUY", "SELL"], qty=[100, 50],
                price=[100.0, 20.0], order_type="MARKET", limit_price=np.nan)
    return pd.DataFrame({**base, **kw})


def test_fills_everything_at_price_plus_slippage_against_the_side():
    r = fill_orders(orders(), slippage=FixedBpsSlippage(5), commission=PerShareCommission(rate=0.005, minimum=1.0))
    assert r.orders["status"].tolist() == ["FILLED", "FILLED"]
    assert r.fills["price"].tolist() == [100.05, 19.99]
    assert r.fills["commission"].tolist() == [1.0, 1.0]  # 0.5 and 0.25 are below the 1.00 minimum
    assert r.fills["fill_id"].tolist() == ["A-B-x-1", "B-S-y-1"]
    assert r.events[["client_order_id", "from_status", "to_status"]].values.tolist() == [
        ["A-B-x", "NEW", "SUBMITTED"], ["A-B-x", "SUBMITTED", "FILLED"],
        ["B-S-y", "NEW", "SUBMITTED"], ["B-S-y", "SUBMITTED", "FILLED"]]


def test_commission_to_the_cent():
    r = fill_orders(orders(qty=[1001, 50]), commission=PerShareCommission(rate=0.0035, minimum=0.35))
    assert r.fills["commission"].tolist() == [3.5, 0.35]  # 1001 × 0.0035 = 3.5035 -> 3.50
    r = fill_orders(orders(), commission=BpsCommission(bps=2.5))
    assert r.fills["commission"].tolist() == [2.5, 0.25]


def test_missing_price_is_rejected_and_never_filled():
    r = fill_orders(orders(price=[np.nan, 20.0]))
    assert r.orders["status"].tolist() == ["REJECTED", "FILLED"]
    assert r.orders["reject_reason"].tolist() == ["missing_price", None]
    assert r.fills["client_order_id"].tolist() == ["B-S-y"]


def test_limit_orders_fill_only_when_they_cross():
    r = fill_orders(orders(order_type="LIMIT", limit_price=[99.0, 19.0]))  # buy below market: no; sell below: yes
    assert r.orders["status"].tolist() == ["CANCELED", "FILLED"]
    assert r.orders["reject_reason"].tolist() == ["unfilled_at_close", None]


def test_terminal_orders_are_left_alone():
    done = orders(status=["FILLED", "NEW"], filled_qty=[100, 0], avg_fill_price=[100.0, np.nan])
    r = fill_orders(done)
    assert r.orders.loc[0, ["status", "filled_qty"]].tolist() == ["FILLED", 100]
    assert r.fills["client_order_id"].tolist() == ["B-S-y"]


# ---------------------------------------------------------------- the array step itself (hand-computed)
from tradeloop.core import engine  # noqa: E402
from tradeloop.core.engine import (  # noqa: E402
    CANCELED,
    FILLED,
    MISSING_PRICE,
    NEW,
    NO_REASON,
    PARTIAL,
    REJECTED,
    SUBMITTED,
    UNFILLED_AT_CLOSE,
    execute_step,
)


def a(*values, dtype=None):
    return np.array(values, dtype=dtype)


def test_step_status_codes_come_from_the_table_of_codes():
    assert engine.STATUS_NAMES == ("NEW", "SUBMITTED", "PARTIAL", "FILLED", "CANCELED", "REJECTED")
    assert [engine.STATUS_NAMES[c] for c in (NEW, SUBMITTED, PARTIAL, FILLED, CANCELED, REJECTED)] == list(
        engine.STATUS_NAMES)
    assert engine.REASON_NAMES[MISSING_PRICE] == "missing_price"
    assert engine.REASON_NAMES[UNFILLED_AT_CLOSE] == "unfilled_at_close"


def test_step_partial_fill_over_steps_then_filled():
    # BUY 500 @ 10.00, at most 200 per step, 1 bp slippage, 0.005/share with a 1.00 minimum per fill
    qty, price, sell, caps = a(500), a(10.0), a(False), a(200.0)
    kw = dict(caps=caps, slippage=FixedBpsSlippage(1), commission=PerShareCommission(0.005, 1.0), close=False)
    s1 = execute_step(a(NEW, dtype=np.int8), qty, a(0), price, sell, avg_price=a(np.nan), **kw)
    assert (s1.status.tolist(), s1.fill_qty.tolist(), s1.filled.tolist()) == ([PARTIAL], [200], [200])
    assert s1.fill_price.tolist() == [10.001] and s1.avg_price.tolist() == [10.001]
    assert s1.commission.tolist() == [1.0]                      # 200 × 0.005 = 1.00
    assert s1.cash_flow.tolist() == [-200 * 10.001 - 1.0]        # a BUY pays price and fee
    s2 = execute_step(s1.status, qty, s1.filled, price, sell, avg_price=s1.avg_price, **kw)
    assert (s2.status.tolist(), s2.fill_qty.tolist(), s2.filled.tolist()) == ([PARTIAL], [200], [400])
    s3 = execute_step(s2.status, qty, s2.filled, price, sell, avg_price=s2.avg_price, **{**kw, "close": True})
    assert (s3.status.tolist(), s3.fill_qty.tolist(), s3.filled.tolist()) == ([FILLED], [100], [500])
    assert s3.commission.tolist() == [1.0]                      # 100 × 0.005 = 0.50 -> the 1.00 minimum
    assert s3.reason.tolist() == [NO_REASON] and s3.avg_price.tolist() == [10.001]
    # a FILLED order is terminal: another step leaves it alone
    s4 = execute_step(s3.status, qty, s3.filled, price, sell, **kw)
    assert s4.status.tolist() == [FILLED] and s4.fill_qty.tolist() == [0] and s4.cash_flow.tolist() == [0.0]


def test_step_limit_not_crossed_stays_working_then_canceled_at_close():
    # BUY limit 99 with the price at 100: no fill; SELL limit 19 with the price at 20: fills at 20
    status, qty, filled = a(NEW, NEW, dtype=np.int8), a(100, 50), a(0, 0)
    price, sell, limit, is_limit = a(100.0, 20.0), a(False, True), a(99.0, 19.0), a(True, True)
    open_ = execute_step(status, qty, filled, price, sell, limit=limit, is_limit=is_limit, close=False)
    assert open_.status.tolist() == [SUBMITTED, FILLED] and open_.fill_qty.tolist() == [0, 50]
    assert open_.cash_flow.tolist() == [0.0, 50 * 20.0]         # a SELL receives
    closed = execute_step(status, qty, filled, price, sell, limit=limit, is_limit=is_limit, close=True)
    assert closed.status.tolist() == [CANCELED, FILLED]
    assert closed.reason.tolist() == [UNFILLED_AT_CLOSE, NO_REASON]
    # slippage never pushes a LIMIT fill past its limit
    capped = execute_step(a(NEW, dtype=np.int8), a(10), a(0), a(100.0), a(False), limit=a(100.02), is_limit=a(True),
                          slippage=FixedBpsSlippage(5))
    assert capped.fill_price.tolist() == [100.02]


def test_step_missing_price_rejects_new_and_cancels_working():
    r = execute_step(a(NEW, PARTIAL, NEW, dtype=np.int8), a(100, 100, 10), a(0, 40, 0), a(np.nan, np.nan, 5.0),
                     a(False, True, False), events=True)
    assert r.status.tolist() == [REJECTED, CANCELED, FILLED]
    assert r.reason.tolist() == [MISSING_PRICE, MISSING_PRICE, NO_REASON]
    assert r.fill_qty.tolist() == [0, 0, 10] and r.filled.tolist() == [0, 40, 10]
    assert r.commission.tolist() == [0.0, 0.0, 0.0] and r.cash_flow.tolist() == [0.0, 0.0, -50.0]
    ev = r.events  # grouped by order, in the order they happened
    assert ev.order.tolist() == [0, 1, 2, 2]
    assert ev.to_status.tolist() == [REJECTED, CANCELED, SUBMITTED, FILLED]
    assert ev.qty.tolist() == [100, 60, 10, 10]                # order qty, the unfilled rest, order qty, the fill


def test_step_commission_is_per_fill():
    # 300 shares in fills of 100: three 1.00 minimums, where one fill of 300 pays 1.50
    model = PerShareCommission(0.005, 1.0)
    status, filled, fees = a(NEW, dtype=np.int8), a(0), []
    for k in range(3):
        r = execute_step(status, a(300), filled, a(10.0), a(False), caps=a(100.0), commission=model, close=k == 2)
        status, filled = r.status, r.filled
        fees.append(r.commission[0])
    assert fees == [1.0, 1.0, 1.0] and status.tolist() == [FILLED]
    one = execute_step(a(NEW, dtype=np.int8), a(300), a(0), a(10.0), a(False), commission=model)
    assert one.commission.tolist() == [1.5]


def test_step_unknown_cap_lets_nothing_fill_and_leaves_inputs_alone():
    status = a(NEW, dtype=np.int8)
    r = execute_step(status, a(100), a(0), a(10.0), a(False), caps=a(np.nan))
    assert r.status.tolist() == [CANCELED] and r.fill_qty.tolist() == [0]
    assert status.tolist() == [NEW]


def test_fill_orders_is_the_step_on_dataframe_columns():
    rng = np.random.default_rng(7)
    n = 40
    price = np.where(rng.random(n) < 0.1, np.nan, np.round(rng.uniform(5, 100, n), 2))
    side = np.where(rng.random(n) < 0.5, "BUY", "SELL")
    is_limit = rng.random(n) < 0.4
    limit = np.where(is_limit, np.round(price * (1 + rng.uniform(-0.01, 0.01, n)), 4), np.nan)
    status = rng.choice(["NEW", "SUBMITTED", "PARTIAL", "FILLED"], n)
    qty = rng.integers(1, 20, n) * 10
    filled = np.where(status == "PARTIAL", qty // 2, np.where(status == "FILLED", qty, 0))
    avg = np.where(filled > 0, 50.0, np.nan)
    volume = rng.uniform(0, 1000, n)
    frame = pd.DataFrame({"client_order_id": [f"S{i}" for i in range(n)], "run_id": "r", "side": side, "qty": qty,
                          "price": price, "order_type": np.where(is_limit, "LIMIT", "MARKET"), "limit_price": limit,
                          "volume": volume, "status": status, "filled_qty": filled, "avg_fill_price": avg})
    from tradeloop import VolumeParticipation
    models = dict(slippage=FixedBpsSlippage(3), commission=PerShareCommission(0.005, 1.0))
    caps = VolumeParticipation(0.2).step_caps(volume, np.ones(n))
    df = fill_orders(frame, liquidity=VolumeParticipation(0.2), close=False, **models)
    r = execute_step(engine.status_codes(status), qty, filled, price, side == "SELL", limit=limit, is_limit=is_limit,
                     caps=caps, avg_price=avg, close=False, events=True, **models)
    assert df.orders["status"].tolist() == [engine.STATUS_NAMES[c] for c in r.status]
    assert df.orders["filled_qty"].tolist() == r.filled.tolist()
    np.testing.assert_array_equal(df.orders["avg_fill_price"].to_numpy(), np.round(r.avg_price, 6))
    now = r.fill_qty > 0
    assert now.any() and df.fills["qty"].tolist() == r.fill_qty[now].tolist()
    assert df.fills["price"].tolist() == r.fill_price[now].tolist()
    assert df.fills["commission"].tolist() == r.commission[now].tolist()
    assert df.events["to_status"].tolist() == [engine.STATUS_NAMES[c] for c in r.events.to_status]
    assert df.events["client_order_id"].tolist() == frame["client_order_id"].to_numpy()[r.events.order].tolist()


def test_core_engine_imports_nothing_from_the_venue():
    import ast
    import inspect

    tree = ast.parse(inspect.getsource(engine))
    modules = [n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
    modules += [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
    assert not [m for m in modules if "venue" in m], modules
