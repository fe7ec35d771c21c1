"""Attacks on executed-notebook artifacts and on the batch that writes them: real papermill executions on the
``tradeloop`` kernel, the real CLI in subprocesses, real DuckDB files.

One small batch (two snapshots and one file whose name is not UTF-8) runs once per module with its own copy of the
run notebook as source; each attack works on copies of its database and artifacts, so the attacks are independent.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import nbformat
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tradeloop as tl
from tradeloop.core.sizing import client_order_ids
from tradeloop.core.validate import SYMBOL_PATTERN
from tradeloop.store.artifacts import sha256_file
from tradeloop.workflows.batch import TRADE_NOTEBOOK, check_kernel

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "data"
KERNEL = "tradeloop"
GATE_CELL = """import os, pathlib, time
_gate = pathlib.Path(os.environ["TL_TEST_GATE"])
(_gate.parent / "started").touch()
while not _gate.exists():
    time.sleep(0.05)
"""


def run_cli(*args, env: dict | None = None, timeout: float = 300):
    base = {k: v for k, v in os.environ.items() if k not in ("TRADELOOP_DEBUG", "TRADELOOP_DB")}
    return subprocess.run([sys.executable, "-m", "tradeloop", *map(str, args)], capture_output=True, text=True,
                          env={**base, **(env or {})}, cwd=ROOT, timeout=timeout)


@pytest.fixture(scope="module", autouse=True)
def kernel_installed():
    check_kernel(KERNEL)


def _snapshot(path: Path, scale: float) -> None:
    weights = pd.read_csv(DATA / "sample_snapshot.csv")
    weights["weight"] = (weights["weight"] * scale).round(6)
    weights.to_csv(path, index=False)


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """A batch of two valid snapshots and one whose file name is not valid UTF-8, run from a copy of the notebook."""
    work = tmp_path_factory.mktemp("made")
    snaps = work / "snaps"
    snaps.mkdir()
    _snapshot(snaps / "a.csv", 0.5)
    _snapshot(snaps / "b.csv", 0.6)
    bad_name = os.fsdecode(bytes(snaps) + b"/c-\xff.csv")
    shutil.copy(DATA / "sample_snapshot.csv", bad_name)
    source = work / "source.ipynb"
    shutil.copy(TRADE_NOTEBOOK, source)
    db, out = work / "made.duckdb", work / "out"
    proc = run_cli("batch", "--snapshots", snaps, "--params", DATA / "params_pass.json", "--portfolio-value",
                   "1000000", "--model-version", "art-v1", "--notebook", source, "--out", out, "--db", db,
                   "--kernel", KERNEL, "--workers", "2", "--json", "--no-progress", timeout=600)
    result = json.loads(proc.stdout)
    done = [r for r in result["runs"] if r["papermill_status"] == "completed"]
    return {"proc": proc, "result": result, "db": db, "out": out, "source": source, "snaps": snaps, "done": done}


@pytest.fixture
def copy(made, tmp_path):
    """Copies of the batch's database and artifacts for one attack."""
    db, out = tmp_path / "db.duckdb", tmp_path / "out"
    shutil.copy(made["db"], db)
    shutil.copytree(made["out"], out)
    return {"db": db, "out": out, "a": out / f"{made['done'][0]['run_id']}.ipynb",
            "b": out / f"{made['done'][1]['run_id']}.ipynb"}


def _set_row_sha(db: Path, run_id: str, path: Path) -> None:
    """What a forger with write access does: make run_artifacts agree with the edited file."""
    with duckdb.connect(str(db)) as con:
        con.execute("UPDATE run_artifacts SET sha256 = ? WHERE run_id = ?", [sha256_file(path), run_id])


def _edit_image(c, made, tmp_path) -> dict:
    nb = nbformat.read(c["a"], as_version=4)
    cell = next(cell for cell in nb.cells for o in cell.get("outputs", []) if "image/png" in o.get("data", {}))
    png = next(o for o in cell.outputs if "image/png" in o.get("data", {}))
    png["data"]["image/png"] = png["data"]["image/png"][::-1]
    nbformat.write(nb, c["a"])
    _set_row_sha(c["db"], c["a"].stem, c["a"])
    return {"args": [c["a"], "--db", c["db"]], "expect": "run_artifacts sha256 is", "verify": True}


