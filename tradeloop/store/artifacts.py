"""Executed-notebook artifacts: the ``run_artifacts`` table, and reading and hashing the saved notebooks.

An artifact is the notebook papermill executed for one run, saved as ``<out>/<run_id>.ipynb``; its row in
``run_artifacts`` holds the file's sha256, the parameters it ran with and papermill's status. The row alone can be
edited, so recording an artifact also appends an :data:`ARTIFACT_EVENT` to the audit hash chain (through the one
chain writer, :func:`tradeloop.store.audit.append_audit`, in the same transaction) carrying the file's name and
sha256, the run id, a digest of the parameters and the sha256 of the source notebook; :func:`binding_problems` checks
a row against it. The event's ``run_id`` column is NULL (the run id is in the payload), so a run's own events,
``show`` and the replay in ``verify`` are unchanged, and a notebook that failed before creating a run binds too.

Artifact files are written by :func:`write_artifact`: a temporary file in the same directory, then ``os.replace``,
so a reader never sees half a notebook and a symlink planted at the artifact's name is replaced, never followed.

This module only records, reads, writes and hashes; checking an artifact against its run (and re-executing its
source) is :func:`tradeloop.workflows.batch.verify_artifact`, on the papermill side.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from ..core.digest import canonical_json
from ..errors import ValidationError
from .audit import append_audit
from .db import Store, utcnow

__all__ = [
    "ArtifactRecord", "record_artifact", "artifacts", "recorded_sha256", "run_row_counts", "sha256_file",
    "read_artifact", "summary_output", "checked_outputs", "notebook_problems", "SUMMARY_TAG", "ARTIFACT_COLUMNS",
    "ARTIFACT_EVENT", "write_artifact", "artifact_row", "artifact_event", "binding_problems", "parameters_digest",
    "artifact_problems",
]

#: Cell tag of the notebooks' summary cell.
SUMMARY_TAG = "summary"
#: Columns of ``run_artifacts`` (and of :func:`artifacts`).
ARTIFACT_COLUMNS = ("run_id", "notebook_path", "source_notebook", "sha256", "parameters", "papermill_status",
                    "error", "batch_id", "snapshot_file", "created_at")
_CHECK_MARK = "NBVAL_CHECK_OUTPUT"
_CHECK_TAG = "nbval-check-output"  # nbval's cell tag for the same thing
#: Audit event type binding an artifact file to its run (see the module docstring).
ARTIFACT_EVENT = "run_artifact.recorded"


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
    source_sha256: str | None = None

    def to_dict(self) -> dict:
        return {"run_id": self.run_id, "snapshot_file": self.snapshot_file, "notebook_path": self.notebook_path,
                "sha256": self.sha256, "papermill_status": self.papermill_status, "status": self.status,
                "error": self.error, "batch_id": self.batch_id, "source_notebook": self.source_notebook,
                "source_sha256": self.source_sha256, "parameters": self.parameters}


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def parameters_digest(parameters: dict) -> str:
    """sha256 of the parameters' canonical JSON (what the audit event records of them)."""
    return hashlib.sha256(canonical_json(parameters).encode()).hexdigest()


def write_artifact(data: bytes, target: str | Path) -> str:
    """Write ``data`` to ``target`` atomically and return its sha256.

    A new temporary file in ``target``'s directory (created exclusively, so nothing planted there is opened) is
    written and synced, then renamed over ``target``: a symlink at ``target`` is replaced, its target untouched.
    """
    target = Path(target)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return hashlib.sha256(data).hexdigest()


def _event_payload(record: ArtifactRecord) -> dict:
    return {"run_id": record.run_id, "notebook": Path(record.notebook_path).name if record.notebook_path else "",
            "sha256": record.sha256, "source_notebook": record.source_notebook,
            "source_sha256": record.source_sha256, "parameters_sha256": parameters_digest(record.parameters),
            "papermill_status": record.papermill_status, "batch_id": record.batch_id}


def record_artifact(store: Store, record: ArtifactRecord) -> None:
    """Insert or replace the artifact row of ``record.run_id`` (one current artifact per run) and bind it in the
    audit chain with an :data:`ARTIFACT_EVENT`, in one transaction."""
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
        append_audit(store.con, None, ARTIFACT_EVENT, _event_payload(record))


def artifact_row(store: Store, run_id: str) -> dict | None:
    """The ``run_artifacts`` row of a run (``parameters`` parsed), or None."""
    cur = store.con.execute(f"SELECT {', '.join(ARTIFACT_COLUMNS)} FROM run_artifacts WHERE run_id = ?", [run_id])
    row = cur.fetchone()
    if row is None:
        return None
    out = dict(zip(ARTIFACT_COLUMNS, row))
    out["parameters"] = json.loads(out["parameters"])
    return out


