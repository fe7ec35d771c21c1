"""Open registries: the named plug-ins of one kind, built into tradeloop or registered by another package.

Each kind (execution providers, slippage, commission and liquidity models) is one :class:`Registry`: tradeloop's
built-ins plus the entry points of one group, so a researcher adds a model in their own package's
``pyproject.toml`` without editing tradeloop::

    [project.entry-points."tradeloop.slippage"]
    SquareRootSlippage = "mypackage.costs:SquareRootSlippage"

Entry points are listed on first use and each one is imported only when its name is asked for. A loaded plug-in is
checked against the kind's ``typing.Protocol`` (every method present) and the kind's own rule (e.g. a model must be
a frozen dataclass); a plug-in that fails is refused with one :class:`~tradeloop.errors.PluginError` line naming the
entry point and what is missing.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator, Mapping
from dataclasses import is_dataclass
from importlib.metadata import EntryPoint, entry_points

from ..errors import PluginError

__all__ = ["Registry", "protocol_members", "check_plugin", "model_rule", "GROUPS"]

#: Entry-point groups tradeloop reads, by kind.
GROUPS = {
    "providers": "tradeloop.providers",
    "slippage": "tradeloop.slippage",
    "commission": "tradeloop.commission",
    "liquidity": "tradeloop.liquidity",
}


def protocol_members(protocol: type) -> tuple[str, ...]:
    """The attribute and method names a ``typing.Protocol`` declares (its own and its protocol bases')."""
    names: list[str] = []
    for klass in reversed(protocol.__mro__):
        if klass is object or not getattr(klass, "_is_protocol", False) or klass.__name__ in ("Protocol", "Generic"):
            continue
        for name in (*getattr(klass, "__annotations__", {}), *vars(klass)):
            if not name.startswith("_") and name not in names:
                names.append(name)
    return tuple(names)


def check_plugin(plugin, protocol: type, where: str) -> None:
    """Raise :class:`PluginError` unless ``plugin`` (a class or an instance) has every member ``protocol`` declares,
    its methods callable. ``where`` names the plug-in in the message, e.g. ``"entry point 'x' (pkg:X) in group …"``.
    """
    label = plugin.__qualname__ if inspect.isclass(plugin) else f"{type(plugin).__qualname__} instance"
    for name in protocol_members(protocol):
        declared = getattr(protocol, name, None)
        if not hasattr(plugin, name):
            kind = "method" if callable(declared) else "attribute"
            raise PluginError(f"{where}: {label} has no {kind} {name!r} required by {protocol.__name__}")
        if callable(declared) and not callable(getattr(plugin, name)):
            raise PluginError(f"{where}: {label}.{name} is not a method, as {protocol.__name__} requires")


def model_rule(cls, name: str) -> str | None:
    """What a fill model must be besides its Protocol: a frozen dataclass (params JSON is parsed into its fields
    and the run stores it) registered under its class name (the name params JSON records for it)."""
    if not is_dataclass(cls) or not cls.__dataclass_params__.frozen:
        return f"{cls.__qualname__} is not a frozen dataclass (write @dataclass(frozen=True))"
    if name != cls.__name__:
        return f"the entry point must be named after the class, {cls.__name__!r} (params JSON records the class name)"
    return None


class Registry(Mapping):
    """Built-in plug-ins plus the entry points of ``group``: a read-only mapping name -> class.

    ``registry[name]`` (and ``.get``) imports an entry point on first use and checks it against ``protocol`` and
    ``rule`` (``rule(cls, name)`` returns what is wrong, or None); ``iter``, ``len`` and ``in`` only read names.
    A built-in wins over an entry point of the same name (tradeloop's own ``pyproject.toml`` declares them too).
    """

    def __init__(self, group: str, protocol: type, builtins: Mapping[str, type],
                 rule: Callable[[type, str], str | None] | None = None):
        self.group, self.protocol, self.builtins, self.rule = group, protocol, dict(builtins), rule
        self._entry_points: dict[str, EntryPoint] | None = None
        self._loaded: dict[str, type] = {}

    def __repr__(self) -> str:
        return f"Registry({self.group!r}, {self.names()})"

    def entry_points(self) -> dict[str, EntryPoint]:
        """The group's entry points by name (read once; :meth:`refresh` reads them again)."""
        if self._entry_points is None:
            self._entry_points = {ep.name: ep for ep in entry_points(group=self.group)}
        return self._entry_points

    def refresh(self) -> None:
        """Forget what was read (e.g. after installing a package into the running interpreter)."""
        self._entry_points, self._loaded = None, {}

    def names(self) -> list[str]:
        return sorted(set(self.builtins) | set(self.entry_points()))

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self.names())

    def __contains__(self, name) -> bool:
        return name in self.builtins or name in self.entry_points()

    def __getitem__(self, name: str) -> type:
        if name in self.builtins:
            return self.builtins[name]
        if name not in self._loaded:
            ep = self.entry_points().get(name)
            if ep is None:
                raise KeyError(name)
            self._loaded[name] = self._load(ep)
        return self._loaded[name]

    def _load(self, ep: EntryPoint) -> type:
        where = f"entry point {ep.name!r} ({ep.value}) in group {self.group}"
        try:
            cls = ep.load()
        except Exception as e:  # any import failure of someone else's package is one line naming it
            raise PluginError(f"{where} cannot be loaded: {type(e).__name__}: {e}") from e
        if not inspect.isclass(cls):
            raise PluginError(f"{where} is {type(cls).__name__} {cls!r}, not a class")
        check_plugin(cls, self.protocol, where)
        problem = self.rule(cls, ep.name) if self.rule is not None else None
        if problem:
            raise PluginError(f"{where}: {problem}")
        return cls
