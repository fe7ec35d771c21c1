"""The compiled execution step: numpy's rounding to the bit, events that replay to the statuses, one compilation per
kernel signature the package passes, and numba kept out of ``import tradeloop``."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from tradeloop import FixedBpsSlippage, PerShareCommission, RunParams, VolumeParticipation, work_orders
from tradeloop.core import engine
from tradeloop.core.engine import CANCELED, FILLED, NEW, PARTIAL, REJECTED, SUBMITTED, execute_step
from tradeloop.core.jit import execution as jx
from tradeloop.workflows.history import simulate


@settings(max_examples=400, deadline=None)
@given(st.lists(st.floats(allow_nan=True, allow_infinity=True, width=64), min_size=1, max_size=50))
def test_average_rounding_is_numpys_round_to_the_bit(values):
    x = np.array(values, dtype=np.float64)
    with np.errstate(over="ignore", invalid="ignore"):
        expected = np.round(x, 6)
    got = np.array([jx._round6(v) for v in x])
    assert got.tobytes() == expected.tobytes()


_LEGAL = {(NEW, SUBMITTED), (NEW, REJECTED), (SUBMITTED, PARTIAL), (SUBMITTED, FILLED), (PARTIAL, PARTIAL),
          (PARTIAL, FILLED), (SUBMITTED, CANCELED), (PARTIAL, CANCELED)}


@st.composite
def steps(draw):
    n = draw(st.integers(0, 12))
    status = np.array(draw(st.lists(st.sampled_from([NEW, NEW, SUBMITTED, PARTIAL, FILLED, CANCELED, REJECTED]),
                                    min_size=n, max_size=n)), dtype=np.int8)
    qty = np.array(draw(st.lists(st.integers(1, 10_000), min_size=n, max_size=n)), dtype=np.int64)
    part = np.array(draw(st.lists(st.floats(0, 0.99), min_size=n, max_size=n)))
    filled = np.where(status == NEW, 0, (qty * part).astype(np.int64))
    price = np.array(draw(st.lists(st.one_of(st.floats(0.5, 500).map(lambda v: round(v, 2)), st.just(np.nan)),
                                   min_size=n, max_size=n)))
    sell = np.array(draw(st.lists(st.booleans(), min_size=n, max_size=n)), dtype=bool)
    kw = {"close": draw(st.booleans()), "avg_price": np.where(filled > 0, 50.0, np.nan)}
    if draw(st.booleans()):
        kw["caps"] = np.array(draw(st.lists(st.sampled_from([np.nan, 0.0, 7.0, 100.0, np.inf]), min_size=n,
                                            max_size=n)))
    if draw(st.booleans()):
        kw["is_limit"] = np.array(draw(st.lists(st.booleans(), min_size=n, max_size=n)), dtype=bool)
        kw["limit"] = np.round(np.nan_to_num(price, nan=10.0) * draw(st.sampled_from([0.99, 1.0, 1.01])), 4)
    return status, qty, filled, price, sell, kw


@settings(max_examples=300, deadline=None)
@given(steps())
def test_step_events_replay_to_the_statuses_fills_and_flows(case):
    status, qty, filled, price, sell, kw = case
    r = execute_step(status, qty, filled, price, sell, slippage=FixedBpsSlippage(5),
                     commission=PerShareCommission(0.005, 1.0), events=True, **kw)
    ev = r.events
    assert (np.diff(ev.order) >= 0).all()  # grouped by order
    replayed, fills = status.copy(), np.zeros(len(qty), dtype=np.int64)
    for i, a, b, q in zip(ev.order, ev.from_status, ev.to_status, ev.qty):
        assert replayed[i] == a and (a, b) in _LEGAL
        replayed[i] = b
        fills[i] += q if b in (PARTIAL, FILLED) else 0
    assert replayed.tolist() == r.status.tolist()
    assert fills.tolist() == np.maximum(r.fill_qty, 0).tolist()
    assert (r.filled == filled + r.fill_qty).all()
    terminal = status >= FILLED
    assert (r.status[terminal] == status[terminal]).all() and not r.fill_qty[terminal].any()
    if kw["close"]:
        assert (r.status >= FILLED).all()
    now = r.fill_qty > 0
    assert not (r.commission[~now].any() or r.cash_flow[~now].any())
    assert ((r.cash_flow[now] + r.commission[now] > 0) == sell[now]).all()  # before fees a SELL receives, a BUY pays
    limit = kw.get("is_limit", np.zeros(len(qty), dtype=bool)) & now
    worse = np.where(sell, r.fill_price < kw.get("limit", 0.0), r.fill_price > kw.get("limit", np.inf))
    assert not (worse & limit).any()


def _signatures() -> dict:
    return {name: len(fn.signatures) for name, fn in vars(jx).items() if hasattr(fn, "signatures")}


def test_the_package_calls_each_kernel_with_the_types_warm_compiles():
    jx.warm()
    before = _signatures()
    orders = pd.DataFrame({"client_order_id": ["A", "B", "C"], "run_id": "r", "side": ["BUY", "SELL", "BUY"],
                           "qty": [500, 300, 10], "price": [10.0, 20.0, np.nan], "order_type": ["LIMIT", "MARKET",
                                                                                                  "MARKET"],
                           "limit_price": [10.01, np.nan, np.nan], "volume": [2_000.0, 1_000.0, 100.0]})
    work_orders(orders, steps=3, liquidity=VolumeParticipation(0.1), slippage=FixedBpsSlippage(2),
                commission=PerShareCommission(0.005, 1.0))
    dates = pd.bdate_range("2024-01-01", periods=3)
    weights = pd.DataFrame({"date": np.repeat(dates, 2), "symbol": ["X", "Y"] * 3, "weight": [0.3, 0.2] * 3})
    prices = pd.DataFrame({"date": np.repeat(dates, 2), "symbol": ["X", "Y"] * 3, "price": [10.0, 20.0] * 3,
                           "volume": [500.0, 800.0] * 3})
    for params in ({}, {"order_type": "LIMIT", "limit_offset_bps": 5, "steps": 2,
                        "liquidity": {"model": "VolumeParticipation", "max_rate": 0.1}},
                   {"risk": {"max_order_notional": 1_000}}):
        sim = simulate(weights, prices, portfolio_value=100_000, params=RunParams.from_dict(params))
        assert len(sim.orders)
    assert _signatures() == before


def test_import_tradeloop_and_help_do_not_load_numba():
    code = ("import sys\nimport tradeloop\nsys.argv = ['tradeloop', '--help']\nfrom tradeloop.cli import cli\n"
            "try:\n    cli.main(standalone_mode=False)\nexcept SystemExit:\n    pass\n"
            "from tradeloop.core import engine\nprint('numba' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.splitlines()[-1] == "False"
    assert engine.execute_step  # the engine module itself imports numba only on its first step
