"""Verification: recompute the audit hash chain and replay runs in memory, then list every difference.

A run's record is trusted only when three independent things agree:

1. **The chain.** Every audit event's hash covers its content and its predecessor's hash (:func:`verify_chain`), so
   an edited, deleted, inserted or reordered event breaks it.
2. **The replay.** The run is re-derived from its frozen snapshot (checked against its content hash) and its stored
   params, positions and fallback prices with the run's provider on a fresh in-memory state: ``prepare`` (orders),
   ``risk_check`` (risk outcome), then ``execute`` (fills, order states, order events). The result is diffed
   against the stored ``trade_orders``, ``trade_fills``, ``order_events`` and the run's status and risk outcome.
3. **The audit record.** The run's last ``trade_run.execute`` event must name the run's snapshot, status and risk
   params, and its ``orders_digest``/``fills_digest`` must match the stored rows.

A run that did not finish (``queued``, ``running``, or ``failed`` because its process died) is checked as a prefix
of its replay: whatever was committed must agree with the replay, orders not yet worked must be untouched.

A simulation is checked against its ``simulation.save`` audit event (:func:`verify_simulation`): the digests of
its orders, runs and multi-step fills rows, and the counts of its ``simulations`` row.

:func:`audit_check` (the review notebook's check of one run against its last ``trade_run.execute`` event) and the
audit part of :func:`verify_run` are one comparison, :func:`execute_record_problems`.

Nothing is written: verification reads the database (a read-only :class:`~tradeloop.store.db.Store` is enough).
"""

from __future__ import annotations

import json
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..core.digest import (
    DECISIONS_SINCE,
    DIGEST_PREFIX,
    EXECUTE_EVENT,
    FILL_DIGEST_COLUMNS,
    RECORD_KEYS,
    decisions_digest,
    frame_digest,
    payload_version,
    record_digests,
    verify_chain,
)
from ..errors import TradeloopError, ValidationError
from ..store.artifacts import artifact_problems
from ..store.db import ORDER_IDENTITY, ORDER_STATE, Store
from ..store.simulations import DIGESTS, LATER_DIGESTS, SIM_EVENT, legacy_orders_digest, simulation_digests
from ..venue.providers import get_provider, orders_of, risk_rejections, with_market_data

__all__ = ["Replay", "Verification", "replay_run", "verify_run", "verify_simulation", "verify_store", "audit_check",
           "execute_record_problems", "integrity_problems", "chain_head", "anchor_problems", "read_anchor",
           "write_anchor"]

_FILL_COLUMNS = ("fill_id", "run_id", "client_order_id", "seq", "qty", "price", "commission")
_EVENT_COLUMNS = ("from_status", "to_status", "qty", "price", "reason")
_UNFINISHED = ("queued", "running")
#: What an execute event records under ``counts`` (the rest of what is compared is at its top level).
_COUNTED = ("orders", "orders_by_status", "fills", "filled_qty", "notional", "commission")
#: Recorded errors (execute events before ``environmental`` was recorded) that came from the machine.
_MACHINE_ERROR = re.compile(r"^(IOException|OSError|OutOfMemoryException|MemoryError)\b|No space left on device")
#: What each recorded part of a version 2 execute event covers, for the difference's sentence.
_RECORD_WHAT = {
    "params_digest": "the stored params (trade_runs.params)",
    "snapshot_hash": "the stored snapshot's content hash",
    "positions_digest": "the stored positions (run_positions rows)",
    "fallback_prices_digest": "the stored fallback prices (run_fallback_prices rows)",
    "events_digest": "the stored order events (order_events rows)",
}


@dataclass(frozen=True)
class Replay:
    """What a run should have stored, re-derived in memory.

    ``orders`` has the columns of ``trade_orders`` that the loop writes (identity and state), ``fills`` the
    ``trade_fills`` columns without ``filled_at``, ``events`` ``client_order_id`` plus the ``order_events`` columns
    ``from_status, to_status, qty, price, reason`` in the order they happen; ``outcome`` is the risk record stored
    as ``params.risk.outcome``.
    """

    run_id: str
    status: str
    orders: pd.DataFrame
    fills: pd.DataFrame
    events: pd.DataFrame
    outcome: dict | None
    error: str | None = None