def _forged_database(c, made, tmp_path) -> dict:
    """The artifact names a forged database (with a row matching its edited summary); no --db given."""
    forged = tmp_path / "forged.duckdb"
    shutil.copy(c["db"], forged)
    nb = nbformat.read(c["a"], as_version=4)
    nb.metadata["papermill"]["parameters"]["db_path"] = str(forged)
    nbformat.write(nb, c["a"])
    _set_row_sha(forged, c["a"].stem, c["a"])
    return {"args": [c["a"]], "env": {"TRADELOOP_DB": str(c["db"])}, "expect": f"against {c['db']}"}


def _renamed(c, made, tmp_path) -> dict:
    """Run A's notebook saved under run B's file name."""
    shutil.copy(c["a"], c["b"])
    return {"args": [c["b"], "--db", c["db"]], "expect": f"is named after run {c['b'].stem} but its summary is of "
                                                           f"run {c['a'].stem}"}


def _row_parameters(c, made, tmp_path) -> dict:
    """run_artifacts.parameters edited (what a re-run would execute with)."""
    with duckdb.connect(str(c["db"])) as con:
        con.execute("UPDATE run_artifacts SET parameters = json_object('snapshot_file', '/tmp/x.csv') "
                    "WHERE run_id = ?", [c["a"].stem])
    return {"args": [c["a"], "--db", c["db"]], "expect": "run_artifacts parameters_sha256 is", "verify": True}


def _edited_cells_rerun(c, made, tmp_path) -> dict:
    """The artifact's code edited (and its row re-hashed); --rerun must never execute the artifact's cells."""
    marker = tmp_path / "artifact-code-ran"
    nb = nbformat.read(c["a"], as_version=4)
    nb.cells[2].source = f"open({str(marker)!r}, 'w').close()\n" + nb.cells[2].source
    nb.metadata["papermill"]["parameters"]["snapshot_file"] = str(made["snaps"] / "b.csv")
    nbformat.write(nb, c["a"])
    _set_row_sha(c["db"], c["a"].stem, c["a"])
    return {"args": [c["a"], "--db", c["db"], "--rerun", "--kernel", KERNEL], "expect": "re-run refused",
            "marker": marker}


def _source_changed_rerun(c, made, tmp_path) -> dict:
    """The recorded source notebook edited after the batch: the re-run is refused, nothing executes."""
    original = made["source"].read_bytes()
    nb = nbformat.reads(original.decode(), as_version=4)
    nb.cells.insert(2, nbformat.v4.new_code_cell("print('edited source')"))
    nbformat.write(nb, made["source"])
    return {"args": [c["a"], "--db", c["db"], "--rerun", "--kernel", KERNEL], "expect": "has changed since run",
            "restore": original}


ATTACKS = {
    "edited image, row sha256 updated": _edit_image,
    "forged database named in the artifact": _forged_database,
    "run A's notebook under run B's name": _renamed,
    "run_artifacts.parameters edited": _row_parameters,
    "artifact cells edited, then --rerun": _edited_cells_rerun,
    "source notebook changed, then --rerun": _source_changed_rerun,
}


@pytest.mark.parametrize("attack", list(ATTACKS))
def test_artifact_attack_is_reported_and_writes_nothing(made, copy, tmp_path, attack):
    assert len(made["done"]) == 2, made["proc"].stderr
    case = ATTACKS[attack](copy, made, tmp_path)
    with tl.Store(copy["db"], read_only=True) as s:
        before = s.table_counts()
    try:
        proc = run_cli("verify-artifact", *case["args"], env=case.get("env"))
    finally:
        if "restore" in case:
            made["source"].write_bytes(case["restore"])
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "difference(s)" in proc.stdout and case["expect"] in proc.stdout, proc.stdout
    assert "Traceback" not in proc.stderr
    with tl.Store(copy["db"], read_only=True) as s:
        assert s.table_counts() == before  # the database verified is never written
    if "marker" in case:
        assert not case["marker"].exists()  # the artifact's own code never ran
    if case.get("verify"):  # a database-side edit: `tradeloop verify` reports it too
        proc = run_cli("verify", "--db", copy["db"])
        assert proc.returncode != 0 and f"artifact: run {copy['a'].stem}: run_artifacts" in proc.stdout, proc.stdout


