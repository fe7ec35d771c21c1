"""TradeRun orchestration: create a run from a snapshot, execute it through a provider, record everything.

The only writer of the store. Each state change is one transaction, so a failure leaves every earlier change
complete and nothing half-written:

1. ``create_run``: validate all inputs, then freeze the snapshot and insert the queued run with its inputs.
2. ``execute_run``: queued/failed -> running; insert the orders (existing client_order_ids are reused untouched);
   risk-check; then blocked (nothing submitted), or done after a dry run, or execute and commit order updates,
   fills, order events, the run's final state and the ``trade_run.execute`` audit event together.
   Any exception: failed, with the error in the run and in the audit event.

Crash recovery: while a run is ``running`` its owner (pid, host) holds a lease in ``run_leases``, renewed at every
committed step. Executing a run found ``running`` whose owner is dead (same host: its pid is gone) or whose lease
expired first records it as abandoned (running -> failed, with an audit event naming the dead owner), then re-runs
it like any failed run. A live owner is refused with :class:`~tradeloop.errors.StoreBusy` naming it. Fills commit in
batches of ``fill_batch`` orders (default: all in one); each batch holds complete orders (state, fills and events),
the last one also the run's final state and audit event.

Re-running a run repeats the same steps: orders are matched by client_order_id, terminal orders are not touched,
fills are keyed by ``{client_order_id}-{seq}``; a done or blocked run is only re-checked and audited. A run id is an
idempotency key: creating run ``R`` again with the same inputs returns the stored run, with different inputs
(snapshot, params, provider, dry run, positions or fallback prices) it is refused with
:class:`~tradeloop.errors.RunConflict` before anything is written.

Nothing here reads the environment: the entry points pass ``fill_batch``, ``lease_seconds`` and the ``faults`` hook
(:mod:`tradeloop.settings`).
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import duckdb
import numpy as np
import pandas as pd

from ..display import facts_html, short_repr
from ..core.digest import (
    EXECUTE_EVENT,
    EXECUTE_PAYLOAD_VERSION,
    FILL_DIGEST_COLUMNS,
    decisions_digest,
    frame_digest,
    record_digests,
)
from ..core.controls import control_book
from ..core.engine import FillResult
from ..core.fsm import (
    TERMINAL_ORDER_STATUSES,
    TERMINAL_RUN_STATUSES,
    check_order_history,
    check_run_transition,
)
from ..core.snapshot import DecisionSnapshot
from ..core.tolerance import exceeds
from ..core.trade_run import TradeRun
from ..core.validate import (
    RUN_ID_PATTERN,
    check_number,
    check_run_id,
    check_whole,
    validate_positions,
    validate_prices,
)
from ..errors import RunConflict, RunNotFound, StoreBusy, TradeloopError, ValidationError
from ..store.db import ORDER_IDENTITY, ORDER_STATE, Store, utcnow
from ..venue.providers import (
    ExecutionProvider,
    get_provider,
    orders_of,
    risk_rejections,
    size_book,
    with_market_data,
)
from .faults import no_faults
from .params import RunParams

__all__ = [
    "TradeRun", "RunResult", "create_run", "execute_run", "run_snapshot", "run_result", "load_run", "RUN_ID_PATTERN",
    "DEFAULT_FILL_BATCH", "DEFAULT_LEASE_SECONDS",
]

#: Orders per fill transaction (``$TRADELOOP_FILL_BATCH`` at the command line): large, so a normal run commits its
#: execution in one transaction; the crash tests lower it to kill a run between two committed batches.
DEFAULT_FILL_BATCH = 100_000
#: Seconds a running run's owner may go without a heartbeat (``$TRADELOOP_LEASE_SECONDS`` at the command line).
DEFAULT_LEASE_SECONDS = 600.0
_HOST = socket.gethostname()
_EXECUTING: set[str] = set()  # run ids this process is executing right now (its own leases are live)


@dataclass(frozen=True)
class RunResult:
    """Outcome of a run, as printed by the CLI (``to_dict`` is the ``--json`` object)."""

    run_id: str
    snapshot_id: str
    status: str
    orders: dict[str, int]
    fills: int
    notional: float
    commission: float
    error: str | None = None
    blocked_reasons: list[str] = field(default_factory=list)
    dry_run: bool = False

    def __repr__(self) -> str:
        return short_repr("RunResult", self.run_id, status=self.status, orders=sum(self.orders.values()),
                          fills=self.fills, notional=self.notional, blocked=len(self.blocked_reasons))

    def _repr_html_(self) -> str:
        facts = [("run_id", self.run_id), ("snapshot_id", self.snapshot_id), ("status", self.status),
                 ("dry_run", str(self.dry_run).lower()),
                 ("orders", f"{sum(self.orders.values()):,} ("
                            + (", ".join(f"{k} {v:,}" for k, v in self.orders.items()) or "none") + ")"),
                 ("fills", self.fills), ("notional", self.notional), ("commission", self.commission),
                 ("error", self.error)]
        facts += [(f"blocked {i + 1}", r) for i, r in enumerate(self.blocked_reasons[:5])]
        more = len(self.blocked_reasons) - 5
        return facts_html(f"RunResult {self.run_id}", facts, footer=(
            f"{more:,} more blocked order(s) in .blocked_reasons; " if more > 0 else "") + ".to_dict() for all")

    def to_dict(self) -> dict:
        return {
            "run_id": self.run_id, "snapshot_id": self.snapshot_id, "status": self.status, "orders": self.orders,
            "fills": self.fills, "notional": self.notional, "commission": self.commission, "error": self.error,
            "blocked_reasons": self.blocked_reasons, "dry_run": self.dry_run,
        }


def _frame_text(df: pd.DataFrame | None) -> str:
    return "" if df is None else df.to_csv(index=False, lineterminator="\n")


def create_run(
    store: Store,
    snapshot: DecisionSnapshot,
    *,
    params: RunParams | None = None,
    positions: pd.DataFrame | None = None,
    fallback_prices: pd.DataFrame | None = None,
    provider: str = "mock",
    dry_run: bool = False,
    run_id: str | None = None,
    faults: Callable[[str], None] = no_faults,
) -> TradeRun:
    """Validate the inputs and store a queued run (idempotent: the same inputs give the same run id).

    The default run id is ``run-`` plus 16 hex digits of a hash over the snapshot id, params, provider, dry_run,
    positions and fallback prices, so creating the same run twice returns the existing one. Nothing is written when
    validation fails. ``faults`` is the crash-test hook (:mod:`tradeloop.workflows.faults`).

    Raises
    ------
    ValidationError
        Bad positions/fallback prices, weights beyond ``params.max_leverage``, an unknown provider, a held symbol
        without a sector when a sector cap is set, or a malformed ``run_id``.
    RunConflict
        ``run_id`` is stored already with different inputs (the message names what differs).
    """
    with store.session():
        run_id = _store_run(store, snapshot, params=params, positions=positions, fallback_prices=fallback_prices,
                            provider=provider, dry_run=dry_run, run_id=run_id, faults=faults)
        return load_run(store, run_id)


def _check_inputs(snapshot: DecisionSnapshot, params: RunParams, provider: str, positions, fallback_prices):
    """Every check :func:`create_run` makes before writing; returns the validated positions and fallback prices."""
    get_provider(provider)  # unknown provider: fail before anything is written
    positions = validate_positions(positions) if positions is not None else None
    fallback_prices = validate_prices(fallback_prices) if fallback_prices is not None else None
    gross = float(np.abs(snapshot.weights["weight"]).sum())
    if exceeds(gross, params.max_leverage):
        raise ValidationError(
            f"snapshot weights sum to {gross:.6g} in absolute value, beyond params.max_leverage "
            f"{params.max_leverage:g}"
        )
    if params.risk.uses_sectors:
        no_sector = snapshot.weights.loc[snapshot.weights["sector"].isna() & (snapshot.weights["weight"] != 0)]
        if len(no_sector):
            raise ValidationError(
                f"sector is unknown for {no_sector['symbol'].tolist()[:10]}; a sector cap is set, so every "
                "symbol with a weight needs a sector"
            )
    return positions, fallback_prices


def _store_run(store: Store, snapshot: DecisionSnapshot, *, params: RunParams | None = None,
               positions: pd.DataFrame | None = None, fallback_prices: pd.DataFrame | None = None,
               provider: str = "mock", dry_run: bool = False, run_id: str | None = None,
               faults: Callable[[str], None] = no_faults) -> str:
    """:func:`create_run` without reading the run back: validate, freeze and insert in one transaction."""
    params = params or RunParams()
    positions, fallback_prices = _check_inputs(snapshot, params, provider, positions, fallback_prices)
    if run_id is None:
        key = "\n".join([snapshot.snapshot_id, params.canonical_json(), provider, str(bool(dry_run)),
                         _frame_text(positions), _frame_text(fallback_prices)])
        run_id = "run-" + hashlib.sha256(key.encode()).hexdigest()[:16]
    else:
        check_run_id(run_id)
    given = TradeRun(run_id=run_id, snapshot_id=snapshot.snapshot_id, provider=provider, dry_run=bool(dry_run),
                     params=params, positions=positions, fallback_prices=fallback_prices)
    _refuse_conflict(store, given)  # before the first write
    book = size_book(given, snapshot)  # sizing refuses quantities that are not exact: before the first write, too
    if params.risk.controls_active:  # and the controls refuse a missing adv
        control_book(book, params.risk)
    row = {"run_id": run_id, "snapshot_id": snapshot.snapshot_id, "provider": provider, "dry_run": bool(dry_run),
           "params": json.dumps(params.to_dict(), sort_keys=True)}
    with store.transaction():
        store.save_snapshot(snapshot)
        if not store.insert_run(row, positions, fallback_prices):
            _refuse_conflict(store, given)  # inserted meanwhile: the same check, inside the transaction
    faults("after_freeze")
    return run_id


def _refuse_conflict(store: Store, given: TradeRun) -> None:
    """Raise :class:`RunConflict` if ``given.run_id`` is stored with other inputs than ``given``'s."""
    try:
        stored = load_run(store, given.run_id)
    except RunNotFound:
        return
    diff = run_differences(stored, given)
    if diff:
        detail = next(iter(diff.values())) if len(diff) == 1 else "; ".join(f"{k} {v}" for k, v in diff.items())
        raise RunConflict(f"run {given.run_id!r} exists with different {', '.join(diff)}: {detail} (use another "
                          "run id, or the same inputs to re-check the stored run)")


