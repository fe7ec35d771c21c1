"""Audit trail helpers: canonical JSON, content digests of orders/fills, and the events' hash chain.

Every audit event stores ``prev_hash`` (the previous event's hash, in ``seq`` order across the whole database) and
``event_hash = sha256(prev_hash | seq | event_id | run_id | event_type | payload)``. Editing, deleting or reordering
an event breaks the chain; the ``trade_run.execute`` payload also carries digests of the run's orders and fills, so
editing those rows is detected too. Since payload version 2 (:data:`EXECUTE_PAYLOAD_VERSION`) the event also
records the run's whole stored input and history (:func:`record_digests`): its params as stored, its error and
attempt, its snapshot's content hash, its positions and fallback prices and its order events (with their steps),
so editing any of them is detected even where the replay's result would not change. Events written before that
keep being checked in their recorded form.
"""

from __future__ import annotations

import hashlib
import json
import math

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

__all__ = ["canonical_json", "event_hash", "frame_digest", "table_digest", "verify_chain", "GENESIS_HASH",
           "EXECUTE_EVENT", "DIGEST_PREFIX", "FILL_DIGEST_COLUMNS", "EVENT_DIGEST_COLUMNS", "EXECUTE_PAYLOAD_VERSION",
           "RECORD_KEYS", "record_digests", "payload_version", "decisions_digest", "DECISION_DIGEST_COLUMNS",
           "DECISIONS_SINCE"]

GENESIS_HASH = "0" * 64
EXECUTE_EVENT = "trade_run.execute"
#: Columns of a run's fills hashed into the ``fills_digest`` of its execute audit event (written and checked alike).
FILL_DIGEST_COLUMNS = ("fill_id", "client_order_id", "seq", "qty", "price", "commission")
#: Columns of a run's order events hashed into ``events_digest`` (every column but the time ``at``).
EVENT_DIGEST_COLUMNS = ("client_order_id", "seq", "step", "from_status", "to_status", "qty", "price", "reason")
#: Version of the ``trade_run.execute`` payload written now. Version 1 (no ``payload_version`` key) recorded the
#: run's status, risk params and the digests of its orders and fills; version 2 adds :func:`record_digests` and
#: ``environmental`` (whether a failure came from the machine: disk, memory, I/O, rather than the run's inputs).
EXECUTE_PAYLOAD_VERSION = 3
#: Version 3 adds ``risk_decisions`` (count) and ``risk_decisions_digest`` (:func:`decisions_digest`): every risk
#: decision of the run (skip, resize, reject, block), as stored in ``risk_decisions``.
DECISIONS_SINCE = 3
#: Columns of a run's ``risk_decisions`` rows hashed into ``risk_decisions_digest``.
DECISION_DIGEST_COLUMNS = ("client_order_id", "symbol", "side", "rule", "observed", "limit_value", "action",
                           "qty_before", "qty_after")
#: The keys :func:`record_digests` adds to a version 2 payload.
RECORD_KEYS = ("params_digest", "run_error", "snapshot_hash", "positions_digest", "fallback_prices_digest",
               "events_digest")


def decisions_digest(decisions: pd.DataFrame) -> str:
    """Digest of a run's risk decisions as :meth:`tradeloop.store.db.Store.risk_decisions` reads them (rows ordered
    by client_order_id, then rule)."""
    rows = decisions.assign(_key=decisions["client_order_id"].astype(str) + "\x00" + decisions["rule"].astype(str)) \
        if len(decisions) else decisions.assign(_key=pd.Series(dtype=object))
    return frame_digest(rows, DECISION_DIGEST_COLUMNS, "_key")


def payload_version(payload: dict) -> int:
    """The version of an execute event's payload (1 for events written before versions were recorded)."""
    return int(payload.get("payload_version") or 1)


