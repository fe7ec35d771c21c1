"""The bodies of ``trade_run.ipynb`` and ``review_run.ipynb``: parameters checked, a run made or read, its review.

Notebook parameters arrive from papermill as whatever the caller typed, so every one is checked here with a one-line
:class:`~tradeloop.errors.ValidationError` naming it. ``None`` and ``""`` both mean "not given", and an input that
was not given is never invented: only the demo (``trade_run.ipynb`` with no input file at all) uses the bundled
sample data, and it says so in its verdict.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import pandas as pd

from ..errors import ValidationError
from ..resources import data_dir
from ..settings import Settings
from ..store.db import Store
from . import tables
from .reports import RunReport, load_report, resolve_input, run_from_files
from .verdict import Verdict, run_verdict

__all__ = ["Review", "review", "trade_run", "lifecycle_check", "check_trade_params", "setup", "DEMO_INPUTS", "FILE_PARAMS"]

#: The demo's inputs (bundled sample data), used only when ``trade_run.ipynb`` is given no input file at all.
DEMO_INPUTS = {"snapshot_file": "data/sample_snapshot.csv", "positions_file": "data/positions.csv",
               "fallback_prices_file": "data/fallback_prices.csv", "params_file": "data/params_pass.json",
               "portfolio_value": 1_000_000.0, "model_version": "nb-v1"}
FILE_PARAMS = ("snapshot_file", "positions_file", "fallback_prices_file", "params_file")


def setup() -> None:
    """Display options for review notebooks (every row of a shown table, no cut-off reasons) and inline figures."""
    pd.set_option("display.max_rows", 500, "display.max_columns", 30, "display.width", 200,
                  "display.max_colwidth", None)
    try:
        from IPython import get_ipython
    except ImportError:  # not in a kernel
        return
    shell = get_ipython()
    if shell is not None:  # figures returned by a cell are shown as PNG
        shell.run_line_magic("matplotlib", "inline")


def _given(value):
    return None if value is None or (isinstance(value, str) and not value.strip()) else value


def _path_param(name: str, value) -> Path | None:
    value = _given(value)
    if value is None:
        return None
    if not isinstance(value, (str, Path)):
        raise ValidationError(f"{name} must be a file path or None, got {type(value).__name__} {value!r}")
    path = resolve_input(value)
    if not path.is_file():
        raise ValidationError(f"{name} {str(value)!r} is not a file (looked in {str(Path.cwd())!r} and "
                              f"{str(data_dir())!r})")
    return path


def _db_param(name: str, value) -> Path | None:
    value = _given(value)
    if value is None:
        return None
    if not isinstance(value, (str, Path)):
        raise ValidationError(f"{name} must be a database path or None, got {type(value).__name__} {value!r}")
    return Path(value).expanduser()


def _text_param(name: str, value, *, required: bool = False) -> str | None:
    value = _given(value)
    if value is None:
        if required:
            raise ValidationError(f"{name} is required (not given)")
        return None
    if not isinstance(value, str):
        raise ValidationError(f"{name} must be text, got {type(value).__name__} {value!r}")
    return value.strip()


def _bool_param(name: str, value) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise ValidationError(f"{name} must be true or false, got {value!r}")


def _value_param(value) -> float:
    value = _given(value)
    if value is None:
        raise ValidationError("portfolio_value is required (not given)")
    try:
        number = float(value) if not isinstance(value, bool) else math.nan
    except (TypeError, ValueError):
        number = math.nan
    if not math.isfinite(number) or number <= 0:
        raise ValidationError(f"portfolio_value must be a finite number > 0, got {value!r}")
    return number


def check_trade_params(**params) -> dict:
    """``trade_run.ipynb``'s parameters, checked and normalized; ``demo`` is True when no input file was given.

    Raises
    ------
    ValidationError
        One line naming the parameter: a file that does not exist, a missing snapshot, portfolio value or model
        version (outside the demo), a value of the wrong type.
    """
    unknown = sorted(set(params) - {*FILE_PARAMS, "db_path", "work_db", "portfolio_value", "model_version",
                                    "risk_limits", "provider", "dry_run", "run_id"})
    if unknown:
        raise ValidationError(f"unknown parameter(s) {unknown}")
    demo = all(_given(params.get(k)) is None for k in FILE_PARAMS)
    if demo:
        params = {**params, **{k: v for k, v in DEMO_INPUTS.items() if _given(params.get(k)) is None}}
    elif _given(params.get("snapshot_file")) is None:
        raise ValidationError("snapshot_file is required (not given); give no input file at all for the demo")
    out = {k: _path_param(k, params.get(k)) for k in FILE_PARAMS}
    out.update(db_path=_db_param("db_path", params.get("db_path")),
               work_db=_db_param("work_db", params.get("work_db")),
               portfolio_value=_value_param(params.get("portfolio_value")),
               model_version=_text_param("model_version", params.get("model_version"), required=True),
               provider=_text_param("provider", params.get("provider")) or "mock",
               dry_run=_bool_param("dry_run", params.get("dry_run", False)),
               run_id=_text_param("run_id", params.get("run_id")), demo=demo)
    limits = _given(params.get("risk_limits"))
    if limits is not None and not isinstance(limits, Mapping):
        raise ValidationError(f"risk_limits must be a mapping of risk limits or None, got {type(limits).__name__} "
                              f"{limits!r}")
    out["risk_limits"] = dict(limits) if limits else None
    return out


@dataclass(frozen=True, eq=False)
class Review:
    """A run as a reviewer reads it: the verdict first, then risk, summaries, figures and bounded tables."""

    report: RunReport
    verdict: Verdict

    @property
    def run_id(self) -> str:
        return self.report.run_id

    @cached_property
    def risk_table(self) -> tables.Table:
        return tables.risk_table(self.report)

    @cached_property
    def decisions_table(self) -> tables.Table:
        return tables.decisions_table(self.report)

    @cached_property
    def by_side(self) -> tables.Table:
        return tables.side_summary(self.report)

    @cached_property
    def by_sector(self) -> tables.Table:
        return tables.sector_summary(self.report)

    def largest_orders(self, n: int = 20) -> tables.Table:
        return tables.largest_orders(self.report, n)

    def largest_fills(self, n: int = 20) -> tables.Table:
        return tables.largest_fills(self.report, n)

    def audit_table(self) -> tables.Table:
        a = self.report.audit
        return tables.Table(f"all {len(a)} audit events of {self.run_id}, in chain order", a)

    def __repr__(self) -> str:
        return f"Review({self.run_id!r}, status={self.report.result.status!r}, verified={self.verdict.ok})"

    def _repr_html_(self) -> str:
        return self.verdict._repr_html_()


def review(db_path=None, run_id=None) -> Review:
    """Read a stored run and its verdict (``review_run.ipynb``); ``run_id=None``: the newest run."""
    settings = Settings.from_env()  # the notebook's boundary: every TRADELOOP_* variable, checked
    db = _db_param("db_path", db_path) or settings.db
    if not db.is_file():
        raise ValidationError(f"db_path {str(db)!r} does not exist")
    report = load_report(db, _text_param("run_id", run_id))
    with Store(db, read_only=True, timeout=settings.lock_timeout) as store:
        verdict = run_verdict(store, report.run_id)
    return Review(report, verdict)


def trade_run(**params) -> Review:
    """Check the parameters, make (or re-check) the run and return its review (``trade_run.ipynb``).

    The verdict names ``db_path`` (the target) as the database even when a batch executes in ``work_db``, and
    states the sha256 of every input file given (and, in the demo, that the inputs are the bundled samples).
    """
    p = check_trade_params(**params)
    settings = Settings.from_env()
    target = p["db_path"] or settings.db
    report = run_from_files(target, snapshot_file=p["snapshot_file"], portfolio_value=p["portfolio_value"],
                            model_version=p["model_version"], positions_file=p["positions_file"],
                            fallback_prices_file=p["fallback_prices_file"], params_file=p["params_file"],
                            risk_limits=p["risk_limits"], provider=p["provider"], dry_run=p["dry_run"],
                            run_id=p["run_id"], work_db=p["work_db"])
    files = {k.removesuffix("_file"): p[k] for k in FILE_PARAMS}
    with Store(p["work_db"] or target, read_only=True, timeout=settings.lock_timeout) as store:
        verdict = run_verdict(store, report.run_id, database=target, input_files=files)
    fields = dict(verdict.fields)
    if p["work_db"]:
        fields["verified_in"] = f"{p['work_db']} (this batch worker's copy, merged into {target} afterwards)"
    if p["demo"]:
        fields["demo"] = "true: no input file was given, so the bundled sample inputs were used"
    return Review(report, Verdict(fields, verdict.ok))


def lifecycle_check(db_path, run_id: str) -> tables.Table:
    """One line: how many of the run's orders replay (from their ``order_events``) to their stored status."""
    from ..core.lifecycle import replay_order_events

    settings = Settings.from_env()
    db = _db_param("db_path", db_path) or settings.db
    with Store(db, read_only=True, timeout=settings.lock_timeout) as store:
        orders = store.orders(run_id)
        events = store.order_events(run_id)
    stored = orders.set_index("client_order_id")["status"]
    replayed = replay_order_events(events).set_index("client_order_id")["status"].reindex(stored.index)
    same = int(replayed.fillna("NEW").eq(stored).sum())
    return tables.Table(f"order lifecycles: {len(events)} order events of {len(stored)} orders replay to the stored "
                        f"status for {same} of {len(stored)}", pd.DataFrame())
