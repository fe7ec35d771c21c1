"""Shared fixtures: a fresh DuckDB file per test, the bundled sample data, a real CLI subprocess runner, and the
``engine`` fixture that runs one case through a stored run and through a one-date history (``engines.py``)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import settings
from engines import ENGINES, make_engine
from support import DATA, ROOT, run_cli  # noqa: F401  (re-exported for fixtures)

from tradeloop import Store, load_params, load_snapshot_file


#: No hypothesis deadlines: a deadline is a wall-clock assert, and an example's time says nothing of its correctness
#: (a first call that loads a compiled kernel, a loaded machine).
settings.register_profile("tradeloop", deadline=None)
settings.load_profile("tradeloop")


def pytest_configure(config):
    """With pytest-xdist (``-n``, see pyproject.toml), compile the numba kernels once in a subprocess before the
    workers start: each worker's ``compiled_kernels`` and every CLI, kernel and Dask process they start then load
    them from the disk cache, instead of the workers compiling them side by side in a fresh checkout. Its failure
    is left to the tests that call the kernels to report."""
    if hasattr(config, "workerinput") or config.getoption("dist", "no") == "no" or config.option.collectonly:
        return
    subprocess.run([sys.executable, "-c", "from tradeloop.core.jit import warm; warm()"], capture_output=True,
                   timeout=900, check=False)


@pytest.fixture(scope="session", autouse=True)
def compiled_kernels():
    """Compile (or load from the disk cache) every numba kernel once per test process, before the first test: a
    kernel's first call otherwise costs a compile (seconds in a fresh checkout) or a load (~0.5 s) inside whichever
    test calls it first, which a hypothesis deadline would count against that test."""
    from tradeloop.core.jit import warm

    warm()


@pytest.fixture
def db_path(tmp_path) -> Path:
    return tmp_path / "test.duckdb"


@pytest.fixture
def store(db_path):
    with Store(db_path) as s:
        yield s


@pytest.fixture
def sample_snapshot():
    return load_snapshot_file(DATA / "sample_snapshot.csv", portfolio_value=1_000_000, model_version="test-v1")


@pytest.fixture
def pass_params():
    return load_params(DATA / "params_pass.json")


@pytest.fixture
def block_params():
    return load_params(DATA / "params_block.json")


@pytest.fixture
def fallback_prices():
    return pd.read_csv(DATA / "fallback_prices.csv")


@pytest.fixture
def positions():
    return pd.read_csv(DATA / "positions.csv")


@pytest.fixture
def cli():
    return run_cli


@pytest.fixture(params=ENGINES)
def engine(request, tmp_path):
    """One path through the engine (``run`` or ``history``): call it with a case's inputs, get an ``Outcome``."""
    return make_engine(request.param, tmp_path)