def record_digests(run_row: dict, snapshot_hash: str | None, positions: pd.DataFrame | None,
                   fallback_prices: pd.DataFrame | None, events: pd.DataFrame) -> dict:
    """What an execute event (version 2) records of a run's stored input and history, beyond its orders and fills.

    The writer calls it inside the transaction that appends the event, the checkers on the rows stored now; both
    pass the rows as :class:`~tradeloop.store.db.Store` reads them.

    Parameters
    ----------
    run_row : dict
        The ``trade_runs`` row: its ``params`` (JSON text, hashed in canonical form) and ``error`` are recorded.
    snapshot_hash : str or None
        The ``content_hash`` of the run's ``decision_snapshots`` row (None when the row is missing).
    positions, fallback_prices : DataFrame or None
        ``run_positions`` (symbol, qty) and ``run_fallback_prices`` (symbol, price) rows: every row, zero
        quantities and unused symbols included.
    events : DataFrame
        The run's ``order_events`` rows (:data:`EVENT_DIGEST_COLUMNS`; the time ``at`` is not recorded).

    Returns
    -------
    dict
        :data:`RECORD_KEYS` -> digest (``v2:`` form) or value.
    """
    try:
        params = canonical_json(json.loads(run_row["params"]))
    except (TypeError, ValueError):
        params = str(run_row["params"])  # not JSON (edited): hashed as text, so it cannot match a recorded digest
    empty = pd.DataFrame({"symbol": pd.Series(dtype=object), "qty": pd.Series(dtype="int64"),
                          "price": pd.Series(dtype="float64")})
    return {
        "params_digest": DIGEST_PREFIX + hashlib.sha256(params.encode()).hexdigest(),
        "run_error": run_row["error"],
        "snapshot_hash": snapshot_hash,
        "positions_digest": frame_digest(empty if positions is None else positions, ("symbol", "qty"), "symbol"),
        "fallback_prices_digest": frame_digest(empty if fallback_prices is None else fallback_prices,
                                               ("symbol", "price"), "symbol"),
        "events_digest": frame_digest(events, EVENT_DIGEST_COLUMNS, ["client_order_id", "seq"]),
    }


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


def event_hash(prev_hash: str, seq: int, event_id: str, run_id: str | None, event_type: str, payload_json: str) -> str:
    # An event of no run has run_id NULL, which a DataFrame read back holds as NaN: both hash as "".
    text = "|".join((prev_hash, str(int(seq)), event_id, run_id if isinstance(run_id, str) else "", event_type,
                     payload_json))
    return hashlib.sha256(text.encode()).hexdigest()


#: Prefix of the current digest form (:func:`frame_digest`); a digest without it is the older CSV form.
DIGEST_PREFIX = "v2:"


def frame_digest(df: pd.DataFrame, columns, sort_by: str, *, like: str | None = None) -> str:
    """Content digest of ``columns`` of ``df``, rows sorted by ``sort_by`` (timestamps are excluded by the caller).

    The writer of an audit event and every checker call this one function on the rows as :class:`~tradeloop.store.db.
    Store` reads them, so they agree byte for byte. The digest is ``"v2:"`` plus the sha256 of a typed binary form:
    the row count, then per column its name, its kind and its values, where integer and boolean columns are
    little-endian int64/uint8, float columns a null bitmap plus little-endian float64 (NaN as null), and any other
    column the text of each value (``str``) as UTF-8 with one int64 length per value (-1 for a null); timestamps are
    int64 nanoseconds. :func:`table_digest` gives the same digest for the same rows as an Arrow table. No per-value
    formatting, so it costs a small fraction of the CSV form it replaced.

    Parameters
    ----------
    like : str, optional
        A stored digest to recompute. Digests written before the ``v2:`` form (64 hex digits: sha256 of the columns
        as CSV text) are recomputed in their own form, so the audit records of older databases still verify.
    """
    if isinstance(like, str) and not like.startswith(DIGEST_PREFIX):
        return _csv_digest(df, columns, sort_by)
    if df.empty:
        return DIGEST_PREFIX + hashlib.sha256(b"empty").hexdigest()
    rows = df.sort_values(sort_by, kind="stable")
    h = hashlib.sha256(f"tradeloop-frame-v2\n{len(rows)}\n".encode())
    for col in columns:
        kind, parts = _column_bytes(rows[col])
        h.update(f"{col}\x00{kind}\x00".encode())
        for part in parts:
            h.update(part)
    return DIGEST_PREFIX + h.hexdigest()


def _column_bytes(values: pd.Series) -> tuple[str, list[bytes]]:
    """A column's kind and its canonical bytes (see :func:`frame_digest`)."""
    arr = values.to_numpy()
    if arr.dtype.kind == "b":
        return "bool", [arr.astype(np.uint8).tobytes()]
    if arr.dtype.kind in "iu":
        return "int", [arr.astype("<i8").tobytes()]
    if arr.dtype.kind == "f":
        return _float_bytes(arr)
    if arr.dtype.kind == "M":
        return _time_bytes(arr)
    strings = _arrow_strings(values)
    if strings is not None:  # the same bytes as below, without a Python object per value
        return _text_bytes(strings)
    obj = values.to_numpy(dtype=object)
    null = pd.isna(obj)
    texts = list(map(str, obj[~null]))
    lengths = np.full(len(obj), -1, dtype="<i8")
    lengths[~null] = np.fromiter(map(len, texts), dtype=np.int64, count=len(texts))
    return "text", [lengths.tobytes(), "".join(texts).encode("utf-8", "surrogatepass")]


