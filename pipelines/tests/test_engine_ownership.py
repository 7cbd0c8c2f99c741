"""One writer per table, without a JVM: the table property that names the writing engine, the
embedded jobs' refusal of a Spark-owned table (one line from the real `lakehouse` executable, exit
2, nothing committed) and `lakehouse spark handover` in both directions."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from lakehouse.bronze import landing
from lakehouse.core import ownership
from lakehouse.core.reconcile import new_run_id
from lakehouse.core.storage import Lake
from lakehouse.generator import landing as landing_files

LAKEHOUSE = Path(sys.executable).parent / "lakehouse"


def _cli(lake: Lake, *args: str) -> subprocess.CompletedProcess[str]:
    settings = lake.settings
    env = {
        **os.environ,
        "LAKEHOUSE_LAKE_ROOT": settings.lake_uri,
        "LAKEHOUSE_STATE_DIR": str(settings.state_path),
        "COLUMNS": "200",
    }
    return subprocess.run([str(LAKEHOUSE), *args], env=env, capture_output=True, text=True, timeout=120)


@pytest.fixture
def lake(settings_factory: Any) -> Lake:
    settings = settings_factory({"generator.events": 300, "generator.event_files": 2})
    lake = Lake(settings)
    landing_files.write_events(lake, settings.generator)
    landing.ingest(lake, new_run_id(), 1000)
    return lake


def test_a_table_without_the_property_is_the_embedded_engines(lake: Lake) -> None:
    assert ownership.owner(lake, "bronze.events") == ownership.EMBEDDED
    assert ownership.owner(lake, "silver.events") is None  # not there yet: whoever creates it
    ownership.check(lake, "bronze.events", ownership.EMBEDDED)
    with pytest.raises(ownership.OwnershipError, match="written by the embedded engine"):
        ownership.check(lake, "bronze.events", ownership.SPARK)


def test_handover_moves_the_writer_and_the_other_engine_refuses(lake: Lake) -> None:
    version = lake.table("bronze.events").version()
    done = _cli(lake, "spark", "handover", "bronze.events", "--to", "spark")
    assert done.returncode == 0, done.stderr
    assert "bronze.events: written by spark (was embedded)" in done.stdout
    assert lake.table("bronze.events").metadata().configuration[ownership.PROPERTY] == "spark"
    assert lake.table("bronze.events").version() == version + 1  # a commit of its own

    # a new landing file: the embedded bronze job refuses the table, in one line, writing nothing
    _, base = lake.landing("events")
    Path(base, "late.jsonl").write_text('{"event_id": "x"}\n')
    refused = _cli(lake, "bronze", "--source", "events")
    assert refused.returncode == 2
    lines = refused.stderr.strip().splitlines()
    assert len(lines) == 1, refused.stderr
    assert "bronze.events is written by the spark engine" in lines[0]
    assert "lakehouse spark handover bronze.events --to embedded" in lines[0]
    assert "Traceback" not in refused.stderr
    assert lake.table("bronze.events").version() == version + 1

    back = _cli(lake, "spark", "handover", "bronze.events", "--to", "embedded")
    assert back.returncode == 0, back.stderr
    again = _cli(lake, "spark", "handover", "bronze.events", "--to", "embedded")
    assert "(already)" in again.stdout
    assert lake.table("bronze.events").version() == version + 2  # no commit for a no-op
    ok = _cli(lake, "bronze", "--source", "events")
    assert ok.returncode == 0, ok.stderr
    assert "late.jsonl" in landing.ingested_files(lake)


def test_handover_of_a_missing_table_or_to_an_unknown_engine_is_one_line(lake: Lake) -> None:
    for args, expect in (
        (["spark", "handover", "silver.events", "--to", "spark"], "silver.events"),
        (["spark", "handover", "bronze.events", "--to", "flink"], "'flink' is not one of embedded, spark"),
    ):
        done = _cli(lake, *args)
        assert done.returncode == 2
        assert len(done.stderr.strip().splitlines()) == 1, done.stderr
        assert expect in done.stderr


def test_every_embedded_writer_refuses_a_spark_table_before_writing(lake: Lake) -> None:
    """Silver (all its tables), backfill, maintenance and the Kafka sink check the owner before
    their first commit; the lake-wide maintenance run leaves Spark's tables to Spark."""
    from lakehouse.app import jobs
    from lakehouse.bronze.kafka_sink import BronzeSink
    from lakehouse.maintenance import ops

    ok = _cli(lake, "silver")
    assert ok.returncode == 0, ok.stderr
    ownership.hand_over(lake, "silver.ref_country", ownership.SPARK)
    versions = {t: lake.table(t).version() for t in ("silver.events", "silver.ref_country")}

    # silver: a Spark-owned reference table stops the step before silver.events gets a commit
    _, base = lake.landing("events")
    Path(base, "more.jsonl").write_text('{"event_id": "late-1"}\n')
    assert _cli(lake, "bronze", "--source", "events").returncode == 0
    refused = _cli(lake, "silver")
    assert refused.returncode == 2
    lines = refused.stderr.strip().splitlines()
    assert len(lines) == 1 and "silver.ref_country is written by the spark engine" in lines[0], refused.stderr
    assert {t: lake.table(t).version() for t in versions} == versions

    for args in (
        ["maintain", "optimize", "silver.ref_country"],
        ["maintain", "vacuum", "silver.ref_country"],
        ["maintain", "restore", "silver.ref_country", "--version", "0"],
    ):
        done = _cli(lake, *args)
        assert done.returncode == 2, (args, done.stdout, done.stderr)
        assert len(done.stderr.strip().splitlines()) == 1, done.stderr
        assert "silver.ref_country is written by the spark engine" in done.stderr

    covered = ops.maintained_tables(lake, lake.settings.maintenance)
    assert "silver.ref_country" not in covered and "silver.events" in covered
    assert lake.table("silver.ref_country").version() == versions["silver.ref_country"]

    ownership.hand_over(lake, "silver.events", ownership.SPARK)
    with pytest.raises(ownership.OwnershipError, match=r"silver\.events is written by the spark"):
        jobs.silver(lake, lake.settings, new_run_id())
    backfill = _cli(lake, "maintain", "backfill", "--from", "2020-01-01", "--to", "2030-01-01")
    assert backfill.returncode == 2, backfill.stderr
    assert "silver.events is written by the spark engine" in backfill.stderr

    ownership.hand_over(lake, "bronze.events", ownership.SPARK)
    with pytest.raises(ownership.OwnershipError, match=r"bronze\.events is written by the spark"):
        BronzeSink(lake, "events", 100, 1.0)


def test_spark_maintenance_without_a_table_covers_spark_tables_only(lake: Lake) -> None:
    """`lakehouse spark optimize|vacuum` without TABLE: every table Spark writes, none of the
    embedded engine's; with no Spark table it says so and starts no Spark (the maintenance DAG
    runs it whenever a layer is on Spark)."""
    from lakehouse.core.settings import MaintenanceSettings
    from lakehouse.maintenance import spark_ops

    assert spark_ops.spark_tables(lake, MaintenanceSettings()) == []
    for cmd in ("optimize", "vacuum"):
        done = _cli(lake, "spark", cmd, "--json")
        assert done.returncode == 0, done.stderr
        assert '"results": []' in done.stdout, done.stdout
    assert _cli(lake, "spark", "handover", "bronze.events", "--to", "spark").returncode == 0
    assert spark_ops.spark_tables(lake, MaintenanceSettings()) == ["bronze.events"]
    # maintenance.tables narrows the set; an embedded table named there is still left out
    named = MaintenanceSettings(tables=["bronze.events", "ops.maintenance", "silver.events"])
    assert spark_ops.spark_tables(lake, named) == ["bronze.events"]
    assert spark_ops.spark_tables(lake, MaintenanceSettings(tables=["silver.events"])) == []
