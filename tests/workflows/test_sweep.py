"""Parameter sweeps: the grid, the stored simulations, the result table, re-runs and bad combinations (interrupts:
test_interrupt.py), with real processes (the CLI in a subprocess, local worker processes, a real Dask LocalCluster)."""

from __future__ import annotations

import json
import os

import pandas as pd
import pytest
from cluster import stored_rows
from support import ROOT, history_files, run_cli, sweep_cli

import tradeloop as tl
from tradeloop.errors import ValidationError
from tradeloop.workflows.params import RunParams
from tradeloop.workflows.sweep import expand_grid, sweep

GRID = {"cash_buffer": [0.0, 0.05], "risk.max_position_ratio": [0.06, None]}


@pytest.fixture(scope="module")
def history(tmp_path_factory):
    return history_files(tmp_path_factory.mktemp("sweep-inputs"), 12, 25, seed=3,
                         grid={**GRID, "slippage": [{"model": "FixedBpsSlippage", "bps": 5}]})


def _sweep_cli(history, db, *extra, grid="grid.json"):
    return sweep_cli(history["dir"], db, *extra, grid=grid, model_version="sw-1")


def test_grid_is_the_cartesian_product_in_key_order():
    combos = expand_grid(GRID)
    assert [c.settings for c in combos] == [
        {"cash_buffer": 0.0, "risk.max_position_ratio": 0.06}, {"cash_buffer": 0.0, "risk.max_position_ratio": None},
        {"cash_buffer": 0.05, "risk.max_position_ratio": 0.06}, {"cash_buffer": 0.05, "risk.max_position_ratio": None}]
    params = [RunParams.from_dict(c.params) for c in combos]
    assert [p.cash_buffer for p in params] == [0.0, 0.0, 0.05, 0.05]
    assert [p.risk.max_position_ratio for p in params] == [0.06, None, 0.06, None]


def test_grid_as_a_list_of_params_objects_over_base_params():
    base = RunParams.from_dict({"lot_size": 10, "risk": {"max_order_notional": 1000}})
    combos = expand_grid([{"risk": {"max_position_ratio": 0.1}}, {"cash_buffer": 0.01, "slippage.bps": 3,
                                                                  "slippage.model": "FixedBpsSlippage"}], base)
    first, second = (RunParams.from_dict(c.params) for c in combos)
    assert first.lot_size == second.lot_size == 10
    assert first.risk.max_position_ratio == 0.1 and first.risk.max_order_notional == 1000
    assert second.cash_buffer == 0.01 and second.slippage.bps == 3
    assert combos[0].settings == {"risk.max_position_ratio": 0.1}


@pytest.mark.parametrize("grid, message", [
    ({}, "grid is empty"),
    ([], "grid is an empty list"),
    ("nope", "grid file 'nope' does not exist"),
    (7, "grid must be an object"),
    ({"cash_buffer": 0.1}, "'cash_buffer' must map to a non-empty list"),
    ({"cash_buffer": []}, "'cash_buffer' must map to a non-empty list"),
    ({"cash_bufer": [0.1]}, "params path 'cash_bufer' is unknown"),
    ({"risk..x": [1]}, "is not a dotted name"),
    ([{"cash_buffer": 0}, 5], "grid item 2 must be a params object"),
])
def test_malformed_grid_is_refused(grid, message):
    with pytest.raises(ValidationError, match=message):
        expand_grid(grid)


def test_bad_grid_cli_exit_2_and_nothing_written(history, tmp_path):
    (history["dir"] / "bad.json").write_text('{"cash_buffer": "x"}')
    db = tmp_path / "bad.duckdb"
    proc = _sweep_cli(history, db, grid="bad.json")
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().splitlines() == ["error: grid: 'cash_buffer' must map to a non-empty list of values, "
                                                "got 'x'"]
    assert not db.exists()


def test_sweep_stores_each_combination_as_its_simulation(history, tmp_path):
    db = tmp_path / "sweep.duckdb"
    result = sweep(history["weights"], history["prices"], grid=GRID, portfolio_value=1e6, model_version="sw-1",
                   db=db, progress=False)
    rows = result.table()
    assert list(rows["status"]) == ["new"] * 4 and result.exit_code == 0
    for combo, row in zip(expand_grid(GRID), rows.to_dict("records")):
        sim = tl.simulate(history["weights"], history["prices"], portfolio_value=1e6, model_version="sw-1",
                          params=RunParams.from_dict(combo.params))
        assert row["simulation_id"] == sim.simulation_id  # the usual derived id
        described = sim.describe()
        assert row["final_value"] == pytest.approx(sum(described["final_value"]), abs=0.01)
        assert row["orders"] == described["orders"] and row["blocked"] == described["blocked"]
        assert row["commission"] == pytest.approx(described["commission"], abs=0.01)
        assert row["return"] == pytest.approx(sum(described["final_value"]) / 1e6 - 1, abs=1e-8)
        assert row["turnover"] == pytest.approx(sim.summary["turnover"].sum())
    assert rows["blocked"].iloc[0] > 0 and rows["blocked"].iloc[1] == 0  # the position cap did something
    with tl.Store(db, read_only=True) as s:
        assert sorted(s.simulation_ids()) == sorted(rows["simulation_id"])
        assert tl.verify_store(s).ok


