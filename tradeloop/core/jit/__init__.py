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

import importlib

__all__ = ["kernel", "warm", "KERNEL_MODULES"]

#: The modules holding compiled kernels (each imports numba).
KERNEL_MODULES: tuple[str, ...] = ("book", "risk", "execution", "sizing", "tables", "day")


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
