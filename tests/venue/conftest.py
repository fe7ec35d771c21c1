"""``plugin_site``: install a separate package (modules plus a dist-info with entry points) next to tradeloop."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

from tradeloop.venue.commission import COMMISSION_MODELS
from tradeloop.venue.liquidity import LIQUIDITY_MODELS
from tradeloop.venue.providers import PROVIDERS
from tradeloop.venue.slippage import SLIPPAGE_MODELS

REGISTRIES = (PROVIDERS, SLIPPAGE_MODELS, COMMISSION_MODELS, LIQUIDITY_MODELS)


class PluginSite:
    """A site directory holding plug-in distributions, seen by ``importlib.metadata`` exactly like site-packages.

    ``env`` puts it on ``PYTHONPATH`` for a ``tradeloop`` subprocess; ``activate()`` puts it on this process's
    ``sys.path`` (undone after the test) for in-process registry checks.
    """

    def __init__(self, root: Path, monkeypatch):
        self.root = root
        self._monkeypatch = monkeypatch
        self.modules: list[str] = []
        root.mkdir(parents=True, exist_ok=True)

    @property
    def env(self) -> dict[str, str]:
        return {"PYTHONPATH": str(self.root)}

    def install(self, dist: str, modules: dict[str, str], entry_points: dict[str, dict[str, str]]) -> None:
        """Write ``modules`` (module name -> source) and a ``<dist>-0.1.dist-info`` declaring ``entry_points``
        (group -> {name: "module:attr"})."""
        for module, source in modules.items():
            self.modules.append(module)
            (self.root / f"{module}.py").write_text(textwrap.dedent(source))
        info = self.root / f"{dist.replace('-', '_')}-0.1.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n")
        (info / "entry_points.txt").write_text("".join(
            f"[{group}]\n" + "".join(f"{name} = {target}\n" for name, target in eps.items()) + "\n"
            for group, eps in entry_points.items()))

    def activate(self) -> None:
        """Put the site on ``sys.path`` and make tradeloop's registries read their entry points again."""
        self._monkeypatch.syspath_prepend(str(self.root))
        for registry in REGISTRIES:
            registry.refresh()

    def deactivate(self) -> None:
        for module in self.modules:
            sys.modules.pop(module, None)
        for registry in REGISTRIES:
            registry.refresh()


@pytest.fixture
def plugin_site(tmp_path, monkeypatch):
    site = PluginSite(tmp_path / "site", monkeypatch)
    yield site
    site.deactivate()
