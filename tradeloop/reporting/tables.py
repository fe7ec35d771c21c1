"""Review tables that stay readable at thousands of orders: each says how many rows it shows of how many.

:class:`Table` is a DataFrame with a caption (``"20 largest of 194; all in trade_orders"``); it displays as HTML
in Jupyter and as text elsewhere, and never collapses rows silently. The summaries aggregate by side and sector,
and :func:`risk_table` lists every blocked order with the rule, the observed value and the limit.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass

import pandas as pd

__all__ = ["Table", "risk_table", "side_summary", "sector_summary", "largest_orders", "largest_fills",
           "order_notional"]

_RULE = re.compile(r"^(?P<what>.+?) (?P<observed>-?[\d,.]+%?) exceeds (?P<rule>\w+) (?P<limit>-?[\d,.]+%?)$")
_SHORT = re.compile(r"^position would go short to (?P<observed>-?\d+) shares and allow_short is false$")
_CSS = ("<style>.tradeloop-table td,.tradeloop-table th{white-space:nowrap;padding:1px 6px;font-size:12px}"
        "</style>")


@dataclass(frozen=True, eq=False)
class Table:
    """A table and the sentence that says what part of what it shows (``frame`` holds the rows shown)."""

    caption: str
    frame: pd.DataFrame

    def __repr__(self) -> str:
        if not len(self.frame.columns):
            return self.caption
        body = self.frame.to_string(index=False, max_colwidth=80) if len(self.frame) else "(no rows)"
        return f"{self.caption}\n{body}"

    def _repr_html_(self) -> str:
        body = (self.frame.to_html(index=False, classes="tradeloop-table", border=0, na_rep="", float_format=_num)
                if len(self.frame) else "<p>(no rows)</p>" if len(self.frame.columns) else "")
        return f"{_CSS}<p><b>{html.escape(self.caption)}</b></p>{body}"


def _num(x: float) -> str:
    return f"{x:,.2f}" if abs(x) >= 1 else f"{x:.4g}"


def _split_reason(codes: str, reason: str) -> list[dict]:
    """One row per broken rule of a blocked order: ``rule, observed, limit`` parsed from the risk sentence."""
    rules = [c for c in str(codes).split(";") if c]
    sentences = [s for s in str(reason).split("; ") if s]
    rows = []
    for i, rule in enumerate(rules):
        text = sentences[i] if i < len(sentences) else ""
        m, s = _RULE.match(text), _SHORT.match(text)
        if m:
            rows.append({"rule": m["rule"], "observed": f"{m['what']} {m['observed']}", "limit": m["limit"]})
        elif s:
            rows.append({"rule": rule, "observed": f"position {s['observed']} shares", "limit": "allow_short false"})
        else:
            rows.append({"rule": rule, "observed": text or "-", "limit": "-"})
    return rows


def risk_table(report) -> Table:
    """Every blocked order of a run with each rule it broke: ``symbol, side, qty, rule, observed, limit, reason``
    (``reason`` the stored sentence)."""
    rows = []
    for b in report.risk.itertuples(index=False):
        for r in _split_reason(b.codes, b.reason):
            rows.append({"symbol": b.symbol, "side": b.side, "qty": int(b.qty), **r, "reason": b.reason})
    frame = pd.DataFrame(rows, columns=["symbol", "side", "qty", "rule", "observed", "limit", "reason"])
    o = report.risk_outcome
    checked = o.get("orders_checked", len(report.orders))
    if not len(frame):
        caption = (f"risk passed: {checked} orders checked, none blocked"
                   if o.get("passed", True) else "risk blocked the run but recorded no blocked order")
        frame = pd.DataFrame()
    else:
        by = ", ".join(f"{k} {v}" for k, v in (o.get("blocked_by_code") or {}).items() if v)
        caption = (f"risk BLOCKED the run: {len(report.risk)} of {checked} orders broke a limit ({by}); "
                   "nothing was submitted. Every blocked order, one row per rule:")
    return Table(caption, frame)


def decisions_table(report) -> Table:
    """Every risk decision of a run (skip, resize, reject, block), one sentence per order and rule."""
    d = report.decisions
    if not len(d):
        return Table("no risk decision: every order was sent as sized", pd.DataFrame())
    counts = ", ".join(f"{k} {v}" for k, v in d["action"].value_counts().sort_index().items())
    return Table(f"{len(d)} risk decision(s) ({counts}), one row per order and rule:",
                 d.loc[:, ["text", "rule", "action", "qty_before", "qty_after", "observed", "limit"]])


def order_notional(orders: pd.DataFrame) -> pd.Series:
    """``qty × price`` of each order (its reference price; 0 when it has none)."""
    return (orders["qty"] * orders["price"].fillna(0.0)).astype(float)


def side_summary(report) -> Table:
    """Orders, filled orders, quantity and notional per side (and the total)."""
    o = report.orders.assign(notional=order_notional(report.orders),
                             filled=report.orders["filled_qty"].gt(0),
                             rejected=report.orders["status"].eq("REJECTED"))
    f = report.fills.assign(abs_notional=report.fills["notional"].abs())
    g = o.groupby("side", sort=True).agg(orders=("symbol", "size"), filled_orders=("filled", "sum"),
                                         rejected=("rejected", "sum"), qty=("qty", "sum"),
                                         order_notional=("notional", "sum"))
    g["fill_notional"] = f.groupby("side")["abs_notional"].sum().reindex(g.index).fillna(0.0)
    g["commission"] = f.groupby("side")["commission"].sum().reindex(g.index).fillna(0.0)
    g.loc["total"] = g.sum(numeric_only=True)
    frame = g.reset_index().astype({c: "int64" for c in ("orders", "filled_orders", "rejected", "qty")})
    return Table(f"orders by side: {len(report.orders)} orders, {len(report.fills)} fills", frame)


def sector_summary(report) -> Table:
    """Per sector: orders, order notional bought/sold, filled notional, net weight before / after / target."""
    o = report.orders.assign(sector=report.orders["sector"].fillna("(none)"), notional=order_notional(report.orders))
    o["buy"] = o["notional"].where(o["side"].eq("BUY"), 0.0)
    o["sell"] = o["notional"].where(o["side"].eq("SELL"), 0.0)
    g = o.groupby("sector", sort=True).agg(orders=("symbol", "size"), buy_order_notional=("buy", "sum"),
                                           sell_order_notional=("sell", "sum"))
    s = report.sectors.set_index("sector")
    g["traded_notional"] = s["traded_notional"].reindex(g.index).fillna(0.0)
    w = report.weights.assign(sector=report.weights["sector"].fillna("(none)"))
    ww = w.groupby("sector")[["current_weight", "achieved_weight", "target_weight"]].sum()
    g = g.join(ww, how="outer").fillna(0.0)
    g["orders"] = g["orders"].astype("int64")
    return Table(f"by sector: {len(g)} sectors (weights are net, of the portfolio value)", g.reset_index())


def largest_orders(report, n: int = 20) -> Table:
    """The ``n`` largest orders by notional, with the sentence naming how many there are and where the rest are."""
    o = report.orders.assign(notional=order_notional(report.orders))
    top = o.sort_values(["notional", "symbol"], ascending=[False, True], kind="stable").head(n)
    cols = ["symbol", "side", "qty", "price", "notional", "sector", "status", "filled_qty", "avg_fill_price",
            "reject_reason", "client_order_id"]
    caption = (f"{len(top)} largest of {len(o)} orders by notional; all in trade_orders "
               f"(run_id = '{report.run_id}')" if len(o) > len(top) else f"all {len(o)} orders, largest first")
    return Table(caption, top.loc[:, cols].reset_index(drop=True))


def largest_fills(report, n: int = 20) -> Table:
    """The ``n`` largest fills by absolute notional."""
    f = report.fills
    top = f.reindex(f["notional"].abs().sort_values(ascending=False, kind="stable").index).head(n)
    caption = (f"{len(top)} largest of {len(f)} fills by notional; all in trade_fills "
               f"(run_id = '{report.run_id}')" if len(f) > len(top)
               else f"all {len(f)} fills" if len(f) else f"no fills (run {report.result.status})")
    return Table(caption, top.reset_index(drop=True) if len(f) else pd.DataFrame())
