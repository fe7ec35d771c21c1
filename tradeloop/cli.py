"""The ``tradeloop`` command line. Library errors become one-line messages and documented exit codes:

0 run done · 1 run failed (or another error) · 2 bad input or usage · 3 run blocked by risk ·
4 database (or run) busy: another process held it beyond the lock timeout · 5 ``verify`` found differences ·
6 disk full (or file size limit) while writing the database: the step's transaction was rolled back ·
130 interrupted (Ctrl-C): what was committed stays, the step in progress is rolled back ·
141 the output pipe was closed by its reader (``tradeloop show … | head``): output stops quietly, like SIGPIPE.
"""

from __future__ import annotations

import errno
import importlib
import json
import os
import sys
from pathlib import Path

import click

from .errors import RunNotFound, StoreBusy, TradeloopError, ValidationError

#: What the commands use, imported when a command runs (:func:`_load_deferred`), not when the CLI is built: so
#: ``tradeloop --help`` starts without pandas, numpy or DuckDB. Name -> (module, attribute; None: the module).
_DEFERRED = {
    "pd": ("pandas", None),
    "describe": (".core.controls", "describe"),
    "lifecycle_paths": (".core.lifecycle", "lifecycle_paths"),
    "replay_order_events": (".core.lifecycle", "replay_order_events"),
    "load_snapshot_file": (".core.snapshot", "load_snapshot_file"),
    "read_table": (".core.validate", "read_table"),
    "copy_notebooks": (".resources", "copy_notebooks"),
    "Settings": (".settings", "Settings"),
    "default_db_path": (".settings", "default_db_path"),
    "Store": (".store.db", "Store"),
    "provider_table": (".venue.providers", "provider_table"),
    "crash_hook": (".workflows.faults", "crash_hook"),
    "interrupt_hook": (".workflows.faults", "interrupt_hook"),
    "load_params": (".workflows.params", "load_params"),
    "RunResult": (".workflows.run", "RunResult"),
    "create_run": (".workflows.run", "create_run"),
    "execute_run": (".workflows.run", "execute_run"),
    "run_result": (".workflows.run", "run_result"),
}


def _load_deferred() -> None:
    """Bind the names of :data:`_DEFERRED` in this module (once)."""
    names = globals()
    for name, (module, attr) in _DEFERRED.items():
        if name not in names:
            loaded = importlib.import_module(module, __package__)
            names[name] = loaded if attr is None else getattr(loaded, attr)

__all__ = ["main", "cli", "EXIT_CODES", "data_dir"]

EXIT_CODES = {"done": 0, "failed": 1, "blocked": 3}
EXIT_BAD_INPUT = 2
EXIT_BUSY = 4
EXIT_VERIFY_DIFFERENCES = 5
EXIT_DISK_FULL = 6
EXIT_INTERRUPTED = 130
EXIT_PIPE_CLOSED = 141
_DISK_FULL = {errno.ENOSPC: "No space left on device", errno.EFBIG: "File too large"}


def data_dir() -> Path:
    """The sample data ``tradeloop demo`` reads: ``$TRADELOOP_DATA``, else the data shipped with tradeloop."""
    _load_deferred()
    return Settings.from_env().data_dir


def _settings(db: Path | None) -> tuple[Settings, Path]:
    """The checked settings (every ``TRADELOOP_*`` variable, before anything is written) and the database path."""
    settings = Settings.from_env()
    return settings, Path(db) if db else settings.db


def _store(db: Path, settings: Settings, *, read_only: bool = False, create: bool = True) -> Store:
    return Store(db, timeout=settings.lock_timeout, read_only=read_only, create=create)


def _execution(settings: Settings) -> dict:
    """``execute_run`` / ``create_run`` keyword arguments from the settings (fill batch, lease, crash hook)."""
    return {"fill_batch": settings.fill_batch, "lease_seconds": settings.lease_seconds,
            "faults": crash_hook(settings.crash_at)}


class _Command(click.Command):
    """Turns tradeloop errors into ``error: …`` and an exit code instead of a traceback."""

    def invoke(self, ctx):
        try:
            _load_deferred()
            return super().invoke(ctx)
        except (ValidationError, RunNotFound) as e:
            click.echo(f"error: {e}", err=True)
            ctx.exit(EXIT_BAD_INPUT)
        except StoreBusy as e:
            click.echo(f"error: {e}", err=True)
            ctx.exit(EXIT_BUSY)
        except TradeloopError as e:
            click.echo(f"error: {e}", err=True)
            ctx.exit(1)
        except BrokenPipeError:
            _quiet_pipe()
            ctx.exit(EXIT_PIPE_CLOSED)
        except (click.exceptions.Exit, click.ClickException, click.Abort):
            raise
        except Exception as e:  # an unexpected failure is still one line; TRADELOOP_DEBUG=1 shows the traceback
            if os.environ.get("TRADELOOP_DEBUG"):
                raise
            if _disk_full(e):
                click.echo(f"error: disk full while writing {str(_db_of(ctx))!r}; nothing was committed for this step",
                           err=True)
                ctx.exit(EXIT_DISK_FULL)
            click.echo(f"error: unexpected {type(e).__name__}: {_one_line(e)}", err=True)
            ctx.exit(1)


def _one_line(e: BaseException) -> str:
    lines = [line for line in str(e).splitlines() if line.strip()]
    return lines[0] if lines else ""


