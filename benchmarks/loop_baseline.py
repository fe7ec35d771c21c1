"""The baseline a researcher would write: a plain Python loop over dates and orders, implementing tradeloop's rules.

It shares no code with :mod:`tradeloop.workflows.history` (only the parameter objects), so the tests use it as an
independent oracle (``tests/workflows/test_history_baseline.py``) and the benchmark as the per-order speed baseline.
Arithmetic is written in the same order as the vectorized kernels so that results agree exactly; numpy's rounding
(``np.round``) is used where the models use it, because Python's ``round`` rounds differently.
Single portfolio only. Liquidity (``VolumeParticipation``) and ``params.steps`` are worked order by order, step by
step, as the mock venue's rules say: each step fills at most the cap, the rest is canceled at the date's close.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from tradeloop.venue.commission import BpsCommission, NoCommission, PerShareCommission
from tradeloop.venue.liquidity import NoLiquidityLimit, VolumeParticipation
from tradeloop.venue.slippage import FixedBpsSlippage, NoSlippage
from tradeloop.workflows.params import RunParams

EPS = 1e-9


def _fill_price(model, buy: bool, price: float) -> float:
    if isinstance(model, NoSlippage):
        return price
    if isinstance(model, FixedBpsSlippage):
        return float(np.round(price * (1.0 + (1.0 if buy else -1.0) * model.bps / 1e4), 6))
    return float(model.fill_prices(np.array(["BUY" if buy else "SELL"]), np.array([price]))[0])


def _cents(x: float) -> float:
    return math.floor(x * 100.0 + 0.5 + 1e-9) / 100.0


def _commission(model, qty: int, price: float) -> float:
    if isinstance(model, NoCommission):
        return 0.0
    if isinstance(model, PerShareCommission):
        return _cents(max(float(qty) * model.rate, model.minimum))
    if isinstance(model, BpsCommission):
        return _cents(float(qty) * price * model.bps / 1e4)
    return float(model.commissions(np.array([qty]), np.array([price]))[0])


def _step_cap(model, volume: float, lot: int) -> float:
    """Most shares one step may fill."""
    if isinstance(model, NoLiquidityLimit):
        return math.inf
    if isinstance(model, VolumeParticipation):
        if math.isnan(volume):
            return math.inf if model.missing_volume == "unlimited" else 0.0
        return math.floor(model.max_rate * volume / lot + EPS) * lot
    cap = float(model.step_caps(np.array([volume]), np.array([lot]))[0])
    return 0.0 if math.isnan(cap) else cap


def loop_simulate(weights: pd.DataFrame, prices: pd.DataFrame, *, portfolio_value: float,
                  params: RunParams | None = None, positions: dict | None = None, cash: float | None = None,
                  dates=None):
    """Per-order loop. Returns ``(orders, days)``: a list of order dicts and a list of per-date dicts.

    ``dates`` limits the loop to the first dates given (the benchmark runs a slice of the largest size).
    """
    p = params or RunParams()
    lim = p.risk
    w_by_date = {d: dict(zip(g["symbol"].astype(str), g["weight"].astype(float)))
                 for d, g in weights.groupby("date", sort=True, observed=True)}
    px_by_date, vol_by_date = {}, {}
    for d, g in prices.groupby("date", sort=True, observed=True):
        rows = {}
        if "volume" in g:
            vol_by_date[d] = dict(zip(g["symbol"].astype(str), g["volume"].astype(float)))
        sec_col = g["sector"].astype(object) if "sector" in g else [None] * len(g)
        lot_col = g["lot_size"] if "lot_size" in g else [p.lot_size] * len(g)
        for s, pr, sec, lot in zip(g["symbol"].astype(str), g["price"].astype(float), sec_col, lot_col):
            rows[s] = (pr, None if sec is None or (isinstance(sec, float) and math.isnan(sec)) else str(sec),
                       p.lot_size if lot is None or (isinstance(lot, float) and math.isnan(lot)) else int(lot))
        px_by_date[d] = rows
    all_dates = sorted(w_by_date)
    if dates is not None:
        all_dates = all_dates[:dates]
    universe = sorted(set(weights["symbol"].astype(str)) | set(prices["symbol"].astype(str)) | set(positions or {}))
    hold = {s: 0 for s in universe}
    hold.update(positions or {})
    last_px: dict[str, float] = {}
    last_sec: dict[str, str] = {}
    cash_now = p.cash if cash is None else cash
    orders, days = [], []
    for t, d in enumerate(all_dates):
        wt, today = w_by_date[d], px_by_date.get(d, {})
        for s, (pr, sec, _) in today.items():
            if not math.isnan(pr):
                last_px[s] = pr
            if sec is not None:
                last_sec[s] = sec
        if t == 0:
            pv = float(portfolio_value)
        else:
            held = 0.0
            for s in universe:
                held += hold[s] * last_px.get(s, 0.0)
            pv = cash_now + held
        book = []
        for s in universe:
            w = wt.get(s, 0.0)
            cur = hold[s]
            if w == 0.0 and cur == 0:
                continue
            pr, _, lot = today.get(s, (math.nan, None, p.lot_size))
            missing = math.isnan(pr)
            if missing:
                target = cur if w != 0 else 0
            else:
                lots = math.floor(abs(w * pv) / pr / lot + EPS)
                target = int((1.0 if w > 0 else -1.0 if w < 0 else 0.0) * lots * lot)
            book.append([s, w, pr, lot, cur, target - cur, missing])
        if t == 0 and cash_now is None:
            held = 0.0
            for s, w, pr, lot, cur, delta, missing in book:
                held += cur * (0.0 if missing else pr)
            cash_now = pv - held
        sells = buys = 0.0
        for s, w, pr, lot, cur, delta, missing in book:
            px = 0.0 if missing else pr
            if delta < 0:
                sells += -delta * px
            elif delta > 0:
                buys += delta * px
        available = cash_now + sells - p.cash_buffer * pv
        factor = (max(available, 0.0) / (buys if buys > 0 else 1.0)) if buys > available else 1.0
        rows = []
        for s, w, pr, lot, cur, delta, missing in book:
            untrimmed = abs(delta)
            if delta > 0 and factor < 1.0:
                delta = math.floor(delta * factor / lot) * lot
            unsized = missing and w != 0 and delta == 0
            if delta == 0 and not unsized:
                rows.append(None)
                continue
            sell = delta < 0 or (unsized and w < 0)
            rows.append((s, w, pr, lot, cur, delta, untrimmed, missing, sell))
        # risk: post-trade book over every symbol
        post_w = {}
        posts = {s: hold[s] for s in universe}
        for r in rows:
            if r is not None:
                s, w, pr, lot, cur, delta, untrimmed, missing, sell = r
                posts[s] = cur + delta
        gross = 0.0
        sector_exp: dict = {}
        for s in universe:
            pr = today.get(s, (math.nan,))[0]
            px = 0.0 if math.isnan(pr) else pr
            pw = posts[s] * px / pv
            post_w[s] = pw
            gross += abs(pw)
            key = last_sec.get(s)
            sector_exp[key] = sector_exp.get(key, 0.0) + abs(pw)
        flows = 0.0
        for r in rows:
            if r is None:
                continue
            s, w, pr, lot, cur, delta, untrimmed, missing, sell = r
            qty = abs(delta)
            post = cur + delta
            px = 0.0 if missing else pr
            growing = (not missing) and abs(post) > abs(cur)
            pw = abs(post_w[s])
            codes = []
            if lim.max_order_notional is not None and not missing and qty * px > lim.max_order_notional:
                codes.append("max_order_notional")
            if lim.max_position_ratio is not None and growing and pw > lim.max_position_ratio:
                codes.append("max_position_ratio")
            cap = lim.single_name_caps.get(s)
            if lim.single_name_caps and cap is not None and growing and pw > cap:
                codes.append("single_name_cap")
            if lim.uses_sectors:
                sec = last_sec.get(s)
                cap = lim.sector_caps.get(sec, lim.sector_cap) if sec is not None else lim.sector_cap
                if sec is None and post != 0:
                    raise ValueError(f"sector unknown for {s}")
                if cap is not None and growing and sector_exp[sec] > cap:
                    codes.append("sector_cap")
            if lim.max_gross_exposure is not None and growing and gross > lim.max_gross_exposure:
                codes.append("max_gross_exposure")
            if not lim.allow_short and (-qty if sell else qty) < 0 and post < 0:
                codes.append("no_short")
            fill_px, comm, status, fq, n_fills, avg = math.nan, 0.0, None, 0, 0, math.nan
            if codes:
                status = "REJECTED"
            elif missing:
                status = "REJECTED"
            else:
                fp = _fill_price(p.slippage, not sell, pr)
                crosses = True
                if p.order_type == "LIMIT":
                    limit = float(np.round(pr * (1.0 + (-1.0 if sell else 1.0) * p.limit_offset_bps / 1e4), 4))
                    crosses = pr >= limit if sell else pr <= limit
                    fp = max(fp, limit) if sell else min(fp, limit)
                if crosses:  # work the order step by step; the same quote and volume every step
                    cap = _step_cap(p.liquidity, vol_by_date.get(d, {}).get(s, math.nan), lot)
                    order_flow = 0.0
                    for _ in range(p.steps):
                        q = int(min(qty - fq, max(cap, 0.0)))
                        if q <= 0:
                            break
                        c = _commission(p.commission, q, fp)
                        avg = float(np.round(((0.0 if fq == 0 else avg) * fq + fp * q) / (fq + q), 6))
                        order_flow += (1.0 if sell else -1.0) * q * fp - c
                        comm += c
                        fq += q
                        n_fills += 1
                    flows += order_flow
                    hold[s] = cur + (-fq if sell else fq)
                    fill_px = fp if fq else math.nan
                status = "FILLED" if crosses and fq == qty else "CANCELED"
            orders.append({"date": d, "symbol": s, "side": "SELL" if sell else "BUY", "qty": qty,
                           "current_qty": cur, "target_qty": cur + (-qty if sell else qty), "untrimmed_qty": untrimmed,
                           "status": status, "risk_codes": ";".join(codes), "fill_price": fill_px,
                           "commission": comm, "filled_qty": fq, "n_fills": n_fills,
                           "avg_fill_price": avg})
        cash_before = cash_now
        cash_now = cash_now + flows
        days.append({"date": d, "portfolio_value": pv, "cash_before": cash_before, "cash_after": cash_now})
    return orders, days
