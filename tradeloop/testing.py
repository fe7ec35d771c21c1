"""Provider conformance kit: the contract every execution provider must pass before tradeloop trusts it.

Use it from pytest in the package that ships a provider::

    from tradeloop.testing import assert_conformance

    def test_my_provider_conforms(tmp_path):
        assert_conformance(MyVenueProvider, tmp_path)   # any zero-argument factory returning a provider

The first check, ``contract``, holds the provider against :class:`~tradeloop.venue.providers.ExecutionProvider`
(the same declaration :func:`~tradeloop.venue.providers.get_provider` checks when it loads a provider). The others
drive real runs through :func:`tradeloop.workflows.run.execute_run` on a throw-away DuckDB file with a small
built-in snapshot (one symbol without any price, one only held, volumes that force PARTIAL fills with the mock's
``VolumeParticipation``), plus direct calls to ``provider.execute``:

``contract``
    The provider has every attribute and method :class:`~tradeloop.venue.providers.ExecutionProvider` declares.
``execute_idempotent``
    ``execute`` on the same orders (same client_order_ids) gives the same fills and order states; terminal orders
    fed back produce no fill and no event; re-running a done run adds no order, fill or event.
``legal_transitions``
    Every run ends ``done``, and the stored ``order_events`` of every order replay from NEW, through legal
    transitions only, to the order's stored status and filled quantity.
``fills_within_qty``
    Fills have the :data:`~tradeloop.core.engine.FILL_COLUMNS`, unique ``fill_id``, positive quantities and prices;
    an order's fills never exceed its quantity and add up to its ``filled_qty``; FILLED means completely filled.
``dry_run_no_side_effects``
    ``execute(..., dry_run=True)`` returns no fill and no event, leaves the orders (and its input frame) unchanged,
    and a dry-run run writes no fill and no event.
``finalize_once``
    ``finalize`` is called exactly once per execution attempt: done, dry run, blocked by risk, and failed.
``missing_price_rejected``
    An order without any price ends REJECTED with reason ``missing_price`` and no fill.
``errors_fail_run``
    When execution raises (the kit makes ``execute`` raise after the provider returned: a crash between the venue
    and the database), the run ends ``failed`` with the error in the run and its audit event, nothing of the
    attempt is written, and a re-run completes with exactly the fills of an undisturbed run.
"""

from __future__ import annotations

import json
import tempfile
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .core.engine import FILL_COLUMNS, FillResult
from .core.fsm import TERMINAL_ORDER_STATUSES
from .core.lifecycle import replay_order_events
from .core.snapshot import DecisionSnapshot, freeze_snapshot
from .errors import PluginError
from .store.db import Store
from .venue.providers import ExecutionProvider, provider_names
from .venue.registry import check_plugin
from .workflows.params import RunParams
from .workflows.run import create_run, execute_run, load_run

__all__ = ["CHECKS", "CheckResult", "ConformanceReport", "ProviderConformanceError", "check_provider",
           "assert_conformance", "conformance_snapshot", "CONFORMANCE_PARAMS"]

ProviderFactory = Callable[[], ExecutionProvider]

#: Params of the kit's runs: partial fills over two steps, slippage and fees, so every state is reachable.
CONFORMANCE_PARAMS = {
    "liquidity": {"model": "VolumeParticipation", "max_rate": 0.5},
    "steps": 2,
    "slippage": {"model": "FixedBpsSlippage", "bps": 5},
    "commission": {"model": "PerShareCommission", "rate": 0.005, "minimum": 1.0},
}
_BLOCKING_RISK = {"max_order_notional": 1_000}
_INJECTED = "conformance kit: injected failure after execute returned"
_ORDER_STATE = ["client_order_id", "status", "filled_qty", "avg_fill_price", "reject_reason"]
_FILL_KEY = ["fill_id", "client_order_id", "qty", "price", "commission"]


