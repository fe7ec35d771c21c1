"""RunReport: everything a researcher or reviewer looks at for one run, read back from the database.

The notebooks in ``notebooks/`` stay a few lines long by calling these functions: :func:`run_from_files` is the
body of ``trade_run.ipynb`` (freeze, create, execute, read back), :func:`load_report` and :func:`audit_check` the
body of ``review_run.ipynb`` (read only, no re-execution) and :func:`batch_table` the body of
``batch_overview.ipynb``. Every returned table is deterministic: no timestamps, no absolute paths, sorted rows.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd

from ..display import facts_html, preview_html, short_repr
from ..core.controls import describe
from ..core.snapshot import load_snapshot_file
from ..core.validate import read_table
from ..errors import ValidationError
from ..resources import shipped_path
from ..settings import Settings, default_db_path
from ..store.db import Store
from ..venue.providers import prepare_book
from ..workflows.params import RunParams, load_params
from ..workflows.run import (
    RunResult,
    create_run,
    execute_run,
    load_run,
    run_result,
)
from ..workflows.shortfall import run_shortfalls
from ..workflows.verify import audit_check

__all__ = [
    "RunReport", "run_from_files", "load_report", "audit_check", "audit_line", "batch_table", "summary_text",
    "parse_summary", "resolve_input", "SUMMARY_TITLE",
]

#: First line of the summary cell's output; :func:`parse_summary` finds the summary by it.
SUMMARY_TITLE = "TRADELOOP RUN SUMMARY"
_SUMMARY_LINE = re.compile(r"^(\w+):\s*(.*?)\s*$")
_ORDER_VIEW = ["symbol", "side", "qty", "order_type", "price", "price_source", "sector", "target_weight",
               "current_qty", "target_qty", "status", "filled_qty", "avg_fill_price", "reject_reason"]


def resolve_input(path: str | Path | None) -> Path | None:
    """An input path as given if it exists (absolute or relative to the working directory), else the shipped file
    it names, so the notebooks' defaults (``data/sample_snapshot.csv``) work from any directory."""
    if path is None or str(path) == "":
        return None
    p = Path(path).expanduser()
    if p.is_absolute() or p.exists():
        return p
    candidate = shipped_path(p)
    return candidate if candidate is not None and candidate.exists() else p


