"""Notebook workflows end to end: real papermill executions on the ``tradeloop`` kernel, real DuckDB files.

Kernel starts cost seconds, so the batch is executed once per module (4 workers, 5 snapshots) and the tests read
what it left behind; the tests that change its database or artifacts come last in the file.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pandas as pd
import papermill as pm
import pytest

import tradeloop as tl
from tradeloop.core.digest import verify_chain
from tradeloop.reporting.reports import parse_summary, summary_text
from tradeloop.store.artifacts import sha256_file
from tradeloop.workflows.batch import TRADE_NOTEBOOK, check_kernel, notebook_summary

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "data"


def run_cli(*args, timeout: float = 300):
    """The real ``tradeloop`` program in a subprocess (like conftest's ``cli`` fixture, usable at module scope)."""
    env = {k: v for k, v in os.environ.items() if k != "TRADELOOP_DEBUG"}
    return subprocess.run([sys.executable, "-m", "tradeloop", *map(str, args)], capture_output=True, text=True,
                          env=env, cwd=ROOT, timeout=timeout)

KERNEL = "tradeloop"
N_VALID = 4


@pytest.fixture(scope="session", autouse=True)
def kernel_installed():
    check_kernel(KERNEL)  # fails with the install command when the README set-up was skipped


def _variant(path, seed: int, scale: float) -> None:
    weights = pd.read_csv(DATA / "sample_snapshot.csv")
    rng = pd.Series(range(len(weights))).mul(seed).mod(7).div(70)  # deterministic, different per file
    weights["weight"] = (weights["weight"] * (scale - rng)).round(6)
    weights.to_csv(path, index=False)


@pytest.fixture(scope="module")
def batch_dir(tmp_path_factory):
    """Five snapshot files: four valid (one with an awkward file name), one that fails validation."""
    d = tmp_path_factory.mktemp("snapshots")
    for i in range(1, 4):
        _variant(d / f"snap_{i}.csv", i, 1.0)
    shutil.copy(DATA / "sample_snapshot.csv", d / "odd name; 'quoted' & spaced.csv")
    (d / "zz_bad.csv").write_text("symbol,weight,price\nAAA,NaN,10\nBBB,0.1,20\n")
    return d


@pytest.fixture(scope="module")
def batch(batch_dir, tmp_path_factory):
    """``tradeloop batch`` with 4 workers on one database (the real CLI in a subprocess)."""
    work = tmp_path_factory.mktemp("batch")
    db, out = work / "batch.duckdb", work / "artifacts"
    proc = run_cli("batch", "--snapshots", batch_dir, "--params", DATA / "params_block.json",
                   "--fallback-prices", DATA / "fallback_prices.csv", "--portfolio-value", "1000000",
                   "--model-version", "batch-v1", "--workers", "4", "--out", out, "--db", db, "--kernel", KERNEL,
                   "--json", timeout=600)
    return {"proc": proc, "db": db, "out": out, "result": json.loads(proc.stdout), "dir": batch_dir}


def _counts(db):
    with tl.Store(db, read_only=True) as s:
        counts = s.table_counts()
        counts["run_artifacts"] = int(s.con.execute("SELECT count(*) FROM run_artifacts").fetchone()[0])
        chain = verify_chain(s.audit_events())
    return counts, chain


def test_papermill_run_notebook_parameterized(tmp_path):
    """trade_run.ipynb executed by papermill with inline risk limits: the summary cell states the stored run."""
    db, out = tmp_path / "pm.duckdb", tmp_path / "executed.ipynb"
    pm.execute_notebook(str(TRADE_NOTEBOOK), str(out), kernel_name=KERNEL, progress_bar=False, parameters={
        "db_path": str(db), "snapshot_file": str(DATA / "sample_snapshot.csv"),
        "positions_file": str(DATA / "positions.csv"), "fallback_prices_file": str(DATA / "fallback_prices.csv"),
        "params_file": str(DATA / "params_pass.json"), "risk_limits": {"max_order_notional": 30_000},
        "portfolio_value": 1_000_000, "model_version": "pm-v1"})
    nb = nbformat.read(out, as_version=4)
    summary = notebook_summary(nb)
    with tl.Store(db, read_only=True) as s:
        runs = s.runs()
        assert len(runs) == 1
        result = tl.run_result(s, runs["run_id"][0])
        params = json.loads(s.get_run(result.run_id)["params"])
    assert params["risk"]["max_order_notional"] == 30_000  # the inline limit reached the run
    assert result.status == "blocked" and result.blocked_reasons
    assert summary == parse_summary(summary_text(result))
    assert summary["status"] == "blocked" and summary["risk_blocked"] == str(len(result.blocked_reasons))
    texts = "".join(o.get("text", "") + o.get("data", {}).get("text/plain", "")
                    for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))
    assert "risk BLOCKED" in texts
    html = "".join(o.get("data", {}).get("text/html", "") for c in nb.cells for o in c.get("outputs", []))
    assert "exceeds max_order_notional" in html  # the reason of every blocked order is shown
    assert sum(1 for c in nb.cells for o in c.get("outputs", []) if "image/png" in o.get("data", {})) >= 3


