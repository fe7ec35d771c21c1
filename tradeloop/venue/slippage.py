"""Slippage models: the price an order fills at, given its side and reference price.

Models are found by name in :data:`SLIPPAGE_MODELS`: the built-ins below plus every entry point of the
``tradeloop.slippage`` group (see :class:`SlippageModel` for how to write and register one).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from ..core.models import check_number
from .registry import GROUPS, Registry, model_rule

__all__ = ["SlippageModel", "NoSlippage", "FixedBpsSlippage", "SLIPPAGE_MODELS"]


class SlippageModel(Protocol):
    """The price each order fills at.

    To write one: a frozen dataclass, named after its rule, whose fields are its parameters (validated in
    ``__post_init__``), with ``fill_prices`` vectorized over the orders. Register it in your package's
    ``pyproject.toml`` under the class name, and name it in params JSON::

        [project.entry-points."tradeloop.slippage"]
        SquareRootSlippage = "mypackage.costs:SquareRootSlippage"

        {"slippage": {"model": "SquareRootSlippage", "k": 0.1}}
    """

    def fill_prices(self, side: np.ndarray, price: np.ndarray) -> np.ndarray:
        """Fill price per order; ``side`` holds 'BUY'/'SELL', ``price`` the reference price (NaN: none).

        Element by element: each price depends on its own side and reference price only, so a simulation may ask
        for a whole block of dates at once (every slot as a BUY and as a SELL) and use the prices of its orders."""


@dataclass(frozen=True)
class NoSlippage:
    """Fill exactly at the reference price."""

    def fill_prices(self, side: np.ndarray, price: np.ndarray) -> np.ndarray:
        return np.asarray(price, dtype="float64")

    def cost_kind(self) -> tuple:
        """``(kind, bps)`` for the compiled date loop (:mod:`tradeloop.core.jit.costs`)."""
        from ..core.jit import costs

        return costs.NO_SLIPPAGE, 0.0


@dataclass(frozen=True)
class FixedBpsSlippage:
    """Fill ``bps`` basis points against the order: BUY at ``price × (1 + bps/1e4)``, SELL at ``× (1 − bps/1e4)``.

    Prices are rounded to 6 decimals so that 100 × 1.0005 is 100.05, not 100.05000000000001; a price that would
    round to 0 (below 5e-7) is kept unrounded, so a fill price is always > 0. ``0 <= bps < 10000``.
    """

    bps: float = 0.0

    def __post_init__(self):
        # 10000 bps would fill a SELL at 0 (and beyond, below 0).
        check_number("params.slippage.bps", self.bps, below=10_000)

    def fill_prices(self, side: np.ndarray, price: np.ndarray) -> np.ndarray:
        from ..core.jit import costs

        price = np.ascontiguousarray(price, dtype="float64")
        sell = np.ascontiguousarray(np.broadcast_to(np.asarray(side) != "BUY", price.shape))
        return costs.slipped_prices(costs.FIXED_BPS, float(self.bps), sell.ravel(), price.ravel()).reshape(price.shape)

    def cost_kind(self) -> tuple:
        """``(kind, bps)`` for the compiled date loop (:mod:`tradeloop.core.jit.costs`)."""
        from ..core.jit import costs

        return costs.FIXED_BPS, float(self.bps)


#: Slippage models by name: the built-ins and the ``tradeloop.slippage`` entry points (loaded and checked on use).
SLIPPAGE_MODELS = Registry(GROUPS["slippage"], SlippageModel, {c.__name__: c for c in (NoSlippage, FixedBpsSlippage)},
                           model_rule)
