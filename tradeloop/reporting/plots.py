"""Figures for the notebooks: plain :class:`matplotlib.figure.Figure` objects, no pyplot state.

Building figures without pyplot keeps them independent of the active backend (papermill batches, tests and
servers render with Agg) and of each other; Jupyter displays a returned ``Figure`` inline.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from .reports import RunReport

__all__ = ["plot_weights", "plot_sector_notional", "plot_cash", "plot_fills", "plot_exposure", "plot_batch",
           "shortfall_waterfall", "shortfall_cumulative", "shortfall_values"]

_STATUS_COLORS = {"done": "tab:green", "blocked": "tab:orange", "failed": "tab:red", "queued": "tab:gray",
                  "running": "tab:blue"}


def _empty(ax, message: str) -> None:
    ax.text(0.5, 0.5, message, ha="center", va="center", transform=ax.transAxes)
    ax.set_xticks([])
    ax.set_yticks([])


def _top_and_other(values: pd.Series, size: pd.Series, top: int) -> tuple[pd.DataFrame, int]:
    """The ``top`` rows of ``values`` by ``size`` (stable order) plus one ``other`` row summing the rest."""
    order = size.sort_values(ascending=False, kind="stable").index
    shown = values.loc[order[:top]]
    rest = values.loc[order[top:]]
    if len(rest):
        shown = pd.concat([shown, rest.sum(numeric_only=True).to_frame(f"other ({len(rest)})").T])
    return shown, len(rest)


def _other_off_scale(ax, positions, values, rest: int, label: str) -> None:
    """Keep the ``top`` bars readable: when the summed ``other`` bar dwarfs them, clip the axis to the top bars and
    write the other bar's value on it (it is still drawn, at its true height, past the clipped axis)."""
    if not rest:
        return
    top = np.abs(np.asarray(values[:-1], dtype=float))
    other = float(values[-1])
    limit = float(top.max()) * 1.25 if len(top) and top.max() > 0 else abs(other)
    if abs(other) <= limit:
        return
    low = min(0.0, float(np.min(values[:-1]))) * 1.25 if len(top) else 0.0
    ax.set_ylim(low if other > 0 else -limit, limit if other > 0 else max(0.0, float(np.max(values[:-1]))) * 1.25)
    y = limit * 0.92 if other > 0 else -limit * 0.92
    ax.annotate(f"{label} (off scale)", (positions[-1], y), ha="right", va="center",
                fontsize=8, rotation=0, bbox={"boxstyle": "round", "fc": "white", "alpha": 0.85})


def plot_weights(report: RunReport, *, top: int = 25) -> Figure:
    """Weight before, target and achieved for the ``top`` symbols by largest weight (before, target or after: so
    liquidations show), the rest summed as one ``other`` bar; weights in % of the portfolio value."""
    w = report.weights.set_index("symbol")[["current_weight", "target_weight", "achieved_weight"]].fillna(0.0)
    size = w.abs().max(axis=1)
    shown, rest = _top_and_other(w * 100, size, top)
    fig = Figure(figsize=(12, 4), layout="constrained")
    ax = fig.add_subplot()
    x = np.arange(len(shown))
    ax.bar(x - 0.2, shown["target_weight"], width=0.4, label="target")
    ax.bar(x + 0.2, shown["achieved_weight"], width=0.4, label="achieved")
    ax.plot(x, shown["current_weight"], "k_", markersize=10, mew=2, label="before")
    ax.set_xticks(x, shown.index, rotation=90, fontsize=8)
    _other_off_scale(ax, x, shown[["target_weight", "achieved_weight", "current_weight"]].abs().max(axis=1)
                     .to_numpy() * np.sign(shown["target_weight"].to_numpy() + 1e-300), rest,
                     f"other: target {shown['target_weight'].iloc[-1]:,.2f} %, achieved "
                     f"{shown['achieved_weight'].iloc[-1]:,.2f} %, before {shown['current_weight'].iloc[-1]:,.2f} %")
    ax.set_ylabel("weight (% of portfolio value)")
    ax.set_title(f"{report.run_id} ({report.result.status}): {len(shown) - bool(rest)} largest of {len(w)} symbols"
                 + (f", other {rest} summed" if rest else ""))
    ax.legend()
    return fig