@dataclass(frozen=True)
class Verification:
    """The result of :func:`verify_store`: ``ok`` only when there is no difference at all."""

    runs: tuple[str, ...]
    audit_events: int
    differences: tuple[str, ...] = ()
    notes: tuple[str, ...] = field(default_factory=tuple)
    simulations: tuple[str, ...] = ()
    head: dict | None = None  #: the chain's last event (seq, event_hash): what ``--anchor`` writes

    @property
    def ok(self) -> bool:
        return not self.differences

    def to_dict(self) -> dict:
        return {"ok": self.ok, "runs": list(self.runs), "simulations": list(self.simulations),
                "audit_events": self.audit_events, "differences": list(self.differences), "notes": list(self.notes)}


def _new_orders(orders: pd.DataFrame) -> pd.DataFrame:
    return orders.assign(status="NEW", filled_qty=0, avg_fill_price=np.nan, reject_reason=None, n_fills=0)


def replay_run(store: Store, run_id: str) -> Replay:
    """Re-derive a run from its frozen snapshot and stored inputs, in memory (the store is only read).

    Raises
    ------
    TradeloopError
        The snapshot was modified after freezing, or the run's provider is unknown.
    """
    from .run import (
        load_run,  # runs imports store; import here to keep module loading one-way
    )

    run = load_run(store, run_id)
    snapshot = store.load_snapshot(run.snapshot_id)
    provider = get_provider(run.provider)
    book = provider.prepare(run, snapshot)
    orders = _new_orders(orders_of(book))
    check = provider.risk_check(run, book)
    outcome = {k: v for k, v in check.reasons.items() if k != "limits"}
    no_fills = pd.DataFrame({c: pd.Series(dtype=object) for c in _FILL_COLUMNS})
    no_events = pd.DataFrame({c: pd.Series(dtype=object) for c in ("client_order_id",) + _EVENT_COLUMNS})
    if len(check.blocked):
        rejects, events = risk_rejections(orders, check.blocked)
        orders.loc[rejects.index, ["status", "reject_reason"]] = rejects[["status", "reject_reason"]]
        return Replay(run_id, "blocked", orders, no_fills, events, outcome)
    working, rejected, rejected_events = orders, orders.iloc[:0], no_events
    if check.rejected is not None and len(check.rejected):  # risk rejected these one by one; the rest executed
        rejected, rejected_events = risk_rejections(orders, check.rejected)
        rejected_events = rejected_events.assign(step=None).loc[:, ["client_order_id", "step", *_EVENT_COLUMNS]]
        working = orders.drop(index=rejected.index)
    if run.dry_run:
        return Replay(run_id, "done", _with_rejected(orders, rejected), no_fills, rejected_events, outcome)
    try:
        result = provider.execute(run, with_market_data(working, snapshot), False)
    except Exception as exc:  # the stored run must have failed the same way
        error = str(exc) if isinstance(exc, TradeloopError) else f"{type(exc).__name__}: {exc}"
        return Replay(run_id, "failed", orders, no_fills, no_events, outcome, error)
    events = result.events.loc[:, ["client_order_id", "step", *_EVENT_COLUMNS]]
    if len(rejected):
        events = pd.concat([rejected_events, events], ignore_index=True)
    return Replay(run_id, "done", pd.concat([rejected, result.orders]) if len(rejected) else result.orders,
                  result.fills.loc[:, list(_FILL_COLUMNS)], events, outcome)


def _with_rejected(orders: pd.DataFrame, rejected: pd.DataFrame) -> pd.DataFrame:
    if len(rejected):
        orders = orders.copy()
        orders.loc[rejected.index, ["status", "reject_reason"]] = rejected[["status", "reject_reason"]]
    return orders


def _cell(value):
    """Comparable, printable form of one cell: None for any missing value, Python scalars otherwise."""
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def _diff_rows(kind: str, key: str, stored: pd.DataFrame, expected: pd.DataFrame, columns, *,
               allow_missing: bool = False, allow_initial=None) -> list[str]:
    """Differences between stored rows and replayed rows, matched by ``key``; one sentence per difference."""
    out: list[str] = []
    s = stored.set_index(key)
    e = expected.set_index(key)
    missing = e.index.difference(s.index)
    extra = s.index.difference(e.index)
    if len(missing) and not (allow_missing and len(missing) == len(e)):
        for k in missing:
            out.append(f"{kind} {k} is missing from the database (the replay produces it)")
    for k in extra:
        out.append(f"{kind} {k} is in the database but the replay does not produce it")
    common = s.index.intersection(e.index, sort=False)
    if not len(common):
        return out
    a = s.loc[common, list(columns)]
    b = e.loc[common, list(columns)]
    for col in columns:
        av = a[col].map(_cell)
        bv = b[col].map(_cell)
        same = (av == bv) | (av.isna() & bv.isna())
        for k in common[~same.to_numpy()]:
            if allow_initial is not None and allow_initial(s.loc[k]):
                continue
            out.append(f"{kind} {k}: {col} is {_cell(av[k])!r} in the database, the replay gives {_cell(bv[k])!r}")
    return out


