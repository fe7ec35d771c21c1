"""``tradeloop report``: execute the review notebook for one run and write it as a self-contained web page.

The page is nbconvert's HTML export with every input cell left out (a reviewer reads results, not code); figures
are embedded as PNG data, so the file opens in any browser without Jupyter or a network.
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

import nbformat

from ..errors import TradeloopError, ValidationError
from ..resources import notebook_file

__all__ = ["REVIEW_NOTEBOOK", "execute_review", "write_report", "self_contained"]

REVIEW_NOTEBOOK = notebook_file("review_run.ipynb")
# Scripts the export template loads from a CDN (require.js, MathJax, mermaid): a review has no widgets, maths or
# diagrams, and a self-contained page must not reach the network.
_REMOTE_SCRIPT = re.compile(r"<script\b[^>]*>(?:(?!</script>).)*?https?://(?:(?!</script>).)*</script>\s*|"
                            r"<script\b[^>]*\bsrc=[\"']https?://[^>]*>\s*</script>\s*", re.S)


def self_contained(page: str) -> str:
    """``page`` without the scripts that would load anything from the network."""
    return _REMOTE_SCRIPT.sub("", page)


def execute_review(db: str | Path, run_id: str, *, kernel: str = "tradeloop", timeout: float | None = 600):
    """The review notebook executed with papermill for ``run_id`` in ``db``; returns the executed notebook."""
    import papermill as pm

    from ..workflows.kernels import kernel_manager_class

    with tempfile.TemporaryDirectory(prefix="tradeloop-report-") as tmp:
        out = Path(tmp) / "review.ipynb"
        try:
            pm.execute_notebook(str(REVIEW_NOTEBOOK), str(out), kernel_name=kernel, progress_bar=False,
                                kernel_manager_class=kernel_manager_class(),
                                parameters={"db_path": str(Path(db).resolve()), "run_id": run_id},
                                cwd=str(REVIEW_NOTEBOOK.parent), log_output=False, execution_timeout=timeout)
        except pm.PapermillExecutionError as e:
            raise TradeloopError(f"the review notebook failed for run {run_id!r}: {e.ename}: {e.evalue}") from None
        nb = nbformat.read(out, as_version=4)
    for cell in nb.cells:  # papermill's injected-parameters cell is code noise too
        if cell.cell_type == "code":
            cell.metadata.setdefault("jupyter", {})["source_hidden"] = True
    return nb


def write_report(db: str | Path, run_id: str, *, html: str | Path | None = None, ipynb: str | Path | None = None,
                 kernel: str = "tradeloop") -> dict:
    """Execute the review of ``run_id`` and write ``html`` (inputs hidden) and/or ``ipynb``; returns the paths."""
    if html is None and ipynb is None:
        raise ValidationError("give --html FILE and/or --ipynb FILE")
    nb = execute_review(db, run_id, kernel=kernel)
    written = {}
    if ipynb is not None:
        nbformat.write(nb, str(ipynb))
        written["ipynb"] = str(ipynb)
    if html is not None:
        from nbconvert import HTMLExporter

        exporter = HTMLExporter(exclude_input=True, exclude_input_prompt=True, exclude_output_prompt=True)
        body, _ = exporter.from_notebook_node(nb, resources={"metadata": {"name": f"tradeloop review {run_id}"}})
        Path(html).write_text(self_contained(body), encoding="utf-8")
        written["html"] = str(html)
    return written