def _disk_full(e: BaseException) -> bool:
    """An OSError ENOSPC/EFBIG, or a database error reporting one (DuckDB wraps it in its own exception types)."""
    seen = 0
    while e is not None and seen < 10:
        if isinstance(e, OSError) and e.errno in _DISK_FULL:
            return True
        if any(text in str(e) for text in _DISK_FULL.values()):
            return True
        e, seen = e.__cause__ or e.__context__, seen + 1
    return False


def _db_of(ctx: click.Context) -> Path:
    _load_deferred()
    db = ctx.params.get("db")
    return Path(db) if db else default_db_path()


def _quiet_pipe() -> None:
    """The reader closed our stdout: point it at /dev/null so the interpreter's final flush does not complain."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):  # no real file descriptor (e.g. under a test runner)
        pass


class _Group(click.Group):
    """Usage errors as one line ``error: …`` with exit code 2 (not click's usage block), and a closed output pipe
    ending quietly with exit code 141."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        try:
            code = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except click.exceptions.NoArgsIsHelpError as e:
            e.show()
            sys.exit(e.exit_code)
        except click.UsageError as e:
            click.echo(f"error: {e.format_message()}", err=True)
            sys.exit(EXIT_BAD_INPUT)
        except click.ClickException as e:
            click.echo(f"error: {e.format_message()}", err=True)
            sys.exit(e.exit_code)
        except click.Abort as e:
            if isinstance(e.__cause__, KeyboardInterrupt):
                click.echo("error: interrupted; everything committed before stays and the step in progress was "
                           "rolled back: run the same command again to finish", err=True)
                sys.exit(EXIT_INTERRUPTED)
            click.echo("error: aborted", err=True)
            sys.exit(1)
        except BrokenPipeError:
            _quiet_pipe()
            sys.exit(EXIT_PIPE_CLOSED)
        sys.exit(code if isinstance(code, int) else 0)


def _dumps(obj, **kwargs) -> str:
    """``--json`` output: strict JSON (a non-finite number is an error here, never ``Infinity`` in the output)."""
    return json.dumps(obj, allow_nan=False, **kwargs)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
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

_scheduler_option = click.option(
    "--scheduler", default=None, metavar="ADDRESS",
    help="Where tasks run: 'local' (a Dask LocalCluster started for this command) or a Dask scheduler address "
         "tcp://host:port (default: $TRADELOOP_SCHEDULER, else processes on this machine). Needs tradeloop[dask].")
_sweep_workers_option = click.option(
    "--workers", type=click.IntRange(min=1), default=None,
    help="Local processes, or LocalCluster workers with --scheduler local (default 1, or 2 with --scheduler local).")


def _history_inputs(*, params_help: str, extra: list = ()):
    """The inputs of a weight history, shared by ``simulate`` and ``sweep``: --weights, --prices (then ``extra``
    options), --portfolio-value, --model-version, --params, --positions."""
    options = [
        click.option("--weights", "weights_file", required=True, type=click.Path(path_type=Path),
                     help="Weight history, CSV or Parquet: date, symbol, weight [, portfolio]."),
        click.option("--prices", "prices_file", required=True, type=click.Path(path_type=Path),
                     help="Prices, CSV or Parquet: date, symbol, price [, volume, sector, lot_size]."),
        *extra,
        click.option("--portfolio-value", required=True, type=float, help="Portfolio value on the first date."),
        click.option("--model-version", required=True, help="The model that produced the weights."),
        click.option("--params", "params_file", type=click.Path(path_type=Path), help=params_help),
        click.option("--positions", "positions_file", type=click.Path(path_type=Path),
                     help="Holdings before the first date: symbol, qty [, portfolio]."),
    ]

    def decorate(command):
        for option in reversed(options):  # click lists options in decoration order, innermost last
            command = option(command)
        return command

    return decorate


def _scheduler(settings: Settings, scheduler: str | None) -> str | None:
    from .workflows.executors import check_scheduler

    return check_scheduler(scheduler) if scheduler else settings.scheduler


def _print_result(result: RunResult, db: Path, as_json: bool, *, attempt: dict | None = None,
                  limit: int = 10) -> None:
    if as_json:
        click.echo(_dumps({**result.to_dict(), **(attempt or {}), "db": str(db)}, sort_keys=True))
        return
    orders = ", ".join(f"{k} {v}" for k, v in result.orders.items()) or "none"
    click.echo(f"run       {result.run_id}{'  (dry run)' if result.dry_run else ''}")
    click.echo(f"snapshot  {result.snapshot_id}")
    click.echo(f"status    {result.status}")
    if attempt and attempt.get("note"):
        click.echo(f"note      {attempt['note']}")
    click.echo(f"orders    {orders}")
    click.echo(f"fills     {result.fills}  notional {result.notional:,.2f}  commission {result.commission:,.2f}")
    if result.error:
        click.echo(f"error     {result.error}")
    for reason in result.blocked_reasons[:limit]:
        click.echo(f"blocked   {reason}")
    if len(result.blocked_reasons) > limit:
        click.echo(f"blocked   … and {len(result.blocked_reasons) - limit} more: tradeloop show {result.run_id} "
                   f"--orders")
    click.echo(f"database  {db}")


def _attempt(store: Store, run_id: str, before: tuple[str, int] | None) -> dict:
    """What executing an existing run did: ``attempt``, ``existing``, ``previous_status`` and a sentence."""
    attempt = int(store.get_run(run_id)["attempts"])
    if before is None or before[1] == 0:
        return {"attempt": attempt, "existing": False, "previous_status": None, "note": None}
    status, _ = before
    if status in ("done", "blocked"):
        note = (f"re-checked an existing run (attempt {attempt}): it was already {status}; nothing was executed "
                "again")
    else:
        note = f"resumed an existing run (attempt {attempt}), which was {status}"
    return {"attempt": attempt, "existing": True, "previous_status": status, "note": note}


def _state(store: Store, run_id: str) -> tuple[str, int] | None:
    """A run's status and attempts before executing it again (None: unknown, execute_run names it)."""
    try:
        r = store.get_run(run_id)
    except RunNotFound:
        return None
    return r["status"], int(r["attempts"])


def _exit_for(result: RunResult, db: Path) -> None:
    if result.status == "failed" and result.error and _disk_full(Exception(result.error)):
        click.echo(f"error: disk full while writing {str(db)!r}; nothing was committed for this step (the run is "
                   "recorded as failed: rerun it when there is space)", err=True)
        sys.exit(EXIT_DISK_FULL)
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
    settings, db = _settings(db)
    data = settings.data_dir
    if not (data / "sample_snapshot.csv").is_file():
        raise ValidationError(f"sample data not found in {str(data)!r}; unset TRADELOOP_DATA or point it at a data folder")
    snapshot = load_snapshot_file(data / "sample_snapshot.csv", portfolio_value=1_000_000, model_version="demo-v1")
    params = load_params(data / "params_pass.json")
    positions = read_table(data / "positions.csv", "positions")
    fallback = read_table(data / "fallback_prices.csv", "fallback prices")
    execution = _execution(settings)
    with _store(db, settings) as store:
        run = create_run(store, snapshot, params=params, positions=positions, fallback_prices=fallback,
                         faults=execution["faults"])
        result = execute_run(store, run.run_id, **execution)
        attempt = _attempt(store, run.run_id, (run.status, int(run.attempts)))
    _print_result(result, db, as_json, attempt=attempt)
    _exit_for(result, db)


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
    settings, db = _settings(db)
    params = load_params(params_file)
    snapshot = load_snapshot_file(snapshot_file, portfolio_value=portfolio_value, model_version=model_version,
                                  default_lot_size=params.lot_size)
    positions = _read_optional(positions_file, "positions")
    fallback = _read_optional(fallback_file, "fallback prices")
    execution = _execution(settings)
    with _store(db, settings) as store:
        created = create_run(store, snapshot, params=params, positions=positions, fallback_prices=fallback,
                             provider=provider, dry_run=dry_run, run_id=run_id, faults=execution["faults"])
        before = (created.status, int(created.attempts))
        result = execute_run(store, created.run_id, **execution)
        attempt = _attempt(store, created.run_id, before)
    _print_result(result, db, as_json, attempt=attempt)
    _exit_for(result, db)


@cli.command(cls=_Command)
@click.argument("run_id")
@_db_option
@_json_option
def rerun(run_id, db, as_json):
    """Re-execute a stored run: existing orders are reused, terminal orders untouched, nothing duplicated.

    Example: tradeloop rerun run-0123456789abcdef --db my.duckdb
    """
    settings, db = _settings(db)
    with _store(db, settings, create=False) as store:  # a mistyped --db must not leave a new file
        before = _state(store, run_id)
        result = execute_run(store, run_id, **_execution(settings))
        attempt = _attempt(store, run_id, before)
    _print_result(result, db, as_json, attempt=attempt)
    _exit_for(result, db)


def _frame_records(df: pd.DataFrame) -> list[dict]:
    return json.loads(df.to_json(orient="records", date_format="iso"))


_ORDER_COLUMNS_SHOWN = ["client_order_id", "symbol", "side", "qty", "price", "notional", "status", "filled_qty",
                        "avg_fill_price", "reject_reason"]


@cli.command(cls=_Command)
@click.argument("run_id", required=False)
@click.option("--order", "order_id", default=None, metavar="CLIENT_ORDER_ID",
              help="Show only this order (a client_order_id, or a symbol) and its lifecycle.")
@click.option("--orders", "all_orders", is_flag=True,
              help="List every order, fill and order lifecycle (default: a summary with the largest orders).")
@click.option("--limit", type=click.IntRange(min=1), default=None,
              help="Orders (and lifecycles) to list: default 10 in the summary, all with --orders.")
@_db_option
@_json_option
def show(run_id, order_id, all_orders, limit, db, as_json):
    """Show a run (default: the newest) or a stored simulation (SIM_ID): a summary with counts, notional, the risk
    outcome and the 10 largest orders; --orders lists everything, --json prints everything as one object.

    Example: tradeloop show run-0123456789abcdef --db my.duckdb
    (one order: tradeloop show run-0123456789abcdef --order AAPL; a simulation: tradeloop show sim-0123456789abcdef)
    """
    settings, db = _settings(db)
    with _store(db, settings, read_only=True) as store:
        if run_id is not None and run_id.startswith("sim-") and store.get_simulation(run_id) is not None:
            _show_simulation(store, run_id, as_json)
            return
        run_id = run_id or store.latest_run_id()
        result = run_result(store, run_id)
        row = store.get_run(run_id)
        orders = store.orders(run_id).drop(columns=["created_at", "updated_at"])
        fills = store.fills(run_id)
        audit = store.audit_events(run_id)
        events = store.order_events(run_id)
        decisions = store.risk_decisions(run_id)
        model_version = store.load_snapshot(row["snapshot_id"]).model_version
    if order_id is not None:
        _show_order(run_id, order_id, orders, fills, events, as_json)
        return
    params = json.loads(row["params"])
    if as_json:
        click.echo(_dumps({
            **result.to_dict(), "params": params, "attempts": row["attempts"], "model_version": model_version,
            "order_rows": _frame_records(orders), "fill_rows": _frame_records(fills),
            "audit_events": [{**e, "payload": json.loads(e["payload"])} for e in _frame_records(audit)],
            "order_events": _frame_records(events), "risk_decisions": _decision_records(decisions),
        }, sort_keys=True, default=str))
        return
    limit = limit or (len(orders) if all_orders else 10)
    _print_result(result, db, False, limit=limit)
    click.echo(f"model     {model_version}  attempts {row['attempts']}  created {row['created_at']}"
               f"  finished {row['finished_at'] or '-'}")
    _show_summary(params, orders, fills, audit, events, limit, all_orders)
    _show_decisions(decisions, limit)


def _decision_records(decisions: pd.DataFrame) -> list[dict]:
    """Risk decisions as JSON records: the stored columns (``limit_value`` as ``limit``) and their ``text``."""
    frame = decisions.rename(columns={"limit_value": "limit"})
    records = _frame_records(frame)
    for r in records:
        r["text"] = describe(r["symbol"], r["side"], r["rule"], r["action"], r["observed"], r["limit"],
                             int(r["qty_before"]), int(r["qty_after"]))
    return records


def _show_decisions(decisions: pd.DataFrame, limit: int) -> None:
    """The risk decisions of a run or simulation, one sentence each (the first ``limit``)."""
    records = _decision_records(decisions)
    click.echo(f"\nrisk decisions ({len(records)})")
    for r in records[:limit]:
        when = f"{str(r['date'])[:10]} " if r.get("date") else ""
        click.echo(f"  {when}{r['text']}")
    if len(records) > limit:
        click.echo(f"  … {len(records) - limit} more (all: --json)")


def _show_summary(params, orders, fills, audit, events, limit: int, all_orders: bool) -> None:
    """The text body of ``show``: risk outcome, notional by side, the largest orders, audit events, lifecycles."""
    outcome = params.get("risk", {}).get("outcome")
    if outcome:
        click.echo(f"\nrisk      {'passed' if outcome['passed'] else 'BLOCKED'}: {outcome['orders_checked']} checked, "
                   f"{outcome['orders_blocked']} blocked {outcome['blocked_by_code'] or ''}")
    orders = orders.assign(notional=orders["qty"] * orders["price"].fillna(0.0))
    by_side = orders.groupby("side")["notional"].agg(["size", "sum"])
    click.echo("notional  " + (", ".join(f"{side} {int(r['size'])} orders {r['sum']:,.2f}"
                                         for side, r in by_side.iterrows()) or "no orders"))
    shown = orders if all_orders and limit >= len(orders) else orders.sort_values(
        ["notional", "client_order_id"], ascending=[False, True], kind="stable").head(limit)
    title = (f"orders ({len(orders)})" if len(shown) == len(orders)
             else f"orders: {len(shown)} largest of {len(orders)} by notional (all: --orders, --limit N, --json)")
    with pd.option_context("display.width", 200, "display.max_rows", None, "display.max_columns", 20,
                           "display.max_colwidth", None):
        click.echo(f"\n{title}\n{shown.loc[:, _ORDER_COLUMNS_SHOWN].to_string(index=False) if len(shown) else '-'}")
        if all_orders:
            fcols = ["fill_id", "qty", "price", "commission"]
            click.echo(f"\nfills ({len(fills)})\n{fills.loc[:, fcols].to_string(index=False) if len(fills) else '-'}")
    click.echo(f"\naudit events ({len(audit)})")
    for e in audit.itertuples():
        p = json.loads(e.payload)
        click.echo(f"  #{e.seq} {e.event_type} attempt {p.get('attempt')}: {p.get('previous_status')} -> "
                   f"{p.get('status')}, orders {p['counts']['orders_by_status']}, fills {p['counts']['fills']}"
                   f"{', error: ' + p['error'] if p.get('error') else ''}")
    paths = lifecycle_paths(events)
    click.echo(f"\norder lifecycles ({len(paths)}; one order in detail: --order CLIENT_ORDER_ID)")
    for p in paths.head(limit).itertuples():
        click.echo(f"  {p.client_order_id}  {p.path}")
    if len(paths) > limit:
        counts = paths["path"].value_counts()
        click.echo(f"  … {len(paths) - limit} more; all {len(paths)} by path: "
                   + "; ".join(f"{n} {path}" for path, n in counts.items()))


def _show_simulation(store: Store, simulation_id: str, as_json: bool) -> None:
    """``show SIM_ID``: a stored simulation's totals and its dates' summary."""
    sim = store.get_simulation(simulation_id)
    runs = store.simulation_runs(simulation_id)
    totals = {
        "simulation_id": simulation_id, "model_version": sim["model_version"], "dates": int(sim["n_dates"]),
        "symbols": int(sim["n_symbols"]), "first_date": str(sim["first_date"])[:10],
        "last_date": str(sim["last_date"])[:10], "orders": int(sim["n_orders"]), "fills": int(sim["n_fills"]),
        "blocked": int(sim["n_blocked"]), "filled": int(runs["n_filled"].sum()),
        "missing_price": int(runs["n_missing_price"].sum()), "canceled": int(runs["n_canceled"].sum()),
        "buy_notional": round(float(runs["buy_notional"].sum()), 2),
        "sell_notional": round(float(runs["sell_notional"].sum()), 2),
        "commission": round(float(runs["commission"].sum()), 2),
        "final_value": [round(float(v), 2) for v in runs.groupby("portfolio")["end_value"].last()],
        "created_at": str(sim["created_at"]),
    }
    decisions = store.simulation_decisions(simulation_id)
    if as_json:
        click.echo(_dumps({**totals, "risk_decisions": _decision_records(decisions)}, sort_keys=True, default=str))
        return
    click.echo(f"simulation {simulation_id}  (model {totals['model_version']}, created {totals['created_at']})")
    click.echo(f"dates      {totals['dates']}  {totals['first_date']} .. {totals['last_date']}  symbols "
               f"{totals['symbols']}")
    click.echo(f"orders     {totals['orders']}: filled {totals['filled']}, blocked {totals['blocked']}, missing price "
               f"{totals['missing_price']}, canceled {totals['canceled']}; {totals['fills']} fills")
    click.echo(f"notional   bought {totals['buy_notional']:,.2f}  sold {totals['sell_notional']:,.2f}  commission "
               f"{totals['commission']:,.2f}")
    click.echo(f"final      value {', '.join(f'{v:,.2f}' for v in totals['final_value'])}")
    _show_decisions(decisions, 10)


@cli.command(cls=_Command)
@click.option("--limit", type=click.IntRange(min=1), default=None, help="Only the N newest runs.")
@_db_option
@_json_option
def runs(limit, db, as_json):
    """List the runs in a database, newest first: created time, model version, snapshot, orders, status, error.

    Example: tradeloop runs --db my.duckdb --limit 20
    """
    settings, db = _settings(db)
    with _store(db, settings, read_only=True) as store:
        table = store.run_list(limit)
    if as_json:
        click.echo(_dumps(_frame_records(table), default=str))
    elif table.empty:
        click.echo(f"no runs in {db}")
    else:
        shown = table.loc[:, ["created_at", "run_id", "model_version", "snapshot_id", "orders", "status", "attempts",
                              "error"]].assign(
            created_at=table["created_at"].dt.strftime("%Y-%m-%d %H:%M:%S"),
            error=table["error"].fillna("").astype(str).str.slice(0, 70))
        with pd.option_context("display.width", 250, "display.max_columns", 20, "display.max_colwidth", 70):
            click.echo(shown.to_string(index=False))


@cli.command(cls=_Command)
@click.option("--limit", type=click.IntRange(min=1), default=None, help="Only the N newest simulations.")
@_db_option
@_json_option
def simulations(limit, db, as_json):
    """List the stored simulations, newest first (one in detail: tradeloop show SIM_ID).

    Example: tradeloop simulations --db research.duckdb
    """
    settings, db = _settings(db)
    with _store(db, settings, read_only=True) as store:
        table = store.simulations()
    table = table.iloc[::-1].head(limit or len(table)).reset_index(drop=True)
    if as_json:
        click.echo(_dumps(_frame_records(table), default=str))
    elif table.empty:
        click.echo(f"no simulations in {db}")
    else:
        with pd.option_context("display.width", 250, "display.max_columns", 20):
            click.echo(table.to_string(index=False))


@cli.command(cls=_Command)
@click.argument("run_id", metavar="ID")
@click.option("--by", "by", type=click.Choice(["cause", "symbol", "sector", "date"]), default="cause",
              show_default=True, help="One row per cause, symbol, sector or date (a run is one date).")
@_db_option
@_json_option
def shortfall(run_id, by, db, as_json):
    """Implementation shortfall of a stored run or simulation (ID), split by cause: paper portfolio vs the one
    reached, in bps of portfolio value (see docs/concepts.md).

    Example: tradeloop shortfall sim-0123456789abcdef --by date --db research.duckdb
    """
    from .workflows.shortfall import shortfall as compute

    settings, db = _settings(db)
    with _store(db, settings, read_only=True) as store:
        result = compute(run_id, store)
    if as_json:
        click.echo(_dumps(result.to_dict(), sort_keys=False))
        return
    table = {"cause": result.by_cause.reset_index(), "symbol": result.by_symbol, "sector": result.by_sector,
             "date": result.by_date}[by]
    click.echo(f"{result.kind} {result.id}: shortfall {result.total:,.4f} bps"
               + (f", tracking error {result.tracking_error:,.4f} bps per period"
                  if len(result.data.dates) > 2 else ""))
    with pd.option_context("display.width", 250, "display.max_columns", 30, "display.max_rows", 200):
        click.echo(table.to_string(index=False))


# --- order lifecycles in `show --order`, and `providers`
_EVENT_COLUMNS_SHOWN = ["seq", "step", "from_status", "to_status", "qty", "price", "reason", "at"]


def _show_order(run_id: str, order_id: str, orders: pd.DataFrame, fills: pd.DataFrame, events: pd.DataFrame,
                as_json: bool) -> None:
    """One order: its row, its fills and every event, checked by replaying the events against the state machine."""
    match = orders.loc[orders["client_order_id"] == order_id]
    if match.empty:  # a symbol names its order(s)
        match = orders.loc[orders["symbol"] == order_id]
        if len(match) > 1:
            raise ValidationError(f"symbol {order_id!r} has {len(match)} orders in run {run_id!r}: "
                                  f"{', '.join(match['client_order_id'])}; give one of them")
    if match.empty:
        known = orders["client_order_id"].tolist()
        raise ValidationError(f"order {order_id!r} is not in run {run_id!r} (neither a client_order_id nor a "
                              f"symbol); it has {len(known)} order(s){', e.g. ' + repr(known[0]) if known else ''}")
    order = match.iloc[0]
    order_id = order["client_order_id"]
    own_events = events.loc[events["client_order_id"] == order_id].sort_values("seq", kind="stable")
    own_fills = fills.loc[fills["client_order_id"] == order_id]
    replayed = replay_order_events(own_events)
    replay_status = replayed["status"].iloc[0] if len(replayed) else "NEW"
    consistent = replay_status == order["status"]
    if as_json:
        click.echo(_dumps({
            "run_id": run_id, "order": _frame_records(match)[0], "fills": _frame_records(own_fills),
            "events": _frame_records(own_events), "replayed_status": replay_status, "consistent": consistent,
        }, sort_keys=True, default=str))
        return
    click.echo(f"order     {order_id}  (run {run_id})")
    click.echo(f"          {order['side']} {order['qty']} {order['symbol']} {order['order_type']}"
               f"{'' if pd.isna(order['limit_price']) else ' limit ' + format(order['limit_price'], '.10g')}"
               f"  reference price {'-' if pd.isna(order['price']) else format(order['price'], '.10g')}")
    click.echo(f"status    {order['status']}  filled {order['filled_qty']} of {order['qty']}"
               f"{'' if pd.isna(order['avg_fill_price']) else ' @ avg ' + format(order['avg_fill_price'], '.10g')}"
               f"{'  reason ' + order['reject_reason'] if isinstance(order['reject_reason'], str) else ''}")
    with pd.option_context("display.width", 160, "display.max_rows", 500, "display.max_columns", 20):
        table = own_events.loc[:, [c for c in _EVENT_COLUMNS_SHOWN if c in own_events]]
        click.echo(f"\nlifecycle ({len(own_events)} events)\n{table.to_string(index=False) if len(table) else '-'}")
        fcols = ["fill_id", "qty", "price", "commission"]
        click.echo(f"\nfills ({len(own_fills)})\n{own_fills.loc[:, fcols].to_string(index=False) if len(own_fills) else '-'}")
    click.echo(f"\nreplay    events lead to {replay_status}: "
               f"{'consistent with the stored status' if consistent else 'INCONSISTENT with the stored status'}")


@cli.command(cls=_Command)
@_json_option
def providers(as_json):
    """List the execution providers: built-in ones and those registered by other packages in the
    `tradeloop.providers` entry-point group.

    Example: tradeloop providers --json
    """
    table = provider_table()
    if as_json:
        click.echo(_dumps(_frame_records(table)))
        return
    with pd.option_context("display.width", 200, "display.max_colwidth", 90):
        shown = table.assign(available=table["available"].map({True: "yes", False: "no"}))
        click.echo(shown.to_string(index=False))
# --- verify (hash chain + in-memory replay) -----------------------------------------------------------
@cli.command(cls=_Command)
@click.argument("run_id", required=False)
@click.option("--all", "all_runs", is_flag=True, help="Replay every run (the default when no RUN_ID is given).")
@click.option("--anchor", "anchor_file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="When everything agrees, write the chain's last event (seq, hash) to this file; keep it elsewhere.")
@click.option("--expect-anchor", "expect_file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Refuse (exit 5) a chain that no longer contains the event of this anchor file (tail truncated).")
@_db_option
@_json_option
def verify(run_id, all_runs, anchor_file, expect_file, db, as_json):
    """Check the audit hash chain and replay runs in memory against the stored orders, fills and events.

    Exit 0 when everything agrees, 5 with one line per difference otherwise. Nothing is written to the database.
    --anchor FILE writes the chain head after a clean verification; --expect-anchor FILE checks that the chain still
    extends one written earlier (events deleted from the end of the chain are invisible without it).

    Example: tradeloop verify --all --db my.duckdb --expect-anchor ~/anchors/my.json --anchor ~/anchors/my.json
    """
    from .workflows.verify import read_anchor, verify_store, write_anchor

    if run_id and all_runs:
        raise ValidationError(f"give a RUN_ID ({run_id!r}) or --all, not both")
    settings, db = _settings(db)
    if not Path(db).is_file():
        raise ValidationError(f"database {str(db)!r} does not exist")
    expected = None if expect_file is None else read_anchor(expect_file)
    with _store(db, settings, read_only=True) as store:
        result = verify_store(store, None if not run_id else [run_id], expect_anchor=expected)
    wrote = anchor_file is not None and result.ok and result.head is not None
    if wrote:
        write_anchor(anchor_file, result.head, db)
    if as_json:
        click.echo(_dumps({**result.to_dict(), "db": str(db), "head": result.head,
                           "anchor_written": str(anchor_file) if wrote else None}, sort_keys=True))
    else:
        for note in result.notes:
            click.echo(f"note: {note}")
        for diff in result.differences:
            click.echo(f"DIFF {diff}")
        verdict = "all agree" if result.ok else f"{len(result.differences)} difference(s)"
        sims = f", {len(result.simulations)} simulation(s)" if result.simulations else ""
        click.echo(f"verified {len(result.runs)} run(s){sims} and {result.audit_events} audit event(s) in {db}: "
                   f"{verdict}")
        if wrote:
            click.echo(f"anchor    seq {result.head['seq']} written to {anchor_file}")
        elif anchor_file is not None:
            click.echo(f"anchor    not written to {anchor_file}: "
                       f"{'the chain is empty' if result.ok else 'the database has differences'}")
    sys.exit(0 if result.ok else EXIT_VERIFY_DIFFERENCES)
# --- notebook batches and artifact verification
@cli.command(cls=_Command)
@click.option("--snapshots", required=True,
              help="A directory of snapshot files (*.csv, *.parquet), a quoted glob pattern, or one file.")
@click.option("--params", "params_file", type=click.Path(path_type=Path), help="Params JSON for every run.")
@click.option("--portfolio-value", required=True, type=float, help="Portfolio value in account currency.")
@click.option("--model-version", required=True, help="The model that produced the weights.")
@click.option("--positions", "positions_file", type=click.Path(path_type=Path), help="Current holdings: symbol, qty.")
@click.option("--fallback-prices", "fallback_file", type=click.Path(path_type=Path),
              help="Prices for symbols a snapshot has none for: symbol, price.")
@click.option("--provider", default="mock", show_default=True, help="Execution provider.")
@click.option("--dry-run", is_flag=True, help="Build and risk-check orders only.")
@click.option("--notebook", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Notebook to execute per snapshot (default: notebooks/trade_run.ipynb).")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("artifacts"), show_default=True,
              help="Directory for the executed notebooks, <out>/<run_id>.ipynb.")
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="Notebooks executed in parallel (each in its own kernel and scratch database); default 1, or 2 "
                   "LocalCluster workers with --scheduler local.")
@click.option("--kernel", default=None,
              help="Jupyter kernel name (default: tradeloop, installed for this Python on first use).")
@click.option("--no-progress", is_flag=True, help="Hide the progress bar.")
@_scheduler_option
@_db_option
@_json_option
def batch(snapshots, params_file, portfolio_value, model_version, positions_file, fallback_file, provider, dry_run,
          notebook, out, workers, kernel, no_progress, scheduler, db, as_json):
    """Execute the run notebook once per snapshot with papermill, saving every executed notebook.

    Each executed notebook is saved as <out>/<run_id>.ipynb (also when it fails) and recorded in run_artifacts.
    Exit code: 0 all runs done, 1 any run or notebook failed, 3 any run blocked by risk (none failed), 130
    interrupted (the runs recorded so far stay; running it again executes the others).

    Example: tradeloop batch --snapshots 'snapshots/*.csv' --params data/params_pass.json --portfolio-value 1000000
    --model-version m1 --workers 4 --out artifacts --db research.duckdb
    """
    from .workflows.batch import run_batch

    settings, db = _settings(db)
    result = run_batch(snapshots, portfolio_value=portfolio_value, model_version=model_version,
                       params_file=params_file, positions_file=positions_file, fallback_prices_file=fallback_file,
                       provider=provider, dry_run=dry_run, notebook=notebook, out=out, workers=workers,
                       db=db, kernel=kernel, progress=not no_progress and not as_json,
                       scheduler=_scheduler(settings, scheduler), faults=interrupt_hook(settings.interrupt_at))
    if as_json:
        click.echo(_dumps(result.to_dict(), sort_keys=True))
    else:
        click.echo(result.summary())
    sys.exit(result.exit_code)


@cli.command("verify-artifact", cls=_Command)
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--rerun", is_flag=True,
              help="Also re-execute the recorded source notebook with the recorded parameters on a copy of the "
                   "database and compare outputs (the database itself is not written).")