def artifact_event(store: Store, run_id: str) -> dict | None:
    """The payload of the latest :data:`ARTIFACT_EVENT` of a run in the chain, or None."""
    row = store.con.execute(
        "SELECT payload FROM audit_events WHERE event_type = ? AND run_id IS NULL "
        "AND json_extract_string(payload, '$.run_id') = ? ORDER BY seq DESC LIMIT 1", [ARTIFACT_EVENT, run_id]
    ).fetchone()
    return None if row is None else json.loads(row[0])


def binding_problems(row: dict, event: dict | None) -> list[str]:
    """Where a ``run_artifacts`` row (see :func:`artifact_row`) disagrees with its run's latest artifact event."""
    run_id = row["run_id"]
    if event is None:
        return [f"run {run_id}: no {ARTIFACT_EVENT} event in the audit chain binds its artifact "
                "(recorded before artifacts were bound, or the row was inserted by hand; re-run the batch)"]
    recorded = {"sha256": row["sha256"], "notebook": Path(row["notebook_path"]).name if row["notebook_path"] else "",
                "source_notebook": row["source_notebook"], "parameters_sha256": parameters_digest(row["parameters"]),
                "papermill_status": row["papermill_status"]}
    return [f"run {run_id}: run_artifacts {key} is {str(value)[:80]!r}, the audit chain recorded "
            f"{str(event.get(key))[:80]!r}" for key, value in recorded.items() if event.get(key) != value]


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


def summary_output(nb, title: str) -> str | None:
    """The text printed by the notebook's summary cell (tagged :data:`SUMMARY_TAG`, else the first cell whose
    output starts with ``title``); None when there is none."""
    cells = [c for c in nb.cells if c.cell_type == "code"]
    tagged = [c for c in cells if SUMMARY_TAG in c.get("metadata", {}).get("tags", [])]
    printed = [c for c in cells if any(_text(o).startswith(title) for o in c.get("outputs", []))]
    cell = (tagged or printed or [None])[0]
    return None if cell is None else "".join(_text(o) for o in cell.get("outputs", []))


def checked_outputs(nb) -> list[str]:
    """Text outputs of the cells whose output is meant to be compared (summary tag or NBVAL_CHECK_OUTPUT)."""
    out = []
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        tags = cell.get("metadata", {}).get("tags", [])
        if SUMMARY_TAG in tags or _CHECK_TAG in tags or _CHECK_MARK in cell.source:
            out.append("".join(_text(o) for o in cell.get("outputs", [])))
    return out


def notebook_problems(nb, name: str) -> list[str]:
    """What makes an executed notebook untrustworthy on its own: invalid nbformat, no papermill metadata or a
    recorded exception, cells not completed, error outputs. One sentence each; empty when none."""
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


def recorded_sha256(store: Store, run_id: str) -> str | None:
    """The sha256 ``run_artifacts`` holds for the run's artifact; None without a row (or without the table)."""
    has_table = store.con.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE table_name = 'run_artifacts'").fetchone()[0]
    row = store.con.execute("SELECT sha256 FROM run_artifacts WHERE run_id = ?", [run_id]).fetchone() \
        if has_table else None
    return None if row is None else row[0]


def run_row_counts(store: Store, run_id: str) -> dict[str, int]:
    """Rows of the run in ``trade_orders``, ``trade_fills`` and ``order_events``."""
    return {t: int(store.con.execute(f"SELECT count(*) FROM {t} WHERE run_id = ?", [run_id]).fetchone()[0])
            for t in ("trade_orders", "trade_fills", "order_events")}


def artifact_problems(store: Store) -> tuple[list[str], list[str]]:
    """Every ``run_artifacts`` row against its artifact event (what ``tradeloop verify`` checks of artifacts).

    Returns ``(differences, notes)``: a row that disagrees with its event is a difference; a row without any event
    is a note (recorded by a tradeloop that did not bind artifacts yet; ``verify-artifact`` refuses it).
    """
    has_table = store.con.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE table_name = 'run_artifacts'").fetchone()[0]
    run_ids = [r[0] for r in store.con.execute("SELECT run_id FROM run_artifacts ORDER BY run_id").fetchall()] \
        if has_table else []
    diffs, unbound = [], []
    for run_id in run_ids:  # one row per run with a notebook: a batch's worth, not millions
        event = artifact_event(store, run_id)
        if event is None:
            unbound.append(run_id)
        else:
            diffs += [f"artifact: {p}" for p in binding_problems(artifact_row(store, run_id), event)]
    notes = [f"{len(unbound)} artifact row(s) not bound in the audit chain (recorded before artifacts were bound; "
             f"verify-artifact refuses them until their batch is re-run): {', '.join(unbound[:5])}"
             f"{' …' if len(unbound) > 5 else ''}"] if unbound else []
    return diffs, notes
