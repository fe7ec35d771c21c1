"""A date's market over the slots (:func:`tradeloop.core.jit.market.market_day`) against the same vectors built
with pandas from the price rows: today's price and lot, the last known price (the mark) and sector carried forward;
and the borrow charged (:func:`tradeloop.core.jit.market.borrow`) against its formula."""

from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from tradeloop.core.jit.market import borrow, market_day


@st.composite
def _rows(draw):
    D, S, P = draw(st.integers(1, 6)), draw(st.integers(1, 7)), draw(st.integers(1, 3))
    have = draw(st.lists(st.booleans(), min_size=D * S, max_size=D * S))
    rows = [(t, s) for t in range(D) for s in range(S) if have[t * S + s]]
    price = draw(st.lists(st.one_of(st.floats(0.01, 1e4), st.just(np.nan)), min_size=len(rows), max_size=len(rows)))
    sector = draw(st.lists(st.integers(-1, 3), min_size=len(rows), max_size=len(rows)))
    lot = draw(st.lists(st.sampled_from([1, 10, 100]), min_size=len(rows), max_size=len(rows)))
    weight = draw(st.lists(st.floats(-1, 1), min_size=D * P * S, max_size=D * P * S))
    return D, S, P, rows, np.array(price, dtype=np.float64), np.array(sector, dtype=np.int32), \
        np.array(lot, dtype=np.int64), np.array(weight)


@settings(max_examples=120, deadline=None)
@given(_rows())
def test_each_date_spreads_its_rows_and_carries_the_last_price_and_sector(case):
    D, S, P, rows, price, sector, lot, weight = case
    N = P * S
    t_of = np.array([t for t, _ in rows], dtype=np.int64)
    psym = np.array([s for _, s in rows], dtype=np.int32)
    pbounds = np.searchsorted(t_of, np.arange(D + 1))
    wbounds = np.arange(D + 1, dtype=np.int64) * N  # dense weights: every slot each date
    frame = pd.DataFrame({"t": t_of, "s": psym, "price": price, "sector": sector, "lot": lot})
    px = frame.pivot(index="t", columns="s", values="price").reindex(index=range(D), columns=range(S))
    mark = px.ffill()  # NaN prices never become a mark
    sec = frame.assign(sector=frame["sector"].where(frame["sector"] >= 0)).pivot(
        index="t", columns="s", values="sector").reindex(index=range(D), columns=range(S)).ffill().fillna(4)
    lots = frame.pivot(index="t", columns="s", values="lot").reindex(index=range(D), columns=range(S)).fillna(7)
    last_px, last_sec = np.full(S, np.nan), np.full(S, 4, dtype=np.int64)
    for t in range(D):
        out = (np.empty(N), np.empty(N), np.empty(N, dtype=np.int64), np.empty(N), np.empty(N),
               np.empty(N, dtype=np.int64))
        market_day(t, weight, wbounds, np.zeros(0, dtype=np.int32), True, price, lot, sector, psym, pbounds, 7,
                   last_px, last_sec, *out)
        w, p, lt, m, marks, sc = out
        np.testing.assert_array_equal(w, weight[t * N:(t + 1) * N])
        np.testing.assert_array_equal(p, np.tile(px.loc[t].to_numpy(), P))
        np.testing.assert_array_equal(lt, np.tile(lots.loc[t].to_numpy(dtype=np.int64), P))
        np.testing.assert_array_equal(m, np.tile(mark.loc[t].to_numpy(), P))
        np.testing.assert_array_equal(marks, np.nan_to_num(m))
        np.testing.assert_array_equal(sc, np.tile(sec.loc[t].to_numpy(dtype=np.int64), P))


def test_sparse_weights_are_zero_where_a_slot_has_no_row():
    weight, wpos, wbounds = np.array([0.5, -0.25]), np.array([1, 4], dtype=np.int32), np.array([0, 2])
    out = (np.empty(6), np.empty(6), np.empty(6, dtype=np.int64), np.empty(6), np.empty(6), np.empty(6, dtype=np.int64))
    market_day(0, weight, wbounds, wpos, False, np.array([10.0]), np.array([1], dtype=np.int64),
               np.array([0], dtype=np.int32), np.array([0], dtype=np.int32), np.array([0, 1]), 1, np.full(3, np.nan),
               np.full(3, 9, dtype=np.int64), *out)
    assert out[0].tolist() == [0.0, 0.5, 0.0, 0.0, -0.25, 0.0]
    assert out[1][[0, 3]].tolist() == [10.0, 10.0] and np.isnan(out[1][[1, 2, 4, 5]]).all()


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.integers(-10**6, 10**6), st.floats(0.01, 1e4)), min_size=1, max_size=30),
       st.floats(0, 5_000), st.floats(0.001, 30))
def test_borrow_is_the_short_value_times_the_rate_for_the_days_held(slots, bps, days):
    hold = np.array([s[0] for s in slots], dtype=np.int64)
    marks = np.array([s[1] for s in slots])
    group = np.arange(len(slots), dtype=np.intp) % 2
    per_book, per_slot = np.empty(2), np.empty(len(slots))
    borrow(hold, marks, group, bps / 1e4, days, per_book, per_slot)
    short_value = np.minimum(hold, 0) * marks
    np.testing.assert_array_equal(per_slot, -short_value * (bps / 1e4) * (days / 365.0))
    np.testing.assert_array_equal(per_book, -np.bincount(group, weights=short_value, minlength=2)
                                  * (bps / 1e4) * (days / 365.0))
