"""tradeloop on a real Dask cluster: ``dask scheduler`` and ``dask worker`` started as separate processes on
127.0.0.1 (one pair per module), the CLI pointed at it with --scheduler, a LocalCluster of 2 and of 8 worker
processes, and a worker killed mid-sweep."""

from __future__ import annotations

import json
import os
import signal
import threading
import time

import pytest
from cluster import dask_pair, masked_database, masked_text, stored_rows, wait_for_workers
from support import history_files, run_cli, sweep_cli

import tradeloop as tl
from tradeloop.workflows.sweep import sweep

pytest.importorskip("distributed")


@pytest.fixture(scope="module")
def address(tmp_path_factory):
    with dask_pair(tmp_path_factory.mktemp("dask"), nworkers=1) as addr:
        yield addr


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    grid = {"cash_buffer": [0.0, 0.03, -1.0], "risk.max_position_ratio": [0.08, None]}
    return history_files(tmp_path_factory.mktemp("cluster-inputs"), 10, 20, seed=7, grid=grid)["dir"]


def _sweep(inputs, db, *extra, grid="grid.json"):
    return sweep_cli(inputs, db, *extra, grid=grid, model_version="c-1")


def test_sweep_on_a_dask_scheduler_equals_the_local_run(inputs, address, tmp_path):
    local = _sweep(inputs, tmp_path / "local.duckdb")
    remote = _sweep(inputs, tmp_path / "remote.duckdb", "--scheduler", address)
    assert local.returncode == remote.returncode == 1  # the negative cash buffer fails alone
    a, b = json.loads(local.stdout), json.loads(remote.stdout)
    assert b["ran_on"] == f"Dask cluster {address} (1 worker(s))"
    assert a["combinations"] == b["combinations"]
    assert [r["status"] for r in b["combinations"]] == ["new"] * 4 + ["failed"] * 2
    assert stored_rows(tmp_path / "local.duckdb") == stored_rows(tmp_path / "remote.duckdb")
    again = _sweep(inputs, tmp_path / "remote.duckdb", "--scheduler", address)
    assert [r["status"] for r in json.loads(again.stdout)["combinations"]] == ["stored"] * 4 + ["failed"] * 2


def test_sweep_on_a_local_cluster_of_8_workers_equals_the_local_run(inputs, tmp_path):
    """Eight worker processes (one thread each) and more combinations than workers: the same rows, the same
    statuses and the same stored rows and audit chain as the run in this process."""
    grid = {"cash_buffer": [0.0, 0.01, 0.03, -1.0], "risk.max_position_ratio": [0.08, None],
            "slippage.model": ["FixedBpsSlippage"], "slippage.bps": [1, 5]}
    (tmp_path / "grid8.json").write_text(json.dumps(grid))
    local = _sweep(inputs, tmp_path / "local.duckdb", grid=tmp_path / "grid8.json")
    eight = _sweep(inputs, tmp_path / "eight.duckdb", "--scheduler", "local", "--workers", "8",
                   grid=tmp_path / "grid8.json")
    assert local.returncode == eight.returncode == 1, eight.stderr  # the negative cash buffer fails alone
    a, b = json.loads(local.stdout), json.loads(eight.stdout)
    assert b["ran_on"] == "Dask LocalCluster of 8 worker(s)"
    assert b["counts"] == {"failed": 4, "new": 12}
    assert a["combinations"] == b["combinations"]
    assert stored_rows(tmp_path / "local.duckdb") == stored_rows(tmp_path / "eight.duckdb")
    assert masked_database(tmp_path / "local.duckdb") == masked_database(tmp_path / "eight.duckdb")


def test_scheduler_from_the_environment(inputs, address, tmp_path):
    proc = sweep_cli(inputs, tmp_path / "env.duckdb", model_version="c-1", env={"TRADELOOP_SCHEDULER": address})
    assert json.loads(proc.stdout)["ran_on"].startswith(f"Dask cluster {address}")


