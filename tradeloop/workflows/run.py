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
batches of ``$TRADELOOP_FILL_BATCH`` orders (default: all in one); each batch holds complete orders (state, fills
and events), the last one also the run's final state and audit event.

Re-running a run repeats the same steps: orders are matched by client_order_id, terminal orders are not touched,
fills are keyed by ``{client_order_id}-{seq}``; a done or blocked run is only re-checked and audited.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import socket
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import duckdb
import numpy as np
import pandas as pd

from ..core.digest import EXECUTE_EVENT, FILL_DIGEST_COLUMNS, frame_digest
from ..core.engine import FillResult
from ..core.fsm import (
    TERMINAL_ORDER_STATUSES,
    TERMINAL_RUN_STATUSES,
    check_order_history,
    check_run_transition,
)
from ..core.snapshot import DecisionSnapshot
from ..core.tolerance import exceeds
from ..core.validate import validate_positions, validate_prices
from ..errors import StoreBusy, TradeloopError, ValidationError
from ..store.db import ORDER_IDENTITY, ORDER_STATE, Store, utcnow
from ..venue.providers import (
    ExecutionProvider,
    get_provider,
    orders_of,
    risk_rejections,
    with_market_data,
)
from .faults import crash_point
from .params import RunParams

__all__ = ["TradeRun", "RunResult", "create_run", "execute_run", "run_snapshot", "run_result", "RUN_ID_PATTERN"]

RUN_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
#: Orders per fill transaction (``$TRADELOOP_FILL_BATCH`` overrides it): large, so a normal run commits its
#: execution in one transaction; the crash tests lower it to kill a run between two committed batches.
DEFAULT_FILL_BATCH = 100_000
_HOST = socket.gethostname()
_EXECUTING: set[str] = set()  # run ids this process is executing right now (its own leases are live)


@dataclass(frozen=True, eq=False)
class TradeRun:
    """A run as providers see it: ids, parsed params and the inputs it was created with."""

    run_id: str
    snapshot_id: str
    provider: str
    dry_run: bool
    params: RunParams
    positions: pd.DataFrame | None = None
    fallback_prices: pd.DataFrame | None = None
    status: str = "queued"
    attempts: int = 0


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
) -> TradeRun:
    """Validate the inputs and store a queued run (idempotent: the same inputs give the same run id).

    The default run id is ``run-`` plus 16 hex digits of a hash over the snapshot id, params, provider, dry_run,
    positions and fallback prices, so creating the same run twice returns the existing one. Nothing is written when
    validation fails.

    Raises
    ------
    ValidationError
        Bad positions/fallback prices, weights beyond ``params.max_leverage``, an unknown provider, a held symbol
        without a sector when a sector cap is set, or a malformed ``run_id``.
    """
    with store.session():
        run_id = _store_run(store, snapshot, params=params, positions=positions, fallback_prices=fallback_prices,
                            provider=provider, dry_run=dry_run, run_id=run_id)
        return load_run(store, run_id)


def _store_run(store: Store, snapshot: DecisionSnapshot, *, params: RunParams | None = None,
               positions: pd.DataFrame | None = None, fallback_prices: pd.DataFrame | None = None,
               provider: str = "mock", dry_run: bool = False, run_id: str | None = None) -> str:
    """:func:`create_run` without reading the run back: validate, freeze and insert in one transaction."""
    params = params or RunParams()
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
    if run_id is None:
        key = "\n".join([snapshot.snapshot_id, params.canonical_json(), provider, str(bool(dry_run)),
                         _frame_text(positions), _frame_text(fallback_prices)])
        run_id = "run-" + hashlib.sha256(key.encode()).hexdigest()[:16]
    elif not isinstance(run_id, str) or not RUN_ID_PATTERN.fullmatch(run_id):
        raise ValidationError(
            f"run_id {run_id!r} is not allowed; use 1-64 letters, digits, '.', '_' or '-' starting with a letter "
            "or digit"
        )
    row = {"run_id": run_id, "snapshot_id": snapshot.snapshot_id, "provider": provider, "dry_run": bool(dry_run),
           "params": json.dumps(params.to_dict(), sort_keys=True)}
    with store.transaction():
        store.save_snapshot(snapshot)
        if not store.insert_run(row, positions, fallback_prices):
            existing = store.get_run(run_id)
            if existing["snapshot_id"] != snapshot.snapshot_id:
                raise ValidationError(f"run_id {run_id!r} exists already for snapshot {existing['snapshot_id']}")
    crash_point("after_freeze")
    return run_id