@click.option("--kernel", default=None, help="Kernel for --rerun (default: the artifact's).")
@_db_option
@_json_option
def verify_artifact_cmd(path, rerun, kernel, db, as_json):
    """Check a saved notebook artifact against its run; exit 0 only when everything agrees.

    Checks: valid nbformat, every cell completed under papermill, no error outputs, the file is named after its
    run, its sha256 equals the one in run_artifacts, the row agrees with the artifact's event in the audit hash
    chain, the chain is intact, and the summary cell agrees with the run in the database. --rerun re-executes the
    recorded source notebook (refused when it changed since) with the recorded parameters against a copy of the
    database and requires the same checked outputs and no new orders or fills; the artifact's own cells never run.
    --db defaults to $TRADELOOP_DB or ./tradeloop.duckdb, never to the path written inside the artifact.

    Example: tradeloop verify-artifact artifacts/run-0123456789abcdef.ipynb --db research.duckdb --rerun
    """
    from .workflows.batch import verify_artifact

    _, db = _settings(db)
    problems = verify_artifact(path, db=db, rerun=rerun, kernel=kernel)
    if as_json:
        click.echo(_dumps({"path": str(path), "ok": not problems, "rerun": bool(rerun), "problems": problems},
                          sort_keys=True))
        sys.exit(1 if problems else 0)
    if problems:
        click.echo(f"{path}: {len(problems)} difference(s) against {db}")
        for p in problems:
            click.echo(f"  - {p}")
        sys.exit(1)
    click.echo(f"{path}: OK against {db} (valid notebook, all cells completed, sha256 recorded and bound in the "
               f"audit chain, summary matches the database{', re-run identical' if rerun else ''})")
