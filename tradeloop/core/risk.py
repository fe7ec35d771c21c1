"""RiskEngine: vectorized pre-trade checks; every blocked order carries reason codes and a sentence.

Each rule looks at the post-trade book (``current_qty`` plus the order), in portfolio-value terms:

=====================  ==========================================================================================
code                   blocks an order when
=====================  ==========================================================================================
max_order_notional     ``qty × price`` exceeds the limit (currency)
max_position_ratio     it grows a position beyond ``|position notional| / portfolio_value`` > limit
single_name_cap        it grows a named symbol beyond its own cap (``single_name_caps = {"AAPL": 0.05}``)
sector_cap             it grows exposure in a sector whose gross weight exceeds the cap (``sector_cap`` for all
                       sectors, ``sector_caps`` per sector); a symbol without a sector is a validation error then
max_gross_exposure     it grows gross exposure (Σ |position weight|) beyond the limit
no_short               it sells into a short position while ``allow_short`` is false
=====================  ==========================================================================================

A value within 1e-9 relative of its limit is "at the limit" and passes (:func:`tradeloop.core.tolerance.exceeds`):
``390 × 0.07`` is ``27.300000000000004`` in binary and passes ``max_order_notional = 27.3``. ``no_short`` compares
whole shares and needs no tolerance.

Orders whose price is missing are not checked here: execution rejects them with ``missing_price``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields

import numpy as np
import pandas as pd

from ..errors import ValidationError
from .codes import risk_rule_names
from .validate import CONTROL_FIELDS, check_controls
from .tolerance import LIMIT_RTOL
from .validate import check_number

__all__ = ["RiskLimits", "check_risk", "risk_summary", "risk_checks", "rule_details", "checks_of", "check_orders", "post_trade", "sector_limits",
           "RISK_CODES"]

#: Risk rules in check order; their rows (bit, label) are in :mod:`tradeloop.core.codes`.
RISK_CODES = risk_rule_names()


@dataclass(frozen=True)
class RiskLimits:
    """Risk limits of a run; ``None`` switches a rule off. Recorded verbatim in ``trade_runs.params.risk``."""

    max_order_notional: float | None = None
    max_position_ratio: float | None = None
    single_name_caps: Mapping[str, float] = field(default_factory=dict)
    sector_cap: float | None = None
    sector_caps: Mapping[str, float] = field(default_factory=dict)
    max_gross_exposure: float | None = None
    allow_short: bool = False
    # rebalancing controls (tradeloop.core.controls); at their defaults they are left out of to_dict, so the params
    # JSON (and every id hashed from it) of a run without them is what it always was
    min_order_notional: float | None = None
    min_order_qty: int | None = None
    no_trade_band: float | None = None
    no_trade_band_relative: float | None = None
    max_turnover: float | None = None
    restricted: Mapping[str, Sequence[str]] = field(default_factory=dict)
    max_adv_participation: float | None = None
    max_orders: int | None = None
    on_breach: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self):
        check_controls(self)
        for name in ("max_order_notional", "max_position_ratio", "sector_cap", "max_gross_exposure"):
            value = getattr(self, name)
            if value is not None:
                check_number(f"risk.{name}", value, inclusive=False)
        for name in ("single_name_caps", "sector_caps"):
            caps = getattr(self, name)
            if not isinstance(caps, Mapping):
                raise ValidationError(f"risk.{name} must be an object of name -> limit, got {caps!r}")
            for key, value in caps.items():
                check_number(f"risk.{name}[{key!r}]", value, inclusive=False)
            object.__setattr__(self, name, dict(sorted((str(k), float(v)) for k, v in caps.items())))
        if not isinstance(self.allow_short, bool):
            raise ValidationError(f"risk.allow_short is {self.allow_short!r}; it must be true or false")

    @classmethod
    def from_dict(cls, data: Mapping | None) -> "RiskLimits":
        """Parse the ``risk`` object of a params JSON; unknown keys are refused by name."""
        data = dict(data or {})
        allowed = [f.name for f in fields(cls)]
        unknown = sorted(set(data) - set(allowed))
        if unknown:
            raise ValidationError(f"params.risk has unknown key(s) {unknown}; allowed: {allowed}")
        return cls(**data)

    def to_dict(self) -> dict:
        out = asdict(self)
        for name in CONTROL_FIELDS:
            if not out[name] and out[name] != 0:
                del out[name]
        return out

    @property
    def controls_active(self) -> bool:
        """Any rebalancing control or ``on_breach`` choice set (else the checks are exactly the six original rules,
        with their path defaults)."""
        return any(getattr(self, name) is not None and getattr(self, name) != {} for name in CONTROL_FIELDS)

    @property
    def uses_sectors(self) -> bool:
        return self.sector_cap is not None or bool(self.sector_caps)


_NO_ROWS = np.empty(0)
_NO_CODES = np.empty(0, dtype=np.intp)


def _floats(x) -> np.ndarray:
    return np.ascontiguousarray(x, dtype=np.float64)


def _ints(x) -> np.ndarray:
    return np.ascontiguousarray(x, dtype=np.int64)


def _bools(x) -> np.ndarray:
    return np.ascontiguousarray(x, dtype=np.bool_)


def _codes(x) -> np.ndarray:
    return np.ascontiguousarray(x, dtype=np.intp)


def _limit(value) -> np.ndarray:
    """A limit for the kernel: empty when off, else one value for every row or one per row (NaN: none)."""
    return _NO_ROWS if value is None else _floats(value).reshape(-1)


def _limit_args(limits) -> tuple:
    """``(order_lim, pos_lim, gross_lim, no_short, rtol)`` of the compiled rules."""
    return (_limit(limits.max_order_notional), _limit(limits.max_position_ratio), _limit(limits.max_gross_exposure),
            not limits.allow_short, LIMIT_RTOL)


def post_trade(is_order, price, pv, current, signed):
    """Position after each order: ``(post_qty, post_weight, growing)``; ``growing`` marks priced orders that make
    the position larger in absolute size (the rules below only block those, except notional and no_short).
    ``pv``: one portfolio value, or one per row; a missing price (NaN) counts as 0."""
    from .jit import risk as jit

    return jit.post_trade(_bools(is_order), _floats(price), _floats(pv).reshape(-1), _ints(current), _ints(signed))


def sector_limits(limits: RiskLimits, per_sector: np.ndarray) -> np.ndarray:
    """Each row's sector cap: its ``sector_caps`` entry (``per_sector``, NaN where none), else ``sector_cap``."""
    if limits.sector_cap is not None:
        return np.where(np.isnan(per_sector), limits.sector_cap, per_sector)
    return per_sector