@dataclass(frozen=True, eq=False)
class RunReport:
    """One run as stored, in tables ready to show or plot.

    Attributes
    ----------
    result : RunResult
        Status, counts by order status, fills, notional, commission, error, blocked reasons.
    portfolio_value : float
    orders : DataFrame
        One row per order, sorted by symbol and side: ``client_order_id, symbol, side, qty, order_type, price,
        price_source, sector, target_weight, current_qty, target_qty, status, filled_qty, avg_fill_price,
        reject_reason``.
    fills : DataFrame
        ``fill_id, client_order_id, symbol, side, sector, qty, price, commission, notional`` where ``notional``
        is signed (BUY positive, SELL negative), sorted by fill_id.
    risk : DataFrame
        The blocked orders with the reason for each: ``symbol, side, qty, codes, reason`` (empty when risk passed).
    risk_outcome : dict
        ``params.risk.outcome`` of the run (passed, orders_checked, orders_blocked, blocked_by_code, blocked).
    weights : DataFrame
        Every symbol of the book: ``symbol, sector, price, target_weight, current_qty, achieved_qty,
        current_weight, achieved_weight`` (weights at the book's price over the portfolio value).
    sectors : DataFrame
        Traded notional by sector: ``sector, buy_notional, sell_notional, traded_notional, commission``.
    cash : DataFrame
        ``item, amount`` rows: cash before, buys, sells, commission, cash after.
    audit : DataFrame
        The run's audit events in chain order: ``seq, event_type, attempt, previous_status, status, orders,
        fills, notional, error``.
    decisions : DataFrame
        Every risk decision (``risk_decisions``): ``symbol, side, rule, action, qty_before, qty_after, observed,
        limit, text`` (``text``: the decision as a sentence), ordered by symbol and rule.
    """

    result: RunResult
    portfolio_value: float
    orders: pd.DataFrame
    fills: pd.DataFrame
    risk: pd.DataFrame
    risk_outcome: dict
    weights: pd.DataFrame
    sectors: pd.DataFrame
    cash: pd.DataFrame
    audit: pd.DataFrame
    decisions: pd.DataFrame = field(default_factory=lambda: decisions_view(pd.DataFrame()))

    @property
    def run_id(self) -> str:
        return self.result.run_id

    def __repr__(self) -> str:
        r = self.result
        return short_repr("RunReport", r.run_id, status=r.status, orders=len(self.orders), fills=len(self.fills),
                          blocked=len(self.risk))

    def _repr_html_(self) -> str:
        r = self.result
        o = self.risk_outcome
        risk = ("passed" if o.get("passed", True) else "BLOCKED") + (
            f": {o.get('orders_checked', len(self.orders)):,} checked, {o.get('orders_blocked', 0):,} blocked")
        facts = [("run_id", r.run_id), ("status", r.status), ("portfolio value", self.portfolio_value),
                 ("orders", f"{len(self.orders):,} (" + (", ".join(f"{k} {v:,}" for k, v in r.orders.items())
                                                        or "none") + ")"),
                 ("risk", risk), ("fills", len(self.fills)), ("notional", r.notional), ("commission", r.commission),
                 ("error", r.error)]
        frames = ", ".join(f".{n} ({len(getattr(self, n)):,} rows)" for n in
                           ("orders", "fills", "risk", "weights", "sectors", "cash", "audit"))
        return facts_html(f"RunReport {r.run_id}", facts,
                          extra=preview_html(self.sectors, rows=12, caption="traded notional by sector"),
                          footer=f"full frames: {frames}; .summary() as text")

    def summary(self) -> str:
        """The text of the notebooks' summary cell (see :func:`summary_text`)."""
        return summary_text(self.result, risk_blocked=len(self.risk))


def summary_text(result: RunResult, *, risk_blocked: int | None = None) -> str:
    """Deterministic ``key: value`` lines naming a run's id, status and counts; :func:`parse_summary` reads them."""
    orders = ", ".join(f"{k} {v}" for k, v in result.orders.items()) or "none"
    blocked = len(result.blocked_reasons) if risk_blocked is None else risk_blocked
    lines = [
        SUMMARY_TITLE,
        f"run_id: {result.run_id}",
        f"snapshot_id: {result.snapshot_id}",
        f"status: {result.status}",
        f"dry_run: {str(result.dry_run).lower()}",
        f"orders: {sum(result.orders.values())} ({orders})",
        f"fills: {result.fills}",
        f"notional: {result.notional:.2f}",
        f"commission: {result.commission:.2f}",
        f"risk_blocked: {blocked}",
        f"error: {result.error or '-'}",
    ]
    return "\n".join(lines)


def parse_summary(text: str) -> dict[str, str]:
    """The ``key: value`` pairs of a summary text (as printed by :func:`summary_text`); empty if it is not one."""
    lines = text.strip().splitlines()
    if not lines or lines[0].strip() != SUMMARY_TITLE:
        return {}
    pairs = (_SUMMARY_LINE.match(line) for line in lines[1:])
    return {m.group(1): m.group(2) for m in pairs if m}


def _params_for(params_file, risk_limits: Mapping | None) -> RunParams:
    params = load_params(resolve_input(params_file))
    if not risk_limits:
        return params
    if not isinstance(risk_limits, Mapping):
        raise ValidationError(f"risk_limits must be a mapping of risk limits, got {type(risk_limits).__name__}")
    data = params.to_dict()
    data["risk"] = {**data["risk"], **dict(risk_limits)}
    return RunParams.from_dict(data)


