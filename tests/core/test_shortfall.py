"""The shortfall kernel: causes from the table of codes, each cause's rule, and causes summing to the gap."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tradeloop.core import codes
from tradeloop.core import shortfall as k


def test_causes_are_the_table_rows_with_one_cause_per_risk_rule():
    names = k.CAUSES
    for rule in codes.rows(codes.RISK_RULE):
        assert codes.RISK_PREFIX + rule.name in names
    plain = [c.name for c in codes.rows(codes.SHORTFALL_CAUSE) if c.name != "risk"]
    assert [c for c in names if not c.startswith(codes.RISK_PREFIX)] == plain
    assert len(names) == len(plain) + len(codes.rows(codes.RISK_RULE))
    with pytest.raises(KeyError, match="no shortfall cause 'nope'"):
        k.cause_index("nope")


def _one(**kw):
    """One symbol, V = 10,000, price 10, nothing held, an order of ``qty`` fully filled unless said otherwise."""
    base = dict(weight=np.array([0.5]), price=np.array([10.0]), value=10_000.0, current=np.array([0]),
                target=np.array([500]), untrimmed=np.array([500]), sized=np.array([500]), qty=np.array([500]),
                filled=np.array([500]), sell=np.array([False]), risk_mask=np.array([0]),
                unfilled=np.array([k.NO_CAUSE]))
    base.update(kw)
    base.setdefault("mark", base["price"])
    return dict(zip(k.CAUSES, k.attribute(**base)[0]))


def test_each_cause_alone():
    assert _one(weight=np.array([0.5]), price=np.array([30.0]), target=np.array([160]), untrimmed=np.array([160]),
                sized=np.array([160]), qty=np.array([160]), filled=np.array([160]))["rounding"] == pytest.approx(0.02)
    trim = _one(sized=np.array([400]), qty=np.array([400]), filled=np.array([400]))
    assert trim["cash_trim"] == pytest.approx(0.1) and trim["rounding"] == 0
    blocked = _one(filled=np.array([0]), risk_mask=np.array([0b11]))
    assert blocked["risk:max_order_notional"] == blocked["risk:max_position_ratio"] == pytest.approx(0.25)
    assert _one(filled=np.array([200]), unfilled=np.array([k.LIQUIDITY]))["liquidity"] == pytest.approx(0.3)
    assert _one(filled=np.array([0]), unfilled=np.array([k.LIMIT_NOT_CROSSED]))["limit_not_crossed"] == 0.5
    missing = _one(price=np.array([np.nan]), mark=np.array([8.0]), current=np.array([100]), target=np.array([100]),
                   untrimmed=np.array([0]), sized=np.array([0]), qty=np.array([0]), filled=np.array([0]),
                   unfilled=np.array([k.MISSING_PRICE]))
    assert missing["missing_price"] == pytest.approx(0.5 - 100 * 8.0 / 10_000)
    assert sum(v for c, v in missing.items() if c != "missing_price") == 0


def test_a_resize_decision_goes_to_its_rule():
    out = _one(qty=np.array([300]), filled=np.array([300]),
               decisions=(np.array([0]), np.array(["max_order_notional"]), np.array([500]), np.array([300])))
    assert out["risk:max_order_notional"] == pytest.approx(0.2)
    assert sum(out.values()) == pytest.approx(0.5 - 300 * 10 / 10_000)


def test_rules_resizing_one_order_at_once_share_the_cut_as_the_airport_rule():
    # row 0: 600 cut to 500 by one rule and to 400 by another (the order keeps 400): 600 → 500 is shared (50 each),
    # 500 → 400 is the deeper rule's alone; row 1: one rule, its whole cut; row 2: three rules to 0, a third each;
    # row 3: a chain (1,000 → 800 in one stage, then 800 → 600 / 800 → 400 together)
    row = np.array([0, 0, 1, 2, 2, 2, 3, 3, 3])
    before = np.array([600, 600, 50, 90, 90, 90, 1000, 800, 800])
    after = np.array([500, 400, 0, 0, 0, 0, 800, 600, 400])
    assert k.shared_cuts(row, before, after).tolist() == pytest.approx([50, 150, 50, 30, 30, 30, 200, 100, 300])
    r, cause, gap = k.decision_gaps(row[:2], np.array([0, 1]), before[:2], after[:2], np.array([-1, -1]),
                                    np.array([10.0, 10.0]), 10_000.0)
    assert cause.tolist() == [k.risk_cause(codes.risk_rule_names()[0]), k.risk_cause(codes.risk_rule_names()[1])]
    assert gap.tolist() == pytest.approx([-0.05, -0.15])


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3), st.sampled_from([0, 100, 500]), st.integers(0, 500)), max_size=12))
def test_shared_cuts_sum_to_each_orders_cut_and_are_never_negative(rows):
    row = np.array([r for r, _, _ in rows], dtype=np.int64)
    before = np.array([b + 500 for _, b, _ in rows], dtype=np.int64)
    after = np.array([min(a, b + 500) for _, b, a in rows], dtype=np.int64)
    got = k.shared_cuts(row, before, after)
    assert (got >= -1e-9).all()
    for key in set(zip(row.tolist(), before.tolist())):
        mine = (row == key[0]) & (before == key[1])
        assert got[mine].sum() == pytest.approx(key[1] - after[mine].min())
        assert (got[mine] <= before[mine] - after[mine] + 1e-9).all()  # no rule takes more than it cut


def test_unfilled_cause_precedence():
    f = np.array
    got = k.unfilled_cause(missing=f([True, False, False, False, False]), blocked=f([False, True, False, False, False]),
                           canceled=f([False, False, True, True, False]), crossed=f([True, True, True, False, True]),
                           finished=f([True, True, True, True, False]))
    assert got.tolist() == [k.MISSING_PRICE, k.NO_CAUSE, k.LIQUIDITY, k.LIMIT_NOT_CROSSED, k.NOT_EXECUTED]


@st.composite
def books(draw):
    n = draw(st.integers(1, 12))
    ints = st.integers(0, 5_000)
    weight = np.array(draw(st.lists(st.floats(-0.3, 0.3), min_size=n, max_size=n)))
    price = np.array(draw(st.lists(st.one_of(st.just(np.nan), st.floats(0.5, 500)), min_size=n, max_size=n)))
    current = np.array(draw(st.lists(st.integers(-3_000, 3_000), min_size=n, max_size=n)))
    untrimmed = np.array(draw(st.lists(ints, min_size=n, max_size=n)))
    sized = np.minimum(untrimmed, draw(st.lists(ints, min_size=n, max_size=n)))
    qty = np.minimum(sized, draw(st.lists(ints, min_size=n, max_size=n)))
    filled = np.minimum(qty, draw(st.lists(ints, min_size=n, max_size=n)))
    mask = np.array(draw(st.lists(st.integers(0, 2 ** len(codes.rows(codes.RISK_RULE)) - 1), min_size=n,
                                  max_size=n)))
    filled = np.where(mask != 0, 0, filled)
    sell = np.array(draw(st.lists(st.booleans(), min_size=n, max_size=n)))
    target = current + np.where(sell, -untrimmed, untrimmed)
    unfilled = np.array(draw(st.lists(st.sampled_from([k.LIQUIDITY, k.LIMIT_NOT_CROSSED, k.NOT_EXECUTED]),
                                      min_size=n, max_size=n)))
    unfilled = np.where(np.isnan(price), k.MISSING_PRICE, np.where(mask != 0, k.NO_CAUSE, unfilled))
    resized = np.flatnonzero(qty < sized)  # what a resize decision took, by some rule
    rules = np.array(draw(st.lists(st.sampled_from(codes.risk_rule_names()), min_size=len(resized),
                                   max_size=len(resized))), dtype=object)
    return dict(decisions=(resized, rules, sized[resized], qty[resized]), weight=weight, price=price, mark=np.where(np.isnan(price), 3.0, price), value=draw(
        st.floats(1e3, 1e8)), current=current, target=target, untrimmed=untrimmed, sized=sized, qty=qty,
        filled=filled, sell=sell, risk_mask=mask, unfilled=unfilled)


@settings(max_examples=200, deadline=None)
@given(books())
def test_causes_of_each_symbol_sum_to_its_gap(book):
    matrix = k.attribute(**book)
    held = book["current"] + np.where(book["sell"], -book["filled"], book["filled"])
    # the gap, computed without the kernel: paper weight minus the weight reached at the decision (or last) price
    gap = book["weight"] - held * book["mark"] / book["value"]
    np.testing.assert_allclose(matrix.sum(axis=1), gap, rtol=1e-9, atol=1e-9 * (1 + np.abs(gap).max()))


def test_period_returns_are_zero_without_marks():
    r = k.period_returns(np.array([10.0, np.nan, 5.0]), np.array([11.0, 4.0, np.nan]))
    assert r.tolist() == pytest.approx([0.1, 0.0, 0.0])
