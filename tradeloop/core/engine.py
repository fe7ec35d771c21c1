"""The execution engine: one vectorized step that works a batch of orders, shared by the single run and the history.

:func:`execute_step` is the engine: arrays in (integer order status codes from :mod:`tradeloop.core.codes`,
quantities, prices, limits, per-step caps, the slippage and commission models), arrays out (the fill of each order,
its new status and reject reason, commission and cash flow; the state-change events only when asked). Rules, per
step:

* an order without a price is REJECTED with reason ``missing_price`` (one already working is CANCELED);
* a NEW order is SUBMITTED;
* a MARKET order fills at the slippage model's price; a LIMIT order fills only when the reference price crosses its
  limit (BUY: price <= limit, SELL: price >= limit), never at a worse price than the limit, else it stays SUBMITTED;
* the fill quantity is the remaining quantity, capped by the step's cap (from a liquidity model such as
  ``VolumeParticipation``; no caps = no limit): a capped order becomes PARTIAL and keeps working in the next step;
* commissions come from the commission model, per fill;
* at the close of the time in force (the last step), what is still working is CANCELED with reason
  ``unfilled_at_close`` (:func:`close_out`).

The single run reaches it through :func:`fill_orders` (one step) and :func:`work_orders` (``steps`` of them,
closing on the last): DataFrames with text statuses in, DataFrames and events out. The history
(:func:`tradeloop.workflows.history.simulate`) calls :func:`execute_step` on each date's arrays directly. The models
are arguments (any object with ``fill_prices(side, price)``, ``commissions(qty, price)``, ``step_caps(volume,
lot_size)``; see :mod:`tradeloop.venue`); ``None`` stands for the do-nothing model (reference price, no fee, no
cap), so this module imports nothing from the venue.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from . import codes

__all__ = ["execute_step", "close_out", "StepResult", "StepEvents", "status_codes", "fill_orders", "work_orders",
           "side_text", "average_fill_price", "FillResult", "FILL_COLUMNS", "EVENT_COLUMNS", "STATUS_NAMES",
           "REASON_NAMES", "NEW", "SUBMITTED", "PARTIAL", "FILLED", "CANCELED", "REJECTED", "MISSING_PRICE",
           "UNFILLED_AT_CLOSE", "NO_REASON"]

#: Order status names by integer code (the table in :mod:`tradeloop.core.codes`).
STATUS_NAMES = codes.names(codes.ORDER_STATUS)
#: Reject reason names by integer code.
REASON_NAMES = codes.names(codes.REJECT_REASON)
NEW, SUBMITTED, PARTIAL, FILLED, CANCELED, REJECTED = (
    np.int8(codes.code_of(codes.ORDER_STATUS, s)) for s in ("NEW", "SUBMITTED", "PARTIAL", "FILLED", "CANCELED",
                                                            "REJECTED"))
MISSING_PRICE, UNFILLED_AT_CLOSE = (np.int8(codes.code_of(codes.REJECT_REASON, r))
                                    for r in ("missing_price", "unfilled_at_close"))
#: Reason code of an order this step gave no (new) reject reason.
NO_REASON = np.int8(-1)
# The status codes are 0..n-1 with the terminal ones last, so "working" is one comparison, not a table lookup.
assert [c.code for c in codes.rows(codes.ORDER_STATUS)] == list(range(len(STATUS_NAMES)))
_FIRST_TERMINAL = np.int8(min(c.code for c in codes.rows(codes.ORDER_STATUS) if c.terminal))
assert all(c.terminal == (c.code >= _FIRST_TERMINAL) for c in codes.rows(codes.ORDER_STATUS))

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


@dataclass(frozen=True)
class StepEvents:
    """The state changes of one step, as arrays: one entry per change, grouped by order (``order`` = position in
    the step's input), in the order they happened. Status and reason are codes (reason -1: none)."""

    order: np.ndarray
    from_status: np.ndarray
    to_status: np.ndarray
    qty: np.ndarray
    price: np.ndarray
    reason: np.ndarray


@dataclass(frozen=True)
class StepResult:
    """What one :func:`execute_step` did to each order (arrays aligned with its input).

    ``status`` the status codes after the step; ``reason`` the reject reason code this step gave (-1: none, the
    order's earlier reason stands); ``fill_qty`` shares filled in this step (0: no fill); ``fill_price`` the price
    a fill gets (the slippage model's price, capped at the limit; meaningful where ``fill_qty > 0``);
    ``commission`` the fee of this step's fill (0 without one); ``filled`` shares filled after the step;
    ``avg_price`` the average fill price after the step, rounded to 6 decimals as stored (None when not asked);
    ``cash_flow`` +qty × price for a SELL fill, −qty × price for a BUY fill, minus its commission (0 without one);
    ``events`` a :class:`StepEvents` when asked, else None.
    """

    status: np.ndarray
    reason: np.ndarray
    fill_qty: np.ndarray
    fill_price: np.ndarray
    commission: np.ndarray
    filled: np.ndarray
    avg_price: np.ndarray | None
    cash_flow: np.ndarray
    events: StepEvents | None = None


_jx = None


def _kernels():
    """The compiled kernels (:mod:`tradeloop.core.jit.execution`), imported on first use: numba stays out of
    ``import tradeloop``."""
    global _jx
    if _jx is None:
        from .jit import execution

        _jx = execution
    return _jx


_EMPTY_BOOL, _EMPTY_FLOAT = np.zeros(0, dtype=np.bool_), np.zeros(0, dtype=np.float64)
_SIDES = np.array(["BUY", "SELL"])


def side_text(sell: np.ndarray) -> np.ndarray:
    """'BUY'/'SELL' per order, the ``side`` the models are given."""
    return _SIDES.take(np.asarray(sell, dtype=np.bool_).view(np.uint8))


def _vec(values, dtype, n: int) -> np.ndarray:
    """``values`` as a C-contiguous array of ``dtype`` and length ``n`` (a scalar is repeated); the kernels
    compile once per argument type, so every call passes the same."""
    a = np.asarray(values, dtype=dtype)
    if a.shape == (n,) and a.flags.c_contiguous and a.flags.writeable:
        return a
    return np.array(np.broadcast_to(a, (n,)), dtype=dtype)  # a copy: contiguous and writeable (one signature)


def average_fill_price(prev_avg, prev_filled, fill_px, fill_qty) -> np.ndarray:
    """Volume-weighted average after a fill, rounded to 6 decimals as stored on the order (arrays or scalars,
    broadcast against each other)."""
    shape = np.broadcast_shapes(*(np.shape(x) for x in (prev_avg, prev_filled, fill_px, fill_qty)))
    n = int(np.prod(shape))
    flat = [_vec(np.broadcast_to(x, shape).ravel(), t, n) for x, t in
            ((prev_avg, np.float64), (prev_filled, np.int64), (fill_px, np.float64), (fill_qty, np.int64))]
    return _kernels().average_prices(*flat).reshape(shape)


def close_out(status: np.ndarray, reason: np.ndarray, working: np.ndarray | None = None) -> np.ndarray:
    """Close of the time in force: CANCEL (``unfilled_at_close``) every order still working, in place.

    ``status`` and ``reason`` are int8 arrays (a :class:`StepResult`'s). ``working`` restricts it to the orders of
    this step (default: every non-terminal one). Returns the mask of the orders it canceled.
    """
    return _kernels().close_open(status, reason, _EMPTY_BOOL if working is None else _vec(working, np.bool_,
                                                                                          len(status)))


def execute_step(status: np.ndarray, qty: np.ndarray, filled: np.ndarray, price: np.ndarray, sell: np.ndarray, *,
                 limit: np.ndarray | None = None, is_limit: np.ndarray | None = None, caps: np.ndarray | None = None,
                 slippage=None, commission=None, avg_price: np.ndarray | None = None, close: bool = True,
                 side: np.ndarray | None = None, events: bool = False,
                 books: np.ndarray | None = None) -> StepResult:
    """One execution step over arrays: the rules in the module docstring, compiled
    (:mod:`tradeloop.core.jit.execution`), no loop over orders in Python.

    The slippage model prices every order, then one kernel does the statuses, fill quantities, averages and
    events, the commission model prices the fills it lists, and a second kernel puts the fees into the cash flows.

    Parameters
    ----------
    status : int array
        Order status codes (:data:`STATUS_NAMES`); terminal orders are left untouched.
    qty, filled : int64 arrays
        Order quantity (positive) and shares filled so far.
    price : float array
        Reference price (NaN: missing).
    sell : bool array
        True for SELL orders (it also decides which way a LIMIT order's limit binds).
    limit, is_limit : arrays, optional
        Limit price, and True for LIMIT orders (default: every order is MARKET).
    caps : float array, optional
        Most shares each order may fill in this step (NaN: none may; default: no limit).
    slippage, commission
        Models with ``fill_prices(side, price)`` and ``commissions(qty, price)``; None: none.
    avg_price : float array, optional
        Average fill price so far (NaN: none); when given, the result carries the new average.
    close : bool
        This step ends the time in force: what is still working afterwards is CANCELED.
    side : array, optional
        'BUY'/'SELL' text for the slippage model (default: built from ``sell`` when there is a model).
    events : bool
        Also return the state changes (:class:`StepEvents`).
    books : int array, optional
        The book of each order when the models are per book (:class:`tradeloop.workflows.sweep_kernel.PerBook`):
        they are then called with the books of the rows as a third argument.
    """
    jx = _kernels()
    n = len(qty)
    status = np.array(status, dtype=np.int8)  # a copy: the caller's array stays as it was
    qty, filled = _vec(qty, np.int64, n), _vec(filled, np.int64, n)
    price, sell = _vec(price, np.float64, n), _vec(sell, np.bool_, n)
    if slippage is None:
        model_px = price
    else:
        side = side_text(sell) if side is None else side
        model_px = _vec(slippage.fill_prices(side, price) if books is None else
                        slippage.fill_prices(side, price, books), np.float64, n)
    if is_limit is None:
        limit, is_limit = _EMPTY_FLOAT, _EMPTY_BOOL
    else:
        limit, is_limit = _vec(limit, np.float64, n), _vec(is_limit, np.bool_, n)
    args = (status, qty, filled, price, sell, limit, is_limit, _EMPTY_FLOAT if caps is None else
            _vec(caps, np.float64, n), model_px, _EMPTY_FLOAT if avg_price is None else
            _vec(avg_price, np.float64, n), bool(close))
    if events:
        reason, ints, floats, k, changes = jx.step_logged(*args)
    else:
        reason, ints, floats, k = jx.step(*args)
    fill_qty, new_filled, now, q = ints
    fill_px, flow, avg, px = floats
    fee = np.zeros(n)
    if k and commission is not None:
        now, q, px = now[:k], q[:k], px[:k]
        fees = commission.commissions(q, px) if books is None else commission.commissions(q, px, books[now])
        jx.settle(now, _vec(fees, np.float64, k), fee, flow)
    return StepResult(status=status, reason=reason, fill_qty=fill_qty, fill_price=fill_px, commission=fee,
                      filled=new_filled, avg_price=None if avg_price is None else avg,
                      cash_flow=flow, events=StepEvents(*changes) if events else None)


def status_codes(status) -> np.ndarray:
    """Order status names -> int8 codes; ValueError naming the first unknown status."""
    found = pd.Index(STATUS_NAMES).get_indexer(np.asarray(status, dtype=object))
    if (found < 0).any():
        bad = np.asarray(status, dtype=object)[found < 0][0]
        raise ValueError(f"order status {bad!r} is not one of {list(STATUS_NAMES)}")
    return found.astype(np.int8)


_STATUS_TEXT = np.array(STATUS_NAMES, dtype=object)
_REASON_TEXT = np.array(REASON_NAMES + (None,), dtype=object)  # code -1 (none) reads the last entry


def _empty(columns) -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=object) for c in columns})


