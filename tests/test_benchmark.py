"""The benchmark's smallest size runs end to end and writes its report (speed itself is never asserted)."""

from __future__ import annotations

import json
import subprocess
import sys

from support import ROOT


def test_benchmark_small_size_runs_and_reports(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.run", "--sizes", "small", "--repeat", "1", "--loop-dates", "3",
         "--no-vectorbt", "--single-run-symbols", "200", "--out", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads((tmp_path / "benchmark.json").read_text())
    size = report["sizes"][0]
    assert (size["dates"], size["symbols"], size["weight_rows"]) == (250, 500, 125_000)
    assert size["orders"] > 100_000 and size["loop_matches_simulate"] is True
    for key in ("simulate_s", "persist_s", "loop_s", "peak_rss_mb", "persist_rows_per_s"):
        assert size[key] > 0
    assert size["loop_extrapolated"] is True and size["vectorbt_skipped"] == "--no-vectorbt"
    assert report["single_run"]["orders"] > 150 and report["machine"]["load_start"] >= 0
    md = (tmp_path / "benchmark.md").read_text()
    assert "| 250 × 500 | 125,000 |" in md and "Single run, one 200-symbol snapshot" in md


def test_vectorbt_missing_is_skipped_with_a_message(tmp_path):
    code = ("import sys; sys.modules['vectorbt'] = None\n"
            "from benchmarks.run import worker_vectorbt\n"
            "print(worker_vectorbt('small', 1)['vectorbt_skipped'])")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "vectorbt is not installed" in proc.stdout and "[bench]" in proc.stdout
