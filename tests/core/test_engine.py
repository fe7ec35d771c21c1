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
