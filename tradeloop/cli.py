"""The ``tradeloop`` command line. Library errors become one-line messages and documented exit codes:

0 run done · 1 run failed (or another error) · 2 bad input or usage · 3 run blocked by risk.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import click
import pandas as pd

from .errors import RunNotFound, TradeloopError, ValidationError
from .params import load_params
from .runs import RunResult, create_run, execute_run, run_result
from .snapshot import load_snapshot_file
from .store import Store, default_db_path
from .tables import read_table

__all__ = ["main", "cli", "EXIT_CODES", "data_dir"]

EXIT_CODES = {"done": 0, "failed": 1, "blocked": 3}
EXIT_BAD_INPUT = 2


def data_dir() -> Path:
    """The bundled sample data: ``$TRADELOOP_DATA`` or the repository's ``data/`` folder."""
    return Path(os.environ.get("TRADELOOP_DATA") or Path(__file__).resolve().parents[1] / "data")


class _Command(click.Command):
    """Turns tradeloop errors into ``error: …`` and an exit code instead of a traceback."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except (ValidationError, RunNotFound) as e:
            click.echo(f"error: {e}", err=True)
            ctx.exit(EXIT_BAD_INPUT)
        except TradeloopError as e:
            click.echo(f"error: {e}", err=True)
            ctx.exit(1)
        except (click.exceptions.Exit, click.ClickException, click.Abort):
            raise
        except Exception as e:  # an unexpected failure is still one line; TRADELOOP_DEBUG=1 shows the traceback
            if os.environ.get("TRADELOOP_DEBUG"):
                raise
            click.echo(f"error: unexpected {type(e).__name__}: {e}", err=True)
            ctx.exit(1)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="tradeloop")
def cli():
    """tradeloop: target weights -> orders -> risk -> (mock) execution -> fills, audited in DuckDB.

    Example: tradeloop demo --db demo.duckdb
    """


_db_option = click.option(
    "--db", "db", type=click.Path(dir_okay=False, path_type=Path), default=None,
    help="DuckDB file (default: $TRADELOOP_DB or ./tradeloop.duckdb).",
)
_json_option = click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of text.")


def _print_result(result: RunResult, db: Path, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps({**result.to_dict(), "db": str(db)}, sort_keys=True))
        return
    orders = ", ".join(f"{k} {v}" for k, v in result.orders.items()) or "none"
    click.echo(f"run       {result.run_id}{'  (dry run)' if result.dry_run else ''}")
    click.echo(f"snapshot  {result.snapshot_id}")
    click.echo(f"status    {result.status}")
    click.echo(f"orders    {orders}")
    click.echo(f"fills     {result.fills}  notional {result.notional:,.2f}  commission {result.commission:,.2f}")
    if result.error:
        click.echo(f"error     {result.error}")
    for reason in result.blocked_reasons:
        click.echo(f"blocked   {reason}")
    click.echo(f"database  {db}")


def _exit_for(result: RunResult) -> None:
    sys.exit(EXIT_CODES.get(result.status, 1))


def _read_optional(path: Path | None, what: str) -> pd.DataFrame | None:
    return None if path is None else read_table(path, what)


@cli.command(cls=_Command)
@_db_option
@_json_option
def demo(db, as_json):
    """Freeze the bundled sample snapshot and execute it with the mock provider.

    Example: tradeloop demo --db demo.duckdb
    """
    data = data_dir()
    if not (data / "sample_snapshot.csv").is_file():
        raise ValidationError(f"bundled sample data not found in {str(data)!r}; set TRADELOOP_DATA to the data/ folder")
    db = db or default_db_path()
    snapshot = load_snapshot_file(data / "sample_snapshot.csv", portfolio_value=1_000_000, model_version="demo-v1")
    params = load_params(data / "params_pass.json")
    positions = read_table(data / "positions.csv", "positions")
    fallback = read_table(data / "fallback_prices.csv", "fallback prices")
    with Store(db) as store:
        run = create_run(store, snapshot, params=params, positions=positions, fallback_prices=fallback)
        result = execute_run(store, run.run_id)
    _print_result(result, db, as_json)
    _exit_for(result)


@cli.command(cls=_Command)
@click.option("--snapshot", "snapshot_file", required=True, type=click.Path(path_type=Path),
              help="Weights table, CSV or Parquet: symbol, weight, price [, sector, lot_size, volume].")
@click.option("--positions", "positions_file", type=click.Path(path_type=Path), help="Current holdings: symbol, qty.")
@click.option("--fallback-prices", "fallback_file", type=click.Path(path_type=Path),
              help="Prices for symbols the snapshot has none for: symbol, price.")
@click.option("--portfolio-value", required=True, type=float, help="Portfolio value in account currency.")
@click.option("--model-version", required=True, help="The model that produced the weights.")
@click.option("--params", "params_file", type=click.Path(path_type=Path), help="Params JSON (see README).")
@click.option("--provider", default="mock", show_default=True, help="Execution provider: mock, lean, or a plugin.")
@click.option("--dry-run", is_flag=True, help="Build and risk-check orders; submit nothing, write no fills.")
@click.option("--run-id", default=None, help="Explicit run id (default: derived from the inputs).")
@_db_option
@_json_option
def run(snapshot_file, positions_file, fallback_file, portfolio_value, model_version, params_file, provider, dry_run,
        run_id, db, as_json):
    """Freeze a snapshot and execute a trade run.

    Example: tradeloop run --snapshot data/sample_snapshot.csv --portfolio-value 1000000 --model-version m1
    --params data/params_pass.json --fallback-prices data/fallback_prices.csv --db my.duckdb
    """
    params = load_params(params_file)
    snapshot = load_snapshot_file(snapshot_file, portfolio_value=portfolio_value, model_version=model_version,
                                  default_lot_size=params.lot_size)
    positions = _read_optional(positions_file, "positions")
    fallback = _read_optional(fallback_file, "fallback prices")
    db = db or default_db_path()
    with Store(db) as store:
        created = create_run(store, snapshot, params=params, positions=positions, fallback_prices=fallback,
                             provider=provider, dry_run=dry_run, run_id=run_id)
        result = execute_run(store, created.run_id)
    _print_result(result, db, as_json)
    _exit_for(result)


@cli.command(cls=_Command)
@click.argument("run_id")
@_db_option
@_json_option
def rerun(run_id, db, as_json):
    """Re-execute a stored run: existing orders are reused, terminal orders untouched, nothing duplicated.

    Example: tradeloop rerun run-0123456789abcdef --db my.duckdb
    """
    db = db or default_db_path()
    with Store(db) as store:
        result = execute_run(store, run_id)
    _print_result(result, db, as_json)
    _exit_for(result)


def _frame_records(df: pd.DataFrame) -> list[dict]:
    return json.loads(df.to_json(orient="records", date_format="iso"))


@cli.command(cls=_Command)
@click.argument("run_id")
@_db_option
@_json_option
def show(run_id, db, as_json):
    """Show a run: status, risk outcome, orders, fills and audit events.

    Example: tradeloop show run-0123456789abcdef --db my.duckdb --json
    """
    db = db or default_db_path()
    with Store(db, read_only=True) as store:
        result = run_result(store, run_id)
        row = store.get_run(run_id)
        orders = store.orders(run_id).drop(columns=["created_at", "updated_at"])
        fills = store.fills(run_id)
        audit = store.audit_events(run_id)
    params = json.loads(row["params"])
    if as_json:
        click.echo(json.dumps({
            **result.to_dict(), "params": params, "attempts": row["attempts"],
            "order_rows": _frame_records(orders), "fill_rows": _frame_records(fills),
            "audit_events": [{**e, "payload": json.loads(e["payload"])} for e in _frame_records(audit)],
        }, sort_keys=True, default=str))
        return
    _print_result(result, db, False)
    outcome = params.get("risk", {}).get("outcome")
    if outcome:
        click.echo(f"\nrisk      {'passed' if outcome['passed'] else 'BLOCKED'}: {outcome['orders_checked']} checked, "
                   f"{outcome['orders_blocked']} blocked {outcome['blocked_by_code'] or ''}")
    with pd.option_context("display.width", 160, "display.max_rows", 500, "display.max_columns", 20):
        cols = ["client_order_id", "symbol", "side", "qty", "price", "status", "filled_qty", "avg_fill_price",
                "reject_reason"]
        click.echo(f"\norders ({len(orders)})\n{orders.loc[:, cols].to_string(index=False) if len(orders) else '-'}")
        fcols = ["fill_id", "qty", "price", "commission"]
        click.echo(f"\nfills ({len(fills)})\n{fills.loc[:, fcols].to_string(index=False) if len(fills) else '-'}")
        click.echo(f"\naudit events ({len(audit)})")
        for e in audit.itertuples():
            p = json.loads(e.payload)
            click.echo(f"  #{e.seq} {e.event_type} attempt {p.get('attempt')}: {p.get('previous_status')} -> "
                       f"{p.get('status')}, orders {p['counts']['orders_by_status']}, fills {p['counts']['fills']}"
                       f"{', error: ' + p['error'] if p.get('error') else ''}")


@cli.command(cls=_Command)
@_db_option
@_json_option
def runs(db, as_json):
    """List the runs in a database.

    Example: tradeloop runs --db my.duckdb
    """
    db = db or default_db_path()
    with Store(db, read_only=True) as store:
        table = store.runs()
    if as_json:
        click.echo(json.dumps(_frame_records(table), default=str))
    elif table.empty:
        click.echo(f"no runs in {db}")
    else:
        with pd.option_context("display.width", 160, "display.max_columns", 20, "display.max_colwidth", 60):
            click.echo(table.drop(columns=["created_at", "finished_at"]).to_string(index=False))


# --- issue 4: simulate a weight history

@cli.command(cls=_Command)
@click.option("--weights", "weights_file", required=True, type=click.Path(path_type=Path),
              help="Weight history, CSV or Parquet: date, symbol, weight [, portfolio].")
@click.option("--prices", "prices_file", required=True, type=click.Path(path_type=Path),
              help="Prices, CSV or Parquet: date, symbol, price [, volume, sector, lot_size].")
@click.option("--portfolio-value", required=True, type=float, help="Portfolio value on the first date.")
@click.option("--model-version", required=True, help="The model that produced the weights.")
@click.option("--params", "params_file", type=click.Path(path_type=Path), help="Params JSON (see README).")
@click.option("--positions", "positions_file", type=click.Path(path_type=Path),
              help="Holdings before the first date: symbol, qty [, portfolio].")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
@_db_option
@_json_option
def simulate(weights_file, prices_file, portfolio_value, model_version, params_file, positions_file, no_progress, db,
             as_json):
    """Simulate every rebalance of a weight history and store it (one transaction; repeating it is a no-op).

    Risk-blocked orders are REJECTED one by one (a single run would block as a whole); the exit code is 0 when the
    simulation is stored, 2 for bad input.

    Example: tradeloop simulate --weights weights.parquet --prices prices.parquet --portfolio-value 1000000
    --model-version m1 --params data/params_pass.json --db research.duckdb
    """
    from .simulate import save_simulation, simulate as run_simulation

    params = load_params(params_file)
    weights = read_table(weights_file, "weights")
    prices = read_table(prices_file, "prices")
    positions = _read_optional(positions_file, "positions")
    sim = run_simulation(weights, prices, portfolio_value=portfolio_value, params=params, positions=positions,
                         model_version=model_version, progress=not no_progress)
    db = db or default_db_path()
    with Store(db) as store:
        saved = save_simulation(store, sim)
    info = {**sim.describe(), "new": saved["new"], "db": str(db)}
    if as_json:
        click.echo(json.dumps(info, sort_keys=True))
        return
    click.echo(f"simulation {info['simulation_id']}{'' if saved['new'] else '  (already stored)'}")
    click.echo(f"dates      {info['dates']}  {info['first_date']} .. {info['last_date']}  symbols {info['symbols']}")
    click.echo(f"orders     {info['orders']}: filled {info['filled']}, blocked {info['blocked']}, missing price "
               f"{info['missing_price']}, canceled {info['canceled']}")
    if info["blocked_by_code"]:
        click.echo(f"blocked    {info['blocked_by_code']}")
    click.echo(f"commission {info['commission']:,.2f}")
    click.echo(f"final      cash {', '.join(f'{c:,.2f}' for c in info['final_cash'])}  value "
               f"{', '.join(f'{v:,.2f}' for v in info['final_value'])}")
    click.echo(f"database   {db}")


def main() -> None:
    cli(prog_name="tradeloop")


if __name__ == "__main__":
    main()