def _event_lists(events: pd.DataFrame) -> dict[str, list[tuple]]:
    rows = events.loc[:, ["client_order_id", *_EVENT_COLUMNS]].astype(object)
    return {coid: [tuple(map(_cell, r)) for r in grp.loc[:, list(_EVENT_COLUMNS)].itertuples(index=False, name=None)]
            for coid, grp in rows.groupby("client_order_id", sort=True)}


def verify_run(store: Store, run_id: str, events: pd.DataFrame | None = None) -> tuple[list[str], list[str]]:
    """Replay one run and compare it with the database; returns (differences, notes), both lists of sentences."""
    row = store.get_run(run_id)
    status = row["status"]
    notes: list[str] = []
    try:
        replay = replay_run(store, run_id)
    except TradeloopError as e:
        return [f"run {run_id}: cannot be replayed: {e}"], notes
    orders = store.orders(run_id)
    fills = store.fills(run_id)
    stored_events = store.order_events(run_id)
    diffs: list[str] = []
    own = store.audit_events(run_id) if events is None else events.loc[events["run_id"] == run_id]
    machine = status == "failed" and replay.status != "failed" and _environmental_failure(own)
    unfinished = status in _UNFINISHED or machine or (
        status == "failed" and replay.status != "failed" and str(row["error"] or "").startswith("abandoned")
    )
    if machine:
        notes.append(f"run {run_id} failed for an environmental reason ({row['error']}), not because of its inputs: "
                     f"not a difference; its committed part is checked against the replay; re-run it with "
                     f"`tradeloop rerun {run_id}`")
    elif unfinished:
        notes.append(f"run {run_id} is {status} (not finished): its committed part is checked against the replay")
    elif status != replay.status:
        diffs.append(f"run {run_id}: status is {status!r} in the database, the replay gives {replay.status!r}")
    elif status == "failed" and (row["error"] or "") != (replay.error or ""):
        diffs.append(f"run {run_id}: error is {row['error']!r} in the database, the replay gives {replay.error!r}")
    stored_outcome = (json.loads(row["params"]).get("risk") or {}).get("outcome")
    if stored_outcome is not None and json.dumps(stored_outcome, sort_keys=True) != json.dumps(
            json.loads(json.dumps(replay.outcome)), sort_keys=True):
        diffs.append(f"run {run_id}: the stored risk outcome differs from the replay's "
                     f"(database blocked {stored_outcome.get('orders_blocked')}, "
                     f"replay blocked {replay.outcome.get('orders_blocked')})")

    def untouched(order_row) -> bool:  # an order a dead run had not worked yet
        return unfinished and order_row["status"] == "NEW" and int(order_row["filled_qty"]) == 0

    order_cols = [c for c in ORDER_IDENTITY + ORDER_STATE if c != "client_order_id"]
    diffs += [f"run {run_id}: {d}" for d in _diff_rows(
        "order", "client_order_id", orders, replay.orders, order_cols, allow_missing=unfinished,
        allow_initial=untouched)]
    fill_cols = [c for c in _FILL_COLUMNS if c != "fill_id"]
    if unfinished:  # fills are expected only for orders the dead run had worked
        worked = orders.loc[~((orders["status"] == "NEW") & (orders["filled_qty"] == 0)).to_numpy(), "client_order_id"]
        known = replay.fills["client_order_id"].isin(worked).to_numpy()
    else:
        known = np.ones(len(replay.fills), dtype=bool)
    diffs += [f"run {run_id}: {d}" for d in _diff_rows("fill", "fill_id", fills, replay.fills.loc[known], fill_cols)]
    # Every order's filled quantity is the sum of its fills (whatever the replay says).
    summed = fills.groupby("client_order_id")["qty"].sum()
    have = orders.set_index("client_order_id")["filled_qty"]
    bad = have.index[have.to_numpy() != summed.reindex(have.index).fillna(0).to_numpy()]
    diffs += [f"run {run_id}: order {k}: filled_qty {int(have[k])} != sum of its fills "
              f"{int(summed.get(k, 0))}" for k in bad]
    orphans = sorted(set(fills["client_order_id"]) - set(orders["client_order_id"]))
    diffs += [f"run {run_id}: fills of order {k} exist but the order does not" for k in orphans]
    # Order events: the same transitions, in the same order.
    stored_ev, replay_ev = _event_lists(stored_events), _event_lists(replay.events)
    for coid in sorted(set(stored_ev) | set(replay_ev)):
        got, want = stored_ev.get(coid, []), replay_ev.get(coid, [])
        if got != want and not (unfinished and not got):
            diffs.append(f"run {run_id}: order events of {coid} are {[e[:2] for e in got]} in the database, the "
                         f"replay gives {[e[:2] for e in want]}" if [e[:2] for e in got] != [e[:2] for e in want]
                         else f"run {run_id}: order events of {coid} differ in qty/price/reason: {got} vs {want}")
    diffs += _step_problems(run_id, stored_events, replay.events, unfinished)
    diffs += _check_audit(store, row, orders, fills, own, unfinished)
    return diffs, notes