def test_batch_four_workers_records_every_run(batch):
    proc, result, db, out = batch["proc"], batch["result"], batch["db"], batch["out"]
    assert proc.returncode == 1, proc.stderr  # one snapshot failed validation
    runs = result["runs"]
    assert len(runs) == N_VALID + 1 and result["workers"] == 4
    assert result["counts"] == {"blocked": N_VALID, "failed": 1}  # params_block blocks every variant
    counts, chain = _counts(db)
    assert chain == []  # four workers' audit events re-chained onto one valid chain
    assert counts["trade_runs"] == N_VALID and counts["run_artifacts"] == N_VALID + 1
    with tl.Store(db, read_only=True) as s:
        arts = s.con.execute("SELECT * FROM run_artifacts ORDER BY run_id").df()
        assert s.con.execute("SELECT count(*) - count(DISTINCT client_order_id) FROM trade_orders").fetchone()[0] == 0
        per_run = s.con.execute("SELECT run_id, count(*) AS n FROM trade_orders GROUP BY run_id").df()
        events = s.con.execute("SELECT run_id, count(*) AS n FROM audit_events WHERE run_id IS NOT NULL "
                               "GROUP BY run_id").df()
        bound = s.con.execute("SELECT json_extract_string(payload, '$.run_id') AS run_id, "
                              "json_extract_string(payload, '$.sha256') AS sha256 FROM audit_events "
                              "WHERE event_type = 'run_artifact.recorded' AND run_id IS NULL").df()
    assert len(per_run) == N_VALID and (per_run["n"] > 0).all()
    assert (events["n"] == 1).all() and len(events) == N_VALID
    # every artifact (the failed notebook's too) is bound in the chain by its sha256
    assert bound.set_index("run_id")["sha256"].to_dict() == arts.set_index("run_id")["sha256"].to_dict()
    for row in arts.itertuples():
        path = out.resolve() / f"{row.run_id}.ipynb"
        assert row.notebook_path == str(path) and path.is_file()
        assert row.sha256 == sha256_file(path)
        params = json.loads(row.parameters)
        assert params["db_path"] == str(db.resolve()) and "work_db" not in params
        assert row.batch_id == result["batch_id"]
    assert sorted(p.name for p in out.iterdir()) == sorted(f"{r}.ipynb" for r in arts["run_id"])


def test_batch_failed_snapshot_keeps_artifact_and_error(batch):
    failed = [r for r in batch["result"]["runs"] if r["papermill_status"] == "failed"]
    assert len(failed) == 1
    bad = failed[0]
    assert bad["snapshot_file"].endswith("zz_bad.csv") and bad["run_id"].startswith("invalid-")
    assert "weight for 'AAA' is 'NaN'" in bad["error"]
    nb = nbformat.read(bad["notebook_path"], as_version=4)
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []) if o["output_type"] == "error"]
    assert errors and errors[0]["ename"] == "ValidationError"
    with tl.Store(batch["db"], read_only=True) as s:
        row = s.con.execute("SELECT papermill_status, error FROM run_artifacts WHERE run_id = ?",
                            [bad["run_id"]]).fetchone()
    assert row[0] == "failed" and "weight for 'AAA' is 'NaN'" in row[1]
    ok = [r for r in batch["result"]["runs"] if r["papermill_status"] == "completed"]
    assert len(ok) == N_VALID and all(r["status"] == "blocked" for r in ok)
    records = tuple(tl.ArtifactRecord(**r) for r in batch["result"]["runs"])
    summary = tl.BatchResult("b", batch["db"], batch["out"], 4, records).summary()
    assert "failed    zz_bad.csv" in summary and "status    blocked 4 · failed 1" in summary