def load_run(store: Store, run_id: str) -> TradeRun:
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
           error: str | None, new_orders: int, new_fills: int) -> RunResult:
    """Append the ``trade_run.execute`` event (inside the caller's transaction) and return the run's summary, made
    from the same rows the event's digests cover, so the caller need not read them again."""
    orders = store.orders(run.run_id, fill_counts=False)
    fills = store.fills(run.run_id)
    payload = {
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
        "orders_digest": frame_digest(orders, ORDER_IDENTITY + ORDER_STATE, "client_order_id"),
        "fills_digest": frame_digest(fills, FILL_DIGEST_COLUMNS, "fill_id"),
    }
    store.append_audit(run.run_id, EXECUTE_EVENT, payload)
    return _summary(store.get_run(run.run_id), orders, fills)


def _finish(store: Store, run: TradeRun, status: str, **fields) -> None:
    check_run_transition(run.run_id, "running", status)
    store.update_run(run.run_id, status=status, finished_at=utcnow(), **fields)
    store.release_lease(run.run_id)


def _lease_expiry() -> datetime:
    """Now plus ``$TRADELOOP_LEASE_SECONDS`` (default 600): how long a run's owner may go without a heartbeat."""
    raw = os.environ.get("TRADELOOP_LEASE_SECONDS") or "600"
    try:
        seconds = float(raw)
    except ValueError:
        raise ValidationError(f"TRADELOOP_LEASE_SECONDS is {raw!r}; it must be a number of seconds > 0") from None
    if not (0 < seconds < float("inf")):
        raise ValidationError(f"TRADELOOP_LEASE_SECONDS is {raw!r}; it must be a number of seconds > 0")
    return utcnow() + timedelta(seconds=seconds)


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


def _fill_batch_size() -> int:
    raw = os.environ.get("TRADELOOP_FILL_BATCH") or str(DEFAULT_FILL_BATCH)
    if not raw.isdigit() or int(raw) < 1:
        raise ValidationError(f"TRADELOOP_FILL_BATCH is {raw!r}; it must be a whole number >= 1")
    return int(raw)


def execute_run(store: Store, run_id: str, *, provider: ExecutionProvider | None = None) -> RunResult:
    """Execute (or re-execute) a stored run; see the module docstring for the steps and guarantees.

    The database file is held for the whole call (one :meth:`Store.session`), so two processes executing the same
    run are serialized: the second sees the first one's result and only re-checks it.
    """
    with store.session() as con, _one_thread(con):
        _EXECUTING.add(run_id)
        try:
            return _execute(store, run_id, provider)
        finally:
            _EXECUTING.discard(run_id)


@contextmanager
def _one_thread(con):
    """Run DuckDB single-threaded for the block, then restore its setting.

    A run's statements touch a few thousand rows each: splitting them across threads costs more in coordination
    than it saves (about 7 % of a 3,000-symbol run on the 2-core benchmark machine). Bulk work elsewhere
    (simulations) keeps every thread.
    """
    threads = con.execute("SELECT current_setting('threads')").fetchall()[0][0]
    if int(threads) == 1:
        yield
        return
    con.execute("SET threads = 1")
    try:
        yield
    finally:
        try:
            con.execute(f"SET threads = {int(threads)}")
        except duckdb.Error:  # a broken connection: keep the error that broke it
            pass


