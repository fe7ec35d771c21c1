"""``import tradeloop`` and ``tradeloop --help`` load no heavy library; every public name still resolves."""

from __future__ import annotations

import subprocess
import sys

import tradeloop

HEAVY = ("pandas", "numpy", "duckdb", "pyarrow", "papermill", "matplotlib", "nbformat", "tqdm", "scipy", "numba")


def _loaded_after(code: str) -> list[str]:
    """The HEAVY modules a fresh interpreter has imported after running ``code``."""
    probe = f"{code}\nimport sys\nprint('loaded:', *(m for m in {HEAVY!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    return out.stdout.splitlines()[-1].split()[1:]


def test_import_tradeloop_loads_no_heavy_library():
    assert _loaded_after("import tradeloop") == []


def test_help_loads_no_heavy_library():
    code = ("import sys\nsys.argv = ['tradeloop', '--help']\nfrom tradeloop.cli import cli\n"
            "try:\n    cli.main(standalone_mode=False)\nexcept SystemExit:\n    pass")
    assert _loaded_after(code) == []
    done = subprocess.run([sys.executable, "-m", "tradeloop", "--help"], capture_output=True, text=True)
    assert done.returncode == 0 and "Usage: tradeloop" in done.stdout


def test_using_a_public_name_loads_what_it_needs():
    assert "pandas" in _loaded_after("import tradeloop\ntradeloop.simulate")


def test_every_public_name_resolves_to_its_module_object():
    for name in tradeloop.__all__:
        value = getattr(tradeloop, name)
        assert value is not None, name
    assert set(tradeloop.__all__) <= set(dir(tradeloop))
    assert tradeloop.workflows.history.simulate is tradeloop.simulate
    namespace: dict = {}
    exec("from tradeloop import *", namespace)
    assert namespace["RunParams"] is tradeloop.RunParams


def test_an_unknown_name_is_an_attribute_error():
    try:
        tradeloop.no_such_name  # noqa: B018
    except AttributeError as e:
        assert "no_such_name" in str(e)
    else:
        raise AssertionError("tradeloop.no_such_name resolved")
