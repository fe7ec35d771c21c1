"""Open registries: fill models and providers from another installed package, checked against their Protocol."""

from __future__ import annotations

import json
import sys
from importlib.metadata import entry_points

import pandas as pd
import pytest

from tradeloop import PluginError, RunParams, Store, ValidationError
from tradeloop.venue.commission import COMMISSION_MODELS, CommissionModel
from tradeloop.venue.liquidity import LIQUIDITY_MODELS, LiquidityModel
from tradeloop.venue.providers import PROVIDERS, ExecutionProvider, get_provider, provider_table
from tradeloop.venue.registry import GROUPS, check_plugin, model_rule, protocol_members
from tradeloop.venue.slippage import SLIPPAGE_MODELS, SlippageModel

TICK_MODELS = '''
    from dataclasses import dataclass

    import numpy as np

    from tradeloop import ValidationError


    @dataclass(frozen=True)
    class TickSlippage:
        """Fill ``ticks`` ticks against the order: BUY at price + ticks × tick, SELL at price − ticks × tick."""

        ticks: int = 1
        tick: float = 0.01

        def __post_init__(self):
            if self.ticks < 0:
                raise ValidationError(f"params.slippage.ticks is {self.ticks!r}; it must be >= 0")

        def fill_prices(self, side, price):
            sign = np.where(np.asarray(side) == "BUY", 1.0, -1.0)
            return np.round(np.asarray(price, dtype="float64") + sign * self.ticks * self.tick, 6)
'''

BAD_MODELS = '''
    from dataclasses import dataclass


    @dataclass(frozen=True)
    class NoPrices:
        bps: float = 0.0


    @dataclass
    class NotFrozen:
        def fill_prices(self, side, price):
            return price


    @dataclass(frozen=True)
    class Renamed:
        def fill_prices(self, side, price):
            return price


    @dataclass(frozen=True)
    class PricesNotCallable:
        fill_prices: float = 3.0


    NOT_A_CLASS = NoPrices()
'''


def _write(path, frame: pd.DataFrame):
    frame.to_csv(path, index=False)
    return path


def test_a_separate_package_adds_a_slippage_model_used_from_params_json(tmp_path, cli, plugin_site):
    plugin_site.install("tick-costs", {"tick_costs": TICK_MODELS},
                        {"tradeloop.slippage": {"TickSlippage": "tick_costs:TickSlippage"}})
    snap = _write(tmp_path / "w.csv", pd.DataFrame({"symbol": ["AAA", "BBB"], "weight": [0.2, 0.3],
                                                     "price": [10.0, 20.0]}))
    params = tmp_path / "params.json"
    params.write_text(json.dumps({"slippage": {"model": "TickSlippage", "ticks": 2}, "cash_buffer": 0.01}))
    db = tmp_path / "p.duckdb"
    ran = cli("run", "--snapshot", snap, "--params", params, "--portfolio-value", 10000, "--model-version", "m1",
              "--db", db, "--json", env=plugin_site.env)
    assert ran.returncode == 0, ran.stderr
    run_id = json.loads(ran.stdout)["run_id"]
    with Store(db, read_only=True) as store:
        fills = store.fills(run_id).set_index("client_order_id")
        stored = json.loads(store.con.execute("SELECT params FROM trade_runs WHERE run_id = ?", [run_id]).fetchone()[0])
    # BUY 10.00 + 2 × 0.01 and BUY 20.00 + 2 × 0.01
    assert sorted(fills["price"].tolist()) == [10.02, 20.02]
    assert stored["slippage"] == {"model": "TickSlippage", "ticks": 2, "tick": 0.01}
    # verify replays the run through the same plug-in, found again by its name in the stored params
    verified = cli("verify", run_id, "--db", db, env=plugin_site.env)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    # without the plug-in installed, the name is unknown and the run is refused before anything is written
    missing = cli("run", "--snapshot", snap, "--params", params, "--portfolio-value", 10000, "--model-version", "m1",
                  "--db", tmp_path / "q.duckdb")
    assert missing.returncode == 2
    assert "params.slippage.model is 'TickSlippage'; allowed: ['FixedBpsSlippage', 'NoSlippage']" in missing.stderr


def test_a_plugin_model_round_trips_through_params(plugin_site):
    plugin_site.install("tick-costs", {"tick_costs": TICK_MODELS},
                        {"tradeloop.slippage": {"TickSlippage": "tick_costs:TickSlippage"}})
    plugin_site.activate()
    params = RunParams.from_dict({"slippage": {"model": "TickSlippage", "ticks": 3, "tick": 0.05}})
    assert type(params.slippage).__module__ == "tick_costs"
    assert RunParams.from_dict(params.to_dict()) == params
    with pytest.raises(ValidationError, match=r"params.slippage.ticks is -1; it must be >= 0"):
        RunParams.from_dict({"slippage": {"model": "TickSlippage", "ticks": -1}})
    with pytest.raises(ValidationError, match=r"params.slippage \(TickSlippage\) has unknown key\(s\) \['bps'\]"):
        RunParams.from_dict({"slippage": {"model": "TickSlippage", "bps": 1}})


