"""The result of a simulation (:class:`Simulation`): arrays kept by the date loop, DataFrames built when first read.

:func:`tradeloop.workflows.history.simulate` produces it; :func:`tradeloop.store.simulations.save_simulation` stores
it. The integer ``status`` of a simulated order is its outcome code in :mod:`tradeloop.core.codes` (``OUTCOME``:
the integers stored in ``simulation_orders.status_code``).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pandas as pd

from ..core import codes
from ..display import facts_html, short_repr
from ..core.digest import canonical_json
from ..core.engine import average_fill_price
from ..core.risk import RISK_CODES
from ..core.controls import ACTION_NAMES, RULE_BITS
from ..core.sizing import hash_strings, order_keys
from ..core.sizing import combine_keys, format_client_order_ids, limit_prices
from .params import RunParams

__all__ = ["Simulation", "Buffers", "SIM_ORDER_COLUMNS", "SIM_SUMMARY_COLUMNS", "ORDER_STATUS_NAMES", "OUTCOME_FILLED",
           "OUTCOME_RISK", "OUTCOME_MISSING_PRICE", "OUTCOME_CANCELED", "OUTCOME_BLOCKED", "DECISION_COLUMNS"]

#: Status of a simulated order by outcome code: 0 FILLED, 1 REJECTED by risk, 2 REJECTED for a missing price,
#: 3 CANCELED (``unfilled_at_close``: a LIMIT order whose limit was not reached, or what a liquidity model left open
#: after the date's last step; ``filled_qty`` says whether some of it filled).
ORDER_STATUS_NAMES = tuple(c.status for c in codes.rows(codes.OUTCOME))
OUTCOME_FILLED, OUTCOME_RISK, OUTCOME_MISSING_PRICE, OUTCOME_CANCELED, OUTCOME_BLOCKED = (
    codes.code_of(codes.OUTCOME, name) for name in ("filled", "risk", "missing_price", "canceled", "blocked"))
_FILLED, _RISK, _NO_PRICE, _CANCELED = OUTCOME_FILLED, OUTCOME_RISK, OUTCOME_MISSING_PRICE, OUTCOME_CANCELED
#: ``;``-joined risk rule names per ``risk_mask`` value.
_MASK_NAMES = np.array(codes.risk_mask_names(), dtype=object)

#: Columns of :attr:`Simulation.orders` (``portfolio`` only when the weights have one).
SIM_ORDER_COLUMNS = (
    "date", "portfolio", "run_id", "order_key", "symbol", "side", "qty", "order_type", "limit_price", "price",
    "sector", "lot_size", "target_weight", "current_qty", "target_qty", "untrimmed_qty", "status", "filled_qty",
    "n_fills", "avg_fill_price", "fill_price", "commission", "risk_codes", "reject_reason",
)
#: Columns of :attr:`Simulation.risk_decisions`.
DECISION_COLUMNS = ("date", "portfolio", "run_id", "client_order_id", "symbol", "side", "rule", "observed", "limit",
                    "action", "qty_before", "qty_after")
#: Columns of :attr:`Simulation.summary`.
SIM_SUMMARY_COLUMNS = (
    "date", "portfolio", "run_id", "portfolio_value", "cash_before", "n_orders", "n_filled", "n_blocked",
    "n_missing_price", "n_canceled", "n_partial", "buy_notional", "sell_notional", "commission", "turnover",
    "cash_after", "end_value", "gross_exposure", "net_exposure", "n_positions", "borrow_cost",
) + tuple(f"blocked_{c}" for c in RISK_CODES)



def inputs_digest(params: RunParams, model_version: str, portfolio_value: np.ndarray, cash: np.ndarray | None,
                  universe: np.ndarray, portfolios: np.ndarray, sectors: np.ndarray, dates: np.ndarray,
                  parts: tuple) -> str:
    """The digest behind a simulation's id (:attr:`Simulation.inputs_digest`), computable before the date loop runs."""
    h = hashlib.sha256(b"tradeloop-simulation-v1\n")
    head = {
        "params": params.to_dict(), "model_version": model_version, "portfolio_value": portfolio_value.tolist(),
        "cash": None if cash is None else cash.tolist(), "universe": universe.tolist(),
        "portfolios": portfolios.tolist(), "sectors": sectors.tolist(),
        "dates": [str(d) for d in dates.astype("datetime64[ns]")],
    }
    h.update(canonical_json(head).encode())
    for part in parts:
        h.update(part if isinstance(part, bytes) else np.ascontiguousarray(part).data)
    return h.hexdigest()


