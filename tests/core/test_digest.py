"""The audit digest of orders/fills (tradeloop.core.digest.frame_digest): one function for the writer and every checker.

The ``v2:`` form hashes a typed binary encoding instead of CSV text. These tests check what a digest must do: ignore
the input's row order, change with any cell, agree on the rows as the store reads them back, and keep verifying audit
events written in the older CSV form (recomputed in their own form).
"""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from tradeloop import create_run, execute_run, verify_store
from tradeloop.core.digest import (
    DIGEST_PREFIX,
    canonical_json,
    event_hash,
    frame_digest,
)
from tradeloop.reporting.reports import audit_check
from tradeloop.store.db import ORDER_IDENTITY, ORDER_STATE

COLS = ("key", "n", "x", "text", "flag")
_text = st.one_of(st.none(), st.text(max_size=6))
_row = st.tuples(st.integers(-10**12, 10**12), st.one_of(st.just(float("nan")), st.floats(allow_nan=False, width=64)),
                 _text, st.booleans())


def _frame(rows) -> pd.DataFrame:
    df = pd.DataFrame(rows, columns=["n", "x", "text", "flag"]) if rows else pd.DataFrame(
        {"n": pd.Series([], dtype="int64"), "x": pd.Series([], dtype="float64"), "text": pd.Series([], dtype=object),
         "flag": pd.Series([], dtype=bool)})
    df.insert(0, "key", [f"k{i:04d}" for i in range(len(df))])
    df["text"] = pd.Series([r[2] for r in rows], dtype=object)  # None stays None (a str column would make it NaN)
    return df


def _legacy(df: pd.DataFrame, columns, sort_by: str) -> str:
    """The pre-v2 digest, written out independently: sha256 of the sorted columns as CSV."""
    if df.empty:
        return hashlib.sha256(b"empty").hexdigest()
    body = df.sort_values(sort_by, kind="stable").loc[:, list(columns)].to_csv(index=False, lineterminator="\n")
    return hashlib.sha256(body.encode()).hexdigest()


def _other_float(x: float) -> float:
    """The next float up, or 0.0 from +inf (which has no next)."""
    return 0.0 if x == np.inf else float(np.nextafter(x, np.inf))


@settings(max_examples=60, deadline=None)
@given(rows=st.lists(_row, min_size=1, max_size=20), seed=st.integers(0, 2**32 - 1))
def test_digest_ignores_row_order_and_changes_with_every_cell(rows, seed):
    df = _frame(rows)
    digest = frame_digest(df, COLS, "key")
    assert digest.startswith(DIGEST_PREFIX) and len(digest) == len(DIGEST_PREFIX) + 64
    shuffled = df.sample(frac=1.0, random_state=seed % 2**32).reset_index(drop=True)
    assert frame_digest(shuffled, COLS, "key") == digest
    rng = np.random.default_rng(seed)
    i = int(rng.integers(len(df)))
    changed = {
        "n": df["n"].iloc[i] + 1,
        "x": 1.5 if np.isnan(df["x"].iloc[i]) else (np.nan if rng.random() < 0.5 else _other_float(df["x"].iloc[i])),
        "text": "" if pd.isna(df["text"].iloc[i]) else (None if rng.random() < 0.5 else df["text"].iloc[i] + "z"),
        "flag": not df["flag"].iloc[i],
    }
    for col, value in changed.items():
        other = df.copy()
        other[col] = [value if j == i else v for j, v in enumerate(other[col])]
        other[col] = other[col].astype(df[col].dtype if col != "x" else "float64")
        assert frame_digest(other, COLS, "key") != digest, (col, df.iloc[i].to_dict(), value)


@settings(max_examples=60, deadline=None)
@given(texts=st.lists(_text, min_size=1, max_size=15))
def test_text_digest_is_the_same_for_object_str_and_mixed_columns(texts):
    """Columns of strings take an Arrow path, other object columns a Python one: both must give the same bytes."""
    key = [f"k{i:03d}" for i in range(len(texts))]
    as_object = pd.DataFrame({"key": key, "t": pd.Series(texts, dtype=object)})
    as_str = pd.DataFrame({"key": key, "t": pd.Series(texts, dtype="str")})
    with_number = pd.DataFrame({"key": key + ["z"], "t": pd.Series([*texts, 7], dtype=object)})
    text_of_number = pd.DataFrame({"key": key + ["z"], "t": pd.Series([*texts, "7"], dtype=object)})
    assert frame_digest(as_object, ("key", "t"), "key") == frame_digest(as_str, ("key", "t"), "key")
    assert frame_digest(with_number, ("key", "t"), "key") == frame_digest(text_of_number, ("key", "t"), "key")


def test_digest_separates_values_that_concatenate_alike():
    a = pd.DataFrame({"key": ["1", "2"], "text": ["ab", "c"]})
    b = pd.DataFrame({"key": ["1", "2"], "text": ["a", "bc"]})
    c = pd.DataFrame({"key": ["1", "2"], "text": ["", None]})
    d = pd.DataFrame({"key": ["1", "2"], "text": [None, ""]})
    digests = {frame_digest(f, ("key", "text"), "key") for f in (a, b, c, d)}
    assert len(digests) == 4
    # column names and kinds are part of it: the same numbers as int or as float, or under another name, differ
    ints = pd.DataFrame({"key": ["1"], "n": [1]})
    assert frame_digest(ints, ("key", "n"), "key") != frame_digest(ints.astype({"n": float}), ("key", "n"), "key")
    assert frame_digest(ints, ("key", "n"), "key") != frame_digest(ints.rename(columns={"n": "m"}), ("key", "m"), "key")


