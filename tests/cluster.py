"""A real Dask cluster for tests: ``dask scheduler`` and ``dask worker`` started as separate processes on 127.0.0.1,
and helpers that read what a sweep or batch left in a database with its timestamps masked."""

from __future__ import annotations

import json
import re
import os
import signal
import socket
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import tradeloop as tl

DASK = Path(sys.executable).with_name("dask")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stop(proc: subprocess.Popen) -> None:
    """Stop one process this module started (its whole process group: a worker's nanny and its child)."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=15)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait(timeout=15)


@contextmanager
def dask_pair(tmp_path: Path, *, nworkers: int = 1):
    """``dask scheduler`` + ``dask worker`` (with a nanny) as subprocesses; yields the scheduler address."""
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    env = {**os.environ, "DASK_DISTRIBUTED__WORKER__DAEMON": "False"}
    logs = [open(tmp_path / name, "w") for name in ("scheduler.log", "worker.log")]
    procs = [subprocess.Popen([str(DASK), "scheduler", "--host", "127.0.0.1", "--port", str(port),
                               "--dashboard-address", ":0", "--no-show"], stdout=logs[0], stderr=subprocess.STDOUT,
                              env=env, start_new_session=True, cwd=tmp_path)]
    try:
        procs.append(subprocess.Popen([str(DASK), "worker", address, "--nworkers", str(nworkers), "--nthreads", "1",
                                       "--no-dashboard", "--local-directory", str(tmp_path / "dask-worker")],
                                      stdout=logs[1], stderr=subprocess.STDOUT, env=env, start_new_session=True,
                                      cwd=tmp_path))
        wait_for_workers(address, nworkers)
        yield address
    finally:
        for proc in reversed(procs):
            _stop(proc)
        for f in logs:
            f.close()


def wait_for_workers(address: str, n: int, timeout: float = 90) -> dict:
    """Block until the scheduler at ``address`` has ``n`` workers; returns worker address -> pid."""
    import distributed

    with distributed.Client(address, timeout=timeout, set_as_default=False) as client:
        client.wait_for_workers(n, timeout=timeout)
        return client.run(os.getpid)


def stored_rows(db: Path) -> dict:
    """Every simulation's rows, its ``simulations`` row and the audit events, timestamps and hashes masked."""
    out = {}
    with tl.Store(db, read_only=True) as s:
        sims = s.con.execute("SELECT * EXCLUDE (created_at) FROM simulations ORDER BY simulation_id").df()
        out["simulations"] = sims.to_dict("records")
        for table in ("simulation_runs", "simulation_orders", "simulation_order_fills", "simulation_shortfall",
                      "risk_decisions"):
            df = s.con.execute(f"SELECT * FROM {table} ORDER BY ALL").df()
            out[table] = df.astype(object).where(df.notna(), None).to_dict("records")  # NaN == NaN here
        events = s.con.execute("SELECT seq, run_id, event_type, payload FROM audit_events ORDER BY seq").df()
        out["audit"] = [(r.seq, r.run_id, r.event_type, json.loads(r.payload)) for r in events.itertuples()]
    return out


_STAMP = re.compile(r"\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d(\.\d+)?( ?UTC|Z|[+-]\d\d:?\d\d)?")
_DURATION = re.compile(r'"duration": [0-9.e-]+')
#: Columns that hold a time, or an id drawn at random (an audit event's id, and the hashes that cover it).
_RANDOM = {"event_id", "prev_hash", "event_hash", "sha256"}


def masked_text(text: str) -> str:
    return _DURATION.sub('"duration": 0', _STAMP.sub("<time>", text))


def masked_database(db: Path) -> dict:
    """Every table's rows in a stable order, with times and random ids masked (the sha256 of an artifact holds its
    execution times, so it is masked too; the artifacts themselves are compared with :func:`masked_text`)."""
    out = {}
    with tl.Store(db, read_only=True) as s:
        tables = [r[0] for r in s.con.execute("SELECT table_name FROM duckdb_tables() ORDER BY 1").fetchall()]
        for table in tables:
            df = s.con.execute(f"SELECT * FROM {table}").df()
            df = df.drop(columns=[c for c in df.columns if c in _RANDOM or df[c].dtype.kind == "M"])
            rows = [{k: _masked_value(v) for k, v in r.items()} for r in df.to_dict("records")]
            out[table] = sorted(rows, key=lambda r: json.dumps(r, sort_keys=True, default=str))
    return out


def _masked_value(v):
    if isinstance(v, float) and v != v:
        return None
    if isinstance(v, str):
        try:
            parsed = json.loads(v)
        except ValueError:
            return masked_text(v)
        return _masked_json(parsed) if isinstance(parsed, (dict, list)) else masked_text(v)
    return v


def _masked_json(obj):
    if isinstance(obj, dict):
        return {k: _masked_json(v) for k, v in obj.items() if k not in _RANDOM}
    if isinstance(obj, list):
        return [_masked_json(v) for v in obj]
    return masked_text(obj) if isinstance(obj, str) else obj
