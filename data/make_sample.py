"""Generate tradeloop's bundled sample data, deterministically (seed 7). Run: python data/make_sample.py

Writes, next to this file:
  sample_snapshot.csv  50 symbols over 5 sectors: weight, price (2 left empty), sector, lot_size (1, 10 or 100)
  fallback_prices.csv  prices for the 2 unpriced symbols and for a held symbol not in the snapshot
  positions.csv        6 current holdings, one of them (OLDCO) no longer targeted
  params_pass.json     risk limits the sample passes
  params_block.json    the same with max_order_notional low enough to block a few orders
"""

import json
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
SECTORS = ["Tech", "Health", "Energy", "Financials", "Consumer"]


def main() -> None:
    rng = np.random.default_rng(7)
    n = 50
    symbols = [f"S{i:03d}" for i in range(n)]
    raw = rng.gamma(2.0, 1.0, n)
    weights = np.round(raw / raw.sum() * 0.95, 6)
    prices = np.round(rng.lognormal(np.log(60), 0.8, n), 2)
    sectors = [SECTORS[i % len(SECTORS)] for i in range(n)]
    lots = rng.choice([1, 1, 1, 10, 100], n)
    snap = pd.DataFrame({"symbol": symbols, "weight": weights, "price": prices, "sector": sectors, "lot_size": lots})
    snap["price"] = snap["price"].astype(object)
    snap.loc[[7, 23], "price"] = None  # priced by fallback_prices.csv
    snap.to_csv(HERE / "sample_snapshot.csv", index=False, lineterminator="\n")
    fallback = pd.DataFrame({"symbol": ["S007", "S023", "OLDCO"], "price": [41.5, 88.25, 12.4]})
    fallback.to_csv(HERE / "fallback_prices.csv", index=False, lineterminator="\n")
    positions = pd.DataFrame({"symbol": ["S001", "S004", "S010", "S020", "S033", "OLDCO"],
                              "qty": [300, 120, 50, 1000, 80, 500]})
    positions.to_csv(HERE / "positions.csv", index=False, lineterminator="\n")
    passing = {
        "cash_buffer": 0.02,
        "lot_size": 1,
        "risk": {"max_order_notional": 100000, "max_position_ratio": 0.08, "sector_cap": 0.35,
                 "max_gross_exposure": 1.0, "allow_short": False},
        "slippage": {"model": "FixedBpsSlippage", "bps": 5},
        "commission": {"model": "PerShareCommission", "rate": 0.005, "minimum": 1.0},
    }
    blocking = json.loads(json.dumps(passing))
    blocking["risk"]["max_order_notional"] = 35000
    for name, params in (("params_pass.json", passing), ("params_block.json", blocking)):
        (HERE / name).write_text(json.dumps(params, indent=2) + "\n")


if __name__ == "__main__":
    main()