def run_differences(stored: TradeRun, given: TradeRun) -> dict[str, str]:
    """What differs between two runs' inputs: ``{what: detail}`` for snapshot, provider, dry_run, params,
    positions and fallback prices (empty when the inputs are the same), e.g. ``{"params":
    "risk.max_order_notional stored 100000, given 50000"}``."""
    out: dict[str, str] = {}
    if stored.snapshot_id != given.snapshot_id:
        out["snapshot"] = f"stored {stored.snapshot_id}, given {given.snapshot_id}"
    for name in ("provider", "dry_run"):
        a, b = getattr(stored, name), getattr(given, name)
        if a != b:
            out[name] = f"stored {a!r}, given {b!r}"
    changed = _changed_keys(stored.params.to_dict(), given.params.to_dict())
    if changed:
        shown = ", ".join(f"{k} stored {a!r}, given {b!r}" for k, a, b in changed[:5])
        out["params"] = f"{shown}{' …' if len(changed) > 5 else ''}"
    for name, column in (("positions", "qty"), ("fallback prices", "price")):
        attr = name.replace(" ", "_")
        symbols = _changed_symbols(getattr(stored, attr), getattr(given, attr), column)
        if symbols:
            out[name] = f"symbols {symbols[:10]}{' …' if len(symbols) > 10 else ''}"
    return out


