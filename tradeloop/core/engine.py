"""The mock venue: work a batch of orders over one or more execution steps, vectorized, and record every state
change as an event.

Used by :class:`tradeloop.venue.providers.MockExecutionProvider` and by simulations. Rules, per step:

* an order without a price is REJECTED with reason ``missing_price`` (one already working is CANCELED);
* a NEW order is SUBMITTED;
* a MARKET order fills at the slippage model's price; a LIMIT order fills only when the reference price crosses its
  limit (BUY: price <= limit, SELL: price >= limit), never at a worse price than the limit, else it stays SUBMITTED;
* the fill quantity is the remaining quantity, capped by the liquidity model (e.g. ``VolumeParticipation``): a
  capped order becomes PARTIAL and keeps working in the next step;
* commissions come from the commission model, per fill;
* at the close of the time in force (the last step of the run), what is still working is CANCELED with reason
  ``unfilled_at_close``.

:func:`fill_orders` is one step; :func:`work_orders` runs ``steps`` of them, closing on the last. Both are pure:
DataFrames in, DataFrames out, no loop per order.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..venue.commission import CommissionModel, NoCommission
from ..venue.liquidity import LiquidityModel, NoLiquidityLimit
from ..venue.slippage import NoSlippage, SlippageModel
from .fsm import TERMINAL_ORDER_STATUSES

__all__ = ["fill_orders", "work_orders", "fill_prices", "average_fill_price", "FillResult", "FILL_COLUMNS",
           "EVENT_COLUMNS"]

#: Columns of ``FillResult.fills``.
FILL_COLUMNS = ("fill_id", "run_id", "client_order_id", "seq", "qty", "price", "commission")
#: Columns of ``FillResult.events``: one row per order state change, in the order they happened for each order.
EVENT_COLUMNS = ("client_order_id", "run_id", "step", "from_status", "to_status", "qty", "price", "reason")


@dataclass(frozen=True)
class FillResult:
    """What execution did: updated orders, new fills and the order events in between."""

    orders: pd.DataFrame
    fills: pd.DataFrame
    events: pd.DataFrame


def _empty(columns) -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=object) for c in columns})


def fill_prices(slippage: SlippageModel, side: np.ndarray, price: np.ndarray, limit: np.ndarray,
                is_limit: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The fill-price kernel shared by :func:`fill_orders` and :func:`tradeloop.workflows.history.simulate`.

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
    liquidity: LiquidityModel = NoLiquidityLimit(),
    step: int = 1,
    close: bool = True,
) -> FillResult:
    """Execute every non-terminal order for one step.

    Parameters
    ----------
    orders : DataFrame
        ``client_order_id``, ``run_id``, ``side``, ``qty``, ``price`` (NaN = missing), ``order_type``,
        ``limit_price``; optionally ``volume`` (per step, NaN = unknown) and ``lot_size`` (default 1) for the
        liquidity model, and the order's current ``status``, ``filled_qty``, ``avg_fill_price``, ``n_fills``
        (fills already recorded) and ``reject_reason`` (defaults: NEW, 0, NaN, 0, None).
    slippage, commission, liquidity
        The fill price, fee and per-step quantity models.
    step : int
        Number of this step within the run, written to the events' ``step`` column.
    close : bool
        True when this step ends the time in force: orders still working afterwards are CANCELED
        (``unfilled_at_close``). False leaves them SUBMITTED/PARTIAL for the next step.

    Returns
    -------
    FillResult
        ``orders``: the input with ``status``, ``filled_qty``, ``avg_fill_price``, ``reject_reason`` and
        ``n_fills`` updated (terminal orders untouched); ``fills``: :data:`FILL_COLUMNS` where ``seq`` counts the
        order's fills and ``fill_id`` is ``{client_order_id}-{seq}`` (so a repeated step cannot duplicate a fill);
        ``events``: :data:`EVENT_COLUMNS`, ``qty`` being the order quantity (SUBMITTED, REJECTED), the fill
        quantity (PARTIAL, FILLED) or the unfilled rest (CANCELED).

    Examples
    --------
    >>> o = pd.DataFrame({"client_order_id": ["A-B-1"], "run_id": "r", "side": "BUY", "qty": [500],
    ...                   "price": [10.0], "order_type": "MARKET", "limit_price": [np.nan], "volume": [2000.0]})
    >>> from tradeloop.venue.liquidity import VolumeParticipation
    >>> r = fill_orders(o, liquidity=VolumeParticipation(0.1), close=False)
    >>> r.orders[["status", "filled_qty"]].values.tolist()
    [['PARTIAL', 200]]
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
    volume = out["volume"].to_numpy(dtype="float64") if "volume" in out else np.full(n, np.nan)
    lot = out["lot_size"].to_numpy(dtype="int64") if "lot_size" in out else np.ones(n, dtype="int64")
    is_limit = out["order_type"].to_numpy(dtype=object) == "LIMIT"
    reason = out["reject_reason"].to_numpy(dtype=object).copy()
    coid = out["client_order_id"].to_numpy(dtype=object)
    run_id = out["run_id"].to_numpy(dtype=object)
    events: list[pd.DataFrame] = []

    def event(mask, phase, frm, to, ev_qty, ev_price, ev_reason):
        """Record one state change for the orders in ``mask``; array arguments are per order."""
        if mask.any():
            pick = lambda v: v[mask] if isinstance(v, np.ndarray) else v  # noqa: E731
            events.append(pd.DataFrame({
                "_pos": np.flatnonzero(mask), "client_order_id": coid[mask], "run_id": run_id[mask], "step": step,
                "_phase": phase,
                "from_status": pick(frm), "to_status": pick(to), "qty": ev_qty[mask], "price": ev_price[mask],
                "reason": ev_reason,
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

    # 3. Fill what crosses, up to the liquidity cap.
    fill_px, crosses = fill_prices(slippage, side, price, limit, is_limit)
    remaining = qty - filled
    cap = np.asarray(liquidity.step_caps(volume, lot), dtype="float64")
    cap = np.where(np.isnan(cap), 0.0, cap)  # a model that cannot say how much may fill lets nothing fill
    fill_qty = np.where(working & crosses, np.minimum(remaining, np.clip(cap, 0, None)), 0).astype("int64")
    fills_now = fill_qty > 0
    new_filled = filled + fill_qty
    with np.errstate(invalid="ignore", divide="ignore"):
        avg = np.where(fills_now, (np.nan_to_num(avg) * filled + fill_px * fill_qty) / new_filled, avg)
    done = fills_now & (new_filled >= qty)
    event(fills_now, 2, status, np.where(done, "FILLED", "PARTIAL"), fill_qty, fill_px, None)
    status[fills_now] = np.where(done[fills_now], "FILLED", "PARTIAL")
    filled = new_filled

    # 4. Close of the time in force: what is still working is canceled.
    if close:
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
    out["reject_reason"] = pd.Series(reason, index=out.index, dtype=object)
    out["n_fills"] = out["n_fills"].to_numpy(dtype="int64") + fills_now
    if events:
        ev = pd.concat(events, ignore_index=True)  # _pos: each event's order, by position (no id lookup)
        ev = ev.sort_values(["_pos", "_phase"], kind="stable").reset_index(drop=True)
        ev = ev.loc[:, list(EVENT_COLUMNS)]
    else:
        ev = _empty(EVENT_COLUMNS)
    return FillResult(orders=out, fills=fills, events=ev)


def work_orders(
    orders: pd.DataFrame,
    *,
    steps: int = 1,
    slippage: SlippageModel = NoSlippage(),
    commission: CommissionModel = NoCommission(),
    liquidity: LiquidityModel = NoLiquidityLimit(),
) -> FillResult:
    """Work orders over ``steps`` execution steps (the run's time in force), closing after the last one.

    Every step is :func:`fill_orders` on the orders the previous step left working; a PARTIAL order is carried to
    the next step, and whatever is still open after step ``steps`` is CANCELED with ``unfilled_at_close``. Prices
    and volumes are those of the frozen snapshot, so each step trades against the same quote and volume. Stops
    early once every order is terminal. The loop runs over steps, never over orders.

    Returns
    -------
    FillResult
        Final ``orders``; ``fills`` of every step (``seq`` 1, 2, … per order); ``events`` of every step, grouped by
        order in input order and chronological within each order (``step`` says which step).
    """
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 1:
        raise ValueError(f"steps is {steps!r}; it must be a whole number >= 1")
    current = orders
    fills: list[pd.DataFrame] = []
    events: list[pd.DataFrame] = []
    for k in range(1, int(steps) + 1):
        result = fill_orders(current, slippage=slippage, commission=commission, liquidity=liquidity, step=k,
                             close=k == steps)
        current = result.orders
        fills.append(result.fills)
        events.append(result.events)
        if current["status"].isin(TERMINAL_ORDER_STATUSES).all():
            break
    fill_frame = pd.concat(fills, ignore_index=True) if any(len(f) for f in fills) else fills[0]
    ev = pd.concat([e for e in events if len(e)], ignore_index=True) if any(len(e) for e in events) else events[0]
    if len(ev) and len(events) > 1:  # one step's events are already grouped by order, in input order
        order_pos = pd.Series(np.arange(len(current)), index=current["client_order_id"].to_numpy())
        ev = (ev.assign(_pos=order_pos.loc[ev["client_order_id"]].to_numpy())
                .sort_values(["_pos", "step"], kind="stable").drop(columns="_pos").reset_index(drop=True))
    return FillResult(orders=current, fills=fill_frame.reset_index(drop=True), events=ev)
