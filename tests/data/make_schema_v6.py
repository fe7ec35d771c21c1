# Recreates tests/data/schema_v6.duckdb; it was run once with tradeloop at schema version 6 (commit c52fc15), whose
# save_simulation recorded an ``orders_digest`` of raw array bytes. Kept for the record: running it with a newer
# tradeloop writes a newer schema and newer digests.
from pathlib import Path

import numpy as np
import pandas as pd

import tradeloop as tl

p = Path("tests/data/schema_v6.duckdb")  # then: gzip -9 tests/data/schema_v6.duckdb
w = pd.DataFrame({"symbol": ["AAA", "BBB", "CCC"], "weight": [0.3, 0.2, 0.1], "price": [10.0, 20.0, 30.0],
                  "sector": ["Tech", "Energy", "Tech"]})
snap = tl.freeze_snapshot(w, portfolio_value=100_000, model_version="v6-fixture")
weights, prices = tl.synthetic_history(5, 8, seed=6, n_portfolios=2)
rng = np.random.default_rng(6)
prices["volume"] = np.where(rng.uniform(size=len(prices)) < 0.4, rng.integers(0, 400, len(prices)).astype(float),
                            prices["volume"].astype(float))
limited = tl.RunParams.from_dict({"liquidity": {"model": "VolumeParticipation", "max_rate": 0.1}, "steps": 3,
                                  "risk": {"max_order_notional": 150_000}})
with tl.Store(p) as s:
    run = tl.create_run(s, snap, params=tl.RunParams(), run_id="run-v6-fixture")
    print(tl.execute_run(s, run.run_id))
    plain = tl.simulate(weights, prices, portfolio_value=1e6, simulation_id="sim-v6-plain")
    partial = tl.simulate(weights, prices, portfolio_value=1e6, params=limited, simulation_id="sim-v6-partial")
    print(tl.save_simulation(s, plain), tl.save_simulation(s, partial))
    print(s.schema_version(), s.table_counts())
