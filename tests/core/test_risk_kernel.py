"""The compiled risk step (tradeloop.core.jit.risk): one date's mask agrees with the explained checks, sums are
numpy's bincount to the bit, per-row limits and missing prices behave as documented, no recompiles."""

from __future__ import annotations

import subprocess
import sys
from types import SimpleNamespace

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from tradeloop.core import codes as code_table
from tradeloop.core import jit
from tradeloop.core.risk import RISK_CODES, _limit_args, check_orders, post_trade, risk_checks, rule_details

BIT = {c.name: c.bit for c in code_table.rows(code_table.RISK_RULE)}


@st.composite
def days(draw):
    """One date of a book with P portfolios: rows, limits (None, one number, or one per row with NaN), sectors."""
    n = draw(st.integers(0, 30))
    P = draw(st.integers(1, 3))
    nsec = draw(st.integers(1, 3))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    codes = np.sort(rng.integers(0, P, n)).astype(np.intp)
    signed = rng.integers(-60, 60, n).astype(np.int64)
    price = rng.uniform(0.5, 100, n)
    price[rng.random(n) < 0.2] = np.nan

    def limit(scale):
        kind = draw(st.sampled_from(["off", "one", "per_row"]))
        if kind == "off":
            return None
        if kind == "one":
            return float(rng.uniform(0, scale))
        out = rng.uniform(0, scale, n)
        out[rng.random(n) < 0.3] = np.nan
        return out

    limits = SimpleNamespace(max_order_notional=limit(3000), max_position_ratio=limit(1.0),
                             max_gross_exposure=limit(3.0), single_name_caps=draw(st.booleans()),
                             uses_sectors=draw(st.booleans()), allow_short=draw(st.booleans()))
    name_cap = rng.uniform(0, 1, n)
    name_cap[rng.random(n) < 0.3] = np.nan
    return dict(limits=limits, is_order=(signed != 0) | (rng.random(n) < 0.1), price=price, qty=np.abs(signed),
                signed=signed, current=rng.integers(-50, 50, n).astype(np.int64), pv=rng.uniform(100, 5000, P),
                codes=codes, ngroups=P, name_cap=name_cap, sec=rng.integers(0, nsec, n), nsectors=nsec,
                sector_table=rng.uniform(0, 2, nsec + 1))


def _explained(d, post, post_w, growing, sec_codes, sector_lim):
    return risk_checks(d["limits"], is_order=d["is_order"], price=d["price"], qty=d["qty"], signed=d["signed"],
                       post=post, post_w=post_w, growing=growing, codes=d["codes"], ngroups=d["ngroups"],
                       name_cap=d["name_cap"], sec_codes=sec_codes, sector_lim=sector_lim)


@settings(max_examples=150, deadline=None)
@given(days())
def test_the_date_loops_mask_is_the_explained_checks_bits(d):
    post, post_w, growing, mask, sec_codes, sector_lim, bad = check_orders(**d)
    assert bad == -1  # no sector is unknown here
    pv_row = d["pv"][d["codes"]]
    for got, want in zip((post, post_w, growing), post_trade(d["is_order"], d["price"], pv_row, d["current"],
                                                             d["signed"])):
        assert got.dtype == want.dtype and got.tobytes() == want.tobytes()
    if d["limits"].uses_sectors:
        assert np.array_equal(sec_codes, d["codes"] * (d["nsectors"] + 1) + d["sec"])
        assert sector_lim.tobytes() == d["sector_table"][d["sec"]].tobytes()
    checks = _explained(d, post, post_w, growing, sec_codes, sector_lim)
    bits = np.zeros(len(post), dtype=np.uint8)
    for code, blocked, _, _ in checks:
        bits |= blocked.astype(np.uint8) << BIT[code]
    assert mask.tobytes() == bits.tobytes()
    expected = [r for r in RISK_CODES[:6] if _enabled(d["limits"], r)]
    assert [c[0] for c in checks] == expected