def risk_checks(
    limits: RiskLimits, *, is_order, price, qty, signed, post, post_w, growing, codes, ngroups,
    name_cap=None, sec_codes=None, sector_lim=None,
) -> list[tuple[str, np.ndarray, np.ndarray, np.ndarray]]:
    """The rule kernel shared by :func:`check_risk`, :func:`tradeloop.core.controls.decide` and
    :func:`tradeloop.workflows.history.simulate` (compiled: :mod:`tradeloop.core.jit.risk`).

    Aligned rows (``codes``: the row's book, ``sec_codes``: its (book, sector) bucket, ``name_cap`` /
    ``sector_lim``: per-row caps, NaN = none; a limit of ``limits`` may be one number or one per row). Returns
    ``(code, blocked, observed, limit)`` per enabled rule, in :data:`RISK_CODES` order; ``observed`` and ``limit``
    are what a blocked order's sentence quotes (``limit`` a scalar when the rule has one limit for every row).
    """
    blocked, observed = rule_details(limits, is_order=is_order, price=price, qty=qty, signed=signed, post=post,
                                     post_w=post_w, growing=growing, codes=codes, ngroups=ngroups, name_cap=name_cap,
                                     sec_codes=sec_codes, sector_lim=sector_lim)
    return checks_of(limits, blocked, observed, post, name_cap, sector_lim)


