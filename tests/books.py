"""A 3,000-symbol book on disk (snapshot, positions with liquidations, fallback prices) and params files, for the
reporting and CLI tests at realistic size (imported as ``books``, like ``support``)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

N_SYMBOLS = 3_000
SECTORS = ["Tech", "Health", "Energy", "Financials", "Industrials", "Utilities", "Materials", "Staples"]


def write_book(folder, n: int = N_SYMBOLS, seed: int = 7):
    """A snapshot of ``n`` symbols (every one trades) and positions in 300 of them plus 50 outside the snapshot
    (liquidated); returns the paths."""
    rng = np.random.default_rng(seed)
    symbols = [f"Z{i:05d}" for i in range(n)]
    w = rng.gamma(2.0, size=n)
    snap = pd.DataFrame({"symbol": symbols, "weight": np.round(w / w.sum() * 0.95, 8),
                         "price": np.round(rng.uniform(5, 400, n), 2), "sector": rng.choice(SECTORS, n)})
    held = [*symbols[:300], *(f"OLD{i:03d}" for i in range(50))]
    positions = pd.DataFrame({"symbol": held, "qty": rng.integers(1, 40, len(held)) * 10})
    fallback = pd.DataFrame({"symbol": held[300:], "price": np.round(rng.uniform(5, 100, 50), 2)})
    paths = {"snapshot_file": folder / "big.csv", "positions_file": folder / "big_positions.csv",
             "fallback_prices_file": folder / "big_fallback.csv"}
    snap.to_csv(paths["snapshot_file"], index=False)
    positions.to_csv(paths["positions_file"], index=False)
    fallback.to_csv(paths["fallback_prices_file"], index=False)
    return paths


def write_params(folder, name: str, **risk):
    limits = {"max_order_notional": 1e9, "max_position_ratio": 0.5, "sector_cap": 1.0, "max_gross_exposure": 1.0,
              "allow_short": False, **risk}
    path = folder / f"{name}.json"
    path.write_text(json.dumps({"cash_buffer": 0.02, "lot_size": 1, "risk": limits,
                                "slippage": {"model": "FixedBpsSlippage", "bps": 5},
                                "commission": {"model": "PerShareCommission", "rate": 0.005, "minimum": 1.0}}))
    return path