def _changed_keys(a: dict, b: dict, prefix: str = "") -> list[tuple[str, object, object]]:
    """Dotted keys whose values differ between two nested dicts, with both values (None for a missing key)."""
    out = []
    for key in sorted(set(a) | set(b)):
        x, y = a.get(key), b.get(key)
        if isinstance(x, dict) and isinstance(y, dict):
            out += _changed_keys(x, y, f"{prefix}{key}.")
        elif x != y:
            out.append((f"{prefix}{key}", x, y))
    return out


def _changed_symbols(a: pd.DataFrame | None, b: pd.DataFrame | None, column: str) -> list[str]:
    """Symbols whose ``column`` differs between two symbol tables (a symbol in one table only differs)."""
    x = pd.Series(dtype="float64") if a is None else a.set_index("symbol")[column].astype("float64")
    y = pd.Series(dtype="float64") if b is None else b.set_index("symbol")[column].astype("float64")
    index = x.index.union(y.index)
    x, y = x.reindex(index), y.reindex(index)
    same = (x == y) | (x.isna() & y.isna())
    return [str(sym) for sym in index[~same.to_numpy()]]


def load_run(store: Store, run_id: str) -> TradeRun:
    """The stored run ``run_id`` with its parsed params and inputs (``params.risk`` without the outcome)."""
    row = store.get_run(run_id)
    params = json.loads(row["params"])
    params["risk"] = {k: v for k, v in params.get("risk", {}).items() if k != "outcome"}
    positions, fallback = store.run_inputs(run_id)
    return TradeRun(run_id=run_id, snapshot_id=row["snapshot_id"], provider=row["provider"],
                    dry_run=bool(row["dry_run"]), params=RunParams.from_dict(params), positions=positions,
                    fallback_prices=fallback, status=row["status"], attempts=int(row["attempts"]))


