"""Run and order state machines as explicit transition tables.

Runs:   queued -> running -> done | failed | blocked; a failed run may be retried (failed -> running).
Orders: NEW -> SUBMITTED -> PARTIAL | FILLED | CANCELED | REJECTED; PARTIAL -> PARTIAL | FILLED | CANCELED;
        NEW -> REJECTED. FILLED, CANCELED and REJECTED are terminal and never left.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..errors import IllegalTransition
from .codes import ORDER_STATUS, RUN_STATUS, names, rows

__all__ = [
    "RUN_TRANSITIONS",
    "ORDER_TRANSITIONS",
    "RUN_STATUSES",
    "ORDER_STATUSES",
    "TERMINAL_RUN_STATUSES",
    "TERMINAL_ORDER_STATUSES",
    "check_run_transition",
    "check_order_transitions",
    "check_order_history",
]

RUN_TRANSITIONS: dict[str, frozenset[str]] = {
    "queued": frozenset({"running"}),
    "running": frozenset({"done", "failed", "blocked"}),
    "failed": frozenset({"running"}),  # a failed run can be re-run to completion
    "done": frozenset(),
    "blocked": frozenset(),
}
ORDER_TRANSITIONS: dict[str, frozenset[str]] = {
    "NEW": frozenset({"SUBMITTED", "REJECTED"}),
    "SUBMITTED": frozenset({"PARTIAL", "FILLED", "CANCELED", "REJECTED"}),
    "PARTIAL": frozenset({"PARTIAL", "FILLED", "CANCELED"}),
    "FILLED": frozenset(),
    "CANCELED": frozenset(),
    "REJECTED": frozenset(),
}
RUN_STATUSES = names(RUN_STATUS)
ORDER_STATUSES = names(ORDER_STATUS)
TERMINAL_RUN_STATUSES = frozenset(c.name for c in rows(RUN_STATUS) if c.terminal)
TERMINAL_ORDER_STATUSES = frozenset(c.name for c in rows(ORDER_STATUS) if c.terminal)


def check_run_transition(run_id: str, from_status: str, to_status: str) -> None:
    """Raise IllegalTransition unless the run state machine allows ``from_status -> to_status``."""
    allowed = RUN_TRANSITIONS.get(from_status)
    if allowed is None or to_status not in allowed:
        raise IllegalTransition(
            f"run {run_id!r} cannot go from {from_status!r} to {to_status!r}; "
            f"allowed from {from_status!r}: {sorted(allowed) if allowed else 'nothing (terminal)'}"
        )


#: ``_LEGAL_ORDER[i, j]``: may an order go from ``ORDER_STATUSES[i]`` to ``ORDER_STATUSES[j]``?
_LEGAL_ORDER = np.array([[b in ORDER_TRANSITIONS[a] for b in ORDER_STATUSES] for a in ORDER_STATUSES])
_ORDER_STATUS_INDEX = pd.Index(ORDER_STATUSES, dtype=object)


def check_order_transitions(client_order_ids, from_status, to_status) -> None:
    """Vectorized check of many order transitions at once; raises on the first illegal one.

    Rows whose status does not change are not transitions and are ignored.
    """
    frm = pd.Series(np.asarray(from_status, dtype=object))
    to = pd.Series(np.asarray(to_status, dtype=object))
    moved = (frm != to).to_numpy()
    if not moved.any():
        return
    # Status codes (-1: not a status) looked up in the transition matrix: no Python object per transition.
    a_code = _ORDER_STATUS_INDEX.get_indexer(frm.to_numpy()[moved])
    b_code = _ORDER_STATUS_INDEX.get_indexer(to.to_numpy()[moved])
    legal = (a_code >= 0) & (b_code >= 0) & _LEGAL_ORDER[a_code, b_code]
    if not legal.all():
        ids = np.asarray(client_order_ids, dtype=object)[moved]
        i = int(np.flatnonzero(~legal)[0])
        a, b = frm[moved].iloc[i], to[moved].iloc[i]
        raise IllegalTransition(
            f"order {ids[i]!r} cannot go from {a!r} to {b!r}; "
            f"allowed from {a!r}: {sorted(ORDER_TRANSITIONS.get(a, ())) or 'nothing (terminal)'}"
        )


def check_order_history(before: pd.Series, after: pd.Series, events: pd.DataFrame) -> None:
    """Check one execution step: every event is a legal transition, and each order's events lead from its stored
    status (``before``, indexed by client_order_id) to its new status (``after``) without gaps."""
    if len(events):
        check_order_transitions(events["client_order_id"], events["from_status"], events["to_status"])
        ev = events.reset_index(drop=True)
        prev_to = ev.groupby("client_order_id", sort=False)["to_status"].shift()
        gap = prev_to.notna() & (prev_to != ev["from_status"])
        if gap.any():
            row = ev.loc[gap].iloc[0]
            raise IllegalTransition(f"order {row.client_order_id!r} jumps from {prev_to[gap].iloc[0]!r} to an event "
                                    f"starting at {row.from_status!r}")
        first = ev.groupby("client_order_id", sort=False)["from_status"].first()
        last = ev.groupby("client_order_id", sort=False)["to_status"].last()
    else:
        first = last = pd.Series(dtype=object)
    changed = after.index[(after != before.loc[after.index]).to_numpy()]
    starts = first.reindex(changed)
    ends = last.reindex(changed)
    bad = (starts != before.loc[changed]) | (ends != after.loc[changed])
    if bad.any():
        coid = bad.index[bad.to_numpy()][0]
        raise IllegalTransition(
            f"order {coid!r} changed from {before[coid]!r} to {after[coid]!r} without a matching chain of events"
        )
