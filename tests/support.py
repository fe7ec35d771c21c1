"""Helpers shared by the test modules (imported as ``support``: ``conftest`` is ambiguous with notebooks/conftest.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "data"


def run_cli(*args: str, env: dict | None = None, cwd: Path | None = None, timeout: float = 120):
    """Run the real ``tradeloop`` program in a subprocess; returns the CompletedProcess (text mode)."""
    full_env = {**os.environ, **(env or {})}
    full_env.pop("TRADELOOP_DEBUG", None)
    return subprocess.run(
        [sys.executable, "-m", "tradeloop", *map(str, args)],
        capture_output=True, text=True, env=full_env, cwd=cwd or ROOT, timeout=timeout,
    )
