"""RunParams: everything a run needs besides its snapshot, parsed strictly from a params JSON file.

Keys (all optional; unknown keys are refused by name)::

    {
      "cash_buffer": 0.02,            # fraction of portfolio value kept as cash (covers slippage and fees)
      "lot_size": 1,                  # default lot size for symbols without one
      "max_leverage": 1.0,            # Σ|weight| allowed in a snapshot (validated before the run is created)
      "order_type": "MARKET",         # or "LIMIT" with limit_offset_bps
      "limit_offset_bps": null,       # LIMIT: BUY at price × (1 + bps/1e4), SELL at price × (1 − bps/1e4)
      "cash": null,                   # current cash; default portfolio_value − value of current positions
      "risk": {...},                  # see tradeloop.core.risk.RiskLimits
      "slippage": {"model": "FixedBpsSlippage", "bps": 5},
      "commission": {"model": "PerShareCommission", "rate": 0.005, "minimum": 1.0},
      "liquidity": {"model": "VolumeParticipation", "max_rate": 0.1},
      "steps": 1,                     # time in force: execution steps before open orders are CANCELED
      "borrow_bps_per_year": 0        # simulations: borrow cost on the short market value, per period held
    }
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path

from ..core.models import model_from_dict, model_to_dict
from ..core.risk import RiskLimits
from ..core.validate import check_number, check_whole
from ..errors import ValidationError
from ..venue.commission import COMMISSION_MODELS, CommissionModel, NoCommission
from ..venue.liquidity import LIQUIDITY_MODELS, LiquidityModel, NoLiquidityLimit
from ..venue.slippage import SLIPPAGE_MODELS, NoSlippage, SlippageModel

__all__ = ["RunParams", "load_params", "MAX_STEPS"]

#: Most execution steps one run may take (each step is one vectorized pass over the orders).
MAX_STEPS = 1000


@dataclass(frozen=True)
class RunParams:
    """Order-building, risk and execution settings of a run; stored as ``trade_runs.params``."""

    cash_buffer: float = 0.0
    lot_size: int = 1
    max_leverage: float = 1.0
    order_type: str = "MARKET"
    limit_offset_bps: float | None = None
    cash: float | None = None
    risk: RiskLimits = field(default_factory=RiskLimits)
    slippage: SlippageModel = field(default_factory=NoSlippage)
    commission: CommissionModel = field(default_factory=NoCommission)
    liquidity: LiquidityModel = field(default_factory=NoLiquidityLimit)
    steps: int = 1
    #: simulations: cost of borrowing shares, charged on the short market value for each period held
    borrow_bps_per_year: float = 0.0

    def __post_init__(self):
        check_whole("params.steps", self.steps, maximum=MAX_STEPS)
        check_number("params.cash_buffer", self.cash_buffer)
        if self.cash_buffer >= 1:
            raise ValidationError(f"params.cash_buffer is {self.cash_buffer!r}; it is a fraction and must be < 1")
        check_whole("params.lot_size", self.lot_size)
        check_number("params.max_leverage", self.max_leverage, inclusive=False)
        if self.order_type not in ("MARKET", "LIMIT"):
            raise ValidationError(f"params.order_type is {self.order_type!r}; allowed: 'MARKET', 'LIMIT'")
        if self.limit_offset_bps is not None:
            # |bps| < 10000: a SELL limit (or a negative-offset BUY limit) at or below 0 is no price.
            check_number("params.limit_offset_bps", self.limit_offset_bps, minimum=-10_000, inclusive=False,
                         below=10_000)
        if self.order_type == "LIMIT" and self.limit_offset_bps is None:
            raise ValidationError("params.order_type is 'LIMIT' but params.limit_offset_bps is not set")
        if self.cash is not None:
            check_number("params.cash", self.cash, minimum=float("-inf"))
        check_number("params.borrow_bps_per_year", self.borrow_bps_per_year, below=100_000)

    @classmethod
    def from_dict(cls, data: Mapping | None) -> "RunParams":
        """Parse a params object; every unknown key or bad value is a :class:`ValidationError` naming it."""
        if data is None:
            data = {}
        if not isinstance(data, Mapping):
            raise ValidationError(f"params must be a JSON object, got {type(data).__name__}")
        data = dict(data)
        allowed = [f.name for f in fields(cls)]
        unknown = sorted(set(data) - set(allowed))
        if unknown:
            raise ValidationError(f"params has unknown key(s) {unknown}; allowed: {allowed}")
        if "risk" in data:
            if not isinstance(data["risk"], Mapping):
                raise ValidationError(f"params.risk must be an object, got {data['risk']!r}")
            data["risk"] = RiskLimits.from_dict(data["risk"])
        if "slippage" in data:
            data["slippage"] = model_from_dict(data["slippage"], SLIPPAGE_MODELS, "slippage")
        if "commission" in data:
            data["commission"] = model_from_dict(data["commission"], COMMISSION_MODELS, "commission")
        if "liquidity" in data:
            data["liquidity"] = model_from_dict(data["liquidity"], LIQUIDITY_MODELS, "liquidity")
        if isinstance(data.get("order_type"), str):
            data["order_type"] = data["order_type"].upper()
        return cls(**data)

    def to_dict(self) -> dict:
        """A JSON-ready dict that :meth:`from_dict` turns back into an equal object."""
        return {
            "cash_buffer": self.cash_buffer,
            "lot_size": self.lot_size,
            "max_leverage": self.max_leverage,
            "order_type": self.order_type,
            "limit_offset_bps": self.limit_offset_bps,
            "cash": self.cash,
            "risk": self.risk.to_dict(),
            "slippage": model_to_dict(self.slippage),
            "commission": model_to_dict(self.commission),
            "liquidity": model_to_dict(self.liquidity),
            "steps": self.steps,
            # left out at 0, so the params JSON (and ids hashed from it) of a run without it are unchanged
            **({"borrow_bps_per_year": self.borrow_bps_per_year} if self.borrow_bps_per_year else {}),
        }

    def canonical_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))


def load_params(path: str | Path | None) -> RunParams:
    """Read a params JSON file (``None``: all defaults); a file that is not JSON is a clear error."""
    if path is None:
        return RunParams()
    path = Path(path)
    if not path.is_file():
        raise ValidationError(f"params file {str(path)!r} does not exist")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise ValidationError(f"params file {str(path)!r} is not UTF-8 text") from None
    except json.JSONDecodeError as e:
        raise ValidationError(f"params file {str(path)!r} is not valid JSON: {e.msg} at line {e.lineno} column {e.colno}") from None
    except RecursionError:
        raise ValidationError(f"params file {str(path)!r} is nested too deeply; params are at most 3 levels deep") from None
    except ValueError as e:  # e.g. an integer of more than 4300 digits
        raise ValidationError(f"params file {str(path)!r} is not usable JSON: {str(e).splitlines()[0]}") from None
    try:
        return RunParams.from_dict(data)
    except ValidationError as e:
        raise ValidationError(f"{path}: {e}") from None