def test_batch_overview_and_review_read_the_batch(batch):
    table = tl.batch_table(batch["db"], batch["result"]["batch_id"])
    assert len(table) == N_VALID + 1
    assert table.set_index("snapshot").loc["zz_bad.csv", "status"] == "failed"
    blocked = table.loc[table["status"] == "blocked"]
    assert blocked["reason"].str.contains("exceeds max_order_notional").all()
    run_id = blocked["run_id"].iloc[0]
    # shortfall per run: the same number tl.shortfall gives, and the batch's own summary has it too
    assert table["shortfall_bps"].notna().sum() == N_VALID
    for rid, bps in table.dropna(subset=["shortfall_bps"])[["run_id", "shortfall_bps"]].itertuples(index=False):
        assert bps == tl.shortfall(rid, batch["db"]).total == batch["result"]["shortfall_bps"][rid]
    report = tl.load_report(batch["db"], run_id)
    assert tl.audit_check(batch["db"], run_id) == []
    assert tl.audit_line([], report.result).startswith("OK: execution results match the audit record")


def test_verify_artifact_accepts_the_batch_artifacts(batch):
    runs = batch["result"]["runs"]
    for r in runs:
        problems = tl.verify_artifact(r["notebook_path"], db=batch["db"])
        if r["papermill_status"] == "completed":
            assert problems == []
        else:
            assert any("error output: ValidationError" in p for p in problems)
            assert any("never ran" in p for p in problems)
    good = next(r for r in runs if r["papermill_status"] == "completed")
    bad = next(r for r in runs if r["papermill_status"] == "failed")
    proc = run_cli("verify-artifact", good["notebook_path"], "--db", batch["db"])
    assert proc.returncode == 0 and f": OK against {batch['db']}" in proc.stdout
    proc = run_cli("verify-artifact", bad["notebook_path"], "--db", batch["db"])
    assert proc.returncode == 1 and "error output: ValidationError" in proc.stdout


@pytest.mark.parametrize("tamper, expected", [
    (lambda text: text.replace('"status: blocked\\n"', '"status: done\\n"'), "summary status: artifact says 'done'"),
    (lambda text: text.replace('"source": [', '"source": [\n    "# edited\\n",', 1), "sha256"),
    (lambda text: text.replace('"status": "completed"', '"status": "failed"', 1), "papermill status 'failed'"),
])
def test_verify_artifact_catches_tampering(batch, tmp_path, tamper, expected):
    run = next(r for r in batch["result"]["runs"] if r["papermill_status"] == "completed")
    copy = tmp_path / Path(run["notebook_path"]).name  # same name: the edit, not the name, is what is caught
    original = open(run["notebook_path"], encoding="utf-8").read()
    changed = tamper(original)
    assert changed != original
    copy.write_text(changed, encoding="utf-8")
    proc = run_cli("verify-artifact", copy, "--db", batch["db"])
    assert proc.returncode == 1
    assert "difference(s)" in proc.stdout and expected in proc.stdout
    assert "sha256" in proc.stdout  # any edit changes the file's hash


def test_verify_artifact_bad_input(tmp_path, batch):
    missing = run_cli("verify-artifact", tmp_path / "nope.ipynb", "--db", batch["db"])
    assert missing.returncode == 2 and "does not exist" in missing.stderr
    junk = tmp_path / "junk.ipynb"
    junk.write_text("not json")
    proc = run_cli("verify-artifact", junk, "--db", batch["db"])
    assert proc.returncode == 2 and "is not a readable notebook" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_batch_bad_input(tmp_path):
    base = ["batch", "--portfolio-value", "1000000", "--model-version", "m1", "--db", tmp_path / "x.duckdb",
            "--out", tmp_path / "out"]
    proc = run_cli(*base, "--snapshots", tmp_path / "nothing-*.csv")
    assert proc.returncode == 2 and "matches no file" in proc.stderr
    proc = run_cli(*base, "--snapshots", DATA / "sample_snapshot.csv", "--workers", "0")
    assert proc.returncode == 2 and "--workers" in proc.stderr
    proc = run_cli(*base, "--snapshots", DATA / "sample_snapshot.csv", "--kernel", "no-such-kernel-xyz")
    assert proc.returncode == 1
    assert "kernel 'no-such-kernel-xyz' is not installed; install it with: python -m ipykernel install" in proc.stderr
    assert not (tmp_path / "x.duckdb").exists()  # nothing was written


def _not_a_notebook(tmp_path):
    path = tmp_path / "nb.ipynb"
    path.write_text("print('hello')\n")
    return ["--notebook", path]


def _no_parameters_cell(tmp_path):
    path = tmp_path / "plain.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("print(1)")]), path)
    return ["--notebook", path]


def _params_not_json(tmp_path):
    path = tmp_path / "params.json"
    path.write_text("{not json")
    return ["--params", path]