def test_untouched_artifacts_verify_against_the_default_database(made, copy):
    """The control for the attacks: the same copies, unedited, are OK — with --db, or $TRADELOOP_DB when omitted."""
    proc = run_cli("verify-artifact", copy["a"], env={"TRADELOOP_DB": str(copy["db"])})
    assert proc.returncode == 0 and f"OK against {copy['db']}" in proc.stdout, proc.stdout
    proc = run_cli("verify-artifact", copy["b"], "--db", copy["db"], "--rerun", "--kernel", KERNEL)
    assert proc.returncode == 0 and "re-run identical" in proc.stdout, proc.stdout
    proc = run_cli("verify", "--db", copy["db"])
    assert proc.returncode == 0 and "all agree" in proc.stdout and "not bound" not in proc.stdout, proc.stdout


def test_non_utf8_snapshot_name_is_refused_alone(made):
    result = made["result"]
    assert made["proc"].returncode == 1
    refused = [r for r in result["runs"] if r["papermill_status"] == "not run"]
    assert len(refused) == 1 and len(made["done"]) == 2
    assert "is not valid UTF-8" in refused[0]["error"] and "c-\\xff.csv" in refused[0]["error"]
    assert refused[0]["notebook_path"] == "" and refused[0]["status"] == "failed"
    with tl.Store(made["db"], read_only=True) as s:
        rows = s.con.execute("SELECT run_id, papermill_status FROM run_artifacts ORDER BY run_id").fetchall()
        assert len(s.runs()) == 2
    assert sorted(rows) == sorted((r["run_id"], r["papermill_status"]) for r in result["runs"])
    assert sorted(p.name for p in made["out"].iterdir()) == sorted(f"{r['run_id']}.ipynb" for r in made["done"])


