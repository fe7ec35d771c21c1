# Recreates tests/data/schema_v1.duckdb; it was run once with tradeloop at schema version 1 (commit a824732).
# Kept for the record: running it with a newer tradeloop writes a newer schema, not version 1.
from pathlib import Path

import pandas as pd

import tradeloop as tl

p = Path("tests/data/schema_v1.duckdb")
w = pd.DataFrame({"symbol": ["AAA", "BBB", "CCC"], "weight": [0.3, 0.2, 0.1], "price": [10.0, 20.0, 30.0],
                  "sector": ["Tech", "Energy", "Tech"]})
snap = tl.freeze_snapshot(w, portfolio_value=100_000, model_version="v1-fixture")
with tl.Store(p) as s:
    run = tl.create_run(s, snap, params=tl.RunParams(), run_id="run-v1-fixture")
    print(tl.execute_run(s, run.run_id))
    print(s.schema_version(), s.table_counts())
