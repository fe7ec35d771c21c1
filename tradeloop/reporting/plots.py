"""Figures for the notebooks: plain :class:`matplotlib.figure.Figure` objects, no pyplot state.

Building figures without pyplot keeps them independent of the active backend (papermill batches, tests and
servers render with Agg) and of each other; Jupyter displays a returned ``Figure`` inline.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from .reports import RunReport

__all__ = ["plot_weights", "plot_sector_notional", "plot_cash", "plot_fills", "plot_exposure", "plot_batch"]

_STATUS_COLORS = {"done": "tab:green", "blocked": "tab:orange", "failed": "tab:red", "queued": "tab:gray",
                  "running": "tab:blue"}


def _empty(ax, message: str) -> None:
    ax.text(0.5, 0.5, message, ha="center", va="center", transform=ax.transAxes)
    ax.set_xticks([])
    ax.set_yticks([])


def plot_weights(report: RunReport, *, top: int = 60) -> Figure:
    """Target vs. achieved (and current) weight per symbol, the ``top`` largest targets."""
    w = report.weights
    w = w.reindex(w["target_weight"].abs().sort_values(ascending=False, kind="stable").index[:top])
    fig = Figure(figsize=(12, 4), layout="constrained")
    ax = fig.add_subplot()
    x = np.arange(len(w))
    ax.bar(x - 0.2, w["target_weight"], width=0.4, label="target")
    ax.bar(x + 0.2, w["achieved_weight"].fillna(0), width=0.4, label="achieved")
    ax.plot(x, w["current_weight"].fillna(0), "k_", markersize=8, label="before")
    ax.set_xticks(x, w["symbol"], rotation=90, fontsize=7)
    ax.set_ylabel("weight")
    ax.set_title(f"{report.run_id}: target vs. achieved weight ({report.result.status})")
    ax.legend()
    return fig


def plot_sector_notional(report: RunReport) -> Figure:
    """Bought and sold notional per sector."""
    fig = Figure(figsize=(7, 3.5), layout="constrained")
    ax = fig.add_subplot()
    s = report.sectors
    if s.empty:
        _empty(ax, f"no fills (run {report.result.status})")
    else:
        ax.barh(s["sector"], s["buy_notional"], label="bought", color="tab:green")
        ax.barh(s["sector"], -s["sell_notional"], label="sold", color="tab:red")
        ax.axvline(0, color="k", linewidth=0.8)
        ax.set_xlabel("notional")
        ax.legend()
    ax.set_title("traded notional by sector")
    return fig


def plot_cash(report: RunReport) -> Figure:
    """Cash before, the flows of the run (buys, sells, commission) and cash after, as a waterfall."""
    c = report.cash.set_index("item")["amount"]
    steps = ["buys", "sells", "commission"]
    fig = Figure(figsize=(7, 3.5), layout="constrained")
    ax = fig.add_subplot()
    level = c["cash before"]
    ax.bar(0, level, color="tab:blue")
    for i, step in enumerate(steps, start=1):
        ax.bar(i, c[step], bottom=level, color="tab:green" if c[step] >= 0 else "tab:red")
        level += c[step]
    ax.bar(len(steps) + 1, c["cash after"], color="tab:blue")
    ax.set_xticks(range(len(steps) + 2), ["before", *steps, "after"])
    ax.set_ylabel("cash")
    ax.set_title("cash before / after")
    return fig


def plot_fills(report: RunReport) -> Figure:
    """Signed fill notional per symbol (buys up, sells down)."""
    fig = Figure(figsize=(12, 3.5), layout="constrained")
    ax = fig.add_subplot()
    f = report.fills.groupby("symbol", sort=True)["notional"].sum()
    if f.empty:
        _empty(ax, f"no fills (run {report.result.status})")
    else:
        ax.bar(f.index, f.to_numpy(), color=np.where(f.to_numpy() >= 0, "tab:green", "tab:red"))
        ax.tick_params(axis="x", rotation=90, labelsize=7)
        ax.set_ylabel("fill notional")
    ax.set_title(f"fills of {report.run_id}")
    return fig


def plot_exposure(report: RunReport) -> Figure:
    """Net weight per sector before and after the run."""
    w = report.weights.assign(sector=report.weights["sector"].fillna("(none)"))
    by = w.groupby("sector", sort=True)[["current_weight", "achieved_weight", "target_weight"]].sum()
    fig = Figure(figsize=(7, 3.5), layout="constrained")
    ax = fig.add_subplot()
    x = np.arange(len(by))
    for offset, col, label in ((-0.27, "current_weight", "before"), (0, "achieved_weight", "after"),
                               (0.27, "target_weight", "target")):
        ax.bar(x + offset, by[col].fillna(0), width=0.27, label=label)
    ax.set_xticks(x, by.index)
    ax.set_ylabel("net weight")
    ax.set_title("exposure by sector")
    ax.legend()
    return fig


def plot_batch(table: pd.DataFrame) -> Figure:
    """Runs per status, and each run's filled notional coloured by status (``table`` from ``batch_table``)."""
    fig = Figure(figsize=(12, 3.5), layout="constrained")
    left, right = fig.subplots(1, 2, width_ratios=[1, 3])
    counts = table["status"].value_counts().sort_index()
    left.bar(counts.index, counts.to_numpy(), color=[_STATUS_COLORS.get(s, "tab:gray") for s in counts.index])
    left.set_title("runs by status")
    if table.empty:
        _empty(right, "no runs")
    else:
        labels = table["snapshot"].where(table["snapshot"].ne(""), table["run_id"])
        right.bar(labels, table["notional"], color=[_STATUS_COLORS.get(s, "tab:gray") for s in table["status"]])
        right.tick_params(axis="x", rotation=90, labelsize=7)
        right.set_title("filled notional per run")
    return fig