def _execute(store: Store, run_id: str, provider: ExecutionProvider | None) -> RunResult:
    batch_size = _fill_batch_size()  # settings are checked before anything is written
    _lease_expiry()
    run = load_run(store, run_id)
    snapshot = store.load_snapshot(run.snapshot_id)
    provider = provider or get_provider(run.provider)
    with store.transaction():
        row = store.get_run(run_id)  # re-read inside the transaction that writes
        if row["status"] in TERMINAL_RUN_STATUSES:
            terminal = True
        else:
            terminal = False
            if row["status"] == "running":
                _take_over(store, run, row)
                row = store.get_run(run_id)
            previous = row["status"]
            attempt = int(row["attempts"]) + 1
            check_run_transition(run_id, previous, "running")
            store.update_run(run_id, status="running", started_at=utcnow(), attempts=attempt, error=None)
            store.set_lease(run_id, os.getpid(), _HOST, _lease_expiry())
    if terminal:
        return _recheck_terminal(store, load_run(store, run_id), snapshot, provider, int(row["attempts"]) + 1)
    crash_point("after_claim")
    outcome = None
    new_orders = new_fills = 0
    result: FillResult | None = None
    try:
        book = provider.prepare(run, snapshot)
        with store.transaction():
            new_orders = store.insert_orders(orders_of(book))
            store.renew_lease(run_id, _lease_expiry())
        crash_point("after_orders")
        passed, blocked, outcome = provider.risk_check(run, book)
        stored = store.orders(run_id)
        if len(blocked):
            summary = _block(store, run, stored, blocked, outcome, attempt, previous, new_orders)
            crash_point("before_finalize")
            provider.finalize(run, None)
            return summary
        active = stored.loc[~stored["status"].isin(TERMINAL_ORDER_STATUSES).to_numpy()]
        active = with_market_data(active, snapshot)
        result = provider.execute(run, active, run.dry_run)
        if not run.dry_run:
            before = active.set_index("client_order_id")["status"]
            after = result.orders.set_index("client_order_id")["status"]
            check_order_history(before, after, result.events)
        batches = _fill_batches(result, batch_size) if not run.dry_run else [None]
        for i, batch in enumerate(batches):
            last = i == len(batches) - 1
            with store.transaction():
                if batch is not None:
                    orders, fills, events = batch
                    store.update_orders(orders)
                    new_fills += store.insert_fills(fills)
                    store.insert_order_events(events)
                    if i == 0:
                        crash_point("mid_fills")
                if last:
                    _finish(store, run, "done", params=_params_with_outcome(run, outcome))
                    summary = _audit(store, run, attempt=attempt, previous=previous, status="done",
                                     outcome=outcome, error=None, new_orders=new_orders, new_fills=new_fills)
                else:
                    store.renew_lease(run_id, _lease_expiry())
            if not last and i == 0:
                crash_point("after_fill_batch")
    except Exception as exc:  # every failure ends the run as failed, with the detail recorded
        error = str(exc) if isinstance(exc, TradeloopError) else f"{type(exc).__name__}: {exc}"
        with store.transaction():
            _finish(store, run, "failed", error=error, params=_params_with_outcome(run, outcome))
            summary = _audit(store, run, attempt=attempt, previous=previous, status="failed", outcome=outcome,
                             error=error, new_orders=new_orders, new_fills=new_fills)
        provider.finalize(run, None)  # release the provider's resources on failure too (issue 6: once per attempt)
        return summary
    crash_point("before_finalize")
    provider.finalize(run, result)
    return summary


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


def _block(store, run, stored, blocked, outcome, attempt, previous, new_orders) -> RunResult:
    """Risk blocked the run: blocked NEW orders become REJECTED with their codes; nothing is submitted."""
    rejects, events = risk_rejections(stored, blocked)
    with store.transaction():
        store.update_orders(rejects)
        store.insert_order_events(events)
        _finish(store, run, "blocked", params=_params_with_outcome(run, outcome),
                error=f"risk blocked {len(blocked)} order(s): {outcome['blocked_by_code']}")
        return _audit(store, run, attempt=attempt, previous=previous, status="blocked", outcome=outcome,
                      error=None, new_orders=new_orders, new_fills=0)


def _recheck_terminal(store, run, snapshot, provider, attempt) -> RunResult:
    """Re-running a done/blocked run: rebuild its orders (reused by id, nothing new), touch nothing, audit it."""
    book = provider.prepare(run, snapshot)
    outcome = provider.risk_check(run, book).reasons
    with store.transaction():
        new_orders = store.insert_orders(orders_of(book))
        store.update_run(run.run_id, attempts=attempt)
        summary = _audit(store, run, attempt=attempt, previous=run.status, status=run.status, outcome=outcome,
                         error=None, new_orders=new_orders, new_fills=0)
    return summary


def run_snapshot(store: Store, snapshot: DecisionSnapshot, **kwargs) -> RunResult:
    """Create (or find) the run for ``snapshot`` and execute it: :func:`create_run` then :func:`execute_run`."""
    provider = kwargs.pop("provider_instance", None)
    with store.session() as con, _one_thread(con):  # one open of the file for both steps, each still its own commit
        run_id = _store_run(store, snapshot, **kwargs)
        return execute_run(store, run_id, provider=provider)
