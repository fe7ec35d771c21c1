"""tradeloop: turn a portfolio model's target weights into risk-checked, simulated, auditable trades.

Snapshot -> orders -> risk -> execution -> fills -> DuckDB store and hash-chained audit trail.

The public names below are imported when first used (``tl.simulate``, ``from tradeloop import Store``), so
``import tradeloop`` itself loads neither pandas nor DuckDB. To add one: a row in :data:`_PUBLIC`.
"""

from importlib import import_module

__version__ = "0.1.0"

#: Public name -> the module that defines it (relative to this package).
_PUBLIC = {
    **dict.fromkeys(("fill_orders", "FillResult", "work_orders"), ".core.engine"),
    **dict.fromkeys(("ORDER_TRANSITIONS", "RUN_TRANSITIONS"), ".core.fsm"),
    **dict.fromkeys(("RiskLimits", "check_risk"), ".core.risk"),
    **dict.fromkeys(("build_book", "build_orders", "client_order_ids"), ".core.sizing"),
    **dict.fromkeys(("DecisionSnapshot", "freeze_snapshot", "load_snapshot_file"), ".core.snapshot"),
    **dict.fromkeys(("lifecycle_paths", "replay_order_events"), ".core.lifecycle"),
    "synthetic_history": ".core.synthetic",
    **dict.fromkeys(("IllegalTransition", "NotATradeloopDatabase", "PluginError", "ProviderUnavailable",
                     "RunConflict", "RunNotFound", "StoreBusy", "TradeloopError", "ValidationError"), ".errors"),
    **dict.fromkeys(("copy_notebooks", "sample_file"), ".resources"),
    "Settings": ".settings",
    "Store": ".store.db",
    "ArtifactRecord": ".store.artifacts",
    "save_simulation": ".store.simulations",
    **dict.fromkeys(("BpsCommission", "NoCommission", "PerShareCommission"), ".venue.commission"),
    **dict.fromkeys(("FixedBpsSlippage", "NoSlippage"), ".venue.slippage"),
    **dict.fromkeys(("NoLiquidityLimit", "VolumeParticipation"), ".venue.liquidity"),
    **dict.fromkeys(("BaseProvider", "ExecutionProvider", "LeanExecutionProvider", "MockExecutionProvider",
                     "get_provider", "provider_names", "FIX_ORD_STATUS", "LEAN_ORDER_STATUS", "provider_table"),
                    ".venue.providers"),
    **dict.fromkeys(("assert_conformance", "check_provider"), ".testing"),
    **dict.fromkeys(("RunParams", "load_params"), ".workflows.params"),
    **dict.fromkeys(("RunResult", "TradeRun", "create_run", "execute_run", "run_result", "run_snapshot"),
                    ".workflows.run"),
    **dict.fromkeys(("Replay", "Verification", "replay_run", "verify_run", "verify_store"), ".workflows.verify"),
    **dict.fromkeys(("RunReport", "audit_check", "audit_line", "batch_table", "load_report", "run_from_files"),
                    ".reporting.reports"),
    **dict.fromkeys(("BatchResult", "run_batch", "run_notebook", "verify_artifact"), ".workflows.batch"),
    **dict.fromkeys(("Simulation", "simulate"), ".workflows.history"),
    **dict.fromkeys(("Shortfall", "shortfall"), ".workflows.shortfall"),
    **dict.fromkeys(("SweepResult", "sweep"), ".workflows.sweep"),
}

__all__ = list(_PUBLIC)


#: Subpackages and modules reachable as attributes (``tradeloop.workflows``) without importing them first.
_SUBMODULES = ("core", "store", "venue", "workflows", "reporting", "cli", "display", "errors", "resources",
               "settings", "testing")


def __getattr__(name: str):
    if name in _SUBMODULES:
        return import_module(f".{name}", __name__)
    module = _PUBLIC.get(name)
    if module is None:
        raise AttributeError(f"module 'tradeloop' has no attribute {name!r}")
    value = getattr(import_module(module, __name__), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_PUBLIC))