def conformance_snapshot() -> tuple[DecisionSnapshot, pd.DataFrame, pd.DataFrame]:
    """The kit's inputs: ``(snapshot, positions, fallback_prices)``.

    AAA fills 200 of 600 per step (volume 400, rate 0.5) so it ends PARTIAL then CANCELED after two steps; BBB and
    DDD fill; CCC has no price anywhere (REJECTED); EEE is only held, priced by the fallback, and sold.
    """
    weights = pd.DataFrame({
        "symbol": ["AAA", "BBB", "CCC", "DDD"],
        "weight": [0.3, 0.2, 0.1, 0.1],
        "price": [50.0, 20.0, np.nan, 10.0],
        "sector": ["Tech", "Energy", "Tech", "Health"],
        "volume": [400.0, 1_000_000.0, 1_000.0, 5_000.0],
    })
    snapshot = freeze_snapshot(weights, portfolio_value=100_000, model_version="conformance-v1")
    positions = pd.DataFrame({"symbol": ["EEE"], "qty": [100]})
    fallback = pd.DataFrame({"symbol": ["EEE"], "price": [30.0]})
    return snapshot, positions, fallback


@dataclass(frozen=True)
class CheckResult:
    """One check: its name, whether it passed, and what went wrong."""

    name: str
    passed: bool
    detail: str = ""


@dataclass(frozen=True)
class ConformanceReport:
    """All checks run against one provider; ``str(report)`` is the readable summary."""

    provider: str
    results: tuple[CheckResult, ...]

    @property
    def ok(self) -> bool:
        return all(r.passed for r in self.results)

    @property
    def failures(self) -> list[CheckResult]:
        return [r for r in self.results if not r.passed]

    def __str__(self) -> str:
        head = (f"provider {self.provider!r} passed all {len(self.results)} conformance checks" if self.ok else
                f"provider {self.provider!r} failed {len(self.failures)} of {len(self.results)} conformance checks:")
        return "\n".join([head] + [f"  - {r.name}: {r.detail}" for r in self.failures])


class ProviderConformanceError(AssertionError):
    """Raised by :func:`assert_conformance`; the message lists every failed check with its reason."""

    def __init__(self, report: ConformanceReport):
        super().__init__(str(report))
        self.report = report


class _Violation(Exception):
    """A broken rule of the contract (as opposed to the provider crashing)."""


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise _Violation(message)


class _Harness:
    """Throw-away stores and runs for one provider factory, with the provider's calls instrumented."""

    def __init__(self, factory: ProviderFactory, workdir: Path):
        self.factory = factory
        self.workdir = workdir
        self.snapshot, self.positions, self.fallback = conformance_snapshot()
        self._n = 0

    def store(self) -> Store:
        self._n += 1
        return Store(self.workdir / f"conformance-{self._n}.duckdb")

    def provider(self, *, fail_after_execute: bool = False):
        """A fresh provider whose execute/finalize calls are recorded on the instance itself (so calls it makes
        to itself are seen too)."""
        p = self.factory()
        p._kit_inputs, p._kit_results, p._kit_finalized = [], [], []
        execute, finalize = p.execute, p.finalize

        def recorded_execute(run, orders, dry_run):
            p._kit_inputs.append(orders.copy(deep=True))
            result = execute(run, orders, dry_run)
            p._kit_results.append(result)
            if fail_after_execute:
                raise RuntimeError(_INJECTED)
            return result

        def recorded_finalize(run, result):
            p._kit_finalized.append(result)
            return finalize(run, result)

        p.execute, p.finalize = recorded_execute, recorded_finalize
        return p

    def run(self, store: Store, provider, *, dry_run: bool = False, risk: dict | None = None, **params):
        name = getattr(provider, "name", "mock")
        spec = {**CONFORMANCE_PARAMS, **params, **({"risk": risk} if risk else {})}
        created = create_run(store, self.snapshot, params=RunParams.from_dict(spec), positions=self.positions,
                             fallback_prices=self.fallback, provider=name if name in provider_names() else "mock",
                             dry_run=dry_run)
        return created.run_id, execute_run(store, created.run_id, provider=provider)


def _state(orders: pd.DataFrame) -> pd.DataFrame:
    return orders.loc[:, _ORDER_STATE].sort_values("client_order_id", kind="stable").reset_index(drop=True)


def _fill_key(fills: pd.DataFrame) -> pd.DataFrame:
    return fills.loc[:, _FILL_KEY].sort_values("fill_id", kind="stable").reset_index(drop=True)


