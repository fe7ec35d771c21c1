"""OrderBuilder: target weights -> lot-rounded, cash-trimmed orders, vectorized over whole tables.

Rules (the design's section 4.1):

* ``target_notional = weight × portfolio_value``
* ``target_qty = sign(weight) × floor(|target_notional| / price / lot_size) × lot_size`` (rounded toward zero,
  so a short target never overshoots either)
* order ``qty = |target_qty − current_qty|``, ``side`` BUY when positive, SELL when negative; no order for 0.
* Sells free cash. If buys cost more than ``cash + sell proceeds − cash_buffer × portfolio_value``, every buy in
  that group is scaled by the same factor and floored to its lot size, so the trimmed buys always fit.

Comparisons follow :mod:`tradeloop.core.tolerance`: buys within 1e-9 relative of the cash available are "at the
limit" and are not trimmed (``0.3`` of value at price ``0.1`` with cash ``0.3`` buys 3, although ``3 × 0.1`` is
``0.30000000000000004``), a trimmed buy may reach the cash within the same tolerance, and lot rounding adds 1e-9 of
a lot before flooring.

Tables are numpy/pandas over all their rows; the arithmetic of sizing is one compiled kernel
(:mod:`tradeloop.core.jit.sizing`). Extra group columns (``date``, ``portfolio``, …) are built in one call, each
group with its own portfolio value and cash.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np
import pandas as pd

from ..errors import ValidationError
from .validate import check_quantities

__all__ = [
    "build_book", "build_orders", "client_order_ids", "order_keys", "combine_keys", "format_client_order_ids",
    "size_orders", "limit_prices", "hash_strings", "ORDER_COLUMNS", "BOOK_COLUMNS",
]

#: Columns of the frame :func:`build_orders` returns (after any group columns).
ORDER_COLUMNS = (
    "client_order_id", "run_id", "symbol", "side", "qty", "order_type", "limit_price", "price", "price_source",
    "sector", "lot_size", "target_weight", "current_qty", "target_qty", "untrimmed_qty",
)
#: Columns of the frame :func:`build_book` returns (after any group columns).
BOOK_COLUMNS = (
    "symbol", "side", "qty", "price", "price_source", "sector", "lot_size", "target_weight", "current_qty",
    "target_qty", "untrimmed_qty", "portfolio_value", "cash", "missing_price",
)

_ALPHABET = np.frombuffer(b"0123456789abcdefghjkmnpqrstvwxyz", dtype=np.uint8)  # Crockford base32, lower case
_SHIFTS = np.arange(60, -1, -5, dtype=np.uint64)  # 13 base32 digits cover 64 bits


def hash_strings(values) -> np.ndarray:
    """64-bit hash of each value's text: sha256 of the distinct values only, then gathered (no loop per row)."""
    # Factorizing the object array itself keeps the distinct values as Python strings (a Series would first convert
    # them to Arrow strings, whose element-wise iteration is slow); the first 8 digest bytes read little-endian.
    codes, uniques = pd.factorize(np.asarray(values, dtype=object).ravel(), sort=False)
    digests = b"".join([hashlib.sha256(str(u).encode()).digest()[:8] for u in uniques])
    hashed = np.frombuffer(digests, dtype="<u8").astype(np.uint64)
    return hashed[codes]


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64 finalizer: a bijective scramble, so combining hashes does not cancel structure."""
    x = np.array(x, dtype=np.uint64)  # a copy: the steps below work in place
    t = np.empty_like(x)
    with np.errstate(over="ignore"):
        for shift, mult in ((30, 0xBF58476D1CE4E5B9), (27, 0x94D049BB133111EB)):
            np.right_shift(x, np.uint64(shift), out=t)
            np.bitwise_xor(x, t, out=x)
            np.multiply(x, np.uint64(mult), out=x)
        np.right_shift(x, np.uint64(31), out=t)
        np.bitwise_xor(x, t, out=x)
    return x


def _common_length(*args) -> int:
    """Length of the array arguments (scalars broadcast); 1 when all are scalars, 0 for empty arrays."""
    lengths = [len(a) for a in args if np.ndim(a) > 0]
    return max(lengths) if lengths else 1


def order_keys(run_id, symbol, side, model_version) -> np.ndarray:
    """The 64-bit hash behind :func:`client_order_ids`, as ``uint64`` (cheap to keep for millions of orders)."""
    n = _common_length(run_id, symbol, side, model_version)
    parts = [np.broadcast_to(np.asarray(a, dtype=object), (n,)) for a in (run_id, symbol, side, model_version)]
    return combine_keys(*(hash_strings(part) for part in parts))


def combine_keys(*hashes: np.ndarray) -> np.ndarray:
    """Fold per-part 64-bit hashes (already gathered per row) into one key per row, exactly as
    :func:`client_order_ids` does, so callers that hash each distinct value once get the same ids."""
    h = np.zeros(np.broadcast_shapes(*(np.shape(x) for x in hashes)), dtype=np.uint64)
    for part in hashes:
        h = _mix(h ^ part)
    return h


def format_client_order_ids(symbol, side, keys: np.ndarray) -> np.ndarray:
    """``{symbol}-{B|S}-{13 base32 digits of key}`` as an object array (see :func:`client_order_ids`)."""
    keys = np.asarray(keys, dtype=np.uint64)
    n = len(keys)
    digits = ((keys[:, None] >> _SHIFTS[None, :]) & np.uint64(31)).astype(np.intp)
    tail = np.ascontiguousarray(_ALPHABET[digits]).view("S13").ravel().astype(str).astype(object)
    side_letter = pd.Series(np.broadcast_to(np.asarray(side, dtype=object), (n,))).str[0].to_numpy(dtype=object)
    symbol = np.broadcast_to(np.asarray(symbol, dtype=object), (n,))
    return (pd.Series(symbol, dtype=object) + "-" + side_letter + "-" + tail).to_numpy(dtype=object)


def client_order_ids(run_id, symbol, side, model_version) -> np.ndarray:
    """The idempotency key of an order: a deterministic function of (run_id, symbol, side, model_version).

    Format ``{symbol}-{B|S}-{13 base32 digits}``, e.g. ``AAPL-B-4k2x9q0m7c1vd``: readable where it matters and
    safe to print, use in file names and paste in a shell. The digits are a 64-bit hash built from sha256 of each
    distinct input value, combined with the splitmix64 mixer, so the id never depends on a library's hash seed.
    Each argument may be a scalar or an array; arrays must have equal length.
    """
    n = _common_length(run_id, symbol, side, model_version)
    return format_client_order_ids(
        np.broadcast_to(np.asarray(symbol, dtype=object), (n,)),
        np.broadcast_to(np.asarray(side, dtype=object), (n,)),
        order_keys(run_id, symbol, side, model_version),
    )


def _group_codes(df: pd.DataFrame, group_by: Sequence[str]) -> tuple[np.ndarray, int]:
    if not group_by:
        return np.zeros(len(df), dtype=np.intp), 1
    codes = df.groupby(list(group_by), sort=False, dropna=False).ngroup().to_numpy(dtype=np.intp)
    return codes, int(codes.max()) + 1 if len(codes) else 0


def _per_group_value(df: pd.DataFrame, column: str, scalar, codes: np.ndarray, ngroups: int, what: str):
    """A per-row array and the per-group array of a per-group constant, from a column of ``df`` or a scalar."""
    if column in df:
        values = df[column].to_numpy(dtype="float64")
        first = np.full(ngroups, np.nan)
        first[codes[::-1]] = values[::-1]
        if not np.array_equal(first[codes], values, equal_nan=True):
            raise ValidationError(f"{what}: column {column!r} must be constant within each group")
        return values, first
    if scalar is None:
        return None, None
    return np.full(len(df), float(scalar)), np.full(ngroups, float(scalar))


def size_orders(
    weight: np.ndarray,
    price: np.ndarray,
    lot: np.ndarray,
    current: np.ndarray,
    codes: np.ndarray,
    group_pv: np.ndarray,
    group_cash: np.ndarray | None,
    cash_buffer: float | np.ndarray,
    label=None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The order-sizing step shared by :func:`build_book` and :func:`tradeloop.workflows.history.simulate`.

    Aligned rows: ``weight``, ``price`` (NaN = unknown), ``lot`` and ``current`` (int64) per row, ``codes`` the
    row's group (0..ngroups-1), ``group_pv`` / ``group_cash`` per group (``group_cash`` None: the group's value minus
    its holdings), ``cash_buffer`` one fraction or one per group. Applies the module's rules: lot rounding toward
    zero (with the 1e-9 epsilon), sells first, then buys trimmed pro rata with a floor so they fit the cash after the
    buffer (both within :data:`~tradeloop.core.tolerance.LIMIT_RTOL`). The arithmetic is the compiled kernel
    :func:`tradeloop.core.jit.sizing.size_book`; this function coerces the inputs and names the errors.

    A target quantity that is not exact (not finite, or beyond 2**53 shares: a tiny price, a huge portfolio value or
    lot size) and cash that overflows are refused with a :class:`ValidationError`; ``label(i)`` names row ``i`` in
    it (default ``row i``).

    Returns ``(delta, untrimmed, group_cash, missing_price)``: the signed int64 trade per row after trimming, its
    size before trimming, the cash each group started with, and the rows without a price.
    """
    jit = _JIT or _load_kernel()
    weight = np.ascontiguousarray(weight, dtype=np.float64)
    price, lot = np.ascontiguousarray(price, dtype=np.float64), np.ascontiguousarray(lot, dtype=np.int64)
    current, codes = np.ascontiguousarray(current, dtype=np.int64), np.ascontiguousarray(codes, dtype=np.intp)
    group_pv = np.ascontiguousarray(group_pv, dtype=np.float64)
    n, ngroups = len(weight), len(group_pv)
    if not len(price) == len(lot) == len(current) == len(codes) == n:
        raise ValueError(f"size_orders: weight, price, lot, current and codes must have one length ({n})")
    derive = group_cash is None
    group_cash = _EMPTY if derive else np.ascontiguousarray(group_cash, dtype=np.float64)
    if np.ndim(cash_buffer):  # one buffer per group (a stacked sweep)
        buffers, cash_buffer = np.ascontiguousarray(cash_buffer, dtype=np.float64), 0.0
    else:
        buffers, cash_buffer = _EMPTY, float(cash_buffer)
    if not derive and len(group_cash) != ngroups or len(buffers) not in (0, ngroups):
        raise ValueError(f"size_orders: group_cash and cash_buffer need one value per group ({ngroups})")
    target, missing = np.empty(n), np.empty(n, dtype=np.bool_)
    delta, untrimmed = np.empty(n, dtype=np.int64), np.empty(n, dtype=np.int64)
    parts = np.zeros((4, ngroups))
    status, row = jit.size_book(weight, price, lot, current, codes, group_pv, group_cash, derive, cash_buffer,
                                buffers, target, delta, untrimmed, missing, parts)
    if status == jit.NOT_EXACT:
        check_quantities(target, label or (lambda i: f"row {i + 1}"), "target quantity", skip=missing)
        raise AssertionError(f"size_book found an inexact target at row {row} that check_quantities did not")
    if status == jit.CASH_NOT_FINITE:
        _check_finite_cash(*parts)
        raise AssertionError("size_book found a non-finite amount that _check_finite_cash did not")
    if status == jit.BAD_GROUP:
        raise ValueError(f"size_orders: codes[{row}] is {int(codes[row])}; groups are 0..{ngroups - 1}")
    return delta, untrimmed, parts[0] if derive else group_cash, missing


