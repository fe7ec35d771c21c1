"""The notebooks as a user runs them with papermill: only given inputs are used, every parameter is checked, and
the executed artifact starts with a verdict whose fields are read back from the notebook."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pandas as pd
import papermill as pm
import pytest

import tradeloop as tl
from tradeloop.reporting.notebook import check_trade_params, review
from tradeloop.reporting.verdict import VERDICT_FIELDS, file_sha256, notebook_verdict

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
DATA = NOTEBOOKS.parent / "data"


def _execute(name: str, out: Path, **parameters):
    pm.execute_notebook(str(NOTEBOOKS / name), str(out), parameters=parameters, kernel_name="tradeloop",
                        progress_bar=False, cwd=str(out.parent))
    return nbformat.read(out, as_version=4)


def test_user_snapshot_without_positions_trades_only_its_symbols(tmp_path):
    snap = pd.DataFrame({"symbol": ["AAA", "BBB", "CCC"], "weight": [0.3, 0.3, 0.3], "price": [10.0, 20.0, 30.0],
                         "sector": ["Tech", "Health", "Energy"]})
    snap.to_csv(tmp_path / "mine.csv", index=False)
    db = tmp_path / "mine.duckdb"
    nb = _execute("trade_run.ipynb", tmp_path / "out.ipynb", db_path=str(db), snapshot_file=str(tmp_path / "mine.csv"),
                  portfolio_value=100_000.0, model_version="mine-v1", positions_file="")
    with tl.Store(db, read_only=True) as store:
        runs = store.runs()
        orders = store.orders(runs["run_id"].iloc[0])
        positions, fallback = store.run_inputs(runs["run_id"].iloc[0])
    assert len(runs) == 1
    assert set(orders["symbol"]) <= {"AAA", "BBB", "CCC"} and len(orders) == 3
    assert (orders["side"] == "BUY").all()
    assert positions is None or positions.empty
    assert fallback is None or fallback.empty
    verdict = notebook_verdict(nb)
    assert verdict["input.snapshot"] == f"sha256 {file_sha256(tmp_path / 'mine.csv')} (mine.csv)"
    assert verdict["input.positions"] == "- (none given)"
    assert verdict["input.fallback_prices"] == "- (none given)"
    assert "demo" not in verdict
    assert verdict["database"] == str(db.resolve())


def test_trade_run_artifact_has_the_verdict_fields(tmp_path):
    db = tmp_path / "a.duckdb"
    nb = _execute("trade_run.ipynb", tmp_path / "a.ipynb", db_path=str(db),
                  snapshot_file=str(DATA / "sample_snapshot.csv"), positions_file=str(DATA / "positions.csv"),
                  fallback_prices_file=str(DATA / "fallback_prices.csv"), params_file=str(DATA / "params_block.json"),
                  portfolio_value=1_000_000.0, model_version="art-v1")
    verdict = notebook_verdict(nb)
    for key in VERDICT_FIELDS:
        assert key in verdict, key
    with tl.Store(db, read_only=True) as store:
        row = store.get_run(verdict["run_id"])
        snap = store.load_snapshot(row["snapshot_id"])
    assert verdict["status"] == row["status"] == "blocked"
    assert verdict["snapshot_content_hash"] == snap.content_hash
    assert verdict["attempts"] == "1"
    assert verdict["risk.max_order_notional"] == "35000"
    assert verdict["param.commission.model"] == "PerShareCommission"
    assert verdict["input.params"] == f"sha256 {file_sha256(DATA / 'params_block.json')} (params_block.json)"
    assert verdict["verification"].startswith("VERIFIED")
    assert verdict["portfolio_value"] == "1,000,000.00"
    # the verdict comes first: no other output precedes it
    outputs = [c for c in nb.cells if c.cell_type == "code" and c.outputs]
    assert notebook_verdict(nbformat.from_dict({"cells": outputs[:1]})) == verdict


def test_review_artifact_has_the_verdict_fields(tmp_path):
    db = tmp_path / "r.duckdb"
    run = tl.run_from_files(db, snapshot_file=DATA / "sample_snapshot.csv", portfolio_value=1_000_000.0,
                            model_version="rev-v1", params_file=DATA / "params_pass.json")
    nb = _execute("review_run.ipynb", tmp_path / "r.ipynb", db_path=str(db), run_id=run.run_id)
    verdict = notebook_verdict(nb)
    assert set(VERDICT_FIELDS) <= set(verdict)
    assert verdict["run_id"] == run.run_id and verdict["status"] == "done"
    assert verdict["input.positions"] == "- (none given)"
    assert verdict["verification"].startswith("VERIFIED")


def test_review_verdict_states_a_broken_chain(tmp_path):
    db = tmp_path / "t.duckdb"
    run = tl.run_from_files(db, snapshot_file=DATA / "sample_snapshot.csv", portfolio_value=1_000_000.0,
                            model_version="t-v1", params_file=DATA / "params_pass.json")
    import duckdb

    con = duckdb.connect(str(db))
    con.execute("UPDATE audit_events SET payload = json_object('tampered', true) WHERE seq = 1")
    con.close()
    result = review(db, run.run_id)
    assert not result.verdict.ok
    assert result.verdict.fields["verification"].startswith("FAILED: `tradeloop verify` finds ")
    assert "data-verified='false'" in result.verdict._repr_html_()


@pytest.mark.parametrize("params, message", [
    ({"snapshot_file": "no/such.csv", "portfolio_value": 1e6, "model_version": "m"}, "snapshot_file 'no/such.csv'"),
    ({"positions_file": "x.csv"}, "snapshot_file is required"),
    ({"snapshot_file": str(DATA / "sample_snapshot.csv"), "model_version": "m"}, "portfolio_value is required"),
    ({"snapshot_file": str(DATA / "sample_snapshot.csv"), "portfolio_value": 1e6}, "model_version is required"),
    ({"snapshot_file": str(DATA / "sample_snapshot.csv"), "portfolio_value": "lots", "model_version": "m"},
     "portfolio_value must be a finite number > 0, got 'lots'"),
    ({"snapshot_file": str(DATA / "sample_snapshot.csv"), "portfolio_value": -1.0, "model_version": "m"},
     "portfolio_value must be"),
    ({"snapshot_file": str(DATA / "sample_snapshot.csv"), "portfolio_value": 1e6, "model_version": 3},
     "model_version must be text"),
    ({"snapshot_file": str(DATA / "sample_snapshot.csv"), "portfolio_value": 1e6, "model_version": "m",
      "dry_run": "maybe"}, "dry_run must be true or false"),
    ({"snapshot_file": str(DATA / "sample_snapshot.csv"), "portfolio_value": 1e6, "model_version": "m",
      "risk_limits": "tight"}, "risk_limits must be a mapping"),
    ({"snapshot_file": str(DATA / "sample_snapshot.csv"), "portfolio_value": 1e6, "model_version": "m",
      "fallback_prices_file": 5}, "fallback_prices_file must be a file path"),
    ({"snapshot_file": str(DATA / "sample_snapshot.csv"), "portfolio_value": 1e6, "model_version": "m",
      "colour": "red"}, "unknown parameter"),
])
def test_trade_params_are_checked_one_line(params, message):
    with pytest.raises(tl.ValidationError, match=message) as e:
        check_trade_params(**params)
    assert "\n" not in str(e.value)


def test_empty_and_none_mean_not_given_and_only_the_demo_uses_samples():
    given = check_trade_params(snapshot_file=str(DATA / "sample_snapshot.csv"), positions_file="",
                               fallback_prices_file=None, params_file="  ", portfolio_value=1e6, model_version="m")
    assert given["positions_file"] is None and given["fallback_prices_file"] is None and given["params_file"] is None
    assert given["demo"] is False
    demo = check_trade_params()
    assert demo["demo"] is True and demo["positions_file"].name == "positions.csv"


def test_bad_parameter_fails_the_notebook_with_one_line(tmp_path):
    with pytest.raises(pm.PapermillExecutionError) as e:
        _execute("trade_run.ipynb", tmp_path / "bad.ipynb", db_path=str(tmp_path / "b.duckdb"),
                 snapshot_file=str(DATA / "sample_snapshot.csv"), model_version="m")
    assert e.value.ename == "ValidationError" and e.value.evalue == "portfolio_value is required (not given)"
    assert not (tmp_path / "b.duckdb").exists()
