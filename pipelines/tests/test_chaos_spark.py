"""The fault suite's Spark stages (`bench/chaos_spark.py`): every Spark job SIGKILLed with its JVM
at a random moment, run again, its tables compared with an uninterrupted Spark run. The trials
run with `make test-spark` (marker spark_long); `make chaos` runs them among the suite's stages."""

from __future__ import annotations

from pathlib import Path

import pytest
from bench import chaos, chaos_spark

from lakehouse.core.jvm import JvmError, find_java


def test_every_spark_stage_is_a_scenario_of_the_suite() -> None:
    assert chaos.SPARK_STAGES == chaos_spark.SCENARIOS
    assert set(chaos_spark.SCENARIOS) <= set(chaos.SCENARIOS)


@pytest.mark.spark
@pytest.mark.slow
@pytest.mark.spark_long
@pytest.mark.timeout(5400)  # 35 Spark JVMs, one after the other: an hour on a loaded 2-core machine
def test_every_spark_job_killed_and_rerun_loses_and_repeats_nothing(tmp_path: Path) -> None:
    """Two trials of each Spark stage: nothing lost, repeated or unreadable, the owner still
    spark and the watermarks those of the uninterrupted run; in each stage at least one kill
    hit a running job."""
    from lakehouse.core.spark import spark_bundle
    from lakehouse.services.postgres import find_pg_bin

    try:
        find_java()
        spark_bundle()
    except JvmError as exc:
        pytest.skip(f"Spark cannot run here: {exc}")
    find_pg_bin()
    stages = list(chaos_spark.SCENARIOS)
    out = tmp_path / "chaos" / "report.md"
    results = chaos.suite(2, stages, out, seed=11)
    assert [r.stage for r in results] == stages
    for r in results:
        assert isinstance(r, chaos_spark.SparkResult)
        assert r.trials == 2 and r.killed >= 1, r
        assert (r.lost, r.duplicated, r.unreadable, r.rerun_failed) == (0, 0, 0, 0), r
        assert (r.owner_changed, r.watermarks_differ) == (0, 0), r
    assert "| spark-scd2-current | 2 |" in out.read_text()
