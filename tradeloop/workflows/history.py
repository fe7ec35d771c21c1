"""Simulations: replay a model's whole weight history, rebalance by rebalance, with the rules of a single run.

:func:`simulate` takes a long weights table (``date``, ``symbol``, ``weight``, optionally ``portfolio``) and a long
prices table (``date``, ``symbol``, ``price``, optionally ``volume``, ``sector``, ``lot_size``). For every date in
order, and for every portfolio at once, it

1. marks the holdings carried over from the previous date to market (today's price, else the last known one) to get
   the portfolio value; on the first date the value is ``portfolio_value`` and cash is ``cash`` (default: value
   minus holdings, as in a run);
2. sizes the orders with :func:`tradeloop.core.sizing.size_orders` (cash buffer, lot rounding toward zero, sells first,
   pro-rata trimming of buys with a strict floor) — the same kernel :func:`tradeloop.core.sizing.build_book` uses;
3. checks them with :func:`tradeloop.core.risk.risk_checks` — the same rules and reason codes as
   :func:`tradeloop.core.risk.check_risk`;
4. executes them with :func:`tradeloop.core.engine.execute_step` — the step the mock venue's
   :func:`tradeloop.core.engine.work_orders` runs — with the run's slippage and commission models (with a liquidity
   model, over ``params.steps`` steps: each step fills at most the cap from that date's ``volume``, commission is
   charged per fill, and what is still open after the last step is CANCELED with ``unfilled_at_close``), then moves
   cash and positions. The next date rebuilds its
   orders from the positions actually reached, exactly like step-by-step single runs.

Differences from a single :class:`~tradeloop.workflows.run.TradeRun`, by design:

* **Risk blocks per order, not per run.** A run with one blocked order is ``blocked`` as a whole and submits
  nothing; a simulation REJECTS only the blocked orders (``reject_reason = "risk:<codes>"``) and fills the rest, so
  a ten-year history is not frozen by one breach. A one-date history whose risk check passes gives exactly the
  orders and fills of ``tradeloop run`` on that snapshot.
* Order ids are kept as 64-bit keys (``order_key``, the hash behind :func:`tradeloop.core.sizing.client_order_ids`, with
  ``run_id = {simulation_id}-{YYYYMMDD}[-{portfolio}]``); the readable ``client_order_id`` text is produced on
  demand (:meth:`Simulation.client_order_ids`, or in SQL by the ``simulation_orders_v`` view), because ten million
  Python strings cost more than the whole simulation.
* No per-order event rows: the status, ``filled_qty`` and ``n_fills`` say how each order ended (FILLED, REJECTED,
  or CANCELED with or without partial fills); ``fills`` has one row per fill.
* Cash can go below zero when sells that funded buys are blocked or rejected, or when costs exceed the cash buffer;
  the next date's trimming then starts from that cash.

Only the time dimension is a Python loop (holdings carry forward), plus the few execution steps inside a date when a
liquidity model is set; everything inside a date is numpy over the symbol universe (factorized once) × portfolios.
Without a liquidity model (the default ``NoLiquidityLimit``) an order fills whole in one fill or not at all and no
per-fill arrays are kept (the fast path).
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..core import codes
from ..core.engine import STATUS_NAMES, close_out, execute_step, side_text
from ..core.controls import REJECT, RESIZE, SKIP, decide
from ..core.risk import _limit_args, check_orders, rule_details, sector_limits
from ..core.shortfall import OrderPath, PeriodLedger
from ..core.sizing import limit_prices, size_orders
from ..core.tolerance import exceeds
from ..core.validate import (
    MAX_PRICE,
    MAX_QTY,
    MIN_PRICE,
    SYMBOL_PATTERN,
    SYMBOL_RULE,
    check_columns,
    check_model_version,
    check_simulation_id,
    numeric_column,
)
from ..errors import ValidationError
from ..venue.commission import BpsCommission, NoCommission, PerShareCommission
from ..venue.liquidity import NoLiquidityLimit
from ..venue.slippage import FixedBpsSlippage, NoSlippage
from .params import RunParams
from .simulation import (
    ORDER_STATUS_NAMES,
    OUTCOME_BLOCKED,
    OUTCOME_CANCELED,
    OUTCOME_RISK,
    SIM_ORDER_COLUMNS,
    SIM_SUMMARY_COLUMNS,
    Buffers,
    Simulation,
    inputs_digest,
)

__all__ = ["simulate", "simulate_on", "prepare_history", "HistoryInputs", "Simulation", "SIM_ORDER_COLUMNS", "SIM_SUMMARY_COLUMNS",
           "ORDER_STATUS_NAMES", "run_history", "history_digest"]

#: Outcome code (``simulation_orders.status_code``) by the order status the engine left, for an order risk did not
#: block: each outcome row of the table names its status (the risk outcome is decided before execution).
_OUTCOME_OF_STATUS = np.full(len(STATUS_NAMES), -1, dtype=np.int8)
for _row in codes.rows(codes.OUTCOME):
    if _row.reason not in ("risk", "blocked"):  # decided before execution
        _OUTCOME_OF_STATUS[STATUS_NAMES.index(_row.status)] = _row.code


class _Rows:
    """Row labels for error messages, built only for the row that failed (``symbol@date``)."""

    def __init__(self, symbols: pd.Series, dates: np.ndarray):
        self._symbols, self._dates = symbols, dates

    @property
    def iloc(self):
        return self

    def __getitem__(self, i):
        day = pd.Timestamp(self._dates[i])
        return f"{self._symbols.iloc[i]}@{day.date() if day == day.normalize() else day.isoformat()}"


def _dates(col: pd.Series, what: str) -> tuple[np.ndarray, np.ndarray, bool]:
    """The date rules (see :func:`simulate`): naive UTC ``datetime64[ns]`` values, whole seconds, one per row.

    Returns ``(values, starts, is_sorted)``: ``starts`` the first row of each run of equal values, found once here
    and reused by every later step (a date column repeats each date per symbol). Naive datetimes keep their own
    unit (pandas' default is microseconds): only the values at ``starts`` are ever compared or stored, and
    :func:`_run_starts` gives them in nanoseconds, so ten million rows are never converted."""
    if col.dtype.kind == "M" and not isinstance(col.dtype, pd.DatetimeTZDtype):  # naive datetimes: no copy
        out = col.to_numpy()
    elif isinstance(col.dtype, pd.DatetimeTZDtype):
        out = col.dt.tz_convert("UTC").dt.tz_localize(None).to_numpy(dtype="datetime64[ns]")
    elif col.dtype.kind == "M":
        out = col.to_numpy(dtype="datetime64[ns]")
    elif col.dtype.kind in "iu":  # integer dates are YYYYMMDD (20240102), never nanoseconds since 1970
        out = _parse_dates(col, col.astype(str), what, "%Y%m%d")
    elif col.dtype.kind in "fcb":
        raise ValidationError(f"{what}: column 'date' holds {col.dtype} values; dates are ISO 8601 text "
                              "(2024-01-02, 2024-01-02T15:30:00+01:00), datetimes or YYYYMMDD integers")
    else:
        out = _parse_dates(col, col, what, "ISO8601")
    # Checked on the first row of each run of equal values (every value starts some run): a date column repeats
    # each date once per symbol, so this is a few thousand values instead of millions.
    ticks = out.view(np.int64)
    first = np.r_[0, np.flatnonzero(ticks[1:] != ticks[:-1]) + 1] if len(ticks) else np.zeros(0, dtype=np.intp)
    missing = np.isnat(out[first])
    if missing.any():
        raise ValidationError(f"{what}: date is missing in row {int(first[np.flatnonzero(missing)[0]]) + 1}")
    ns = _run_starts(out, first).view(np.int64)
    fraction = ns % 1_000_000_000 != 0
    if fraction.any():
        i = int(first[np.flatnonzero(fraction)[0]])
        raise ValidationError(f"{what}: date {str(col.iloc[i])!r} in row {i + 1} has a fraction of a second; dates "
                              "are whole seconds (two rebalances are at least a second apart)")
    # sorted <=> the values of consecutive runs increase (within a run they are equal)
    return out, first, bool(np.all(ns[1:] > ns[:-1]))


def _run_starts(values: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """The dates at ``starts`` as ``datetime64[ns]`` (out of that range: pandas' OutOfBoundsDatetime)."""
    return pd.DatetimeIndex(values[starts]).as_unit("ns").to_numpy()


def _parse_dates(col: pd.Series, text: pd.Series, what: str, fmt: str) -> np.ndarray:
    """Parse date text; values with a UTC offset are converted to UTC, values without one are taken as UTC."""
    try:
        values = pd.to_datetime(text, errors="raise", format=fmt, utc=True)
    except (ValueError, TypeError, OverflowError):
        parsed = pd.to_datetime(text, errors="coerce", format=fmt, utc=True)
        bad = (parsed.isna() & text.notna()).to_numpy()
        i = int(np.flatnonzero(bad)[0]) if bad.any() else 0
        allowed = "YYYYMMDD" if fmt == "%Y%m%d" else "ISO 8601, e.g. 2024-01-02 or 2024-01-02T15:30:00+01:00"
        raise ValidationError(f"{what}: date {str(col.iloc[i])!r} in row {i + 1} is not a valid date ({allowed})") from None
    return values.dt.tz_localize(None).to_numpy(dtype="datetime64[ns]")


def _date_codes(values: np.ndarray, starts: np.ndarray, index: pd.Index) -> np.ndarray:
    """Position of each date in ``index`` (-1 if absent), mapped run by run (``starts``: the first row of each run
    of equal values), without hashing every row."""
    if len(values) == 0:
        return index.get_indexer(values)
    lengths = np.diff(np.r_[starts, len(values)])
    return np.repeat(index.get_indexer(_run_starts(values, starts)), lengths)


def _factorize(col: pd.Series, what: str, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Codes and uniques of a text column; categorical columns cost nothing (their codes are reused)."""
    if isinstance(col.dtype, pd.CategoricalDtype):
        codes = col.cat.codes.to_numpy()
        uniques = col.cat.categories.to_numpy(dtype=object)
    else:
        codes, uniques = pd.factorize(col, sort=False)
        uniques = np.asarray(uniques, dtype=object)
    if len(codes) and codes.min() < 0:
        raise ValidationError(f"{what}: {name} is missing in row {int(np.flatnonzero(codes < 0)[0]) + 1}")
    return codes, np.array([str(u) for u in uniques], dtype=object)


def _check_names(names, what: str, name: str) -> None:
    for s in names:
        if not SYMBOL_PATTERN.fullmatch(s):
            raise ValidationError(
                f"{what}: {name} {s!r} is not allowed; use {SYMBOL_RULE}"
            )


def _recode(codes: np.ndarray, lookup: np.ndarray) -> np.ndarray:
    """Map local codes to global ones (int32), skipping the gather when the mapping is the identity."""
    if len(lookup) and np.array_equal(lookup, np.arange(len(lookup))):
        return codes if codes.dtype == np.int32 else codes.astype(np.int32)
    return lookup.astype(np.int32)[codes]


def _is_dense(date_codes: np.ndarray, pos: np.ndarray, n_dates: int, width: int) -> bool:
    """Every date has exactly rows 0..width-1 in order (checked without building a sort key)."""
    if len(pos) != n_dates * width or not len(pos):
        return False
    block = pos.reshape(n_dates, width)
    if not (np.array_equal(block[0], np.arange(width)) and np.array_equal(block[1:], block[:-1])):
        return False
    day = date_codes.reshape(n_dates, width)
    return bool(np.array_equal(day[:, 0], np.arange(n_dates)) and (day[:, -1] == day[:, 0]).all()
                and np.all(date_codes[1:] >= date_codes[:-1]))


def _numeric(df: pd.DataFrame, column: str, what: str, rows, *, allow_missing=False, positive=False,
             nonnegative=False, integer=False, price=False) -> np.ndarray:
    """:func:`tradeloop.core.validate.numeric_column` with a one-pass fast path for clean numeric columns (the common
    case at ten million rows); anything doubtful goes through the full check for its message."""
    raw = df[column]
    if raw.dtype.kind in "iu" and (positive or nonnegative):
        values = raw.to_numpy()
        low, high = values.min(initial=1), values.max(initial=0)
        if (low > 0 if positive else low >= 0) and (not integer or high < MAX_QTY):
            return values.astype(np.int64, copy=False) if integer else values.astype(np.float64)
    elif raw.dtype.kind == "f" and not integer:
        values = raw.to_numpy(dtype=np.float64)
        low, high = values.min(initial=np.inf), values.max(initial=-np.inf)
        if (np.isfinite(low) and np.isfinite(high) and (not positive or low > 0) and (not nonnegative or low >= 0)
                and (not price or (low >= MIN_PRICE and high <= MAX_PRICE))):
            return values
    return numeric_column(df, column, what, rows, allow_missing=allow_missing, positive=positive,
                          nonnegative=nonnegative, integer=integer, price=price)


def _sorted_rows(date_codes: np.ndarray, pos: np.ndarray, width: int, what: str, keys) -> np.ndarray | None:
    """Row order by (date, position); None when the table is sorted already. Refuses duplicates."""
    key = date_codes.astype(np.int64) * width + pos
    if len(key) < 2 or np.all(key[1:] > key[:-1]):  # strictly increasing: sorted, no duplicates
        return None
    order = np.argsort(key, kind="stable")
    key = key[order]
    dup = np.flatnonzero(key[1:] == key[:-1])
    if len(dup):
        row = int(dup[0] + 1 if order is None else order[dup[0] + 1])
        raise ValidationError(f"{what}: duplicate row for {keys(row)} (row {row + 1}); one row per key is allowed")
    return order


def _per_portfolio(value, portfolios: np.ndarray, name: str, *, allow_none: bool, minimum: float) -> np.ndarray | None:
    if value is None:
        if allow_none:
            return None
        raise ValidationError(f"{name} is required")
    if isinstance(value, Mapping):
        missing = [p for p in portfolios if p not in value]
        if missing:
            raise ValidationError(f"{name} has no value for portfolio(s) {missing[:10]}")
        values = [value[p] for p in portfolios]
    else:
        values = [value] * len(portfolios)
    out = []
    for p, v in zip(portfolios, values):
        try:
            f = float(v)
        except (TypeError, ValueError):
            raise ValidationError(f"{name} {v!r} for portfolio {p!r} is not a number") from None
        if isinstance(v, bool) or not math.isfinite(f) or f <= minimum:
            raise ValidationError(f"{name} is {v!r} for portfolio {p!r}; it must be a finite number > {minimum:g}")
        out.append(f)
    return np.array(out, dtype="float64")



@dataclass(frozen=True)
class HistoryInputs:
    """A weight history and its prices, validated and factorized once: everything the date loop reads.

    Symbols are positions in ``universe`` (sorted), (portfolio, symbol) slots are ``portfolio * S + symbol``;
    weight rows (``wd`` date code, ``wpos`` slot, ``wvalue``) and price rows (``pd_codes``, ``psym``, ``pprice``,
    ``plot``, ``psec``, ``pvol``) are sorted by date, ``wbounds`` / ``pbounds`` delimiting each date's rows.
    ``dense_*``: every date has every slot once, in order (a date's rows are then its vector as they are).
    """

    dates: np.ndarray
    universe: np.ndarray
    portfolios: np.ndarray
    named: bool
    sectors: np.ndarray
    wd: np.ndarray
    wpos: np.ndarray
    wvalue: np.ndarray
    wbounds: np.ndarray
    dense_w: bool
    pd_codes: np.ndarray
    psym: np.ndarray
    pprice: np.ndarray
    plot: np.ndarray
    psec: np.ndarray
    pvol: np.ndarray | None
    pbounds: np.ndarray
    dense_p: bool
    hold0: np.ndarray
    pv0: np.ndarray
    cash0: np.ndarray | None
    padv: np.ndarray | None = None  # adv per price row, read only under risk.max_adv_participation

    @property
    def S(self) -> int:  # noqa: N802
        return len(self.universe)

    @property
    def P(self) -> int:  # noqa: N802
        return len(self.portfolios)

    def digest_parts(self) -> tuple:
        """The inputs behind ``inputs_digest``; a dense layout is described by its shape, its keys need no hashing."""
        weights = (b"dense-weights",) if self.dense_w else (self.wd.astype(np.int32, copy=False),
                                                            self.wpos.astype(np.int64, copy=False))
        prices = (b"dense-prices",) if self.dense_p else (self.pd_codes.astype(np.int32, copy=False),
                                                          self.psym.astype(np.int32, copy=False))
        # volume changes the fills only under a liquidity model (then it is part of the identity)
        return (*weights, self.wvalue, *prices, self.pprice, self.plot.astype(np.int64, copy=False),
                self.psec.astype(np.int32, copy=False), *((b"volume", self.pvol) if self.pvol is not None else ()),
                *((b"adv", self.padv) if self.padv is not None else ()))


def _symbols(weights: pd.DataFrame, prices: pd.DataFrame, positions: pd.DataFrame | None) -> dict:
    """Factorize symbols into one sorted universe and portfolios into a sorted list; weight rows get their slot."""
    wsym, wuni = _factorize(weights["symbol"], "weights", "symbol")
    psym, puni = _factorize(prices["symbol"], "prices", "symbol")
    if positions is not None:
        xsym, xuni = _factorize(positions["symbol"], "positions", "symbol")
    else:
        xsym, xuni = np.array([], dtype=np.intp), np.array([], dtype=object)
    universe = np.array(sorted(set(wuni) | set(puni) | set(xuni)), dtype=object)
    _check_names(universe, "simulation", "symbol")
    uindex = pd.Index(universe)
    S = len(universe)
    wsym = _recode(wsym, uindex.get_indexer(wuni))
    psym = _recode(psym, uindex.get_indexer(puni))
    xsym = uindex.get_indexer(xuni)[xsym].astype(np.int64) if len(xuni) else xsym.astype(np.int64)
    named = "portfolio" in weights
    if named:
        wport, puniq = _factorize(weights["portfolio"], "weights", "portfolio")
        portfolios = np.array(sorted(set(puniq)), dtype=object)
        _check_names(portfolios, "weights", "portfolio")
        wport = _recode(wport, pd.Index(portfolios).get_indexer(puniq))
    else:
        portfolios = np.array([""], dtype=object)
    # position of each weight row in the (portfolio, symbol) vector of a date
    wpos = wsym if not named else wport.astype(np.int64) * S + wsym
    return {"universe": universe, "psym": psym, "xsym": xsym, "named": named, "portfolios": portfolios, "wpos": wpos}


def _price_values(prices: pd.DataFrame, pdate: np.ndarray, params: RunParams) -> tuple:
    """Price, lot size and volume per price row (volume only under a liquidity model: None otherwise)."""
    prow = _Rows(prices["symbol"], pdate)
    pprice = _numeric(prices, "price", "prices", prow, allow_missing=True, positive=True, price=True)
    if "lot_size" in prices:
        plot = _numeric(prices, "lot_size", "prices", prow, allow_missing=True, positive=True, integer=True)
        if plot.dtype.kind == "f":
            plot = np.where(np.isnan(plot), params.lot_size, plot).astype(np.int64)
    else:
        plot = np.full(len(prices), params.lot_size, dtype=np.int64)
    # Volume matters only to a liquidity model; without one it is validated and dropped (the fast path).
    pvol = None
    if "volume" in prices:
        pvol = _numeric(prices, "volume", "prices", prow, allow_missing=True, nonnegative=True)
    if isinstance(params.liquidity, NoLiquidityLimit):
        pvol = None
    elif pvol is None:
        pvol = np.full(len(prices), np.nan)
    return pprice, plot, pvol


def _adv_values(prices: pd.DataFrame, pdate: np.ndarray, params: RunParams) -> np.ndarray | None:
    """ADV per price row under ``risk.max_adv_participation`` (NaN: missing); None otherwise."""
    if params.risk.max_adv_participation is None:
        return None
    if "adv" not in prices:
        return np.full(len(prices), np.nan)
    return _numeric(prices, "adv", "prices", _Rows(prices["symbol"], pdate), allow_missing=True, nonnegative=True)


def _sector_codes(prices: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Sector code per price row (-1: missing) and the sector names: used sectors only, sorted by name, so
    categorical and text input give the same simulation."""
    from ..core.jit.tables import code_counts, recode

    if "sector" not in prices:
        return np.full(len(prices), -1, dtype=np.int8), np.array([], dtype=object)
    sec_raw = prices["sector"]
    if isinstance(sec_raw.dtype, pd.CategoricalDtype):
        psec, sectors = sec_raw.cat.codes.to_numpy(), sec_raw.cat.categories
    else:
        text = sec_raw.astype("string").str.strip()
        psec, sectors = pd.factorize(text.where(text != "").astype(object), sort=False)
    psec = np.ascontiguousarray(psec)
    used = np.flatnonzero(code_counts(psec, len(sectors)) > 0)
    names = np.array([str(sectors[i]) for i in used], dtype=object)
    order = np.argsort(names, kind="stable")
    remap = np.full(len(sectors) + 1, -1, dtype=np.int32)
    remap[used[order]] = np.arange(len(used))
    if len(used) != len(sectors) or not np.array_equal(remap[:-1], np.arange(len(sectors))):
        psec = recode(psec, remap)
    return psec, names[order]


def _by_date(weights, wdates, pdates, dates, sym: dict, wvalue, price_rows: dict) -> dict:
    """Weight and price rows sorted by (date, slot), refused when duplicate, with each date's row bounds
    (``wdates`` / ``pdates``: what :func:`_dates` returned for each table)."""
    universe, psym, wpos, named = sym["universe"], sym["psym"], sym["wpos"], sym["named"]
    S, N = len(universe), len(sym["portfolios"]) * len(universe)
    date_index = pd.Index(dates)
    D = len(dates)
    (wdate, wstarts, _), (pdate, pstarts, _) = wdates, pdates
    wd = _date_codes(wdate, wstarts, date_index)
    pd_codes = _date_codes(pdate, pstarts, date_index)
    cols = dict(price_rows, psym=psym)
    if pd_codes.min(initial=0) < 0:  # price rows on other dates are not used
        idx = np.flatnonzero(pd_codes >= 0)
        pd_codes = pd_codes[idx]
        cols = {k: None if v is None else v[idx] for k, v in cols.items()}
    # Dense layout (every date has every (portfolio, symbol) once, in order) is sorted and unique by construction.
    dense_w = _is_dense(wd, wpos, D, N)
    dense_p = _is_dense(pd_codes, cols["psym"], D, S)
    worder = None if dense_w else _sorted_rows(
        wd, wpos, N, "weights", lambda r: f"{weights['symbol'].iloc[r]}@{pd.Timestamp(wdate[r]).date()}"
        + (f" in portfolio {weights['portfolio'].iloc[r]}" if named else ""))
    if worder is not None:
        wd, wpos, wvalue = wd[worder], wpos[worder], wvalue[worder]
        dense_w = _is_dense(wd, wpos, D, N)
    porder = None if dense_p else _sorted_rows(
        pd_codes, cols["psym"], S, "prices",
        lambda r: f"{universe[cols['psym'][r]]}@{pd.Timestamp(dates[pd_codes[r]]).date()}")
    if porder is not None:
        pd_codes = pd_codes[porder]
        cols = {k: None if v is None else v[porder] for k, v in cols.items()}
        dense_p = _is_dense(pd_codes, cols["psym"], D, S)
    pbounds = np.searchsorted(pd_codes, np.arange(D + 1))
    no_prices = np.flatnonzero(np.diff(pbounds) == 0)
    if len(no_prices):
        raise ValidationError(f"prices have no row for date {pd.Timestamp(dates[no_prices[0]]).date()}; every "
                              "rebalance date in the weights needs prices")
    return dict(cols, wd=wd, wpos=wpos, wvalue=wvalue, wbounds=np.searchsorted(wd, np.arange(D + 1)),
                dense_w=dense_w, pd_codes=pd_codes, pbounds=pbounds, dense_p=dense_p)


def _check_leverage(rows: dict, dates, portfolios, named: bool, S: int, max_leverage: float) -> None:
    """Refuse a date (and portfolio) whose absolute weights sum beyond ``max_leverage``."""
    D, P = len(dates), len(portfolios)
    wvalue, wbounds = rows["wvalue"], rows["wbounds"]
    if P == 1:
        gross = _gross_per_date(wvalue, wbounds)
    else:
        gross = np.bincount(rows["wd"].astype(np.int64) * P + rows["wpos"] // S, weights=np.abs(wvalue),
                            minlength=D * P)
    over = np.flatnonzero(exceeds(gross, max_leverage))
    if len(over):
        t, p = divmod(int(over[0]), P)
        raise ValidationError(
            f"weights on {pd.Timestamp(dates[t]).date()}{f' for portfolio {portfolios[p]!r}' if named else ''} sum "
            f"to {gross[over[0]]:.6g} in absolute value, beyond params.max_leverage {max_leverage:g}"
        )


def _gross_per_date(wvalue: np.ndarray, wbounds: np.ndarray, chunk: int = 1 << 18) -> np.ndarray:
    """Σ |weight| per date, a few hundred thousand rows at a time through one reused buffer (no temporary the size
    of the whole table); the same ``reduceat`` sums as over the whole column."""
    D = len(wbounds) - 1
    gross = np.zeros(D)
    buf = np.empty(min(len(wvalue), chunk))
    a = 0
    while a < D:
        # whole dates per chunk (at least one, however many rows it has)
        b = max(a + 1, int(np.searchsorted(wbounds, wbounds[a] + chunk, side="right")) - 1)
        b = min(b, D)
        lo, hi = wbounds[a], wbounds[b]
        if hi > lo:
            part = np.abs(wvalue[lo:hi], out=buf[: hi - lo]) if hi - lo <= len(buf) else np.abs(wvalue[lo:hi])
            gross[a:b] = np.add.reduceat(part, wbounds[a:b] - lo)
        a = b
    gross[np.diff(wbounds) == 0] = 0.0
    return gross


def _initial_holdings(positions: pd.DataFrame | None, sym: dict) -> np.ndarray:
    """Shares held per (portfolio, symbol) slot before the first date."""
    portfolios, S = sym["portfolios"], len(sym["universe"])
    hold = np.zeros(len(portfolios) * S, dtype=np.int64)
    if positions is None or not len(positions):
        return hold
    xq = numeric_column(positions, "qty", "positions", positions["symbol"].astype(str), integer=True)
    if "portfolio" in positions:
        xp = pd.Index(portfolios).get_indexer(positions["portfolio"].astype(str))
        if (xp < 0).any():
            bad = positions["portfolio"].astype(str).to_numpy()[xp < 0][0]
            raise ValidationError(f"positions: portfolio {bad!r} has no weights")
    elif sym["named"]:
        raise ValidationError("positions need a 'portfolio' column when the weights have one")
    else:
        xp = np.zeros(len(positions), dtype=np.int64)
    xpos = xp * S + sym["xsym"]
    if len(np.unique(xpos)) != len(xpos):
        raise ValidationError("positions: duplicate symbol(s) per portfolio")
    hold[xpos] = xq.astype(np.int64)
    return hold


def prepare_history(weights: pd.DataFrame, prices: pd.DataFrame, *, portfolio_value, params: RunParams,
                    positions: pd.DataFrame | None = None, cash=None) -> HistoryInputs:
    """Validate and factorize the inputs of :func:`simulate` (same arguments) into :class:`HistoryInputs`."""
    check_columns(weights, "weights", ("date", "symbol", "weight"), ("portfolio",))
    check_columns(prices, "prices", ("date", "symbol", "price"), ("volume", "sector", "lot_size", "adv"))
    if positions is not None:
        check_columns(positions, "positions", ("symbol", "qty"), ("portfolio",))
    wdates, pdates = _dates(weights["date"], "weights"), _dates(prices["date"], "prices")
    wdate, wstarts, w_sorted = wdates
    pdate = pdates[0]
    dates = _run_starts(wdate, wstarts) if w_sorted else np.unique(_run_starts(wdate, wstarts))
    sym = _symbols(weights, prices, positions)
    wvalue = _numeric(weights, "weight", "weights", _Rows(weights["symbol"], wdate))
    pprice, plot, pvol = _price_values(prices, pdate, params)
    psec, sectors = _sector_codes(prices)
    rows = _by_date(weights, wdates, pdates, dates, sym, wvalue,
                    {"pprice": pprice, "plot": plot, "psec": psec, "pvol": pvol,
                     "padv": _adv_values(prices, pdate, params)})
    portfolios = sym["portfolios"]
    _check_leverage(rows, dates, portfolios, sym["named"], len(sym["universe"]), params.max_leverage)
    hold0 = _initial_holdings(positions, sym)
    pv0 = _per_portfolio(portfolio_value, portfolios, "portfolio_value", allow_none=False, minimum=0.0)
    cash0 = _per_portfolio(cash if cash is not None else params.cash, portfolios, "cash", allow_none=True,
                           minimum=-math.inf)
    return HistoryInputs(dates=dates, universe=sym["universe"], portfolios=portfolios, named=sym["named"],
                         sectors=sectors, hold0=hold0, pv0=pv0, cash0=cash0, **rows)


@dataclass(frozen=True)
class _Rules:
    """What the date loop needs besides the inputs: per-slot constants of the risk limits and the models.

    ``risk``, ``cash_buffer``, ``slippage`` and ``commission`` are ``params``' own for one simulation; a stacked
    sweep (:mod:`tradeloop.workflows.sweep_kernel`) gives per-slot limits, a buffer per portfolio and models per
    book instead, with ``book_of_slot`` and ``books`` saying which book each slot belongs to."""

    params: RunParams
    group: np.ndarray  # portfolio of each (portfolio, symbol) slot
    name_cap: np.ndarray | None
    sector_limit: np.ndarray | None  # per sector code, the last entry for an unknown sector
    limited: bool  # a liquidity model: orders fill over params.steps steps, partly
    recover: bool  # inputs dense: an order's weight, price, lot and sector are read back later, not kept
    restricted: dict | None = None  # rebalancing controls set: the restricted lists as slot masks
    risk: object = None
    cash_buffer: float | np.ndarray = 0.0
    slippage: object = None
    commission: object = None
    sector_offset: np.ndarray | None = None  # per slot: where its book's sector limits start in sector_limit
    book_of_slot: np.ndarray | None = None
    books: int = 1

    def limit(self, price: np.ndarray, sell: np.ndarray) -> np.ndarray | None:
        """LIMIT orders' limit prices (None for MARKET orders)."""
        p = self.params
        return limit_prices(price, ~sell, p.limit_offset_bps) if p.order_type == "LIMIT" else None


def _rules(h: HistoryInputs, params: RunParams) -> _Rules:
    limits = params.risk
    name_cap = sector_limit = None
    if limits.single_name_caps:
        name_cap = np.tile(pd.Series(h.universe).map(limits.single_name_caps).to_numpy(dtype="float64"), h.P)
    if limits.uses_sectors:  # index n_sectors = unknown sector
        per = pd.Series(list(h.sectors) + [None], dtype=object).map(limits.sector_caps).to_numpy(dtype="float64")
        sector_limit = sector_limits(limits, per)
    # Output bytes are the loop's main cost (every new page is a fault): when the inputs are dense, an order's
    # weight, price, lot size and sector are read back from the inputs later instead of being copied here.
    recover = h.dense_w and h.dense_p and (not bool((h.psec < 0).any()) or len(h.sectors) == 0)
    restricted = None
    if limits.controls_active:
        restricted = {k: np.tile(np.isin(h.universe, limits.restricted.get(k, [])), h.P)
                      for k in ("no_buy", "no_trade")}
    return _Rules(params, np.repeat(np.arange(h.P, dtype=np.intp), h.S), name_cap, sector_limit,
                  h.pvol is not None, recover, restricted, risk=limits, cash_buffer=params.cash_buffer,
                  slippage=params.slippage, commission=params.commission)


class _Market:
    """Each date's vectors over the (portfolio, symbol) slots (:func:`~tradeloop.core.jit.market.market_day`);
    carries the last known price and sector."""

    def __init__(self, h: HistoryInputs, params: RunParams):
        self.h = h
        self.last_px = np.full(h.S, np.nan)
        self.last_sec = np.full(h.S, len(h.sectors), dtype=np.int64)  # len(sectors): unknown
        self.psym = _frozen(h.psym)
        self.inputs = (*map(_frozen, (h.wvalue, h.wbounds, h.wpos)), h.dense_w,
                       *map(_frozen, (h.pprice, h.plot, h.psec)), self.psym, _frozen(h.pbounds), int(params.lot_size))

    def day(self, t: int) -> tuple:
        """``(weight, price, lot, mark, marks, sec)`` per slot on date ``t``: price NaN without a row that date,
        mark the last known price (NaN: never priced), marks the mark or 0 (what holdings are valued at)."""
        from ..core.jit.market import market_day

        N = self.h.P * self.h.S
        out = (np.empty(N), np.empty(N), np.empty(N, dtype=np.int64), np.empty(N), np.empty(N),
               np.empty(N, dtype=np.int64))
        market_day(t, *self.inputs, self.last_px, self.last_sec, *out)
        return out

    def _slots(self, values: np.ndarray | None, t: int) -> np.ndarray | None:
        """A price-row column (volume, ADV, price) per slot on date ``t`` (NaN: no row that date;
        :func:`~tradeloop.core.jit.market.spread`)."""
        from ..core.jit.market import spread

        if values is None:
            return None
        out = np.empty(self.h.P * self.h.S)
        spread(_frozen(values), self.h.pbounds[t], self.h.pbounds[t + 1], self.psym, np.nan, self.h.S, out)
        return out

    def adv(self, t: int) -> np.ndarray:
        """ADV per slot on date ``t`` (NaN: none that date)."""
        return self._slots(self.h.padv, t)

    def volume(self, t: int) -> np.ndarray | None:
        """Volume per slot on date ``t`` (NaN: none that date; None: no volume column)."""
        return self._slots(self.h.pvol, t)

    def slot_prices(self, t: int) -> np.ndarray:
        """Price per slot on date ``t`` (NaN: none that date), as :meth:`day` gives it."""
        return self._slots(self.h.pprice, t)


def _frozen(a: np.ndarray) -> np.ndarray:
    """A read-only view: the compiled kernels then see one array type whatever the caller's flags were."""
    view = a.view()
    view.flags.writeable = False
    return view


def _orders_of_day(rules: _Rules, h: HistoryInputs, t: int, day: tuple, hold: np.ndarray, pv: np.ndarray,
                   cash: np.ndarray | None, decisions: Buffers) -> tuple:
    """Size one date's orders (:func:`~tradeloop.core.sizing.size_orders`) and check them
    (:func:`~tradeloop.core.risk.check_orders`; the decisions of flagged orders into ``decisions``). Returns ``(rows, sell, qty, untrimmed, risk mask, cash)`` for the
    slots that trade, cash being each portfolio's cash the sizing started from, ``(delta, untrimmed)`` of every
    slot (the shortfall's rounding and cash trim concern slots without an order too), the orders of a blocked book
    (None: none) and the date's rebalancing-control decisions (None: none)."""
    weight, price, lot, sec = day[:4]
    limits, group = rules.risk, rules.group
    label = lambda i: f"{h.universe[i % h.S]!r} on {pd.Timestamp(h.dates[t]).date()}"  # noqa: E731
    delta, untrimmed, cash, missing = size_orders(
        weight, price, lot, hold, group, pv, cash, rules.cash_buffer, label=label)
    if rules.restricted is not None:
        return _controlled_orders(rules, h, t, day, hold, pv, (delta, untrimmed, cash, missing), label)
    is_order, sell = delta != 0, delta < 0
    if missing.any():  # a weight without a price is an order of unknown size (rejected by execution)
        unsized = missing & (weight != 0) & (delta == 0)
        is_order |= unsized
        sell |= unsized & (weight < 0)
    qty = np.abs(delta)
    # delta is the signed order (0 where nothing trades, unsized orders included); the rules' mask in one compiled
    # call, their observed values and limits only for a date where some order breaks one (the six have bits 0-5)
    sectors = limits.uses_sectors
    post, post_w, growing, mask, sec_codes, sector_lim, bad = check_orders(
        limits, is_order=is_order, price=price, qty=qty, signed=delta, current=hold, pv=pv, codes=group, ngroups=h.P,
        name_cap=rules.name_cap, sec=sec if sectors else None, nsectors=len(h.sectors),
        sector_table=rules.sector_limit, sector_offset=rules.sector_offset)
    if bad >= 0:
        _unknown_sector(h, t, sec, post)
    rows = np.flatnonzero(is_order)
    if mask.any():
        detail = rule_details(limits, is_order=is_order, price=price, qty=qty, signed=delta, post=post, post_w=post_w,
                              growing=growing, codes=group, ngroups=h.P, name_cap=rules.name_cap,
                              sec_codes=sec_codes, sector_lim=sector_lim)
        _explain(decisions, t, detail, post, rules.name_cap if limits.single_name_caps else None,
                 sector_lim if sectors else None, _limit_args(limits)[:3], qty, sell)
    return rows, sell[rows], qty[rows], untrimmed[rows], mask[rows], cash, (delta, untrimmed), None, None


class _FastDay:
    """The per-simulation constants of the compiled date loop (:func:`_fast_dates`), coerced once to the types the
    kernels take."""

    def __init__(self, rules: _Rules, h: HistoryInputs, market: _Market):
        limits, D = rules.risk, len(h.dates)
        buffer = rules.cash_buffer
        self.sizing = ((0.0, np.ascontiguousarray(buffer, dtype=np.float64)) if np.ndim(buffer)
                       else (float(buffer), _NO_FLOATS))
        self.sectors = limits.uses_sectors
        self.risk = (np.ascontiguousarray(rules.name_cap, dtype=np.float64) if limits.single_name_caps
                     else _NO_FLOATS, self.sectors, len(h.sectors),
                     np.ascontiguousarray(rules.sector_limit, dtype=np.float64) if self.sectors else _NO_FLOATS,
                     np.ascontiguousarray(rules.sector_offset, dtype=np.intp)
                     if self.sectors and rules.sector_offset is not None else _NO_CODES,
                     *_limit_args(limits), REJECT)
        self.outcome_codes = (_OUTCOME_OF_STATUS, OUTCOME_RISK, OUTCOME_BLOCKED)
        slip = _cost_kinds(rules.slippage, (NoSlippage, FixedBpsSlippage), 2)
        self.slip = (*(slip if slip is not None else (np.zeros(1, dtype=np.int64), np.zeros(1))),
                     _NO_CODES if rules.book_of_slot is None else np.ascontiguousarray(rules.book_of_slot,
                                                                                         dtype=np.intp))
        fees = _cost_kinds(rules.commission, (NoCommission, PerShareCommission, BpsCommission), 3)
        self.fees = fees if fees is not None else (np.empty(0, dtype=np.int64), _NO_FLOATS, _NO_FLOATS)
        self.models = _ModelPrices(rules, market, D, tabled=slip is None)
        days = _days_held(np.diff(h.dates)) if D > 1 else _NO_FLOATS
        self.borrowing = (rules.params.borrow_bps_per_year / 1e4, np.r_[0.0, days])
        self.cash0 = _NO_FLOATS if h.cash0 is None else np.ascontiguousarray(h.cash0, dtype=np.float64)


def _cost_kinds(model, builtins: tuple, width: int) -> tuple | None:
    """Per book, the compiled kind and parameters of the built-in cost ``model`` (a
    :class:`~tradeloop.workflows.sweep_kernel.PerBook` has one model per book; None: no cost), as arrays; None when
    some book's model is not a built-in (the Python side calls it)."""
    models, which = ([model], [0]) if not hasattr(model, "model_of_book") else (model.models, model.model_of_book)
    kinds = []
    for m in models:
        if m is None:
            kinds.append((0,) + (0.0,) * (width - 1))
        elif type(m) in builtins:
            kinds.append(m.cost_kind())
        else:
            return None
    rows = [kinds[i] for i in which]
    return (np.array([r[0] for r in rows], dtype=np.int64),
            *(np.array([r[k] for r in rows], dtype=np.float64) for k in range(1, width)))


_NO_FLOATS = np.empty(0)
_NO_CODES = np.empty(0, dtype=np.intp)
_NO_TABLE = np.empty((0, 0))


def _order_rows(orders: Buffers, N: int) -> tuple:
    """The order columns in :func:`~tradeloop.core.jit.day.close_date`'s order, room for ``N`` more rows made."""
    orders.reserve(N)
    c = orders.cols
    inputs = (c["price"], c["lot"], c["sector"], c["weight"]) if "price" in c else \
        (_NO_FLOATS, np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int32), _NO_FLOATS)
    return (c["pos"], c["sell"], c["qty"], c["current"], c["untrimmed"], c["status"], c["risk"], c["fill_price"],
            c["commission"], *inputs)


def _sizing_rows(sizing: Buffers, m: int) -> tuple:
    """The sizing columns in :func:`~tradeloop.core.jit.day.keep_trimmed`'s order, room for ``m`` more rows made."""
    sizing.reserve(m)
    return tuple(sizing.cols[k] for k in _SIZING_COLUMNS)


def _decision_rows(decisions: Buffers, m: int) -> tuple:
    """The decision columns in :func:`~tradeloop.core.jit.risk.decisions`' order, room for ``m`` more rows made."""
    decisions.reserve(m)
    return tuple(decisions.cols[k] for k in _DECISION_COLUMNS)


def _explain(decisions: Buffers, t: int, detail: tuple, post, name_cap, sector_lim, limits: tuple, qty: np.ndarray,
             sell: np.ndarray) -> None:
    """Keep date ``t``'s decisions of its flagged orders, each rejected (:func:`~tradeloop.core.jit.risk.decisions`
    over the rules' ``detail`` = ``(blocked, observed)``; ``limits`` = ``(order, position, gross)``)."""
    from ..core.jit.risk import decisions as explain

    n = np.array([decisions.n])
    explain(*detail, np.ascontiguousarray(post, dtype=np.int64), _NO_FLOATS if name_cap is None else
            np.ascontiguousarray(name_cap, dtype=np.float64),
            _NO_FLOATS if sector_lim is None else np.ascontiguousarray(sector_lim, dtype=np.float64), *limits,
            np.ascontiguousarray(qty, dtype=np.int64), np.ascontiguousarray(sell, dtype=np.bool_), REJECT, t,
            _decision_rows(decisions, 6 * len(qty)), n)
    decisions.n = int(n[0])


_DAY_ROWS = ("pv", "cash_before", "cash_after", "gross", "net", "npos", "borrow")


def _fast_dates(h: HistoryInputs, rules: _Rules, market: _Market, hold: np.ndarray, out: dict, bar) -> None:
    """The date loop without rebalancing controls or liquidity model: the compiled
    :func:`~tradeloop.core.jit.day.run_dates` over runs of dates, and :func:`_fast_date` for each date it hands
    back (an error to name, a commission model of its own, output columns to grow)."""
    jd = _kernels()[0]
    fast = _FastDay(rules, h, market)
    D, N = len(h.dates), h.P * h.S
    orders, day, explained, trimmed = out["orders"], out["day"], out["decisions"], out["sizing"]
    work = (np.empty(N), np.empty(N), np.empty(N, dtype=np.int64), np.empty(N), np.empty(N),
            np.empty(N, dtype=np.int64))
    days = tuple(day[k] for k in _DAY_ROWS)
    n_out, n_explained, n_trimmed = (np.zeros(1, dtype=np.int64) for _ in range(3))
    chunk = max(1, min(LOOP_CALL_SLOTS // N, D if bar is None else D // 100))
    t = 0
    while t < D:
        tables, end = fast.models.block(t)
        n_out[0], n_explained[0], n_trimmed[0] = orders.n, explained.n, trimmed.n
        done = jd.run_dates(t, min(end, t + chunk), (*market.inputs, market.last_px, market.last_sec), work, hold,
                            rules.group, h.pv0, fast.cash0, h.cash0 is None, fast.sizing, fast.risk,
                            fast.outcome_codes, fast.slip, tables, fast.fees, fast.borrowing,
                            (_order_rows(orders, N), n_out, out["counts"], days, _decision_rows(explained, 6 * N),
                             n_explained, _sizing_rows(trimmed, N), n_trimmed), rules.recover)
        orders.n, explained.n, trimmed.n = int(n_out[0]), int(n_explained[0]), int(n_trimmed[0])
        if done < min(end, t + chunk):
            _fast_date(done, h, rules, fast, market, hold, out)
            done += 1
        if bar is not None:
            bar.update(done - t)
        t = done


def _fast_date(t: int, h: HistoryInputs, rules: _Rules, fast: _FastDay, market: _Market, hold: np.ndarray,
               out: dict) -> None:
    """One date of :func:`_fast_dates` on the Python side: the same compiled steps
    (:func:`~tradeloop.core.jit.day.step_date`, :func:`~tradeloop.core.jit.day.close_date`) with, between them,
    what only Python does: naming a refused row, explaining the risk decisions, the commission model's fees and
    the buys the cash trim took to nothing."""
    jd, jx = _kernels()
    day = out["day"]
    weight, price, lot, _, marks, sec = market.day(t)
    cash = fast.cash0 if t == 0 else day["cash_after"][t - 1].copy()
    derive = t == 0 and h.cash0 is None
    cash = _charge_borrow(h, rules, t, hold, marks, cash, day["borrow"])
    status, _, bad, flagged, k, ints, floats, sized, cash, pv, lost, detail, post, sector_lim = jd.step_date(
        weight, price, lot, hold, rules.group, h.pv0, t == 0, marks, _NO_FLOATS if derive else cash, derive,
        *fast.sizing, fast.risk[0], sec if fast.sectors else _NO_CODES, *fast.risk[2:10], *fast.models(t),
        *fast.slip, *fast.outcome_codes)
    if status:  # name the row as the sizing wrapper does
        size_orders(weight, price, lot, hold, rules.group, pv, None if derive else cash, rules.cash_buffer,
                    label=lambda i: f"{h.universe[i % h.S]!r} on {pd.Timestamp(h.dates[t]).date()}")
        raise AssertionError(f"the compiled sizing refused date {t} but size_orders did not")
    delta = sized[0]
    if bad >= 0:
        _unknown_sector(h, t, sec, post)
    rows, sell = ints[jd.POS], ints[jd.SELL].astype(np.bool_)
    if flagged:
        sell_all = np.zeros(len(delta), dtype=np.bool_)
        sell_all[rows] = sell
        _explain(out["decisions"], t, detail, post, fast.risk[0], sector_lim, fast.risk[5:8], np.abs(delta), sell_all)
    fee = np.zeros(len(rows))
    if k and rules.commission is not None:
        now, q, px = ints[jd.NOW, :k], ints[jd.FILL_QTY, :k], floats[jd.FILL_PX, :k]
        fees = rules.commission.commissions(q, px) if rules.book_of_slot is None else \
            rules.commission.commissions(q, px, rules.book_of_slot[rows[now]])
        jx.settle(now, np.ascontiguousarray(fees, dtype=np.float64), fee, floats[jd.FLOW])
    if lost:
        _keep_sizing(out["sizing"], t, ints[jd.UNTRIMMED], sized, rows, False)
    n_out = np.array([out["orders"].n])
    jd.close_date(t, ints, floats, fee, weight, price, lot, sec, hold, rules.group, marks, cash, pv, rules.recover,
                  _order_rows(out["orders"], h.P * h.S), n_out, out["counts"], tuple(day[k] for k in _DAY_ROWS))
    out["orders"].n = int(n_out[0])


_KERNELS: tuple = ()


def _kernels() -> tuple:
    """The compiled modules of the fast path (imported once, on first use: they import numba)."""
    global _KERNELS
    if not _KERNELS:
        from ..core.jit import day, execution

        _KERNELS = (day, execution)
    return _KERNELS


#: About how many (date, slot) pairs one call of the compiled loop works (whole dates, at least one): ~50-100 ms,
#: so Ctrl-C (handled when the call returns) and a progress bar answer within that.
LOOP_CALL_SLOTS = 1 << 20

#: How many (date, slot) prices the slippage model is asked for at once (whole dates, at least one).
MODEL_BLOCK_SLOTS = 1 << 17


class _ModelPrices:
    """The slippage model's fill price of every slot as a BUY and as a SELL (and the LIMIT prices), asked for a
    block of dates at once: the models are elementwise (a price depends on its side and reference price alone),
    so one call per block gives the prices one call per date gave. A built-in slippage model (``tabled`` False)
    is computed by the compiled loop on the orders alone: then only LIMIT prices are tabled."""

    def __init__(self, rules: _Rules, market: _Market, n_dates: int, tabled: bool = True):
        self.rules, self.market, self.D, self.tabled = rules, market, n_dates, tabled
        self.per = max(1, MODEL_BLOCK_SLOTS // max(1, market.h.P * market.h.S))
        self.a = self.b = 0
        self.tables: tuple = ()
        self.limits = rules.params.order_type == "LIMIT"
        self.none = not tabled and not self.limits

    def block(self, t: int) -> tuple:
        """``((buy, sell, buy_limit, sell_limit, first date), end)``: the tables of the block holding date ``t``
        (rows: its dates from the first; empty: not tabled) and the block's end."""
        if self.none:
            return (_NO_TABLE, _NO_TABLE, _NO_TABLE, _NO_TABLE, 0), self.D
        if not self.a <= t < self.b:
            self._fill(t)
        return (*self.tables, self.a), self.b

    def __call__(self, t: int) -> tuple:
        """Date ``t``'s rows of the tables (empty: not tabled)."""
        tables, _ = self.block(t)
        i = t - tables[4]
        return tuple(x[i] if len(x) else _NO_FLOATS for x in tables[:4])

    def _fill(self, t: int) -> None:
        rules, p = self.rules, self.rules.params
        self.a, self.b = t, min(self.D, t + self.per)
        n_dates = self.b - self.a
        price = np.stack([self.market.slot_prices(u) for u in range(self.a, self.b)]).ravel()
        books = None if rules.book_of_slot is None else np.tile(rules.book_of_slot, n_dates)
        tables = []
        for sell in (False, True):
            if not self.tabled:
                tables.append(_NO_TABLE)
                continue
            side = side_text(np.full(len(price), sell))
            px = rules.slippage.fill_prices(side, price) if books is None else \
                rules.slippage.fill_prices(side, price, books)
            tables.append(np.ascontiguousarray(px, dtype=np.float64).reshape(n_dates, -1))
        for sell in (False, True):
            tables.append(limit_prices(price, np.full(len(price), not sell), p.limit_offset_bps).reshape(n_dates, -1)
                          if self.limits else _NO_TABLE)
        self.tables = tuple(tables)


def _unknown_sector(h: HistoryInputs, t: int, sec: np.ndarray, post: np.ndarray):
    """Refuse a date where a held symbol has no sector while a sector cap is set."""
    syms = h.universe[np.flatnonzero((sec == len(h.sectors)) & (post != 0)) % h.S][:10].tolist()
    raise ValidationError(f"sector is unknown for {syms} on {pd.Timestamp(h.dates[t]).date()}; a sector cap "
                          "is set, so every held symbol needs a sector")


def _sector_inputs(rules: _Rules, h: HistoryInputs, t: int, sec, post) -> dict:
    """``sec_codes`` / ``sector_lim`` for the risk kernel; a held symbol without a sector is refused."""
    if not rules.params.risk.uses_sectors:
        return {}
    if ((sec == len(h.sectors)) & (post != 0)).any():
        _unknown_sector(h, t, sec, post)
    return {"sec_codes": rules.group * (len(h.sectors) + 1) + sec, "sector_lim": rules.sector_limit[sec]}


def _controlled_orders(rules: _Rules, h: HistoryInputs, t: int, day: tuple, hold, pv, sized, label) -> tuple:
    """:func:`_orders_of_day` with rebalancing controls: :func:`~tradeloop.core.controls.decide` after sizing.
    Also returns the rows of blocked books (not sent) and the date's decisions."""
    weight, price, lot, sec, adv = day
    delta, untrimmed, cash, missing = sized
    post = hold + delta
    inputs = _sector_inputs(rules, h, t, sec, post)
    if rules.name_cap is not None:
        inputs["name_cap"] = rules.name_cap
    d = decide(rules.params.risk, simulation=True, weight=weight, price=price, lot=lot, current=hold, delta=delta,
               missing=missing, codes=rules.group, ngroups=h.P, pv=pv, adv=adv, no_buy=rules.restricted["no_buy"],
               no_trade=rules.restricted["no_trade"], risk_inputs=inputs, label=label)
    rows = np.flatnonzero(d.is_order)
    return (rows, d.sell[rows], np.abs(d.delta[rows]), untrimmed[rows], d.mask[rows], cash, (delta, untrimmed),
            d.blocked[rules.group[rows]], d.decisions)


def _execute_day(rules: _Rules, qty: np.ndarray, sell: np.ndarray, price: np.ndarray, risk: np.ndarray, caps,
                 fills: Buffers | None, first_row: int, held: np.ndarray | None = None,
                 books: np.ndarray | None = None) -> dict:
    """Work one date's orders with :func:`~tradeloop.core.engine.execute_step`: once without a liquidity model
    (every order fills whole or not at all), else over ``params.steps`` steps, stopping once a step fills nothing
    (the quote and caps are the same every step, as in a run's frozen snapshot). Risk-blocked orders start
    REJECTED, so the engine leaves them alone. Fills of several steps go to ``fills`` (``order`` = ``first_row`` +
    position)."""
    from ..core.jit import execution as jx

    p, n = rules.params, len(qty)
    is_limit = p.order_type == "LIMIT"
    models = {"limit": limit_prices(price, ~sell, p.limit_offset_bps) if is_limit else None,
              "is_limit": np.ones(n, dtype=np.bool_) if is_limit else None, "slippage": rules.slippage,
              "commission": rules.commission, "side": None if rules.slippage is None else side_text(sell),
              "books": books}
    status = jx.start_status(risk, _NOT_HELD if held is None else held)
    filled = np.zeros(n, dtype=np.int64)
    if not rules.limited:
        r = execute_step(status, qty, filled, price, sell, **models)
        outcome, fill_price = _outcomes(r.status, risk, held, r.filled, r.fill_price)
        return {"status": outcome, "filled": r.filled, "commission": r.commission, "flow": r.cash_flow,
                "fill_price": fill_price}
    avg, commission, flow = np.full(n, np.nan), np.zeros(n), np.zeros(n)
    n_fills = np.zeros(n, dtype=np.int32)
    for k in range(1, p.steps + 1):
        r = execute_step(status, qty, filled, price, sell, caps=caps, avg_price=avg, close=k == p.steps, **models)
        status, filled, avg = r.status, r.filled, r.avg_price
        now = jx.accumulate(r.fill_qty, r.commission, r.cash_flow, commission, flow, n_fills)
        if not len(now):  # caps do not change between steps: nothing fills later either
            close_out(status, r.reason)
            break
        fills.append(len(now), order=first_row + now, seq=k, qty=r.fill_qty[now], commission=r.commission[now])
    outcome, fill_price = _outcomes(status, risk, held, filled, r.fill_price)
    return {"status": outcome, "filled": filled, "n_fills": n_fills, "avg": avg, "commission": commission,
            "flow": flow, "fill_price": fill_price}


_NOT_HELD = np.zeros(0, dtype=np.bool_)


def _outcomes(status: np.ndarray, risk: np.ndarray, held: np.ndarray | None, filled: np.ndarray,
              fill_price: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Outcome codes (``simulation_orders.status_code``) of orders the engine left in ``status``, and the fill
    price of those that filled (NaN: none); ``held``: orders of a blocked book that no rule flagged (not sent)."""
    from ..core.jit import execution as jx

    return jx.outcomes(status, risk, _NOT_HELD if held is None else held, _OUTCOME_OF_STATUS, OUTCOME_RISK,
                       OUTCOME_BLOCKED, filled, fill_price)


def _order_columns(rules: _Rules) -> dict:
    columns = {"pos": np.int32, "sell": np.bool_, "qty": np.int64, "current": np.int64, "untrimmed": np.int64,
               "status": np.int8, "risk": np.uint16, "fill_price": np.float64, "commission": np.float64}
    if not rules.recover:
        columns.update({"price": np.float64, "lot": np.int64, "sector": np.int32, "weight": np.float64})
    if rules.limited:  # orders may fill in parts over params.steps steps: what filled, in how many fills, at what average
        columns.update({"filled": np.int64, "n_fills": np.int32, "avg": np.float64})
    return columns


def _run_dates(h: HistoryInputs, rules: _Rules, progress: bool) -> dict:
    """The date loop: mark, size, check, execute, carry holdings and cash to the next date
    (:func:`~tradeloop.core.jit.book.settle`: every per-portfolio sum in slot order, so one portfolio of a
    partitioned run or of a stacked sweep sums exactly as it does alone): compiled (:func:`_fast_dates`) unless
    rebalancing controls or a liquidity model are set (:func:`_stepwise_dates`)."""
    D, P = len(h.dates), h.P
    market, hold = _Market(h, rules.params), h.hold0.copy()
    day = {k: np.empty((D, P)) for k in ("pv", "cash_before", "cash_after", "gross", "net")}
    day["npos"] = np.empty((D, P), dtype=np.int64)
    day["borrow"] = np.zeros((D, P))
    out = {"day": day, "orders": Buffers(len(h.wvalue) + P * h.S, _order_columns(rules)),
           "counts": np.zeros(D, dtype=np.int64), "decisions": Buffers(64, _DECISION_COLUMNS),
           "sizing": Buffers(64, _SIZING_COLUMNS),
           "fills": Buffers(len(h.wvalue), {"order": np.int64, "seq": np.int32, "qty": np.int64,
                                            "commission": np.float64}) if rules.limited else None}
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(desc="simulate", unit="date", total=D)
    if rules.restricted is None and not rules.limited:
        _fast_dates(h, rules, market, hold, out, bar)
    else:
        _stepwise_dates(h, rules, market, hold, out, bar)
    raw = out["orders"].final()
    raw["t"] = np.repeat(np.arange(D, dtype=np.int32), out["counts"])
    return {"orders": raw, "fills": None if out["fills"] is None else out["fills"].final(), "day": day,
            "decisions": out["decisions"].final(), "sizing": out["sizing"].final()}


def _stepwise_dates(h: HistoryInputs, rules: _Rules, market: _Market, hold: np.ndarray, out: dict, bar) -> None:
    """The date loop with rebalancing controls or a liquidity model, a step at a time
    (:func:`_orders_of_day`, :func:`_execute_day`)."""
    from ..core.jit.book import settle

    P, group, day, orders = h.P, rules.group, out["day"], out["orders"]
    cash = h.cash0
    for t in range(len(h.dates)):
        weight, price, lot, _, marks, sec = market.day(t)
        cash = _charge_borrow(h, rules, t, hold, marks, cash, day["borrow"])
        pv = h.pv0 if t == 0 else cash + np.bincount(group, weights=hold * marks, minlength=P)
        day_in = (weight, price, lot, sec, None if h.padv is None else market.adv(t))
        oi, sell, qty, untrimmed, risk, cash, sized, held, dec = _orders_of_day(rules, h, t, day_in, hold, pv, cash,
                                                                                out["decisions"])
        caps = rules.params.liquidity.step_caps(market.volume(t)[oi], lot[oi]) if rules.limited else None
        done = _execute_day(rules, qty, sell, price[oi], risk, caps, out["fills"], orders.n, held,
                            None if rules.book_of_slot is None else rules.book_of_slot[oi])
        if dec is not None:
            _keep_decisions(out["decisions"], t, dec)
        filled, flow = done.pop("filled"), done.pop("flow")
        day["cash_before"][t] = cash
        day["pv"][t] = pv
        inputs = {} if rules.recover else {"price": price[oi], "lot": lot[oi], "sector": sec[oi], "weight": weight[oi]}
        if rules.limited:
            done["filled"] = filled
        orders.append(len(oi), pos=oi, sell=sell, qty=qty, current=hold[oi], untrimmed=untrimmed, risk=risk,
                      **inputs, **done)
        out["counts"][t] = len(oi)
        _keep_sizing(out["sizing"], t, untrimmed, sized, oi, rules.restricted is not None)
        settle(hold, cash, oi, sell, filled, flow, group, marks, day["cash_after"][t], day["gross"][t], day["net"][t],
               day["npos"][t])
        cash = day["cash_after"][t]
        if bar is not None:
            bar.update(1)


#: Columns of the decisions a simulation keeps (:class:`tradeloop.core.controls.Decisions` plus the date).
_DECISION_COLUMNS = {"t": np.int32, "pos": np.int32, "rule": np.int8, "action": np.int8, "observed": np.float64,
                     "limit": np.float64, "qty_before": np.int64, "qty_after": np.int64, "sell": np.bool_}


#: Columns of what sizing leaves that the orders do not keep, for :func:`replay_ledger`: per (date, slot) the
#: signed untrimmed order (target = holding + ``signed``) and the shares the cash trim removed.
_SIZING_COLUMNS = {"t": np.int32, "pos": np.int64, "signed": np.int64, "trimmed": np.int64}


def _keep_sizing(buffers: Buffers, t: int, untrimmed: np.ndarray, sized: tuple, oi: np.ndarray,
                 controlled: bool) -> None:
    """What the shortfall's ``rounding`` and ``cash_trim`` need and the orders do not say: without controls, the
    buys trimmed to nothing (an order's target and trim are its ``untrimmed`` and ``untrimmed − qty``); with
    controls (an order's ``qty`` is after them), every trimmed slot and every sized slot that is no order."""
    delta_all, untrimmed_all = sized
    if not controlled:
        from ..core.jit.day import keep_trimmed

        if np.count_nonzero(untrimmed_all) == np.count_nonzero(untrimmed):
            return
        n = np.array([buffers.n])
        keep_trimmed(t, np.ascontiguousarray(delta_all, dtype=np.int64),
                     np.ascontiguousarray(untrimmed_all, dtype=np.int64), _sizing_rows(buffers, len(delta_all)), n)
        buffers.n = int(n[0])
        return
    trimmed = untrimmed_all - np.abs(delta_all)
    sent = np.zeros(len(delta_all), dtype=bool)
    sent[oi] = True
    rows = np.flatnonzero(((untrimmed_all != 0) & ~sent) | (trimmed != 0))
    if len(rows):
        signed = np.where(delta_all[rows] < 0, -untrimmed_all[rows], untrimmed_all[rows])
        buffers.append(len(rows), t=t, pos=rows, signed=signed, trimmed=trimmed[rows])


def replay_ledger(h: HistoryInputs, sizing: dict, sim: Simulation) -> PeriodLedger:
    """The shortfall ledger of a simulation of ``h`` (:class:`~tradeloop.core.shortfall.PeriodLedger`), built when
    first asked (:attr:`Simulation.ledger`) by a second pass over the dates: the same marks, targets, trims,
    holdings and order paths the date loop had, rebuilt from the inputs, the orders, the risk decisions and
    ``sizing`` (what the loop kept of the sizing), fed to the ledger date by date as the loop would have."""
    rules = _rules(h, sim.params)
    D, P, N = len(h.dates), h.P, h.P * h.S
    market, group = _Market(h, sim.params), rules.group
    o, hold = sim.orders_raw, h.hold0.copy()
    signed_fill = np.where(o["sell"], -sim.filled_qty, sim.filled_qty)
    bounds = np.searchsorted(o["t"], np.arange(D + 1))
    dec, siz = _by_date_slot(sim.decisions_raw), _by_date_slot(sizing)
    dec_bounds, siz_bounds = (np.searchsorted(x["t"], np.arange(D + 1)) for x in (dec, siz))
    ledger, controlled = PeriodLedger(D, group, P), rules.restricted is not None
    bps = sim.params.borrow_bps_per_year
    for t in range(D):
        weight, price, _, mark, marks, _ = market.day(t)
        charged = borrow_cost(hold, marks, group, P, bps, h.dates[t] - h.dates[t - 1]) if bps > 0 and t else None
        ledger.period(mark, charged)
        rows = slice(bounds[t], bounds[t + 1])
        oi, sell, qty, status = o["pos"][rows].astype(np.intp), o["sell"][rows], o["qty"][rows], o["status"][rows]
        target, trimmed = hold.copy(), np.zeros(N, dtype=np.int64)
        target[oi] += np.where(sell, -o["untrimmed"][rows], o["untrimmed"][rows])
        if not controlled:  # an order is what sizing left: its trim is untrimmed − qty
            trimmed[oi] = o["untrimmed"][rows] - qty
        kept = slice(siz_bounds[t], siz_bounds[t + 1])
        target[siz["pos"][kept]] = hold[siz["pos"][kept]] + siz["signed"][kept]
        trimmed[siz["pos"][kept]] = siz["trimmed"][kept]
        cuts = slice(dec_bounds[t], dec_bounds[t + 1])
        path = OrderPath(oi, sell, qty, sim.filled_qty[rows], o["current"][rows], o["fill_price"][rows],
                         o["commission"][rows], o["risk"][rows], status == OUTCOME_CANCELED,
                         limit=rules.limit(price[oi], sell), finished=status != OUTCOME_BLOCKED,
                         decisions=_cuts({k: v[cuts] for k, v in dec.items()}))
        hold[oi] += signed_fill[rows]
        pv = sim.day_pv[t]
        ledger.decision(t, weight=weight, price=price, value=pv[0] if P == 1 else pv[group], target=target,
                        trimmed=trimmed, held=hold, mark=marks, orders=path)
    ledger.symbol_sector = market.last_sec.copy()
    return ledger


def _by_date_slot(rows: dict) -> dict:
    """Rows kept date by date (``t``, ``pos``), in (date, slot) order: the order the loop met them (a partitioned
    simulation concatenates them portfolio by portfolio)."""
    if not len(rows["t"]) or np.all(np.diff(rows["t"].astype(np.int64) * (1 << 32) + rows["pos"]) >= 0):
        return rows
    order = np.lexsort((rows["pos"], rows["t"]))
    return {k: v[order] for k, v in rows.items()}


def _cuts(dec: dict) -> tuple | None:
    """A date's skip and resize decisions (``decisions_raw`` rows), for the shortfall: ``(slot, rule bit,
    qty_before, qty_after, sell)`` (orders sent or not: a skipped order, or one cut to 0, is no order but its gap is
    its rule's)."""
    keep = (dec["action"] == RESIZE) | (dec["action"] == SKIP)
    if not keep.any():
        return None
    return dec["pos"][keep], dec["rule"][keep], dec["qty_before"][keep], dec["qty_after"][keep], dec["sell"][keep]


def _charge_borrow(h: HistoryInputs, rules: _Rules, t: int, hold: np.ndarray, marks: np.ndarray, cash, charged):
    """The cash after the borrow of the shorts held since the previous date (at date ``t``'s marks), each
    portfolio's cost into ``charged[t]``; the cash as it was on the first date or without a borrow rate."""
    bps = rules.params.borrow_bps_per_year
    if bps <= 0 or t == 0:
        return cash
    charged[t] = borrow_cost(hold, marks, rules.group, h.P, bps, h.dates[t] - h.dates[t - 1])[0]
    return cash - charged[t]


def _days_held(held) -> np.ndarray | float:
    """Calendar days (fractions included) in a ``timedelta64`` or an array of them."""
    return held / np.timedelta64(1, "s") / 86_400.0


def borrow_cost(hold: np.ndarray, marks: np.ndarray, group: np.ndarray, P: int, bps_per_year: float,
                held: np.timedelta64) -> tuple[np.ndarray, np.ndarray]:
    """Borrow cost ``|short market value| × bps_per_year / 1e4 × days held / 365`` (calendar days, fractions
    included), the short market value at the marks of the date the cost is charged: per portfolio (cash) and per
    slot (the shortfall's ``borrow`` cost of each symbol); :func:`~tradeloop.core.jit.market.borrow`."""
    from ..core.jit.market import borrow

    per_book, per_slot = np.empty(P), np.empty(len(hold))
    borrow(hold, np.ascontiguousarray(marks, dtype=np.float64), np.ascontiguousarray(group, dtype=np.intp),
           bps_per_year / 1e4, _days_held(held), per_book, per_slot)
    return per_book, per_slot


def _keep_decisions(buffers: Buffers, t: int, dec) -> None:
    buffers.append(len(dec), t=t, pos=dec.row, rule=dec.rule, action=dec.action, observed=dec.observed,
                   limit=dec.limit, qty_before=dec.qty_before, qty_after=dec.qty_after, sell=dec.sell)


def simulate(
    weights: pd.DataFrame,
    prices: pd.DataFrame,
    *,
    portfolio_value: float | Mapping[str, float],
    params: RunParams | None = None,
    positions: pd.DataFrame | None = None,
    cash: float | Mapping[str, float] | None = None,
    model_version: str = "sim",
    simulation_id: str | None = None,
    progress: bool = False,
    scheduler: str | None = None,
    workers: int | None = None,
) -> Simulation:
    """Simulate the rebalances of a weight history (see the module docstring for the rules).

    Parameters
    ----------
    weights : DataFrame
        ``date``, ``symbol``, ``weight`` and optionally ``portfolio``: one row per (date, portfolio, symbol). Each
        date is a rebalance; a held symbol without a row that date is sold down (weight 0). Date rules (weights and
        prices alike): ISO 8601 text, datetimes or YYYYMMDD integers; a value with a UTC offset or time zone is
        converted to UTC, one without is UTC; whole seconds only; anything else is refused naming the row.
    prices : DataFrame
        ``date``, ``symbol``, ``price`` and optionally ``volume`` (shares per execution step, read by
        ``params.liquidity``; missing = unknown volume), ``sector``, ``lot_size`` (default ``params.lot_size``). A symbol without a price on a date cannot be sized: its order
        is REJECTED with ``missing_price``, and the holding is valued at its last known price. A missing sector
        carries the last known one forward. Every rebalance date needs at least one price row.
    portfolio_value : float or mapping of portfolio -> float
        Value on the first date (afterwards: cash + holdings marked to market).
    params : RunParams, optional
        Cash buffer, lot size, max leverage (checked per date and portfolio), order type, risk limits, slippage,
        commission, liquidity and steps, exactly as for a run. ``params.cash`` is the first date's cash unless ``cash`` is given.
    positions : DataFrame, optional
        ``symbol``, ``qty`` [, ``portfolio``]: holdings before the first date.
    cash : float or mapping, optional
        Cash before the first date; default ``portfolio_value − holdings`` at the first date's prices.
    model_version : str
        Part of every order key, as in a run.
    simulation_id : str, optional
        Default: ``sim-`` + 16 hex digits of a sha256 over the inputs (computed when first needed), so the same
        inputs give the same simulation, run ids and order keys.
    progress : bool
        Show a tqdm progress bar over dates (on stderr; not when partitioned).
    scheduler : str, optional
        Where to run when the weights hold several portfolios: ``"local"`` (a Dask LocalCluster), a Dask scheduler
        address ``"tcp://host:port"``, or None (this machine, see ``workers``); each portfolio's whole history is
        one task (:mod:`tradeloop.workflows.partition`) and the result is the same simulation, to the last bit.
        One portfolio runs in this process whatever ``scheduler`` says: a history is never split along time
        (holdings carry from date to date). ``$TRADELOOP_SCHEDULER`` is not read here (the command line reads it).
    workers : int, optional
        Local processes (or LocalCluster workers with ``scheduler="local"``) for the portfolios; None: 1 (or 2).

    Returns
    -------
    Simulation
        ``orders``, ``fills``, ``positions``, ``cash`` and ``summary`` DataFrames (documented on the class).

    Raises
    ------
    ValidationError
        A missing or unknown column, a bad value (naming ``symbol@date``), a duplicate row, weights beyond
        ``params.max_leverage`` on some date, a date without prices, or a held symbol without a sector when a
        sector cap is set.

    Examples
    --------
    >>> from tradeloop.core.synthetic import synthetic_history
    >>> w, p = synthetic_history(5, 20, seed=1)
    >>> sim = simulate(w, p, portfolio_value=1e6)
    >>> sim.summary[["n_orders", "n_filled"]].iloc[0].tolist()
    [20, 20]
    """
    return simulate_on(weights, prices, portfolio_value=portfolio_value, params=params, positions=positions,
                       cash=cash, model_version=model_version, simulation_id=simulation_id, progress=progress,
                       scheduler=scheduler, workers=workers)[0]


def simulate_on(weights, prices, *, portfolio_value, params: RunParams | None = None, positions=None, cash=None,
                model_version: str = "sim", simulation_id: str | None = None, progress: bool = False,
                scheduler: str | None = None, workers: int | None = None) -> tuple[Simulation, str, int]:
    """:func:`simulate`, and where it ran and in how many tasks (for summaries)."""
    from .executors import check_scheduler

    params = params or RunParams()
    check_model_version(model_version)
    if simulation_id is not None:
        check_simulation_id(simulation_id)
    scheduler = check_scheduler(scheduler, workers)
    h = prepare_history(weights, prices, portfolio_value=portfolio_value, params=params, positions=positions, cash=cash)
    if h.P > 1 and (scheduler is not None or (workers or 1) > 1):
        from .partition import run_partitioned

        check_scheduler(scheduler, workers, available=scheduler is not None)
        sim, where = run_partitioned(h, params, model_version=model_version, simulation_id=simulation_id,
                                     scheduler=scheduler, workers=workers)
        return sim, where, h.P
    sim = run_history(h, params, model_version=model_version, simulation_id=simulation_id, progress=progress)
    return sim, "this process", 1


def history_digest(h: HistoryInputs, params: RunParams, model_version: str) -> str:
    """The ``inputs_digest`` (and so the ``simulation_id``) :func:`run_history` will give, without running it."""
    return inputs_digest(params, model_version, h.pv0, h.cash0, h.universe, h.portfolios, h.sectors, h.dates,
                         (*h.digest_parts(), h.hold0))


def run_history(h: HistoryInputs, params: RunParams, *, model_version: str, simulation_id: str | None = None,
                progress: bool = False) -> Simulation:
    """The date loop of :func:`simulate` over inputs :func:`prepare_history` checked with the same ``params``."""
    rules = _rules(h, params)
    out = _run_dates(h, rules, progress)
    return make_simulation(h, rules.recover, params, model_version, simulation_id, out)


def make_simulation(h: HistoryInputs, recover: bool, params: RunParams, model_version: str,
                    simulation_id: str | None, out: dict) -> Simulation:
    """The :class:`Simulation` of the date loop's output ``out`` (``orders``, ``fills``, ``day``, ``decisions``,
    ``sizing``) over ``h``."""
    day = out["day"]
    return Simulation(
        dates=h.dates, universe=h.universe, portfolios=h.portfolios, named_portfolios=h.named, sectors=h.sectors,
        params=params, model_version=model_version, portfolio_value=h.pv0, initial_cash=h.cash0,
        initial_positions=h.hold0, orders_raw=out["orders"], day_pv=day["pv"], day_cash_before=day["cash_before"],
        day_borrow=day["borrow"],
        day_cash_after=day["cash_after"], day_holdings=(day["gross"], day["net"], day["npos"]),
        given_id=simulation_id, fills_raw=out["fills"], _digest_parts=h.digest_parts(),
        _ledger_replay=ledger_replay(h, out["sizing"]), decisions_raw=out["decisions"],
        _inputs={"recover": recover, "wvalue": h.wvalue, "pbounds": h.pbounds, "psym": h.psym,
                 "pprice": h.pprice, "plot": h.plot, "psec": h.psec},
    )


def ledger_replay(h: HistoryInputs, sizing: dict):
    """What a :class:`Simulation` of ``h`` calls to build its shortfall ledger when first asked
    (:func:`replay_ledger`), holding only the inputs that pass reads."""
    slim = dataclasses.replace(h, wd=h.wd[:0], pd_codes=h.pd_codes[:0], pvol=None, padv=None,
                               wpos=h.wpos[:0] if h.dense_w else h.wpos)
    return functools.partial(replay_ledger, slim, sizing)