def _params_with_outcome(run: TradeRun, outcome: dict | None) -> str:
    params = run.params.to_dict()
    if outcome is not None:
        params["risk"]["outcome"] = {k: v for k, v in outcome.items() if k != "limits"}
    return json.dumps(params, sort_keys=True)


def run_result(store: Store, run_id: str) -> RunResult:
    """Summarize a stored run from the database alone."""
    with store.session():
        return _summary(store.get_run(run_id), store.orders(run_id), store.fills(run_id))


def _summary(row: dict, orders: pd.DataFrame, fills: pd.DataFrame) -> RunResult:
    """The :class:`RunResult` of a run's stored row, orders and fills (as :meth:`Store.orders`/`fills` return them)."""
    run_id = row["run_id"]
    params = json.loads(row["params"])
    outcome = params.get("risk", {}).get("outcome") or {}
    return RunResult(
        run_id=run_id, snapshot_id=row["snapshot_id"], status=row["status"],
        orders={k: int(v) for k, v in orders["status"].value_counts().sort_index().items()},
        fills=len(fills), notional=round(float((fills["qty"] * fills["price"]).sum()), 2),
        commission=round(float(fills["commission"].sum()), 2), error=row["error"],
        blocked_reasons=[f"{b['symbol']} {b['side']} {b['qty']}: {b['reason']}" for b in outcome.get("blocked", [])],
        dry_run=bool(row["dry_run"]),
    )