def run_from_files(
    db_path: str | Path | None = None,
    *,
    snapshot_file: str | Path,
    portfolio_value: float,
    model_version: str,
    positions_file: str | Path | None = None,
    fallback_prices_file: str | Path | None = None,
    params_file: str | Path | None = None,
    risk_limits: Mapping | None = None,
    provider: str = "mock",
    dry_run: bool = False,
    run_id: str | None = None,
    work_db: str | Path | None = None,
) -> RunReport:
    """Freeze a snapshot file, create and execute its run, and read the run back (``trade_run.ipynb``).

    Parameters
    ----------
    db_path : path, optional
        The database (default ``$TRADELOOP_DB``, else ``./tradeloop.duckdb``).
    snapshot_file, positions_file, fallback_prices_file, params_file : path
        Inputs as for ``tradeloop run``; relative paths that do not exist here are taken from the repository root.
    risk_limits : mapping, optional
        Inline risk limits, laid over the params file's ``risk`` (e.g. ``{"max_order_notional": 50000}``).
    run_id : str, optional
        Re-run (or name) this run; default: derived from the inputs, so running twice is the same run.
    work_db : path, optional
        Execute in this scratch database instead of ``db_path`` (``tradeloop batch`` merges it afterwards).

    Returns
    -------
    RunReport

    Raises
    ------
    ValidationError
        Bad snapshot, positions, prices or params, naming the field and row (nothing is written).
    """
    settings = Settings.from_env()  # the notebook's boundary: every TRADELOOP_* variable, checked before writing
    params = _params_for(params_file, risk_limits)
    snapshot = load_snapshot_file(resolve_input(snapshot_file), portfolio_value=portfolio_value,
                                  model_version=model_version, default_lot_size=params.lot_size)
    positions = None if positions_file is None else read_table(resolve_input(positions_file), "positions")
    fallback = (None if fallback_prices_file is None
                else read_table(resolve_input(fallback_prices_file), "fallback prices"))
    target = Path(work_db) if work_db else (Path(db_path) if db_path else settings.db)
    with Store(target, timeout=settings.lock_timeout) as store:
        run = create_run(store, snapshot, params=params, positions=positions, fallback_prices=fallback,
                         provider=provider, dry_run=bool(dry_run), run_id=run_id)
        execute_run(store, run.run_id, fill_batch=settings.fill_batch, lease_seconds=settings.lease_seconds)
        return _report(store, run.run_id)


def load_report(db_path: str | Path | None, run_id: str | None = None) -> RunReport:
    """Read a stored run back without executing anything (``review_run.ipynb``).

    ``run_id=None`` picks the most recently created run. The database is opened read-only.
    """
    with Store(db_path or default_db_path(), read_only=True) as store:
        return _report(store, store.latest_run_id() if run_id is None else run_id)


def _report(store: Store, run_id: str) -> RunReport:
    result = run_result(store, run_id)
    row = store.get_run(run_id)
    outcome = json.loads(row["params"]).get("risk", {}).get("outcome") or {}
    run = load_run(store, run_id)
    snapshot = store.load_snapshot(run.snapshot_id)
    book = prepare_book(run, snapshot)
    orders = store.orders(run_id)
    fills = store.fills(run_id)
    audit = store.audit_events(run_id)
    report = _build_report(result, snapshot.portfolio_value, book, orders, fills, outcome, audit)
    return replace(report, decisions=decisions_view(store.risk_decisions(run_id)))


def decisions_view(decisions: pd.DataFrame) -> pd.DataFrame:
    """A run's stored risk decisions for people: the columns of :attr:`RunReport.decisions`."""
    cols = ["symbol", "side", "rule", "action", "qty_before", "qty_after", "observed", "limit", "text"]
    if decisions.empty:
        return pd.DataFrame(columns=cols)
    frame = decisions.rename(columns={"limit_value": "limit"}).sort_values(["symbol", "rule"], kind="stable")
    frame["text"] = [describe(r.symbol, r.side, r.rule, r.action, r.observed, r.limit, int(r.qty_before),
                              int(r.qty_after)) for r in frame.itertuples()]
    return frame.loc[:, cols].reset_index(drop=True)


