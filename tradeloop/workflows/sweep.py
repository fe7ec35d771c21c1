"""Parameter sweeps: one weight history simulated under a grid of params, one stored simulation per combination.

:func:`sweep` (and ``tradeloop sweep``) expands a grid (:func:`expand_grid`) into combinations, simulates each one
as a task (:func:`simulate_combination`: plain data in, Arrow rows out) wherever :mod:`.executors` sends it, and
stores the results from this process alone with :func:`~tradeloop.store.simulations.save_simulation`, in
combination order whatever order the tasks finish in. Each combination is an ordinary simulation with its usual
derived id, so a combination stored already is recognized before its date loop runs and is not computed again.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path

import pandas as pd

from ..core.validate import check_model_version, read_table
from ..display import facts_html, preview_html, short_repr
from ..errors import TradeloopError, ValidationError
from ..settings import default_db_path
from ..store.db import Store
from ..store.simulations import (TOTAL_COLUMNS, save_simulation, simulation_ids, simulation_record,
                                simulation_totals)
from .executors import check_scheduler, open_pool
from .faults import no_faults
from .history import history_digest, prepare_history, run_history
from .params import RunParams, load_params

__all__ = ["sweep", "expand_grid", "simulate_combination", "SweepResult", "Combination", "MAX_COMBINATIONS"]

MAX_COMBINATIONS = 100_000
_PARAM_KEYS = tuple(f.name for f in fields(RunParams))


@dataclass(frozen=True)
class Combination:
    """One point of a grid: its number, the params paths it sets, and the full params object (or why not)."""

    index: int
    settings: dict
    params: dict | None
    error: str | None = None

    @property
    def label(self) -> str:
        return ", ".join(f"{k}={json.dumps(v)}" for k, v in self.settings.items()) or "(base params)"


def _flatten(obj: Mapping, prefix: str = "") -> dict:
    out = {}
    for k, v in obj.items():
        if isinstance(v, Mapping) and v:
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def _check_path(path, where: str) -> str:
    if not isinstance(path, str) or not path or any(not part for part in path.split(".")):
        raise ValidationError(f"{where}: params path {path!r} is not a dotted name such as 'risk.max_position_ratio'")
    if path.split(".")[0] not in _PARAM_KEYS:
        raise ValidationError(f"{where}: params path {path!r} is unknown; its first part must be one of "
                              f"{list(_PARAM_KEYS)}")
    return path


def _apply(base: dict, settings: dict) -> dict:
    out = json.loads(json.dumps(base))
    for path, value in settings.items():
        node = out
        for part in path.split(".")[:-1]:
            if not isinstance(node.get(part), dict):
                node[part] = {}
            node = node[part]
        node[path.split(".")[-1]] = value
    return out


def _read_grid(grid) -> dict | list:
    if isinstance(grid, (str, Path)):
        path = Path(grid)
        if not path.is_file():
            raise ValidationError(f"grid file {str(path)!r} does not exist")
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, ValueError) as e:
            raise ValidationError(f"grid file {str(path)!r} is not valid JSON: {e}") from None
    return grid


def expand_grid(grid, base: RunParams | None = None) -> list[Combination]:
    """The combinations of a grid over ``base`` params (default: all defaults).

    ``grid`` is a mapping of params paths (dotted: ``"risk.max_position_ratio"``) to lists of values (``null``
    allowed), whose cartesian product is taken in key order, or a list of explicit params objects (nested or
    dotted), each applied over ``base``; or the path of a JSON file holding either. A malformed grid is a
    :class:`ValidationError`; a combination whose params are invalid (e.g. a negative cash buffer) is returned with
    its ``error`` and no ``params``.
    """
    grid = _read_grid(grid)
    base_dict = (base or RunParams()).to_dict()
    if isinstance(grid, Mapping):
        if not grid:
            raise ValidationError("grid is empty; give params paths with lists of values")
        for path, values in grid.items():
            _check_path(path, "grid")
            if not isinstance(values, list) or not values:
                raise ValidationError(f"grid: {path!r} must map to a non-empty list of values, got {values!r}")
        size = 1
        for values in grid.values():
            size *= len(values)
        if size > MAX_COMBINATIONS:
            raise ValidationError(f"grid has {size} combinations; at most {MAX_COMBINATIONS} are allowed")
        points = [dict(zip(grid, combo)) for combo in itertools.product(*grid.values())]
    elif isinstance(grid, list):
        if not grid:
            raise ValidationError("grid is an empty list; give params objects")
        points = []
        for i, obj in enumerate(grid, start=1):
            if not isinstance(obj, Mapping):
                raise ValidationError(f"grid item {i} must be a params object, got {obj!r}")
            points.append({_check_path(k, f"grid item {i}"): v for k, v in _flatten(obj).items()})
    else:
        raise ValidationError(f"grid must be an object of params paths to lists, or a list of params objects; got "
                              f"{type(grid).__name__}")
    out = []
    for i, point in enumerate(points):
        try:
            params = RunParams.from_dict(_apply(base_dict, point)).to_dict()
            out.append(Combination(i, point, params))
        except TradeloopError as e:
            out.append(Combination(i, point, None, str(e)))
    return out


def simulate_combination(data: dict, params: dict, model_version: str, stored: frozenset) -> dict:
    """One task of a sweep: simulate the shared inputs under ``params``; plain data in and out.

    Returns ``simulation_id`` and ``record`` (the rows to store,
    :func:`~tradeloop.store.simulations.simulation_record`),
    ``record`` None when the id is in ``stored`` (the date loop is not run); or ``error`` for bad inputs.
    """
    try:
        run_params = RunParams.from_dict(params)
        h = prepare_history(data["weights"], data["prices"], portfolio_value=data["portfolio_value"],
                            params=run_params, positions=data["positions"], cash=data["cash"])
        sid = "sim-" + history_digest(h, run_params, model_version)[:16]
        if sid in stored:
            return {"simulation_id": sid, "record": None}
        sim = run_history(h, run_params, model_version=model_version)
        return {"simulation_id": sid, "record": simulation_record(sim)}
    except TradeloopError as e:
        return {"error": str(e)}


@dataclass(frozen=True)
class SweepResult:
    """One row per combination (:meth:`table`), and where the sweep ran."""

    db: Path
    ran_on: str
    rows: pd.DataFrame
    paths: tuple = field(default_factory=tuple)
    labels: tuple = field(default_factory=tuple)

    @property
    def counts(self) -> dict[str, int]:
        """Combinations by status: ``new`` (stored now), ``stored`` (stored before), ``failed``."""
        return {k: int(v) for k, v in sorted(self.rows["status"].value_counts().items())}

    @property
    def exit_code(self) -> int:
        """0 when every combination is stored; 1 when any failed."""
        return 1 if (self.rows["status"] == "failed").any() else 0

    def table(self) -> pd.DataFrame:
        """``combination``, one column per params path, ``simulation_id`` and ``error`` (object columns, None when
        there is none, as ``null`` in ``--json``), ``status``, the totals of
        :func:`~tradeloop.store.simulations.simulation_totals` (``final_value``, ``return``, ``turnover``,
        ``commission``, ``slippage``, ``costs``, orders by outcome), ``shortfall_bps`` and ``shortfall_<cause>``
        (bps per cause of :func:`tradeloop.shortfall`)."""
        return self.rows.copy()

    def summary(self) -> str:
        counts = " · ".join(f"{k} {v}" for k, v in self.counts.items())
        lines = [f"sweep     {len(self.rows)} combination(s) on {self.ran_on}", f"status    {counts}",
                 f"database  {self.db}"]
        shown = self.rows.loc[:, [*self.paths, "simulation_id", "final_value", "return", "costs", "orders",
                                  "blocked", "shortfall_bps"]]
        with pd.option_context("display.width", 200, "display.max_rows", 200, "display.max_columns", 30):
            lines += ["", shown.to_string(index=False)]
        lines += [f"failed    #{r['combination']} ({self.labels[r['combination']]}): {r['error']}"
                  for r in self.rows.to_dict("records") if r["status"] == "failed"]
        return "\n".join(lines)

    def to_dict(self) -> dict:
        rows = json.loads(self.rows.to_json(orient="records"))
        return {"db": str(self.db), "ran_on": self.ran_on, "counts": self.counts, "exit_code": self.exit_code,
                "paths": list(self.paths), "combinations": rows}

    def __repr__(self) -> str:
        return short_repr("SweepResult", f"{len(self.rows)} combinations", **self.counts)

    def _repr_html_(self) -> str:
        facts = [("combinations", len(self.rows)), ("status", " · ".join(f"{k} {v}" for k, v in self.counts.items())),
                 ("ran on", self.ran_on), ("database", str(self.db))]
        return facts_html("SweepResult", facts, extra=preview_html(self.rows, caption="combinations"),
                          footer=".table() has one row per combination")


def _inputs(table, what: str) -> pd.DataFrame | None:
    if table is None or isinstance(table, pd.DataFrame):
        return table
    return read_table(table, what)


def sweep(weights, prices, *, grid, portfolio_value, model_version: str = "sim", params=None, positions=None,
          cash=None, scheduler: str | None = None, workers: int | None = None, db=None,
          progress: bool = True, faults=no_faults, stack: bool = True) -> SweepResult:
    """Simulate a weight history once per grid combination and store each simulation (see the module docstring).

    Parameters
    ----------
    weights, prices, positions : DataFrame or path
        As for :func:`~tradeloop.workflows.history.simulate` (CSV/Parquet paths are read here, once).
    grid : mapping, list or path
        Params paths to lists of values, or a list of params objects (:func:`expand_grid`).
    portfolio_value, cash, model_version
        As for :func:`~tradeloop.workflows.history.simulate`, shared by every combination.
    params : RunParams, mapping or path, optional
        The base params each combination changes.
    scheduler : str, optional
        None: this machine (``workers`` processes); ``"local"``: a Dask LocalCluster; ``"tcp://host:port"``: an
        existing Dask cluster (see :mod:`tradeloop.workflows.executors`).
    workers : int, optional
        Processes (or LocalCluster workers); None: 1 (no scheduler) or 2 (``"local"``).
    db : path, optional
        Default ``$TRADELOOP_DB``, else ``./tradeloop.duckdb``.
    progress : bool
        A progress bar on stderr.
    faults : callable, optional
        Test-only hook called with ``"mid_combination"`` inside each combination's transaction and
        ``"after_combination"`` once it is committed (:mod:`tradeloop.workflows.faults`); an interrupt (Ctrl-C)
        leaves every committed combination whole, and re-running computes only the others.
    stack : bool
        Without a scheduler and with one worker, run combinations that differ only in limits, buffers or costs as
        one stacked pass of the date loop (:mod:`~tradeloop.workflows.sweep_kernel`; the stored rows are the same).
        False: one combination after the other (to compare the two).

    Returns
    -------
    SweepResult
        ``table()``: one row per combination; ``exit_code`` 1 when any combination failed (the others are stored).
    """
    check_model_version(model_version)
    check_scheduler(scheduler, workers, available=True)
    base = (params if isinstance(params, RunParams) else RunParams.from_dict(params)
            if isinstance(params, Mapping) or params is None else load_params(params))
    combos = expand_grid(grid, base)
    data = {"weights": _inputs(weights, "weights"), "prices": _inputs(prices, "prices"),
            "positions": _inputs(positions, "positions"), "portfolio_value": portfolio_value, "cash": cash}
    db = Path(db) if db else default_db_path()
    target = Store(db)
    with target.session():
        stored = frozenset(simulation_ids(target.con))
    outcome: dict[int, dict] = {c.index: {"status": "failed", "error": f"invalid params: {c.error}"}
                                for c in combos if c.params is None}
    runnable = [c for c in combos if c.params is not None]
    alone = stack and scheduler is None and (workers or 1) == 1
    stacked = _stacked(runnable, data, model_version, stored) if alone else None
    if stacked is not None:  # one pass of the date loop for every combination (workflows/sweep_kernel.py)
        for c, result in zip(runnable, stacked):
            outcome[c.index] = _store(target, result, faults)
        ran_on = f"this process, one stacked pass of {len(runnable)} combination(s)"
    else:
        with open_pool(scheduler, workers) as pool:
            _run(pool, target, runnable, data, model_version, stored, outcome, progress, faults)
            ran_on = pool.describe
    rows = _rows(target, combos, outcome)
    paths = tuple(dict.fromkeys(k for c in combos for k in c.settings))
    return SweepResult(db=db, ran_on=ran_on, rows=rows, paths=paths, labels=tuple(c.label for c in combos))


def _stacked(runnable: list[Combination], data: dict, model_version: str, stored: frozenset) -> list[dict] | None:
    """The results :func:`simulate_combination` would give for every combination, from one stacked pass
    (:func:`~tradeloop.workflows.sweep_kernel.simulate_stacked`) when the combinations differ only in limits,
    buffers or costs; None otherwise, or when the pass raised (each combination then runs, and fails, alone)."""
    from .sweep_kernel import simulate_stacked, stackable

    if len(runnable) < 2:
        return None
    try:
        params = [RunParams.from_dict(c.params) for c in runnable]
        if not stackable(params):
            return None
        h = prepare_history(data["weights"], data["prices"], portfolio_value=data["portfolio_value"],
                            params=params[0], positions=data["positions"], cash=data["cash"])
        ids = ["sim-" + history_digest(h, p, model_version)[:16] for p in params]
        todo = [i for i, sid in enumerate(ids) if sid not in stored]
        sims = simulate_stacked(data["weights"], data["prices"], [params[i] for i in todo],
                                portfolio_value=data["portfolio_value"], positions=data["positions"],
                                cash=data["cash"], model_version=model_version) if todo else []
    except TradeloopError:
        return None
    records = dict(zip(todo, (simulation_record(sim) for sim in sims)))
    return [{"simulation_id": sid, "record": records.get(i)} for i, sid in enumerate(ids)]


def _run(pool, target: Store, runnable: list[Combination], data: dict, model_version: str, stored: frozenset,
         outcome: dict, progress: bool, faults=no_faults) -> None:
    """Submit every combination, then store results in combination order as they come in."""
    from tqdm import tqdm

    shared = pool.share(data)
    futures = [pool.submit(simulate_combination, shared, c.params, model_version, stored) for c in runnable]
    done: dict[int, dict] = {}
    following = 0
    bar = tqdm(total=len(runnable), desc="sweep", unit="combination", disable=not progress)
    try:
        for i, future in pool.results(futures):
            try:
                done[i] = future.result()
            except Exception as e:  # a task that raised (or a worker lost too often): this combination only
                done[i] = {"error": f"{type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ''}"}
            while following in done:
                outcome[runnable[following].index] = _store(target, done.pop(following), faults)
                following += 1
            bar.update(1)
    finally:
        bar.close()


def _store(target: Store, result: dict, faults=no_faults) -> dict:
    """Store one task's result (one transaction); its row's status, simulation id or error."""
    if "error" in result:
        return {"status": "failed", "error": result["error"]}
    if result["record"] is None:
        return {"status": "stored", "simulation_id": result["simulation_id"]}
    with target.transaction():  # save_simulation's own transaction joins this one
        saved = save_simulation(target, result["record"])
        faults("mid_combination")
    faults("after_combination")
    return {"status": "new" if saved["new"] else "stored", "simulation_id": result["simulation_id"]}


def _rows(target: Store, combos: list[Combination], outcome: dict) -> pd.DataFrame:
    from .shortfall import shortfall

    ids = [o["simulation_id"] for o in outcome.values() if "simulation_id" in o]
    with target.session():
        totals = simulation_totals(target.con, ids).set_index("simulation_id")
        gaps = {sid: shortfall(sid, target) for sid in ids}
    causes = [f"shortfall_{c}" for c in next(iter(gaps.values())).by_cause.index] if gaps else []
    rows = []
    for c in combos:
        o = outcome.get(c.index, {"status": "failed", "error": "not run (the sweep was interrupted)"})
        sid = o.get("simulation_id")
        t = totals.loc[sid].to_dict() if sid in totals.index else {}
        gap = gaps.get(sid)
        by_cause = dict(zip(causes, gap.by_cause["bps"])) if gap is not None else {}
        rows.append({"combination": c.index, **c.settings, "simulation_id": sid, "status": o["status"],
                     "error": o.get("error"), **{k: t.get(k) for k in TOTAL_COLUMNS if k != "simulation_id"},
                     "shortfall_bps": None if gap is None else gap.total, **{k: by_cause.get(k) for k in causes}})
    out = pd.DataFrame(rows)
    for path in dict.fromkeys(k for c in combos for k in c.settings):  # null stays None, not NaN
        out[path] = pd.Series([c.settings.get(path) for c in combos], dtype=object)
    for col in ("simulation_id", "error"):  # None where there is none, as --json's null (a str column has NaN)
        out[col] = pd.Series([r[col] for r in rows], dtype=object)
    for col in ("orders", "filled", "blocked", "missing_price", "canceled"):
        out[col] = out[col].astype("Int64")
    return out
