"""tradeloop: turn a portfolio model's target weights into risk-checked, simulated, auditable trades.

Snapshot -> orders -> risk -> execution -> fills -> DuckDB store and hash-chained audit trail.
"""

from .commission import BpsCommission, NoCommission, PerShareCommission
from .errors import (IllegalTransition, ProviderUnavailable, RiskBlocked, RunNotFound, StoreBusy, TradeloopError,
                     ValidationError)
from .execution import (BaseProvider, ExecutionProvider, LeanExecutionProvider, MockExecutionProvider, get_provider,
                        provider_names)
from .fills import fill_orders
from .orders import build_book, build_orders, client_order_ids
from .params import RunParams, load_params
from .risk import RiskLimits, check_risk
from .runs import RunResult, TradeRun, create_run, execute_run, run_result, run_snapshot
from .slippage import FixedBpsSlippage, NoSlippage
from .snapshot import DecisionSnapshot, freeze_snapshot, load_snapshot_file
from .states import ORDER_TRANSITIONS, RUN_TRANSITIONS
from .store import Store

__version__ = "0.1.0"

__all__ = [
    "BpsCommission", "NoCommission", "PerShareCommission", "IllegalTransition", "ProviderUnavailable", "RiskBlocked",
    "RunNotFound", "StoreBusy", "TradeloopError", "ValidationError", "BaseProvider", "ExecutionProvider",
    "LeanExecutionProvider", "MockExecutionProvider", "get_provider", "provider_names", "fill_orders", "build_book",
    "build_orders", "client_order_ids", "RunParams", "load_params", "RiskLimits", "check_risk", "RunResult",
    "TradeRun", "create_run", "execute_run", "run_result", "run_snapshot", "FixedBpsSlippage", "NoSlippage",
    "DecisionSnapshot", "freeze_snapshot", "load_snapshot_file", "ORDER_TRANSITIONS", "RUN_TRANSITIONS", "Store",
]

from .execution import FIX_ORD_STATUS, LEAN_ORDER_STATUS, provider_table  # noqa: E402  (issue 6)
from .fills import FillResult, work_orders  # noqa: E402
from .lifecycle import lifecycle_paths, replay_order_events  # noqa: E402
from .liquidity import NoLiquidityLimit, VolumeParticipation  # noqa: E402

__all__ += ["FIX_ORD_STATUS", "LEAN_ORDER_STATUS", "provider_table", "FillResult", "work_orders", "lifecycle_paths",
            "replay_order_events", "NoLiquidityLimit", "VolumeParticipation"]
from .testing import assert_conformance, check_provider  # noqa: E402
__all__ += ["assert_conformance", "check_provider"]
from .verify import Replay, Verification, replay_run, verify_run, verify_store
__all__ += ["Replay", "Verification", "replay_run", "verify_run", "verify_store"]
from .reports import RunReport, audit_check, audit_line, batch_table, load_report, run_from_files
from .artifacts import ArtifactRecord, verify_artifact
from .notebooks import BatchResult, run_batch, run_notebook
__all__ += ["RunReport", "audit_check", "audit_line", "batch_table", "load_report", "run_from_files",
            "ArtifactRecord", "verify_artifact", "BatchResult", "run_batch", "run_notebook"]
from .simulate import Simulation, save_simulation, simulate
from .synthetic import synthetic_history
__all__ += ["Simulation", "save_simulation", "simulate", "synthetic_history"]
