"""Commission models: the fee charged on a fill, rounded half-up to the cent.

To write one: a frozen dataclass with ``commissions(qty, price) -> ndarray`` (vectorized over fills), then add it to
:data:`COMMISSION_MODELS` so params JSON can name it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from ..core.models import check_number

__all__ = ["CommissionModel", "NoCommission", "PerShareCommission", "BpsCommission", "COMMISSION_MODELS", "to_cents"]


def to_cents(amount: np.ndarray) -> np.ndarray:
    """Round half-up to 2 decimals (money rounding, unlike numpy's half-to-even)."""
    return np.floor(np.asarray(amount, dtype="float64") * 100.0 + 0.5 + 1e-9) / 100.0


class CommissionModel(Protocol):
    def commissions(self, qty: np.ndarray, price: np.ndarray) -> np.ndarray:
        """Fee per fill in account currency."""


@dataclass(frozen=True)
class NoCommission:
    """No fees."""

    def commissions(self, qty: np.ndarray, price: np.ndarray) -> np.ndarray:
        return np.zeros(len(np.asarray(qty)), dtype="float64")


@dataclass(frozen=True)
class PerShareCommission:
    """``max(qty × rate, minimum)`` per fill, e.g. ``PerShareCommission(rate=0.005, minimum=1.0)``."""

    rate: float = 0.0
    minimum: float = 0.0

    def __post_init__(self):
        check_number("params.commission.rate", self.rate)
        check_number("params.commission.minimum", self.minimum)

    def commissions(self, qty: np.ndarray, price: np.ndarray) -> np.ndarray:
        return to_cents(np.maximum(np.asarray(qty, dtype="float64") * self.rate, self.minimum))


@dataclass(frozen=True)
class BpsCommission:
    """``qty × price × bps / 1e4`` per fill."""

    bps: float = 0.0

    def __post_init__(self):
        check_number("params.commission.bps", self.bps)

    def commissions(self, qty: np.ndarray, price: np.ndarray) -> np.ndarray:
        return to_cents(np.asarray(qty, dtype="float64") * np.asarray(price, dtype="float64") * self.bps / 1e4)


COMMISSION_MODELS = {cls.__name__: cls for cls in (NoCommission, PerShareCommission, BpsCommission)}
