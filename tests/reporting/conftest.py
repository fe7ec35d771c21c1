"""A 3,000-order run (and a blocked one) in a real DuckDB file, shared by the reporting tests of a module."""

from __future__ import annotations

import pytest
from books import write_book, write_params

import tradeloop as tl


@pytest.fixture(scope="module")
def big(tmp_path_factory):
    """``db``, ``done`` (a 3,000-order run that filled), ``blocked`` (the same book blocked by a notional limit),
    ``inputs`` (the file paths)."""
    folder = tmp_path_factory.mktemp("big")
    inputs = write_book(folder)
    db = folder / "big.duckdb"
    common = dict(portfolio_value=50_000_000.0, model_version="big-v1", **inputs)
    done = tl.run_from_files(db, params_file=write_params(folder, "pass"), **common)
    blocked = tl.run_from_files(db, params_file=write_params(folder, "block", max_order_notional=40_000), **common)
    assert len(done.orders) >= 3_000 and done.result.status == "done", done.result
    assert blocked.result.status == "blocked"
    return {"db": db, "done": done, "blocked": blocked, "inputs": inputs, "folder": folder}
