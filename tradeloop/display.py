"""Compact displays for Jupyter: a titled two-column table of facts and a bounded preview of a frame.

Used by the ``_repr_html_`` of :class:`~tradeloop.RunResult`, :class:`~tradeloop.Simulation`,
:class:`~tradeloop.BatchResult`, :class:`~tradeloop.Store` and :class:`~tradeloop.reporting.reports.RunReport`: a
summary that stays a few kilobytes however large the run, with the full frames one attribute away (named in the
footer). Pure functions of their arguments; no tradeloop imports, so every layer may use them.
"""

from __future__ import annotations

import html
from collections.abc import Iterable

__all__ = ["facts_html", "preview_html", "short_repr"]

_STYLE = "border-collapse:collapse;font-size:12px"
_CELL = "text-align:left;padding:1px 8px"


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:,.2f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    if value is None or value == "":
        return "-"
    return str(value)


def facts_html(title: str, facts: Iterable[tuple[str, object]], *, footer: str | None = None,
               extra: str = "") -> str:
    """``title`` over a table of ``(name, value)`` rows, then ``extra`` HTML and a ``footer`` sentence."""
    rows = "".join(f"<tr><th style='{_CELL}'>{html.escape(k)}</th>"
                   f"<td style='{_CELL};font-family:monospace'>{html.escape(_fmt(v))}</td></tr>" for k, v in facts)
    foot = f"<p style='font-size:11px;margin:2px 0'>{html.escape(footer)}</p>" if footer else ""
    return (f"<div class='tradeloop-repr'><b>{html.escape(title)}</b>"
            f"<table style='{_STYLE}'>{rows}</table>{extra}{foot}</div>")


def preview_html(frame, *, rows: int = 10, caption: str) -> str:
    """The first ``rows`` rows of ``frame`` under a caption that says how many of how many are shown."""
    shown = frame.head(rows)
    note = f"{caption}: {len(shown)} of {len(frame)}" if len(frame) > len(shown) else f"{caption}: all {len(frame)}"
    body = shown.to_html(index=False, border=0, na_rep="", max_cols=12) if len(shown) else ""
    return f"<p style='font-size:12px;margin:4px 0'><b>{html.escape(note)}</b></p>{body}"


def short_repr(name: str, *args, **fields) -> str:
    """``Name('id', key=value, …)`` on one line (values formatted compactly)."""
    parts = [repr(a) for a in args] + [f"{k}={v!r}" if isinstance(v, str) else f"{k}={_fmt(v)}"
                                       for k, v in fields.items()]
    return f"{name}({', '.join(parts)})"
