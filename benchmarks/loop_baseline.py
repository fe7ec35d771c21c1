"""The baseline a researcher would write: a plain Python loop over dates and orders, implementing tradeloop's rules.

It shares no code with :mod:`tradeloop.workflows.history` (only the parameter objects), so the tests use it as an
independent oracle (``tests/workflows/test_history_baseline.py``) and the benchmark as the per-order speed baseline.
Arithmetic is written in the same order as the vectorized kernels so that results agree exactly; numpy's rounding
(``np.round``) is used where the models use it, because Python's ``round`` rounds differently.
Single portfolio only. Liquidity (``VolumeParticipation``) and ``params.steps`` are worked order by order, step by
step, as the mock venue's rules say: each step fills at most the cap, the rest is canceled at the date's close.
The rebalancing controls (band, dust, restricted, ADV, max_orders, turnover) and the breach policy
(``risk.on_breach``: block, reject, resize, skip) are applied order by order in the documented stage order.
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
RTOL = 1e-9
#: The default action of each rule in a simulation (docs/params.md).
SIM_DEFAULTS = {"max_order_notional": "reject", "max_position_ratio": "reject", "single_name_cap": "reject",
                "sector_cap": "reject", "max_gross_exposure": "reject", "no_short": "reject", "max_turnover": "resize",
                "restricted": "reject", "max_adv_participation": "resize", "max_orders": "reject"}


def _exceeds(x: float, limit: float) -> bool:
    return x > limit + RTOL * abs(limit)


def _below(x: float, limit: float) -> bool:
    return x < limit - RTOL * abs(limit)


def _lots(qty: float, lot: int) -> int:
    """Whole lots in ``qty`` shares, as shares (>= 0)."""
    return max(math.floor(qty / lot + EPS), 0) * lot


def _controls(book: list, lim, act, pv: float, adv: dict) -> bool:
    """The control stages on the date's orders (dicts with ``s, w, px, lot, cur, q, sell, priced, live, codes``);
    returns whether the date is blocked."""
    blocked = False

    def breach(o, rule):
        nonlocal blocked
        o["codes"].append(rule)
        o["live"] = False
        blocked = blocked or act(rule) == "block"

    for o in book:
        o["cand"] = o["live"] and o["priced"] and not (o["w"] == 0 and o["cur"] != 0 and o["d0"] != 0)
    for o in book:
        if not o["cand"]:
            continue
        drift = abs(o["w"] - o["cur"] * o["px"] / pv)
        skip = lim.no_trade_band is not None and _below(drift, lim.no_trade_band)
        if not skip and lim.no_trade_band_relative is not None and o["w"] != 0:
            skip = _below(drift / abs(o["w"]), lim.no_trade_band_relative)
        if not skip and lim.min_order_qty is not None:
            skip = _below(float(o["q"]), lim.min_order_qty)
        if not skip and lim.min_order_notional is not None:
            skip = _below(o["q"] * o["px"], lim.min_order_notional)
        if skip:
            o["q"], o["live"], o["order"] = 0, False, False
    if lim.restricted:
        for o in book:
            if o["live"] and (o["s"] in lim.restricted.get("no_trade", []) or
                              (o["s"] in lim.restricted.get("no_buy", []) and not o["sell"])):
                breach(o, "restricted")
    if lim.max_adv_participation is not None:
        frac = lim.max_adv_participation
        for o in book:
            if not (o["live"] and o["priced"]):
                continue
            a = adv.get(o["s"], math.nan)
            if math.isnan(a):
                raise ValueError(f"adv is missing for {o['s']}")
            cap = frac * a
            if _exceeds(o["q"], cap):
                if act("max_adv_participation") == "resize":
                    new = _lots(cap, o["lot"])
                    if new > 0 and _exceeds(new, cap):
                        new -= o["lot"]
                    _resize(o, min(new, o["q"]))
                else:
                    breach(o, "max_adv_participation")
    if lim.max_orders is not None:
        live = [(i, o) for i, o in enumerate(book) if o["live"]]
        live.sort(key=lambda io: (-(io[1]["q"] * io[1]["px"]), io[0]))
        for _, o in live[lim.max_orders:]:
            breach(o, "max_orders")
    if lim.max_turnover is not None:
        cap = lim.max_turnover
        total = 0.0
        for o in book:
            if o["live"]:
                total += o["q"] * o["px"]
        if _exceeds(total / pv, cap):
            rows = [o for o in book if o["live"] and o["q"] * o["px"] > 0]
            if act("max_turnover") != "resize":
                for o in rows:
                    breach(o, "max_turnover")
            else:
                factor = cap * pv / (total if total > 0 else 1.0)
                new = [_lots(o["q"] * factor, o["lot"]) for o in rows]
                after = 0.0
                for o, n in zip(rows, new):
                    after += n * o["px"]
                if _exceeds(after / pv, cap):
                    new = [math.floor(o["q"] * factor / o["lot"]) * o["lot"] for o in rows]
                for o, n in zip(rows, new):
                    if n < o["q"]:
                        _resize(o, n)
    return blocked


def _resize(o: dict, new: int) -> None:
    o["q"] = max(0, min(new, o["q"]))
    if o["q"] == 0:
        o["live"], o["order"] = False, False


def _resize_target(rule: str, o: dict, lim: float, pv: float) -> int:
    lot, px, cur = o["lot"], o["px"], o["cur"]
    if rule == "max_order_notional":
        q = _lots(lim / px, lot)
        return q - lot if q > 0 and _exceeds(q * px, lim) else q
    if rule == "no_short":
        return _lots(max(cur, 0), lot)
    sign = -1 if o["sell"] else 1
    q = _lots(lim * pv / px - sign * cur, lot)
    return q - lot if q > 0 and _exceeds(abs(cur + sign * q) * px / pv, lim) else q


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

    def act(rule: str) -> str:
        return lim.on_breach.get(rule) or SIM_DEFAULTS.get(rule, "skip")
    w_by_date = {d: dict(zip(g["symbol"].astype(str), g["weight"].astype(float)))
                 for d, g in weights.groupby("date", sort=True, observed=True)}
    px_by_date, vol_by_date, adv_by_date = {}, {}, {}
    for d, g in prices.groupby("date", sort=True, observed=True):
        rows = {}
        if "volume" in g:
            vol_by_date[d] = dict(zip(g["symbol"].astype(str), g["volume"].astype(float)))
        if "adv" in g:
            adv_by_date[d] = dict(zip(g["symbol"].astype(str), g["adv"].astype(float)))
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
            if p.borrow_bps_per_year:  # the short market value held since the previous date, at today's marks
                short = 0.0
                for s in universe:
                    short += min(hold[s], 0) * last_px.get(s, 0.0)
                held_days = (d - all_dates[t - 1]).total_seconds() / 86_400.0
                cash_now = cash_now - (-short * (p.borrow_bps_per_year / 1e4) * (held_days / 365.0))
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
        # rebalancing controls, then the original rules on the orders left ("live")
        rows, ctl, blocked = _apply_controls(rows, lim, act, pv, adv_by_date.get(d, {}))
        post_w = {}
        posts = {s: hold[s] for s in universe}
        for r, c in zip(rows, ctl):
            if r is not None and c["live"]:
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
        flagged = []
        for r, c in zip(rows, ctl):
            if r is None:
                flagged.append(None)
                continue
            flagged.append(_original_rules(r, c, lim, post_w, gross, sector_exp, last_sec, pv, act))
            blocked = blocked or any(act(code) == "block" for code in c["codes"])
        flows = 0.0
        for r, c in zip(rows, ctl):
            if r is None or c["q"] == 0 and not c["order"]:
                continue
            s, w, pr, lot, cur, delta, untrimmed, missing, sell = r
            qty = c["q"]
            codes = c["codes"]
            fill_px, comm, status, fq, n_fills, avg = math.nan, 0.0, None, 0, 0, math.nan
            if codes or blocked:
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


def _apply_controls(rows: list, lim, act, pv: float, adv: dict) -> tuple[list, list, bool]:
    """Rows and a control record per row (``q``, ``live``, ``order``, ``codes``) after the control stages."""
    ctl = []
    for r in rows:
        if r is None:
            ctl.append({"q": 0, "live": False, "order": False, "codes": []})
            continue
        s, w, pr, lot, cur, delta, untrimmed, missing, sell = r
        ctl.append({"s": s, "w": w, "px": 0.0 if missing else pr, "lot": lot, "cur": cur, "q": abs(delta),
                    "d0": delta, "sell": sell, "priced": not missing, "live": True, "order": True, "codes": []})
    book = [c for c in ctl if "s" in c]
    blocked = _controls(book, lim, act, pv, adv) if lim.controls_active else False
    out = []
    for r, c in zip(rows, ctl):
        if r is None:
            out.append(None)
            continue
        s, w, pr, lot, cur, delta, untrimmed, missing, sell = r
        out.append((s, w, pr, lot, cur, -c["q"] if sell else c["q"], untrimmed, missing, sell))
    return out, ctl, blocked


def _original_rules(r: tuple, c: dict, lim, post_w: dict, gross: float, sector_exp: dict, last_sec: dict,
                    pv: float, act) -> None:
    """The six original rules on one live order: flag it (reject/block) or resize it, by ``act``."""
    if not c["live"]:
        return
    s, w, pr, lot, cur, delta, untrimmed, missing, sell = r
    qty = c["q"]
    post = cur + delta
    px = 0.0 if missing else pr
    growing = (not missing) and abs(post) > abs(cur)
    pw = abs(post_w[s])
    hits = []  # (rule, limit)
    if lim.max_order_notional is not None and not missing and qty * px > lim.max_order_notional:
        hits.append(("max_order_notional", lim.max_order_notional))
    if lim.max_position_ratio is not None and growing and pw > lim.max_position_ratio:
        hits.append(("max_position_ratio", lim.max_position_ratio))
    cap = lim.single_name_caps.get(s)
    if lim.single_name_caps and cap is not None and growing and pw > cap:
        hits.append(("single_name_cap", cap))
    if lim.uses_sectors:
        sec = last_sec.get(s)
        cap = lim.sector_caps.get(sec, lim.sector_cap) if sec is not None else lim.sector_cap
        if sec is None and post != 0:
            raise ValueError(f"sector unknown for {s}")
        if cap is not None and growing and sector_exp[sec] > cap:
            hits.append(("sector_cap", cap))
    if lim.max_gross_exposure is not None and growing and gross > lim.max_gross_exposure:
        hits.append(("max_gross_exposure", lim.max_gross_exposure))
    if not lim.allow_short and (-qty if sell else qty) < 0 and post < 0:
        hits.append(("no_short", 0.0))
    hard = [rule for rule, _ in hits if act(rule) != "resize"]
    if hard:
        c["codes"] += hard
        c["live"] = False
        return
    target = qty
    for rule, limit in hits:
        target = min(target, _resize_target(rule, c, limit, pv))
    if target < qty:
        _resize(c, target)
