"""Compiled passes over whole input columns (ten million rows at a time), where numpy needs several passes and
temporaries for one answer."""

from __future__ import annotations

import numpy as np

from . import kernel

__all__ = ["code_counts", "recode", "warm"]


@kernel
def code_counts(codes, n):
    """How many rows hold each code ``0..n-1`` (a missing code, -1, is not counted): one pass, no index copy."""
    counts = np.zeros(n, dtype=np.int64)
    for c in codes:
        if c >= 0:
            counts[c] += 1
    return counts


@kernel
def recode(codes, table):
    """``table[code]`` per row (int32), a missing code (-1) staying -1."""
    out = np.empty(len(codes), dtype=np.int32)
    for i in range(len(codes)):
        c = codes[i]
        out[i] = -1 if c < 0 else table[c]
    return out


def warm() -> None:
    """Compile (or load) the kernels for the integer widths of category codes."""
    table = np.zeros(1, dtype=np.int32)
    for dtype in (np.int8, np.int16, np.int32, np.int64):
        codes = np.zeros(1, dtype=dtype)
        code_counts(codes, 1)
        recode(codes, table)