def rule_details(limits, *, is_order, price, qty, signed, post, post_w, growing, codes, ngroups, name_cap=None,
                 sec_codes=None, sector_lim=None) -> tuple[np.ndarray, np.ndarray]:
    """:func:`risk_checks`' compiled arrays: ``blocked`` (6 × n, :data:`tradeloop.core.jit.risk.RULES` order) and
    ``observed`` (4 × n)."""
    from .jit import risk as jit

    n = len(is_order)
    mask, blocked, observed = np.empty(n, np.uint8), np.empty((6, n), np.bool_), np.empty((4, n))
    names = bool(limits.single_name_caps)
    jit.rules(_bools(is_order), _floats(price), _ints(qty), _ints(signed), _ints(post), _floats(post_w),
              _bools(growing), _codes(codes), int(ngroups), _floats(name_cap) if names else _NO_ROWS,
              _codes(sec_codes) if limits.uses_sectors else _NO_CODES,
              _floats(sector_lim) if limits.uses_sectors else _NO_ROWS, *_limit_args(limits), mask, blocked, observed)
    return blocked, observed


def checks_of(limits, blocked: np.ndarray, observed: np.ndarray, post, name_cap, sector_lim) -> list:
    """:func:`risk_checks`' list from the compiled rules' ``blocked`` (6 × n) and ``observed`` (4 × n) arrays."""
    names = bool(limits.single_name_caps)
    checks: list[tuple[str, np.ndarray, np.ndarray, np.ndarray]] = []  # code, blocked mask, observed, limit
    if limits.max_order_notional is not None:
        checks.append(("max_order_notional", blocked[0], observed[0], limits.max_order_notional))
    if limits.max_position_ratio is not None:
        checks.append(("max_position_ratio", blocked[1], observed[1], limits.max_position_ratio))
    if names:
        checks.append(("single_name_cap", blocked[2], observed[1], name_cap))
    if limits.uses_sectors:
        checks.append(("sector_cap", blocked[3], observed[2], sector_lim))
    if limits.max_gross_exposure is not None:
        checks.append(("max_gross_exposure", blocked[4], observed[3], limits.max_gross_exposure))
    if not limits.allow_short:
        checks.append(("no_short", blocked[5], post, 0.0))
    return checks


def check_orders(limits, *, is_order, price, qty, signed, current, pv, codes, ngroups, name_cap=None, sec=None,
                 nsectors: int = 0, sector_table=None, sector_offset=None) -> tuple:
    """:func:`post_trade` and the rules' mask in one compiled call (the date loop's risk step).

    ``pv`` is one value per book (``codes``: each row's book, ``ngroups`` books). ``sec``: each row's sector code
    (``nsectors`` for an unknown sector; None when no sector rule is set), its limit ``sector_table[sec +
    sector_offset]``. Returns ``(post, post_w, growing, mask, sec_codes, sector_lim, bad)``: ``mask`` (uint8) has
    the bits of the rules each row breaks; ``sec_codes`` / ``sector_lim`` are the inputs :func:`risk_checks` takes
    to explain them; ``bad`` is the first row held with an unknown sector (-1: none; nothing is checked then).
    """
    from .jit import risk as jit

    sectors = limits.uses_sectors and sec is not None
    names = bool(limits.single_name_caps)
    return jit.check_day(
        _bools(is_order), _floats(price), _ints(qty), _ints(signed), _ints(current), _floats(pv).reshape(-1),
        _codes(codes), int(ngroups), _floats(name_cap) if names else _NO_ROWS, _codes(sec) if sectors else _NO_CODES,
        int(nsectors), _floats(sector_table) if sectors else _NO_ROWS,
        _codes(sector_offset) if sectors and sector_offset is not None else _NO_CODES, *_limit_args(limits))


