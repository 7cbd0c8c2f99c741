"""The pipeline steps on the distributed engine (Apache Spark with delta-spark), as `jobs` runs
them on the embedded one: the same step locks, lineage runs and reconciliation records, the same
tables. Each step writes only tables its engine owns (`core.ownership`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from lakehouse.app.jobs import step_lock
from lakehouse.core import lineage, ops_db
from lakehouse.core.reconcile import Reconciliation
from lakehouse.core.settings import Settings
from lakehouse.core.storage import Lake

if TYPE_CHECKING:  # pragma: no cover
    from pyspark.sql import SparkSession


def bronze_events(spark: SparkSession, lake: Lake, settings: Settings, run_id: str) -> list[Reconciliation]:
    """Landing files -> bronze.events through delta-spark."""
    from lakehouse.bronze import spark_landing

    with lineage.step(lake, "bronze", ("events",)), step_lock(settings, "bronze"):
        _, rec = spark_landing.ingest(spark, lake, run_id, settings.bronze.max_rows_per_commit)
        ops_db.record_reconciliation(lake, settings.postgres, [rec])
    return [rec]


def silver_events(spark: SparkSession, lake: Lake, settings: Settings, run_id: str) -> list[Reconciliation]:
    """bronze.events -> silver.events + silver.quarantine_events through delta-spark."""
    from lakehouse.silver.spark import writer

    with lineage.step(lake, "silver"), step_lock(settings, "silver"):
        rec = writer.run(spark, lake, settings.silver, run_id)
        ops_db.record_reconciliation(lake, settings.postgres, [rec])
    return [rec]