@pytest.mark.parametrize("name, target, message", [
    ("NoPrices", "bad_models:NoPrices", "NoPrices has no method 'fill_prices' required by SlippageModel"),
    ("NotFrozen", "bad_models:NotFrozen", "NotFrozen is not a frozen dataclass (write @dataclass(frozen=True))"),
    ("Alias", "bad_models:Renamed", "the entry point must be named after the class, 'Renamed'"),
    ("PricesNotCallable", "bad_models:PricesNotCallable", "PricesNotCallable.fill_prices is not a method"),
    ("NotAClass", "bad_models:NOT_A_CLASS", "is NoPrices NoPrices(bps=0.0), not a class"),
    ("Missing", "no_such_module:Model", "cannot be loaded: ModuleNotFoundError: "),
])
def test_a_broken_model_is_refused_in_one_line_naming_the_entry_point(plugin_site, name, target, message):
    plugin_site.install("bad-models", {"bad_models": BAD_MODELS}, {"tradeloop.slippage": {name: target}})
    plugin_site.activate()
    with pytest.raises(PluginError) as e:
        RunParams.from_dict({"slippage": {"model": name}})
    text = str(e.value)
    assert text.startswith(f"entry point {name!r} ({target}) in group tradeloop.slippage")
    assert message in text and "\n" not in text


def test_listing_names_imports_no_plugin(plugin_site):
    plugin_site.install("bad-models", {"bad_models": BAD_MODELS},
                        {"tradeloop.slippage": {"NoPrices": "bad_models:NoPrices"}})
    plugin_site.activate()
    assert "NoPrices" in SLIPPAGE_MODELS and sorted(SLIPPAGE_MODELS) == ["FixedBpsSlippage", "NoPrices", "NoSlippage"]
    with pytest.raises(ValidationError, match=r"params.slippage.model is 'Nope'; allowed: \['FixedBpsSlippage', "
                                              r"'NoPrices', 'NoSlippage'\]"):
        RunParams.from_dict({"slippage": "Nope"})
    assert "bad_models" not in sys.modules


def test_a_broken_model_through_the_cli_exits_2_with_one_line(tmp_path, cli, plugin_site):
    plugin_site.install("bad-models", {"bad_models": BAD_MODELS},
                        {"tradeloop.commission": {"NoPrices": "bad_models:NoPrices"}})
    snap = _write(tmp_path / "w.csv", pd.DataFrame({"symbol": ["AAA"], "weight": [0.2], "price": [10.0]}))
    params = tmp_path / "params.json"
    params.write_text(json.dumps({"commission": {"model": "NoPrices"}}))
    ran = cli("run", "--snapshot", snap, "--params", params, "--portfolio-value", 10000, "--model-version", "m1",
              "--db", tmp_path / "p.duckdb", env=plugin_site.env)
    assert ran.returncode == 2
    assert ran.stderr.strip().splitlines() == [
        f"error: {params}: entry point 'NoPrices' (bad_models:NoPrices) in group tradeloop.commission: NoPrices has no "
        "method 'commissions' required by CommissionModel"]
    assert not (tmp_path / "p.duckdb").exists()


STUB_PROVIDER = '''
    class Stub:
        """Builds orders but cannot execute them."""
        name = "stub"

        def prepare(self, run, snapshot):
            raise NotImplementedError

        def risk_check(self, run, book):
            raise NotImplementedError
'''


def test_a_provider_is_checked_against_the_contract_when_loaded(tmp_path, cli, plugin_site):
    plugin_site.install("stub-venue", {"stub_venue": STUB_PROVIDER},
                        {"tradeloop.providers": {"stub": "stub_venue:Stub"}})
    plugin_site.activate()
    expected = ("entry point 'stub' (stub_venue:Stub) in group tradeloop.providers: Stub has no method 'execute' "
                "required by ExecutionProvider")
    with pytest.raises(PluginError) as e:
        get_provider("stub")
    assert str(e.value) == expected
    row = provider_table().set_index("name").loc["stub"]
    assert not row["available"]
    assert row["summary"] == expected and row["source"] == "stub-venue"
    snap = _write(tmp_path / "w.csv", pd.DataFrame({"symbol": ["AAA"], "weight": [0.2], "price": [10.0]}))
    ran = cli("run", "--snapshot", snap, "--portfolio-value", 10000, "--model-version", "m1", "--provider", "stub",
              "--db", tmp_path / "p.duckdb", env=plugin_site.env)
    assert ran.returncode == 2 and ran.stderr.strip() == f"error: {expected}"


@pytest.mark.parametrize("registry, protocol, members", [
    (PROVIDERS, ExecutionProvider, ("name", "prepare", "risk_check", "execute", "finalize")),
    (SLIPPAGE_MODELS, SlippageModel, ("fill_prices",)),
    (COMMISSION_MODELS, CommissionModel, ("commissions",)),
    (LIQUIDITY_MODELS, LiquidityModel, ("step_caps",)),
])
def test_builtins_satisfy_their_protocol_and_are_declared_as_entry_points(registry, protocol, members):
    assert registry.protocol is protocol and protocol_members(protocol) == members
    for name, cls in registry.builtins.items():
        check_plugin(cls, protocol, f"built-in {name!r}")
        if registry is not PROVIDERS:
            assert model_rule(cls, name) is None
    # tradeloop's own pyproject.toml declares exactly its built-ins, pointing at the same classes
    ours = {ep.name: ep for ep in entry_points(group=registry.group) if ep.dist and ep.dist.name == "tradeloop"}
    assert sorted(ours) == sorted(registry.builtins)
    assert all(ours[name].load() is cls for name, cls in registry.builtins.items())
    assert registry.group in GROUPS.values()