def _frames_equal(a: pd.DataFrame, b: pd.DataFrame) -> bool:
    try:
        pd.testing.assert_frame_equal(a, b, check_dtype=False, check_exact=False, rtol=1e-12)
        return True
    except AssertionError:
        return False


def _done(h: _Harness, provider) -> tuple[Store, str]:
    store = h.store()
    run_id, result = h.run(store, provider)
    _require(result.status == "done", f"a normal run ended {result.status!r}, not 'done': {result.error}")
    return store, run_id


# ------------------------------------------------------------------------------------------------ the checks
def _check_contract(h: _Harness) -> None:
    provider = h.factory()
    try:
        check_plugin(provider, ExecutionProvider, f"provider {getattr(provider, 'name', type(provider).__name__)!r}")
    except PluginError as e:
        raise _Violation(str(e)) from None


def _check_execute_idempotent(h: _Harness) -> None:
    first = h.provider()
    store, run_id = _done(h, first)
    with store:
        _require(len(first._kit_inputs) == 1, f"execute was called {len(first._kit_inputs)} times in one run")
        orders, result = first._kit_inputs[0], first._kit_results[0]
        run = load_run(store, run_id)
        again = h.factory().execute(run, orders.copy(deep=True), False)
        _require(_frames_equal(_fill_key(result.fills), _fill_key(again.fills)),
                 "execute on the same client_order_ids gave different fills the second time "
                 f"(first fill_ids {sorted(result.fills['fill_id'])[:3]}, then {sorted(again.fills['fill_id'])[:3]})")
        _require(_frames_equal(_state(result.orders), _state(again.orders)),
                 "execute on the same client_order_ids left the orders in different states the second time")
        terminal = result.orders.loc[result.orders["status"].isin(TERMINAL_ORDER_STATUSES).to_numpy()]
        if len(terminal):
            replay = h.factory().execute(run, terminal.copy(deep=True), False)
            _require(len(replay.fills) == 0 and len(replay.events) == 0,
                     f"execute on terminal orders produced {len(replay.fills)} fill(s) and {len(replay.events)} "
                     "event(s); terminal orders must never change")
            _require(_frames_equal(_state(terminal), _state(replay.orders)),
                     "execute changed the state of terminal orders")
        before = store.table_counts()
        rerun = execute_run(store, run_id, provider=h.provider())
        after = store.table_counts()
        grew = {t: after[t] - before[t] for t in ("trade_orders", "trade_fills", "order_events") if after[t] != before[t]}
        _require(rerun.status == "done" and not grew, f"re-running a done run added rows {grew} (status {rerun.status})")


def _check_legal_transitions(h: _Harness) -> None:
    for label, params in (("market, 2 steps", {}), ("limit that does not cross", {"order_type": "LIMIT",
                                                                                  "limit_offset_bps": -50})):
        store = h.store()
        with store:
            run_id, result = h.run(store, h.provider(), **params)
            _require(result.status == "done", f"{label}: run ended {result.status!r}: {result.error}")
            replayed = replay_order_events(store.order_events(run_id)).set_index("client_order_id")
            stored = store.orders(run_id).set_index("client_order_id")
            moved = stored.index[stored["status"] != "NEW"]
            missing = sorted(set(moved) - set(replayed.index))
            _require(not missing, f"{label}: order(s) {missing[:3]} changed status without any order event")
            r = replayed.loc[moved]
            bad = moved[(r["status"] != stored.loc[moved, "status"]).to_numpy()
                        | (r["filled_qty"] != stored.loc[moved, "filled_qty"]).to_numpy()]
            _require(len(bad) == 0, f"{label}: the events of order {bad[:1].tolist()} replay to "
                                    f"{r.loc[bad[:1], ['status', 'filled_qty']].values.tolist()} but it is stored as "
                                    f"{stored.loc[bad[:1], ['status', 'filled_qty']].values.tolist()}")


