"""Shared plumbing of pluggable models: parse ``{"model": "Name", ...}`` from params JSON and write it back."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, fields

from ..errors import ValidationError
from .validate import check_number

__all__ = ["model_to_dict", "model_from_dict", "check_number"]


def model_to_dict(model) -> dict:
    """``FixedBpsSlippage(bps=5)`` -> ``{"model": "FixedBpsSlippage", "bps": 5}``."""
    return {"model": type(model).__name__, **asdict(model)}


def model_from_dict(data, registry: Mapping[str, type], what: str):
    """Build a model from its params object (or its bare name); unknown names and keys are refused by name."""
    if isinstance(data, str):
        data = {"model": data}
    if not isinstance(data, Mapping) or "model" not in data:
        raise ValidationError(f"params.{what} must be an object with a 'model' key, got {data!r}")
    name = data["model"]
    cls = registry.get(name)
    if cls is None:
        raise ValidationError(f"params.{what}.model is {name!r}; allowed: {sorted(registry)}")
    args = {k: v for k, v in data.items() if k != "model"}
    allowed = [f.name for f in fields(cls)]
    unknown = sorted(set(args) - set(allowed))
    if unknown:
        raise ValidationError(f"params.{what} ({name}) has unknown key(s) {unknown}; allowed: {allowed}")
    try:
        return cls(**args)
    except TypeError as e:
        raise ValidationError(f"params.{what} ({name}): {e}") from None
