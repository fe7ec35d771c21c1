"""Write trade_run.ipynb, review_run.ipynb and batch_overview.ipynb, and refresh their checked outputs.

    .venv/bin/python notebooks/make_notebooks.py            # rewrite the notebooks and their saved outputs

The notebooks are generated so that they stay short and reviewable as code; their logic lives in ``tradeloop``.
Saved outputs are kept only for the cells nbval compares (tag ``nbval-check-output``): they are produced by running
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
KERNELSPEC = {"name": "tradeloop", "display_name": "Python (tradeloop)", "language": "python"}


CHECK_TAG = "nbval-check-output"  # nbval compares this cell's output (no marker comment in the source)
HIDDEN = {"jupyter": {"source_hidden": True}}  # reviewers read outputs; the code is one attribute away


def md(text):
    return nbformat.v4.new_markdown_cell(text.strip())


def code(text, *tags, hidden=True):
    cell = nbformat.v4.new_code_cell(text.strip())
    if tags:
        cell.metadata["tags"] = list(tags)
    if hidden:
        cell.metadata.update(HIDDEN)
    return cell


SETUP = """
from tradeloop.reporting import notebook, plots
import tradeloop as tl

notebook.setup()
"""

TRADE_RUN = [
    md("""
# Trade run

Freezes a snapshot of target weights, creates its run and executes it, then shows the verdict, the risk outcome,
the orders, fills and resulting weights. With no input file at all it runs the demo on the bundled sample data
(the verdict says so); otherwise only the inputs you give are used. Headless:

```bash
.venv/bin/papermill notebooks/trade_run.ipynb artifacts/my_run.ipynb -k tradeloop -p db_path research.duckdb \\
    -p snapshot_file my_snapshot.csv -p portfolio_value 1000000 -p model_version m1 -p params_file my_params.json
```

`tradeloop batch` runs this notebook once per snapshot file and keeps every executed copy as an artifact.
"""),
    code("""
db_path = None  # None: $TRADELOOP_DB, else ./tradeloop.duckdb
snapshot_file = None  # weights file; None (and no other input file): the demo on the bundled sample data
positions_file = None  # current holdings (symbol, qty); None: no holdings
fallback_prices_file = None  # prices for symbols the snapshot lacks; None: none
portfolio_value = None  # required unless the demo
model_version = None  # required unless the demo
params_file = None  # params JSON (README: Params JSON); None: the defaults
risk_limits = None  # inline risk limits over params_file's, e.g. {"max_order_notional": 50_000}
provider = "mock"
dry_run = False
run_id = None  # re-run (or name) a run; None: derived from the inputs, so the same inputs are the same run
work_db = None  # set by `tradeloop batch`: execute in this scratch database, merged into db_path afterwards
""", "parameters"),
    code(SETUP),
    code("""
review = notebook.trade_run(
    db_path=db_path, snapshot_file=snapshot_file, positions_file=positions_file,
    fallback_prices_file=fallback_prices_file, portfolio_value=portfolio_value, model_version=model_version,
    params_file=params_file, risk_limits=risk_limits, provider=provider, dry_run=dry_run, run_id=run_id,
    work_db=work_db,
)
review.verdict
""", "verdict"),
    md("## Risk outcome"),
    code("review.risk_table", CHECK_TAG),
    md("## By side and sector"),
    code("review.by_side"),
    code("review.by_sector"),
    md("## Figures"),
    code("plots.plot_weights(review.report)"),
    code("plots.plot_fills(review.report)"),
    code("plots.plot_cash(review.report)"),
    md("## Largest orders and fills"),
    code("review.largest_orders(20)"),
    code("review.largest_fills(20)"),
    md("## Summary\nThe cell `tradeloop verify-artifact` and nbval check against the database."),
    code("print(review.report.summary())", "summary", CHECK_TAG),
]

REVIEW_RUN = [
    md("""
# Run review

Reads one run back from the database (nothing is executed): the verdict, then the risk outcome, summaries,
figures and the largest orders. `tradeloop report RUN_ID --html review.html` renders it as a web page.
"""),
    code("""
db_path = None  # None: $TRADELOOP_DB, else ./tradeloop.duckdb
run_id = None  # None: the most recently created run
""", "parameters"),
    code(SETUP),
    code("""
review = notebook.review(db_path, run_id)
review.verdict
""", "verdict"),
    md("## Risk outcome"),
    code("review.risk_table", CHECK_TAG),
    md("## Risk decisions\nEvery order a risk rule skipped, resized, rejected or blocked, with the rule and its limit."),
    code("review.decisions_table"),
    md("## By side and sector"),
    code("review.by_side", CHECK_TAG),
    code("review.by_sector"),
    md("## Figures"),
    code("plots.plot_weights(review.report)"),
    code("plots.plot_fills(review.report)"),
    code("plots.plot_cash(review.report)"),
    code("plots.plot_exposure(review.report)"),
    md("## Largest orders and fills"),
    code("review.largest_orders(20)"),
    code("review.largest_fills(20)"),
    md("""
## Implementation shortfall

The paper portfolio of the target weights → each cause (lot rounding, cash trim, each risk rule, missing price,
liquidity, limit not crossed, not executed) → the portfolio reached, in % of portfolio value, then the symbols with
the largest gap (one column per cause). `tradeloop shortfall RUN_ID` prints the same.
"""),
    code("""
shortfall = tl.shortfall(review.run_id, db_path)
shortfall.plot("waterfall")
"""),
    code("""
shortfall.by_symbol.head(15)
"""),
    md("## Audit events and order lifecycles"),
    code("review.audit_table()"),
    code("notebook.lifecycle_check(db_path, review.run_id)", CHECK_TAG),
    md("## Summary"),
    code("print(review.report.summary())", "summary", CHECK_TAG),
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
    code("""
print(table["status"].value_counts().sort_index().to_string())
print(table.loc[:, ["snapshot", "status", "papermill_status", "orders", "fills", "notional"]].to_string(index=False))
""", CHECK_TAG),
    md("## Implementation shortfall per run\n\nbps of portfolio value: explicit costs of what was traded (a run trades on one frozen quote); `tradeloop shortfall RUN_ID` splits it by cause."),
    code("""
table.loc[:, ["snapshot", "run_id", "status", "shortfall_bps"]]
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
        if CHECK_TAG not in cell.metadata.get("tags", []):
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