# --- review report (HTML / executed notebook)
@cli.command(cls=_Command)
@click.argument("run_id", required=False)
@click.option("--html", "html_file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write the review as a self-contained HTML page (input cells hidden).")
@click.option("--ipynb", "ipynb_file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write the executed review notebook.")
@click.option("--kernel", default="tradeloop", show_default=True, help="Jupyter kernel name.")
@_db_option
def report(run_id, html_file, ipynb_file, kernel, db):
    """Execute the review notebook for a run (default: the newest) and write it as HTML and/or a notebook.

    Example: tradeloop report run-0123456789abcdef --db research.duckdb --html review.html
    """
    from .reporting.html import write_report
    from .workflows.batch import check_kernel

    if html_file is None and ipynb_file is None:
        raise ValidationError("give --html FILE and/or --ipynb FILE")
    settings, db = _settings(db)
    if not Path(db).is_file():
        raise ValidationError(f"database {str(db)!r} does not exist")
    with _store(db, settings, read_only=True) as store:
        run_id = run_id or store.latest_run_id()
        store.get_run(run_id)  # RunNotFound names it
    check_kernel(kernel)
    written = write_report(db, run_id, html=html_file, ipynb=ipynb_file, kernel=kernel)
    for kind, path in written.items():
        click.echo(f"{kind:<6} {path}  (review of {run_id} in {db})")