class Buffers:
    """Growable column buffers: per-date chunks are written in place, never concatenated."""

    def __init__(self, capacity: int, dtypes: dict[str, str]):
        self.n = 0
        self.cols = {k: np.empty(max(capacity, 16), dtype=d) for k, d in dtypes.items()}

    def append(self, m: int, **values) -> None:
        self.reserve(m)
        end = self.n + m
        for k, v in values.items():
            self.cols[k][self.n:end] = v
        self.n = end

    def reserve(self, m: int) -> None:
        """Room for ``m`` more rows (the columns may be replaced by larger ones)."""
        end, cap = self.n + m, len(next(iter(self.cols.values())))
        if end > cap:
            new_cap = max(end, 2 * cap)
            for k, a in self.cols.items():
                grown = np.empty(new_cap, dtype=a.dtype)
                grown[: self.n] = a[: self.n]
                self.cols[k] = grown

    def final(self) -> dict[str, np.ndarray]:
        return {k: a[: self.n] for k, a in self.cols.items()}



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
    day_borrow: np.ndarray | None = None
    given_id: str | None = None
    fills_raw: dict | None = None
    decisions_raw: dict | None = None
    _digest_parts: tuple = ()
    _inputs: dict | None = None
    _ledger: object | None = None
    #: builds the ledger from the simulation when first asked (``workflows.history.ledger_replay``)
    _ledger_replay: object | None = None

    @property
    def ledger(self):
        """The shortfall attribution's per-date and per-slot sums (:class:`tradeloop.core.shortfall.PeriodLedger`),
        built when first read (by :func:`tradeloop.shortfall` or when the simulation is saved), not by the date
        loop; None for a simulation that cannot build one."""
        if self._ledger is None and self._ledger_replay is not None:
            self._ledger = self._ledger_replay(self)
        return self._ledger

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
        return inputs_digest(self.params, self.model_version, self.portfolio_value, self.initial_cash, self.universe,
                             self.portfolios, self.sectors, self.dates, (*self._digest_parts, self.initial_positions))

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
        h_run = hash_strings(self.run_ids)
        h_sym = hash_strings(self.universe)
        h_side = hash_strings(np.array(["BUY", "SELL"], dtype=object))
        h_mv = hash_strings(np.array([self.model_version], dtype=object))[0]
        # combine_keys(run, symbol, side, model_version) starts with mix(0 ^ h_run): done once per run here
        first = combine_keys(h_run)
        sym = o["pos"] if len(self.portfolios) == 1 else o["pos"] % S
        return combine_keys(first[self._order_run] ^ h_sym[sym],
                            h_side[o["sell"].astype(np.intp)], h_mv)

    @cached_property
    def risk_decisions(self) -> pd.DataFrame:
        """Every risk decision of the simulation (:func:`tradeloop.core.controls.decide`): :data:`DECISION_COLUMNS`,
        one row per (order, rule), ordered by date, portfolio, symbol, rule. ``action`` is skip, resize, reject or
        block; ``qty_after`` 0 means the order was not sent (or was rejected)."""
        d = self.decisions_raw
        if d is None:
            d = {k: np.zeros(0, dtype=np.int64) for k in ("t", "pos", "rule", "action", "qty_before", "qty_after")}
            d.update(observed=np.zeros(0), limit=np.zeros(0), sell=np.zeros(0, dtype=bool))
        S = len(self.universe)
        t, pos = d["t"].astype(np.int64), d["pos"].astype(np.int64)
        order = np.lexsort((d["rule"], pos % S, pos // S, t))
        t, pos = t[order], pos[order]
        runs = self.run_ids[self._run_index(t, pos)] if len(t) else np.zeros(0, dtype=object)
        symbols = self.universe[pos % S] if len(t) else np.zeros(0, dtype=object)
        sides = np.where(d["sell"][order], "SELL", "BUY").astype(object)
        rule_names = np.array([None] * (max(RULE_BITS.values()) + 1), dtype=object)
        for name, bit in RULE_BITS.items():
            rule_names[bit] = name
        cols = {"date": self.dates[t], "portfolio": self.portfolios[pos // S] if self.named_portfolios
                else np.full(len(t), "", dtype=object), "run_id": runs,
                "client_order_id": format_client_order_ids(symbols, sides, order_keys(
                    runs, symbols, sides, self.model_version)) if len(t) else np.zeros(0, dtype=object),
                "symbol": symbols, "side": sides, "rule": rule_names[d["rule"][order].astype(np.intp)],
                "observed": d["observed"][order], "limit": d["limit"][order],
                "action": np.array(ACTION_NAMES, dtype=object)[d["action"][order].astype(np.intp)],
                "qty_before": d["qty_before"][order], "qty_after": d["qty_after"][order]}
        return pd.DataFrame(cols, columns=list(DECISION_COLUMNS))

    def client_order_ids(self, rows: np.ndarray | slice | None = None) -> np.ndarray:
        """Readable ``client_order_id`` text for the given order rows (all by default; costly for millions)."""
        rows = slice(None) if rows is None else rows
        o = self.orders_raw
        symbol = self.universe[o["pos"][rows] % len(self.universe)]
        side = np.where(o["sell"][rows], "SELL", "BUY").astype(object)
        return format_client_order_ids(symbol, side, self.order_keys[rows])

    def multi_fill_arrow(self):
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

    def shortfall_arrow(self):
        """The implementation shortfall rows of ``simulation_shortfall`` (see
        :func:`tradeloop.workflows.shortfall.to_rows`)."""
        from .shortfall import simulation_data, to_rows

        return to_rows(simulation_data(self))

    def _risk_text(self) -> tuple[np.ndarray, np.ndarray]:
        """Rule names per risk mask value and the matching ``risk:…`` reasons (decoded by the table of codes)."""
        return _MASK_NAMES, np.array([codes.RISK_PREFIX + s for s in _MASK_NAMES], dtype=object)

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
        # reject reason category: -1 none, 0 missing_price, 1 unfilled_at_close, 2 blocked, 3 + risk mask
        reason_code = np.where(status == _RISK, 3 + o["risk"].astype(np.int32),
                               np.where(status == _NO_PRICE, 0, np.where(status == _CANCELED, 1,
                                                                         np.where(status == OUTCOME_BLOCKED, 2, -1))))
        reasons = ["missing_price", "unfilled_at_close", "blocked"] + list(risk_reason)
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
            "risk_codes": pd.Categorical.from_codes(o["risk"].astype(np.int32), risk_text),
            "reject_reason": pd.Categorical.from_codes(reason_code, reasons),
        })
        return pd.DataFrame(cols, copy=False)

    def orders_arrow(self):
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
        out = Buffers(int(np.count_nonzero(hold)) + len(o["t"]), {"t": np.int32, "pos": np.int32, "qty": np.int64,
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

        k = len(ORDER_STATUS_NAMES)
        by_status = np.bincount(run * k + status, minlength=D * P * k).reshape(D * P, k).astype(np.int64)
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
                "n_blocked": by_status[:, _RISK] + by_status[:, OUTCOME_BLOCKED],
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
                "borrow_cost": (self.day_borrow.ravel() if self.day_borrow is not None
                                else np.zeros(D * P)),
            })
        present = int(np.bitwise_or.reduce(o["risk"])) if len(o["risk"]) else 0
        for i, code in enumerate(RISK_CODES):
            cols[f"blocked_{code}"] = (per_run((o["risk"] >> i) & 1).astype(np.int64) if present >> i & 1
                                       else np.zeros(D * P, dtype=np.int64))
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
            "blocked": int(((st == _RISK) | (st == OUTCOME_BLOCKED)).sum()),
            "missing_price": int((st == _NO_PRICE).sum()),
            "canceled": int((st == _CANCELED).sum()),
            "partially_filled": int(((st == _CANCELED) & (self.filled_qty > 0)).sum()),
            "fills": int(self.n_fills.sum()),
            "blocked_by_code": {c: int(s[f"blocked_{c}"].sum()) for c in RISK_CODES if s[f"blocked_{c}"].sum()},
            "commission": round(float(s["commission"].sum()), 2),
            "final_cash": [round(float(x), 2) for x in self.day_cash_after[-1]] if len(self.dates) else [],
            "final_value": [round(float(x), 2) for x in s["end_value"].to_numpy()[-len(self.portfolios):]],
            # only when borrowing was charged, so a simulation without it describes itself as before
            **({"borrow_cost": round(float(s["borrow_cost"].sum()), 2)} if self.params.borrow_bps_per_year else {}),
        }

    def to_json(self) -> str:
        return json.dumps(self.describe(), sort_keys=True)

    def __repr__(self) -> str:
        return short_repr("Simulation", self.simulation_id, dates=len(self.dates), symbols=len(self.universe),
                          orders=int(len(self.orders_raw["status"])), model_version=self.model_version)

    def _repr_html_(self) -> str:
        d = self.describe()
        facts = [(k, ", ".join(f"{x:,.2f}" for x in v) if k.startswith("final_") else
                  json.dumps(v) if isinstance(v, (dict, list)) else v) for k, v in d.items()]
        return facts_html(f"Simulation {d['simulation_id']}", [("model_version", self.model_version), *facts],
                          footer="full frames: .orders, .fills, .summary, .positions, .cash; .describe() as a dict")