@pytest.mark.parametrize("make_args, message", [
    (lambda tmp: ["--portfolio-value", "-5"], "portfolio_value is -5.0; it must be > 0"),
    (lambda tmp: ["--portfolio-value", "nan"], "portfolio_value is nan; it must be a finite number"),
    (lambda tmp: ["--model-version", ""], "model_version"),
    (_params_not_json, "is not valid JSON"),
    (lambda tmp: ["--positions", tmp / "missing.csv"], "positions file"),
    (lambda tmp: ["--provider", "no-such-venue"], "no-such-venue"),
    (_not_a_notebook, "is not a Jupyter notebook"),
    (_no_parameters_cell, "has no cell tagged 'parameters'"),
], ids=["negative value", "nan value", "empty model version", "params not JSON", "missing positions",
        "unknown provider", "not a notebook", "no parameters cell"])
def test_batch_refuses_bad_shared_inputs_before_any_kernel(tmp_path, make_args, message):
    """Inputs every snapshot shares are checked once, up front: exit 2, one line, no database, no artifact."""
    snaps = tmp_path / "snaps"
    snaps.mkdir()
    for name in ("a.csv", "b.csv"):
        shutil.copy(DATA / "sample_snapshot.csv", snaps / name)
    args = {"--portfolio-value": "1000000", "--model-version": "m1"}
    extra = make_args(tmp_path)
    for key, value in zip(extra[::2], extra[1::2]):
        args[key] = value
    flat = [x for kv in args.items() for x in kv]
    db, out = tmp_path / "x.duckdb", tmp_path / "out"
    proc = run_cli("batch", "--snapshots", snaps, *flat, "--db", db, "--out", out, "--kernel", "no-such-kernel-xyz")
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert proc.stderr.startswith("error: ") and message in proc.stderr and len(proc.stderr.splitlines()) == 1
    assert proc.stdout == "" and not db.exists() and not out.exists()


@pytest.mark.parametrize("command", ["batch", "verify-artifact"])
def test_commands_have_help_with_example(command):
    proc = run_cli(command, "--help")
    assert proc.returncode == 0 and "Example:" in proc.stdout


def test_verify_artifact_rerun_is_idempotent(batch):
    run = next(r for r in batch["result"]["runs"] if r["papermill_status"] == "completed")
    before, _ = _counts(batch["db"])
    proc = run_cli("verify-artifact", run["notebook_path"], "--db", batch["db"], "--rerun", "--kernel", KERNEL,
                   timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "re-run identical" in proc.stdout
    after, chain = _counts(batch["db"])
    assert chain == []
    assert after["trade_orders"] == before["trade_orders"] and after["trade_fills"] == before["trade_fills"]
    assert after == before  # the re-run executed against a copy: nothing written to the database it verifies


def test_rerunning_the_batch_is_idempotent(batch):
    """The same batch again, through the Python API: same run ids and artifacts, nothing duplicated."""
    before, _ = _counts(batch["db"])
    result = tl.run_batch(batch["dir"], params_file=DATA / "params_block.json",
                          fallback_prices_file=DATA / "fallback_prices.csv", portfolio_value=1_000_000,
                          model_version="batch-v1", workers=4, out=batch["out"], db=batch["db"], kernel=KERNEL,
                          progress=False)
    assert result.batch_id == batch["result"]["batch_id"]
    assert [r.run_id for r in result.records] == [r["run_id"] for r in batch["result"]["runs"]]
    after, chain = _counts(batch["db"])
    assert chain == []
    unchanged = {k: v for k, v in before.items() if k != "audit_events"}
    assert {k: after[k] for k in unchanged} == unchanged
    # each run re-checked and audited once, and each replaced artifact (the failed one's too) bound again
    assert after["audit_events"] == before["audit_events"] + N_VALID + (N_VALID + 1)
    assert result.exit_code == 1
    for r in result.records:
        if r.papermill_status == "completed":
            assert tl.verify_artifact(r.notebook_path, db=batch["db"]) == []  # the replaced artifacts agree


def test_artifacts_module_only_records_reads_and_hashes():
    """store/artifacts.py imports nothing above the store (no papermill, workflows or reporting): re-executing an
    artifact is the batch side's job, so the two modules no longer import each other."""
    import ast

    import tradeloop.store.artifacts as artifacts_module

    tree = ast.parse(Path(artifacts_module.__file__).read_text(encoding="utf-8"))
    imported = {("." * n.level) + (n.module or "") for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    imported |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    assert not {m for m in imported if m.startswith(("..workflows", "..reporting", "papermill", "tradeloop"))}
    assert tl.verify_artifact.__module__ == "tradeloop.workflows.batch"
