"""Papermill batches: run ``notebooks/trade_run.ipynb`` once per snapshot and keep every executed notebook.

:func:`run_batch` (and ``tradeloop batch``) plans one task per snapshot file, executes the run notebook for each
with papermill on a named Jupyter kernel (``workers`` at a time), saves the executed notebook as
``<out>/<run_id>.ipynb`` and records it in ``run_artifacts``.

Parallel notebooks never write the same DuckDB file: each task executes in a scratch database seeded with what the
target already holds for its run, and the batch's own process folds each scratch database back into the target in
one transaction as soon as its notebook finishes (:mod:`tradeloop.store.merge`). Run ids are derived from the inputs, so
re-running a batch re-checks the same runs: no duplicate runs, orders, fills or artifact rows.

:func:`verify_artifact` (and ``tradeloop verify-artifact``) checks a saved artifact against the database and, with
``rerun``, executes it again; it lives here, beside papermill, so :mod:`tradeloop.store.artifacts` only records,
reads and hashes.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import shutil
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from ..core.digest import verify_chain
from ..core.snapshot import load_snapshot_file
from ..core.validate import check_model_version, check_number, read_table
from ..errors import RunNotFound, TradeloopError, ValidationError
from ..display import facts_html, preview_html, short_repr
from ..reporting.reports import SUMMARY_TITLE, parse_summary, resolve_input, summary_text
from ..resources import notebook_file
from ..store.artifacts import (
    SUMMARY_TAG,
    ArtifactRecord,
    checked_outputs,
    notebook_problems,
    read_artifact,
    artifact_event,
    artifact_row,
    binding_problems,
    record_artifact,
    run_row_counts,
    sha256_file,
    summary_output,
    write_artifact,
)
from ..settings import default_db_path
from ..store.db import Store
from .shortfall import run_shortfalls
from ..store.merge import merge_database, seed_database
from .executors import Pool, check_scheduler, open_pool
from .faults import no_faults
from .kernels import DEFAULT_KERNEL, kernel_manager_class, resolve_kernel
from ..venue.providers import get_provider
from .params import load_params
from .run import create_run, run_result

__all__ = [
    "run_batch", "run_notebook", "execute_notebook", "find_snapshots", "check_kernel", "BatchResult",
    "verify_artifact", "notebook_summary", "DEFAULT_KERNEL", "TRADE_NOTEBOOK", "SNAPSHOT_SUFFIXES",
]

TRADE_NOTEBOOK = notebook_file("trade_run.ipynb")
SNAPSHOT_SUFFIXES = (".csv", ".parquet", ".pq")
_EXIT = {"done": 0, "failed": 1, "blocked": 3}


def check_kernel(name: str) -> None:
    """Raise a one-line :class:`TradeloopError` with the install command when kernel ``name`` is not installed."""
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    try:
        KernelSpecManager().get_kernel_spec(name)
    except NoSuchKernel:
        raise TradeloopError(
            f"Jupyter kernel {name!r} is not installed; install it with: "
            f"python -m ipykernel install --sys-prefix --name {name} (or --user; see README)"
        ) from None


def find_snapshots(spec: str | Path) -> list[Path]:
    """Snapshot files named by a directory (its ``*.csv``/``*.parquet`` files), a glob pattern or one file, sorted."""
    p = Path(spec)
    if p.is_dir():
        found = sorted(f for f in p.iterdir() if f.is_file() and f.suffix.lower() in SNAPSHOT_SUFFIXES)
    elif p.is_file():
        found = [p]
    else:
        found = sorted(Path(f) for f in glob.glob(str(spec), recursive=True) if Path(f).is_file())
    if not found:
        raise ValidationError(f"snapshots {str(spec)!r} matches no file (give a directory, a glob or a file)")
    return found


def execute_notebook(notebook: str | Path, output: str | Path, parameters: dict, *, kernel: str | None = None,
                     timeout: float | None = None, cwd: str | Path | None = None) -> tuple[str, str | None]:
    """Execute a notebook with papermill; returns ``(papermill_status, error)``, never raises for a failing cell.

    The executed notebook is written to ``output`` even when a cell raises (papermill saves it with the error).
    """
    import papermill as pm

    try:
        pm.execute_notebook(str(notebook), str(output), parameters=parameters, kernel_name=kernel,
                            progress_bar=False, log_output=False, execution_timeout=timeout,
                            kernel_manager_class=kernel_manager_class(),
                            # the kernel's working directory, set without papermill's process-wide chdir (tasks
                            # run in threads)
                            **({} if cwd is None else {"resources": {"metadata": {"path": str(cwd)}}}))
    except pm.PapermillExecutionError as e:
        return "failed", f"{e.ename}: {e.evalue}"
    except Exception as e:  # kernel died, timeout, unreadable notebook: still one recorded error
        return "failed", f"{type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ''}"
    return "completed", None


@dataclass(frozen=True)
class BatchResult:
    """What a batch did: one :class:`ArtifactRecord` per distinct run, in snapshot order."""

    batch_id: str
    db: Path
    out: Path
    workers: int
    records: tuple[ArtifactRecord, ...]
    duplicates: tuple[tuple[str, str], ...] = field(default_factory=tuple)
    kernel: str = ""
    #: run id -> implementation shortfall in bps (:func:`tradeloop.workflows.shortfall.shortfall`), for the runs
    #: the database has
    shortfall_bps: dict = field(default_factory=dict)
    ran_on: str = ""

    @property
    def counts(self) -> dict[str, int]:
        """Runs by status (``done``, ``blocked``, ``failed``)."""
        return dict(sorted(Counter(r.status for r in self.records).items()))

    @property
    def exit_code(self) -> int:
        """0 if every run is done; 1 if any failed (run or notebook); else 3 if any was blocked by risk."""
        codes = {_EXIT.get(r.status, 1) for r in self.records}
        return 1 if 1 in codes else 3 if 3 in codes else 0

    def table(self) -> pd.DataFrame:
        """``run_id, snapshot_file, status, papermill_status, notebook_path, sha256, error`` per run."""
        cols = ["run_id", "snapshot_file", "status", "papermill_status", "notebook_path", "sha256", "error"]
        return pd.DataFrame([{c: getattr(r, c) for c in cols} for r in self.records], columns=cols)

    def summary(self) -> str:
        counts = " · ".join(f"{k} {v}" for k, v in self.counts.items()) or "none"
        lines = [f"batch     {self.batch_id}: {len(self.records)} run(s), {self.workers} worker(s)"
                 + (f" on {self.ran_on}" if self.ran_on else ""),
                 f"status    {counts}",
                 f"kernel    {self.kernel}",
                 f"artifacts {self.out} ({sum(Path(r.notebook_path).is_file() for r in self.records)} notebooks)",
                 f"database  {self.db}"]
        for r in self.records:
            if r.status != "done":
                lines.append(f"{r.status:<9} {Path(r.snapshot_file).name} ({r.run_id}): {r.error or '-'}")
        for dup, first in self.duplicates:
            lines.append(f"skipped   {Path(dup).name}: same run as {Path(first).name}")
        for r in self.records:
            if r.run_id in self.shortfall_bps:
                lines.append(f"shortfall {self.shortfall_bps[r.run_id]:,.2f} bps  {Path(r.snapshot_file).name} "
                             f"({r.run_id})")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return short_repr("BatchResult", self.batch_id, runs=len(self.records), **self.counts)

    def _repr_html_(self) -> str:
        facts = [("batch_id", self.batch_id), ("runs", len(self.records)),
                 ("status", " · ".join(f"{k} {v}" for k, v in self.counts.items()) or "none"),
                 ("exit code", self.exit_code), ("workers", self.workers), ("artifacts", str(self.out)),
                 ("database", str(self.db)), ("skipped duplicates", len(self.duplicates))]
        table = self.table()
        not_done = table.loc[table["status"] != "done", ["run_id", "snapshot_file", "status", "error"]]
        return facts_html(f"BatchResult {self.batch_id}", facts,
                          extra=preview_html(not_done, caption="runs not done") if len(not_done) else "",
                          footer=".table() lists every run; .records holds each ArtifactRecord")

    def to_dict(self) -> dict:
        return {"batch_id": self.batch_id, "db": str(self.db), "out": str(self.out), "workers": self.workers,
                "counts": self.counts, "exit_code": self.exit_code, "runs": [r.to_dict() for r in self.records],
                "duplicates": [list(d) for d in self.duplicates], "kernel": self.kernel,
                "shortfall_bps": dict(self.shortfall_bps), "ran_on": self.ran_on}


@dataclass
class _Task:
    snapshot_file: Path
    run_id: str
    snapshot_id: str | None
    parameters: dict
    output: Path
    work_db: Path | None = None
    draft: Path | None = None
    papermill_status: str = "pending"
    error: str | None = None
    seen: tuple | None = None


def _plan(snapshot_file: Path, parameters: dict, out: Path) -> _Task:
    """Validate one snapshot as the notebook will and derive its run id (in memory: nothing is written)."""
    p = parameters
    refused = _unusable_name(snapshot_file)
    if refused is not None:
        return refused
    try:
        params = load_params(p.get("params_file"))
        snapshot = load_snapshot_file(snapshot_file, portfolio_value=p["portfolio_value"],
                                      model_version=p["model_version"], default_lot_size=params.lot_size)
        positions = read_table(p["positions_file"], "positions") if p.get("positions_file") else None
        fallback = read_table(p["fallback_prices_file"], "fallback prices") if p.get("fallback_prices_file") else None
        with Store(":memory:") as scratch:
            run = create_run(scratch, snapshot, params=params, positions=positions, fallback_prices=fallback,
                             provider=p["provider"], dry_run=p["dry_run"])
        run_id, snapshot_id = run.run_id, run.snapshot_id
    except TradeloopError:
        # No run can exist (the notebook will raise the same error, which is what gets recorded): name the
        # artifact after the inputs, so re-running the batch replaces it.
        run_id, snapshot_id = _invalid_id(snapshot_file, p), None
    return _Task(snapshot_file, run_id, snapshot_id, {**p, "snapshot_file": str(snapshot_file)},
                 out / f"{run_id}.ipynb")


def _invalid_id(snapshot_file: Path, parameters: dict) -> str:
    h = hashlib.sha256(snapshot_file.read_bytes() if snapshot_file.is_file() else os.fsencode(snapshot_file))
    h.update(json.dumps(parameters, sort_keys=True).encode())
    return f"invalid-{h.hexdigest()[:16]}"


def _unusable_name(snapshot_file: Path) -> _Task | None:
    """A task refused up front when the file's name is not valid UTF-8 (it could not be passed to the notebook or
    stored); the other snapshots of the batch still run. None when the name is fine."""
    try:
        str(snapshot_file).encode("utf-8")
        return None
    except UnicodeEncodeError:
        pass
    shown = os.fsencode(snapshot_file).decode("utf-8", "backslashreplace")
    h = hashlib.sha256(os.fsencode(snapshot_file)).hexdigest()[:16]
    return _Task(Path(shown), f"invalid-{h}", None, {}, Path(), papermill_status="not run",
                 error=f"snapshot file name '{shown}' is not valid UTF-8; rename the file (it was not run)")


def _abs(path) -> str | None:
    resolved = resolve_input(path)
    return None if resolved is None else str(resolved.resolve())


def run_batch(
    snapshots,
    *,
    portfolio_value: float,
    model_version: str,
    params_file: str | Path | None = None,
    positions_file: str | Path | None = None,
    fallback_prices_file: str | Path | None = None,
    provider: str = "mock",
    dry_run: bool = False,
    notebook: str | Path | None = None,
    out: str | Path = "artifacts",
    workers: int | None = None,
    db: str | Path | None = None,
    kernel: str | None = None,
    progress: bool = True,
    timeout: float | None = None,
    scheduler: str | None = None,
    faults=no_faults,
) -> BatchResult:
    """Execute the run notebook once per snapshot, save each executed notebook and record it.

    Parameters
    ----------
    snapshots : str, Path or list
        A directory, a glob pattern, one file, or a list of files.
    portfolio_value, model_version, params_file, positions_file, fallback_prices_file, provider, dry_run
        The run inputs shared by every snapshot (see ``tradeloop run``).
    notebook : path, optional
        The notebook to execute (default ``notebooks/trade_run.ipynb``); it must accept the same parameters.
    out : path
        Directory for the executed notebooks, ``<out>/<run_id>.ipynb``.
    workers : int, optional
        Notebooks executed at the same time on this machine (each in its own kernel and scratch database), default
        1; with ``scheduler="local"`` the LocalCluster's workers (default 2); None with a cluster address.
    db : path, optional
        The target database (default ``$TRADELOOP_DB``, else ``./tradeloop.duckdb``). The batch opens it only to
        seed the scratch databases and to merge each finished notebook, so other processes get in between.
    kernel : str, optional
        Jupyter kernel name; None: ``tradeloop``, installed for this Python on first use (the summary says which
        kernel ran).
    progress : bool
        Show a progress bar on stderr.
    timeout : float, optional
        Seconds a single cell may run.
    scheduler : str, optional
        None: this machine; ``"local"``: a Dask LocalCluster; ``"tcp://host:port"``: an existing Dask cluster (see
        :mod:`tradeloop.workflows.executors`). Tasks carry the notebook and their scratch database and bring both
        back; this process alone writes ``db`` and ``out``, merging in run-id order.
    faults : callable, optional
        Test-only hook called with ``"mid_artifact"`` inside each run's merge transaction and ``"after_artifact"``
        once the run is merged and its artifact recorded (:mod:`tradeloop.workflows.faults`); an interrupt (Ctrl-C) leaves every recorded run whole, and re-running
        executes only the others.

    Returns
    -------
    BatchResult
        ``exit_code`` is non-zero when any run failed or was blocked.
    """
    scheduler = check_scheduler(scheduler, workers, available=True)
    notebook = Path(notebook) if notebook else TRADE_NOTEBOOK
    files = ([Path(f) for f in snapshots] if isinstance(snapshots, (list, tuple)) else find_snapshots(snapshots))
    db = Path(db) if db else default_db_path()
    out = Path(out)
    common = {
        "db_path": str(db.resolve()), "portfolio_value": check_number("portfolio_value", portfolio_value,
                                                                      inclusive=False),
        "model_version": check_model_version(model_version), "params_file": _abs(params_file),
        "positions_file": _abs(positions_file), "fallback_prices_file": _abs(fallback_prices_file),
        "provider": provider, "dry_run": bool(dry_run),
    }
    check_shared_inputs(common, notebook)
    kernel, kernel_note = resolve_kernel(kernel)
    tasks, duplicates = _plan_all(files, common, out.resolve())
    out.mkdir(parents=True, exist_ok=True)
    batch_id = "batch-" + hashlib.sha256(
        "\n".join([notebook.name, *sorted(t.run_id for t in tasks)]).encode()).hexdigest()[:12]
    records, pool = _execute_all(tasks, db, notebook, batch_id, scheduler=scheduler, workers=workers, kernel=kernel,
                                 timeout=timeout, progress=progress, faults=faults)
    return BatchResult(batch_id=batch_id, db=db, out=out, workers=pool.workers,
                       records=tuple(records[t.run_id] for t in tasks), duplicates=tuple(duplicates),
                       kernel=f"{kernel} ({kernel_note})", shortfall_bps=run_shortfalls(db, list(records)),
                       ran_on=pool.describe)


def check_shared_inputs(common: dict, notebook: Path) -> None:
    """Refuse, before any kernel starts or anything is written, the inputs every snapshot of a batch shares: the
    params file, positions, fallback prices, provider and the notebook (one :class:`ValidationError` each)."""
    load_params(common["params_file"])
    for key, what in (("positions_file", "positions"), ("fallback_prices_file", "fallback prices")):
        if common[key]:
            read_table(common[key], what)
    get_provider(common["provider"])
    check_notebook(notebook)


def check_notebook(path: Path) -> None:
    """A readable nbformat-4 notebook with a cell tagged ``parameters`` (where papermill puts the run inputs)."""
    import nbformat

    if not path.is_file():
        raise ValidationError(f"notebook {str(path)!r} does not exist")
    try:
        nb = nbformat.read(path, as_version=4)
        nbformat.validate(nb)
    except Exception as e:  # nbformat raises several unrelated types for files that are not notebooks
        first = str(e).strip().splitlines()[0] if str(e).strip() else ""
        raise ValidationError(f"notebook {str(path)!r} is not a Jupyter notebook: {type(e).__name__}: {first}") \
            from None
    if not any("parameters" in c.get("metadata", {}).get("tags", []) for c in nb.cells):
        raise ValidationError(f"notebook {str(path)!r} has no cell tagged 'parameters'; the batch's inputs "
                              "(db_path, snapshot_file, ...) are injected after it")


def _plan_all(files, common: dict, out: Path) -> tuple[list[_Task], list[tuple[str, str]]]:
    """One task per distinct run, in snapshot order, and the ``(file, first file)`` pairs that repeat a run."""
    tasks: list[_Task] = []
    duplicates: list[tuple[str, str]] = []
    seen: dict[str, _Task] = {}
    for f in files:
        task = _plan(Path(f).resolve(), common, out)
        if task.run_id in seen:
            duplicates.append((str(f), str(seen[task.run_id].snapshot_file)))
            continue
        seen[task.run_id] = task
        tasks.append(task)
    return tasks, duplicates


def _execute_all(tasks: list[_Task], db: Path, notebook: Path, batch_id: str, *, scheduler: str | None,
                 workers: int | None, kernel: str, timeout, progress: bool,
                 faults=no_faults) -> tuple[dict[str, ArtifactRecord], Pool]:
    """Seed a scratch database per task, execute the notebooks where ``scheduler`` says (:func:`execute_task`), and
    fold each result back into ``db`` in run-id order as results come in.

    The target file is opened only to seed the scratch databases and then once per finished notebook (merge and
    artifact row in one transaction), so other readers and writers get in between. Every task executes the same
    bytes of ``notebook``, copied once; their sha256 is recorded with each artifact.
    """
    from tqdm import tqdm  # plain text bar: also readable inside a notebook's saved output

    records: dict[str, ArtifactRecord] = {}
    target = Store(db)
    with tempfile.TemporaryDirectory(prefix="tradeloop-batch-") as tmp:
        source = _Source(notebook, Path(tmp) / f"source{notebook.suffix}")
        runnable = sorted((t for t in tasks if t.papermill_status == "pending"), key=lambda t: t.run_id)
        with target.session():
            for i, task in enumerate(runnable):
                task.work_db, task.draft = Path(tmp) / f"worker-{i:05d}.duckdb", Path(tmp) / f"draft-{i:05d}.ipynb"
                seed_database(target, task.work_db, run_id=task.run_id, snapshot_id=task.snapshot_id)
                task.seen = _run_stamp(target, task.run_id)
        for task in tasks:
            if task.papermill_status != "pending":
                records[task.run_id] = _finish(target, task, source, batch_id, faults)
                faults("after_artifact")
        bar = tqdm(total=len(runnable), desc=f"batch {batch_id}", unit="run", disable=not progress)
        with open_pool(scheduler, workers, threads=True) as pool:
            code = pool.share(source.copy.read_bytes())
            futures = [pool.submit(execute_task, code, t.work_db.read_bytes(), t.parameters, kernel, timeout)
                       for t in runnable]
            done, following = {}, 0
            for i, future in pool.results(futures):
                done[i] = future
                while following in done:  # merged in run-id order, whatever order the notebooks finish in
                    task = runnable[following]
                    _receive(task, done.pop(following), source)
                    records[task.run_id] = _finish(target, task, source, batch_id, faults)
                    task.work_db.unlink(missing_ok=True)
                    faults("after_artifact")
                    bar.set_postfix_str(f"{records[task.run_id].status}: {task.snapshot_file.name}", refresh=False)
                    following += 1
                bar.update(1)
        bar.close()
    return records, pool


class _Source:
    """The notebook a batch executes: its path as given, and a private copy of its bytes with their sha256."""

    def __init__(self, notebook: Path, copy: Path):
        data = notebook.read_bytes()
        copy.write_bytes(data)
        self.path, self.copy, self.sha256 = notebook.resolve(), copy, hashlib.sha256(data).hexdigest()


#: The scratch database's name inside a task's directory (relative: the executed notebook names no temporary path).
WORK_DB = "scratch.duckdb"


def execute_task(notebook: bytes, seed: bytes, parameters: dict, kernel: str, timeout) -> dict:
    """One notebook of a batch, wherever it runs (a thread here, a Dask worker): plain data in and out.

    Writes ``notebook`` and the seed database into a private directory, executes the notebook there with
    papermill (``work_db`` = the seed), and returns ``papermill_status``, ``error``, ``notebook`` (the executed
    notebook's bytes, None if none was written) and ``database`` (the scratch database's bytes, checkpointed).
    """
    import duckdb

    with tempfile.TemporaryDirectory(prefix="tradeloop-task-") as tmp:
        tmp = Path(tmp)
        (tmp / "source.ipynb").write_bytes(notebook)
        (tmp / WORK_DB).write_bytes(seed)
        executed = tmp / "executed.ipynb"
        status, error = execute_notebook(tmp / "source.ipynb", executed, {**parameters, "work_db": WORK_DB},
                                         kernel=kernel, timeout=timeout, cwd=tmp)
        con = duckdb.connect(str(tmp / WORK_DB))
        try:
            con.execute("CHECKPOINT")  # everything in the file itself, no WAL left beside it
        finally:
            con.close()
        return {"papermill_status": status, "error": error,
                "notebook": executed.read_bytes() if executed.is_file() else None,
                "database": (tmp / WORK_DB).read_bytes()}


def _receive(task: _Task, future, source: _Source) -> None:
    """Unpack a task's result on the driver: the scratch database and the executed notebook into the batch's
    directory (the notebook's papermill paths set to the source notebook and the artifact), or its error."""
    try:
        out = future.result()
    except Exception as e:  # the task itself raised, or Dask gave up on it: nothing to merge
        task.papermill_status, task.error = "failed", f"{type(e).__name__}: {_first_line(e)}"
        task.work_db.unlink(missing_ok=True)
        return
    task.papermill_status, task.error = out["papermill_status"], out["error"]
    task.work_db.write_bytes(out["database"])
    if out["notebook"] is not None:
        task.draft.write_bytes(_with_paths(out["notebook"], source.path, task.output, task.run_id))
    if task.papermill_status == "completed":
        reported = notebook_summary(read_artifact(task.draft)).get("run_id")
        if reported != task.run_id:
            task.papermill_status = "failed"
            task.error = f"the notebook reported run {reported!r}, expected {task.run_id!r} (no summary cell?)"


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else ""


def _with_paths(data: bytes, source: Path, output: Path, run_id: str) -> bytes:
    """The executed notebook with papermill's ``input_path`` / ``output_path`` naming the source notebook and the
    artifact instead of the task's temporary files, and the cells papermill adds (injected parameters, error
    markers) named after the run instead of a random id: the same artifact wherever and whenever the task ran (but
    for execution times)."""
    import nbformat

    nb = nbformat.reads(data.decode("utf-8"), as_version=4)
    meta = nb.metadata.get("papermill")
    if meta is None:
        return data
    meta["input_path"], meta["output_path"] = str(source), str(output)
    stem = hashlib.sha256(run_id.encode()).hexdigest()[:12]
    for i, cell in enumerate(nb.cells):
        tags = cell.get("metadata", {}).get("tags", [])
        added = [t for t in ("injected-parameters", "papermill-error-cell-tag") if t in tags]
        if added and "id" in cell:
            cell["id"] = f"{added[0]}-{stem}-{i}"
    return nbformat.writes(nb).encode("utf-8")


def _publish(task: _Task) -> str:
    """Write the task's executed notebook to ``<out>/<run_id>.ipynb`` atomically; its sha256 ('' when none)."""
    if task.draft is None or not task.draft.is_file():
        return ""
    try:
        return write_artifact(task.draft.read_bytes(), task.output)
    except OSError as e:
        task.papermill_status = "failed"
        task.error = f"cannot write artifact {str(task.output)!r}: {e.strerror or e}"
        return ""


def _run_stamp(store: Store, run_id: str) -> tuple | None:
    """What changes whenever a process works a run: its status, attempts and last update (None: no such run)."""
    try:
        run = store.get_run(run_id)
    except RunNotFound:
        return None
    return run["status"], run["attempts"], run["updated_at"]


def _finish(target: Store, task: _Task, source: _Source, batch_id: str, faults=no_faults) -> ArtifactRecord:
    """Main thread: publish the notebook, then merge the task's database and record its artifact (row and audit
    event) in one transaction, holding the target file only for that.

    The target is not held while notebooks run, so another process may have worked the same run meanwhile; then
    the task's result is not merged (two executions of one run would interleave their events) and its row says so.
    """
    with target.session():
        return _finish_held(target, task, source, batch_id, faults)


def _finish_held(target: Store, task: _Task, source: _Source, batch_id: str, faults=no_faults) -> ArtifactRecord:
    merge = task.work_db is not None and task.work_db.is_file()
    if merge and _run_stamp(target, task.run_id) != task.seen:  # nothing recorded: the run's own row stays
        return ArtifactRecord(
            run_id=task.run_id, snapshot_file=str(task.snapshot_file), notebook_path="", sha256="",
            papermill_status="not merged", status="failed", parameters=task.parameters, batch_id=batch_id,
            error=f"run {task.run_id} was worked by another process while its notebook ran; nothing was merged "
                  "or recorded (re-run the batch to check it)")
    previous = task.output.read_bytes() if task.output.is_file() else None
    sha = _publish(task)
    record = {}

    def record_row(store: Store) -> None:
        try:
            run = store.get_run(task.run_id)
        except RunNotFound:
            run = None
        failed_nb = task.papermill_status != "completed"
        status = "failed" if failed_nb or run is None else run["status"]
        error = task.error if failed_nb else (run["error"] if run else None)
        rec = ArtifactRecord(
            run_id=task.run_id, snapshot_file=str(task.snapshot_file), notebook_path=str(task.output) if sha else "",
            sha256=sha, papermill_status=task.papermill_status, status=status, error=error,
            parameters=task.parameters, batch_id=batch_id, source_notebook=str(source.path),
            source_sha256=source.sha256)
        record_artifact(store, rec)
        record["rec"] = rec
        faults("mid_artifact")

    try:
        if merge:
            merge_database(target, task.work_db, after=record_row)
        else:
            with target.transaction():
                record_row(target)
    except BaseException:  # rolled back (an error, Ctrl-C): the artifact goes back to what its row says
        if sha:
            _unpublish(task.output, previous)
        raise
    return record["rec"]


def _unpublish(output: Path, previous: bytes | None) -> None:
    """Put ``output`` back as it was before :func:`_publish` wrote it (no file, or the bytes recorded before)."""
    if previous is None:
        output.unlink(missing_ok=True)
    else:
        write_artifact(previous, output)


def run_notebook(snapshot_file: str | Path, *, portfolio_value: float, model_version: str, **kwargs) -> ArtifactRecord:
    """Execute the run notebook for one snapshot and record its artifact: a batch of one (see :func:`run_batch`).

    Examples
    --------
    >>> rec = run_notebook("data/sample_snapshot.csv", portfolio_value=1e6, model_version="m1",
    ...                    params_file="data/params_pass.json", db="research.duckdb")  # doctest: +SKIP
    >>> rec.status, rec.notebook_path  # doctest: +SKIP
    ('done', 'artifacts/run-….ipynb')
    """
    kwargs.setdefault("progress", False)
    result = run_batch([resolve_input(snapshot_file) or Path(snapshot_file)], portfolio_value=portfolio_value,
                       model_version=model_version, **{**kwargs, "workers": 1})
    return result.records[0]


def notebook_summary(nb) -> dict[str, str]:
    """The ``key: value`` pairs printed by the notebook's summary cell; empty when there is none."""
    text = summary_output(nb, SUMMARY_TITLE)
    return {} if text is None else parse_summary(text)


def verify_artifact(path: str | Path, *, db: str | Path | None = None, rerun: bool = False,
                    kernel: str | None = None) -> list[str]:
    """Check a saved artifact against its run, trusting nothing the artifact says about itself.

    A reviewer can trust an artifact when this finds nothing: the file is valid nbformat, every cell completed
    without an error output, it is named after the run its summary reports, it is byte-for-byte the file recorded
    in ``run_artifacts`` under that name, the row agrees with the artifact event in the audit hash chain (file name,
    sha256, parameters, source notebook), the chain is intact, and the summary cell states what the database holds.

    Parameters
    ----------
    path : path
        The executed notebook, e.g. ``artifacts/run-0123456789abcdef.ipynb``.
    db : path, optional
        The database; default ``$TRADELOOP_DB``, else ``./tradeloop.duckdb`` (never the path written inside the
        artifact, which anyone who edits the file controls).
    rerun : bool
        Also re-execute the run: the RECORDED source notebook (refused unless its sha256 is the one bound in the
        chain) with the RECORDED parameters (the ``run_artifacts`` row, not the artifact's metadata), against a
        copy of ``db`` (``db`` itself is never written), and require the same checked outputs and no new orders,
        fills or order events for the run. The artifact's own cells are never executed.
    kernel : str, optional
        Kernel for the re-run (default: the one named in the artifact, else ``tradeloop``).

    Returns
    -------
    list of str
        One sentence per difference; empty when everything agrees.

    Raises
    ------
    ValidationError
        The file is missing or is not a notebook at all.
    """
    path = Path(path)
    nb = read_artifact(path)
    db_path = Path(db) if db else default_db_path()
    problems = notebook_problems(nb, path.name)
    summary = notebook_summary(nb)
    if not summary:
        problems.append(f"{path.name} has no summary cell output (tag {SUMMARY_TAG!r}, first line {SUMMARY_TITLE!r})")
    run_id = path.stem
    if summary.get("run_id", run_id) != run_id:
        problems.append(f"{path.name} is named after run {run_id} but its summary is of run {summary['run_id']}")
    if not db_path.is_file():
        return problems + [f"database {str(db_path)!r} does not exist"]
    with Store(db_path, read_only=True) as store, store.session():
        row = artifact_row(store, run_id) if _has_artifacts(store) else None
        if row is None:
            return problems + [f"run_artifacts has no row for run {run_id} in {str(db_path)!r}"]
        bound = _bound_problems(store, path, row)
        problems += bound
        try:
            expected = parse_summary(summary_text(run_result(store, run_id)))
        except RunNotFound:
            return problems + [f"run {run_id} is not in {str(db_path)!r}"]
        counts_before = run_row_counts(store, run_id)
        event = artifact_event(store, run_id)
    if summary:
        problems += [f"summary {key}: artifact says {summary.get(key)!r}, database has {expected[key]!r}"
                     for key in expected if summary.get(key) != expected[key]]
    if rerun:
        if bound:
            return problems + ["re-run refused: the artifact is not bound to its run (see above)"]
        problems += _rerun(nb, row, event, db_path, kernel, counts_before)
    return problems


def _has_artifacts(store: Store) -> bool:
    return bool(store.con.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE table_name = 'run_artifacts'").fetchone()[0])


def _bound_problems(store: Store, path: Path, row: dict) -> list[str]:
    """The file against its row (name, sha256), the row against the chain's artifact event, and the chain."""
    problems = []
    recorded_name = Path(row["notebook_path"]).name if row["notebook_path"] else ""
    if recorded_name != path.name:
        problems.append(f"run_artifacts records {recorded_name or 'no file'!r} for run {row['run_id']}, "
                        f"not {path.name!r}")
    actual = sha256_file(path)
    if row["sha256"] != actual:
        problems.append(f"{path.name}: sha256 {actual[:16]}… differs from run_artifacts ({row['sha256'][:16]}…): "
                        "the file was changed after it was recorded")
    problems += binding_problems(row, artifact_event(store, row["run_id"]))
    problems += [f"audit chain: {p}" for p in verify_chain(store.audit_events())]
    return problems


def _rerun(nb, row: dict, event: dict, db_path: Path, kernel: str | None, counts_before: dict[str, int]) -> list[str]:
    """Execute the recorded source notebook with the recorded parameters against a copy of ``db_path`` and
    compare the checked outputs and the run's row counts."""
    run_id = row["run_id"]
    source = Path(row["source_notebook"] or "")
    if not source.is_file():
        return [f"re-run refused: the recorded source notebook {str(source)!r} does not exist"]
    data = source.read_bytes()
    if hashlib.sha256(data).hexdigest() != event.get("source_sha256"):
        return [f"re-run refused: the source notebook {str(source)!r} has changed since run {run_id} was "
                "recorded (its sha256 differs from the one in the audit chain)"]
    kernel = kernel or nb.metadata.get("kernelspec", {}).get("name") or DEFAULT_KERNEL
    kernel, kernel_note = resolve_kernel(kernel)
    with tempfile.TemporaryDirectory(prefix="tradeloop-verify-") as tmp:
        copy, notebook, out = Path(tmp) / "copy.duckdb", Path(tmp) / "source.ipynb", Path(tmp) / "rerun.ipynb"
        notebook.write_bytes(data)  # exactly the bytes checked above
        _copy_database(db_path, copy)
        params = {**row["parameters"], "db_path": str(copy), "work_db": str(copy)}
        status, error = execute_notebook(notebook, out, params, kernel=kernel)
        problems = [] if status == "completed" else [f"re-run failed: {error}"]
        again = read_artifact(out) if out.is_file() else None
        with Store(copy, read_only=True) as scratch:
            counts_after = run_row_counts(scratch, run_id)
    if again is not None:
        old, new = checked_outputs(nb), checked_outputs(again)
        if len(old) != len(new):
            problems.append(f"re-run has {len(new)} checked cell(s), the artifact {len(old)}")
        for i, (a, b) in enumerate(zip(old, new), start=1):
            if a != b:
                problems.append(f"re-run checked output {i} differs: artifact {a.strip()[:200]!r}, "
                                f"re-run {b.strip()[:200]!r}")
    problems += [f"re-run changed {table} for run {run_id}: {before} -> {counts_after[table]} rows"
                 for table, before in counts_before.items() if counts_after[table] != before]
    return problems


def _copy_database(db_path: Path, copy: Path) -> None:
    """Copy a database file (and its WAL) while holding it read-only, so no writer changes it mid-copy."""
    with Store(db_path, read_only=True).session():
        shutil.copyfile(db_path, copy)
        wal = db_path.with_name(db_path.name + ".wal")
        if wal.is_file():
            shutil.copyfile(wal, copy.with_name(copy.name + ".wal"))
