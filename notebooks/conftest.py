"""nbval set-up for every notebook in this folder (``pytest`` runs them with ``--nbval-lax``, see pyproject.toml).

The notebooks read ``$TRADELOOP_DB`` when their ``db_path`` parameter is None. Before the first notebook cell runs,
this points it at a temporary database seeded with two runs of the bundled data (one done, one blocked by risk), so
the review and overview notebooks have something to read and nothing is written into the repository. The kernel is
``tradeloop`` (installed by the README's set-up command) and outputs are sanitized with ``sanitize.cfg``, unless
given on the command line.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
EXAMPLE_INPUTS = dict(snapshot_file="data/sample_snapshot.csv", positions_file="data/positions.csv",
                      fallback_prices_file="data/fallback_prices.csv", portfolio_value=1_000_000.0,
                      model_version="nb-v1")
_state: dict = {}


def seed_example_db(path: Path) -> None:
    """The runs the saved notebook outputs were made with: trade_run.ipynb's defaults (done), then blocked."""
    import tradeloop as tl

    tl.run_from_files(path, params_file="data/params_pass.json", **EXAMPLE_INPUTS)
    tl.run_from_files(path, params_file="data/params_block.json", **EXAMPLE_INPUTS)


def _is_notebook_item(item) -> bool:
    return Path(str(item.fspath)).suffix == ".ipynb"


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    if not _is_notebook_item(item) or "dir" in _state:
        return
    opt = item.config.option
    if getattr(opt, "nbval_kernel_name", None) is None and not getattr(opt, "nbval_current_env", False):
        opt.nbval_kernel_name = "tradeloop"
    if getattr(opt, "nbval_sanitize_with", None) is None:
        opt.nbval_sanitize_with = str(HERE / "sanitize.cfg")
    tmp = Path(tempfile.mkdtemp(prefix="tradeloop-nbval-"))
    db = tmp / "notebooks.duckdb"
    seed_example_db(db)
    _state.update(dir=tmp, previous=os.environ.get("TRADELOOP_DB"))
    os.environ["TRADELOOP_DB"] = str(db)  # the kernels nbval starts inherit this environment


def pytest_runtest_teardown(item, nextitem):
    if "dir" not in _state or (nextitem is not None and _is_notebook_item(nextitem)):
        return
    previous = _state.pop("previous")
    if previous is None:
        os.environ.pop("TRADELOOP_DB", None)
    else:
        os.environ["TRADELOOP_DB"] = previous
    shutil.rmtree(_state.pop("dir"), ignore_errors=True)
