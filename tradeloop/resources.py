"""The files tradeloop ships besides its code: the sample data and the notebooks.

The repository's top-level ``data/`` and ``notebooks/`` are the one source; the wheel carries them as the resource
packages ``tradeloop.data`` and ``tradeloop.notebooks`` (a ``package-dir`` mapping in ``pyproject.toml``, no copy).
An editable install made before that mapping existed has no such packages, so :func:`_folder` falls back to the
checkout the code runs from.
"""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

__all__ = ["data_dir", "notebooks_dir", "sample_file", "notebook_file", "shipped_path", "copy_notebooks", "SAMPLE_FILES"]

#: The sample data ``tradeloop demo`` runs on (``data/make_sample.py`` writes them).
SAMPLE_FILES = ("sample_snapshot.csv", "positions.csv", "fallback_prices.csv", "params_pass.json",
                "params_block.json")


def _folder(package: str, checkout_name: str) -> Path:
    """The folder of resource package ``package`` (installed), else ``<checkout>/<checkout_name>``."""
    try:  # a folder without __init__.py: its spec's search location (files() varies for namespace packages)
        spec = importlib.util.find_spec(package)
    except ModuleNotFoundError:
        spec = None
    for location in (spec.submodule_search_locations or []) if spec else []:
        if Path(location).is_dir():
            return Path(location)
    return Path(__file__).resolve().parents[1] / checkout_name


def data_dir() -> Path:
    """The folder of the shipped sample data (``tradeloop demo`` reads ``$TRADELOOP_DATA`` instead when set:
    :class:`tradeloop.settings.Settings`)."""
    return _folder("tradeloop.data", "data")


def notebooks_dir() -> Path:
    """The folder of the shipped notebooks (``trade_run.ipynb``, ``review_run.ipynb``, …)."""
    return _folder("tradeloop.notebooks", "notebooks")


def sample_file(name: str) -> Path:
    """A file of the shipped sample data, e.g. ``sample_file("sample_snapshot.csv")``."""
    return data_dir() / name


def notebook_file(name: str) -> Path:
    """A shipped notebook, e.g. ``notebook_file("trade_run.ipynb")``."""
    return notebooks_dir() / name


def shipped_path(path: str | Path) -> Path | None:
    """``data/…`` or ``notebooks/…`` (as the notebooks' defaults spell them) in the shipped files, else None."""
    parts = Path(path).parts
    if len(parts) < 2 or parts[0] not in ("data", "notebooks"):
        return None
    return (data_dir() if parts[0] == "data" else notebooks_dir()).joinpath(*parts[1:])


def copy_notebooks(dest: str | Path, *, overwrite: bool = False) -> list[Path]:
    """Copy the notebooks to ``dest`` and the sample data to ``dest/data`` (so their ``data/…`` defaults resolve
    there); returns the files written. An existing file is kept unless ``overwrite``."""
    dest = Path(dest)
    pairs = [(p, dest / p.name) for p in sorted(notebooks_dir().glob("*.ipynb"))]
    pairs += [(data_dir() / name, dest / "data" / name) for name in SAMPLE_FILES]
    written = []
    for src, target in pairs:
        if target.exists() and not overwrite:
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, target)
        written.append(target)
    return written
