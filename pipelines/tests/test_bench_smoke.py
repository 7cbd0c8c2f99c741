"""The benchmark runs end to end in quick mode and writes a sane results file (no timing goals)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

PIPELINES = Path(__file__).resolve().parents[1]


def test_bench_quick_without_spark(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(PIPELINES)}
    proc = subprocess.run(
        [sys.executable, "-m", "bench.bronze_silver", "--quick", "--skip-spark", "--state", str(tmp_path)],
        cwd=PIPELINES,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    payload = json.loads((tmp_path / "results.json").read_text())
    results = payload["results"]
    assert {r["contender"] for r in results} == {"embedded", "floor"}
    for r in results:
        assert r["size"] == 100_000
        assert r["rows"] > 0
        assert r["seconds"] > 0 and r["wall_seconds"] >= r["seconds"]
        assert r["rows_per_s"] > 0
        assert 10 * 1024**2 < r["peak_rss_bytes"] < 64 * 1024**3
    embedded = next(r for r in results if r["contender"] == "embedded")
    # Every generated line (events + injected duplicates) is classified exactly once.
    lines = json.loads((tmp_path / "input-100000" / "ready.json").read_text())["lines"]
    assert embedded["rows"] == lines
    assert sum(embedded["detail"].values()) == lines
    assert embedded["ratio_vs_embedded"] == 1.0
    assert (tmp_path / "results.md").read_text().count("| 100,000 |") >= 2