def _audit(store: Store, run: TradeRun, *, attempt: int, previous: str, status: str, outcome: dict | None,
           error: str | None, new_orders: int, new_fills: int, environmental: bool = False,
           decisions: pd.DataFrame | None = None) -> RunResult:
    """Append the ``trade_run.execute`` event (inside the caller's transaction) and return the run's summary, made
    from the same rows the event's digests cover, so the caller need not read them again.

    The payload (version :data:`~tradeloop.core.digest.EXECUTE_PAYLOAD_VERSION`) records the run's state, counts,
    the digests of its orders and fills and of its whole stored input and history
    (:func:`~tradeloop.core.digest.record_digests`), and whether a failure was ``environmental``.
    """
    if decisions is not None:  # the attempt's risk decisions, in the same transaction as its audit event
        store.replace_risk_decisions(run.run_id, decisions)
    orders = store.orders(run.run_id, fill_counts=False)
    fills = store.fills(run.run_id)
    record = store.run_record(run.run_id)
    risk_decisions = store.risk_decisions(run.run_id)
    payload = {
        "payload_version": EXECUTE_PAYLOAD_VERSION,
        "snapshot_id": run.snapshot_id,
        "provider": run.provider,
        "dry_run": run.dry_run,
        "attempt": attempt,
        "previous_status": previous,
        "status": status,
        "risk_params": run.params.risk.to_dict(),
        "risk": None if outcome is None else {k: v for k, v in outcome.items() if k != "limits"},
        "counts": {
            "orders": int(len(orders)),
            "orders_by_status": {k: int(v) for k, v in orders["status"].value_counts().sort_index().items()},
            "new_orders": int(new_orders),
            "fills": int(len(fills)),
            "new_fills": int(new_fills),
            "filled_qty": int(fills["qty"].sum()),
            "notional": round(float((fills["qty"] * fills["price"]).sum()), 2),
            "commission": round(float(fills["commission"].sum()), 2),
        },
        "error": error,
        "environmental": bool(environmental),
        "orders_digest": frame_digest(orders, ORDER_IDENTITY + ORDER_STATE, "client_order_id"),
        "fills_digest": frame_digest(fills, FILL_DIGEST_COLUMNS, "fill_id"),
        "risk_decisions": int(len(risk_decisions)),
        "risk_decisions_digest": decisions_digest(risk_decisions),
        **record_digests(record["row"], record["snapshot_hash"], record["positions"], record["fallback_prices"],
                         record["events"]),
    }
    store.append_audit(run.run_id, EXECUTE_EVENT, payload)
    return _summary(record["row"], orders, fills)


def is_environmental(exc: BaseException) -> bool:
    """Did the machine, rather than the run's inputs, make an attempt fail (disk full, I/O error, out of memory)?

    Recorded in the failed attempt's audit event, so ``verify`` reports such a run as re-runnable instead of as a
    difference from its replay (which, on a healthy machine, does not fail).
    """
    machine = (OSError, MemoryError, duckdb.IOException, duckdb.OutOfMemoryException)
    return isinstance(exc, machine) or "No space left on device" in str(exc)


def _finish(store: Store, run: TradeRun, status: str, **fields) -> None:
    check_run_transition(run.run_id, "running", status)
    store.update_run(run.run_id, status=status, finished_at=utcnow(), **fields)
    store.release_lease(run.run_id)


@dataclass(frozen=True)
class _Options:
    """How :func:`execute_run` works: fill batch size, lease length and the crash-test hook (passed in by the entry
    points, never read from the environment here). Checked when built, so before anything is written."""

    fill_batch: int = DEFAULT_FILL_BATCH
    lease_seconds: float = DEFAULT_LEASE_SECONDS
    faults: Callable[[str], None] = no_faults

    def __post_init__(self):
        check_whole("fill_batch", self.fill_batch)
        check_number("lease_seconds", self.lease_seconds, inclusive=False)
        if not callable(self.faults):
            raise ValidationError(f"faults is {self.faults!r}; it must be a callable taking a crash point name")

    def lease_expiry(self) -> datetime:
        """Now plus ``lease_seconds``: how long this owner may go without a heartbeat."""
        return utcnow() + timedelta(seconds=self.lease_seconds)