# --- simulate a weight history

@cli.command(cls=_Command)
@_history_inputs(params_help="Params JSON (see README).")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
@_scheduler_option
@_sweep_workers_option
@_db_option
@_json_option
def simulate(weights_file, prices_file, portfolio_value, model_version, params_file, positions_file, no_progress,
             scheduler, workers, db, as_json):
    """Simulate every rebalance of a weight history and store it (one transaction; repeating it is a no-op).

    Risk-blocked orders are REJECTED one by one (a single run would block as a whole); the exit code is 0 when the
    simulation is stored, 2 for bad input. With several portfolios and --scheduler (or --workers N), each
    portfolio's whole history is one task; the result is the same simulation. One portfolio runs in this process
    (a history is never split along time).

    Example: tradeloop simulate --weights weights.parquet --prices prices.parquet --portfolio-value 1000000
    --model-version m1 --params data/params_pass.json --db research.duckdb
    """
    from .store.simulations import save_simulation
    from .workflows.history import simulate_on

    settings, db = _settings(db)
    params = load_params(params_file)
    sim, ran_on, partitions = simulate_on(
        read_table(weights_file, "weights"), read_table(prices_file, "prices"), portfolio_value=portfolio_value,
        params=params, positions=_read_optional(positions_file, "positions"), model_version=model_version,
        progress=not no_progress, scheduler=_scheduler(settings, scheduler), workers=workers)
    with _store(db, settings) as store:
        saved = save_simulation(store, sim)
    info = {**sim.describe(), "new": saved["new"], "db": str(db), "partitions": partitions, "ran_on": ran_on}
    if as_json:
        click.echo(_dumps(info, sort_keys=True))
        return
    click.echo(f"simulation {info['simulation_id']}{'' if saved['new'] else '  (already stored)'}")
    click.echo(f"dates      {info['dates']}  {info['first_date']} .. {info['last_date']}  symbols {info['symbols']}")
    click.echo(f"orders     {info['orders']}: filled {info['filled']}, blocked {info['blocked']}, missing price "
               f"{info['missing_price']}, canceled {info['canceled']} ({info['partially_filled']} after partial "
               f"fills); {info['fills']} fills")
    if info["blocked_by_code"]:
        click.echo(f"blocked    {info['blocked_by_code']}")
    click.echo(f"commission {info['commission']:,.2f}")
    click.echo(f"final      cash {', '.join(f'{c:,.2f}' for c in info['final_cash'])}  value "
               f"{', '.join(f'{v:,.2f}' for v in info['final_value'])}")
    click.echo(f"database   {db}")