@settings(max_examples=30, deadline=None)
@given(rows=st.lists(_row, min_size=0, max_size=12))
def test_legacy_digests_are_recomputed_in_their_own_form(rows):
    df = _frame(rows)
    legacy = _legacy(df, COLS, "key")
    assert frame_digest(df, COLS, "key", like=legacy) == legacy
    assert frame_digest(df, COLS, "key", like=frame_digest(df, COLS, "key")) == frame_digest(df, COLS, "key")


def test_stored_run_digests_match_the_rows_read_back(store, sample_snapshot, pass_params, fallback_prices):
    run = create_run(store, sample_snapshot, params=pass_params, fallback_prices=fallback_prices)
    execute_run(store, run.run_id)
    payload = json.loads(store.audit_events(run.run_id).iloc[-1]["payload"])
    orders = store.con.execute("SELECT * FROM trade_orders WHERE run_id = ?", [run.run_id]).df()  # no ORDER BY
    fills = store.con.execute("SELECT * FROM trade_fills WHERE run_id = ?", [run.run_id]).df()
    store.close()
    assert payload["orders_digest"].startswith(DIGEST_PREFIX)
    assert payload["orders_digest"] == frame_digest(orders, ORDER_IDENTITY + ORDER_STATE, "client_order_id")
    assert payload["fills_digest"] == frame_digest(
        fills, ("fill_id", "client_order_id", "seq", "qty", "price", "commission"), "fill_id")
    assert audit_check(store.path, run.run_id) == []


def _rewrite_last_event(con, run_id: str, change) -> None:
    """Rewrite a run's last audit event's payload and re-chain it (it is the last event of the database)."""
    seq, eid, prev, body = con.execute(
        "SELECT seq, event_id, prev_hash, payload FROM audit_events WHERE run_id = ? ORDER BY seq DESC LIMIT 1",
        [run_id]).fetchall()[0]
    payload = json.loads(body)
    change(payload)
    body = canonical_json(payload)
    con.execute("UPDATE audit_events SET payload = ?, event_hash = ? WHERE event_id = ?",
                [body, event_hash(prev, seq, eid, run_id, "trade_run.execute", body), eid])


def test_an_event_written_with_csv_digests_still_verifies_and_still_catches_edits(store, sample_snapshot, pass_params,
                                                                                 fallback_prices):
    run = create_run(store, sample_snapshot, params=pass_params, fallback_prices=fallback_prices)
    execute_run(store, run.run_id)
    orders, fills = store.orders(run.run_id), store.fills(run.run_id)
    fill_cols = ("fill_id", "client_order_id", "seq", "qty", "price", "commission")

    def as_before_v2(payload):  # what tradeloop wrote before the v2 digest
        payload["orders_digest"] = _legacy(orders, ORDER_IDENTITY + ORDER_STATE, "client_order_id")
        payload["fills_digest"] = _legacy(fills, fill_cols, "fill_id")

    _rewrite_last_event(store.con, run.run_id, as_before_v2)
    assert verify_store(store).ok
    store.con.execute("UPDATE trade_orders SET reject_reason = 'edited' WHERE client_order_id = ?",
                      [orders["client_order_id"].iloc[0]])
    problems = verify_store(store).differences
    assert any("does not match the stored orders" in p for p in problems), problems
    store.close()
    assert any(p.startswith("orders_digest") for p in audit_check(store.path, run.run_id))



def test_an_arrow_table_and_the_same_rows_as_a_frame_have_one_digest():
    """Simulations are digested from Arrow tables, runs from DataFrames: the same rows give the same digest."""
    import pyarrow as pa

    from tradeloop.core.digest import table_digest

    df = pd.DataFrame({
        "key": [3, 1, 2], "n": np.array([5, -1, 7], dtype="int32"), "x": [1.5, np.nan, -0.0], "flag": [True, False, True],
        "text": ["a", None, "ünï"], "when": pd.to_datetime(["2024-01-02", "2024-01-03", "2024-01-04"]),
    })
    cols = ("key", "n", "x", "flag", "text", "when")
    ordered = df.sort_values("key", kind="stable")
    table = pa.Table.from_pandas(ordered, preserve_index=False)
    assert table_digest(table, cols) == frame_digest(df, cols, "key")
    as_dict = table.set_column(4, "text", table.column("text").dictionary_encode())
    micro = as_dict.set_column(5, "when", table.column("when").cast(pa.timestamp("us")))
    assert table_digest(micro, cols) == frame_digest(df, cols, "key")  # dictionary text, other time unit
    with_nulls = pa.table({"v": pa.array([1, None], pa.int64())})
    assert table_digest(with_nulls, ["v"]) == frame_digest(pd.DataFrame({"v": [1.0, np.nan]}), ["v"], "v")
    assert table_digest(table.slice(0, 0), cols) == frame_digest(df.iloc[:0], cols, "key")
    edited = table.set_column(2, "x", pa.array([1.5, None, 0.0]))  # -0.0 -> 0.0
    assert table_digest(edited, cols) != table_digest(table, cols)
