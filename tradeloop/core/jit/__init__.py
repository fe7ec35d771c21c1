"""Compiled kernels: the per-date steps of sizing, risk and execution, compiled once with numba and cached on disk.

Why compiled: a date of a history is a few hundred to a few thousand slots, and a pure-numpy step pays a few
microseconds of dispatch per whole-vector pass (~60 of them a date), so on small books the call overhead, not the
arithmetic, was the time. A compiled kernel is one call a step with fused loops and no temporaries. Each kernel
here is the **only** implementation of its step: :mod:`tradeloop.core.sizing`, :mod:`tradeloop.core.risk` and
:mod:`tradeloop.core.engine` keep their public functions (validation, naming the bad row, DataFrames) and call
these for the arithmetic, on the single run and in a simulation alike.

Rules every kernel follows, so results stay bit for bit those of the numpy formulas they replaced:

* the same floating-point operations in the same order (numba does not reassociate or fuse multiply-adds
  without ``fastmath``, which is never set); sums that numpy did with ``bincount`` are sequential loops in row
  order, exactly what ``bincount`` does; no pairwise ``sum`` inside a kernel;
* numpy's error model (``error_model="numpy"``): a division by zero gives inf/NaN as numpy did, never raises;
* arrays and scalars in, arrays and scalars out: no Python objects, no models (a model is called by the Python
  side before or after a kernel), errors returned as codes and row numbers for the caller to name.

``numba`` is imported by the kernel modules only, and they are imported where they are first used, so ``import
tradeloop`` stays cheap. Compiled code is cached on disk (``cache=True``: next to the sources in ``__pycache__``,
or under ``$NUMBA_CACHE_DIR``); a fresh environment compiles each kernel once on its first call
(``python -m benchmarks.compile_cost`` reports that cost). :func:`warm` compiles every kernel up front.
"""

from __future__ import annotations

import hashlib
import importlib
from pathlib import Path

__all__ = ["kernel", "warm", "KERNEL_MODULES", "drop_stale_caches"]

#: The modules holding compiled kernels (each imports numba).
KERNEL_MODULES: tuple[str, ...] = ("book", "risk", "execution", "sizing", "tables", "costs", "market", "day")


#: Files outside this folder whose constants the kernels compile in (codes, tolerances, the largest quantity).
CONSTANT_SOURCES = ("codes.py", "tolerance.py", "validate.py")


def drop_stale_caches(folder: Path = Path(__file__).parent, constants: tuple[str, ...] = CONSTANT_SOURCES) -> bool:
    """Delete the on-disk kernel caches in ``folder/__pycache__`` when any kernel source (or a constant's file in the
    parent folder) changed since they were written; returns whether it did.

    numba checks a cached kernel against its own file only, while a kernel's machine code includes the kernels it
    calls from other files and the constants it read: an edit to one file would otherwise leave its callers' caches
    stale. (With ``$NUMBA_CACHE_DIR`` set the caches live there instead; clear it after editing a kernel.)"""
    sources = sorted(folder.glob("*.py")) + [folder.parent / name for name in constants]
    digest = hashlib.sha256(b"".join(p.name.encode() + p.read_bytes() for p in sources if p.exists())).hexdigest()
    cache, stamp = folder / "__pycache__", folder / "__pycache__" / "kernels.sha256"
    if stamp.is_file() and stamp.read_text() == digest:
        return False
    try:
        for f in [*cache.glob("*.nbi"), *cache.glob("*.nbc")]:
            f.unlink(missing_ok=True)
        cache.mkdir(exist_ok=True)
        stamp.write_text(digest)
    except OSError:  # a read-only install: numba caches elsewhere, and an upgrade replaces every file anyway
        return False
    return True


drop_stale_caches()


def kernel(fn=None, **options):
    """``numba.njit`` with this package's settings: cached on disk, numpy's error model, no GIL held."""
    import numba

    settings = {"cache": True, "error_model": "numpy", "nogil": True, **options}
    if fn is None:
        return lambda f: numba.njit(**settings)(f)
    return numba.njit(**settings)(fn)


def warm() -> list[str]:
    """Import every kernel module and compile (or load from the disk cache) each kernel's signatures that a
    module's ``warm()`` exercises; returns the modules warmed."""
    done = []
    for name in KERNEL_MODULES:
        module = importlib.import_module(f"{__name__}.{name}")
        if hasattr(module, "warm"):
            module.warm()
        done.append(name)
    return done
