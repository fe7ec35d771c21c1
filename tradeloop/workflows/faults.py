"""Fault injection for crash tests: a documented, test-only hook that kills the process at a named point of a run.

:func:`tradeloop.workflows.run.execute_run` and :func:`~tradeloop.workflows.run.create_run` take a ``faults``
callable and call it with the name of each point below (default :func:`no_faults`: nothing happens). The command
line passes :func:`crash_hook` of ``$TRADELOOP_CRASH_AT`` (read by :mod:`tradeloop.settings`): when a run reaches
that point the process sends itself SIGKILL: no ``finally`` blocks, no rollback by Python, exactly like a power cut
or ``kill -9``. The crash tests (``tests/workflows/test_crash.py``) start the real CLI with it, check that the
database is consistent, re-run, and compare with an uninterrupted run.

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

Sweeps and batches take the same kind of hook (``faults=``) and call it at their own points; the command line passes
:func:`interrupt_hook` of ``$TRADELOOP_INTERRUPT_AT`` (``POINT:N``, or ``POINT`` for N = 1): when the driver reaches
POINT for the Nth time it interrupts itself as Ctrl-C does (SIGINT; a ``KeyboardInterrupt`` where SIGINT is ignored),
so the interrupt tests (``tests/workflows/test_interrupt.py``) stop a sweep or a batch at exactly that place, wherever
its tasks run.

=================  ==========================================================================================
point              reached …
=================  ==========================================================================================
after_combination  when a sweep's driver has committed a combination's simulation
mid_combination    inside that transaction: every row and the audit event written, not committed
after_artifact     when a batch's driver has merged a run's scratch database and recorded its artifact
mid_artifact       inside that transaction (the artifact file already published): written, not committed
=================  ==========================================================================================
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable

__all__ = ["CRASH_POINTS", "CRASH_ENV", "INTERRUPT_POINTS", "INTERRUPT_ENV", "no_faults", "crash_hook",
           "interrupt_hook", "parse_interrupt"]

CRASH_ENV = "TRADELOOP_CRASH_AT"
CRASH_POINTS = ("after_freeze", "after_claim", "after_orders", "mid_fills", "after_fill_batch", "before_finalize")
INTERRUPT_ENV = "TRADELOOP_INTERRUPT_AT"
INTERRUPT_POINTS = ("after_combination", "mid_combination", "after_artifact", "mid_artifact")


def no_faults(point: str) -> None:
    """The default hook: every point passes."""


def crash_hook(crash_at: str | None) -> Callable[[str], None]:
    """The hook that kills this process with SIGKILL at point ``crash_at`` (None: :func:`no_faults`)."""
    if crash_at is None:
        return no_faults
    if crash_at not in CRASH_POINTS:
        raise ValueError(f"crash point {crash_at!r} is unknown; allowed: {list(CRASH_POINTS)}")

    def crash(point: str) -> None:
        if point == crash_at:
            os.kill(os.getpid(), signal.SIGKILL)

    return crash


def parse_interrupt(text: str) -> tuple[str, int]:
    """``"POINT:N"`` (or ``"POINT"``: N = 1) as ``(point, n)``; a ``ValueError`` naming what is allowed."""
    point, _, count = text.partition(":")
    if point not in INTERRUPT_POINTS or not (count == "" or (count.isdigit() and int(count) >= 1)):
        raise ValueError(f"{INTERRUPT_ENV} is {text!r}; give POINT or POINT:N (N >= 1) with POINT one of "
                         f"{list(INTERRUPT_POINTS)}")
    return point, int(count or 1)


def interrupt_hook(interrupt_at: str | None) -> Callable[[str], None]:
    """The hook that interrupts this process as Ctrl-C would when it reaches ``POINT`` for the ``N``-th time
    (``interrupt_at`` is ``"POINT:N"``; None: :func:`no_faults`)."""
    if interrupt_at is None:
        return no_faults
    at, after = parse_interrupt(interrupt_at)
    reached = 0

    def interrupt(point: str) -> None:
        nonlocal reached
        if point == at:
            reached += 1
            if reached == after:
                signal.raise_signal(signal.SIGINT)  # Python's handler raises KeyboardInterrupt right here
                raise KeyboardInterrupt  # SIGINT ignored (a detached process): interrupted all the same

    return interrupt