@dataclass(frozen=True)
class _Attempt:
    """The attempt being executed: the run, the status it came from and its attempt number."""

    run: TradeRun
    previous: str
    number: int


@dataclass
class _Progress:
    """What an attempt has written so far (reported by its audit event, also when it fails)."""

    new_orders: int = 0
    new_fills: int = 0
    outcome: dict | None = None
    decisions: pd.DataFrame | None = None
    rejects: tuple | None = None  # orders risk rejected one by one and their events, committed with the first batch


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def owner_alive(lease: dict | None, run_id: str) -> bool:
    """Is the process that holds a run's lease still executing it?

    Same host: its pid must exist (this process counts only while it is inside :func:`execute_run` for that run)
    and the lease must not have expired. Another host: only the lease expiry can tell.
    """
    if lease is None:
        return False
    if lease["expires_at"] <= utcnow():
        return False
    if lease["owner_host"] == _HOST:
        if lease["owner_pid"] == os.getpid():
            return run_id in _EXECUTING
        return _pid_alive(int(lease["owner_pid"]))
    return True


def _take_over(store: Store, run: TradeRun, row: dict) -> None:
    """A run found ``running``: refuse if its owner is alive, else record it as abandoned (running -> failed)."""
    lease = store.get_lease(run.run_id)
    if owner_alive(lease, run.run_id):
        raise StoreBusy(
            f"run {run.run_id!r} is being executed by process {lease['owner_pid']} on {lease['owner_host']} "
            f"(lease until {lease['expires_at']:%Y-%m-%d %H:%M:%S} UTC); try again when it has finished"
        )
    who = "an unknown process" if lease is None else f"process {lease['owner_pid']} on {lease['owner_host']}"
    error = f"abandoned by {who} while running (attempt {row['attempts']}); taken over by process {os.getpid()}"
    _finish(store, run, "failed", error=error)
    _audit(store, run, attempt=int(row["attempts"]), previous="running", status="failed", outcome=None, error=error,
           new_orders=0, new_fills=0)


def execute_run(store: Store, run_id: str, *, provider: ExecutionProvider | None = None,
                fill_batch: int = DEFAULT_FILL_BATCH, lease_seconds: float = DEFAULT_LEASE_SECONDS,
                faults: Callable[[str], None] = no_faults) -> RunResult:
    """Execute (or re-execute) a stored run; see the module docstring for the steps and guarantees.

    The database file is held for the whole call (one :meth:`Store.session`), so two processes executing the same
    run are serialized: the second sees the first one's result and only re-checks it. ``fill_batch`` (orders per
    fill transaction), ``lease_seconds`` (heartbeat lease) and ``faults`` (the crash-test hook of
    :mod:`tradeloop.workflows.faults`) are checked before anything is written.
    """
    options = _Options(fill_batch, lease_seconds, faults)
    return _execute_run(store, run_id, provider, options)


def _execute_run(store: Store, run_id: str, provider: ExecutionProvider | None, options: _Options) -> RunResult:
    with store.single_threaded():
        _EXECUTING.add(run_id)
        try:
            return _execute(store, run_id, provider, options)
        finally:
            _EXECUTING.discard(run_id)


def _execute(store: Store, run_id: str, provider: ExecutionProvider | None, options: _Options) -> RunResult:
    run = load_run(store, run_id)
    snapshot = store.load_snapshot(run.snapshot_id)
    provider = provider or get_provider(run.provider)
    claimed = _claim(store, run, options)
    if claimed is None:
        run = load_run(store, run_id)
        return _recheck_terminal(store, run, snapshot, provider, run.attempts + 1)
    attempt = _Attempt(run, *claimed)
    progress = _Progress()
    try:
        summary, result = _work(store, attempt, snapshot, provider, options, progress)
    except Exception as exc:  # every failure ends the run as failed, with the detail recorded
        return _fail(store, attempt, provider, progress, exc)
    options.faults("before_finalize")
    provider.finalize(run, result)
    return summary


