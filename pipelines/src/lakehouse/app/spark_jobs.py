"""The pipeline steps on the distributed engine (Apache Spark with delta-spark), as `jobs` runs
them on the embedded one: the same step locks, lineage runs and reconciliation records, the same
tables. Each step writes only tables its engine owns (`core.ownership`)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from lakehouse.app.jobs import step_lock
from lakehouse.core import lineage, ops_db
from lakehouse.core.reconcile import Reconciliation
from lakehouse.core.settings import Settings
from lakehouse.core.storage import Lake

if TYPE_CHECKING:  # pragma: no cover
    from pyspark.sql import SparkSession


BRONZE_SOURCES = ("events", "postgres")


def check_bronze_sources(sources: tuple[str, ...]) -> None:
    """Refuse, in one line, a bronze source that has no Spark job (before a session starts)."""
    from lakehouse.core.errors import LakehouseError

    unsupported = [s for s in sources if s not in BRONZE_SOURCES]
    if unsupported:
        raise LakehouseError(
            f"bronze from {', '.join(unsupported)} has no Spark job; pass --source "
            f"{' --source '.join(BRONZE_SOURCES)} or run it embedded (--set engines.bronze=embedded)"
        )


def bronze(
    spark: SparkSession,
    lake: Lake,
    settings: Settings,
    run_id: str,
    sources: tuple[str, ...] = ("events",),
) -> list[Reconciliation]:
    """Landing files -> bronze.events and/or the PostgreSQL source tables -> bronze.<table>
    (JDBC) through delta-spark. Every table is checked to be Spark's before the first write."""
    from lakehouse.bronze import landing, postgres_extract, spark_landing, spark_postgres
    from lakehouse.core import ownership

    check_bronze_sources(sources)
    targets = [landing.TABLE] if "events" in sources else []
    targets += [t.bronze for t in postgres_extract.SOURCE_TABLES] if "postgres" in sources else []
    for table in targets:
        ownership.check(lake, table, ownership.SPARK)
    recs: list[Reconciliation] = []
    with lineage.step(lake, "bronze", sources), step_lock(settings, "bronze"):
        if "events" in sources:
            _, rec = spark_landing.ingest(spark, lake, run_id, settings.bronze.max_rows_per_commit)
            recs.append(rec)
        if "postgres" in sources:
            recs += spark_postgres.extract_all(
                spark, lake, settings.postgres, run_id, settings.bronze.extract_lookback_minutes
            )
        ops_db.record_reconciliation(lake, settings.postgres, recs)
    return recs


def silver(spark: SparkSession, lake: Lake, settings: Settings, run_id: str) -> list[Reconciliation]:
    """The silver step through delta-spark, as `jobs.silver` runs it on the embedded engine:
    bronze.events -> silver.events + silver.quarantine_events (and the reference tables), the SCD2
    dimensions and the current-state tables. Every table is checked to be Spark's before the
    first write, so a table owned by the other engine stops the step before anything commits."""
    from lakehouse.core import ownership
    from lakehouse.silver import current_state, scd2
    from lakehouse.silver.spark import current_state as spark_current_state
    from lakehouse.silver.spark import scd2 as spark_scd2
    from lakehouse.silver.spark import writer

    for table in (
        *writer.OUTPUT_TABLES,
        *(d.table for d in scd2.DIMENSIONS),
        *(t.table for t in current_state.TABLES),
    ):
        ownership.check(lake, table, ownership.SPARK)
    with lineage.step(lake, "silver"), step_lock(settings, "silver"):
        recs = [writer.run(spark, lake, settings.silver, run_id)]
        recs += [spark_scd2.apply(spark, lake, d, run_id) for d in scd2.DIMENSIONS]
        recs += [spark_current_state.apply(spark, lake, t, run_id) for t in current_state.TABLES]
        ops_db.record_reconciliation(lake, settings.postgres, recs)
    return recs


def check_stream_bronze(lake: Lake, settings: Settings) -> None:
    """What `stream_bronze` refuses, checked before a Spark session starts: bronze.events owned
    by the embedded engine, no broker answering (one line each)."""
    from lakehouse.bronze.landing import TABLE
    from lakehouse.core import ownership
    from lakehouse.core.kafka import check_broker

    ownership.check(lake, TABLE, ownership.SPARK)
    check_broker(settings.streaming)


def stream_bronze(
    spark: SparkSession,
    lake: Lake,
    settings: Settings,
    run_id: str,
    *,
    available_now: bool = True,
    interval_seconds: float = 10.0,
    stop: threading.Event | None = None,
    on_reset: Callable[[str], None] | None = None,
) -> list[Reconciliation]:
    """Kafka (`streaming.topic`) -> bronze.events on Spark Structured Streaming, recorded as the
    embedded consumer records its bronze sink (a reconciliation when offsets moved)."""
    from lakehouse.bronze import spark_kafka
    from lakehouse.core.reconcile import now

    started = now()
    result = spark_kafka.stream(
        spark,
        lake,
        settings.streaming,
        run_id,
        available_now=available_now,
        interval_seconds=interval_seconds,
        stop=stop,
        on_reset=on_reset,
    )
    rec = spark_kafka.reconciliation(run_id, settings.streaming.topic, result, started)
    if rec.rows_in:
        ops_db.record_reconciliation(lake, settings.postgres, [rec])
    return [rec]