def test_worker_killed_mid_sweep_every_combination_stored_once(address, tmp_path):
    """SIGKILL the worker process while it works a combination: its nanny restarts it, Dask runs the task again,
    and the driver stores every combination exactly once."""
    import distributed

    w, p = tl.synthetic_history(200, 300, seed=11)
    grid = {"cash_buffer": [0.0, 0.01, 0.02, 0.03, 0.04, 0.05]}
    db = tmp_path / "killed.duckdb"
    pids = wait_for_workers(address, 1)
    killed = {}

    def kill_when_busy():
        with distributed.Client(address, set_as_default=False) as client:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                busy = {k: v for k, v in client.processing().items()
                        if any("simulate_combination" in str(t) for t in v)}
                if busy:
                    time.sleep(0.05)
                    worker = next(iter(busy))
                    os.kill(pids[worker], signal.SIGKILL)  # the worker process our `dask worker` started
                    killed["pid"] = pids[worker]
                    return
                time.sleep(0.01)

    killer = threading.Thread(target=kill_when_busy)
    killer.start()
    result = sweep(w, p, grid=grid, portfolio_value=1e6, model_version="k-1", scheduler=address, db=db,
                   progress=False)
    killer.join()
    assert killed, "no task was seen running"
    assert list(result.table()["status"]) == ["new"] * 6
    new_pids = wait_for_workers(address, 1)
    assert killed["pid"] not in new_pids.values()  # the nanny started a new worker process
    with tl.Store(db, read_only=True) as s:
        ids = s.con.execute("SELECT simulation_id, count(*) FROM simulations GROUP BY 1").fetchall()
        events = s.con.execute("SELECT run_id, count(*) FROM audit_events GROUP BY 1").fetchall()
    assert sorted(i for i, _ in ids) == sorted(result.table()["simulation_id"]) and {n for _, n in ids} == {1}
    assert len(events) == 6 and {n for _, n in events} == {1}
    verify = run_cli("verify", "--all", "--db", db)
    assert verify.returncode == 0, verify.stdout
    serial = sweep(w, p, grid=grid, portfolio_value=1e6, model_version="k-1", db=tmp_path / "serial.duckdb",
                   progress=False)
    assert stored_rows(db) == stored_rows(tmp_path / "serial.duckdb")


# --- batches: the same artifacts and rows from local threads, the dask pair and LocalClusters of 2 and 8 workers

@pytest.fixture(scope="module")
def batches(tmp_path_factory, address):
    """The same three-snapshot batch (two valid, one that fails validation) three ways, each at the same paths
    (the database path is written into every artifact), then moved aside."""
    import shutil

    import pandas as pd

    from support import DATA

    base = tmp_path_factory.mktemp("batches")
    snaps = base / "snapshots"
    snaps.mkdir()
    sample = pd.read_csv(DATA / "sample_snapshot.csv")
    sample.to_csv(snaps / "a.csv", index=False)
    sample.assign(weight=sample["weight"] * 0.9).to_csv(snaps / "b.csv", index=False)
    (snaps / "c_bad.csv").write_text("symbol,weight,price\nAAA,NaN,10\n")
    out = {}
    for name, extra in (("local", ["--workers", "2"]), ("dask", ["--scheduler", address]),
                        ("localcluster", ["--scheduler", "local", "--workers", "2"]),
                        ("localcluster8", ["--scheduler", "local", "--workers", "8"])):
        work = base / "work"
        proc = run_cli("batch", "--snapshots", snaps, "--params", DATA / "params_pass.json", "--fallback-prices",
                       DATA / "fallback_prices.csv", "--portfolio-value", "1000000", "--model-version", "cl-1",
                       "--out", work / "artifacts", "--db", work / "b.duckdb", "--kernel", "tradeloop", "--json",
                       *extra, timeout=600)
        shutil.move(work, base / name)
        out[name] = {"proc": proc, "dir": base / name, "result": json.loads(proc.stdout) if proc.stdout else None}
    return out


def test_batch_runs_on_the_cluster_and_records_every_run(batches, address):
    for name, b in batches.items():
        assert b["proc"].returncode == 1, (name, b["proc"].stderr)  # c_bad.csv fails validation
        assert b["result"]["counts"] == {"done": 2, "failed": 1}, name
    assert batches["dask"]["result"]["ran_on"] == f"Dask cluster {address} (1 worker(s))"
    assert batches["localcluster"]["result"]["ran_on"] == "Dask LocalCluster of 2 worker(s)"
    assert batches["localcluster8"]["result"]["ran_on"] == "Dask LocalCluster of 8 worker(s)"
    failed = [r for r in batches["dask"]["result"]["runs"] if r["status"] == "failed"]
    assert failed[0]["snapshot_file"].endswith("c_bad.csv") and "weight" in failed[0]["error"]


def test_batch_artifacts_and_rows_are_the_same_wherever_it_ran(batches):
    local = batches["local"]["dir"]
    names = sorted(p.name for p in (local / "artifacts").iterdir())
    assert len(names) == 3
    for name in ("dask", "localcluster", "localcluster8"):
        other = batches[name]["dir"]
        assert sorted(p.name for p in (other / "artifacts").iterdir()) == names
        for artifact in names:
            a = masked_text((local / "artifacts" / artifact).read_text(encoding="utf-8"))
            b = masked_text((other / "artifacts" / artifact).read_text(encoding="utf-8"))
            assert a == b, f"{name}: {artifact} differs"
        assert masked_database(local / "b.duckdb") == masked_database(other / "b.duckdb"), name


def test_batch_from_the_cluster_verifies(batches):
    d = batches["dask"]["dir"]
    assert run_cli("verify", "--all", "--db", d / "b.duckdb").returncode == 0
    run_id = next(r["run_id"] for r in batches["dask"]["result"]["runs"] if r["status"] == "done")
    proc = run_cli("verify-artifact", d / "artifacts" / f"{run_id}.ipynb", "--db", d / "b.duckdb")
    assert proc.returncode == 0, proc.stdout