def _claim(store: Store, run: TradeRun, options: _Options) -> tuple[str, int] | None:
    """queued/failed (or abandoned running) -> running with this process's lease; ``(previous status, attempt)``,
    or None when the run is done or blocked already."""
    with store.transaction():
        row = store.get_run(run.run_id)  # re-read inside the transaction that writes
        if row["status"] in TERMINAL_RUN_STATUSES:
            return None
        if row["status"] == "running":
            _take_over(store, run, row)
            row = store.get_run(run.run_id)
        previous, attempt = row["status"], int(row["attempts"]) + 1
        check_run_transition(run.run_id, previous, "running")
        store.update_run(run.run_id, status="running", started_at=utcnow(), attempts=attempt, error=None)
        store.set_lease(run.run_id, os.getpid(), _HOST, options.lease_expiry())
    options.faults("after_claim")
    return previous, attempt


def _work(store: Store, attempt: _Attempt, snapshot: DecisionSnapshot, provider: ExecutionProvider,
          options: _Options, progress: _Progress) -> tuple[RunResult, FillResult | None]:
    """Orders, risk, then blocked or execution; returns the run's summary and the execution result (if any)."""
    run = attempt.run
    book = provider.prepare(run, snapshot)
    with store.transaction():
        progress.new_orders = store.insert_orders(orders_of(book))
        store.renew_lease(run.run_id, options.lease_expiry())
    options.faults("after_orders")
    check = provider.risk_check(run, book)
    progress.outcome, progress.decisions = check.reasons, check.decisions
    stored = store.orders(run.run_id)
    if len(check.blocked):
        return _block(store, attempt, stored, check.blocked, progress), None
    if check.rejected is not None and len(check.rejected):  # rejected one by one: the rest proceed
        progress.rejects = risk_rejections(stored, check.rejected)
        stored = stored.loc[~stored["client_order_id"].isin(progress.rejects[0]["client_order_id"]).to_numpy()]
    active = stored.loc[~stored["status"].isin(TERMINAL_ORDER_STATUSES).to_numpy()]
    active = with_market_data(active, snapshot)
    result = provider.execute(run, active, run.dry_run)
    if not run.dry_run:
        before = active.set_index("client_order_id")["status"]
        after = result.orders.set_index("client_order_id")["status"]
        check_order_history(before, after, result.events)
    return _commit_fills(store, attempt, result, options, progress), result


def _commit_fills(store: Store, attempt: _Attempt, result: FillResult, options: _Options,
                  progress: _Progress) -> RunResult:
    """Commit the execution in batches of complete orders; the last batch also commits ``done`` and the audit."""
    run = attempt.run
    batches = _fill_batches(result, options.fill_batch) if not run.dry_run else [None]
    for i, batch in enumerate(batches):
        last = i == len(batches) - 1
        with store.transaction():
            if i == 0 and progress.rejects is not None:
                store.update_orders(progress.rejects[0])
                store.insert_order_events(progress.rejects[1])
            if batch is not None:
                orders, fills, events = batch
                store.update_orders(orders)
                progress.new_fills += store.insert_fills(fills)
                store.insert_order_events(events)
                if i == 0:
                    options.faults("mid_fills")
            if last:
                _finish(store, run, "done", params=_params_with_outcome(run, progress.outcome))
                summary = _audit_attempt(store, attempt, "done", progress, error=None)
            else:
                store.renew_lease(run.run_id, options.lease_expiry())
        if not last and i == 0:
            options.faults("after_fill_batch")
    return summary


