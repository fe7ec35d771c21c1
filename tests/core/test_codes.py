"""The table of codes is the one source: every derived spelling agrees with it."""

import pytest

from tradeloop.core import codes
from tradeloop.core.fsm import (ORDER_STATUSES, ORDER_TRANSITIONS, RUN_STATUSES, RUN_TRANSITIONS,
                                TERMINAL_ORDER_STATUSES, TERMINAL_RUN_STATUSES)
from tradeloop.core.risk import RISK_CODES


def test_codes_are_unique_per_kind():
    for kind in {c.kind for c in codes.CODES}:
        rows = codes.rows(kind)
        assert len({c.name for c in rows}) == len(rows), kind
        assert len({c.code for c in rows}) == len(rows), kind


def test_state_machines_cover_exactly_the_status_rows():
    assert set(RUN_TRANSITIONS) == set(RUN_STATUSES) == set(codes.names(codes.RUN_STATUS))
    assert set(ORDER_TRANSITIONS) == set(ORDER_STATUSES) == set(codes.names(codes.ORDER_STATUS))


def test_terminal_statuses_are_never_left():
    for name in TERMINAL_ORDER_STATUSES:
        assert ORDER_TRANSITIONS[name] == frozenset()
    for name in TERMINAL_RUN_STATUSES:
        assert RUN_TRANSITIONS[name] == frozenset()
    # the rows marked non-terminal all have a way out
    assert all(ORDER_TRANSITIONS[s] for s in ORDER_STATUSES if s not in TERMINAL_ORDER_STATUSES)
    assert all(RUN_TRANSITIONS[s] for s in RUN_STATUSES if s not in TERMINAL_RUN_STATUSES)


def test_risk_rules_have_distinct_bits_in_check_order():
    bits = [c.bit for c in codes.rows(codes.RISK_RULE)]
    assert sorted(bits) == list(range(len(bits)))
    assert RISK_CODES == codes.risk_rule_names()


def test_outcomes_name_real_statuses_and_reasons():
    reasons = set(codes.names(codes.REJECT_REASON))
    for c in codes.rows(codes.OUTCOME):
        assert c.status in ORDER_STATUSES and c.status in TERMINAL_ORDER_STATUSES
        assert (c.reason is None) == (c.status == "FILLED")
        assert c.reason is None or c.reason in reasons


def test_risk_mask_decode_table():
    table = codes.risk_mask_names()
    assert len(table) == 2 ** len(RISK_CODES)
    assert table[0] == ""
    for rule in codes.rows(codes.RISK_RULE):
        assert table[1 << rule.bit] == rule.name


def test_unknown_code_is_named():
    with pytest.raises(KeyError, match="no risk_rule named 'nope'"):
        codes.code_of(codes.RISK_RULE, "nope")
