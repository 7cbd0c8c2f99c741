"""The fault suite's short version (`make chaos` runs the full one): a few SIGKILL trials per
stage, each trial's lake compared with an uninterrupted run; and the comparison itself catches
a lost and a repeated row."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from bench import chaos

from lakehouse.core import delta
from lakehouse.core.storage import Lake

pytestmark = [pytest.mark.chaos, pytest.mark.slow]


def test_short_fault_suite_loses_and_repeats_nothing(tmp_path: Path) -> None:
    out = tmp_path / "chaos" / "report.md"
    results = chaos.suite(2, list(chaos.STAGES), out, seed=7)
    assert [r.stage for r in results] == list(chaos.STAGES)
    for r in results:
        assert r.trials == 2 and r.killed >= 1, r
        assert (r.lost, r.duplicated, r.unreadable, r.rerun_failed) == (0, 0, 0, 0), r
    text = out.read_text()
    assert "| landing | 2 |" in text and "Stages covered: landing, silver, optimize, vacuum." in text


def test_the_comparison_sees_a_lost_and_a_repeated_row(settings_factory: Any) -> None:
    settings = settings_factory()
    lake = Lake(settings)
    rows = pa.table({"source_file": ["a", "a", "b"], "source_line": [1, 2, 1], "value": ["x", "y", "z"]})
    delta.append(lake, "bronze.events", rows)
    root = Path(settings.lake_root)
    want = chaos.contents(root, "bronze.events")
    assert want == {"a:1": 1, "a:2": 1, "b:1": 1}
    lake.table("bronze.events").delete("source_file = 'b'")
    delta.append(lake, "bronze.events", rows.slice(0, 1))
    got = chaos.contents(root, "bronze.events")
    assert got is not None and chaos.compare(want, got) == (1, 1)
