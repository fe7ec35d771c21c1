"""The verdict block: the first thing a reviewer reads about a run.

One :class:`Verdict` names the run (id, status, model version, snapshot id and content hash, provider, portfolio
value), what it ran with (sha256 of every input, every param and risk limit in force, package versions), when
(created, finished, attempts) and the result of the very check ``tradeloop verify`` runs
(:func:`tradeloop.workflows.verify.verify_store`: the audit hash chain plus an in-memory replay), stated precisely.

In a notebook it displays as an HTML table (``id="tradeloop-verdict"``); its plain-text form is ``key: value``
lines under :data:`VERDICT_TITLE`, which :func:`parse_verdict` reads back (tests and reviewers' scripts).
"""

from __future__ import annotations

import hashlib
import html
import json
import platform
import re
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import pandas as pd

from ..store.artifacts import sha256_file as file_sha256
from ..store.db import Store
from ..workflows.verify import verify_store

__all__ = ["Verdict", "run_verdict", "parse_verdict", "notebook_verdict", "file_sha256", "VERDICT_TITLE",
           "VERDICT_FIELDS", "PACKAGES"]

VERDICT_TITLE = "TRADELOOP VERDICT"
#: Packages whose versions the verdict names (the ones a run's numbers depend on).
PACKAGES = ("tradeloop", "pandas", "numpy", "duckdb", "pyarrow", "papermill", "matplotlib")
#: Every key of a verdict, in display order (``param.*``, ``risk.*``, ``input.*`` and ``version.*`` expand).
VERDICT_FIELDS = ("verification", "run_id", "status", "database", "model_version", "snapshot_id",
                  "snapshot_content_hash", "portfolio_value", "provider", "dry_run", "created_at", "started_at",
                  "finished_at", "attempts", "error")
_LINE = re.compile(r"^([\w.\[\]'\-]+):\s?(.*)$")


def _frame_sha256(df: pd.DataFrame | None) -> str:
    """sha256 of a stored input table in canonical CSV form (sorted by symbol), or ``-`` when there is none."""
    if df is None or df.empty:
        return "- (none given)"
    text = df.sort_values("symbol").to_csv(index=False, lineterminator="\n")
    return hashlib.sha256(text.encode()).hexdigest() + " (stored rows, canonical CSV)"


def _versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def _flat(prefix: str, value, out: dict) -> None:
    if isinstance(value, dict) and value:
        for k in sorted(value):
            _flat(f"{prefix}.{k}", value[k], out)
    else:
        out[prefix] = "-" if value is None else json.dumps(value) if isinstance(value, (dict, list, bool)) else value


def _when(value) -> str:
    return "-" if value is None or pd.isna(value) else pd.Timestamp(value).isoformat(sep=" ") + " UTC"


def _verification(store: Store, run_id: str) -> tuple[bool, str]:
    """The sentence stating what ``tradeloop verify RUN_ID`` finds for this run."""
    result = verify_store(store, [run_id])
    if result.ok:
        text = (f"VERIFIED: the hash chain of all {result.audit_events} audit events in the database is intact, and "
                f"replaying {run_id} in memory from its frozen snapshot, params and inputs reproduces its stored "
                "orders, fills, order events, status and risk outcome; its last audit record matches the stored "
                "rows (same check as `tradeloop verify`)")
    else:
        shown = "; ".join(result.differences[:5])
        more = f"; … {len(result.differences) - 5} more" if len(result.differences) > 5 else ""
        text = (f"FAILED: `tradeloop verify` finds {len(result.differences)} difference(s): {shown}{more}")
    if result.notes:
        text += " (note: " + "; ".join(result.notes) + ")"
    return result.ok, text