@cli.command(cls=_Command)
@_history_inputs(params_help="Base params JSON the grid changes.", extra=[click.option(
    "--grid", "grid_file", required=True, type=click.Path(path_type=Path),
    help="Grid JSON: params paths to lists of values, or a list of params objects.")])
@_scheduler_option
@_sweep_workers_option
@click.option("--no-progress", is_flag=True, help="No progress bar.")
@_db_option
@_json_option
def sweep(weights_file, prices_file, grid_file, portfolio_value, model_version, params_file, positions_file,
          scheduler, workers, no_progress, db, as_json):
    """Simulate a weight history once per combination of a params grid and store each simulation.

    The grid maps params paths to lists of values ({"cash_buffer": [0, 0.02], "risk.max_position_ratio": [0.05,
    null]}: their cartesian product) or is a list of params objects. Combinations stored already are not computed
    again. Exit code: 0 every combination stored, 1 any failed (the others are stored), 2 bad input, 130
    interrupted (the combinations stored so far stay; running it again computes the others).

    Example: tradeloop sweep --weights weights.parquet --prices prices.parquet --grid grid.json
    --portfolio-value 1000000 --model-version m1 --scheduler local --workers 2 --db research.duckdb
    """
    from .workflows.sweep import sweep as run_sweep

    settings, db = _settings(db)
    scheduler = _scheduler(settings, scheduler)
    params = load_params(params_file)
    result = run_sweep(read_table(weights_file, "weights"), read_table(prices_file, "prices"), grid=grid_file,
                       portfolio_value=portfolio_value, model_version=model_version, params=params,
                       positions=_read_optional(positions_file, "positions"), scheduler=scheduler, workers=workers,
                       db=db, progress=not no_progress and not as_json,
                       faults=interrupt_hook(settings.interrupt_at))
    if as_json:
        click.echo(_dumps(result.to_dict(), sort_keys=True))
    else:
        click.echo(result.summary())
    sys.exit(result.exit_code)


@cli.command(cls=_Command)
@click.argument("dest", type=click.Path(path_type=Path))
@click.option("--force", is_flag=True, help="Overwrite files DEST already has (default: keep them).")
def notebooks(dest, force):
    """Copy the notebooks, and the sample data into DEST/data, to open in JupyterLab.

    Example: tradeloop notebooks my-notebooks && jupyter lab my-notebooks
    """
    if dest.exists() and not dest.is_dir():
        raise ValidationError(f"notebooks destination {str(dest)!r} is a file; give a folder")
    written = copy_notebooks(dest, overwrite=force)
    for path in written:
        click.echo(f"wrote     {path}")
    kept = "" if force else " (existing files kept; --force overwrites them)"
    click.echo(f"{len(written)} file(s) in {dest}{kept}; open them with: jupyter lab {dest}")


def main() -> None:
    cli(prog_name="tradeloop")


if __name__ == "__main__":
    main()
