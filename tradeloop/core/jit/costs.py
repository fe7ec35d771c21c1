"""The built-in cost formulas, compiled: a fill price after fixed slippage and the fee of a fill.

The built-in models of :mod:`tradeloop.venue.slippage` and :mod:`tradeloop.venue.commission` compute their prices and
fees here (one formula each, whoever calls it), and a simulation's compiled date loop calls the same scalar
functions on the orders of a date without going back to Python. A model is a kind code and its parameters;
models from entry points stay Python objects and are called by the Python side.
"""

from __future__ import annotations

import numba  # noqa: F401  (kernel modules import numba; the package does not)
import numpy as np
from numba import types

from . import kernel
from .execution import _round6

__all__ = ["NO_SLIPPAGE", "FIXED_BPS", "NO_FEE", "PER_SHARE", "BPS", "cents", "slipped", "fee", "slipped_prices",
           "fees", "warm"]

#: Slippage kinds.
NO_SLIPPAGE, FIXED_BPS = 0, 1
#: Commission kinds.
NO_FEE, PER_SHARE, BPS = 0, 1, 2


@kernel
def cents(x):
    """Round half-up to the cent (money rounding, unlike numpy's half-to-even)."""
    return np.floor(x * 100.0 + 0.5 + 1e-9) / 100.0


@kernel
def slipped(kind, bps, sell, price):
    """The fill price of an order at reference ``price``: itself, or ``bps`` against the order rounded to 6
    decimals (kept unrounded when that would not be a finite price above 0)."""
    if kind == NO_SLIPPAGE:
        return price
    sign = -1.0 if sell else 1.0
    raw = price * (1.0 + sign * bps / 1e4)
    rounded = _round6(raw)
    return rounded if rounded > 0 and np.isfinite(rounded) else raw


@kernel
def fee(kind, a, b, qty, price):
    """The fee of a fill of ``qty`` at ``price``: none, ``max(qty × a, b)`` (per share, minimum) or
    ``qty × price × a / 1e4`` (bps), rounded half-up to the cent."""
    if kind == PER_SHARE:
        x = np.float64(qty) * a
        return cents(x if x >= b else b)
    if kind == BPS:
        return cents(np.float64(qty) * price * a / 1e4)
    return 0.0


#: The vectorized formulas take read-only C arrays (numpy's broadcast views and pandas' arrays are read-only; a
#: writable array converts for free), so one compiled signature serves every caller and none compiles again.
_IN_F8 = types.Array(types.float64, 1, "C", readonly=True)
_IN_B1 = types.Array(types.boolean, 1, "C", readonly=True)
_OUT_F8 = types.float64[::1]


@kernel(signature_or_function=_OUT_F8(types.int64, types.float64, _IN_B1, _IN_F8))
def slipped_prices(kind, bps, sell, price):
    """:func:`slipped` per row."""
    out = np.empty(len(price))
    for i in range(len(price)):
        out[i] = slipped(kind, bps, sell[i], price[i])
    return out


@kernel(signature_or_function=_OUT_F8(types.int64, types.float64, types.float64, _IN_F8, _IN_F8))
def fees(kind, a, b, qty, price):
    """:func:`fee` per row."""
    out = np.empty(len(qty))
    for i in range(len(qty)):
        out[i] = fee(kind, a, b, qty[i], price[i])
    return out


@kernel(signature_or_function=_OUT_F8(_IN_F8))
def cents_of(amount):
    """:func:`cents` per row."""
    out = np.empty(len(amount))
    for i in range(len(amount)):
        out[i] = cents(amount[i])
    return out


def warm() -> None:
    """The vectorized formulas compile (or load) with their one signature on import; this calls each once."""
    one = np.ones(1)
    slipped_prices(FIXED_BPS, 1.0, np.zeros(1, dtype=np.bool_), one)
    fees(BPS, 1.0, 0.0, one, one)
    cents_of(one)
