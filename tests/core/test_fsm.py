"""State machines: every legal transition passes, every illegal one raises, terminal states are never left."""

import itertools

import pandas as pd
import pytest

from tradeloop import IllegalTransition
from tradeloop.core.fsm import (
    ORDER_STATUSES,
    ORDER_TRANSITIONS,
    RUN_STATUSES,
    RUN_TRANSITIONS,
    TERMINAL_ORDER_STATUSES,
    check_order_history,
    check_order_transitions,
    check_run_transition,
)

LEGAL_RUN = {("queued", "running"), ("running", "done"), ("running", "failed"), ("running", "blocked"),
             ("failed", "running")}
LEGAL_ORDER = {("NEW", "SUBMITTED"), ("NEW", "REJECTED"), ("SUBMITTED", "PARTIAL"), ("SUBMITTED", "FILLED"),
               ("SUBMITTED", "CANCELED"), ("SUBMITTED", "REJECTED"), ("PARTIAL", "PARTIAL"), ("PARTIAL", "FILLED"),
               ("PARTIAL", "CANCELED")}


def test_tables_match_the_design():
    assert {(a, b) for a, nxt in RUN_TRANSITIONS.items() for b in nxt} == LEGAL_RUN
    assert {(a, b) for a, nxt in ORDER_TRANSITIONS.items() for b in nxt} == LEGAL_ORDER
    assert TERMINAL_ORDER_STATUSES == {"FILLED", "CANCELED", "REJECTED"}


@pytest.mark.parametrize("frm, to", sorted(itertools.product(RUN_STATUSES, repeat=2)))
def test_every_run_transition(frm, to):
    if (frm, to) in LEGAL_RUN:
        check_run_transition("r", frm, to)
    else:
        with pytest.raises(IllegalTransition, match=f"run 'r' cannot go from '{frm}' to '{to}'"):
            check_run_transition("r", frm, to)


@pytest.mark.parametrize("frm, to", [p for p in itertools.product(ORDER_STATUSES, repeat=2) if p[0] != p[1]])
def test_every_order_transition(frm, to):
    if (frm, to) in LEGAL_ORDER:
        check_order_transitions(["o1"], [frm], [to])
    else:
        with pytest.raises(IllegalTransition, match=f"order 'o1' cannot go from '{frm}' to '{to}'"):
            check_order_transitions(["o1"], [frm], [to])


def test_vectorized_check_names_the_first_bad_order():
    with pytest.raises(IllegalTransition, match="order 'o3'"):
        check_order_transitions(["o1", "o2", "o3"], ["NEW", "FILLED", "FILLED"], ["SUBMITTED", "FILLED", "NEW"])


def test_history_must_chain_from_stored_to_new_status():
    before = pd.Series({"o1": "NEW"})
    ok = pd.DataFrame({"client_order_id": ["o1", "o1"], "from_status": ["NEW", "SUBMITTED"],
                       "to_status": ["SUBMITTED", "FILLED"]})
    check_order_history(before, pd.Series({"o1": "FILLED"}), ok)
    with pytest.raises(IllegalTransition, match="without a matching chain"):
        check_order_history(before, pd.Series({"o1": "CANCELED"}), ok)
    gap = ok.assign(from_status=["NEW", "PARTIAL"])
    with pytest.raises(IllegalTransition):
        check_order_history(before, pd.Series({"o1": "FILLED"}), gap)
