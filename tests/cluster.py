"""A real Dask cluster for tests: ``dask scheduler`` and ``dask worker`` started as separate processes on 127.0.0.1,
and helpers that read what a sweep or batch left in a database with its timestamps masked."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
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
        for table in ("simulation_runs", "simulation_orders", "simulation_order_fills"):
            df = s.con.execute(f"SELECT * FROM {table} ORDER BY ALL").df()
            out[table] = df.astype(object).where(df.notna(), None).to_dict("records")  # NaN == NaN here
        events = s.con.execute("SELECT seq, run_id, event_type, payload FROM audit_events ORDER BY seq").df()
        out["audit"] = [(r.seq, r.run_id, r.event_type, json.loads(r.payload)) for r in events.itertuples()]
    return out
