"""The mock venue: fill a batch of orders in one step, vectorized, and record every state change as an event.

Used by :class:`tradeloop.execution.MockExecutionProvider` and by simulations. Rules:

* an order without a price is REJECTED with reason ``missing_price``;
* a NEW order is SUBMITTED, then fills its remaining quantity at the slippage model's price;
* a LIMIT order fills only when the reference price crosses its limit (BUY: price <= limit, SELL: price >= limit),
  and never at a worse price than the limit; otherwise it is CANCELED at the end of the step
  (reason ``unfilled_at_close``: the mock's time in force is one run);
* commissions come from the commission model, per fill.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .commission import CommissionModel, NoCommission
from .slippage import NoSlippage, SlippageModel
from .states import TERMINAL_ORDER_STATUSES

__all__ = ["fill_orders", "fill_prices", "average_fill_price", "FillResult", "FILL_COLUMNS", "EVENT_COLUMNS"]

#: Columns of ``FillResult.fills``.
FILL_COLUMNS = ("fill_id", "run_id", "client_order_id", "seq", "qty", "price", "commission")
#: Columns of ``FillResult.events``: one row per order state change, in the order they happened.
EVENT_COLUMNS = ("client_order_id", "run_id", "step", "from_status", "to_status", "qty", "price", "reason")


@dataclass(frozen=True)
class FillResult:
    """What one execution step did: updated orders, new fills and the order events in between."""

    orders: pd.DataFrame
    fills: pd.DataFrame
    events: pd.DataFrame


def fill_prices(slippage: SlippageModel, side: np.ndarray, price: np.ndarray, limit: np.ndarray,
                is_limit: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The fill-price kernel shared by :func:`fill_orders` and :func:`tradeloop.simulate.simulate`.

    Returns ``(fill_price, crosses)``: the slippage model's price, capped at the limit for LIMIT orders, and whether
    each order may fill at all (MARKET always; LIMIT when the reference price crosses its limit).
    """
    fill_px = slippage.fill_prices(side, price)
    if not np.any(is_limit):  # MARKET only: every order may fill at the model's price
        return fill_px, np.ones(len(fill_px), dtype=bool)
    with np.errstate(invalid="ignore"):
        buy = np.asarray(side) == "BUY"
        crosses = ~is_limit | np.where(buy, price <= limit, price >= limit)
        fill_px = np.where(is_limit, np.where(buy, np.minimum(fill_px, limit), np.maximum(fill_px, limit)), fill_px)
    return fill_px, crosses


def average_fill_price(prev_avg: np.ndarray, prev_filled: np.ndarray, fill_px: np.ndarray, fill_qty: np.ndarray):
    """Volume-weighted average after a fill, rounded to 6 decimals as stored on the order."""
    new_filled = prev_filled + fill_qty
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.round((np.nan_to_num(prev_avg) * prev_filled + fill_px * fill_qty) / new_filled, 6)


