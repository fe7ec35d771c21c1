"""The kernel caches on disk are dropped whenever any kernel source (or a constant they compile in) changes: numba
itself checks a cached kernel against its own file only, while its machine code includes the kernels it calls."""

from __future__ import annotations

from tradeloop.core.jit import drop_stale_caches


def _package(tmp_path):
    jit = tmp_path / "core" / "jit"
    (jit / "__pycache__").mkdir(parents=True)
    (jit / "day.py").write_text("def run(): return market()\n")
    (jit / "market.py").write_text("def market(): return 1\n")
    (tmp_path / "core" / "codes.py").write_text("FILLED = 3\n")
    return jit


def _cached(jit) -> list[str]:
    for name in ("day.run-1.py311.nbi", "day.run-1.py311.1.nbc"):
        (jit / "__pycache__" / name).write_bytes(b"compiled")
    return sorted(p.name for p in (jit / "__pycache__").glob("*.nb?"))


def test_caches_written_after_the_sources_survive_until_a_source_changes(tmp_path):
    jit = _package(tmp_path)
    assert drop_stale_caches(jit, ("codes.py",))  # no stamp yet: whatever is there is of unknown sources
    assert _cached(jit) == ["day.run-1.py311.1.nbc", "day.run-1.py311.nbi"]
    assert not drop_stale_caches(jit, ("codes.py",))
    assert len(list((jit / "__pycache__").glob("*.nb?"))) == 2


def test_an_edit_to_a_callee_drops_its_callers_caches(tmp_path):
    jit = _package(tmp_path)
    drop_stale_caches(jit, ("codes.py",))
    _cached(jit)
    (jit / "market.py").write_text("def market(): return 2\n")  # day.py itself did not change
    assert drop_stale_caches(jit, ("codes.py",))
    assert list((jit / "__pycache__").glob("*.nb?")) == []


def test_an_edit_to_a_compiled_in_constant_drops_the_caches(tmp_path):
    jit = _package(tmp_path)
    drop_stale_caches(jit, ("codes.py",))
    _cached(jit)
    (tmp_path / "core" / "codes.py").write_text("FILLED = 4\n")
    assert drop_stale_caches(jit, ("codes.py",))
    assert list((jit / "__pycache__").glob("*.nb?")) == []