def plot_sector_notional(report: RunReport) -> Figure:
    """Bought and sold notional per sector (filled)."""
    fig = Figure(figsize=(7, 3.5), layout="constrained")
    ax = fig.add_subplot()
    s = report.sectors
    if s.empty:
        _empty(ax, f"no fills: run {report.result.status}" + (", nothing was submitted"
                                                             if report.result.status == "blocked" else ""))
    else:
        ax.barh(s["sector"], s["buy_notional"], label="bought", color="tab:green")
        ax.barh(s["sector"], -s["sell_notional"], label="sold", color="tab:red")
        ax.axvline(0, color="k", linewidth=0.8)
        ax.set_xlabel("filled notional (account currency)")
        ax.legend()
    ax.set_title("traded notional by sector")
    return fig


def plot_cash(report: RunReport) -> Figure:
    """Cash before, the flows of the run (buys, sells, commission) and cash after, as a waterfall with values."""
    c = report.cash.set_index("item")["amount"]
    steps = ["buys", "sells", "commission"]
    fig = Figure(figsize=(7, 3.5), layout="constrained")
    ax = fig.add_subplot()
    level = c["cash before"]
    bars = [ax.bar(0, level, color="tab:blue")]
    for i, step in enumerate(steps, start=1):
        bars.append(ax.bar(i, c[step], bottom=level, color="tab:green" if c[step] >= 0 else "tab:red"))
        level += c[step]
    bars.append(ax.bar(len(steps) + 1, c["cash after"], color="tab:blue"))
    for container, value in zip(bars, [c["cash before"], *(c[s] for s in steps), c["cash after"]]):
        ax.bar_label(container, labels=[f"{value:,.0f}"], label_type="center", fontsize=8)
    ax.set_xticks(range(len(steps) + 2), ["before", *steps, "after"])
    ax.set_ylabel("cash (account currency)")
    ax.set_title("cash before / after (values in account currency)")
    return fig


def plot_fills(report: RunReport, *, top: int = 20) -> Figure:
    """Left: net filled notional of the ``top`` symbols by size (buys up, sells down) plus ``other``; right: the
    distribution of fill notional per side (one bar per bin, not per order)."""
    fig = Figure(figsize=(12, 3.5), layout="constrained")
    left, right = fig.subplots(1, 2)
    f = report.fills
    if f.empty:
        for ax in (left, right):
            _empty(ax, f"no fills: run {report.result.status}")
        fig.suptitle(f"fills of {report.run_id}")
        return fig
    net = f.groupby("symbol", sort=True)["notional"].sum().to_frame()
    shown, rest = _top_and_other(net, net["notional"].abs(), top)
    v = shown["notional"].to_numpy()
    left.bar(shown.index, v, color=np.where(v >= 0, "tab:green", "tab:red"))
    left.tick_params(axis="x", rotation=90, labelsize=8)
    _other_off_scale(left, np.arange(len(v)), v, rest, f"other: net {v[-1]:,.0f}")
    left.set_ylabel("net filled notional (account currency)")
    left.set_title(f"{len(shown) - bool(rest)} largest of {len(net)} symbols" + (f", other {rest} summed" if rest
                                                                                 else ""))
    left.legend(handles=[Patch(color="tab:green", label="bought"), Patch(color="tab:red", label="sold")])
    size = f["notional"].abs()
    bins = np.histogram_bin_edges(size, bins=min(30, max(1, len(f))))
    for side, colour in (("BUY", "tab:green"), ("SELL", "tab:red")):
        part = size[f["side"].eq(side)]
        if len(part):
            right.hist(part, bins=bins, color=colour, alpha=0.6, label=f"{side} ({len(part)} fills)")
    right.set_xlabel("fill notional (account currency)")
    right.set_ylabel("fills")
    right.set_title(f"distribution of {len(f)} fills")
    right.legend()
    fig.suptitle(f"fills of {report.run_id}")
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