def _enabled(limits, rule):
    return {"max_order_notional": limits.max_order_notional is not None,
            "max_position_ratio": limits.max_position_ratio is not None,
            "single_name_cap": bool(limits.single_name_caps), "sector_cap": limits.uses_sectors,
            "max_gross_exposure": limits.max_gross_exposure is not None, "no_short": not limits.allow_short}[rule]


@settings(max_examples=150, deadline=None)
@given(days())
def test_the_decisions_are_one_row_per_order_and_rule_it_breaks_as_the_checks_explain(d):
    post, post_w, growing, mask, sec_codes, sector_lim, _ = check_orders(**d)
    inputs = dict(is_order=d["is_order"], price=d["price"], qty=d["qty"], signed=d["signed"], post=post,
                  post_w=post_w, growing=growing, codes=d["codes"], ngroups=d["ngroups"], name_cap=d["name_cap"],
                  sec_codes=sec_codes, sector_lim=sector_lim)
    sell = d["signed"] < 0
    want = []  # each check's flagged rows, quoting its measure and limit, ordered by row then rule bit
    for code, blocked, observed, limit in risk_checks(d["limits"], **inputs):
        lim = np.broadcast_to(np.asarray(limit, np.float64), blocked.shape)
        want += [(int(i), BIT[code], float(np.asarray(observed, np.float64)[i]), float(lim[i]), int(d["qty"][i]),
                  bool(sell[i])) for i in np.flatnonzero(blocked)]
    want.sort(key=lambda r: (r[0], r[1]))
    cols = tuple(np.empty(6 * len(post), dtype=t) for t in
                 (np.int32, np.int32, np.int8, np.int8, np.float64, np.float64, np.int64, np.int64, np.bool_))
    count, limits = np.zeros(1, dtype=np.int64), d["limits"]
    jit.risk.decisions(*rule_details(limits, **inputs), post, d["name_cap"] if limits.single_name_caps else
                       np.empty(0), sector_lim if limits.uses_sectors else np.empty(0), *_limit_args(limits)[:3],
                       d["qty"], sell, 1, 7, cols, count)
    n = int(count[0])
    got = [(int(cols[1][r]), int(cols[2][r]), float(cols[4][r]), float(cols[5][r]), int(cols[6][r]),
            bool(cols[8][r])) for r in range(n)]
    assert repr(got) == repr(want)  # repr: NaN measures compare equal
    assert (cols[0][:n] == 7).all() and (cols[3][:n] == 1).all() and (cols[7][:n] == 0).all()
    assert n == sum(bin(m).count("1") for m in mask)


@settings(max_examples=100, deadline=None)
@given(days())
def test_gross_and_sector_exposure_are_numpys_bincount_to_the_bit(d):
    limits = SimpleNamespace(**{**vars(d["limits"]), "max_gross_exposure": 1.0, "uses_sectors": True})
    post, post_w, growing, _, sec_codes, sector_lim, _ = check_orders(**{**d, "limits": limits})
    checks = dict((c[0], c) for c in _explained({**d, "limits": limits}, post, post_w, growing, sec_codes,
                                                 sector_lim))
    apw = np.abs(post_w)
    gross = np.bincount(d["codes"], weights=apw, minlength=d["ngroups"])[d["codes"]]
    exposure = np.bincount(sec_codes, weights=apw)[sec_codes] if len(sec_codes) else np.zeros(0)
    assert checks["max_gross_exposure"][2].tobytes() == gross.tobytes()
    assert checks["sector_cap"][2].tobytes() == exposure.tobytes()


def test_a_nan_limit_of_a_row_never_blocks_and_one_per_row_equals_one_for_all():
    n = 4
    args = dict(is_order=np.ones(n, bool), price=np.full(n, 10.0), qty=np.full(n, 100), signed=np.full(n, 100),
                current=np.zeros(n, np.int64), pv=np.array([1000.0]), codes=np.zeros(n, np.intp), ngroups=1)
    one = SimpleNamespace(max_order_notional=500.0, max_position_ratio=0.5, max_gross_exposure=2.0,
                          single_name_caps=False, uses_sectors=False, allow_short=True)
    per_row = SimpleNamespace(**{**vars(one), "max_order_notional": np.array([500.0, np.nan, 500.0, np.nan]),
                                 "max_position_ratio": np.full(n, 0.5), "max_gross_exposure": np.full(n, 2.0)})
    mask_one = check_orders(one, **args)[3]
    mask_rows = check_orders(per_row, **args)[3]
    notional = 1 << BIT["max_order_notional"]
    assert (mask_one & notional).tolist() == [notional] * n  # 1,000 > 500 on every row
    assert (mask_rows & notional).tolist() == [notional, 0, notional, 0]
    assert (mask_rows & ~np.uint8(notional)).tolist() == (mask_one & ~np.uint8(notional)).tolist()


