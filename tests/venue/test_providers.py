"""The provider conformance kit: the mock passes it, and each deliberately broken provider is caught by name."""

from __future__ import annotations

import json
import uuid

import numpy as np
import pandas as pd
import pytest

from tradeloop import MockExecutionProvider
from tradeloop.core.engine import FillResult
from tradeloop.testing import (
    CHECKS,
    ProviderConformanceError,
    assert_conformance,
    check_provider,
)


def test_mock_provider_passes_every_check(tmp_path):
    report = assert_conformance(MockExecutionProvider, tmp_path)
    assert report.ok and [r.name for r in report.results] == list(CHECKS)
    assert str(report) == "provider 'mock' passed all 8 conformance checks"


# --- deliberately broken providers, each violating one rule of the contract ---------------------------------
class RandomFillIds(MockExecutionProvider):
    """Gives every fill a fresh random id: executing twice would duplicate fills."""

    name = "random-ids"

    def execute(self, run, orders, dry_run):
        r = super().execute(run, orders, dry_run)
        ids = [f"{c}-{uuid.uuid4().hex[:8]}" for c in r.fills["client_order_id"]]
        return FillResult(r.orders, r.fills.assign(fill_id=ids), r.events)


class ReopensTerminal(MockExecutionProvider):
    """Treats every order it is given as NEW, even FILLED/CANCELED ones."""

    name = "reopens"

    def execute(self, run, orders, dry_run):
        return super().execute(run, orders.assign(status="NEW", filled_qty=0, n_fills=0, avg_fill_price=np.nan),
                               dry_run)


class SkipsSubmitted(MockExecutionProvider):
    """Reports fills but never reports the SUBMITTED step: NEW -> FILLED is not a legal transition."""

    name = "skips-submitted"

    def execute(self, run, orders, dry_run):
        r = super().execute(run, orders, dry_run)
        ev = r.events.loc[r.events["to_status"] != "SUBMITTED"].copy()
        ev.loc[ev["from_status"] == "SUBMITTED", "from_status"] = "NEW"
        return FillResult(r.orders, r.fills, ev)


class Overfills(MockExecutionProvider):
    """Fills twice the ordered quantity."""

    name = "overfills"

    def execute(self, run, orders, dry_run):
        r = super().execute(run, orders, dry_run)
        return FillResult(r.orders.assign(filled_qty=r.orders["filled_qty"] * 2), r.fills.assign(qty=r.fills["qty"] * 2),
                          r.events)


class IgnoresDryRun(MockExecutionProvider):
    """Executes even when asked for a dry run."""

    name = "ignores-dry-run"

    def execute(self, run, orders, dry_run):
        return super().execute(run, orders, False)


class FinalizesInExecute(MockExecutionProvider):
    """Closes its session at the end of execute, and then again when the run calls finalize."""

    name = "finalizes-twice"

    def execute(self, run, orders, dry_run):
        r = super().execute(run, orders, dry_run)
        self.finalize(run, r)
        return r


class FillsWithoutPrice(MockExecutionProvider):
    """Invents a price of 1.0 for orders that have none, instead of rejecting them."""

    name = "invents-prices"

    def execute(self, run, orders, dry_run):
        return super().execute(run, orders.assign(price=orders["price"].fillna(1.0)), dry_run)


class FinalizeNeedsResult(MockExecutionProvider):
    """Its finalize assumes a result: it crashes when the run failed or was blocked (result None)."""

    name = "fragile-finalize"

    def finalize(self, run, result):
        self.flushed = len(result.fills)


class WritesInDryRunInput(MockExecutionProvider):
    """Marks the orders it is given as SUBMITTED in place, even in a dry run."""

    name = "mutates-input"

    def execute(self, run, orders, dry_run):
        orders["status"] = "SUBMITTED"
        return super().execute(run, orders, dry_run)


def _reported(action) -> str:
    """How the kit reports the exception ``action`` raises: its type and Python's own message, read at run time
    rather than pinned here (CPython's wording is not tradeloop's to test)."""
    try:
        action()
    except Exception as e:
        return f"raised {type(e).__name__}: {e} ("
    raise AssertionError("the action did not raise")


class NoFinalize:
    """Everything of the contract but finalize (not a BaseProvider subclass)."""

    name = "no-finalize"

    def __init__(self):
        self._mock = MockExecutionProvider()

    def prepare(self, run, snapshot):
        return self._mock.prepare(run, snapshot)

    def risk_check(self, run, book):
        return self._mock.risk_check(run, book)

    def execute(self, run, orders, dry_run):
        return self._mock.execute(run, orders, dry_run)