def _build_report(result, portfolio_value, book, orders, fills, outcome, audit) -> RunReport:
    orders_view = orders.loc[:, ["client_order_id", *_ORDER_VIEW]].reset_index(drop=True)

    sign = orders.set_index("client_order_id")["side"].map({"BUY": 1.0, "SELL": -1.0})
    fills_view = fills.loc[:, ["fill_id", "client_order_id", "qty", "price", "commission"]].merge(
        orders.loc[:, ["client_order_id", "symbol", "side", "sector"]], on="client_order_id", how="left")
    fills_view["notional"] = fills_view["client_order_id"].map(sign).to_numpy() * fills_view["qty"] * fills_view["price"]
    fills_view = fills_view.loc[:, ["fill_id", "client_order_id", "symbol", "side", "sector", "qty", "price",
                                    "commission", "notional"]].sort_values("fill_id").reset_index(drop=True)

    blocked = pd.DataFrame(outcome.get("blocked") or [], columns=["client_order_id", "symbol", "side", "qty",
                                                                   "codes", "reason"])
    risk = blocked.loc[:, ["symbol", "side", "qty", "codes", "reason"]].reset_index(drop=True)

    # Achieved position: current quantity plus the signed filled quantity of the run's orders.
    net_fill = (orders["side"].map({"BUY": 1, "SELL": -1}) * orders["filled_qty"]).groupby(orders["symbol"]).sum()
    weights = book.loc[:, ["symbol", "sector", "price", "target_weight", "current_qty"]].copy()
    weights["achieved_qty"] = weights["current_qty"] + weights["symbol"].map(net_fill).fillna(0).astype("int64")
    weights["current_weight"] = weights["current_qty"] * weights["price"] / portfolio_value
    weights["achieved_weight"] = weights["achieved_qty"] * weights["price"] / portfolio_value
    weights = weights.sort_values("symbol").reset_index(drop=True)

    traded = fills_view.assign(
        sector=fills_view["sector"].fillna("(none)"),
        buy_notional=fills_view["notional"].clip(lower=0),
        sell_notional=(-fills_view["notional"]).clip(lower=0),
    )
    sectors = (traded.groupby("sector", sort=True)[["buy_notional", "sell_notional", "commission"]].sum()
               .reset_index())
    sectors["traded_notional"] = sectors["buy_notional"] + sectors["sell_notional"]
    sectors = sectors.loc[:, ["sector", "buy_notional", "sell_notional", "traded_notional", "commission"]]

    cash_before = float(book["cash"].iloc[0]) if len(book) else float("nan")
    buys = float(traded["buy_notional"].sum())
    sells = float(traded["sell_notional"].sum())
    commission = float(fills_view["commission"].sum())
    cash = pd.DataFrame({
        "item": ["cash before", "buys", "sells", "commission", "cash after"],
        "amount": np.round([cash_before, -buys, sells, -commission, cash_before - buys + sells - commission], 2) + 0.0,
    })

    return RunReport(result=result, portfolio_value=float(portfolio_value), orders=orders_view, fills=fills_view,
                     risk=risk, risk_outcome=outcome, weights=weights, sectors=sectors, cash=cash,
                     audit=_audit_view(audit))


