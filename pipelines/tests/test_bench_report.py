"""The benchmark compares peers only within one run: rows carried over from an earlier run are
shown as such and take part in no ratio or goal."""

from __future__ import annotations

import json
from pathlib import Path

from bench.bronze_silver import _ratios, goals, merge_previous


def _row(contender: str, seconds: float, size: int = 1_000_000) -> dict[str, object]:
    return {
        "size": size,
        "contender": contender,
        "rows": size,
        "seconds": seconds,
        "wall_seconds": seconds,
        "peak_rss_bytes": 2**30,
    }


def test_earlier_peer_is_shown_but_not_compared(tmp_path: Path) -> None:
    path = tmp_path / "results.json"
    earlier = [_row("embedded", 9.0), _row("spark", 90.0), _row("floor", 1.0)]
    path.write_text(json.dumps({"finished": "2026-01-01T00:00:00+00:00", "results": earlier}))

    results = merge_previous(path, [_row("embedded", 5.0), _row("floor", 2.0)])
    _ratios(results)
    by_name = {r["contender"]: r for r in results}
    assert by_name["spark"]["earlier_run"] is True
    assert by_name["spark"]["measured_at"] == "2026-01-01T00:00:00+00:00"
    assert by_name["spark"]["ratio_vs_embedded"] is None  # not against this run's embedded
    assert by_name["floor"]["ratio_vs_embedded"] == 0.4
    assert "earlier_run" not in by_name["embedded"]

    named = {g["goal"]: g for g in goals(results)}
    assert not any("PySpark" in g for g in named)
    assert named["<= 2x the floor"]["value"] == "2.50x" and named["<= 2x the floor"]["met"] is False


def test_peers_of_one_earlier_run_still_compare_with_each_other(tmp_path: Path) -> None:
    path = tmp_path / "results.json"
    earlier = [_row("embedded", 10.0, 10_000_000), _row("spark", 80.0, 10_000_000)]
    path.write_text(json.dumps({"finished": "2026-01-01T00:00:00+00:00", "results": earlier}))

    results = merge_previous(path, [_row("embedded", 5.0)])
    _ratios(results)
    spark = next(r for r in results if r["contender"] == "spark")
    assert spark["ratio_vs_embedded"] == 8.0
    assert any(g["goal"].startswith(">= 5x") and g["size"] == 10_000_000 for g in goals(results))
