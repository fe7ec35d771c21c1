"""tradeloop: turn a portfolio model's target weights into risk-checked, simulated, auditable trades.

Snapshot -> orders -> risk -> execution -> fills -> DuckDB store and hash-chained audit trail.
"""

from .core.engine import fill_orders
from .core.fsm import ORDER_TRANSITIONS, RUN_TRANSITIONS
from .core.risk import RiskLimits, check_risk
from .core.sizing import build_book, build_orders, client_order_ids
from .core.snapshot import DecisionSnapshot, freeze_snapshot, load_snapshot_file
from .errors import (
                     IllegalTransition,
                     NotATradeloopDatabase,
                     PluginError,
                     ProviderUnavailable,
                     RunConflict,
                     RunNotFound,
                     StoreBusy,
                     TradeloopError,
                     ValidationError,
)
from .resources import copy_notebooks, sample_file
from .store.db import Store
from .venue.commission import BpsCommission, NoCommission, PerShareCommission
from .venue.providers import (
                     BaseProvider,
                     ExecutionProvider,
                     LeanExecutionProvider,
                     MockExecutionProvider,
                     get_provider,
                     provider_names,
)
from .venue.slippage import FixedBpsSlippage, NoSlippage
from .workflows.params import RunParams, load_params
from .workflows.run import (
                     RunResult,
                     TradeRun,
                     create_run,
                     execute_run,
                     run_result,
                     run_snapshot,
)

__version__ = "0.1.0"

__all__ = [
    "BpsCommission", "NoCommission", "PerShareCommission", "IllegalTransition", "ProviderUnavailable", "PluginError",
    "RunConflict", "RunNotFound", "StoreBusy", "TradeloopError", "ValidationError", "BaseProvider", "ExecutionProvider",
    "NotATradeloopDatabase",
    "LeanExecutionProvider", "MockExecutionProvider", "get_provider", "provider_names", "fill_orders", "build_book",
    "build_orders", "client_order_ids", "RunParams", "load_params", "RiskLimits", "check_risk", "RunResult",
    "TradeRun", "create_run", "execute_run", "run_result", "run_snapshot", "FixedBpsSlippage", "NoSlippage",
    "DecisionSnapshot", "freeze_snapshot", "load_snapshot_file", "ORDER_TRANSITIONS", "RUN_TRANSITIONS", "Store",
    "sample_file", "copy_notebooks",
]

from .core.engine import FillResult, work_orders  # noqa: E402
from .core.lifecycle import lifecycle_paths, replay_order_events  # noqa: E402
from .venue.liquidity import NoLiquidityLimit, VolumeParticipation  # noqa: E402
from .venue.providers import FIX_ORD_STATUS, LEAN_ORDER_STATUS, provider_table  # noqa: E402

__all__ += ["FIX_ORD_STATUS", "LEAN_ORDER_STATUS", "provider_table", "FillResult", "work_orders", "lifecycle_paths",
            "replay_order_events", "NoLiquidityLimit", "VolumeParticipation"]
from .testing import assert_conformance, check_provider  # noqa: E402

__all__ += ["assert_conformance", "check_provider"]
from .workflows.verify import Replay, Verification, replay_run, verify_run, verify_store

__all__ += ["Replay", "Verification", "replay_run", "verify_run", "verify_store"]
from .reporting.reports import (
                     RunReport,
                     audit_check,
                     audit_line,
                     batch_table,
                     load_report,
                     run_from_files,
)
from .store.artifacts import ArtifactRecord
from .workflows.batch import BatchResult, run_batch, run_notebook, verify_artifact

__all__ += ["RunReport", "audit_check", "audit_line", "batch_table", "load_report", "run_from_files",
            "ArtifactRecord", "verify_artifact", "BatchResult", "run_batch", "run_notebook"]
from .settings import Settings
from .core.synthetic import synthetic_history
from .store.simulations import save_simulation
from .workflows.history import Simulation, simulate

__all__ += ["Simulation", "save_simulation", "simulate", "synthetic_history", "Settings"]
from .workflows.shortfall import Shortfall, shortfall  # noqa: E402

__all__ += ["Shortfall", "shortfall"]
from .workflows.sweep import SweepResult, sweep  # noqa: E402

__all__ += ["SweepResult", "sweep"]