def _environmental_failure(events: pd.DataFrame) -> bool:
    """Did the run's last attempt fail because of the machine? Read from its last execute event (hash-chained),
    never from ``trade_runs``; events written before the flag existed are judged by their recorded error."""
    execute = events.loc[events["event_type"] == EXECUTE_EVENT]
    if execute.empty:
        return False
    try:
        last = json.loads(execute.sort_values("seq").iloc[-1]["payload"])
    except (TypeError, ValueError):
        return False
    if last.get("status") != "failed":
        return False
    if "environmental" in last:
        return bool(last["environmental"])
    return bool(_MACHINE_ERROR.search(str(last.get("error") or "")))


def _step_problems(run_id: str, stored: pd.DataFrame, replayed: pd.DataFrame, unfinished: bool) -> list[str]:
    """The execution step of each order event must be the replay's (rows written before schema v5 have none)."""
    if "step" not in stored or stored["step"].isna().all():
        return []
    want = replayed if "step" in replayed else replayed.assign(step=None)
    got = {k: [_cell(v) for v in g["step"]] for k, g in stored.groupby("client_order_id", sort=True)}
    exp = {k: [_cell(v) for v in g["step"]] for k, g in want.groupby("client_order_id", sort=True)}
    out = []
    for coid in sorted(set(got) & set(exp)):
        if got[coid] != exp[coid] and len(got[coid]) == len(exp[coid]):
            out.append(f"run {run_id}: order events of {coid}: step is {got[coid]} in the database, the replay gives "
                       f"{exp[coid]}")
    return out


def _check_audit(store: Store, row: dict, orders: pd.DataFrame, fills: pd.DataFrame, events, unfinished) -> list[str]:
    run_id = row["run_id"]
    events = store.audit_events(run_id) if events is None else events.loc[events["run_id"] == run_id]
    if not (events["event_type"] == EXECUTE_EVENT).any():
        return [] if row["status"] in _UNFINISHED else [f"run {run_id}: is {row['status']} but has no audit event"]
    if unfinished and row["status"] != "failed":
        return []  # a run that died after an earlier attempt: its rows moved on since that event
    record = store.run_record(run_id)
    return [f"run {run_id}: {p}" for p in execute_record_problems(row, orders, fills, events, attempts=False,
                                                                   record=record)]


