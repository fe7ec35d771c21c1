"""tradeloop as a user gets it: a wheel installed into a fresh virtual environment outside the repository, run
from a directory that has nothing of the checkout in it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest
from support import ROOT

from tradeloop.resources import SAMPLE_FILES

TCP_WARNING = "without encryption"
SOURCES = ("pyproject.toml", "README.md", "tradeloop", "data", "notebooks")


def _run(cmd: list, cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TRADELOOP_", "JUPYTER_", "PYTHON", "VIRTUAL_ENV"))}
    return subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def _ok(proc: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert proc.returncode == 0, f"{proc.args} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    assert TCP_WARNING not in proc.stdout + proc.stderr
    return proc


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel, built from a copy of the sources (the build writes build/ and *.egg-info next to them)."""
    src = tmp_path_factory.mktemp("src")
    for name in SOURCES:
        (shutil.copytree if (ROOT / name).is_dir() else shutil.copy)(
            ROOT / name, src / name, **({"ignore": shutil.ignore_patterns("__pycache__")} if (ROOT / name).is_dir() else {}))
    dist = tmp_path_factory.mktemp("dist")
    _ok(_run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", dist, src], cwd=src))
    return next(dist.glob("tradeloop-*.whl"))


def test_wheel_holds_every_package_data_file_and_module(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    shipped = [f"tradeloop/data/{p.name}" for p in (ROOT / "data").iterdir() if p.suffix in (".csv", ".json")]
    shipped += [f"tradeloop/notebooks/{p.name}" for p in (ROOT / "notebooks").glob("*.ipynb")]
    shipped += [str(p.relative_to(ROOT)) for p in (ROOT / "tradeloop").rglob("*.py")]
    assert shipped and not sorted(set(shipped) - names)
    packages = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    on_disk = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "tradeloop").rglob("__init__.py")}
    assert on_disk <= set(packages), f"packages missing from pyproject.toml: {sorted(on_disk - set(packages))}"


def test_installed_wheel_runs_demo_batch_notebooks_and_review_from_any_directory(wheel, tmp_path):
    venv = tmp_path / "venv"
    _ok(_run([sys.executable, "-m", "venv", venv], cwd=tmp_path))
    bin_ = venv / "bin"
    _ok(_run([bin_ / "python", "-m", "pip", "install", "-q", wheel], cwd=tmp_path))
    work = tmp_path / "elsewhere"
    work.mkdir()

    demo = _ok(_run([bin_ / "tradeloop", "demo", "--db", "demo.duckdb"], cwd=work))
    assert "status    done" in demo.stdout

    package_data = Path(_ok(_run([bin_ / "python", "-c", "import tradeloop.resources as r; print(r.data_dir())"],
                                 cwd=work)).stdout.strip())
    assert package_data.is_relative_to(venv) and (package_data / "sample_snapshot.csv").is_file()
    batch = _ok(_run([bin_ / "tradeloop", "batch", "--snapshots", package_data / "sample_snapshot.csv",
                      "--portfolio-value", "1000000", "--model-version", "m1", "--db", "batch.duckdb"], cwd=work))
    assert "status    done 1" in batch.stdout
    kernel = next(li for li in batch.stdout.splitlines() if li.startswith("kernel"))
    assert "tradeloop" in kernel and str(bin_) in kernel and "installed now" in kernel
    assert len(list((work / "artifacts").glob("run-*.ipynb"))) == 1

    review = _ok(_run([bin_ / "python", "-c", (
        "from tradeloop.resources import notebook_file; from tradeloop.workflows.batch import execute_notebook; "
        "print(*execute_notebook(notebook_file('review_run.ipynb'), 'review.ipynb', {'db_path': 'batch.duckdb'}, "
        "kernel='tradeloop'))")], cwd=work))
    assert review.stdout.split() == ["completed", "None"]

    copied = _ok(_run([bin_ / "tradeloop", "notebooks", "nb"], cwd=work))
    assert (work / "nb" / "trade_run.ipynb").is_file() and (work / "nb" / "data" / "sample_snapshot.csv").is_file()
    expected = len(list((ROOT / "notebooks").glob("*.ipynb"))) + len(SAMPLE_FILES)
    assert f"{expected} file(s) in nb" in copied.stdout
    assert sorted(p.name for p in (work / "nb" / "data").iterdir()) == sorted(SAMPLE_FILES)
