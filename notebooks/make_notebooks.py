"""Write trade_run.ipynb, review_run.ipynb and batch_overview.ipynb, and refresh their checked outputs.

    .venv/bin/python notebooks/make_notebooks.py            # rewrite the notebooks and their saved outputs

The notebooks are generated so that they stay short and reviewable as code; their logic lives in ``tradeloop``.
Saved outputs are kept only for the cells nbval compares (``# NBVAL_CHECK_OUTPUT``): they are produced by running
the notebooks, in the order pytest runs them, against a temporary database seeded like ``conftest.py`` does.
Re-run this after a change that alters a checked output (counts, statuses, the summary format).
"""

from __future__ import annotations

import importlib.util
import os
import sys
import tempfile
from pathlib import Path

import nbformat
from nbclient import NotebookClient

HERE = Path(__file__).resolve().parent
CHECK = "# NBVAL_CHECK_OUTPUT"
KERNELSPEC = {"name": "tradeloop", "display_name": "Python (tradeloop)", "language": "python"}


def md(text):
    return nbformat.v4.new_markdown_cell(text.strip())


def code(text, *tags):
    cell = nbformat.v4.new_code_cell(text.strip())
    if tags:
        cell.metadata["tags"] = list(tags)
    return cell


SETUP = """
%matplotlib inline
import pandas as pd
import tradeloop as tl
from tradeloop.reporting import plots

pd.set_option("display.max_rows", 200, "display.max_columns", 20, "display.width", 160, "display.max_colwidth", None)
"""

TRADE_RUN = [
    md("""
# Trade run

Freeze a snapshot of target weights, create its run and execute it (mock venue), then look at the orders, the
risk outcome, the fills and the resulting weights. Run it here, or headless with papermill:

```bash
.venv/bin/papermill notebooks/trade_run.ipynb artifacts/my_run.ipynb -k tradeloop -p db_path research.duckdb \\
    -p snapshot_file data/sample_snapshot.csv -p params_file data/params_block.json
```

`tradeloop batch` runs this notebook once per snapshot file and keeps every executed copy as an artifact.
"""),
    code("""
db_path = None  # None: $TRADELOOP_DB, else ./tradeloop.duckdb
snapshot_file = "data/sample_snapshot.csv"  # relative paths: the working directory, else the repository root
positions_file = "data/positions.csv"  # current holdings (symbol, qty), or None
fallback_prices_file = "data/fallback_prices.csv"  # prices for symbols the snapshot lacks, or None
portfolio_value = 1_000_000.0
model_version = "nb-v1"
params_file = "data/params_pass.json"  # params JSON (README: Params JSON), or None for the defaults
risk_limits = None  # inline risk limits over params_file's, e.g. {"max_order_notional": 50_000}
provider = "mock"
dry_run = False
run_id = None  # re-run (or name) a run; None: derived from the inputs, so the same inputs are the same run
work_db = None  # set by `tradeloop batch`: execute in this scratch database, merged into db_path afterwards
""", "parameters"),
    code(SETUP),
    code("""
report = tl.run_from_files(
    db_path, snapshot_file=snapshot_file, positions_file=positions_file, fallback_prices_file=fallback_prices_file,
    portfolio_value=portfolio_value, model_version=model_version, params_file=params_file, risk_limits=risk_limits,
    provider=provider, dry_run=dry_run, run_id=run_id, work_db=work_db,
)
pd.Series(report.result.to_dict(), name="run")
"""),
    md("## Orders"),
    code("report.orders"),
    md("## Risk outcome\nEvery blocked order with the rule it broke; a blocked run submits nothing."),
    code(f"""
{CHECK}
o = report.risk_outcome
print(f"risk {{'passed' if o.get('passed') else 'BLOCKED'}}: {{o.get('orders_checked')}} orders checked, "
      f"{{o.get('orders_blocked')}} blocked", *([o['blocked_by_code']] if o.get('blocked_by_code') else []))
"""),
    code("report.risk"),
    md("## Fills"),
    code("report.fills"),
    md("## Weights, sectors, cash"),
    code("plots.plot_weights(report)"),
    code("plots.plot_sector_notional(report)"),
    code("report.cash"),
    code("plots.plot_cash(report)"),
    md("## Summary\nThe cell `tradeloop verify-artifact` and nbval check against the database."),
    code(f"{CHECK}\nprint(report.summary())", "summary"),
]

