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

Nothing is written: verification reads the database (a read-only :class:`~tradeloop.store.db.Store` is enough).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..core.digest import EXECUTE_EVENT, FILL_DIGEST_COLUMNS, frame_digest, verify_chain
from ..errors import TradeloopError
from ..store.db import ORDER_IDENTITY, ORDER_STATE, Store
from ..venue.providers import get_provider, orders_of, risk_rejections, with_market_data

__all__ = ["Replay", "Verification", "replay_run", "verify_run", "verify_store"]

_FILL_COLUMNS = ("fill_id", "run_id", "client_order_id", "seq", "qty", "price", "commission")
_EVENT_COLUMNS = ("from_status", "to_status", "qty", "price", "reason")
_UNFINISHED = ("queued", "running")


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

    @property
    def ok(self) -> bool:
        return not self.differences

    def to_dict(self) -> dict:
        return {"ok": self.ok, "runs": list(self.runs), "audit_events": self.audit_events,
                "differences": list(self.differences), "notes": list(self.notes)}


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
    if run.dry_run:
        return Replay(run_id, "done", orders, no_fills, no_events, outcome)
    try:
        result = provider.execute(run, with_market_data(orders, snapshot), False)
    except Exception as exc:  # the stored run must have failed the same way
        error = str(exc) if isinstance(exc, TradeloopError) else f"{type(exc).__name__}: {exc}"
        return Replay(run_id, "failed", orders, no_fills, no_events, outcome, error)
    return Replay(run_id, "done", result.orders, result.fills.loc[:, list(_FILL_COLUMNS)],
                  result.events.loc[:, ["client_order_id", *_EVENT_COLUMNS]], outcome)


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
    unfinished = status in _UNFINISHED or (
        status == "failed" and replay.status != "failed" and str(row["error"] or "").startswith("abandoned")
    )
    if unfinished:
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
    diffs += _check_audit(store, row, orders, fills, events, unfinished)
    return diffs, notes


def _check_audit(store: Store, row: dict, orders: pd.DataFrame, fills: pd.DataFrame, events, unfinished) -> list[str]:
    run_id = row["run_id"]
    events = store.audit_events(run_id) if events is None else events.loc[events["run_id"] == run_id]
    execute = events.loc[events["event_type"] == EXECUTE_EVENT]
    if execute.empty:
        return [] if row["status"] in _UNFINISHED else [f"run {run_id}: is {row['status']} but has no audit event"]
    try:
        last = json.loads(execute.sort_values("seq").iloc[-1]["payload"])
    except (TypeError, ValueError):
        return [f"run {run_id}: its last audit event's payload is not JSON"]
    out = []
    if unfinished and row["status"] != "failed":
        return out  # a run that died after an earlier attempt: its rows moved on since that event
    expected = {
        "snapshot_id": row["snapshot_id"], "status": row["status"],
        "risk_params": {k: v for k, v in (json.loads(row["params"]).get("risk") or {}).items() if k != "outcome"},
        "orders_digest": frame_digest(orders, ORDER_IDENTITY + ORDER_STATE, "client_order_id",
                                      like=last.get("orders_digest")),
        "fills_digest": frame_digest(fills, FILL_DIGEST_COLUMNS, "fill_id", like=last.get("fills_digest")),
    }
    for key, want in expected.items():
        if last.get(key) != want:
            what = {"orders_digest": "the stored orders", "fills_digest": "the stored fills"}.get(key, f"{key} {want!r}")
            out.append(f"run {run_id}: its last audit event (attempt {last.get('attempt')}) does not match {what}"
                       + ("" if key.endswith("digest") else f" (the event says {last.get(key)!r})"))
    return out


def verify_store(store: Store, run_ids=None) -> Verification:
    """Verify the whole audit chain, then replay ``run_ids`` (default: every run) and diff each against the store.

    Returns
    -------
    Verification
        ``differences``: one readable sentence per disagreement (chain breaks, missing/extra/changed orders, fills
        and order events, status, risk outcome, audit digests); empty when everything agrees.
    """
    with store.session():
        events = store.audit_events()
        diffs = [f"audit chain: {p}" for p in verify_chain(events)]
        known = set(store.runs()["run_id"])
        diffs += [f"audit events name run {r}, which is not in trade_runs"
                  for r in sorted(set(events["run_id"].dropna()) - known)]
        if run_ids is None:
            run_ids = sorted(known)
        else:
            for r in run_ids:
                store.get_run(r)  # RunNotFound names it
        notes: list[str] = []
        for run_id in run_ids:
            d, n = verify_run(store, run_id, events)
            diffs += d
            notes += n
    return Verification(tuple(run_ids), len(events), tuple(diffs), tuple(notes))