def _check_fills_within_qty(h: _Harness) -> None:
    p = h.provider()
    store, run_id = _done(h, p)
    with store:
        result: FillResult = p._kit_results[0]
        fills = result.fills
        missing = [c for c in FILL_COLUMNS if c not in fills.columns]
        _require(not missing, f"fills are missing column(s) {missing}")
        _require(fills["fill_id"].is_unique, f"fill_id repeats: {fills.loc[fills['fill_id'].duplicated(), 'fill_id'].tolist()[:3]}")
        _require(bool((fills["qty"] > 0).all()), "a fill has a quantity <= 0")
        px = fills["price"].to_numpy(dtype="float64")
        _require(bool(np.isfinite(px).all() and (px > 0).all()), "a fill has a price that is not a finite number > 0")
        for orders, fill_frame, where in ((result.orders, fills, "returned by execute"),
                                          (store.orders(run_id), store.fills(run_id), "stored")):
            per_order = fill_frame.groupby("client_order_id")["qty"].sum()
            o = orders.set_index("client_order_id")
            total = per_order.reindex(o.index, fill_value=0)
            over = o.index[(total > o["qty"]).to_numpy()]
            _require(len(over) == 0, f"order {over[0]!r} ({where}) has fills of {int(total[over[0]])} shares, more "
                                     f"than its quantity {int(o.loc[over[0], 'qty'])}" if len(over) else "")
            off = o.index[(total != o["filled_qty"]).to_numpy()]
            _require(len(off) == 0, f"order {off[0]!r} ({where}) says filled_qty {int(o.loc[off[0], 'filled_qty'])} "
                                    f"but its fills add up to {int(total[off[0]])}" if len(off) else "")
            short = o.index[((o["status"] == "FILLED") & (o["filled_qty"] != o["qty"])).to_numpy()]
            _require(len(short) == 0, f"order {short[0]!r} ({where}) is FILLED with {int(o.loc[short[0], 'filled_qty'])}"
                                      f" of {int(o.loc[short[0], 'qty'])}" if len(short) else "")


def _check_dry_run(h: _Harness) -> None:
    p = h.provider()
    store, run_id = _done(h, p)
    with store:
        orders = p._kit_inputs[0]
        run = load_run(store, run_id)
        given = orders.copy(deep=True)
        dry = h.factory().execute(run, given, True)
        _require(_frames_equal(given, orders), "execute(dry_run=True) modified the orders frame it was given")
        _require(len(dry.fills) == 0, f"execute(dry_run=True) returned {len(dry.fills)} fill(s)")
        _require(len(dry.events) == 0, f"execute(dry_run=True) returned {len(dry.events)} order event(s)")
        _require(_frames_equal(_state(dry.orders), _state(orders)), "execute(dry_run=True) changed order states")
    store = h.store()
    with store:
        run_id, result = h.run(store, h.provider(), dry_run=True)
        _require(result.status == "done", f"a dry run ended {result.status!r}: {result.error}")
        counts = store.table_counts()
        _require(counts["trade_fills"] == 0 and counts["order_events"] == 0,
                 f"a dry run wrote {counts['trade_fills']} fill(s) and {counts['order_events']} order event(s)")
        statuses = sorted(set(store.orders(run_id)["status"]))
        _require(statuses == ["NEW"], f"a dry run left orders in {statuses}; they must stay NEW")


def _check_finalize_once(h: _Harness) -> None:
    cases = (("done", {}, None), ("dry run", {"dry_run": True}, None), ("blocked", {"risk": _BLOCKING_RISK}, None),
             ("failed", {}, "fail"))
    for label, kwargs, fail in cases:
        p = h.provider(fail_after_execute=fail == "fail")
        store = h.store()
        with store:
            h.run(store, p, **kwargs)
        _require(len(p._kit_finalized) == 1,
                 f"finalize was called {len(p._kit_finalized)} time(s) for a {label} run; it must be called once")


def _check_missing_price(h: _Harness) -> None:
    store, run_id = _done(h, h.provider())
    with store:
        orders = store.orders(run_id).set_index("symbol")
        fills = store.fills(run_id)
        ccc = orders.loc["CCC"]
        _require(ccc["status"] == "REJECTED" and ccc["reject_reason"] == "missing_price",
                 f"the order for CCC (no price anywhere) ended {ccc['status']!r} with reason "
                 f"{ccc['reject_reason']!r}; expected 'REJECTED' with 'missing_price'")
        _require(not fills["client_order_id"].eq(ccc["client_order_id"]).any(), "the order without a price was filled")


