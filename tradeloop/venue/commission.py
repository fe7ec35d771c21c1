"""Commission models: the fee charged on a fill, rounded half-up to the cent.

Models are found by name in :data:`COMMISSION_MODELS`: the built-ins below plus every entry point of the
``tradeloop.commission`` group (see :class:`CommissionModel` for how to write and register one).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from ..core.models import check_number
from .registry import GROUPS, Registry, model_rule

__all__ = ["CommissionModel", "NoCommission", "PerShareCommission", "BpsCommission", "COMMISSION_MODELS", "to_cents"]


#: Bounds of :class:`PerShareCommission`: a fee per share below 1,000 and a minimum per fill below 1e9 (currency),
#: so commissions stay finite and meaningful for any quantity below 2**53.
MAX_RATE_PER_SHARE = 1_000.0
MAX_MINIMUM = 1e9


def to_cents(amount: np.ndarray) -> np.ndarray:
    """Round half-up to 2 decimals (money rounding, unlike numpy's half-to-even)."""
    from ..core.jit import costs

    amount = np.ascontiguousarray(amount, dtype="float64")
    return costs.cents_of(amount.ravel()).reshape(amount.shape)


def _fees(kind: int, a: float, b: float, qty, price) -> np.ndarray:
    from ..core.jit import costs

    qty = np.ascontiguousarray(qty, dtype="float64").ravel()
    price = np.ascontiguousarray(np.broadcast_to(np.asarray(price, dtype="float64"), qty.shape))
    return costs.fees(kind, float(a), float(b), qty, price)


class CommissionModel(Protocol):
    """The fee charged on each fill.

    To write one: a frozen dataclass, named after its rule, whose fields are its parameters (validated in
    ``__post_init__``), with ``commissions`` vectorized over the fills (round money with :func:`to_cents`).
    Register it in your package's ``pyproject.toml`` under the class name, and name it in params JSON::

        [project.entry-points."tradeloop.commission"]
        TieredCommission = "mypackage.costs:TieredCommission"

        {"commission": {"model": "TieredCommission", "tiers": [[0, 0.005], [10000, 0.003]]}}
    """

    def commissions(self, qty: np.ndarray, price: np.ndarray) -> np.ndarray:
        """Fee per fill in account currency."""


@dataclass(frozen=True)
class NoCommission:
    """No fees."""

    def commissions(self, qty: np.ndarray, price: np.ndarray) -> np.ndarray:
        return np.zeros(len(np.asarray(qty)), dtype="float64")

    def cost_kind(self) -> tuple:
        """``(kind, a, b)`` for the compiled date loop (:mod:`tradeloop.core.jit.costs`)."""
        from ..core.jit import costs

        return costs.NO_FEE, 0.0, 0.0


@dataclass(frozen=True)
class PerShareCommission:
    """``max(qty × rate, minimum)`` per fill, e.g. ``PerShareCommission(rate=0.005, minimum=1.0)``."""

    rate: float = 0.0
    minimum: float = 0.0

    def __post_init__(self):
        check_number("params.commission.rate", self.rate, below=MAX_RATE_PER_SHARE)
        check_number("params.commission.minimum", self.minimum, below=MAX_MINIMUM)

    def commissions(self, qty: np.ndarray, price: np.ndarray) -> np.ndarray:
        return _fees(*self.cost_kind(), qty, np.nan)

    def cost_kind(self) -> tuple:
        """``(kind, a, b)`` for the compiled date loop (:mod:`tradeloop.core.jit.costs`)."""
        from ..core.jit import costs

        return costs.PER_SHARE, float(self.rate), float(self.minimum)


@dataclass(frozen=True)
class BpsCommission:
    """``qty × price × bps / 1e4`` per fill."""

    bps: float = 0.0

    def __post_init__(self):
        check_number("params.commission.bps", self.bps, below=10_000)  # a fee of the whole notional or more

    def commissions(self, qty: np.ndarray, price: np.ndarray) -> np.ndarray:
        return _fees(*self.cost_kind(), qty, price)

    def cost_kind(self) -> tuple:
        """``(kind, a, b)`` for the compiled date loop (:mod:`tradeloop.core.jit.costs`)."""
        from ..core.jit import costs

        return costs.BPS, float(self.bps), 0.0


#: Commission models by name: the built-ins and the ``tradeloop.commission`` entry points (loaded and checked on use).
COMMISSION_MODELS = Registry(GROUPS["commission"], CommissionModel,
                             {c.__name__: c for c in (NoCommission, PerShareCommission, BpsCommission)}, model_rule)