def test_an_order_without_a_price_is_left_to_execution():
    limits = SimpleNamespace(max_order_notional=1.0, max_position_ratio=1e-6, max_gross_exposure=1e-6,
                             single_name_caps=False, uses_sectors=False, allow_short=False)
    post, post_w, growing, mask, *_ = check_orders(
        limits, is_order=np.array([True, True]), price=np.array([np.nan, 10.0]), qty=np.array([5, 5]),
        signed=np.array([5, -5]), current=np.array([0, 0]), pv=np.array([100.0]), codes=np.zeros(2, np.intp),
        ngroups=1)
    assert post.tolist() == [5, -5] and post_w[0] == 0.0 and growing.tolist() == [False, True]
    assert mask[0] == 0  # no notional, no growth: only no_short could flag it, and it buys
    assert mask[1] == (1 << BIT["max_order_notional"]) | (1 << BIT["max_position_ratio"]) | \
        (1 << BIT["max_gross_exposure"]) | (1 << BIT["no_short"])


def test_a_held_row_without_a_sector_is_returned_unchecked():
    limits = SimpleNamespace(max_order_notional=None, max_position_ratio=None, max_gross_exposure=None,
                             single_name_caps=False, uses_sectors=True, allow_short=True)
    out = check_orders(limits, is_order=np.array([True, False, True]), price=np.full(3, 10.0),
                       qty=np.array([1, 0, 2]), signed=np.array([1, 0, 2]), current=np.array([0, 0, 0]),
                       pv=np.array([100.0]), codes=np.zeros(3, np.intp), ngroups=1, sec=np.array([0, 1, 1]),
                       nsectors=1, sector_table=np.array([0.5, np.nan]))
    assert out[-1] == 2  # row 1 has no sector but holds nothing


def test_inputs_of_other_dtypes_reuse_the_compiled_kernels():
    from tradeloop.core.jit import risk as kernels

    jit.warm()
    before = {k: len(getattr(kernels, k).signatures) for k in ("post_trade", "rules", "check_day")}
    limits = SimpleNamespace(max_order_notional=10, max_position_ratio=np.array([0.1, 0.2], np.float32),
                             max_gross_exposure=None, single_name_caps=True, uses_sectors=True, allow_short=False)
    post, post_w, growing, mask, sec_codes, sector_lim, _ = check_orders(
        limits, is_order=[True, False], price=np.array([1.0, 2.0], np.float32), qty=np.array([3, 0], np.int32),
        signed=np.array([3, 0], np.int32), current=[0, 1], pv=100, codes=[0, 0], ngroups=1, name_cap=[0.5, 0.5],
        sec=np.array([0, 0], np.int8), nsectors=1, sector_table=[0.5, 0.5], sector_offset=np.zeros(2, np.int32))
    _explained(dict(limits=limits, is_order=[True, False], price=[1.0, 2.0], qty=[3, 0], signed=[3, 0],
                    codes=np.zeros(2, np.int32), ngroups=1, name_cap=[0.5, 0.5]), post, post_w, growing,
               sec_codes, sector_lim)
    post_trade([True], [1.0], np.float32(5.0), [0], [1])
    after = {k: len(getattr(kernels, k).signatures) for k in before}
    assert after == before and "risk" in jit.KERNEL_MODULES


def test_importing_the_risk_and_history_modules_loads_no_numba():
    probe = ("import sys, tradeloop, tradeloop.core.risk, tradeloop.workflows.history\n"
             "print('numba' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False"]
