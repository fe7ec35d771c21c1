"""Fault injection for crash tests: a documented, test-only hook that kills the process at a named point of a run.

Set ``TRADELOOP_CRASH_AT`` to one of :data:`CRASH_POINTS` and the process sends itself SIGKILL when a run reaches
that point: no ``finally`` blocks, no rollback by Python, exactly like a power cut or ``kill -9``. Unset (the normal
case) the hook costs one dictionary lookup. The crash tests (``tests/test_crash.py``) start the real CLI with it,
check that the database is consistent, re-run, and compare with an uninterrupted run.

=================  ==========================================================================================
point              the process dies …
=================  ==========================================================================================
after_freeze       after the snapshot and the queued run are committed (``create_run``), before execution
after_claim        after the run is committed ``running`` with this process's lease, before any order exists
after_orders       after the orders are committed NEW, before risk and execution
mid_fills          inside the first fill batch's transaction: order updates, fills and events written, not
                   committed (so none of them may survive)
after_fill_batch   after the first fill batch is committed and before the next one (with ``TRADELOOP_FILL_BATCH``
                   smaller than the number of orders, the run is then half filled)
before_finalize    after the run's final state and audit event are committed, before ``provider.finalize``
=================  ==========================================================================================
"""

from __future__ import annotations

import os
import signal

__all__ = ["CRASH_POINTS", "CRASH_ENV", "crash_point"]

CRASH_ENV = "TRADELOOP_CRASH_AT"
CRASH_POINTS = ("after_freeze", "after_claim", "after_orders", "mid_fills", "after_fill_batch", "before_finalize")


def crash_point(name: str) -> None:
    """Kill this process with SIGKILL if ``$TRADELOOP_CRASH_AT`` names this point (test-only hook)."""
    if os.environ.get(CRASH_ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)