def test_cli_bad_combination_fails_alone_and_rerun_stores_nothing_new(history, tmp_path):
    (history["dir"] / "with_bad.json").write_text(json.dumps({"cash_buffer": [0.0, -0.5, 0.02]}))
    db = tmp_path / "cli.duckdb"
    first = _sweep_cli(history, db, "--workers", "2", grid="with_bad.json")
    assert first.returncode == 1, first.stderr
    out = json.loads(first.stdout)
    assert [r["status"] for r in out["combinations"]] == ["new", "failed", "new"]
    bad = out["combinations"][1]
    assert bad["cash_buffer"] == -0.5 and "params.cash_buffer is -0.5" in bad["error"]
    assert out["counts"] == {"failed": 1, "new": 2}
    before = stored_rows(db)
    again = _sweep_cli(history, db, "--workers", "2", grid="with_bad.json")
    assert again.returncode == 1
    rows = json.loads(again.stdout)["combinations"]
    assert [r["status"] for r in rows] == ["stored", "failed", "stored"]
    assert [r["final_value"] for r in rows] == [r["final_value"] for r in out["combinations"]]
    assert stored_rows(db) == before  # nothing new: no rows, no audit events
    verify = run_cli("verify", "--all", "--db", db)
    assert verify.returncode == 0, verify.stdout + verify.stderr


def test_text_output_names_the_failed_combination(history, tmp_path):
    (history["dir"] / "one_bad.json").write_text(json.dumps([{"cash_buffer": 0.01}, {"max_leverage": -1}]))
    proc = run_cli("sweep", "--weights", history["dir"] / "weights.csv", "--prices", history["dir"] / "prices.csv",
                   "--grid", history["dir"] / "one_bad.json", "--portfolio-value", "1e6", "--model-version", "m",
                   "--db", tmp_path / "t.duckdb", "--no-progress")
    assert proc.returncode == 1
    assert "failed    #1 (max_leverage=-1): invalid params: params.max_leverage is -1" in proc.stdout


def test_local_processes_and_local_cluster_store_identical_rows(history, tmp_path):
    kwargs = dict(grid=history["dir"] / "grid.json", portfolio_value=1e6, model_version="sw-1", progress=False)
    serial = sweep(history["weights"], history["prices"], db=tmp_path / "serial.duckdb", **kwargs)
    cluster = sweep(history["weights"], history["prices"], db=tmp_path / "cluster.duckdb", scheduler="local",
                    workers=2, **kwargs)
    assert cluster.ran_on == "Dask LocalCluster of 2 worker(s)"
    pd.testing.assert_frame_equal(serial.table(), cluster.table())
    assert stored_rows(tmp_path / "serial.duckdb") == stored_rows(tmp_path / "cluster.duckdb")


def test_scheduler_without_distributed_is_one_line(history, tmp_path):
    blocker = tmp_path / "blocker"
    (blocker / "distributed").mkdir(parents=True)
    (blocker / "distributed" / "__init__.py").write_text("raise ImportError('no distributed here')\n")
    proc = run_cli("sweep", "--weights", history["dir"] / "weights.csv", "--prices", history["dir"] / "prices.csv",
                   "--grid", history["dir"] / "grid.json", "--portfolio-value", "1e6", "--model-version", "m",
                   "--db", tmp_path / "x.duckdb", "--scheduler", "local",
                   env={"PYTHONPATH": os.pathsep.join([str(blocker), str(ROOT)])})
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "error: --scheduler needs Dask distributed, which is not installed; install it with: "
        "pip install 'tradeloop[dask]' (or: pip install distributed)"]


@pytest.mark.parametrize("scheduler, workers, message", [
    ("nowhere", None, "scheduler is 'nowhere'; give 'local' or a Dask scheduler address"),
    ("tcp://127.0.0.1:8786", "3", "workers applies to local processes and --scheduler local"),
])
def test_bad_scheduler_is_refused(history, tmp_path, scheduler, workers, message):
    extra = ["--scheduler", scheduler] + (["--workers", workers] if workers else [])
    proc = _sweep_cli(history, tmp_path / "s.duckdb", *extra)
    assert proc.returncode == 2 and message in proc.stderr
    assert not (tmp_path / "s.duckdb").exists()