def execute_record_problems(row: dict, orders: pd.DataFrame, fills: pd.DataFrame, events: pd.DataFrame, *,
                            attempts: bool = True, record: dict | None = None) -> list[str]:
    """Compare a run's stored rows with its latest ``trade_run.execute`` audit event; one sentence per difference.

    Checks the snapshot, status, risk params, the number of orders and their statuses, fills, filled quantity,
    notional, commission and the digests of the order and fill rows, and (``attempts``) that every attempt was
    audited. ``orders`` and ``fills`` are the run's rows as :class:`~tradeloop.store.db.Store` reads them,
    ``events`` its audit events. An event of payload version 2 also records the run's provider, dry run flag,
    attempt and error and the digests of its whole stored input and history, compared with ``record``
    (:meth:`~tradeloop.store.db.Store.run_record`) when given.
    """
    run_id = row["run_id"]
    events = events.loc[events["event_type"] == EXECUTE_EVENT]
    if events.empty:
        return [f"run {run_id} has no {EXECUTE_EVENT} audit event"]
    try:
        last = json.loads(events.sort_values("seq").iloc[-1]["payload"])
    except (TypeError, ValueError):
        return [f"its last {EXECUTE_EVENT} audit event's payload is not JSON"]
    counts = last.get("counts") or {}
    actual = {
        "snapshot_id": row["snapshot_id"], "status": row["status"],
        "risk_params": {k: v for k, v in (json.loads(row["params"]).get("risk") or {}).items() if k != "outcome"},
        "orders": int(len(orders)),
        "orders_by_status": {k: int(v) for k, v in orders["status"].value_counts().sort_index().items()},
        "fills": int(len(fills)),
        "filled_qty": int(fills["qty"].sum()),
        "notional": round(float((fills["qty"] * fills["price"]).sum()), 2),
        "commission": round(float(fills["commission"].sum()), 2),
        "orders_digest": frame_digest(orders, ORDER_IDENTITY + ORDER_STATE, "client_order_id",
                                      like=last.get("orders_digest")),
        "fills_digest": frame_digest(fills, FILL_DIGEST_COLUMNS, "fill_id", like=last.get("fills_digest")),
    }
    recorded = {k: counts.get(k) if k in _COUNTED else last.get(k) for k in actual}
    problems = []
    for key, value in actual.items():
        if value == recorded[key]:
            continue
        if key.endswith("_digest"):
            what = "orders" if key == "orders_digest" else "fills"
            problems.append(f"{key}: its last audit event (attempt {last.get('attempt')}) does not match the stored "
                            f"{what}")
        else:
            problems.append(f"{key}: database has {value!r}, audit record has {recorded[key]!r}")
    for key in ("provider", "dry_run"):
        if key in last and row[key] != last[key]:
            problems.append(f"{key}: database has {row[key]!r}, audit record has {last[key]!r}")
    if payload_version(last) >= 2:
        problems += _record_problems(row, last, record)
    if payload_version(last) >= DECISIONS_SINCE and record is not None:
        problems += _decision_problems(last, record["risk_decisions"])
    if attempts and int(row["attempts"]) != len(events):
        problems.append(f"attempts: run has {row['attempts']} attempt(s) but {len(events)} audit event(s)")
    return problems


def _record_problems(row: dict, last: dict, record: dict | None) -> list[str]:
    """The parts of a version 2 execute event beyond orders and fills: attempt, error and the run's stored input."""
    problems = []
    if int(row["attempts"]) != last.get("attempt"):
        problems.append(f"attempts: database has {row['attempts']!r}, its last audit event is attempt "
                        f"{last.get('attempt')!r}")
    if record is None:
        return problems
    now = record_digests(record["row"], record["snapshot_hash"], record["positions"], record["fallback_prices"],
                         record["events"])
    for key in RECORD_KEYS:
        if now[key] == last.get(key):
            continue
        if key == "run_error":
            problems.append(f"error: database has {now[key]!r}, audit record has {last.get(key)!r}")
        else:
            problems.append(f"{key}: its last audit event (attempt {last.get('attempt')}) does not match "
                            f"{_RECORD_WHAT[key]}")
    return problems


def _decision_problems(last: dict, decisions: pd.DataFrame) -> list[str]:
    """The run's stored risk decisions against its last execute event (version 3 on): an edited, added or deleted
    ``risk_decisions`` row is a difference."""
    if decisions_digest(decisions) == last.get("risk_decisions_digest"):
        return []
    return [f"risk_decisions: its last audit event (attempt {last.get('attempt')}) does not match the stored risk "
            f"decisions (database has {len(decisions)} row(s), audit record has {last.get('risk_decisions')!r})"]


def audit_check(db_path: str | Path | None, run_id: str) -> list[str]:
    """Compare a run's stored execution results with its latest ``trade_run.execute`` audit record.

    The review notebook's check (read-only; ``db_path`` None means the default database): see
    :func:`execute_record_problems`, which :func:`verify_store` runs too. Returns one sentence per difference; an
    empty list means the results match the audit record.
    """
    from ..settings import default_db_path  # the notebook's boundary ($TRADELOOP_DB); settings imports workflows

    with Store(db_path or default_db_path(), read_only=True) as store, store.session():
        row = store.get_run(run_id)
        orders = store.orders(run_id)
        fills = store.fills(run_id)
        events = store.audit_events(run_id)
        record = store.run_record(run_id)
    return execute_record_problems(row, orders, fills, events, record=record)


