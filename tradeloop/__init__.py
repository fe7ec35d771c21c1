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
from .simulate import Simulation, save_simulation, simulate
from .synthetic import synthetic_history
__all__ += ["Simulation", "save_simulation", "simulate", "synthetic_history"]
