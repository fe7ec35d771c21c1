"""Before/after of the single-run path in ONE process: this checkout's tradeloop against a git revision's.

Run (from the repository root)::

    python -m benchmarks.single_run_compare --base 867e4fd --runs 15

The ``--base`` revision's ``tradeloop`` package is extracted with ``git archive`` into a temporary folder and
imported as ``tradeloop_base`` (its imports are relative, so it loads side by side with this checkout's). Both
versions then run the same 3,000-symbol snapshot (the one ``benchmarks.run`` measures), alternately, each on its own
fresh DuckDB file, after two warm-up runs each; the medians and their ratio are printed. Alternating in one process
keeps the comparison fair on a shared machine whose load changes from minute to minute. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import importlib
import os
import subprocess
import sys
import tarfile
import tempfile
import time
from io import BytesIO
from pathlib import Path

import numpy as np

from benchmarks.run import ROOT, single_run_inputs


def _load_base(rev: str, folder: Path):
    blob = subprocess.run(["git", "archive", rev, "tradeloop"], cwd=ROOT, capture_output=True, check=True).stdout
    with tarfile.open(fileobj=BytesIO(blob)) as tar:
        tar.extractall(folder, filter="data")
    (folder / "tradeloop").rename(folder / "tradeloop_base")
    sys.path.insert(0, str(folder))
    return importlib.import_module("tradeloop_base")


def duckdb_floor(path: Path, run_id: str, runs: int) -> list[float]:
    """Seconds per replay of the DuckDB statements a run makes, with its stored rows as prebuilt frames.

    The same open, transactions, inserts, updates, reads and close as :func:`tradeloop.run_snapshot`, single-threaded,
    with none of tradeloop's Python work (freeze, build, risk, fills, digests): the floor the storage design sets.
    """
    import duckdb

    from tradeloop.store.db import ORDER_STATE

    with duckdb.connect(str(path)) as con:
        sid = con.execute("SELECT snapshot_id FROM trade_runs WHERE run_id = ?", [run_id]).fetchall()[0][0]
        weights = con.execute("SELECT * FROM snapshot_weights WHERE snapshot_id = ?", [sid]).df()
        orders = con.execute("SELECT * FROM trade_orders WHERE run_id = ?", [run_id]).df()
        fills = con.execute("SELECT * FROM trade_fills WHERE run_id = ?", [run_id]).df()
        events = con.execute("SELECT * FROM order_events WHERE run_id = ?", [run_id]).df()

    def insert(con, table, rows):  # noqa: ARG001  (rows is scanned by name)
        cols = ", ".join(f'"{c}"' for c in rows.columns)
        con.execute(f"INSERT INTO {table} ({cols}) SELECT {cols} FROM rows").fetchall()

    def ids(df, k):
        df = df.copy()
        for col in ("client_order_id", "fill_id", "snapshot_id", "run_id"):
            if col in df:
                df[col] = df[col].astype(object) + f"-floor{k}"
        return df

    times = []
    for k in range(runs):
        w, o, f, e = ids(weights, k), ids(orders, k), ids(fills, k), ids(events, k)
        rid, snap = o["run_id"].iloc[0], w["snapshot_id"].iloc[0]
        new = o.assign(status="NEW", filled_qty=0, avg_fill_price=float("nan"), reject_reason=None)
        u = o.loc[:, ["client_order_id", *ORDER_STATE]]  # noqa: F841  (scanned by name)
        t0 = time.perf_counter()
        con = duckdb.connect(str(path))
        con.execute("SET threads = 1")
        con.execute("BEGIN")
        con.execute("INSERT INTO decision_snapshots VALUES (?, 'h', 'm', 1.0, ?, now())", [snap, len(w)])
        insert(con, "snapshot_weights", w)
        con.execute("INSERT INTO trade_runs (run_id, snapshot_id, provider, dry_run, status, params, attempts, "
                    "created_at, updated_at) VALUES (?, ?, 'mock', false, 'queued', '{}', 0, now(), now())", [rid, snap])
        con.execute("COMMIT")
        con.execute("SELECT * FROM snapshot_weights WHERE snapshot_id = ? ORDER BY symbol", [snap]).df()
        con.execute("BEGIN")
        con.execute("UPDATE trade_runs SET status = 'running' WHERE run_id = ?", [rid])
        con.execute("INSERT INTO run_leases VALUES (?, 1, 'h', now(), now(), now())", [rid])
        con.execute("COMMIT")
        con.execute("BEGIN")
        insert(con, "trade_orders", new)
        con.execute("UPDATE run_leases SET heartbeat_at = now() WHERE run_id = ?", [rid])
        con.execute("COMMIT")
        con.execute("SELECT * FROM trade_orders WHERE run_id = ? ORDER BY symbol, side", [rid]).df()
        con.execute("BEGIN")
        con.execute("UPDATE trade_orders SET status = u.status, filled_qty = u.filled_qty, avg_fill_price = "
                    "u.avg_fill_price, reject_reason = u.reject_reason, updated_at = now() FROM u "
                    "WHERE trade_orders.client_order_id = u.client_order_id").fetchall()
        insert(con, "trade_fills", f)
        insert(con, "order_events", e)
        con.execute("UPDATE trade_runs SET status = 'done' WHERE run_id = ?", [rid])
        con.execute("DELETE FROM run_leases WHERE run_id = ?", [rid])
        con.execute("SELECT * FROM trade_orders WHERE run_id = ? ORDER BY symbol, side", [rid]).df()
        con.execute("SELECT * FROM trade_fills WHERE run_id = ? ORDER BY fill_id", [rid]).df()
        con.execute("INSERT INTO audit_events VALUES (?, ?, ?, 'floor', '{}', 'p', 'h', now())",
                    [f"floor-{k}", 10**9 + k, rid])
        con.execute("COMMIT")
        con.close()
        times.append(time.perf_counter() - t0)
    return times


def measure(versions: dict, tmp: Path, n_symbols: int, runs: int) -> tuple[dict, dict, dict, dict]:
    """Seconds per single run of each version (``{name: module}``), alternating, each on its own DuckDB file in
    ``tmp``, after two warm-up runs each. Returns ``(times, freeze_times, last_run_id, stores)`` keyed by name."""
    table, params_dict = single_run_inputs(n_symbols)
    stores = {k: m.Store(tmp / f"{k}.duckdb") for k, m in versions.items()}
    params = {k: m.RunParams.from_dict(params_dict) for k, m in versions.items()}

    def one(k, i):
        m = versions[k]
        snap = m.freeze_snapshot(table, portfolio_value=1e8 + i, model_version="bench")
        t0 = time.perf_counter()
        result = m.run_snapshot(stores[k], snap, params=params[k])
        return time.perf_counter() - t0, result

    times = {k: [] for k in versions}
    freeze = {k: [] for k in versions}
    last = {}
    for i in range(2):  # warm-up
        for k in times:
            one(k, i)
    names = list(versions)
    for i in range(runs):
        for k in (names if i % 2 == 0 else names[::-1]):
            t0 = time.perf_counter()
            dt, result = one(k, 100 + i)
            freeze[k].append(time.perf_counter() - t0 - dt)
            times[k].append(time.perf_counter() - t0)
            assert result.status == "done", result
            last[k] = result.run_id
    return times, freeze, last, stores


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--base", default="HEAD", help="git revision to compare against (default HEAD)")
    ap.add_argument("--runs", type=int, default=15, help="timed runs per version")
    ap.add_argument("--symbols", type=int, default=3000, help="snapshot size")
    args = ap.parse_args(argv)

    import tradeloop as new
    with tempfile.TemporaryDirectory() as tmp:
        base = _load_base(args.base, Path(tmp) / "src")
        load0 = os.getloadavg()[0]
        times, freeze, last, stores = measure({"base": base, "new": new}, Path(tmp), args.symbols, args.runs)
        b, n = np.median(times["base"]), np.median(times["new"])
        print(f"load average {load0:.2f} -> {os.getloadavg()[0]:.2f}; {args.runs} alternating warm runs each, "
              f"{args.symbols} symbols")
        for k in times:
            print(f"{k:>4} ({args.base if k == 'base' else 'checkout'}): median {1e3 * np.median(times[k]):.0f} ms, "
                  f"best {1e3 * min(times[k]):.0f} ms (freeze {1e3 * np.median(freeze[k]):.0f} ms of it)")
        print(f"new / base = {n / b:.2f} ({b / n:.2f}x faster)")
        floor = duckdb_floor(stores["new"].path, last["new"], max(args.runs, 5))
        print(f"DuckDB floor (the same statements, no tradeloop work): median {1e3 * np.median(floor):.0f} ms, "
              f"best {1e3 * min(floor):.0f} ms")


if __name__ == "__main__":
    main()