def test_bad_scheduler_in_the_environment_is_refused(history, tmp_path):
    proc = run_cli("sweep", "--weights", history["dir"] / "weights.csv", "--prices", history["dir"] / "prices.csv",
                   "--grid", history["dir"] / "grid.json", "--portfolio-value", "1e6", "--model-version", "m",
                   "--db", tmp_path / "e.duckdb", env={"TRADELOOP_SCHEDULER": "udp://x"})
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: TRADELOOP_SCHEDULER: scheduler is 'udp://x'")


def test_a_combination_whose_simulation_fails_is_reported_and_the_others_stored(history, tmp_path):
    """Valid params that the history breaks (weights above max_leverage): the task reports it; others complete."""
    result = sweep(history["weights"], history["prices"], grid=[{"max_leverage": 0.5}, {"cash_buffer": 0.01}],
                   portfolio_value=1e6, db=tmp_path / "f.duckdb", workers=2, progress=False)
    rows = result.table().to_dict("records")
    assert [r["status"] for r in rows] == ["failed", "new"]
    assert "beyond params.max_leverage 0.5" in rows[0]["error"] and rows[0]["simulation_id"] is None
    assert rows[1]["error"] is None and rows[1]["simulation_id"].startswith("sim-")
    assert "failed    #0 (max_leverage=0.5): " in result.summary()


def test_rows_carry_the_shortfall_by_cause_of_each_simulation(history, tmp_path):
    db = tmp_path / "sf.duckdb"
    rows = sweep(history["weights"], history["prices"], grid=GRID, portfolio_value=1e6, db=db,
                 progress=False).table()
    causes = [c for c in rows.columns if c.startswith("shortfall_") and c != "shortfall_bps"]
    assert "shortfall_rounding" in causes and "shortfall_risk:max_position_ratio" in causes
    for row in rows.to_dict("records"):
        gap = tl.shortfall(row["simulation_id"], db)
        assert row["shortfall_bps"] == pytest.approx(gap.total)
        assert [row[c] for c in causes] == pytest.approx(list(gap.by_cause["bps"]))
    assert sum(rows[causes].iloc[0]) == pytest.approx(rows["shortfall_bps"].iloc[0])
    capped = rows["shortfall_risk:max_position_ratio"]
    assert capped.iloc[0] != 0 and capped.iloc[1] == 0  # only the combination with the position cap


def test_one_stacked_pass_stores_what_separate_processes_store(history, tmp_path):
    """Without a scheduler, combinations that differ only in limits, buffers or costs run as one stacked pass
    (workflows/sweep_kernel.py): the stored rows, digests and audit events are those of one process per combination."""
    kwargs = dict(grid={**GRID, "commission": [{"model": "BpsCommission", "bps": 1}, {"model": "NoCommission"}]},
                  portfolio_value=1e6, model_version="sw-1", progress=False)
    stacked = sweep(history["weights"], history["prices"], db=tmp_path / "stacked.duckdb", **kwargs)
    separate = sweep(history["weights"], history["prices"], db=tmp_path / "separate.duckdb", workers=2, **kwargs)
    assert stacked.ran_on.startswith("this process, one stacked pass of 8")
    assert stacked.counts == separate.counts == {"new": 8}
    rows = stored_rows(tmp_path / "stacked.duckdb")
    assert rows == stored_rows(tmp_path / "separate.duckdb")
    assert rows["risk_decisions"] and rows["simulation_shortfall"]
    again = sweep(history["weights"], history["prices"], db=tmp_path / "stacked.duckdb", **kwargs)
    assert again.counts == {"stored": 8}
    serial = sweep(history["weights"], history["prices"], db=tmp_path / "serial.duckdb", stack=False, **kwargs)
    assert "stacked" not in serial.ran_on and serial.counts == {"new": 8}
    assert stored_rows(tmp_path / "serial.duckdb") == rows


def test_a_sweep_with_controls_stores_what_one_process_per_combination_stores(history, tmp_path):
    """Rebalancing controls are not stacked: without a scheduler such a sweep runs combination by combination and
    stores exactly what separate processes store (rows, decisions, shortfall, digests)."""
    grid = {"cash_buffer": [0.0, 0.05], "risk.max_order_notional": [20_000, None],
            "risk.min_order_notional": [2_000], "risk.max_turnover": [0.4]}
    kwargs = dict(grid=grid, portfolio_value=1e6, model_version="sw-1", progress=False)
    one = sweep(history["weights"], history["prices"], db=tmp_path / "one.duckdb", **kwargs)
    separate = sweep(history["weights"], history["prices"], db=tmp_path / "separate.duckdb", workers=2, **kwargs)
    assert "stacked" not in one.ran_on
    assert one.counts == separate.counts == {"new": 4}
    rows = stored_rows(tmp_path / "one.duckdb")
    assert rows == stored_rows(tmp_path / "separate.duckdb")
    assert {r["rule"] for r in rows["risk_decisions"]} >= {"min_order_notional", "max_order_notional"}