def test_symlink_at_artifact_name_is_replaced_not_followed(made, copy, tmp_path):
    """A symlink planted at <out>/<run_id>.ipynb: the next batch replaces the link; its target is untouched."""
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    copy["a"].unlink()
    copy["a"].symlink_to(victim)
    snaps = tmp_path / "one"
    snaps.mkdir()
    shutil.copy(made["snaps"] / "a.csv", snaps / "a.csv")
    proc = run_cli("batch", "--snapshots", snaps, "--params", DATA / "params_pass.json", "--portfolio-value",
                   "1000000", "--model-version", "art-v1", "--notebook", made["source"], "--out", copy["out"],
                   "--db", copy["db"], "--kernel", KERNEL, "--json", "--no-progress", timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["runs"][0]["run_id"] == copy["a"].stem
    assert victim.read_text() == "precious"
    assert not copy["a"].is_symlink() and tl.verify_artifact(copy["a"], db=copy["db"]) == []
    assert not [p for p in copy["out"].iterdir() if p.name.startswith(".")]  # no temporary file left behind


def _gated_batch(tmp_path, db, snapshot, model_version):
    """`tradeloop batch` on one snapshot whose notebook waits, once its kernel runs, for a gate file to appear."""
    nb = nbformat.read(TRADE_NOTEBOOK, as_version=4)
    nb.cells.insert(2, nbformat.v4.new_code_cell(GATE_CELL))
    source = tmp_path / "gated.ipynb"
    nbformat.write(nb, source)
    base = {k: v for k, v in os.environ.items() if k not in ("TRADELOOP_DEBUG", "TRADELOOP_DB")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "tradeloop", "batch", "--snapshots", snapshot, "--params", DATA / "params_pass.json",
         "--portfolio-value", "1000000", "--model-version", model_version, "--notebook", source, "--out",
         tmp_path / "out", "--db", db, "--kernel", KERNEL, "--no-progress", "--json"],
        env={**base, "TL_TEST_GATE": str(tmp_path / "gate")}, cwd=ROOT, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300  # a safety limit for a stuck kernel, not a timing assertion
    while not (tmp_path / "started").exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            (tmp_path / "gate").touch()
            pytest.fail(f"the gated batch never started its notebook: {proc.communicate()}")
        time.sleep(0.1)
    return proc


def test_reader_and_writers_get_in_while_a_batch_runs(tmp_path):
    """The batch holds the database only to seed and to merge: while its notebook runs, `runs` reads the file and
    `run` writes to it (each waiting at most 2 s for the lock). A `run` of the batch's own run meanwhile is not
    merged over (two executions would interleave): the batch says so and the database still verifies."""
    db, snapshot = tmp_path / "shared.duckdb", DATA / "sample_snapshot.csv"
    batch = _gated_batch(tmp_path, db, snapshot, "gate-v1")
    try:
        lock = {"TRADELOOP_LOCK_TIMEOUT": "2"}
        common = ["run", "--snapshot", snapshot, "--params", DATA / "params_pass.json", "--db", db, "--json"]
        reader = run_cli("runs", "--db", db, env=lock)
        other = run_cli(*common, "--portfolio-value", "500000", "--model-version", "other-v1", env=lock)
        same = run_cli(*common, "--portfolio-value", "1000000", "--model-version", "gate-v1", env=lock)
    finally:
        (tmp_path / "gate").touch()
        out, err = batch.communicate(timeout=300)
    assert reader.returncode == 0, reader.stderr
    assert other.returncode == 0 and same.returncode == 0, other.stderr + same.stderr
    (record,) = json.loads(out)["runs"]
    assert record["run_id"] == json.loads(same.stdout)["run_id"]
    assert batch.returncode == 1 and record["papermill_status"] == "not merged", out + err
    assert "was worked by another process while its notebook ran" in record["error"]
    with tl.Store(db, read_only=True) as s:
        assert len(s.runs()) == 2 and s.con.execute("SELECT count(*) FROM run_artifacts").fetchone()[0] == 0
    proc = run_cli("verify", "--db", db)
    assert proc.returncode == 0 and "all agree" in proc.stdout, proc.stdout


def test_batch_merges_runs_written_by_others_meanwhile(tmp_path):
    """The control: another process's run (a different run) written while the notebook runs; the batch merges."""
    db = tmp_path / "shared.duckdb"
    batch = _gated_batch(tmp_path, db, DATA / "sample_snapshot.csv", "gate-v1")
    try:
        other = run_cli("run", "--snapshot", DATA / "sample_snapshot.csv", "--params", DATA / "params_pass.json",
                        "--portfolio-value", "500000", "--model-version", "other-v1", "--db", db,
                        env={"TRADELOOP_LOCK_TIMEOUT": "2"})
    finally:
        (tmp_path / "gate").touch()
        out, err = batch.communicate(timeout=300)
    assert other.returncode == 0, other.stderr
    assert batch.returncode == 0, out + err
    with tl.Store(db, read_only=True) as s:
        assert len(s.runs()) == 2 and s.con.execute("SELECT count(*) FROM run_artifacts").fetchone()[0] == 1
    assert run_cli("verify", "--db", db).returncode == 0


@pytest.mark.parametrize("symbol", ["A/../../etc/x", "BRK/B", "ES:CME", "..x"])
def test_symbol_that_is_not_file_name_safe_is_refused(tmp_path, symbol):
    """Symbols start every client order id, promised safe in file names: a path separator or ':' is refused."""
    snap = tmp_path / "snap.csv"
    snap.write_text(f"symbol,weight,price\nAAA,0.1,10\n{symbol},0.1,20\n")
    db = tmp_path / "x.duckdb"
    proc = run_cli("run", "--snapshot", snap, "--portfolio-value", "100000", "--model-version", "m1", "--db", db)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert proc.stderr.startswith("error: ") and len(proc.stderr.splitlines()) == 1
    assert f"symbol {symbol!r} in row 2 is not allowed" in proc.stderr and not db.exists()


@given(st.from_regex(SYMBOL_PATTERN, fullmatch=True), st.sampled_from(["BUY", "SELL"]))
@settings(max_examples=200, deadline=None)
def test_client_order_ids_of_accepted_symbols_are_file_name_safe(symbol, side):
    (order_id,) = client_order_ids("run-1", symbol, side, "m1")
    assert re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", order_id) and order_id not in (".", "..")
    assert os.path.basename(order_id) == order_id