def shortfall_waterfall(sf) -> Figure:
    """Paper invested weight (Σ w) → minus each cause's weight gap → implemented (Σ ŵ), in % of portfolio value,
    summed over a history's dates (a run: its one decision); causes with no gap are left out."""
    by = sf.by_cause.dropna(subset=["weight_gap"])
    by = by.loc[by["weight_gap"].abs() > 0, "weight_gap"] * 100
    paper = float(sf.data.paper_weight.sum()) * 100
    fig = Figure(figsize=(9, 3.8), layout="constrained")
    ax = fig.add_subplot()
    level = paper
    bars = [(ax.bar(0, paper, color="tab:blue"), paper)]
    for i, (cause, gap) in enumerate(by.items(), start=1):
        bars.append((ax.bar(i, -gap, bottom=level, color="tab:red" if gap > 0 else "tab:green"), -gap))
        level -= gap
    implemented = float(sf.data.implemented_weight.sum()) * 100
    bars.append((ax.bar(len(by) + 1, implemented, color="tab:blue"), implemented))
    for container, value in bars:
        ax.bar_label(container, labels=[f"{value:,.3f}"], label_type="center", fontsize=8)
    ax.set_xticks(range(len(by) + 2), ["paper", *by.index, "implemented"], rotation=30, ha="right", fontsize=8)
    ax.set_ylabel("net weight (% of portfolio value)")
    from ..core.shortfall import COSTS

    ax.set_title(f"{sf.id}: paper → implemented by cause (costs {sf.by_cause.loc[list(COSTS), 'bps'].sum():,.2f} bps)")
    return fig


def shortfall_cumulative(sf, *, top: int = 6) -> Figure:
    """Cumulative shortfall (bps) of the ``top`` causes and costs over time, and the total."""
    cum = sf.cumulative
    if sf.data.named:
        cum = cum.groupby("date", sort=True).mean(numeric_only=True).reset_index()
    items = [c for c in sf.by_cause.index if c in cum]
    size = cum[items].abs().max().sort_values(ascending=False)
    fig = Figure(figsize=(10, 3.8), layout="constrained")
    ax = fig.add_subplot()
    for item in size.index[:top]:
        if size[item] > 0:
            ax.plot(cum["date"], cum[item], label=item, linewidth=1)
    ax.plot(cum["date"], cum["total_bps"], "k", label="total", linewidth=1.8)
    ax.axhline(0, color="gray", linewidth=0.6)
    ax.set_ylabel("cumulative shortfall (bps)")
    ax.set_title(f"{sf.id}: cumulative shortfall by cause (arithmetic sum of period contributions)")
    ax.legend(fontsize=8, ncols=2)
    return fig


def shortfall_values(sf) -> Figure:
    """The paper and implemented value curves (1 at the start, compounded) and what compounding adds (bps)."""
    cum = sf.cumulative
    if sf.data.named:
        cum = cum.groupby("date", sort=True).mean(numeric_only=True).reset_index()
    fig = Figure(figsize=(10, 3.8), layout="constrained")
    ax = fig.add_subplot()
    ax.plot(cum["date"], cum["paper_value"], label="paper")
    ax.plot(cum["date"], cum["implemented_value"], label="implemented")
    ax.set_ylabel("value (start = 1)")
    twin = ax.twinx()
    twin.plot(cum["date"], cum["compounding_bps"], color="gray", linewidth=0.8, label="compounding (bps)")
    twin.set_ylabel("compounding (bps)")
    ax.set_title(f"{sf.id}: paper vs implemented value")
    ax.legend(loc="upper left", fontsize=8)
    twin.legend(loc="upper right", fontsize=8)
    return fig