REVIEW_RUN = [
    md("""
# Review a run

Reads a run back from the database only (nothing is executed), lists its audit events in chain order and checks
that the stored execution results match the latest audit record.

```bash
.venv/bin/papermill notebooks/review_run.ipynb review.ipynb -k tradeloop -p db_path research.duckdb -p run_id run-…
```
"""),
    code("""
db_path = None  # None: $TRADELOOP_DB, else ./tradeloop.duckdb
run_id = None  # None: the most recently created run
""", "parameters"),
    code(SETUP),
    code(f"""
{CHECK}
report = tl.load_report(db_path, run_id)
print(report.summary())
"""),
    md("## Audit events, in order"),
    code("report.audit"),
    md("## Execution results vs. audit record"),
    code(f"""
{CHECK}
print(tl.audit_line(tl.audit_check(db_path, report.run_id), report.result))
"""),
    md("## Orders and blocked orders"),
    code("report.orders"),
    code("report.risk"),
    md("## Order lifecycles\nEvery state change of every order (`order_events`), replayed against the state machine."),
    code("""
with tl.Store(db_path or tl.Settings.from_env().db, read_only=True) as store:
    events = store.order_events(report.run_id)
tl.lifecycle_paths(events)
"""),
    code(f"""
{CHECK}
stored = report.orders.set_index("client_order_id")["status"]
replayed = tl.replay_order_events(events).set_index("client_order_id")["status"].reindex(stored.index).fillna("NEW")
print(f"{{len(stored)}} orders: events replay to the stored status for {{int(replayed.eq(stored).sum())}}")
"""),
    md("## Fills and exposure"),
    code("plots.plot_fills(report)"),
    code("plots.plot_exposure(report)"),
]

BATCH_OVERVIEW = [
    md("""
# Batch overview

All runs of a batch (or of the whole database) with their status and, for blocked or failed ones, why.

```bash
.venv/bin/papermill notebooks/batch_overview.ipynb overview.ipynb -k tradeloop -p db_path research.duckdb \\
    -p batch_id batch-…
```
"""),
    code("""
db_path = None  # None: $TRADELOOP_DB, else ./tradeloop.duckdb
batch_id = None  # None: every run and artifact in the database
""", "parameters"),
    code(SETUP),
    code("""
table = tl.batch_table(db_path, batch_id)
table
"""),
    code(f"""
{CHECK}
print(table["status"].value_counts().sort_index().to_string())
print(table.loc[:, ["snapshot", "status", "papermill_status", "orders", "fills", "notional"]].to_string(index=False))
"""),
    md("## Why runs were blocked or failed"),
    code("""
table.loc[table["status"] != "done", ["run_id", "snapshot", "status", "reason"]]
"""),
    code("plots.plot_batch(table)"),
]

NOTEBOOKS = {"batch_overview.ipynb": BATCH_OVERVIEW, "review_run.ipynb": REVIEW_RUN, "trade_run.ipynb": TRADE_RUN}


def build(name: str, cells) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.from_dict(c) for c in cells]
    for i, cell in enumerate(nb.cells):
        cell["id"] = f"{Path(name).stem.replace('_', '-')}-{i:02d}"  # stable ids: clean diffs
    nb.metadata["kernelspec"] = KERNELSPEC
    nb.metadata["language_info"] = {"name": "python"}
    return nb


def keep_checked_outputs(nb) -> None:
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        cell.metadata.pop("execution", None)
        if CHECK not in cell.source:
            cell.outputs = []
            cell.execution_count = None


def main() -> None:
    spec = importlib.util.spec_from_file_location("nb_conftest", HERE / "conftest.py")
    conftest = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(conftest)
    with tempfile.TemporaryDirectory(prefix="tradeloop-make-") as tmp:
        db = Path(tmp) / "notebooks.duckdb"
        conftest.seed_example_db(db)
        os.environ["TRADELOOP_DB"] = str(db)
        for name, cells in sorted(NOTEBOOKS.items()):
            nb = build(name, cells)
            NotebookClient(nb, kernel_name="tradeloop", timeout=600, resources={"metadata": {"path": str(HERE)}}).execute()
            keep_checked_outputs(nb)
            nbformat.validate(nb)
            nbformat.write(nb, HERE / name)
            print(f"wrote {HERE / name}", file=sys.stderr)


if __name__ == "__main__":
    main()