def _event_frame(ev: StepEvents, coid: np.ndarray, run_id: np.ndarray, step: int) -> pd.DataFrame:
    if not len(ev.order):
        return _empty(EVENT_COLUMNS)
    reason = _REASON_TEXT[ev.reason]
    if (ev.reason < 0).any():  # keep None as None (a text column would read it as NaN)
        reason = pd.Series(reason, dtype=object)
    return pd.DataFrame({
        "client_order_id": coid[ev.order], "run_id": run_id[ev.order], "step": np.full(len(ev.order), step),
        "from_status": _STATUS_TEXT[ev.from_status], "to_status": _STATUS_TEXT[ev.to_status], "qty": ev.qty,
        "price": ev.price, "reason": reason,
    })


def fill_orders(
    orders: pd.DataFrame,
    *,
    slippage=None,
    commission=None,
    liquidity=None,
    step: int = 1,
    close: bool = True,
) -> FillResult:
    """Execute every non-terminal order for one step: :func:`execute_step` on the columns of a DataFrame.

    Parameters
    ----------
    orders : DataFrame
        ``client_order_id``, ``run_id``, ``side``, ``qty``, ``price`` (NaN = missing), ``order_type``,
        ``limit_price``; optionally ``volume`` (per step, NaN = unknown) and ``lot_size`` (default 1) for the
        liquidity model, and the order's current ``status``, ``filled_qty``, ``avg_fill_price``, ``n_fills``
        (fills already recorded) and ``reject_reason`` (defaults: NEW, 0, NaN, 0, None).
    slippage, commission, liquidity
        The fill price, fee and per-step quantity models (:mod:`tradeloop.venue`); None: ``NoSlippage``,
        ``NoCommission``, ``NoLiquidityLimit``.
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
    side = out["side"].to_numpy(dtype=object)
    caps = None
    if liquidity is not None:
        volume = out["volume"].to_numpy(dtype="float64") if "volume" in out else np.full(n, np.nan)
        lot = out["lot_size"].to_numpy(dtype="int64") if "lot_size" in out else np.ones(n, dtype="int64")
        caps = liquidity.step_caps(volume, lot)
    r = execute_step(
        status_codes(out["status"].to_numpy(dtype=object)), out["qty"].to_numpy(dtype="int64"),
        out["filled_qty"].to_numpy(dtype="int64"), out["price"].to_numpy(dtype="float64"), side == "SELL",
        limit=out["limit_price"].to_numpy(dtype="float64"),
        is_limit=out["order_type"].to_numpy(dtype=object) == "LIMIT", caps=caps, slippage=slippage,
        commission=commission, avg_price=out["avg_fill_price"].to_numpy(dtype="float64"), close=close, side=side,
        events=True)
    coid = out["client_order_id"].to_numpy(dtype=object)
    run_id = out["run_id"].to_numpy(dtype=object)
    reason = out["reject_reason"].to_numpy(dtype=object).copy()
    given = r.reason >= 0
    reason[given] = _REASON_TEXT[r.reason[given]]
    fills_now = r.fill_qty > 0
    seq = out["n_fills"].to_numpy(dtype="int64") + 1
    fills = pd.DataFrame({
        "fill_id": pd.Series(coid[fills_now], dtype=object) + "-" + pd.Series(seq[fills_now]).astype(str),
        "run_id": run_id[fills_now],
        "client_order_id": coid[fills_now],
        "seq": seq[fills_now],
        "qty": r.fill_qty[fills_now],
        "price": r.fill_price[fills_now],
        "commission": r.commission[fills_now],
    }).loc[:, list(FILL_COLUMNS)]
    out["status"] = _STATUS_TEXT[r.status]
    out["filled_qty"] = r.filled
    out["avg_fill_price"] = np.round(r.avg_price, 6)
    out["reject_reason"] = pd.Series(reason, index=out.index, dtype=object)
    out["n_fills"] = out["n_fills"].to_numpy(dtype="int64") + fills_now
    return FillResult(orders=out, fills=fills, events=_event_frame(r.events, coid, run_id, step))


def work_orders(
    orders: pd.DataFrame,
    *,
    steps: int = 1,
    slippage=None,
    commission=None,
    liquidity=None,
) -> FillResult:
    """Work orders over ``steps`` execution steps (the run's time in force), closing after the last one.

    Every step is :func:`fill_orders` on the orders the previous step left working; a PARTIAL order is carried to
    the next step, and whatever is still open after step ``steps`` is CANCELED with ``unfilled_at_close``. Prices
    and volumes are those of the frozen snapshot, so each step trades against the same quote and volume. Stops
    early once every order is terminal. The loop runs over steps, never over orders. Models as in
    :func:`fill_orders`.

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
        if (status_codes(current["status"].to_numpy(dtype=object)) >= _FIRST_TERMINAL).all():
            break
    fill_frame = pd.concat(fills, ignore_index=True) if any(len(f) for f in fills) else fills[0]
    ev = pd.concat([e for e in events if len(e)], ignore_index=True) if any(len(e) for e in events) else events[0]
    if len(ev) and len(events) > 1:  # one step's events are already grouped by order, in input order
        order_pos = pd.Series(np.arange(len(current)), index=current["client_order_id"].to_numpy())
        ev = (ev.assign(_pos=order_pos.loc[ev["client_order_id"]].to_numpy())
                .sort_values(["_pos", "step"], kind="stable").drop(columns="_pos").reset_index(drop=True))
    return FillResult(orders=current, fills=fill_frame.reset_index(drop=True), events=ev)
