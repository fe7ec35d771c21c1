"""Audit trail helpers: canonical JSON, content digests of orders/fills, and the events' hash chain.

Every audit event stores ``prev_hash`` (the previous event's hash, in ``seq`` order across the whole database) and
``event_hash = sha256(prev_hash | seq | event_id | run_id | event_type | payload)``. Editing, deleting or reordering
an event breaks the chain; the ``trade_run.execute`` payload also carries digests of the run's orders and fills, so
editing those rows is detected too.
"""

from __future__ import annotations

import hashlib
import json
import math

import numpy as np
import pandas as pd

__all__ = ["canonical_json", "event_hash", "frame_digest", "verify_chain", "GENESIS_HASH", "EXECUTE_EVENT"]

GENESIS_HASH = "0" * 64
EXECUTE_EVENT = "trade_run.execute"


def _plain(value):
    """JSON-safe values: numpy scalars to Python, NaN to None."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def canonical_json(payload) -> str:
    """Sorted keys, no spaces, NaN as null: the same payload always gives the same text (and hash)."""
    return json.dumps(_plain(payload), sort_keys=True, separators=(",", ":"), allow_nan=False)


def event_hash(prev_hash: str, seq: int, event_id: str, run_id: str, event_type: str, payload_json: str) -> str:
    text = "|".join((prev_hash, str(int(seq)), event_id, run_id or "", event_type, payload_json))
    return hashlib.sha256(text.encode()).hexdigest()


def frame_digest(df: pd.DataFrame, columns, sort_by: str) -> str:
    """sha256 of the given columns as canonical CSV, rows sorted by ``sort_by`` (timestamps excluded by the caller)."""
    if df.empty:
        return hashlib.sha256(b"empty").hexdigest()
    body = df.sort_values(sort_by, kind="stable").loc[:, list(columns)].to_csv(index=False, lineterminator="\n")
    return hashlib.sha256(body.encode()).hexdigest()


def verify_chain(events: pd.DataFrame) -> list[str]:
    """Recompute the chain over all events (``seq`` order); return one sentence per break, empty if intact."""
    problems: list[str] = []
    prev = GENESIS_HASH
    expected_seq = 1
    for row in events.sort_values("seq").itertuples(index=False):
        if row.seq != expected_seq:
            problems.append(f"audit event seq {expected_seq} is missing (next is {row.seq})")
            expected_seq = row.seq
        if row.prev_hash != prev:
            problems.append(f"audit event {row.event_id} (seq {row.seq}) does not follow its predecessor")
        if event_hash(row.prev_hash, row.seq, row.event_id, row.run_id, row.event_type, row.payload) != row.event_hash:
            problems.append(f"audit event {row.event_id} (seq {row.seq}) was modified: its hash does not match")
        prev = row.event_hash
        expected_seq += 1
    return problems