def verify_simulation(store: Store, simulation_id: str, events: pd.DataFrame | None = None) -> tuple[list[str], list[str]]:
    """Check a stored simulation against its ``simulation.save`` audit event; returns (differences, notes).

    Every table the event digests (orders, runs, multi-step fills) must give the same digest from the rows stored
    now, and the ``simulations`` row must repeat the event's inputs digest and counts. A difference names the
    table, how many rows it has and how many the event recorded (so an added or deleted row shows as such).
    """
    sid = simulation_id
    row = store.get_simulation(sid)
    events = store.audit_events(sid) if events is None else events.loc[events["run_id"] == sid]
    saves = events.loc[events["event_type"] == SIM_EVENT]
    if row is None:
        return [f"simulation {sid}: its {SIM_EVENT} audit event names a simulation not in simulations"], []
    if saves.empty:
        return [f"simulation {sid}: has no {SIM_EVENT} audit event"], []
    try:
        saved = json.loads(saves.sort_values("seq").iloc[-1]["payload"])
    except (TypeError, ValueError):
        return [f"simulation {sid}: its {SIM_EVENT} audit event's payload is not JSON"], []
    tables = store.simulation_tables(sid)
    diffs, notes = [], []
    recorded = saved.get("orders_digest")
    if isinstance(recorded, str) and not recorded.startswith(DIGEST_PREFIX):
        notes.append(f"simulation {sid} was saved before its runs and fills were digested: its orders are checked "
                     "against the digest of that time")
        now = {"orders_digest": legacy_orders_digest(tables["simulation_orders"])}
    else:
        now = simulation_digests(tables)
    for table, (key, count, _, _) in DIGESTS.items():
        if key in LATER_DIGESTS and key not in saved and tables[table].num_rows == 0:
            continue  # saved before this table existed: nothing of it to check
        if key in now and now[key] != saved.get(key):
            n, was = tables[table].num_rows, saved.get(count)
            how = ("the same number: a row was edited" if n == was else "rows were added" if was is not None and
                   n > was else "rows were deleted" if was is not None else "its rows differ")
            diffs.append(f"simulation {sid}: {table} does not match its {SIM_EVENT} audit event ({n} row(s) stored, "
                         f"the event records {was}: {how})")
    for column, key in (("inputs_digest", "inputs_digest"), ("n_orders", "orders"), ("n_fills", "fills"),
                        ("n_blocked", "blocked"), ("orders_digest", "orders_digest")):
        if row[column] != saved.get(key):
            diffs.append(f"simulation {sid}: simulations.{column} is {row[column]!r}, its {SIM_EVENT} audit event "
                         f"records {saved.get(key)!r}")
    return diffs, notes


def verify_store(store: Store, run_ids=None, *, expect_anchor: dict | None = None) -> Verification:
    """Verify the whole audit chain, then replay ``run_ids`` (default: every run) and diff each against the store,
    and check every stored simulation (or those named in ``run_ids``) against its audit event.

    Parameters
    ----------
    expect_anchor : dict, optional
        A chain head written earlier (:func:`read_anchor`): the chain must still contain that event unchanged, so
        events deleted from the end of the chain since then are found (:func:`anchor_problems`).

    Returns
    -------
    Verification
        ``differences``: one readable sentence per disagreement (chain breaks, missing/extra/changed orders, fills
        and order events, status, risk outcome, audit digests, simulation rows, rows no workflow leaves behind, an
        anchor the chain no longer extends); empty when everything agrees. ``head``: the chain's last event.
    """
    with store.session():
        events = store.audit_events()
        diffs = [f"audit chain: {p}" for p in verify_chain(events)]
        if expect_anchor is not None:
            diffs += anchor_problems(events, expect_anchor)
        diffs += integrity_problems(store.integrity())
        known = set(store.runs()["run_id"])
        sims = store.simulation_ids()
        diffs += [f"audit events name run {r}, which is not in trade_runs (nor in simulations)"
                  for r in sorted(set(events["run_id"].dropna()) - known - set(sims))]
        if run_ids is None:
            run_ids = sorted(known)
        else:
            sims = [r for r in run_ids if r in set(sims) and r not in known]
            run_ids = [r for r in run_ids if r not in sims]
            for r in run_ids:
                store.get_run(r)  # RunNotFound names it
        notes: list[str] = []
        for run_id in run_ids:
            d, n = verify_run(store, run_id, events)
            diffs += d
            notes += n
        for sid in sims:
            d, n = verify_simulation(store, sid, events)
            diffs += d
            notes += n
        d, n = artifact_problems(store)  # each run_artifacts row against its binding audit event
        diffs += d
        notes += n
    return Verification(tuple(run_ids), len(events), tuple(diffs), tuple(notes), tuple(sims), chain_head(events))