@dataclass(frozen=True)
class Verdict:
    """A run's verdict: ``fields`` maps each key (see :data:`VERDICT_FIELDS`) to its value, in display order."""

    fields: dict
    ok: bool

    @property
    def run_id(self) -> str:
        return self.fields["run_id"]

    def text(self) -> str:
        """``key: value`` lines under :data:`VERDICT_TITLE` (one line per field; values never span lines)."""
        lines = [VERDICT_TITLE]
        lines += [f"{k}: {str(v).replace(chr(10), ' ')}" for k, v in self.fields.items()]
        return "\n".join(lines)

    def __repr__(self) -> str:
        return self.text()

    def _repr_html_(self) -> str:
        f = self.fields
        colour = "#1a7f37" if self.ok else "#cf222e"
        rows = "".join(
            f"<tr><th style='text-align:left;padding:1px 8px;white-space:nowrap'>{html.escape(k)}</th>"
            f"<td style='text-align:left;padding:1px 8px;font-family:monospace;word-break:break-all'>"
            f"{html.escape(str(v))}</td></tr>" for k, v in f.items() if k != "verification")
        return (f"<div id='tradeloop-verdict' class='tradeloop-verdict' data-run-id='{html.escape(f['run_id'])}' "
                f"data-status='{html.escape(str(f['status']))}' data-verified='{str(self.ok).lower()}'>"
                f"<h2 style='margin:0 0 4px'>Verdict: {html.escape(f['run_id'])} — {html.escape(str(f['status']))}</h2>"
                f"<p style='border-left:6px solid {colour};padding:4px 8px;margin:4px 0'>"
                f"{html.escape(str(f['verification']))}</p>"
                f"<details open><summary>run, inputs, params, risk limits, versions ({len(f) - 1} fields)</summary>"
                f"<table style='font-size:12px;border-collapse:collapse'>{rows}</table></details></div>")


def run_verdict(store: Store, run_id: str, *, database: str | Path | None = None,
                input_files: dict | None = None) -> Verdict:
    """Build the verdict of a stored run (the store is only read).

    Parameters
    ----------
    store : Store
        The database the run is in (read-only is enough).
    database : path, optional
        The path to name as the run's database (default: the store's); a batch names its target, not its scratch.
    input_files : dict, optional
        ``{name: path}`` of the files the run was made from (their sha256 is stated); without them the stored
        positions and fallback prices are hashed in canonical CSV form and the snapshot by its content hash.
    """
    row = store.get_run(run_id)
    snap = store.load_snapshot(row["snapshot_id"])
    positions, fallback = store.run_inputs(run_id)
    ok, verification = _verification(store, run_id)
    params = json.loads(row["params"])
    risk = {k: v for k, v in (params.pop("risk", None) or {}).items() if k != "outcome"}
    fields: dict = {
        "verification": verification, "run_id": run_id, "status": row["status"],
        "database": str(Path(database or store.path).resolve()) if str(database or store.path) != ":memory:"
        else ":memory:",
        "model_version": snap.model_version, "snapshot_id": row["snapshot_id"],
        "snapshot_content_hash": snap.content_hash, "portfolio_value": f"{snap.portfolio_value:,.2f}",
        "provider": row["provider"], "dry_run": str(bool(row["dry_run"])).lower(),
        "created_at": _when(row["created_at"]), "started_at": _when(row.get("started_at")),
        "finished_at": _when(row.get("finished_at")), "attempts": int(row["attempts"]), "error": row["error"] or "-",
    }
    if input_files:
        for name, path in input_files.items():
            fields[f"input.{name}"] = ("- (none given)" if path is None
                                       else f"sha256 {file_sha256(path)} ({Path(path).name})")
    else:
        fields["input.snapshot"] = f"content hash {snap.content_hash} (stored snapshot)"
        fields["input.positions"] = _frame_sha256(positions)
        fields["input.fallback_prices"] = _frame_sha256(fallback)
    for k in sorted(params):
        _flat(f"param.{k}", params[k], fields)
    for k in sorted(risk):
        _flat(f"risk.{k}", risk[k], fields)
    for name, version in _versions().items():
        fields[f"version.{name}"] = version
    return Verdict(fields, ok)


def parse_verdict(text: str) -> dict[str, str]:
    """The ``key: value`` pairs of a verdict's text form; empty if ``text`` is not one."""
    lines = text.strip().splitlines()
    if not lines or lines[0].strip() != VERDICT_TITLE:
        return {}
    pairs = (_LINE.match(line) for line in lines[1:])
    return {m.group(1): m.group(2) for m in pairs if m}


def notebook_verdict(nb) -> dict[str, str]:
    """The verdict shown in an executed notebook (its ``text/plain`` output), parsed; empty when there is none."""
    for cell in nb.cells:
        for out in cell.get("outputs", []) if cell.get("cell_type") == "code" else []:
            text = out.get("data", {}).get("text/plain") if "data" in out else out.get("text")
            text = "".join(text) if isinstance(text, list) else text
            if text and text.lstrip().startswith(VERDICT_TITLE):
                return parse_verdict(text)
    return {}
