"""Several processes on one database file: they wait for each other (bounded), never see a raw lock error, and
nothing is lost or duplicated."""

from __future__ import annotations

import json
import multiprocessing
import os
import subprocess
import sys
import threading

import pandas as pd
from support import DATA, ROOT, run_cli

from tradeloop import Store, create_run, load_params, load_snapshot_file, verify_store
from tradeloop.store.schema import SCHEMA_VERSION


def _popen(*args, env=None):
    full_env = {**os.environ, **(env or {})}
    full_env.pop("TRADELOOP_DEBUG", None)
    return subprocess.Popen([sys.executable, "-m", "tradeloop", *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=full_env, cwd=ROOT)


def _run_args(model_version):
    return ["run", "--snapshot", DATA / "sample_snapshot.csv", "--positions", DATA / "positions.csv",
            "--fallback-prices", DATA / "fallback_prices.csv", "--params", DATA / "params_pass.json",
            "--portfolio-value", "1000000", "--model-version", model_version, "--json"]


def test_eight_processes_on_one_file_lose_nothing_and_duplicate_nothing(db_path):
    snap = load_snapshot_file(DATA / "sample_snapshot.csv", portfolio_value=1_000_000, model_version="shared")
    with Store(db_path) as store:
        shared = create_run(store, snap, params=load_params(DATA / "params_pass.json"),
                            fallback_prices=pd.read_csv(DATA / "fallback_prices.csv")).run_id
    commands = [
        ["rerun", shared, "--json"], ["rerun", shared, "--json"], ["rerun", shared, "--json"],  # same run, at once
        _run_args("conc-a"), _run_args("conc-a"),  # the same new run twice
        _run_args("conc-b"), ["demo", "--json"],
        ["show", shared, "--json"],  # a reader among the writers
    ]
    procs = [_popen(*cmd, "--db", db_path) for cmd in commands]
    outs = [p.communicate(timeout=180) for p in procs]
    for cmd, p, (out, err) in zip(commands, procs, outs):
        assert p.returncode == 0, (cmd, out, err)
        assert "lock" not in err.lower() and "Traceback" not in err, (cmd, err)
    results = [json.loads(out) for out, _ in outs[:7]]
    assert {r["status"] for r in results} == {"done"}
    by_run = {}
    for r in results:
        by_run.setdefault(r["run_id"], set()).add((r["fills"], r["notional"], r["commission"]))
    assert len(by_run) == 4 and all(len(v) == 1 for v in by_run.values())  # every process saw the same result
    with Store(db_path, read_only=True) as s:
        check = verify_store(s)
        assert check.ok, check.differences
        runs = s.runs().set_index("run_id")
        assert len(runs) == 4 and set(runs["status"]) == {"done"}
        assert runs.loc[shared, "attempts"] == 3  # one execution, two re-checks
        for run_id in runs.index:
            orders, fills = s.orders(run_id), s.fills(run_id)
            assert orders["client_order_id"].is_unique and fills["fill_id"].is_unique
            assert (orders["status"] == "FILLED").all() and len(fills) == len(orders)
            assert (orders.set_index("client_order_id")["filled_qty"]
                    == fills.groupby("client_order_id")["qty"].sum()).all()
        counts = s.table_counts()
    assert counts["trade_fills"] == sum(r["fills"] for r in {r["run_id"]: r for r in results}.values())


def test_an_open_notebook_store_does_not_block_a_batch(db_path):
    notebook = Store(db_path)  # kept open, as a notebook would
    assert notebook.runs().empty
    proc = run_cli(*_run_args("nb-1"), "--db", db_path, env={"TRADELOOP_LOCK_TIMEOUT": "2"})
    assert proc.returncode == 0, proc.stderr
    assert list(notebook.runs()["status"]) == ["done"]  # and the notebook sees the batch's result at once
    notebook.close()


def test_a_held_file_fails_with_a_message_naming_the_holder(db_path):
    with Store(db_path) as store:
        with store.session():
            before = store.table_counts()
            proc = run_cli(*_run_args("held"), "--db", db_path, env={"TRADELOOP_LOCK_TIMEOUT": "0.5"})
        assert proc.returncode == 4, proc.stderr
        assert f"is in use by process {os.getpid()}" in proc.stderr and "waited 0.5s" in proc.stderr
        assert proc.stderr.count("\n") == 1 and "IO Error" not in proc.stderr
        assert store.table_counts() == before


#: Runs the CLI with ``duckdb.connect`` wrapped so the process says on stderr when it finds the file held: the
#: test then knows, from the process itself, that it is waiting (no guess at how long it takes to start).
_REPORTS_WAITING = """
import sys, duckdb
_connect = duckdb.connect
def connect(*args, **kwargs):
    try:
        return _connect(*args, **kwargs)
    except duckdb.IOException as e:
        if "lock" in str(e).lower():
            print("test: the database file is held", file=sys.stderr, flush=True)
        raise
duckdb.connect = connect
from tradeloop.cli import main
main()
"""


def test_a_writer_waits_for_the_holder_to_finish(db_path):
    store = Store(db_path)
    held, release = threading.Event(), threading.Event()

    def hold():
        with store.session():
            held.set()
            release.wait(180)

    holder = threading.Thread(target=hold)
    holder.start()
    assert held.wait(60)
    env = {**os.environ, "TRADELOOP_LOCK_TIMEOUT": "120"}
    env.pop("TRADELOOP_DEBUG", None)
    proc = subprocess.Popen([sys.executable, "-c", _REPORTS_WAITING, *map(str, _run_args("waits")), "--db",
                             str(db_path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT)
    waiting, err = threading.Event(), []

    def read_stderr():
        for line in proc.stderr:
            err.append(line)
            if line.startswith("test: the database file is held"):
                waiting.set()

    reader = threading.Thread(target=read_stderr)
    reader.start()
    try:
        assert waiting.wait(120), "".join(err)  # the CLI found the file held ...
        assert proc.poll() is None  # ... and waits instead of failing
    finally:
        release.set()
        holder.join()
    proc.wait(timeout=180)  # the JSON line on stdout is far smaller than a pipe's buffer
    reader.join()
    out = proc.stdout.read()
    assert proc.returncode == 0, "".join(err)
    assert json.loads(out)["status"] == "done"
    assert [line for line in err if not line.startswith("test: ")] == []
    assert list(store.runs()["status"]) == ["done"]


def test_store_methods_release_the_file_between_calls(db_path, sample_snapshot):
    with Store(db_path) as store:
        create_run(store, sample_snapshot)
        assert store._con is None
        store.runs()
        assert store._con is None
        with store.session() as con:
            assert store._con is con
            store.runs()
        assert store._con is None
        store.con.execute("SELECT 1")  # direct access still works (and pins the file until close)
        assert store._con is not None
    assert store._con is None


def _open_new_files(paths, barrier, errors) -> None:
    """One of several processes: open each (not yet existing) path at the same moment as the others."""
    for path in paths:
        barrier.wait(timeout=120)
        try:
            with Store(path, timeout=60) as store:
                assert store.schema_version() == SCHEMA_VERSION
        except Exception as e:  # noqa: BLE001  (reported to the parent, which fails the test)
            errors.put(f"{path}: {type(e).__name__}: {e}")


def test_processes_creating_the_same_new_file_at_once_all_open_it(tmp_path):
    ctx = multiprocessing.get_context("spawn")
    n_procs, rounds = 8, 20
    paths = [tmp_path / f"new-{i}.duckdb" for i in range(rounds)]
    barrier, errors = ctx.Barrier(n_procs), ctx.Queue()
    procs = [ctx.Process(target=_open_new_files, args=(paths, barrier, errors)) for _ in range(n_procs)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=600)
    found = []
    while not errors.empty():
        found.append(errors.get())
    assert found == []
    assert [p.exitcode for p in procs] == [0] * n_procs
    for path in paths:
        with Store(path, read_only=True) as store:
            assert store.schema_version() == SCHEMA_VERSION and store.runs().empty
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in paths)  # no temporary file left
