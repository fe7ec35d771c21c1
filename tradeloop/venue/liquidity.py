"""Liquidity models: how much of an order can fill in one execution step.

Models are found by name in :data:`LIQUIDITY_MODELS`: the built-ins below plus every entry point of the
``tradeloop.liquidity`` group (see :class:`LiquidityModel` for how to write and register one).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from ..core.models import check_number
from ..errors import ValidationError
from .registry import GROUPS, Registry, model_rule

__all__ = ["LiquidityModel", "NoLiquidityLimit", "VolumeParticipation", "LIQUIDITY_MODELS"]

# Added before flooring so that 0.1 × 3000 / 100 (= 2.9999999999999996) gives 3 lots, not 2.
_FLOOR_EPS = 1e-9


class LiquidityModel(Protocol):
    """The most shares each order may fill in one execution step.

    To write one: a frozen dataclass, named after its rule, whose fields are its parameters (validated in
    ``__post_init__``), with ``step_caps`` vectorized over the orders (``inf`` for no limit; what is left stays
    open for the next step). Register it in your package's ``pyproject.toml`` under the class name, and name it in
    params JSON::

        [project.entry-points."tradeloop.liquidity"]
        AdvParticipation = "mypackage.costs:AdvParticipation"

        {"liquidity": {"model": "AdvParticipation", "max_rate": 0.05}}
    """

    def step_caps(self, volume: np.ndarray, lot_size: np.ndarray) -> np.ndarray:
        """Most shares each order may fill in one step (float, ``inf`` = unlimited); ``volume`` may hold NaN."""


@dataclass(frozen=True)
class NoLiquidityLimit:
    """Every order can fill its whole remaining quantity in one step (the default)."""

    def step_caps(self, volume: np.ndarray, lot_size: np.ndarray) -> np.ndarray:
        return np.full(len(np.asarray(volume)), np.inf)


@dataclass(frozen=True)
class VolumeParticipation:
    """Fill at most ``max_rate × volume`` shares per step, floored to the order's lot size.

    ``volume`` is the symbol's traded volume per execution step, from the snapshot's ``volume`` column. What is left
    stays open (PARTIAL) for the next step of the run; after the run's last step it is CANCELED with reason
    ``unfilled_at_close``.

    Parameters
    ----------
    max_rate : float
        Participation rate, ``0 < max_rate <= 1``; e.g. 0.1 takes at most 10 % of each step's volume.
    missing_volume : {"unlimited", "zero"}
        A symbol without a volume fills without a cap (``"unlimited"``, the default, so snapshots without a
        ``volume`` column behave as before) or not at all (``"zero"``: it ends CANCELED at close).

    Examples
    --------
    >>> VolumeParticipation(0.1).step_caps(np.array([12_345.0]), np.array([100]))
    array([1200.])
    """

    max_rate: float = 1.0
    missing_volume: str = "unlimited"

    def __post_init__(self):
        check_number("params.liquidity.max_rate", self.max_rate, inclusive=False)
        if self.max_rate > 1:
            raise ValidationError(f"params.liquidity.max_rate is {self.max_rate!r}; it is a fraction of volume and "
                                  "must be <= 1")
        if self.missing_volume not in ("unlimited", "zero"):
            raise ValidationError(f"params.liquidity.missing_volume is {self.missing_volume!r}; "
                                  "allowed: 'unlimited', 'zero'")

    def step_caps(self, volume: np.ndarray, lot_size: np.ndarray) -> np.ndarray:
        volume = np.asarray(volume, dtype="float64")
        lot = np.asarray(lot_size, dtype="float64")
        with np.errstate(invalid="ignore"):
            caps = np.floor(self.max_rate * volume / lot + _FLOOR_EPS) * lot
        return np.where(np.isnan(volume), np.inf if self.missing_volume == "unlimited" else 0.0, caps)


#: Liquidity models by name: the built-ins and the ``tradeloop.liquidity`` entry points (loaded and checked on use).
LIQUIDITY_MODELS = Registry(GROUPS["liquidity"], LiquidityModel,
                            {c.__name__: c for c in (NoLiquidityLimit, VolumeParticipation)}, model_rule)