def _check_errors_fail_run(h: _Harness) -> None:
    reference_store, reference_run = _done(h, h.provider())
    with reference_store:
        reference = _fill_key(reference_store.fills(reference_run))
    store = h.store()
    with store:
        run_id, result = h.run(store, h.provider(fail_after_execute=True))
        _require(result.status == "failed", f"execution raised, but the run ended {result.status!r}")
        _require(result.error is not None and _INJECTED in result.error,
                 f"the failed run's error is {result.error!r}; it must carry the exception's message")
        counts = store.table_counts()
        _require(counts["trade_fills"] == 0 and counts["order_events"] == 0,
                 f"the failed attempt left {counts['trade_fills']} fill(s) and {counts['order_events']} event(s)")
        audit = store.audit_events(run_id)
        last = json.loads(audit["payload"].iloc[-1]) if len(audit) else {}
        _require(last.get("status") == "failed" and _INJECTED in (last.get("error") or ""),
                 "the failed attempt has no audit event with status 'failed' and the error")
        retry = execute_run(store, run_id, provider=h.provider())
        _require(retry.status == "done", f"re-running the failed run ended {retry.status!r}: {retry.error}")
        fills = _fill_key(store.fills(run_id))
        _require(_frames_equal(fills.drop(columns="fill_id"), reference.drop(columns="fill_id")),
                 "re-running the failed run gave different fills from an undisturbed run")


CHECKS: dict[str, Callable[[_Harness], None]] = {
    "contract": _check_contract,
    "execute_idempotent": _check_execute_idempotent,
    "legal_transitions": _check_legal_transitions,
    "fills_within_qty": _check_fills_within_qty,
    "dry_run_no_side_effects": _check_dry_run,
    "finalize_once": _check_finalize_once,
    "missing_price_rejected": _check_missing_price,
    "errors_fail_run": _check_errors_fail_run,
}


def check_provider(factory: ProviderFactory, workdir: str | Path | None = None,
                   checks: Sequence[str] | None = None) -> ConformanceReport:
    """Run the conformance checks against providers made by ``factory``; never raises for a failing check.

    Parameters
    ----------
    factory : callable
        Returns a new provider instance (a provider class works).
    workdir : path, optional
        Folder for the throw-away DuckDB files (pytest's ``tmp_path``); default a temporary folder.
    checks : sequence of str, optional
        Names from :data:`CHECKS`; default all.

    Returns
    -------
    ConformanceReport
        One :class:`CheckResult` per check; a check that crashes fails with the exception and where it was raised.
    """
    names = list(CHECKS) if checks is None else list(checks)
    unknown = sorted(set(names) - set(CHECKS))
    if unknown:
        raise ValueError(f"unknown conformance check(s) {unknown}; available: {list(CHECKS)}")
    with tempfile.TemporaryDirectory(prefix="tradeloop-conformance-") as tmp:
        base = Path(workdir) if workdir is not None else Path(tmp)
        base.mkdir(parents=True, exist_ok=True)
        probe = factory()
        label = getattr(probe, "name", type(probe).__name__)
        results = []
        for name in names:
            h = _Harness(factory, base / name)
            (base / name).mkdir(exist_ok=True)
            try:
                CHECKS[name](h)
                results.append(CheckResult(name, True))
            except _Violation as e:
                results.append(CheckResult(name, False, str(e)))
            except Exception as e:  # the provider (or the run around it) crashed: report where
                frame = traceback.extract_tb(e.__traceback__)[-1]
                results.append(CheckResult(name, False, f"raised {type(e).__name__}: {e} "
                                                        f"({Path(frame.filename).name}:{frame.lineno})"))
    return ConformanceReport(label, tuple(results))


def assert_conformance(factory: ProviderFactory, workdir: str | Path | None = None,
                       checks: Sequence[str] | None = None) -> ConformanceReport:
    """:func:`check_provider`, raising :class:`ProviderConformanceError` (an AssertionError) listing every failure.

    Examples
    --------
    >>> from tradeloop import MockExecutionProvider
    >>> assert_conformance(MockExecutionProvider).ok
    True
    """
    report = check_provider(factory, workdir, checks)
    if not report.ok:
        raise ProviderConformanceError(report)
    return report