def _fail(store: Store, attempt: _Attempt, provider: ExecutionProvider, progress: _Progress,
          exc: Exception) -> RunResult:
    """The attempt raised: the run ends ``failed`` with the error in the run and its audit event."""
    run = attempt.run
    error = str(exc) if isinstance(exc, TradeloopError) else f"{type(exc).__name__}: {exc}"
    with store.transaction():
        _finish(store, run, "failed", error=error, params=_params_with_outcome(run, progress.outcome))
        summary = _audit_attempt(store, attempt, "failed", progress, error=error, environmental=is_environmental(exc))
    provider.finalize(run, None)  # release the provider's resources on failure too (once per attempt)
    return summary


def _audit_attempt(store: Store, attempt: _Attempt, status: str, progress: _Progress, *,
                   error: str | None, environmental: bool = False) -> RunResult:
    return _audit(store, attempt.run, attempt=attempt.number, previous=attempt.previous, status=status,
                  outcome=progress.outcome, error=error, new_orders=progress.new_orders,
                  new_fills=progress.new_fills, environmental=environmental, decisions=progress.decisions)


def _fill_batches(result: FillResult, size: int) -> list[tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]]:
    """Split an execution step into batches of ``size`` orders, each with its own fills and events, so that every
    committed batch is complete per order (state, fills and events of an order always commit together)."""
    orders = result.orders.reset_index(drop=True)
    if len(orders) == 0:
        return [(orders, result.fills, result.events)]
    part = pd.Series(np.arange(len(orders)) // size, index=orders["client_order_id"].to_numpy())
    fill_part = part.reindex(result.fills["client_order_id"]).to_numpy()
    event_part = part.reindex(result.events["client_order_id"]).to_numpy()
    return [
        (orders.loc[part.to_numpy() == k], result.fills.loc[fill_part == k], result.events.loc[event_part == k])
        for k in range(int(part.max()) + 1)
    ]


def _block(store: Store, attempt: _Attempt, stored: pd.DataFrame, blocked: pd.DataFrame,
           progress: _Progress) -> RunResult:
    """Risk blocked the run: blocked NEW orders become REJECTED with their codes; nothing is submitted."""
    rejects, events = risk_rejections(stored, blocked)
    run, outcome = attempt.run, progress.outcome
    with store.transaction():
        store.update_orders(rejects)
        store.insert_order_events(events)
        _finish(store, run, "blocked", params=_params_with_outcome(run, outcome),
                error=f"risk blocked {len(blocked)} order(s): {outcome['blocked_by_code']}")
        return _audit_attempt(store, attempt, "blocked", progress, error=None)


def _recheck_terminal(store, run, snapshot, provider, attempt) -> RunResult:
    """Re-running a done/blocked run: rebuild its orders (reused by id, nothing new), touch nothing, audit it."""
    book = provider.prepare(run, snapshot)
    check = provider.risk_check(run, book)
    with store.transaction():
        new_orders = store.insert_orders(orders_of(book))
        store.update_run(run.run_id, attempts=attempt)
        summary = _audit(store, run, attempt=attempt, previous=run.status, status=run.status, outcome=check.reasons,
                         error=None, new_orders=new_orders, new_fills=0, decisions=check.decisions)
    return summary


def run_snapshot(store: Store, snapshot: DecisionSnapshot, *, provider_instance: ExecutionProvider | None = None,
                 fill_batch: int = DEFAULT_FILL_BATCH, lease_seconds: float = DEFAULT_LEASE_SECONDS,
                 faults: Callable[[str], None] = no_faults, **kwargs) -> RunResult:
    """Create (or find) the run for ``snapshot`` and execute it: :func:`create_run` then :func:`execute_run`.

    ``kwargs`` are :func:`create_run`'s; ``provider_instance`` executes instead of the named provider.
    """
    options = _Options(fill_batch, lease_seconds, faults)  # checked before the snapshot or the run is written
    with store.single_threaded():  # one open of the file for both steps, each still its own commit
        run_id = _store_run(store, snapshot, faults=faults, **kwargs)
        return _execute_run(store, run_id, provider_instance, options)
