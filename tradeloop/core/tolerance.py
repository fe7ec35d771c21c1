"""How limits and quantities are compared: one tolerance for every rule, the cash trim and lot rounding.

Prices, weights and limits are binary floats, so a value that is exactly at a limit in decimal (``390 × 0.07`` against
``27.3``, ``10 % + 20 %`` against ``30 %``) can land one ulp above it. Every limit rule is written "blocks when the
value *exceeds* the limit", so:

* a value within :data:`LIMIT_RTOL` (1e-9) relative of its limit is **at the limit and passes**
  (:func:`exceeds` is ``observed > limit + LIMIT_RTOL × |limit|``); the risk rules, the cash trim of buys and the
  snapshot's ``max_leverage`` check all use it, on the single run and in a simulation alike;
* lot rounding floors ``notional / price / lot`` after adding :data:`FLOOR_ATOL` (1e-9 of a lot), so
  ``0.29 × 100 / 1 = 28.999999999999996`` gives 29 lots (:func:`floor_lots`).

Relative 1e-9 is far above float64 rounding (about 1e-16 per operation) and far below any meaningful breach: it
lets 27.3 through for a limit of 27.3 but blocks 27.30000003.
"""

from __future__ import annotations

import numpy as np

__all__ = ["LIMIT_RTOL", "FLOOR_ATOL", "exceeds", "floor_lots"]

#: Relative tolerance of every limit comparison: within it, a value is "at the limit" and passes.
LIMIT_RTOL = 1e-9
#: Added to a quotient (in lots) before flooring, so binary fractions do not lose a lot.
FLOOR_ATOL = 1e-9


def exceeds(observed, limit):
    """True where ``observed`` is above ``limit`` by more than :data:`LIMIT_RTOL` relative (arrays or scalars).

    A NaN limit (no limit for that row) never is exceeded.
    """
    if np.ndim(limit) == 0:  # one limit for every row: its threshold is one float, not a 0-d array operation
        limit = float(limit)
        return np.asarray(observed) > limit + LIMIT_RTOL * abs(limit)
    limit = np.asarray(limit, dtype="float64")
    return np.asarray(observed) > limit + LIMIT_RTOL * np.abs(limit)


def floor_lots(quotient):
    """``floor(quotient + FLOOR_ATOL)``: whole lots in a quantity measured in lots."""
    return np.floor(quotient + FLOOR_ATOL)