def _audit_view(audit: pd.DataFrame) -> pd.DataFrame:
    cols = ["seq", "event_type", "attempt", "previous_status", "status", "orders", "fills", "notional", "error"]
    rows = []
    for e in audit.sort_values("seq").itertuples(index=False):  # a handful of events per run
        p = json.loads(e.payload)
        counts = p.get("counts") or {}
        rows.append({"seq": int(e.seq), "event_type": e.event_type, "attempt": p.get("attempt"),
                     "previous_status": p.get("previous_status"), "status": p.get("status"),
                     "orders": counts.get("orders"), "fills": counts.get("fills"),
                     "notional": counts.get("notional"), "error": p.get("error")})
    return pd.DataFrame(rows, columns=cols)


def audit_line(problems: list[str], result: RunResult) -> str:
    """One line for the review notebook: OK with the counts, or MISMATCH with the differences."""
    if problems:
        return f"MISMATCH: {len(problems)} difference(s) between execution results and audit: " + "; ".join(problems)
    orders = ", ".join(f"{k} {v}" for k, v in result.orders.items()) or "none"
    return (f"OK: execution results match the audit record ({sum(result.orders.values())} orders: {orders}; "
            f"{result.fills} fills; notional {result.notional:.2f}; commission {result.commission:.2f}; "
            f"status {result.status})")


def batch_table(db_path: str | Path | None, batch_id: str | None = None) -> pd.DataFrame:
    """All runs of a batch (or, with ``batch_id=None``, every run and artifact in the database).

    Returns
    -------
    DataFrame
        One row per run, sorted by snapshot file then run id: ``run_id, snapshot, status, papermill_status,
        orders, fills, notional, shortfall_bps, reason, artifact`` — ``status`` is the run's status, or ``failed`` for a
        notebook that failed before its run existed; ``reason`` the error or the blocked orders' reasons;
        ``artifact`` the executed notebook's file name; ``shortfall_bps`` the run's implementation shortfall
        (:func:`tradeloop.workflows.shortfall.shortfall`; NaN for a notebook that failed before its run existed).
    """
    with Store(db_path or default_db_path(), read_only=True) as store:
        art = store.batch_artifacts()
        if batch_id is not None:
            art = art.loc[art["batch_id"] == batch_id]
            if art.empty:
                raise ValidationError(f"batch {batch_id!r} has no artifacts in {str(store.path)!r}")
        runs, fills = store.run_totals()
    runs = runs.merge(fills, on="run_id", how="left")
    how = "left" if batch_id is not None else "outer"
    table = art.merge(runs, on="run_id", how=how)
    failed_nb = table["papermill_status"].eq("failed")
    table["status"] = table["status"].where(table["status"].notna() & ~failed_nb, "failed")

    def blocked(params):
        if not isinstance(params, str):
            return ""
        outcome = json.loads(params).get("risk", {}).get("outcome") or {}
        return "; ".join(f"{b['symbol']} {b['side']} {b['qty']}: {b['reason']}" for b in outcome.get("blocked", []))

    reasons = table["params"].map(blocked)
    error = table["nb_error"].where(failed_nb, table["error"]).fillna("")
    table["reason"] = np.where(table["status"].eq("blocked") & reasons.ne(""), reasons, error)
    table["snapshot"] = table["snapshot_file"].map(lambda p: Path(p).name if isinstance(p, str) else "")
    table["artifact"] = table["notebook_path"].map(lambda p: Path(p).name if isinstance(p, str) else "")
    table["papermill_status"] = table["papermill_status"].fillna("-")
    table["orders"] = table["orders"].fillna(0).astype("int64")
    table["fills"] = table["fills"].fillna(0).astype("int64")
    table["notional"] = table["notional"].fillna(0.0).astype(float)
    bps = run_shortfalls(db_path or default_db_path(), table["run_id"].tolist())
    table["shortfall_bps"] = [bps.get(r, np.nan) for r in table["run_id"]]
    cols = ["run_id", "snapshot", "status", "papermill_status", "orders", "fills", "notional", "shortfall_bps", "reason",
            "artifact"]
    return table.loc[:, cols].sort_values(["snapshot", "run_id"]).reset_index(drop=True)
