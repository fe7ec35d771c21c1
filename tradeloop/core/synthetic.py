"""Synthetic weight histories for benchmarks, tests and notebooks: deterministic for a given seed.

Random-walk prices, target weights that drift day by day, sectors and lot sizes, in the long tables that
:func:`tradeloop.workflows.history.simulate` takes. Nothing here is a market model; it only has the shape of real data.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["synthetic_history", "SECTORS"]

SECTORS = ("Tech", "Health", "Energy", "Financials", "Consumer", "Industrials", "Materials", "Utilities",
           "RealEstate", "Telecom", "Staples")


def synthetic_history(
    n_dates: int,
    n_symbols: int,
    *,
    seed: int = 0,
    n_portfolios: int = 1,
    gross: float = 0.95,
    zero_weight_share: float = 0.05,
    start: str = "2015-01-02",
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A history of ``n_dates`` business days × ``n_symbols`` symbols.

    Parameters
    ----------
    n_dates, n_symbols : int
        Size of the history; every symbol has a weight and a price on every date.
    seed : int
        Seed of the generator: the same arguments always give the same tables.
    n_portfolios : int
        More than one adds a ``portfolio`` column (``P0``, ``P1``, …), each with its own weights.
    gross : float
        Σ weight of each (date, portfolio).
    zero_weight_share : float
        Share of (date, symbol) targets set to exactly 0 (names the model drops for a while).
    start : str
        First date.

    Returns
    -------
    (weights, prices) : tuple of DataFrame
        ``weights``: ``date``, [``portfolio``], ``symbol`` (categorical), ``weight``; sorted by date, portfolio,
        symbol. ``prices``: ``date``, ``symbol`` (categorical), ``price`` (a random walk, 2 decimals), ``volume``,
        ``sector`` (categorical), ``lot_size`` (1, 10 or 100); sorted by date, symbol.
    """
    rng = np.random.default_rng(seed)
    dates = pd.bdate_range(start, periods=n_dates)
    names = np.array([f"S{i:05d}" for i in range(n_symbols)], dtype=object)
    start_px = rng.lognormal(np.log(50.0), 0.7, n_symbols)
    steps = rng.normal(0.0002, 0.018, (n_dates, n_symbols))
    steps[0] = 0.0
    price = np.round(start_px * np.exp(np.cumsum(steps, axis=0)), 2)
    price = np.maximum(price, 0.01)
    lots = rng.choice(np.array([1, 1, 1, 10, 100]), n_symbols)
    sector = np.arange(n_symbols) % len(SECTORS)
    volume = np.round(rng.lognormal(np.log(2e5), 1.0, (n_dates, n_symbols)))

    frames = []
    ports = [f"P{i}" for i in range(n_portfolios)]
    for p in range(n_portfolios):
        base = rng.gamma(2.0, 1.0, n_symbols)
        drift = np.exp(np.cumsum(rng.normal(0.0, 0.05, (n_dates, n_symbols)), axis=0))
        raw = base * drift * (rng.random((n_dates, n_symbols)) >= zero_weight_share)
        w = np.round(raw / np.maximum(raw.sum(axis=1, keepdims=True), 1e-12) * gross, 6)
        frame = {"date": np.repeat(dates.to_numpy(), n_symbols)}
        if n_portfolios > 1:
            frame["portfolio"] = pd.Categorical.from_codes(np.full(n_dates * n_symbols, p, dtype=np.int8), ports)
        frame["symbol"] = pd.Categorical.from_codes(np.tile(np.arange(n_symbols, dtype=np.int32), n_dates), names)
        frame["weight"] = w.ravel()
        frames.append(pd.DataFrame(frame))
    weights = frames[0] if n_portfolios == 1 else pd.concat(frames, ignore_index=True).sort_values(
        ["date", "portfolio", "symbol"], kind="stable").reset_index(drop=True)
    prices = pd.DataFrame({
        "date": np.repeat(dates.to_numpy(), n_symbols),
        "symbol": pd.Categorical.from_codes(np.tile(np.arange(n_symbols, dtype=np.int32), n_dates), names),
        "price": price.ravel(),
        "volume": volume.ravel(),
        "sector": pd.Categorical.from_codes(np.tile(sector.astype(np.int8), n_dates), list(SECTORS)),
        "lot_size": np.tile(lots.astype(np.int64), n_dates),
    })
    return weights, prices