def integrity_problems(found: dict[str, list[tuple]]) -> list[str]:
    """Sentences for :meth:`~tradeloop.store.db.Store.integrity`'s findings: rows no tradeloop workflow leaves."""
    out = [f"snapshot_weights has {n} row(s) of snapshot {sid}, which is not in decision_snapshots"
           for sid, n in found["weights_without_snapshot"]]
    out += [f"snapshot {sid} is stored but no run uses it (a snapshot is stored only together with its run)"
            for (sid,) in found["unused_snapshots"]]
    out += [f"snapshot {sid}: n_symbols is {n!r} in decision_snapshots, it has {rows} weight row(s)"
            for sid, n, rows in found["n_symbols"]]
    out += [f"{table} has {n} row(s) of run {rid}, which is not in trade_runs"
            for table, rid, n in found["rows_without_run"]]
    out += [f"run_leases has {n} lease(s) for run {rid}, which is {status or 'not stored'}"
            + (" (only a running run holds a lease, one at a time)" if status == "running" else
               " (only a running run holds a lease)")
            for rid, status, n in found["stray_leases"]]
    return out


def chain_head(events: pd.DataFrame) -> dict | None:
    """The last event of the audit chain as an anchor: ``{"seq": …, "event_hash": …}`` (None for an empty chain)."""
    if events.empty:
        return None
    last = events.sort_values("seq").iloc[-1]
    return {"seq": int(last["seq"]), "event_hash": str(last["event_hash"])}


def anchor_problems(events: pd.DataFrame, anchor: dict) -> list[str]:
    """Does the chain still extend ``anchor`` (an earlier :func:`chain_head`)? One sentence when it does not.

    The anchored event must still be in the chain with the same hash. An event hash covers its predecessor's, so
    with the chain intact up to it (checked by :func:`verify_chain`) every event before it is pinned too; events
    deleted from the end of the chain, or the chain rewritten from an earlier point, no longer contain it.
    """
    seq, want = int(anchor["seq"]), anchor["event_hash"]
    match = events.loc[events["seq"] == seq, "event_hash"]
    if match.empty:
        last = int(events["seq"].max()) if len(events) else 0
        return [f"audit chain: it ends at seq {last}, before the anchor's event (seq {seq}, hash {want[:12]}…): "
                "events were deleted from its end"]
    if match.iloc[0] != want:
        return [f"audit chain: event seq {seq} has hash {str(match.iloc[0])[:12]}…, the anchor says {want[:12]}…: "
                "the chain was rewritten or cut and re-grown since the anchor was written"]
    return []


def read_anchor(path) -> dict:
    """Read an anchor file written by :func:`write_anchor`; :class:`ValidationError` naming it when malformed."""
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except FileNotFoundError:
        raise ValidationError(f"anchor file {str(path)!r} does not exist") from None
    except (OSError, ValueError) as e:
        raise ValidationError(f"anchor file {str(path)!r} is not an anchor written by tradeloop verify: {e}") from None
    seq, digest = (data.get("seq"), data.get("event_hash")) if isinstance(data, dict) else (None, None)
    if not (isinstance(seq, int) and not isinstance(seq, bool) and seq >= 1 and isinstance(digest, str)
            and re.fullmatch(r"[0-9a-f]{64}", digest)):
        raise ValidationError(f"anchor file {str(path)!r} has no valid seq (a whole number >= 1) and event_hash "
                              "(64 hex digits)")
    return {"seq": seq, "event_hash": digest}


def write_anchor(path, head: dict, db) -> None:
    """Write the chain head to ``path`` atomically (a temporary file renamed into place), for ``--expect-anchor``."""
    body = json.dumps({**head, "db": str(db), "written_at": pd.Timestamp.now("UTC").isoformat()}, sort_keys=True)
    path = os.fspath(path)
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(body + "\n")
    os.replace(tmp, path)
