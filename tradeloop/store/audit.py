"""The audit trail in the store: the one writer of the events' hash chain, and reading it back.

Every event is appended by :func:`append_events` (a run's or a simulation's event through :func:`append_audit`,
a worker's events re-chained by :func:`tradeloop.store.merge.merge_database`): it takes the chain's last ``seq``
and ``event_hash`` and links each new event to its predecessor with :func:`tradeloop.core.digest.event_hash`.
The caller's transaction holds the file, so the event commits with the change it records.
"""

from __future__ import annotations

import uuid
from datetime import datetime

import duckdb
import pandas as pd

from ..core.digest import GENESIS_HASH, canonical_json, event_hash
from .sql import utcnow

__all__ = ["append_audit", "append_events", "audit_events"]


def _new_event_id(seq: int) -> str:
    return f"evt-{seq:08d}-{uuid.uuid4().hex[:8]}"


def append_events(con: duckdb.DuckDBPyConnection, events) -> list[dict]:
    """Append events, in the given order, to the end of the chain; returns ``event_id``, ``seq``, ``event_hash``
    of each.

    Parameters
    ----------
    events : iterable of tuple
        ``(event_id, run_id, event_type, payload_json, created_at)``; an ``event_id`` of None gets a new one
        (``evt-<seq>-<random>``). ``payload_json`` is stored and hashed as given (see :func:`append_audit`).
    """
    last = con.execute("SELECT seq, event_hash FROM audit_events ORDER BY seq DESC LIMIT 1").fetchone()
    seq, prev = (int(last[0]), last[1]) if last else (0, GENESIS_HASH)
    rows, out = [], []
    for event_id, run_id, event_type, body, created_at in events:  # a chain is sequential by nature
        seq += 1
        event_id = event_id or _new_event_id(seq)
        digest = event_hash(prev, seq, event_id, run_id, event_type, body)
        rows.append([event_id, seq, run_id, event_type, body, prev, digest, created_at])
        out.append({"event_id": event_id, "seq": seq, "event_hash": digest})
        prev = digest
    sql = ("INSERT INTO audit_events (event_id, seq, run_id, event_type, payload, prev_hash, event_hash, created_at) "
           "VALUES (?, ?, ?, ?, ?, ?, ?, ?)")
    if len(rows) == 1:
        con.execute(sql, rows[0])
    elif rows:
        con.executemany(sql, rows)
    return out


def append_audit(con: duckdb.DuckDBPyConnection, run_id: str | None, event_type: str, payload: dict, *,
                 at: datetime | None = None) -> dict:
    """Append one event (its payload as canonical JSON) to the chain; returns its ``event_id``, ``seq`` and
    ``event_hash``."""
    return append_events(con, [(None, run_id, event_type, canonical_json(payload), at or utcnow())])[0]


def audit_events(con: duckdb.DuckDBPyConnection, run_id: str | None = None) -> pd.DataFrame:
    """Every event (or one run's), in chain order: the ``audit_events`` columns."""
    if run_id is None:
        return con.execute("SELECT * FROM audit_events ORDER BY seq").df()
    return con.execute("SELECT * FROM audit_events WHERE run_id = ? ORDER BY seq", [run_id]).df()
