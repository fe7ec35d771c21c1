"""Ctrl-C on the driver of a sweep or a batch, at a chosen point: ``TRADELOOP_INTERRUPT_AT=POINT:N`` makes the real
CLI send itself SIGINT the Nth time it reaches POINT (a combination or run committed, or inside its transaction),
wherever the tasks run. The command exits 130 with one line, what was committed stays whole and nothing else is left
(no half-written rows, no artifact without its row), ``verify --all`` agrees, and running the same command again
finishes the rest without storing anything twice."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest
from cluster import masked_database, masked_text, stored_rows
from support import DATA, ROOT, history_files, run_cli

import tradeloop as tl

INTERRUPTED = 130
GRID = {"cash_buffer": [0.0, 0.01, 0.02], "risk.max_position_ratio": [0.08, None]}


def _interrupted(*args, at: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """The CLI with ``TRADELOOP_INTERRUPT_AT=at`` and SIGINT at its default disposition (pytest may have inherited
    it ignored from a cluster started earlier), so the real signal path is what runs."""
    env = {**os.environ, "TRADELOOP_INTERRUPT_AT": at}
    env.pop("TRADELOOP_DEBUG", None)
    return subprocess.run([sys.executable, "-m", "tradeloop", *map(str, args)], capture_output=True, text=True,
                          env=env, cwd=ROOT, timeout=timeout,
                          preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def _interrupted_line(proc: subprocess.CompletedProcess) -> None:
    assert proc.returncode == INTERRUPTED, (proc.returncode, proc.stderr)
    assert ("error: interrupted; everything committed before stays and the step in progress was rolled back: run the "
            "same command again to finish") in proc.stderr.splitlines()  # a cut-off kernel may log after it
    assert "Traceback" not in proc.stderr


def _simulations(db: Path) -> list[str]:
    with tl.Store(db, read_only=True) as s:
        return sorted(s.simulation_ids())


def _events_per_run(db: Path) -> dict:
    with tl.Store(db, read_only=True) as s:
        return dict(s.con.execute("SELECT run_id, count(*) FROM audit_events GROUP BY 1").fetchall())


@pytest.fixture(scope="module")
def history(tmp_path_factory):
    h = history_files(tmp_path_factory.mktemp("interrupt-inputs"), 15, 30, seed=21, grid=GRID)
    db = h["dir"] / "whole.duckdb"
    whole = tl.sweep(h["weights"], h["prices"], grid=GRID, portfolio_value=1e6, model_version="i-1", db=db,
                     progress=False)
    assert whole.counts == {"new": 6}
    return {**h, "whole": db}


@pytest.mark.parametrize("at", ["after_combination:2", "mid_combination:3"])
@pytest.mark.parametrize("extra", [[], ["--scheduler", "local", "--workers", "2"]], ids=["serial", "local-cluster"])
def test_ctrl_c_mid_sweep_keeps_what_was_committed_and_a_rerun_finishes(history, tmp_path, extra, at):
    """Two combinations committed; with ``mid_combination:3`` the third was written inside its transaction when
    the interrupt came, and none of it is left."""
    d, db = history["dir"], tmp_path / "int.duckdb"
    args = ["sweep", "--weights", d / "weights.csv", "--prices", d / "prices.csv", "--grid", d / "grid.json",
            "--portfolio-value", "1000000", "--model-version", "i-1", "--db", db, "--no-progress", *extra]
    _interrupted_line(_interrupted(*args, at=at))
    kept = _simulations(db)
    assert len(kept) == 2 and set(kept) <= set(_simulations(history["whole"]))
    events = _events_per_run(db)
    assert sorted(events) == kept and set(events.values()) == {1}  # one audit event per stored simulation, no other
    verify = run_cli("verify", "--all", "--db", db)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    again = run_cli(*args, "--json", timeout=300)
    assert again.returncode == 0, again.stderr
    statuses = [r["status"] for r in json.loads(again.stdout)["combinations"]]
    assert statuses.count("stored") == 2 and statuses.count("new") == 4
    assert stored_rows(db) == stored_rows(history["whole"])  # nothing twice, nothing missing, the same chain
    assert run_cli("verify", "--all", "--db", db).returncode == 0


def test_ctrl_c_mid_batch_on_a_local_cluster_keeps_the_recorded_runs(tmp_path):
    """Interrupted inside the second run's transaction (its artifact already published): the first run stays, the
    second is rolled back and its artifact removed, and the re-run executes the other two."""
    snaps, work = tmp_path / "snapshots", tmp_path / "work"  # both batches at the same paths (written in artifacts)
    snaps.mkdir()
    sample = pd.read_csv(DATA / "sample_snapshot.csv")
    for i, scale in enumerate((1.0, 0.9, 0.8)):
        sample.assign(weight=sample["weight"] * scale).to_csv(snaps / f"s{i}.csv", index=False)
    db, out = work / "b.duckdb", work / "artifacts"
    args = ["batch", "--snapshots", snaps, "--params", DATA / "params_pass.json", "--fallback-prices",
            DATA / "fallback_prices.csv", "--portfolio-value", "1000000", "--model-version", "ib-1", "--out", out,
            "--db", db, "--kernel", "tradeloop", "--no-progress", "--workers", "2"]
    whole = run_cli(*args, timeout=600)  # in threads here (test_cluster.py: the same as on a cluster)
    assert whole.returncode == 0, whole.stderr
    shutil.move(work, tmp_path / "whole")
    args += ["--scheduler", "local"]

    _interrupted_line(_interrupted(*args, at="mid_artifact:2", timeout=600))
    with tl.Store(db, read_only=True) as s:
        runs = s.runs()
        recorded = [r[0] for r in s.con.execute("SELECT run_id FROM run_artifacts").fetchall()]
    assert list(runs["status"]) == ["done"] and recorded == list(runs["run_id"])
    first = recorded[0]
    assert sorted(p.name for p in out.iterdir()) == [f"{first}.ipynb"]  # no artifact without its row
    assert run_cli("verify", "--all", "--db", db).returncode == 0
    kept = run_cli("verify-artifact", out / f"{first}.ipynb", "--db", db)
    assert kept.returncode == 0, kept.stdout

    again = run_cli(*args, "--json", timeout=600)
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["counts"] == {"done": 3}
    assert run_cli("verify", "--all", "--db", db).returncode == 0
    names = sorted(p.name for p in (tmp_path / "whole" / "artifacts").iterdir())
    assert sorted(p.name for p in out.iterdir()) == names and len(names) == 3
    for name in [n for n in names if n != f"{first}.ipynb"]:  # executed once, by the re-run
        assert masked_text((out / name).read_text(encoding="utf-8")) == masked_text(
            (tmp_path / "whole" / "artifacts" / name).read_text(encoding="utf-8")), name
    a, b = masked_database(db), masked_database(tmp_path / "whole" / "b.duckdb")
    bookkeeping = ("trade_runs", "run_artifacts", "audit_events")
    assert {t for t in a if a[t] != b[t]} <= set(bookkeeping)  # orders, fills, events: each stored once
    assert _without(a["trade_runs"], "attempts") == _without(b["trade_runs"], "attempts")
    assert sorted(r["run_id"] for r in a["run_artifacts"]) == sorted(r["run_id"] for r in b["run_artifacts"])
    # the re-run re-checked the run recorded before the interrupt (as any batch re-run does) and executed the others
    # once: the chain holds the uninterrupted batch's events and, beyond them, events of that run only
    assert not _events(b["audit_events"]) - _events(a["audit_events"])
    assert {run for run, _ in _events(a["audit_events"]) - _events(b["audit_events"])} == {first}


def _without(rows: list[dict], column: str) -> list[dict]:
    return sorted(({k: v for k, v in r.items() if k != column} for r in rows), key=lambda r: r["run_id"])


def _events(rows: list[dict]) -> Counter:
    """Audit events by (run, event type)."""
    return Counter((r["run_id"] or r["payload"].get("run_id"), r["event_type"]) for r in rows)