@pytest.mark.parametrize("provider, check, message", [
    (NoFinalize, "contract", "provider 'no-finalize': NoFinalize instance has no method 'finalize' required by "
                             "ExecutionProvider"),
    (RandomFillIds, "execute_idempotent", "execute on the same client_order_ids gave different fills the second time"),
    (ReopensTerminal, "execute_idempotent", "execute on terminal orders produced"),
    (SkipsSubmitted, "legal_transitions", "run ended 'failed': order 'AAA-B-"),
    (SkipsSubmitted, "legal_transitions", "cannot go from 'NEW' to 'PARTIAL'"),
    (Overfills, "fills_within_qty", "more than its quantity"),
    (IgnoresDryRun, "dry_run_no_side_effects", "execute(dry_run=True) returned"),
    (WritesInDryRunInput, "dry_run_no_side_effects", "execute(dry_run=True) modified the orders frame it was given"),
    (FinalizesInExecute, "finalize_once", "finalize was called 2 time(s) for a done run; it must be called once"),
    (FillsWithoutPrice, "missing_price_rejected", "the order for CCC (no price anywhere) ended 'CANCELED' with reason 'unfilled_at_close'"),
    (FinalizeNeedsResult, "errors_fail_run", _reported(lambda: len(None.fills))),  # what its finalize does
])
def test_broken_provider_fails_the_check_with_a_clear_message(tmp_path, provider, check, message):
    report = check_provider(provider, tmp_path, checks=[check])
    assert not report.ok
    (failure,) = report.failures
    assert failure.name == check
    assert message in failure.detail, failure.detail


def test_assert_conformance_lists_every_failed_check(tmp_path):
    with pytest.raises(ProviderConformanceError) as e:
        assert_conformance(FinalizeNeedsResult, tmp_path)
    text = str(e.value)
    assert isinstance(e.value, AssertionError)
    assert text.startswith("provider 'fragile-finalize' failed 2 of 8 conformance checks:")
    assert "  - finalize_once: " in text and "  - errors_fail_run: " in text
    assert {r.name for r in e.value.report.failures} == {"finalize_once", "errors_fail_run"}


def test_unknown_check_name_is_refused():
    with pytest.raises(ValueError, match=r"unknown conformance check\(s\) \['nope'\]"):
        check_provider(MockExecutionProvider, checks=["nope"])


def test_a_separate_package_registers_a_provider_through_the_entry_point_group(tmp_path, cli, plugin_site):
    """A plugin installed next to tradeloop (a dist-info with an entry point) is listed and runs, with no change
    to tradeloop itself."""
    plugin_site.install("venue-plugin", {"venue_plugin": '''
        from tradeloop import MockExecutionProvider

        class HalfVenue(MockExecutionProvider):
            """A test venue from another package."""
            name = "halfvenue"
    '''}, {"tradeloop.providers": {"halfvenue": "venue_plugin:HalfVenue"}})
    env = plugin_site.env
    listed = cli("providers", "--json", env=env)
    assert listed.returncode == 0, listed.stderr
    rows = {r["name"]: r for r in json.loads(listed.stdout)}
    assert rows["halfvenue"] == {"name": "halfvenue", "source": "venue-plugin", "target": "venue_plugin:HalfVenue",
                                 "available": True, "summary": "A test venue from another package."}
    assert rows["lean"]["available"] is False and rows["mock"]["available"] is True
    snap = tmp_path / "w.csv"
    pd.DataFrame({"symbol": ["AAA", "BBB"], "weight": [0.2, 0.3], "price": [10.0, 20.0]}).to_csv(snap, index=False)
    ran = cli("run", "--snapshot", snap, "--portfolio-value", 10000, "--model-version", "m1", "--provider",
              "halfvenue", "--db", tmp_path / "p.duckdb", "--json", env=env)
    assert ran.returncode == 0, ran.stderr
    assert json.loads(ran.stdout)["orders"] == {"FILLED": 2}
    unknown = cli("run", "--snapshot", snap, "--portfolio-value", 10000, "--model-version", "m1", "--provider",
                  "halfvenue", "--db", tmp_path / "q.duckdb")
    assert unknown.returncode == 2
    assert "provider 'halfvenue' is unknown; available: ['lean', 'mock']" in unknown.stderr
