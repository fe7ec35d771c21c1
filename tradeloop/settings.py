"""Settings: the only place tradeloop reads environment variables.

The command line, the notebook functions (:mod:`tradeloop.reporting.reports`) and batches call
:meth:`Settings.from_env` once, at their start, and pass the values down as arguments (``Store(path,
timeout=...)``, ``execute_run(..., fill_batch=..., lease_seconds=..., faults=...)``); the library below never looks
at the environment. Every value is checked before anything is written, with a one-line error naming the variable.

=========================  ==================================================================================
variable                   meaning (default)
=========================  ==================================================================================
``TRADELOOP_DB``           database file when ``--db`` / ``db_path`` is not given (``./tradeloop.duckdb``)
``TRADELOOP_LOCK_TIMEOUT`` seconds to wait for another process holding the database file (30)
``TRADELOOP_FILL_BATCH``   orders per fill transaction of a run (100000: one transaction)
``TRADELOOP_LEASE_SECONDS`` how long a running run's owner may go without a heartbeat before it counts as dead (600)
``TRADELOOP_DATA``         the sample data folder ``tradeloop demo`` reads (the data shipped with tradeloop)
``TRADELOOP_SCHEDULER``    where ``batch``, ``simulate`` and ``sweep`` run tasks when ``--scheduler`` is not given:
                           ``local`` or a Dask scheduler address ``tcp://host:port`` (unset: local processes)
``TRADELOOP_CRASH_AT``     test-only: a crash point of :mod:`tradeloop.workflows.faults` (unset)
``TRADELOOP_INTERRUPT_AT`` test-only: ``POINT:N``, a sweep or batch interrupts itself (as Ctrl-C) there (unset)
=========================  ==================================================================================
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from .core.validate import check_number, check_whole
from .errors import ValidationError
from .resources import data_dir
from .store.db import DEFAULT_DB, DEFAULT_LOCK_TIMEOUT
from .workflows.executors import check_scheduler
from .workflows.faults import CRASH_ENV, CRASH_POINTS, INTERRUPT_ENV, parse_interrupt
from .workflows.run import DEFAULT_FILL_BATCH, DEFAULT_LEASE_SECONDS

__all__ = ["Settings", "default_db_path"]

_DATA = data_dir()


def _float(environ: Mapping[str, str], name: str, default: float, *, inclusive: bool) -> float:
    raw = environ.get(name)
    if raw in (None, ""):
        return default
    rule = f"a number of seconds {'>=' if inclusive else '>'} 0"
    try:
        return check_number(name, float(raw), inclusive=inclusive)
    except (ValueError, ValidationError):
        raise ValidationError(f"{name} is {raw!r}; it must be {rule}") from None


def _whole(environ: Mapping[str, str], name: str, default: int) -> int:
    raw = environ.get(name)
    if raw in (None, ""):
        return default
    if not raw.strip().isdigit() or int(raw) < 1:
        raise ValidationError(f"{name} is {raw!r}; it must be a whole number >= 1")
    return int(raw)


@dataclass(frozen=True)
class Settings:
    """Process settings, validated; build them with :meth:`from_env` (or directly, in tests)."""

    db: Path = Path(DEFAULT_DB)
    lock_timeout: float = DEFAULT_LOCK_TIMEOUT
    fill_batch: int = DEFAULT_FILL_BATCH
    lease_seconds: float = DEFAULT_LEASE_SECONDS
    data_dir: Path = _DATA
    crash_at: str | None = None
    scheduler: str | None = None
    interrupt_at: str | None = None

    def __post_init__(self):
        check_number("lock_timeout", self.lock_timeout)
        check_whole("fill_batch", self.fill_batch)
        check_number("lease_seconds", self.lease_seconds, inclusive=False)
        if self.crash_at is not None and self.crash_at not in CRASH_POINTS:
            raise ValidationError(f"{CRASH_ENV} is {self.crash_at!r}; allowed: {list(CRASH_POINTS)}")
        try:
            check_scheduler(self.scheduler)
        except ValidationError as e:
            raise ValidationError(f"TRADELOOP_SCHEDULER: {e}") from None
        if self.interrupt_at is not None:
            try:
                parse_interrupt(self.interrupt_at)
            except ValueError as e:
                raise ValidationError(str(e)) from None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> "Settings":
        """Read and check every ``TRADELOOP_*`` variable (``environ`` defaults to ``os.environ``)."""
        env = os.environ if environ is None else environ
        return cls(
            db=Path(env.get("TRADELOOP_DB") or DEFAULT_DB),
            lock_timeout=_float(env, "TRADELOOP_LOCK_TIMEOUT", DEFAULT_LOCK_TIMEOUT, inclusive=True),
            fill_batch=_whole(env, "TRADELOOP_FILL_BATCH", DEFAULT_FILL_BATCH),
            lease_seconds=_float(env, "TRADELOOP_LEASE_SECONDS", DEFAULT_LEASE_SECONDS, inclusive=False),
            data_dir=Path(env.get("TRADELOOP_DATA") or _DATA),
            crash_at=env.get(CRASH_ENV) or None,
            scheduler=env.get("TRADELOOP_SCHEDULER") or None,
            interrupt_at=env.get(INTERRUPT_ENV) or None,
        )


def default_db_path() -> Path:
    """``$TRADELOOP_DB`` if set, else ``./tradeloop.duckdb`` (for entry points that need only the path)."""
    return Path(os.environ.get("TRADELOOP_DB") or DEFAULT_DB)