_EMPTY = np.empty(0)
_JIT = None  # tradeloop.core.jit.sizing, imported on first use (it imports numba)


def _load_kernel():
    global _JIT
    from .jit import sizing

    _JIT = sizing
    return sizing


def _check_finite_cash(*amounts: np.ndarray) -> None:
    """Cash, sell proceeds and buy costs must be finite: holdings × price beyond float range are refused."""
    for amount in amounts:
        if not np.isfinite(amount).all():
            raise ValidationError(f"the book's value overflows ({float(amount[~np.isfinite(amount)][0])!r}): "
                                  "quantities × prices must stay within float range (check prices and positions)")


def limit_prices(price: np.ndarray, buy: np.ndarray, limit_offset_bps: float) -> np.ndarray:
    """LIMIT order prices: BUY ``price × (1 + bps/1e4)``, SELL ``price × (1 − bps/1e4)``, rounded to 4 decimals
    (unrounded where rounding would give 0, so with ``|bps| < 10000`` a limit price is always > 0)."""
    sign = np.where(buy, 1.0, -1.0)
    raw = price * (1.0 + sign * limit_offset_bps / 1e4)
    with np.errstate(over="ignore", invalid="ignore"):  # beyond ~1e304 rounding overflows: keep those as they are
        rounded = np.round(raw, 4)
    return np.where((rounded > 0) & np.isfinite(rounded), rounded, raw)


