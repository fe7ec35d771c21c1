"""TradeRun: a stored run as providers see it (ids, parsed params and the inputs it was created with).

It lives in core so that providers (venue) and the run workflow both import it from below, without a cycle.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

__all__ = ["TradeRun"]


@dataclass(frozen=True, eq=False)
class TradeRun:
    """A run as providers see it: ids, parsed params and the inputs it was created with.

    ``params`` is the run's :class:`tradeloop.workflows.params.RunParams` (order building, risk limits, fill
    models); ``positions`` and ``fallback_prices`` are the validated frames stored with the run (None when absent).
    """

    run_id: str
    snapshot_id: str
    provider: str
    dry_run: bool
    params: "RunParams"  # noqa: F821  (tradeloop.workflows.params; not imported: core does not depend upward)
    positions: pd.DataFrame | None = None
    fallback_prices: pd.DataFrame | None = None
    status: str = "queued"
    attempts: int = 0