def table_digest(table: pa.Table, columns) -> str:
    """:func:`frame_digest` of an Arrow table whose rows are in order already: the same ``v2:`` bytes as
    ``frame_digest`` gives for the same rows as a DataFrame, without a Python object per value.

    Simulations are digested this way from the Arrow tables they are written from, and checked from the rows
    DuckDB returns as Arrow (ordered by the table's key); dictionary-encoded text is hashed as its text, integer
    columns with nulls as floats (as pandas reads them).
    """
    if table.num_rows == 0:
        return DIGEST_PREFIX + hashlib.sha256(b"empty").hexdigest()
    h = hashlib.sha256(f"tradeloop-frame-v2\n{table.num_rows}\n".encode())
    for col in columns:
        kind, parts = _arrow_column_bytes(table.column(col))
        h.update(f"{col}\x00{kind}\x00".encode())
        for part in parts:
            h.update(part)
    return DIGEST_PREFIX + h.hexdigest()


def _arrow_column_bytes(values) -> tuple[str, list[bytes]]:
    """A column's kind and canonical bytes, as :func:`_column_bytes` gives for the same values in pandas."""
    arr = values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values
    if pa.types.is_dictionary(arr.type):
        arr = arr.dictionary_decode()
    t = arr.type
    if pa.types.is_timestamp(t) or pa.types.is_date(t):
        return _time_bytes(arr.cast(pa.timestamp("ns")).to_numpy(zero_copy_only=False))
    if pa.types.is_boolean(t) and arr.null_count == 0:
        return "bool", [arr.to_numpy(zero_copy_only=False).astype(np.uint8).tobytes()]
    if pa.types.is_integer(t) and arr.null_count == 0:
        return "int", [arr.to_numpy().astype("<i8").tobytes()]
    if pa.types.is_integer(t) or pa.types.is_floating(t):
        return _float_bytes(arr.cast(pa.float64()).to_numpy(zero_copy_only=False))
    if pa.types.is_string(t) or pa.types.is_large_string(t) or str(t) == "extension<arrow.json>":
        strings = arr.storage if isinstance(arr, pa.ExtensionArray) else arr
        return _text_bytes(strings.cast(pa.large_string()))
    return _column_bytes(pd.Series(arr.to_pandas()))


def _time_bytes(x: np.ndarray) -> tuple[str, list[bytes]]:
    """Timestamps as int64 nanoseconds (NaT as the smallest int64), independent of the unit they are read in."""
    return "time", [x.astype("datetime64[ns]").view("<i8").tobytes()]


def _float_bytes(x: np.ndarray) -> tuple[str, list[bytes]]:
    x = x.astype("<f8")
    null = np.isnan(x)
    return "float", [np.packbits(null).tobytes(), np.where(null, 0.0, x).astype("<f8").tobytes()]


def _text_bytes(strings: pa.LargeStringArray) -> tuple[str, list[bytes]]:
    lengths = pc.fill_null(pc.utf8_length(strings), -1).to_numpy(zero_copy_only=False).astype("<i8")
    filled = pc.fill_null(strings, "")
    offsets = np.frombuffer(filled.buffers()[1], dtype="<i8")[filled.offset:filled.offset + len(filled) + 1]
    body = filled.buffers()[2]
    return "text", [lengths.tobytes(), b"" if body is None else body[int(offsets[0]):int(offsets[-1])]]


def _arrow_strings(values: pd.Series) -> pa.LargeStringArray | None:
    """The column as one Arrow large_string array when it holds only strings and nulls, else None."""
    if not isinstance(values.dtype, pd.StringDtype) and pd.api.types.infer_dtype(values, skipna=True) not in (
            "string", "empty"):
        return None  # e.g. numbers or bytes in an object column: the text of each value, in Python
    try:
        arr = pa.array(values, type=pa.large_string(), from_pandas=True)
    except (pa.ArrowException, TypeError, ValueError):
        return None
    return arr.combine_chunks() if isinstance(arr, pa.ChunkedArray) else arr


def _csv_digest(df: pd.DataFrame, columns, sort_by: str) -> str:
    """The digest form written before ``v2:``: sha256 of the columns as CSV text, rows sorted by ``sort_by``."""
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