def fill_orders(
    orders: pd.DataFrame,
    *,
    slippage: SlippageModel = NoSlippage(),
    commission: CommissionModel = NoCommission(),
) -> FillResult:
    """Execute every non-terminal order once.

    Parameters
    ----------
    orders : DataFrame
        ``client_order_id``, ``run_id``, ``side``, ``qty``, ``price`` (NaN = missing), ``order_type``,
        ``limit_price``, and the order's current ``status``, ``filled_qty``, ``avg_fill_price`` and ``n_fills``
        (fills already recorded; defaults: NEW, 0, NaN, 0).

    Returns
    -------
    FillResult
        ``orders``: the input with ``status``, ``filled_qty``, ``avg_fill_price``, ``reject_reason`` updated
        (terminal orders untouched); ``fills``: :data:`FILL_COLUMNS` where ``fill_id`` is
        ``{client_order_id}-{seq}`` (so a repeated step cannot duplicate a fill); ``events``: :data:`EVENT_COLUMNS`.
    """
    out = orders.copy()
    n = len(out)
    for col, default in (("status", "NEW"), ("filled_qty", 0), ("avg_fill_price", np.nan), ("n_fills", 0),
                         ("reject_reason", None)):
        if col not in out:
            out[col] = default
    status = out["status"].to_numpy(dtype=object).copy()
    active = ~pd.Series(status).isin(TERMINAL_ORDER_STATUSES).to_numpy()
    side = out["side"].to_numpy(dtype=object)
    qty = out["qty"].to_numpy(dtype="int64")
    filled = out["filled_qty"].to_numpy(dtype="int64").copy()
    avg = out["avg_fill_price"].to_numpy(dtype="float64").copy()
    price = out["price"].to_numpy(dtype="float64")
    limit = out["limit_price"].to_numpy(dtype="float64")
    is_limit = out["order_type"].to_numpy(dtype=object) == "LIMIT"
    reason = out["reject_reason"].to_numpy(dtype=object).copy()
    coid = out["client_order_id"].to_numpy(dtype=object)
    run_id = out["run_id"].to_numpy(dtype=object)
    events: list[pd.DataFrame] = []

    def event(mask, step, frm, to, ev_qty, ev_price, ev_reason):
        if mask.any():
            events.append(pd.DataFrame({
                "client_order_id": coid[mask], "run_id": run_id[mask], "step": step,
                "from_status": frm[mask] if isinstance(frm, np.ndarray) else frm, "to_status": to,
                "qty": ev_qty[mask], "price": ev_price[mask], "reason": ev_reason,
            }))

    # 1. No price: rejected (a NEW order), or canceled (one already working).
    no_price = active & np.isnan(price)
    event(no_price & (status == "NEW"), 0, "NEW", "REJECTED", qty, price, "missing_price")
    event(no_price & (status != "NEW"), 0, status, "CANCELED", qty - filled, price, "missing_price")
    status[no_price] = np.where(status[no_price] == "NEW", "REJECTED", "CANCELED")
    reason[no_price] = "missing_price"
    working = active & ~no_price

    # 2. Submit NEW orders.
    new = working & (status == "NEW")
    event(new, 1, "NEW", "SUBMITTED", qty, price, None)
    status[new] = "SUBMITTED"

    # 3. Fill what crosses.
    fill_px, crosses = fill_prices(slippage, side, price, limit, is_limit)
    remaining = qty - filled
    fills_now = working & crosses & (remaining > 0)
    fill_qty = np.where(fills_now, remaining, 0)
    new_filled = filled + fill_qty
    with np.errstate(invalid="ignore", divide="ignore"):
        avg = np.where(fills_now, (np.nan_to_num(avg) * filled + fill_px * fill_qty) / new_filled, avg)
    done = fills_now & (new_filled >= qty)
    event(fills_now, 2, status, np.where(done, "FILLED", "PARTIAL"), fill_qty, fill_px, None)
    status[fills_now] = np.where(done[fills_now], "FILLED", "PARTIAL")
    filled = new_filled

    # 4. End of the step (time in force): what is still working is canceled.
    open_ = working & ~pd.Series(status).isin(TERMINAL_ORDER_STATUSES).to_numpy()
    event(open_, 3, status, "CANCELED", qty - filled, price, "unfilled_at_close")
    status[open_] = "CANCELED"
    reason[open_] = "unfilled_at_close"

    seq = out["n_fills"].to_numpy(dtype="int64") + 1
    fills = pd.DataFrame({
        "fill_id": pd.Series(coid[fills_now], dtype=object) + "-" + pd.Series(seq[fills_now]).astype(str),
        "run_id": run_id[fills_now],
        "client_order_id": coid[fills_now],
        "seq": seq[fills_now],
        "qty": fill_qty[fills_now],
        "price": fill_px[fills_now],
        "commission": commission.commissions(fill_qty[fills_now], fill_px[fills_now]),
    }).loc[:, list(FILL_COLUMNS)]
    out["status"] = status
    out["filled_qty"] = filled
    out["avg_fill_price"] = np.round(avg, 6)
    out["reject_reason"] = reason
    out["n_fills"] = out["n_fills"].to_numpy() + fills_now
    if events:
        ev = pd.concat(events, ignore_index=True)
        order_pos = pd.Series(np.arange(n), index=coid)
        ev = ev.assign(_pos=order_pos.loc[ev["client_order_id"]].to_numpy())
        ev = ev.sort_values(["_pos", "step"], kind="stable").drop(columns="_pos").reset_index(drop=True)
    else:
        ev = pd.DataFrame({c: pd.Series(dtype=object) for c in EVENT_COLUMNS})
    return FillResult(orders=out, fills=fills, events=ev.loc[:, list(EVENT_COLUMNS)])