def _with_positions(targets: pd.DataFrame, positions: pd.DataFrame | None, group_by: list[str]) -> pd.DataFrame:
    """``targets`` outer-joined with the current ``positions`` (``current_qty``; NaN where nothing is held).

    Symbols held but not targeted get weight 0 and their price from ``positions.price`` (``price_source``
    ``positions``); they inherit their group's ``portfolio_value`` / ``cash`` columns.
    """
    book = targets.copy()
    if positions is None or not len(positions):
        book["current_qty"] = 0
        return book
    pos_keys = [k for k in group_by + ["symbol"] if k in positions.columns]
    pos = positions.loc[:, pos_keys + ["qty"] + (["price"] if "price" in positions else [])]
    pos = pos.rename(columns={"qty": "current_qty", "price": "_position_price"})
    book = book.merge(pos, on=pos_keys, how="outer", sort=False)
    held_only = book["weight"].isna().to_numpy()
    book["weight"] = book["weight"].fillna(0.0)
    if "_position_price" in book:
        book["price"] = book["price"].where(book["price"].notna(), book.pop("_position_price"))
    if "price_source" in book:
        book.loc[held_only & book["price"].notna().to_numpy(), "price_source"] = "positions"
    for col in ("portfolio_value", "cash"):
        if col in book:  # held-only rows inherit their group's constants
            book[col] = (book.groupby(group_by, sort=False)[col].transform("first") if group_by
                         else book[col].ffill().bfill())
    return book


