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
4. fills them like the mock venue (:func:`tradeloop.core.engine.fill_prices`, the run's slippage and commission models;
   with a liquidity model, over ``params.steps`` steps as :func:`tradeloop.core.engine.work_orders` does: each step fills
   at most the cap from that date's ``volume``, commission is charged per fill, and what is still open after the
   last step is CANCELED with ``unfilled_at_close``), then moves cash and positions. The next date rebuilds its
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

import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pandas as pd

from ..core.digest import canonical_json
from ..core.engine import average_fill_price, fill_prices
from ..core.risk import RISK_CODES, post_trade, risk_checks, sector_limits
from ..core.sizing import (
    _hash_strings,
    combine_keys,
    format_client_order_ids,
    limit_prices,
    size_orders,
)
from ..core.validate import SYMBOL_PATTERN, check_columns, numeric_column
from ..errors import ValidationError
from ..venue.liquidity import NoLiquidityLimit
from .params import RunParams

__all__ = ["simulate", "Simulation", "SIM_ORDER_COLUMNS", "SIM_SUMMARY_COLUMNS", "ORDER_STATUS_NAMES"]

#: Status of a simulated order by code: 0 FILLED, 1 REJECTED by risk, 2 REJECTED for a missing price,
#: 3 CANCELED (``unfilled_at_close``: a LIMIT order whose limit was not reached, or what a liquidity model left open
#: after the date's last step; ``filled_qty`` says whether some of it filled).
ORDER_STATUS_NAMES = ("FILLED", "REJECTED", "REJECTED", "CANCELED")
_FILLED, _RISK, _NO_PRICE, _CANCELED = 0, 1, 2, 3

#: Columns of :attr:`Simulation.orders` (``portfolio`` only when the weights have one).
SIM_ORDER_COLUMNS = (
    "date", "portfolio", "run_id", "order_key", "symbol", "side", "qty", "order_type", "limit_price", "price",
    "sector", "lot_size", "target_weight", "current_qty", "target_qty", "untrimmed_qty", "status", "filled_qty",
    "n_fills", "avg_fill_price", "fill_price", "commission", "risk_codes", "reject_reason",
)
#: Columns of :attr:`Simulation.summary`.
SIM_SUMMARY_COLUMNS = (
    "date", "portfolio", "run_id", "portfolio_value", "cash_before", "n_orders", "n_filled", "n_blocked",
    "n_missing_price", "n_canceled", "n_partial", "buy_notional", "sell_notional", "commission", "turnover",
    "cash_after", "end_value", "gross_exposure", "net_exposure", "n_positions",
) + tuple(f"blocked_{c}" for c in RISK_CODES)


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


def _dates(col: pd.Series, what: str) -> np.ndarray:
    if col.dtype == np.dtype("datetime64[ns]"):  # already naive datetimes: no parsing, no copy
        out = col.to_numpy()
        if np.isnat(out).any():
            raise ValidationError(f"{what}: date is missing in row {int(np.flatnonzero(np.isnat(out))[0]) + 1}")
        return out
    try:
        values = pd.to_datetime(col, errors="raise")
    except (ValueError, TypeError) as e:
        raise ValidationError(f"{what}: column 'date' has a value that is not a date ({e})") from None
    if getattr(values.dt, "tz", None) is not None:
        values = values.dt.tz_convert("UTC").dt.tz_localize(None)
    out = values.to_numpy(dtype="datetime64[ns]")
    if np.isnat(out).any():
        raise ValidationError(f"{what}: date is missing in row {int(np.flatnonzero(np.isnat(out))[0]) + 1}")
    return out


def _date_codes(values: np.ndarray, index: pd.Index, is_sorted: bool) -> np.ndarray:
    """Position of each date in ``index`` (-1 if absent); sorted input is mapped run by run, without hashing."""
    if not is_sorted or len(values) == 0:
        return index.get_indexer(values)
    starts = np.r_[0, np.flatnonzero(values[1:] != values[:-1]) + 1]
    lengths = np.diff(np.r_[starts, len(values)])
    return np.repeat(index.get_indexer(values[starts]), lengths)


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
                f"{what}: {name} {s!r} is not allowed; use 1-32 letters, digits and . _ - / : (no spaces, quotes, "
                "semicolons or newlines)"
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
             nonnegative=False, integer=False) -> np.ndarray:
    """:func:`tradeloop.core.validate.numeric_column` with a one-pass fast path for clean numeric columns (the common
    case at ten million rows); anything doubtful goes through the full check for its message."""
    raw = df[column]
    if raw.dtype.kind in "iu" and (positive or nonnegative):
        values = raw.to_numpy()
        low = values.min(initial=1)
        if (low > 0 if positive else low >= 0):
            return values.astype(np.int64, copy=False) if integer else values.astype(np.float64)
    elif raw.dtype.kind == "f" and not integer:
        values = raw.to_numpy(dtype=np.float64)
        low, high = values.min(initial=np.inf), values.max(initial=-np.inf)
        if np.isfinite(low) and np.isfinite(high) and (not positive or low > 0) and (not nonnegative or low >= 0):
            return values
    return numeric_column(df, column, what, rows, allow_missing=allow_missing, positive=positive,
                          nonnegative=nonnegative, integer=integer)


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


class _Buffers:
    """Growable column buffers: per-date chunks are written in place, never concatenated."""

    def __init__(self, capacity: int, dtypes: dict[str, str]):
        self.n = 0
        self.cols = {k: np.empty(max(capacity, 16), dtype=d) for k, d in dtypes.items()}

    def append(self, m: int, **values) -> None:
        end = self.n + m
        cap = len(next(iter(self.cols.values())))
        if end > cap:
            new_cap = max(end, 2 * cap)
            for k, a in self.cols.items():
                grown = np.empty(new_cap, dtype=a.dtype)
                grown[: self.n] = a[: self.n]
                self.cols[k] = grown
        for k, v in values.items():
            self.cols[k][self.n:end] = v
        self.n = end

    def final(self) -> dict[str, np.ndarray]:
        return {k: a[: self.n] for k, a in self.cols.items()}


