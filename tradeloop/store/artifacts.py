"""Executed-notebook artifacts: the ``run_artifacts`` table and checking a saved artifact against the database.

An artifact is the notebook papermill executed for one run, saved as ``<out>/<run_id>.ipynb``; its row in
``run_artifacts`` holds the file's sha256, the parameters it ran with and papermill's status. A reviewer can trust
an artifact when :func:`verify_artifact` finds nothing: the file is valid nbformat, every cell completed without an
error output, the file is byte-for-byte the one recorded, and its summary cell states what the database holds.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import RunNotFound, ValidationError
from ..reporting.reports import SUMMARY_TITLE, parse_summary, summary_text
from ..workflows.run import run_result
from .db import Store, default_db_path, utcnow

__all__ = [
    "ArtifactRecord", "record_artifact", "artifacts", "sha256_file", "read_artifact", "notebook_summary",
    "verify_artifact", "SUMMARY_TAG", "ARTIFACT_COLUMNS",
]

#: Cell tag of the notebooks' summary cell.
SUMMARY_TAG = "summary"
#: Columns of ``run_artifacts`` (and of :func:`artifacts`).
ARTIFACT_COLUMNS = ("run_id", "notebook_path", "source_notebook", "sha256", "parameters", "papermill_status",
                    "error", "batch_id", "snapshot_file", "created_at")
_CHECK_MARK = "NBVAL_CHECK_OUTPUT"


@dataclass(frozen=True)
class ArtifactRecord:
    """One executed notebook of a batch.

    ``status`` is the run's status (``done``, ``blocked``, ``failed``), or ``failed`` when the notebook itself
    failed (``papermill_status == "failed"``, e.g. a snapshot that does not validate); ``error`` says why.
    """

    run_id: str
    snapshot_file: str
    notebook_path: str
    sha256: str
    papermill_status: str
    status: str
    error: str | None = None
    parameters: dict = field(default_factory=dict)
    batch_id: str | None = None
    source_notebook: str | None = None

    def to_dict(self) -> dict:
        return {"run_id": self.run_id, "snapshot_file": self.snapshot_file, "notebook_path": self.notebook_path,
                "sha256": self.sha256, "papermill_status": self.papermill_status, "status": self.status,
                "error": self.error, "batch_id": self.batch_id, "source_notebook": self.source_notebook,
                "parameters": self.parameters}


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def record_artifact(store: Store, record: ArtifactRecord) -> None:
    """Insert or replace the artifact row of ``record.run_id`` (one current artifact per run)."""
    with store.transaction():
        store.con.execute(
            f"INSERT INTO run_artifacts ({', '.join(ARTIFACT_COLUMNS)}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (run_id) DO UPDATE SET notebook_path = EXCLUDED.notebook_path, "
            "source_notebook = EXCLUDED.source_notebook, sha256 = EXCLUDED.sha256, parameters = EXCLUDED.parameters, "
            "papermill_status = EXCLUDED.papermill_status, error = EXCLUDED.error, batch_id = EXCLUDED.batch_id, "
            "snapshot_file = EXCLUDED.snapshot_file, created_at = EXCLUDED.created_at",
            [record.run_id, record.notebook_path, record.source_notebook, record.sha256,
             json.dumps(record.parameters, sort_keys=True), record.papermill_status,
             record.error if record.papermill_status != "completed" else None, record.batch_id,
             record.snapshot_file, utcnow()],
        )


def artifacts(store: Store, batch_id: str | None = None):
    """The ``run_artifacts`` rows (of one batch, if given), sorted by run id; columns :data:`ARTIFACT_COLUMNS`."""
    where, args = ("WHERE batch_id = ?", [batch_id]) if batch_id else ("", [])
    return store.con.execute(f"SELECT {', '.join(ARTIFACT_COLUMNS)} FROM run_artifacts {where} ORDER BY run_id",
                             args).df()


def read_artifact(path: str | Path):
    """Read a notebook file (nbformat 4); a missing file or one that is not a notebook is a ValidationError."""
    import nbformat  # imported on use: it costs ~1 s (jsonschema) that other commands should not pay

    path = Path(path)
    if not path.is_file():
        raise ValidationError(f"artifact {str(path)!r} does not exist")
    try:
        nb = nbformat.read(path, as_version=4)
    except Exception as e:  # nbformat raises several unrelated types for unreadable files
        raise ValidationError(f"artifact {str(path)!r} is not a readable notebook: {type(e).__name__}: {e}") from None
    return nb


def _text(output) -> str:
    if output.get("output_type") == "stream":
        return output.get("text", "")
    if output.get("output_type") in ("execute_result", "display_data"):
        return output.get("data", {}).get("text/plain", "")
    return ""


def _summary_cell(nb):
    for cell in nb.cells:
        if cell.cell_type == "code" and SUMMARY_TAG in cell.get("metadata", {}).get("tags", []):
            return cell
    for cell in nb.cells:  # a notebook without the tag: the cell that printed a summary
        if cell.cell_type == "code" and any(_text(o).startswith(SUMMARY_TITLE) for o in cell.get("outputs", [])):
            return cell
    return None


def notebook_summary(nb) -> dict[str, str]:
    """The ``key: value`` pairs printed by the notebook's summary cell; empty when there is none."""
    cell = _summary_cell(nb)
    if cell is None:
        return {}
    return parse_summary("".join(_text(o) for o in cell.get("outputs", [])))


def _checked_outputs(nb) -> list[str]:
    """Text outputs of the cells whose output is meant to be compared (summary tag or NBVAL_CHECK_OUTPUT)."""
    out = []
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        if SUMMARY_TAG in cell.get("metadata", {}).get("tags", []) or _CHECK_MARK in cell.source:
            out.append("".join(_text(o) for o in cell.get("outputs", [])))
    return out