def build_book(
    targets: pd.DataFrame,
    portfolio_value: float | None = None,
    *,
    cash_buffer: float = 0.0,
    lot_size: int = 1,
    positions: pd.DataFrame | None = None,
    cash: float | None = None,
    group_by: Sequence[str] = (),
) -> pd.DataFrame:
    """Every (group, symbol) with its current and target position and the trade between them.

    Parameters
    ----------
    targets : DataFrame
        ``symbol``, ``weight``, ``price`` (NaN where unknown) and optionally ``sector``, ``lot_size``,
        ``price_source``, the ``group_by`` columns, and per-group ``portfolio_value`` / ``cash`` columns.
    portfolio_value : float, optional
        Used when ``targets`` has no ``portfolio_value`` column.
    cash_buffer : float
        Fraction of portfolio value kept in cash: buys may spend ``cash + sell proceeds − cash_buffer × pv``.
    lot_size : int
        Lot size for rows without a ``lot_size``.
    positions : DataFrame, optional
        ``symbol``, ``qty`` (and any ``group_by`` columns it shares with ``targets``): current holdings. Symbols held
        but absent from ``targets`` get weight 0 (sold down); their price is ``positions.price`` if given.
    cash : float, optional
        Current cash; by default ``portfolio_value − Σ current_qty × price``.
    group_by : sequence of str
        Columns that split ``targets`` into independent books (e.g. ``("date", "portfolio")``).

    Returns
    -------
    DataFrame
        The ``group_by`` columns then :data:`BOOK_COLUMNS`: ``side`` is BUY/SELL or None when nothing trades,
        ``qty`` the unsigned order quantity after trimming (0 = no trade), ``untrimmed_qty`` before trimming,
        ``missing_price`` True where no price was known (those rows cannot be sized and must be rejected).
    """
    group_by = list(group_by)
    book = _with_positions(targets, positions, group_by)
    book["current_qty"] = book["current_qty"].fillna(0).to_numpy(dtype="int64")
    if "lot_size" not in book:
        book["lot_size"] = lot_size
    book["lot_size"] = book["lot_size"].fillna(lot_size).to_numpy(dtype="int64")
    if "sector" not in book:
        book["sector"] = None
    if "price_source" not in book:
        book["price_source"] = np.where(book["price"].notna(), "snapshot", None)
    book = book.sort_values(group_by + ["symbol"], kind="stable").reset_index(drop=True)

    codes, ngroups = _group_codes(book, group_by)
    pv, group_pv = _per_group_value(book, "portfolio_value", portfolio_value, codes, ngroups, "targets")
    if pv is None:
        raise ValidationError("portfolio_value is required (an argument or a 'portfolio_value' column)")
    _, cash_now = _per_group_value(book, "cash", cash, codes, ngroups, "targets")
    price = book["price"].to_numpy(dtype="float64")
    weight = book["weight"].to_numpy(dtype="float64")
    current = book["current_qty"].to_numpy()
    delta, untrimmed, group_cash, missing_price = size_orders(
        weight, price, book["lot_size"].to_numpy(), current, codes, group_pv, cash_now, cash_buffer,
        label=lambda i: repr(book["symbol"].iloc[i]),
    )

    book["target_weight"] = weight
    book["target_qty"] = current + delta
    book["qty"] = np.abs(delta)
    # A weight with no price cannot be sized: keep the row as an order of unknown size so it gets rejected.
    unsized = missing_price & (weight != 0) & (delta == 0)
    book["side"] = np.select(
        [delta > 0, delta < 0, unsized & (weight > 0), unsized & (weight < 0)], ["BUY", "SELL", "BUY", "SELL"], None
    )
    book["untrimmed_qty"] = untrimmed
    book["portfolio_value"] = pv
    book["cash"] = group_cash[codes]
    book["missing_price"] = missing_price
    return book.loc[:, group_by + list(BOOK_COLUMNS)]