def check_risk(
    book: pd.DataFrame, limits: RiskLimits, *, group_by: Sequence[str] = (), explain: bool = True
) -> pd.DataFrame:
    """Check every order of a book (see :func:`tradeloop.core.sizing.build_book`) against ``limits``.

    Returns
    -------
    DataFrame
        ``book`` (not modified) plus ``post_qty`` (position after the order), ``post_weight``, ``risk_codes``
        (``;``-joined codes of :data:`RISK_CODES`, empty when the order passes) and ``risk_reason`` (a sentence per
        failed rule for blocked orders, empty otherwise; skipped when ``explain`` is false).

    Raises
    ------
    ValidationError
        A sector cap is set and a symbol that will be held has no sector.
    """
    group_by = list(group_by)
    out = book.copy()
    is_order = out["side"].notna().to_numpy()
    price = out["price"].to_numpy(dtype="float64")
    qty = out["qty"].to_numpy(dtype="int64")
    current = out["current_qty"].to_numpy(dtype="int64")
    signed = np.where(out["side"].to_numpy() == "SELL", -qty, qty)
    post, post_w, growing = post_trade(is_order, price, out["portfolio_value"].to_numpy(dtype="float64"), current,
                                       signed)
    if group_by:
        codes = out.groupby(group_by, sort=False, dropna=False).ngroup().to_numpy(dtype=np.intp)
    else:
        codes = np.zeros(len(out), dtype=np.intp)
    ngroups = int(codes.max()) + 1 if len(codes) else 0

    name_cap = out["symbol"].map(limits.single_name_caps).to_numpy(dtype="float64") if limits.single_name_caps else None
    sec_codes = sector_lim = None
    if limits.uses_sectors:
        sector = out["sector"]
        unknown = (sector.isna().to_numpy() & (post != 0))
        if unknown.any():
            sym = out["symbol"].to_numpy()[unknown][:10].tolist()
            raise ValidationError(
                f"sector is unknown for {sym}; a sector cap is set, so every held symbol needs a sector"
            )
        sector_lim = sector_limits(limits, sector.map(limits.sector_caps).to_numpy(dtype="float64", na_value=np.nan))
        sec_codes = out.groupby(group_by + ["sector"], sort=False, dropna=False).ngroup().to_numpy(dtype=np.intp)
    checks = risk_checks(limits, is_order=is_order, price=price, qty=qty, signed=signed, post=post, post_w=post_w,
                         growing=growing, codes=codes, ngroups=ngroups, name_cap=name_cap, sec_codes=sec_codes,
                         sector_lim=sector_lim)

    risk_codes = pd.Series("", index=out.index, dtype=object)
    reasons = pd.Series("", index=out.index, dtype=object)
    for code, mask, observed, lim in checks:
        if not mask.any():
            continue
        idx = out.index[mask]
        risk_codes.loc[idx] = np.where(risk_codes.loc[idx] == "", code, risk_codes.loc[idx] + ";" + code)
        if explain:
            text = [_sentence(code, o, l) for o, l in zip(observed[mask], np.broadcast_to(lim, mask.shape)[mask])]
            reasons.loc[idx] = np.where(reasons.loc[idx] == "", text, reasons.loc[idx] + "; " + pd.Series(text, index=idx))
    out["post_qty"] = post
    out["post_weight"] = post_w
    out["risk_codes"] = risk_codes.to_numpy()
    out["risk_reason"] = reasons.to_numpy()
    return out


def rule_sentence(code: str, observed: float, limit: float) -> str:
    """Why an order breaches ``code`` (the ``risk_reason`` of a rejected or blocked order)."""
    if code not in _LABELS:
        return f"{code}: observed {observed:,.6g}, limit {limit:,.6g}"
    if code == "max_order_notional":
        return f"order notional {observed:,.2f} exceeds max_order_notional {limit:,.2f}"
    if code == "no_short":
        return f"position would go short to {int(observed)} shares and allow_short is false"
    return f"{_LABELS[code]} {observed:.4%} exceeds {code} {limit:.4%}"


_LABELS = {"max_order_notional": "", "no_short": "", "max_position_ratio": "position weight",
           "single_name_cap": "position weight", "sector_cap": "sector gross weight",
           "max_gross_exposure": "gross exposure"}
_sentence = rule_sentence


def risk_summary(checked: pd.DataFrame, limits: RiskLimits) -> dict:
    """The ``params.risk`` record of a run: limits, pass/block, counts per code and one line per blocked order."""
    blocked = checked.loc[checked["risk_codes"].to_numpy() != ""]
    per_code = {code: int(blocked["risk_codes"].str.contains(code, regex=False).sum()) for code in RISK_CODES}
    cols = [c for c in ("client_order_id", "symbol", "side", "qty", "risk_codes", "risk_reason") if c in blocked]
    rows = blocked.loc[:, cols].rename(columns={"risk_codes": "codes", "risk_reason": "reason"})
    return {
        "limits": limits.to_dict(),
        "passed": blocked.empty,
        "orders_checked": int(checked["side"].notna().sum()),
        "orders_blocked": int(len(blocked)),
        "blocked_by_code": {k: v for k, v in per_code.items() if v},
        "blocked": [
            {k: (int(v) if k == "qty" else v) for k, v in row.items()}
            for row in rows.to_dict(orient="records")
        ],
    }
