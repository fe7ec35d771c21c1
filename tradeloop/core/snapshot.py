"""DecisionSnapshot: the frozen input of a trade run (target weights, prices, portfolio value, model version).

A snapshot's id is derived from its content, so freezing the same content twice gives the same snapshot and a stored
snapshot can always be checked against its hash.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import ValidationError
from .validate import (
    check_columns,
    check_model_version,
    check_number,
    check_whole,
    numeric_column,
    read_table,
    validate_symbols,
)

__all__ = ["DecisionSnapshot", "freeze_snapshot", "load_snapshot_file", "SNAPSHOT_COLUMNS", "content_hash"]

#: Columns of ``DecisionSnapshot.weights``, in order.
SNAPSHOT_COLUMNS = ("symbol", "weight", "price", "sector", "lot_size", "volume")
_OPTIONAL = ("price", "sector", "lot_size", "volume", "adv")


@dataclass(frozen=True, eq=False)
class DecisionSnapshot:
    """A frozen set of target weights; build it with :func:`freeze_snapshot`, never by hand.

    ``weights`` has the columns of :data:`SNAPSHOT_COLUMNS`, one row per symbol sorted by symbol; ``price`` is NaN
    where the snapshot has no price (execution then needs a fallback price) and ``sector`` is None where unknown.
    """

    snapshot_id: str
    model_version: str
    portfolio_value: float
    weights: pd.DataFrame
    content_hash: str

    def __eq__(self, other: object) -> bool:
        return isinstance(other, DecisionSnapshot) and other.content_hash == self.content_hash

    def __hash__(self) -> int:
        return hash(self.content_hash)

    def __repr__(self) -> str:
        return (
            f"DecisionSnapshot({self.snapshot_id!r}, model_version={self.model_version!r}, "
            f"portfolio_value={self.portfolio_value!r}, symbols={len(self.weights)})"
        )


def content_hash(weights: pd.DataFrame, model_version: str, portfolio_value: float) -> str:
    """sha256 over a canonical text form of the snapshot (floats written with repr, so it round-trips exactly)."""
    h = hashlib.sha256()
    h.update(f"tradeloop-snapshot-v1\n{model_version}\n{float(portfolio_value)!r}\n".encode())
    columns = list(SNAPSHOT_COLUMNS) + (["adv"] if _has_adv(weights) else [])
    h.update(weights.loc[:, columns].to_csv(index=False, lineterminator="\n", float_format=None).encode())
    return h.hexdigest()


def _has_adv(weights: pd.DataFrame) -> bool:
    """Does the snapshot carry average daily volumes (an ``adv`` column with a value)? Only then is it part of the
    content hash, so a snapshot without one keeps the id it always had."""
    return "adv" in weights.columns and bool(weights["adv"].notna().any())


def freeze_snapshot(
    weights: pd.DataFrame, *, portfolio_value: float, model_version: str, default_lot_size: int = 1
) -> DecisionSnapshot:
    """Validate a weights table and freeze it into a :class:`DecisionSnapshot`.

    Parameters
    ----------
    weights : DataFrame
        Columns ``symbol``, ``weight`` and optionally ``price``, ``sector``, ``lot_size``, ``volume``, ``adv``
        (average daily volume, for ``risk.max_adv_participation``; kept only when some row has a value).
        A missing price is allowed (fallback prices may cover it); a given price must be finite and > 0.
    portfolio_value : float
        Total portfolio value in account currency, finite and > 0.
    model_version : str
        The model that produced the weights; part of every client_order_id.
    default_lot_size : int
        Lot size for rows without one.

    Raises
    ------
    ValidationError
        Naming the field and symbol, e.g. ``weight for 'AAPL' is 'NaN'; weight must be a finite number``.

    Examples
    --------
    >>> snap = freeze_snapshot(pd.DataFrame({"symbol": ["AAPL"], "weight": [0.5], "price": [190.0]}),
    ...                        portfolio_value=1e6, model_version="m1")
    >>> snap.snapshot_id.startswith("snap-")
    True
    """
    what = "snapshot"
    check_columns(weights, what, ("symbol", "weight"), _OPTIONAL)
    check_model_version(model_version)
    try:
        pv = float(portfolio_value)
    except (TypeError, ValueError):
        raise ValidationError(f"portfolio_value {portfolio_value!r} is not a number") from None
    check_number("portfolio_value", pv, inclusive=False)
    if isinstance(default_lot_size, float) and default_lot_size.is_integer():
        default_lot_size = int(default_lot_size)
    default_lot_size = check_whole("lot_size default", default_lot_size)

    symbols = validate_symbols(weights["symbol"], what)
    n = len(weights)
    out = pd.DataFrame({"symbol": symbols.to_numpy(dtype=object)})
    out["weight"] = numeric_column(weights, "weight", what, symbols)
    out["price"] = (
        numeric_column(weights, "price", what, symbols, allow_missing=True, positive=True, price=True)
        if "price" in weights
        else np.full(n, np.nan)
    )
    if "sector" in weights:
        sector = weights["sector"].astype("string").str.strip()
        out["sector"] = sector.where(sector != "").astype(object).where(sector.notna(), None).to_numpy()
    else:
        out["sector"] = None
    lots = (
        numeric_column(weights, "lot_size", what, symbols, allow_missing=True, positive=True, integer=True)
        if "lot_size" in weights
        else np.full(n, np.nan)
    )
    out["lot_size"] = np.where(np.isnan(lots), default_lot_size, lots).astype("int64")
    out["volume"] = (
        numeric_column(weights, "volume", what, symbols, allow_missing=True, nonnegative=True)
        if "volume" in weights
        else np.full(n, np.nan)
    )
    if "adv" in weights:  # average daily volume, read by risk.max_adv_participation
        out["adv"] = numeric_column(weights, "adv", what, symbols, allow_missing=True, nonnegative=True)
        if not out["adv"].notna().any():
            out = out.drop(columns="adv")
    out = out.sort_values("symbol", kind="stable").reset_index(drop=True)
    digest = content_hash(out, model_version, pv)
    return DecisionSnapshot(
        snapshot_id=f"snap-{digest[:16]}",
        model_version=model_version,
        portfolio_value=pv,
        weights=out,
        content_hash=digest,
    )


def load_snapshot_file(
    path: str | Path, *, portfolio_value: float, model_version: str, default_lot_size: int = 1
) -> DecisionSnapshot:
    """Read a CSV/Parquet weights file and freeze it (see :func:`freeze_snapshot`)."""
    table = read_table(path, "snapshot")
    try:
        return freeze_snapshot(
            table, portfolio_value=portfolio_value, model_version=model_version, default_lot_size=default_lot_size
        )
    except ValidationError as e:
        raise ValidationError(f"{path}: {e}") from None