def build_orders(
    targets: pd.DataFrame,
    portfolio_value: float | None = None,
    *,
    run_id: str | Sequence[str] = "",
    model_version: str = "",
    cash_buffer: float = 0.0,
    lot_size: int = 1,
    positions: pd.DataFrame | None = None,
    cash: float | None = None,
    group_by: Sequence[str] = (),
    order_type: str = "MARKET",
    limit_offset_bps: float | None = None,
    book: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Standardized orders for a weights table (see the module docstring for the rules).

    Takes the arguments of :func:`build_book` plus ``run_id`` (a scalar, or a column name in ``group_by`` whose
    value is each group's run id), ``model_version``, ``order_type`` (MARKET or LIMIT) and ``limit_offset_bps``
    (LIMIT orders: BUY limit = price × (1 + bps/1e4), SELL limit = price × (1 − bps/1e4), rounded to 4 decimals).
    Pass ``book`` to reuse one already built.

    Returns
    -------
    DataFrame
        The ``group_by`` columns then :data:`ORDER_COLUMNS`, one row per order, sorted by group, symbol;
        ``price`` is the reference price used for sizing (NaN when missing), ``qty`` is a positive multiple of
        ``lot_size`` (0 only for an unsized order whose price is missing).

    Examples
    --------
    >>> w = pd.DataFrame({"symbol": ["A", "B"], "weight": [0.5, 0.3], "price": [10.0, 33.0]})
    >>> build_orders(w, 10_000, run_id="r1", model_version="m1", lot_size=10)[["symbol", "side", "qty"]]
      symbol side  qty
    0      A  BUY  500
    1      B  BUY   90
    """
    order_type = str(order_type).upper()
    if order_type not in ("MARKET", "LIMIT"):
        raise ValidationError(f"order_type is {order_type!r}; allowed: 'MARKET', 'LIMIT'")
    if order_type == "LIMIT" and limit_offset_bps is None:
        raise ValidationError("order_type 'LIMIT' needs limit_offset_bps (limit = price ± bps)")
    group_by = list(group_by)
    if book is None:
        book = build_book(
            targets, portfolio_value, cash_buffer=cash_buffer, lot_size=lot_size, positions=positions, cash=cash,
            group_by=group_by,
        )
    orders = book.loc[book["side"].notna().to_numpy()].reset_index(drop=True)
    run_ids = orders[run_id].to_numpy(dtype=object) if isinstance(run_id, str) and run_id in group_by else run_id
    orders.insert(len(group_by), "client_order_id", client_order_ids(run_ids, orders["symbol"], orders["side"], model_version))
    orders.insert(len(group_by) + 1, "run_id", run_ids if np.ndim(run_ids) else str(run_ids))
    orders["order_type"] = order_type
    if order_type == "LIMIT":
        orders["limit_price"] = limit_prices(orders["price"].to_numpy(), orders["side"].to_numpy() == "BUY",
                                             limit_offset_bps)
    else:
        orders["limit_price"] = np.nan
    return orders.loc[:, group_by + list(ORDER_COLUMNS)]