def _work_day(may_fill: np.ndarray, qty: np.ndarray, sell: np.ndarray, fill_px: np.ndarray, caps: np.ndarray,
              steps: int, commission_model, fills: _Buffers, first_row: int) -> dict:
    """Work one date's orders over ``steps`` execution steps with the rules of :func:`tradeloop.core.engine.work_orders`.

    Every step fills each order that ``may_fill`` at ``fill_px`` (the quote and volume are the same every step, as
    in a run's frozen snapshot) for ``min(remaining, cap)``, charges commission per fill and averages the fill price
    rounded as on a stored order; the caller cancels the unfilled rest at the close. One fill row per order and step
    goes into ``fills`` (``order`` = ``first_row`` + position). The loop is over steps (stopping once nothing
    fills), never over orders.

    Returns ``filled``, ``n_fills``, ``avg``, ``commission`` (sum over fills) and ``flow`` (cash: Σ ±qty × price −
    commission, summed fill by fill) per order.
    """
    n = len(qty)
    cap = np.asarray(caps, dtype=np.float64)
    cap = np.clip(np.where(np.isnan(cap), 0.0, cap), 0.0, None)  # a cap it cannot tell lets nothing fill
    remaining = np.where(may_fill, qty, 0)
    filled = np.zeros(n, dtype=np.int64)
    n_fills = np.zeros(n, dtype=np.int32)
    avg = np.full(n, np.nan)
    commission = np.zeros(n)
    flow = np.zeros(n)
    sign = np.where(sell, 1.0, -1.0)
    for k in range(1, steps + 1):
        q = np.minimum(remaining, cap).astype(np.int64)
        now = np.flatnonzero(q > 0)
        if not len(now):  # caps do not change between steps: nothing fills later either
            break
        qn, px = q[now], fill_px[now]
        fee = np.asarray(commission_model.commissions(qn, px), dtype=np.float64)
        avg[now] = average_fill_price(avg[now], filled[now], px, qn)
        flow[now] += sign[now] * qn * px - fee
        commission[now] += fee
        filled[now] += qn
        remaining[now] -= qn
        n_fills[now] += 1
        fills.append(len(now), order=first_row + now, seq=k, qty=qn, commission=fee)
    return {"filled": filled, "n_fills": n_fills, "avg": avg, "commission": commission, "flow": flow}


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
) -> "Simulation":
    """Simulate the rebalances of a weight history (see the module docstring for the rules).

    Parameters
    ----------
    weights : DataFrame
        ``date``, ``symbol``, ``weight`` and optionally ``portfolio``: one row per (date, portfolio, symbol). Each
        date is a rebalance; a held symbol without a row that date is sold down (weight 0).
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
        Show a tqdm progress bar over dates (on stderr).

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
    params = params or RunParams()
    if not isinstance(model_version, str) or not model_version.strip() or len(model_version) > 128:
        raise ValidationError(f"model_version {model_version!r} must be a non-empty string of at most 128 characters")
    if simulation_id is not None and (not isinstance(simulation_id, str) or not SYMBOL_PATTERN.fullmatch(simulation_id)):
        raise ValidationError(f"simulation_id {simulation_id!r} is not allowed; use 1-32 letters, digits, . _ - / :")
    check_columns(weights, "weights", ("date", "symbol", "weight"), ("portfolio",))
    check_columns(prices, "prices", ("date", "symbol", "price"), ("volume", "sector", "lot_size"))
    if positions is not None:
        check_columns(positions, "positions", ("symbol", "qty"), ("portfolio",))

    # ---- factorize once: dates, symbols (one sorted universe), portfolios, sectors
    wdate = _dates(weights["date"], "weights")
    pdate = _dates(prices["date"], "prices")
    w_sorted = len(wdate) < 2 or bool(np.all(wdate[1:] >= wdate[:-1]))
    dates = wdate[np.r_[0, np.flatnonzero(wdate[1:] != wdate[:-1]) + 1]] if w_sorted else np.unique(wdate)
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
    P = len(portfolios)
    N = P * S
    # position of each weight row in the (portfolio, symbol) vector of a date
    wpos = wsym if not named else wport.astype(np.int64) * S + wsym

    # ---- values, validated where they enter
    wvalue = _numeric(weights, "weight", "weights", _Rows(weights["symbol"], wdate))
    prow = _Rows(prices["symbol"], pdate)
    pprice = _numeric(prices, "price", "prices", prow, allow_missing=True, positive=True)
    if "lot_size" in prices:
        plot = _numeric(prices, "lot_size", "prices", prow, allow_missing=True, positive=True, integer=True)
        if plot.dtype.kind == "f":
            plot = np.where(np.isnan(plot), params.lot_size, plot).astype(np.int64)
    else:
        plot = np.full(len(prices), params.lot_size, dtype=np.int64)
    # Volume matters only to a liquidity model; without one it is validated and dropped (the fast path).
    limited = not isinstance(params.liquidity, NoLiquidityLimit)
    pvol = None
    if "volume" in prices:
        pvol = _numeric(prices, "volume", "prices", prow, allow_missing=True, nonnegative=True)
    if not limited:
        pvol = None
    elif pvol is None:
        pvol = np.full(len(prices), np.nan)
    if "sector" in prices:
        sec_raw = prices["sector"]
        if isinstance(sec_raw.dtype, pd.CategoricalDtype):
            psec, sectors = sec_raw.cat.codes.to_numpy(), sec_raw.cat.categories
        else:
            text = sec_raw.astype("string").str.strip()
            psec, sectors = pd.factorize(text.where(text != "").astype(object), sort=False)
        psec = np.asarray(psec)
        # canonical codes: used sectors only, sorted by name (categorical and text input give the same simulation)
        used = np.flatnonzero(np.bincount(psec.astype(np.int32) + 1, minlength=len(sectors) + 1)[1:] > 0)
        names = np.array([str(sectors[i]) for i in used], dtype=object)
        order = np.argsort(names, kind="stable")
        remap = np.full(len(sectors) + 1, -1, dtype=np.int32)
        remap[used[order]] = np.arange(len(used))
        if len(used) != len(sectors) or not np.array_equal(remap[:-1], np.arange(len(sectors))):
            psec = remap[psec]  # -1 (missing) maps to remap[-1] == -1
        sectors = names[order]
    else:
        sectors = np.array([], dtype=object)
        psec = np.full(len(prices), -1, dtype=np.int8)

    date_index = pd.Index(dates)
    D = len(dates)
    wd = _date_codes(wdate, date_index, w_sorted)
    pd_codes = _date_codes(pdate, date_index, len(pdate) < 2 or bool(np.all(pdate[1:] >= pdate[:-1])))
    if pd_codes.min(initial=0) < 0:  # price rows on other dates are not used
        idx = np.flatnonzero(pd_codes >= 0)
        pd_codes, psym, pprice, plot, psec = pd_codes[idx], psym[idx], pprice[idx], plot[idx], psec[idx]
        pvol = None if pvol is None else pvol[idx]
    # Dense layout (every date has every (portfolio, symbol) once, in order) is sorted and unique by construction.
    dense_w = _is_dense(wd, wpos, D, N)
    dense_p = _is_dense(pd_codes, psym, D, S)
    worder = None if dense_w else _sorted_rows(
        wd, wpos, N, "weights", lambda r: f"{weights['symbol'].iloc[r]}@{pd.Timestamp(wdate[r]).date()}"
        + (f" in portfolio {weights['portfolio'].iloc[r]}" if named else ""))
    if worder is not None:
        wd, wpos, wvalue = wd[worder], wpos[worder], wvalue[worder]
        dense_w = _is_dense(wd, wpos, D, N)
    porder = None if dense_p else _sorted_rows(
        pd_codes, psym, S, "prices", lambda r: f"{universe[psym[r]]}@{pd.Timestamp(dates[pd_codes[r]]).date()}")
    if porder is not None:
        pd_codes, psym, pprice, plot, psec = (a[porder] for a in (pd_codes, psym, pprice, plot, psec))
        pvol = None if pvol is None else pvol[porder]
        dense_p = _is_dense(pd_codes, psym, D, S)
    wbounds = np.searchsorted(wd, np.arange(D + 1))
    pbounds = np.searchsorted(pd_codes, np.arange(D + 1))
    no_prices = np.flatnonzero(np.diff(pbounds) == 0)
    if len(no_prices):
        raise ValidationError(f"prices have no row for date {pd.Timestamp(dates[no_prices[0]]).date()}; every "
                              "rebalance date in the weights needs prices")
    if P == 1:
        gross = np.add.reduceat(np.abs(wvalue), wbounds[:-1]) if len(wvalue) else np.zeros(D)
        gross[np.diff(wbounds) == 0] = 0.0
    else:
        gross = np.bincount(wd.astype(np.int64) * P + wpos // S, weights=np.abs(wvalue), minlength=D * P)
    over = np.flatnonzero(gross > params.max_leverage + 1e-9)
    if len(over):
        t, p = divmod(int(over[0]), P)
        raise ValidationError(
            f"weights on {pd.Timestamp(dates[t]).date()}{f' for portfolio {portfolios[p]!r}' if named else ''} sum "
            f"to {gross[over[0]]:.6g} in absolute value, beyond params.max_leverage {params.max_leverage:g}"
        )

    hold = np.zeros(N, dtype=np.int64)
    if positions is not None and len(positions):
        xq = numeric_column(positions, "qty", "positions", positions["symbol"].astype(str), integer=True)
        if "portfolio" in positions:
            xp = pd.Index(portfolios).get_indexer(positions["portfolio"].astype(str))
            if (xp < 0).any():
                bad = positions["portfolio"].astype(str).to_numpy()[xp < 0][0]
                raise ValidationError(f"positions: portfolio {bad!r} has no weights")
        elif named:
            raise ValidationError("positions need a 'portfolio' column when the weights have one")
        else:
            xp = np.zeros(len(positions), dtype=np.int64)
        xpos = xp * S + xsym
        if len(np.unique(xpos)) != len(xpos):
            raise ValidationError("positions: duplicate symbol(s) per portfolio")
        hold[xpos] = xq.astype(np.int64)
    pv0 = _per_portfolio(portfolio_value, portfolios, "portfolio_value", allow_none=False, minimum=0.0)
    cash0 = _per_portfolio(cash if cash is not None else params.cash, portfolios, "cash", allow_none=True,
                           minimum=-math.inf)

    # ---- per-universe constants
    limits = params.risk
    codes = np.repeat(np.arange(P, dtype=np.intp), S)
    name_cap = None
    if limits.single_name_caps:
        name_cap = np.tile(pd.Series(universe).map(limits.single_name_caps).to_numpy(dtype="float64"), P)
    sec_lim_of = None
    if limits.uses_sectors:  # index n_sectors = unknown sector
        per = pd.Series(list(sectors) + [None], dtype=object).map(limits.sector_caps).to_numpy(dtype="float64")
        sec_lim_of = sector_limits(limits, per)
    n_sec = len(sectors) + 1
    is_limit_type = params.order_type == "LIMIT"
    initial_hold = hold.copy()

    day_pv = np.empty((D, P))
    day_cash_before = np.empty((D, P))
    day_cash_after = np.empty((D, P))
    last_px = np.full(S, np.nan)
    last_sec = np.full(S, len(sectors), dtype=np.int64)  # len(sectors): unknown
    has_nan_price = bool(np.isnan(pprice).any())
    has_missing_sector = bool((psec < 0).any())
    group_cash = cash0
    # Output bytes are the loop's main cost (every new page is a fault): when the inputs are dense, an order's
    # weight, price, lot size and sector are read back from the inputs later instead of being copied here.
    recover = dense_w and dense_p and (not has_missing_sector or len(sectors) == 0)
    columns = {"pos": np.int32, "sell": np.bool_, "qty": np.int64, "current": np.int64, "untrimmed": np.int64,
               "status": np.int8, "risk": np.uint8, "fill_price": np.float64, "commission": np.float64}
    if not recover:
        columns.update({"price": np.float64, "lot": np.int64, "sector": np.int32, "weight": np.float64})
    if limited:  # orders may fill in parts over params.steps steps: what filled, in how many fills, at what average
        columns.update({"filled": np.int64, "n_fills": np.int32, "avg": np.float64})
        fills = _Buffers(len(wvalue), {"order": np.int64, "seq": np.int32, "qty": np.int64, "commission": np.float64})
    orders = _Buffers(len(wvalue) + N, columns)
    counts = np.zeros(D, dtype=np.int64)
    day_gross, day_net, day_npos = np.empty((D, P)), np.empty((D, P)), np.empty((D, P), dtype=np.int64)

    days = range(D)
    if progress:
        from tqdm.auto import tqdm

        days = tqdm(days, desc="simulate", unit="date", total=D)
    for t in days:
        wa, wb = wbounds[t], wbounds[t + 1]
        pa, pb = pbounds[t], pbounds[t + 1]
        if dense_w:  # every (portfolio, symbol) has a row each date, in order: the slice is the vector
            weight = wvalue[wa:wb]
        else:
            weight = np.zeros(N)
            weight[wpos[wa:wb]] = wvalue[wa:wb]
        ps = psym[pa:pb]
        if dense_p:
            px_s, lot_s = pprice[pa:pb], plot[pa:pb]
        else:
            px_s = np.full(S, np.nan)
            px_s[ps] = pprice[pa:pb]
            lot_s = np.full(S, params.lot_size, dtype=np.int64)
            lot_s[ps] = plot[pa:pb]
        if dense_p and not has_nan_price:
            last_px = px_s
        elif has_nan_price:
            ok = ~np.isnan(pprice[pa:pb])
            last_px[ps[ok]] = pprice[pa:pb][ok]
        else:
            last_px[ps] = pprice[pa:pb]
        if dense_p and not has_missing_sector:
            last_sec = psec[pa:pb]
        elif has_missing_sector:
            ok = psec[pa:pb] >= 0
            last_sec[ps[ok]] = psec[pa:pb][ok]
        else:
            last_sec[ps] = psec[pa:pb]
        if P == 1:
            price, lot, mark, sec = px_s, lot_s, last_px, last_sec
        else:
            price, lot, mark, sec = np.tile(px_s, P), np.tile(lot_s, P), np.tile(last_px, P), np.tile(last_sec, P)
        if limited:
            if dense_p:
                vol = pvol[pa:pb]
            else:
                vol = np.full(S, np.nan)
                vol[ps] = pvol[pa:pb]
            if P > 1:
                vol = np.tile(vol, P)

        if t == 0:
            group_pv = pv0
        else:
            group_pv = group_cash + np.bincount(
                codes, weights=hold * (mark if recover and not has_nan_price else np.nan_to_num(mark)), minlength=P)
        delta, untrimmed, group_cash, missing = size_orders(
            weight, price, lot, hold, codes, group_pv, group_cash, params.cash_buffer)
        unsized = missing & (weight != 0) & (delta == 0)
        is_order = (delta != 0) | unsized
        sell = (delta < 0) | (unsized & (weight < 0))
        qty = np.abs(delta)
        signed = np.where(sell, -qty, qty)
        post, post_w, growing = post_trade(is_order, price, group_pv[codes], hold, signed)
        sec_codes = sector_lim = None
        if limits.uses_sectors:
            unknown = (sec == len(sectors)) & (post != 0)
            if unknown.any():
                syms = universe[np.flatnonzero(unknown) % S][:10].tolist()
                raise ValidationError(f"sector is unknown for {syms} on {pd.Timestamp(dates[t]).date()}; a sector cap "
                                      "is set, so every held symbol needs a sector")
            sec_codes = codes * n_sec + sec
            sector_lim = sec_lim_of[sec]
        checks = risk_checks(limits, is_order=is_order, price=price, qty=qty, signed=signed, post=post,
                             post_w=post_w, growing=growing, codes=codes, ngroups=P, name_cap=name_cap,
                             sec_codes=sec_codes, sector_lim=sector_lim)

        oi = np.flatnonzero(is_order)
        bits = np.zeros(N, dtype=np.uint8)
        for code, mask, _, _ in checks:
            bits |= mask.view(np.uint8) << np.uint8(RISK_CODES.index(code))
        risk = bits[oi]
        o_sell = sell[oi]
        o_qty = qty[oi]
        o_price = price[oi]
        o_missing = missing[oi]
        side = np.where(o_sell, "SELL", "BUY")
        limit = limit_prices(o_price, ~o_sell, params.limit_offset_bps) if is_limit_type else np.full(len(oi), np.nan)
        fill_px, crosses = fill_prices(params.slippage, side, o_price, limit, np.full(len(oi), is_limit_type))
        status = np.where(risk != 0, np.int8(_RISK), np.where(
            o_missing, np.int8(_NO_PRICE), np.where(crosses, np.int8(_FILLED), np.int8(_CANCELED))))
        if limited:
            worked = _work_day(status == _FILLED, o_qty, o_sell, fill_px, params.liquidity.step_caps(vol[oi], lot[oi]),
                               params.steps, params.commission, fills, orders.n)
            filled_qty, commission, flow = worked["filled"], worked["commission"], worked["flow"]
            status = np.where((status == _FILLED) & (filled_qty < o_qty), np.int8(_CANCELED), status)
            fill_px = np.where(filled_qty > 0, fill_px, np.nan)
            extra = {"filled": filled_qty, "n_fills": worked["n_fills"], "avg": worked["avg"]}
        else:
            filled = status == _FILLED
            fill_px = np.where(filled, fill_px, np.nan)
            commission = np.zeros(len(oi))
            if filled.any():
                commission[filled] = params.commission.commissions(o_qty[filled], fill_px[filled])
            flow = np.where(filled, np.where(o_sell, 1.0, -1.0) * o_qty * fill_px - commission, 0.0)
            extra = {}
        day_cash_before[t] = group_cash
        group_cash = group_cash + np.bincount(codes[oi], weights=flow, minlength=P)
        day_cash_after[t] = group_cash
        day_pv[t] = group_pv
        inputs = {} if recover else {"price": o_price, "lot": lot[oi], "sector": sec[oi], "weight": weight[oi]}
        orders.append(len(oi), pos=oi, sell=o_sell, qty=o_qty, current=hold[oi], untrimmed=untrimmed[oi],
                      status=status, risk=risk, fill_price=fill_px, commission=commission, **inputs, **extra)
        counts[t] = len(oi)
        if limited:
            hold[oi] += np.where(o_sell, -filled_qty, filled_qty)
        else:
            hold[oi] += np.where(filled, signed[oi], 0)
        value = hold * (mark if recover and not has_nan_price else np.nan_to_num(mark))
        if P == 1:
            day_gross[t], day_net[t], day_npos[t] = np.abs(value).sum(), value.sum(), np.count_nonzero(hold)
        else:
            day_gross[t] = np.bincount(codes, weights=np.abs(value), minlength=P)
            day_net[t] = np.bincount(codes, weights=value, minlength=P)
            day_npos[t] = np.bincount(codes, weights=hold != 0, minlength=P)

    raw = orders.final()
    raw["t"] = np.repeat(np.arange(D, dtype=np.int32), counts)
    return Simulation(
        dates=dates, universe=universe, portfolios=portfolios, named_portfolios=named, sectors=sectors,
        params=params, model_version=model_version, portfolio_value=pv0, initial_cash=cash0,
        initial_positions=initial_hold, orders_raw=raw, day_pv=day_pv, day_cash_before=day_cash_before,
        day_cash_after=day_cash_after, day_holdings=(day_gross, day_net, day_npos), given_id=simulation_id,
        fills_raw=fills.final() if limited else None,
        # a dense layout is fully described by its shape, so its row keys need no hashing
        _digest_parts=(*((b"dense-weights",) if dense_w else (wd.astype(np.int32, copy=False),
                                                               wpos.astype(np.int64, copy=False))),
                       wvalue,
                       *((b"dense-prices",) if dense_p else (pd_codes.astype(np.int32, copy=False),
                                                              psym.astype(np.int32, copy=False))),
                       pprice, plot.astype(np.int64, copy=False), psec.astype(np.int32, copy=False),
                       # volume changes the fills only under a liquidity model (then it is part of the identity)
                       *((b"volume", pvol) if limited else ())),
        _inputs={"recover": recover, "wvalue": wvalue, "pbounds": pbounds, "psym": psym, "pprice": pprice,
                 "plot": plot, "psec": psec},
    )


@dataclass(eq=False)
class Simulation:
    """The result of :func:`simulate`. Arrays inside; DataFrames are built when first read.

    Attributes
    ----------
    orders : DataFrame
        :data:`SIM_ORDER_COLUMNS`, one row per order, sorted by date, portfolio, symbol. ``status`` FILLED /
        REJECTED / CANCELED; ``risk_codes`` ``;``-joined codes of the rules that blocked it (empty if none);
        ``reject_reason`` ``risk:<codes>``, ``missing_price``, ``unfilled_at_close`` or None; ``filled_qty`` shares
        filled (a CANCELED order may have some: partial fills before the close); ``n_fills`` its number of fills;
        ``avg_fill_price``; ``fill_price`` the price of its fills (the same quote every step; NaN if none);
        ``commission`` the sum over its fills; ``order_key`` the uint64 behind ``client_order_id``. Text columns
        are categoricals.
    fills : DataFrame
        ``date``, ``portfolio``, ``run_id``, ``order_key``, ``symbol``, ``side``, ``seq``, ``qty``, ``price``,
        ``commission``: one row per fill, sorted by order then ``seq`` (1, 2, … per execution step).
    positions : DataFrame
        ``date``, ``portfolio``, ``symbol``, ``qty``, ``price`` (mark: that date's price, else the last known),
        ``market_value``: holdings after each date's fills (nonzero only).
    cash : DataFrame
        ``date``, ``portfolio``, ``cash``: cash after each date's fills.
    summary : DataFrame
        :data:`SIM_SUMMARY_COLUMNS`, one row per (date, portfolio): ``portfolio_value`` (before trading),
        ``cash_before`` / ``cash_after``, order counts by outcome (``n_partial``: CANCELED after partial fills),
        ``buy_notional`` / ``sell_notional`` (filled, at fill prices), ``commission``, ``turnover`` ((buy + sell) /
        value), ``end_value`` (cash + holdings after),
        ``gross_exposure`` / ``net_exposure`` (Σ|value| / Σ value of holdings over ``end_value``),
        ``n_positions``, and ``blocked_<code>`` per risk rule.
    """

    dates: np.ndarray
    universe: np.ndarray
    portfolios: np.ndarray
    named_portfolios: bool
    sectors: np.ndarray
    params: RunParams
    model_version: str
    portfolio_value: np.ndarray
    initial_cash: np.ndarray | None
    initial_positions: np.ndarray
    orders_raw: dict
    day_pv: np.ndarray
    day_cash_before: np.ndarray
    day_cash_after: np.ndarray
    day_holdings: tuple = ()
    given_id: str | None = None
    fills_raw: dict | None = None
    _digest_parts: tuple = ()
    _inputs: dict | None = None

    def _col(self, name: str) -> np.ndarray:
        """An order column; ``weight``, ``price``, ``lot`` and ``sector`` are read back from dense inputs."""
        o = self.orders_raw
        if name in o:
            return o[name]
        return self._recovered[name]

    @cached_property
    def _recovered(self) -> dict:
        o, i = self.orders_raw, self._inputs
        S = len(self.universe)
        t = o["t"].astype(np.int64)
        row = t * S + o["pos"] % S
        sector = (i["psec"][row] if len(self.sectors) else np.full(len(row), 0)).astype(np.int32)
        return {"weight": i["wvalue"][t * S * len(self.portfolios) + o["pos"]], "price": i["pprice"][row],
                "lot": i["plot"][row], "sector": sector}

    def __repr__(self) -> str:
        return (f"Simulation(dates={len(self.dates)}, symbols={len(self.universe)}, portfolios={len(self.portfolios)}, "
                f"orders={self.n_orders})")

    # ---------------------------------------------------------------- identity
    @cached_property
    def inputs_digest(self) -> str:
        """sha256 over the canonical (date, portfolio, symbol)-ordered inputs, params and starting state."""
        h = hashlib.sha256(b"tradeloop-simulation-v1\n")
        head = {
            "params": self.params.to_dict(), "model_version": self.model_version,
            "portfolio_value": self.portfolio_value.tolist(),
            "cash": None if self.initial_cash is None else self.initial_cash.tolist(),
            "universe": self.universe.tolist(), "portfolios": self.portfolios.tolist(),
            "sectors": self.sectors.tolist(), "dates": [str(d) for d in self.dates.astype("datetime64[ns]")],
        }
        h.update(canonical_json(head).encode())
        for part in (*self._digest_parts, self.initial_positions):
            h.update(part if isinstance(part, bytes) else np.ascontiguousarray(part).data)
        return h.hexdigest()

    @cached_property
    def simulation_id(self) -> str:
        return self.given_id or "sim-" + self.inputs_digest[:16]

    @cached_property
    def run_ids(self) -> np.ndarray:
        """One run id per (date, portfolio), date-major: ``{simulation_id}-{YYYYMMDD}[-{portfolio}]``."""
        day = pd.DatetimeIndex(self.dates)
        fmt = "%Y%m%d" if (day == day.normalize()).all() else "%Y%m%dT%H%M%S"
        stamps = day.strftime(fmt).to_numpy(dtype=object)
        if self.named_portfolios:
            return np.array([f"{self.simulation_id}-{s}-{p}" for s in stamps for p in self.portfolios], dtype=object)
        return np.array([f"{self.simulation_id}-{s}" for s in stamps], dtype=object)

    # ---------------------------------------------------------------- arrays
    @property
    def n_orders(self) -> int:
        return len(self.orders_raw["t"])

    def _run_index(self, t: np.ndarray, pos: np.ndarray) -> np.ndarray:
        if len(self.portfolios) == 1:
            return t
        return t.astype(np.int64) * len(self.portfolios) + pos // len(self.universe)

    @cached_property
    def filled_qty(self) -> np.ndarray:
        """Shares filled per order (without a liquidity model an order fills whole or not at all)."""
        o = self.orders_raw
        return o["filled"] if "filled" in o else np.where(o["status"] == _FILLED, o["qty"], 0)

    @cached_property
    def n_fills(self) -> np.ndarray:
        o = self.orders_raw
        return o["n_fills"] if "n_fills" in o else (o["status"] == _FILLED).astype(np.int32)

    @cached_property
    def avg_fill_price(self) -> np.ndarray:
        o = self.orders_raw
        return o["avg"] if "avg" in o else average_fill_price(np.nan, 0, o["fill_price"], o["qty"])

    @cached_property
    def _order_run(self) -> np.ndarray:
        return self._run_index(self.orders_raw["t"], self.orders_raw["pos"])

    @cached_property
    def order_keys(self) -> np.ndarray:
        """uint64 key per order: the hash of (run_id, symbol, side, model_version), as a run computes it."""
        o = self.orders_raw
        S = len(self.universe)
        h_run = _hash_strings(self.run_ids)
        h_sym = _hash_strings(self.universe)
        h_side = _hash_strings(np.array(["BUY", "SELL"], dtype=object))
        h_mv = _hash_strings(np.array([self.model_version], dtype=object))[0]
        # combine_keys(run, symbol, side, model_version) starts with mix(0 ^ h_run): done once per run here
        first = combine_keys(h_run)
        sym = o["pos"] if len(self.portfolios) == 1 else o["pos"] % S
        return combine_keys(first[self._order_run] ^ h_sym[sym],
                            h_side[o["sell"].astype(np.intp)], h_mv)

    def client_order_ids(self, rows: np.ndarray | slice | None = None) -> np.ndarray:
        """Readable ``client_order_id`` text for the given order rows (all by default; costly for millions)."""
        rows = slice(None) if rows is None else rows
        o = self.orders_raw
        symbol = self.universe[o["pos"][rows] % len(self.universe)]
        side = np.where(o["sell"][rows], "SELL", "BUY").astype(object)
        return format_client_order_ids(symbol, side, self.order_keys[rows])

    def _multi_fill_arrow(self):
        """Fills of the orders filled over several steps, for ``simulation_order_fills`` (see store schema v6)."""
        import pyarrow as pa

        raw, o = self.fills_raw, self.orders_raw
        keep = np.flatnonzero(self.n_fills[raw["order"]] > 1)
        rows = raw["order"][keep]
        cols = {"date": pa.array(self.dates[o["t"][rows]]), "order_key": pa.array(self.order_keys[rows]),
                "seq": pa.array(raw["seq"][keep]), "qty": pa.array(raw["qty"][keep]),
                "commission": pa.array(raw["commission"][keep])}
        if self.named_portfolios:
            cols["portfolio"] = pa.array(self.portfolios[o["pos"][rows] // len(self.universe)].astype(str))
        return pa.table(cols)

    def _risk_text(self) -> tuple[np.ndarray, np.ndarray]:
        """Codes text per risk bitmask value (0..63) and the matching ``risk:…`` reasons."""
        text = np.array([";".join(c for i, c in enumerate(RISK_CODES) if m >> i & 1) for m in range(64)],
                        dtype=object)
        return text, np.array(["risk:" + s for s in text], dtype=object)

    # ---------------------------------------------------------------- frames
    def _head(self, t: np.ndarray, pos: np.ndarray | None, port: np.ndarray | None = None) -> dict:
        cols = {"date": self.dates[t]}
        if port is None:
            port = pos // len(self.universe)
        if self.named_portfolios:
            cols["portfolio"] = pd.Categorical.from_codes(port.astype(np.int32), self.portfolios)
        return cols

    @cached_property
    def orders(self) -> pd.DataFrame:
        o = self.orders_raw
        S = len(self.universe)
        t, pos = o["t"], o["pos"]
        sell = o["sell"]
        status = o["status"]
        risk_text, risk_reason = self._risk_text()
        # reject reason category: -1 none, 0 missing_price, 1 unfilled_at_close, 2 + risk mask
        reason_code = np.where(status == _RISK, 2 + o["risk"].astype(np.int32),
                               np.where(status == _NO_PRICE, 0, np.where(status == _CANCELED, 1, -1)))
        reasons = ["missing_price", "unfilled_at_close"] + list(risk_reason)
        signed = np.where(sell, -o["qty"], o["qty"])
        limit = (limit_prices(self._col("price"), ~sell, self.params.limit_offset_bps) if self.params.order_type == "LIMIT"
                 else np.full(len(t), np.nan))
        cols = self._head(t, pos)
        cols.update({
            "run_id": pd.Categorical.from_codes(self._order_run, self.run_ids),
            "order_key": self.order_keys,
            "symbol": pd.Categorical.from_codes(pos % S, self.universe),
            "side": pd.Categorical.from_codes(sell.astype(np.int8), ["BUY", "SELL"]),
            "qty": o["qty"],
            "order_type": pd.Categorical.from_codes(np.zeros(len(t), np.int8), [self.params.order_type]),
            "limit_price": limit,
            "price": self._col("price"),
            "sector": pd.Categorical.from_codes(np.where(self._col("sector") >= len(self.sectors), -1, self._col("sector")),
                                                self.sectors),
            "lot_size": self._col("lot"),
            "target_weight": self._col("weight"),
            "current_qty": o["current"],
            "target_qty": o["current"] + signed,
            "untrimmed_qty": o["untrimmed"],
            "status": pd.Categorical.from_codes(np.where(status == _FILLED, 0, np.where(status == _CANCELED, 2, 1)),
                                                ["FILLED", "REJECTED", "CANCELED"]),
            "filled_qty": self.filled_qty,
            "n_fills": self.n_fills,
            "avg_fill_price": self.avg_fill_price,
            "fill_price": o["fill_price"],
            "commission": o["commission"],
            "risk_codes": pd.Categorical.from_codes(o["risk"].astype(np.int8), risk_text),
            "reject_reason": pd.Categorical.from_codes(reason_code, reasons),
        })
        return pd.DataFrame(cols, copy=False)

    def _orders_arrow(self):
        """The orders as an Arrow table for ``simulation_orders`` straight from the arrays: numbers, two
        dictionary-encoded names, no DataFrame and no Python strings."""
        import pyarrow as pa

        o = self.orders_raw
        S = len(self.universe)
        pos, sell, status = o["pos"], o["sell"], o["status"]
        n = len(pos)

        def text(codes, values, null=False):
            idx = pa.array(codes, mask=(codes < 0) if null else None)
            return pa.DictionaryArray.from_arrays(idx, pa.array([str(v) for v in values], pa.string()))

        price = self._col("price")
        limit = (limit_prices(price, ~sell, self.params.limit_offset_bps) if self.params.order_type == "LIMIT"
                 else None)
        sector = self._col("sector")
        cols = {
            "date": pa.array(self.dates[o["t"]]),
            "order_key": pa.array(self.order_keys),
            "symbol": text(pos if len(self.portfolios) == 1 else (pos % S).astype(np.int32), self.universe),
            "sell": pa.array(sell),
            "qty": pa.array(o["qty"]),
            "limit_price": pa.nulls(n, pa.float64()) if limit is None else pa.array(limit),
            "price": pa.array(price, from_pandas=True),
            "sector": text(np.where(sector >= len(self.sectors), -1, sector).astype(np.int32), self.sectors, null=True),
            "lot_size": pa.array(self._col("lot")),
            "target_weight": pa.array(self._col("weight")),
            "current_qty": pa.array(o["current"]),
            "untrimmed_qty": pa.array(o["untrimmed"]),
            "status_code": pa.array(status),
            "risk_mask": pa.array(o["risk"]),
            "avg_fill_price": pa.array(self.avg_fill_price, from_pandas=True),
            "fill_price": pa.array(o["fill_price"], from_pandas=True),
            "commission": pa.array(o["commission"]),
        }
        if "filled" in o:  # partial fills; without them both columns stay NULL (= the status tells, see the view)
            cols["filled_qty"] = pa.array(o["filled"])
            cols["n_fills"] = pa.array(o["n_fills"])
        if self.named_portfolios:
            cols["portfolio"] = text((pos // S).astype(np.int32), self.portfolios)
        return pa.table(cols)

    @cached_property
    def fills(self) -> pd.DataFrame:
        o = self.orders
        cols = ["date"] + (["portfolio"] if self.named_portfolios else []) + ["run_id", "order_key", "symbol", "side"]
        if self.fills_raw is None:  # one fill per filled order
            f = o.loc[o["status"].to_numpy() == "FILLED"]
            out = f.loc[:, cols].assign(seq=1, qty=f["filled_qty"], price=f["fill_price"], commission=f["commission"])
            return out.reset_index(drop=True)
        raw = self.fills_raw
        by_order = np.argsort(raw["order"], kind="stable")  # appended step by step: stable keeps seq order
        rows = raw["order"][by_order]
        out = o.iloc[rows].loc[:, cols].reset_index(drop=True)
        return out.assign(seq=raw["seq"][by_order].astype(np.int64), qty=raw["qty"][by_order],
                          price=o["fill_price"].to_numpy()[rows], commission=raw["commission"][by_order])

    def _replay_positions(self) -> dict:
        """Holdings after each date, rebuilt from the starting positions and the fills (not kept by the loop)."""
        o, i = self.orders_raw, self._inputs
        D, S = len(self.dates), len(self.universe)
        hold = self.initial_positions.copy()
        last_px = np.full(S, np.nan)
        bounds = np.searchsorted(o["t"], np.arange(D + 1))
        signed = np.where(o["sell"], -self.filled_qty, self.filled_qty)
        out = _Buffers(int(np.count_nonzero(hold)) + len(o["t"]), {"t": np.int32, "pos": np.int32, "qty": np.int64,
                                                                  "mark": np.float64})
        for t in range(D):
            pa_, pb = i["pbounds"][t], i["pbounds"][t + 1]
            known = ~np.isnan(i["pprice"][pa_:pb])
            last_px[i["psym"][pa_:pb][known]] = i["pprice"][pa_:pb][known]
            a, b = bounds[t], bounds[t + 1]
            hold[o["pos"][a:b]] += signed[a:b]
            nz = np.flatnonzero(hold)
            out.append(len(nz), t=t, pos=nz, qty=hold[nz], mark=last_px[nz % S])
        return out.final()

    @cached_property
    def positions(self) -> pd.DataFrame:
        h = self._replay_positions()
        cols = self._head(h["t"], h["pos"])
        cols.update({
            "symbol": pd.Categorical.from_codes(h["pos"] % len(self.universe), self.universe),
            "qty": h["qty"], "price": h["mark"], "market_value": h["qty"] * np.nan_to_num(h["mark"]),
        })
        return pd.DataFrame(cols, copy=False)

    @cached_property
    def summary(self) -> pd.DataFrame:
        D, P = len(self.dates), len(self.portfolios)
        o = self.orders_raw
        run = self._order_run.astype(np.int64)
        status = o["status"]

        def per_run(values=None):
            return np.bincount(run, weights=values, minlength=D * P)

        by_status = np.bincount(run * 4 + status, minlength=D * P * 4).reshape(D * P, 4).astype(np.int64)
        fq = self.filled_qty
        notional = np.where(fq > 0, fq * o["fill_price"], 0.0)
        gross, net, n_positions = (a.ravel() for a in self.day_holdings)
        cash_after = self.day_cash_after.ravel()
        end_value = cash_after + net
        pv = self.day_pv.ravel()
        cols = self._head(np.repeat(np.arange(D), P), None, port=np.tile(np.arange(P), D))
        buy = per_run(np.where(~o["sell"], notional, 0.0))
        sell = per_run(np.where(o["sell"], notional, 0.0))
        with np.errstate(invalid="ignore", divide="ignore"):
            cols.update({
                "run_id": self.run_ids,
                "portfolio_value": pv,
                "cash_before": self.day_cash_before.ravel(),
                "n_orders": by_status.sum(axis=1),
                "n_filled": by_status[:, _FILLED],
                "n_blocked": by_status[:, _RISK],
                "n_missing_price": by_status[:, _NO_PRICE],
                "n_canceled": by_status[:, _CANCELED],
                "n_partial": per_run((status == _CANCELED) & (fq > 0)).astype(np.int64),
                "buy_notional": buy,
                "sell_notional": sell,
                "commission": per_run(o["commission"]),
                "turnover": (buy + sell) / pv,
                "cash_after": cash_after,
                "end_value": end_value,
                "gross_exposure": gross / end_value,
                "net_exposure": net / end_value,
                "n_positions": n_positions.astype(np.int64),
            })
        by_mask = np.bincount(run * 64 + o["risk"], minlength=D * P * 64).reshape(D * P, 64)
        bits = (np.arange(64)[:, None] >> np.arange(len(RISK_CODES))[None, :]) & 1
        blocked = by_mask @ bits
        for i, code in enumerate(RISK_CODES):
            cols[f"blocked_{code}"] = blocked[:, i].astype(np.int64)
        return pd.DataFrame(cols)

    @cached_property
    def cash(self) -> pd.DataFrame:
        s = self.summary
        return s.loc[:, ["date"] + (["portfolio"] if self.named_portfolios else []) + ["cash_after"]].rename(
            columns={"cash_after": "cash"})

    def describe(self) -> dict:
        """Totals as a JSON-ready dict (what ``tradeloop simulate --json`` prints)."""
        s = self.summary
        st = self.orders_raw["status"]
        return {
            "simulation_id": self.simulation_id,
            "dates": len(self.dates),
            "first_date": str(pd.Timestamp(self.dates[0]).date()) if len(self.dates) else None,
            "last_date": str(pd.Timestamp(self.dates[-1]).date()) if len(self.dates) else None,
            "portfolios": [str(p) for p in self.portfolios] if self.named_portfolios else [],
            "symbols": len(self.universe),
            "orders": int(len(st)),
            "filled": int((st == _FILLED).sum()),
            "blocked": int((st == _RISK).sum()),
            "missing_price": int((st == _NO_PRICE).sum()),
            "canceled": int((st == _CANCELED).sum()),
            "partially_filled": int(((st == _CANCELED) & (self.filled_qty > 0)).sum()),
            "fills": int(self.n_fills.sum()),
            "blocked_by_code": {c: int(s[f"blocked_{c}"].sum()) for c in RISK_CODES if s[f"blocked_{c}"].sum()},
            "commission": round(float(s["commission"].sum()), 2),
            "final_cash": [round(float(x), 2) for x in self.day_cash_after[-1]] if len(self.dates) else [],
            "final_value": [round(float(x), 2) for x in s["end_value"].to_numpy()[-len(self.portfolios):]],
        }

    def to_json(self) -> str:
        return json.dumps(self.describe(), sort_keys=True)