def _structure_problems(nb, name: str) -> list[str]:
    import nbformat

    problems = []
    try:
        nbformat.validate(nb)
    except nbformat.ValidationError as e:
        problems.append(f"{name} is not valid nbformat: {str(e).splitlines()[0]}")
    pm = nb.metadata.get("papermill")
    if pm is None:
        problems.append(f"{name} was not executed by papermill (no papermill metadata)")
    elif pm.get("exception"):
        problems.append(f"{name}: papermill recorded an exception during execution")
    pending = []
    for i, cell in enumerate(nb.cells, start=1):
        status = cell.get("metadata", {}).get("papermill", {}).get("status")
        if pm is not None and status is None and cell.cell_type != "code":
            continue  # markdown papermill itself inserted (e.g. its error banner)
        if pm is not None and status == "pending":
            pending.append(str(i))
        elif pm is not None and status != "completed":
            problems.append(f"{name}: cell {i} has papermill status {status!r}, not 'completed'")
        if cell.cell_type != "code":
            continue
        for o in cell.get("outputs", []):
            if o.get("output_type") == "error":
                problems.append(f"{name}: cell {i} has an error output: {o.get('ename')}: {o.get('evalue')}")
    if pending:
        problems.append(f"{name}: {len(pending)} cell(s) never ran (papermill status 'pending'): {', '.join(pending)}")
    return problems


def _run_counts(store: Store, run_id: str) -> dict[str, int]:
    return {t: int(store.con.execute(f"SELECT count(*) FROM {t} WHERE run_id = ?", [run_id]).fetchone()[0])
            for t in ("trade_orders", "trade_fills", "order_events")}


def verify_artifact(path: str | Path, *, db: str | Path | None = None, rerun: bool = False,
                    kernel: str | None = None) -> list[str]:
    """Check a saved artifact without re-running it (and, with ``rerun``, by re-running it).

    Parameters
    ----------
    path : path
        The executed notebook, e.g. ``artifacts/run-0123456789abcdef.ipynb``.
    db : path, optional
        The database; default: the ``db_path`` the artifact ran with, else ``$TRADELOOP_DB``/``./tradeloop.duckdb``.
    rerun : bool
        Also execute the artifact again with papermill against ``db`` (to a temporary file; the artifact is not
        touched) and require the same checked outputs and no new orders, fills or order events for the run.
    kernel : str, optional
        Kernel for the re-run (default: the one the artifact ran with).

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
    name = path.name
    problems = _structure_problems(nb, name)
    summary = notebook_summary(nb)
    if not summary:
        problems.append(f"{name} has no summary cell output (tag {SUMMARY_TAG!r}, first line {SUMMARY_TITLE!r})")
    run_id = summary.get("run_id") or path.stem
    params = dict(nb.metadata.get("papermill", {}).get("parameters") or {})
    db_path = Path(db) if db else Path(params["db_path"]) if params.get("db_path") else default_db_path()
    if not db_path.is_file():
        return problems + [f"database {str(db_path)!r} does not exist"]
    actual_sha = sha256_file(path)
    with Store(db_path, read_only=True) as store:
        row = store.con.execute(
            "SELECT sha256, papermill_status FROM run_artifacts WHERE run_id = ?", [run_id]).fetchone() \
            if _has_artifacts_table(store) else None
        if row is None:
            problems.append(f"run_artifacts has no row for run {run_id} in {str(db_path)!r}")
        elif row[0] != actual_sha:
            problems.append(f"{name}: sha256 {actual_sha[:16]}… differs from run_artifacts ({row[0][:16]}…): "
                            "the file was changed after it was recorded")
        try:
            expected = parse_summary(summary_text(run_result(store, run_id)))
        except RunNotFound:
            expected = None
            problems.append(f"run {run_id} is not in {str(db_path)!r}")
        counts_before = _run_counts(store, run_id) if expected is not None else None
    if expected is not None and summary:
        for key in expected:
            if summary.get(key) != expected[key]:
                problems.append(f"summary {key}: artifact says {summary.get(key)!r}, database has {expected[key]!r}")
    if rerun and expected is not None:
        problems += _rerun(path, nb, params, db_path, kernel, run_id, counts_before)
    return problems


def _has_artifacts_table(store: Store) -> bool:
    return bool(store.con.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE table_name = 'run_artifacts'").fetchone()[0])


def _rerun(path, nb, params, db_path, kernel, run_id, counts_before) -> list[str]:
    from ..workflows.batch import execute_notebook  # papermill is only needed here

    kernel = kernel or nb.metadata.get("kernelspec", {}).get("name")
    params = {k: v for k, v in params.items() if k != "work_db"}
    params["db_path"] = str(Path(db_path).resolve())
    with tempfile.TemporaryDirectory(prefix="tradeloop-verify-") as tmp:
        out = Path(tmp) / path.name
        status, error = execute_notebook(path, out, params, kernel=kernel)
        problems = [] if status == "completed" else [f"re-run failed: {error}"]
        again = read_artifact(out) if out.is_file() else None
    if again is not None:
        old, new = _checked_outputs(nb), _checked_outputs(again)
        if len(old) != len(new):
            problems.append(f"re-run has {len(new)} checked cell(s), the artifact {len(old)}")
        for i, (a, b) in enumerate(zip(old, new), start=1):
            if a != b:
                problems.append(f"re-run checked output {i} differs: artifact {a.strip()[:200]!r}, "
                                f"re-run {b.strip()[:200]!r}")
    with Store(db_path, read_only=True) as store:
        counts_after = _run_counts(store, run_id)
    for table, before in counts_before.items():
        if counts_after[table] != before:
            problems.append(f"re-run changed {table} for run {run_id}: {before} -> {counts_after[table]} rows")
    return problems
