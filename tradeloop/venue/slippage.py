"""Slippage models: the price an order fills at, given its side and reference price.

To write one: a frozen dataclass with ``fill_prices(side, price) -> ndarray`` (vectorized over orders), then add it
to :data:`SLIPPAGE_MODELS` so params JSON can name it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from ..core.models import check_number

__all__ = ["SlippageModel", "NoSlippage", "FixedBpsSlippage", "SLIPPAGE_MODELS"]


class SlippageModel(Protocol):
    def fill_prices(self, side: np.ndarray, price: np.ndarray) -> np.ndarray:
        """Fill price per order; ``side`` holds 'BUY'/'SELL', ``price`` the reference price."""


@dataclass(frozen=True)
class NoSlippage:
    """Fill exactly at the reference price."""

    def fill_prices(self, side: np.ndarray, price: np.ndarray) -> np.ndarray:
        return np.asarray(price, dtype="float64")


@dataclass(frozen=True)
class FixedBpsSlippage:
    """Fill ``bps`` basis points against the order: BUY at ``price × (1 + bps/1e4)``, SELL at ``× (1 − bps/1e4)``.

    Prices are rounded to 6 decimals so that 100 × 1.0005 is 100.05, not 100.05000000000001.
    """

    bps: float = 0.0

    def __post_init__(self):
        check_number("params.slippage.bps", self.bps)

    def fill_prices(self, side: np.ndarray, price: np.ndarray) -> np.ndarray:
        sign = np.where(np.asarray(side) == "BUY", 1.0, -1.0)
        return np.round(np.asarray(price, dtype="float64") * (1.0 + sign * self.bps / 1e4), 6)


SLIPPAGE_MODELS = {cls.__name__: cls for cls in (NoSlippage, FixedBpsSlippage)}
