"""simulate partitioned by portfolio: one task per portfolio, never a slice of time, the same simulation as one
process (ids, orders, fills, summary and stored rows, to the last bit), here and on a real Dask LocalCluster."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from cluster import stored_rows
from support import run_cli

import tradeloop as tl
from tradeloop.workflows.params import RunParams
from tradeloop.workflows.partition import simulate_partitioned

LIMITED = RunParams.from_dict({
    "cash_buffer": 0.01, "lot_size": 10, "risk": {"max_position_ratio": 0.09, "max_order_notional": 40_000},
    "slippage": {"model": "FixedBpsSlippage", "bps": 4}, "commission": {"model": "PerShareCommission", "rate": 0.005},
    "liquidity": {"model": "VolumeParticipation", "max_rate": 0.002}, "steps": 3})


def _ragged(w: pd.DataFrame) -> pd.DataFrame:
    """Not every (date, portfolio, symbol) has a row, and one portfolio skips a whole date (it then sells down)."""
    keep = (np.arange(len(w)) % 7 != 3) & ~((w["portfolio"] == "P1") & (w["date"] == w["date"].unique()[4]))
    return w.loc[keep].reset_index(drop=True)


def _same(a: tl.Simulation, b: tl.Simulation) -> None:
    assert a.simulation_id == b.simulation_id
    pd.testing.assert_frame_equal(a.orders, b.orders, check_exact=True)
    pd.testing.assert_frame_equal(a.fills, b.fills, check_exact=True)
    pd.testing.assert_frame_equal(a.summary, b.summary, check_exact=True)
    pd.testing.assert_frame_equal(a.positions, b.positions, check_exact=True)
    assert a.describe() == b.describe()


@pytest.mark.parametrize("params, ragged", [(None, False), (LIMITED, True)], ids=["dense-defaults", "ragged-limited"])
@pytest.mark.parametrize("workers", [None, 2])
def test_partitioned_equals_one_process(params, ragged, workers, tmp_path):
    w, p = tl.synthetic_history(12, 30, seed=4, n_portfolios=3)
    if ragged:
        w = _ragged(w)
    values = {"P0": 1e6, "P1": 2e6, "P2": 5e5}
    one = tl.simulate(w, p, portfolio_value=values, params=params, model_version="part-1")
    split = simulate_partitioned(w, p, portfolio_value=values, params=params, model_version="part-1",
                                 workers=workers)
    _same(one, split)
    if params is LIMITED:
        assert (one.orders["n_fills"] > 1).any() and (one.orders["status"] == "REJECTED").any()
    with tl.Store(tmp_path / "a.duckdb") as s:
        tl.save_simulation(s, one)
    with tl.Store(tmp_path / "b.duckdb") as s:
        tl.save_simulation(s, split)
    assert stored_rows(tmp_path / "a.duckdb") == stored_rows(tmp_path / "b.duckdb")


def test_cli_simulate_on_a_local_cluster_is_partitioned_and_identical(tmp_path):
    pytest.importorskip("distributed")
    w, p = tl.synthetic_history(10, 20, seed=9, n_portfolios=2)
    w.to_csv(tmp_path / "w.csv", index=False)
    p.to_csv(tmp_path / "p.csv", index=False)
    common = ["simulate", "--weights", tmp_path / "w.csv", "--prices", tmp_path / "p.csv", "--portfolio-value",
              "1000000", "--model-version", "m", "--json", "--no-progress"]
    one = run_cli(*common, "--db", tmp_path / "one.duckdb")
    split = run_cli(*common, "--db", tmp_path / "split.duckdb", "--scheduler", "local", "--workers", "2",
                    timeout=300)
    assert one.returncode == split.returncode == 0, split.stderr
    a, b = json.loads(one.stdout), json.loads(split.stdout)
    assert b.pop("partitions") == 2 and a.pop("partitions") == 1
    assert b.pop("ran_on") == "Dask LocalCluster of 2 worker(s)"
    a.pop("ran_on")
    assert {k: v for k, v in a.items() if k != "db"} == {k: v for k, v in b.items() if k != "db"}
    assert stored_rows(tmp_path / "one.duckdb") == stored_rows(tmp_path / "split.duckdb")


def test_partitioned_shortfall_equals_one_process():
    w, p = tl.synthetic_history(12, 30, seed=4, n_portfolios=3)
    w = _ragged(w)
    one = tl.simulate(w, p, portfolio_value=1e6, params=LIMITED)
    split = simulate_partitioned(w, p, portfolio_value=1e6, params=LIMITED, workers=2)
    a, b = tl.shortfall(one), tl.shortfall(split)
    assert a.total == b.total and a.total != 0
    pd.testing.assert_frame_equal(a.by_cause, b.by_cause, check_exact=True)
    pd.testing.assert_frame_equal(a.by_symbol, b.by_symbol, check_exact=True)
    pd.testing.assert_frame_equal(a.by_date, b.by_date, check_exact=True)


def test_simulate_with_a_scheduler_partitions_several_portfolios_and_is_identical():
    """``tl.simulate(..., scheduler=...)``: one task per portfolio on a real LocalCluster, the same simulation (a
    given simulation id included)."""
    pytest.importorskip("distributed")
    from tradeloop.workflows.history import simulate_on

    w, p = tl.synthetic_history(10, 20, seed=12, n_portfolios=3)
    w = _ragged(w)
    one = tl.simulate(w, p, portfolio_value=1e6, params=LIMITED, model_version="part-2")
    split, where, tasks = simulate_on(w, p, portfolio_value=1e6, params=LIMITED, model_version="part-2",
                                      scheduler="local", workers=2)
    assert (where, tasks) == ("Dask LocalCluster of 2 worker(s)", 3)
    _same(one, split)
    _same(one, tl.simulate(w, p, portfolio_value=1e6, params=LIMITED, model_version="part-2", workers=2))
    named = tl.simulate(w, p, portfolio_value=1e6, params=LIMITED, model_version="part-2", workers=2,
                        simulation_id="sim-given")
    assert named.simulation_id == "sim-given" and named.describe()["orders"] == one.describe()["orders"]


@pytest.mark.parametrize("portfolios", [None, "P0"], ids=["no-portfolio-column", "one-portfolio"])
def test_simulate_with_a_scheduler_runs_one_portfolio_in_this_process(portfolios):
    """A history is never split along time: one portfolio runs here, so a scheduler nobody listens on is never
    contacted (it would be refused with 'cannot reach')."""
    from tradeloop.workflows.history import simulate_on

    w, p = tl.synthetic_history(8, 15, seed=13)
    if portfolios:
        w = w.assign(portfolio=portfolios)
    one = tl.simulate(w, p, portfolio_value=1e6)
    here, where, tasks = simulate_on(w, p, portfolio_value=1e6, scheduler="tcp://127.0.0.1:9", workers=None)
    assert (where, tasks) == ("this process", 1)
    _same(one, here)
    _same(one, tl.simulate(w, p, portfolio_value=1e6, scheduler="tcp://127.0.0.1:9"))


def test_simulate_reads_no_scheduler_from_the_environment(monkeypatch):
    from tradeloop.workflows.history import simulate_on

    monkeypatch.setenv("TRADELOOP_SCHEDULER", "tcp://127.0.0.1:9")
    w, p = tl.synthetic_history(6, 10, seed=14, n_portfolios=2)
    assert simulate_on(w, p, portfolio_value=1e6)[1:] == ("this process", 1)


@pytest.mark.parametrize("scheduler, workers, message", [
    ("nowhere", None, "scheduler is 'nowhere'; give 'local' or a Dask scheduler address"),
    ("tcp://127.0.0.1:9", 2, "workers applies to local processes and --scheduler local"),
    (None, 0, "workers is 0; it must be a whole number >= 1"),
])
def test_simulate_refuses_a_bad_scheduler(scheduler, workers, message):
    w, p = tl.synthetic_history(4, 5, seed=1, n_portfolios=2)
    with pytest.raises(tl.ValidationError, match=message):
        tl.simulate(w, p, portfolio_value=1e6, scheduler=scheduler, workers=workers)
