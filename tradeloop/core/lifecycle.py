"""Order lifecycles: replay stored ``order_events`` into each order's status and render its path.

Every order state change is an event (client_order_id, seq, from_status, to_status, qty, price, reason, step), so
the events alone must lead each order from NEW to its stored status through legal transitions only. Pure functions
over the events table (e.g. ``store.order_events(run_id)``); used by ``tradeloop show`` and the review notebook.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..errors import IllegalTransition
from .fsm import check_order_transitions

__all__ = ["replay_order_events", "lifecycle_paths", "FILL_STATUSES"]

#: Event target statuses whose ``qty`` is a fill quantity.
FILL_STATUSES = ("PARTIAL", "FILLED")


def _sorted(events: pd.DataFrame) -> pd.DataFrame:
    return events.sort_values(["client_order_id", "seq"], kind="stable").reset_index(drop=True)


def replay_order_events(events: pd.DataFrame) -> pd.DataFrame:
    """Replay every order's events from NEW, checking each one against the order state machine.

    Parameters
    ----------
    events : DataFrame
        ``client_order_id``, ``seq``, ``from_status``, ``to_status``, ``qty`` (as stored in ``order_events``).

    Returns
    -------
    DataFrame
        One row per order, sorted by ``client_order_id``: ``status`` (the status the events lead to),
        ``filled_qty`` (sum of the PARTIAL/FILLED events' quantities), ``n_events``.

    Raises
    ------
    IllegalTransition
        An order whose first event does not start at NEW, whose events skip a status (one event's ``from_status``
        is not the previous event's ``to_status``), or that makes a transition the state machine forbids.
    """
    ev = _sorted(events)
    if ev.empty:
        return pd.DataFrame({"client_order_id": pd.Series(dtype=object), "status": pd.Series(dtype=object),
                             "filled_qty": pd.Series(dtype="int64"), "n_events": pd.Series(dtype="int64")})
    coid = ev["client_order_id"]
    first = (coid != coid.shift()).to_numpy()
    bad_start = first & (ev["from_status"] != "NEW").to_numpy()
    if bad_start.any():
        row = ev.loc[bad_start].iloc[0]
        raise IllegalTransition(f"order {row.client_order_id!r}: its first event (seq {row.seq}) starts at "
                                f"{row.from_status!r}, not 'NEW'")
    prev_to = ev["to_status"].shift()
    gap = ~first & (ev["from_status"] != prev_to).to_numpy()
    if gap.any():
        i = int(np.flatnonzero(gap)[0])
        row = ev.iloc[i]
        raise IllegalTransition(f"order {row.client_order_id!r}: event seq {row.seq} starts at {row.from_status!r} "
                                f"but the previous event ended at {prev_to.iloc[i]!r}")
    check_order_transitions(coid, ev["from_status"], ev["to_status"])
    # PARTIAL -> PARTIAL is a legal self-transition that check_order_transitions skips as "no change"; fine.
    fill_qty = np.where(ev["to_status"].isin(FILL_STATUSES).to_numpy(), ev["qty"].fillna(0).to_numpy(), 0)
    grouped = ev.assign(_fill=fill_qty.astype("int64")).groupby("client_order_id", sort=True)
    return pd.DataFrame({
        "status": grouped["to_status"].last(),
        "filled_qty": grouped["_fill"].sum().astype("int64"),
        "n_events": grouped.size().astype("int64"),
    }).reset_index()


def lifecycle_paths(events: pd.DataFrame) -> pd.DataFrame:
    """One readable line per order: ``NEW > SUBMITTED > PARTIAL 200 @ 10.05 > CANCELED 300 (unfilled_at_close)``.

    Returns
    -------
    DataFrame
        ``client_order_id``, ``status`` (last event's), ``path``, sorted by ``client_order_id``.
    """
    ev = _sorted(events)
    if ev.empty:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in ("client_order_id", "status", "path")})
    to = ev["to_status"].astype(str)
    is_fill = ev["to_status"].isin(FILL_STATUSES)
    qty = ev["qty"].astype("Int64").astype(str)
    price = ev["price"].map(lambda p: "" if pd.isna(p) else f" @ {p:.10g}")
    label = to.where(~is_fill, to + " " + qty + price)
    label = label.where(~ev["to_status"].eq("CANCELED"), to + " " + qty)
    label = label + ev["reason"].map(lambda r: f" ({r})" if isinstance(r, str) and r else "")
    first = ev["client_order_id"] != ev["client_order_id"].shift()
    text = ("NEW > " + label).where(first, label)
    grouped = pd.DataFrame({"client_order_id": ev["client_order_id"], "status": to, "t": text}).groupby(
        "client_order_id", sort=True)
    return pd.DataFrame({"status": grouped["status"].last(), "path": grouped["t"].agg(" > ".join)}).reset_index()
