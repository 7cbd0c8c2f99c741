"""Backfill on Apache Spark: the events of a date range classified again from bronze and replaced
in silver, by the rules of `silver.backfill` (the embedded engine's), for tables Spark writes.

The same steps: the bronze rows silver has absorbed (versions up to its watermark, each row with
the version that appended its batch) go through the shared transform (`silver.spark.events`)
at once, with no earlier silver rows to deduplicate against; what falls in the event-date range
replaces silver's rows for that range:

- silver.events: one overwrite commit with Delta's `replaceWhere` on the range (rows of other
  dates untouched);
- silver.quarantine_events: one MERGE INTO on the bronze row identity (batch_id, ordinal).

Neither commit records an app transaction, so the watermarks stay where they are; a rerun gives
the same tables; the reconciliation is the embedded one (`backfill.result`).
"""

from __future__ import annotations

from datetime import date
from typing import TYPE_CHECKING

import pyarrow as pa

from lakehouse.core import delta, ownership, spark_delta
from lakehouse.core.settings import SilverSettings
from lakehouse.core.storage import Lake
from lakehouse.silver import backfill, reference
from lakehouse.silver.events import (
    AUDIT_COLUMNS,
    EVENTS,
    QUARANTINE,
    QUARANTINE_COLUMNS,
    SOURCE,
    known_extras,
)
from lakehouse.silver.events_sql import EVENT_COLUMNS
from lakehouse.silver.spark.events import classify

if TYPE_CHECKING:  # pragma: no cover
    from pyspark.sql import DataFrame, SparkSession

USER_METADATA = "spark.databricks.delta.commitInfo.userMetadata"


def reprocess(
    spark: SparkSession, lake: Lake, silver: SilverSettings, run_id: str, first: date, last: date
) -> backfill.BackfillResult:
    """Classify the events dated first..last again and replace them in Spark-owned silver."""
    from pyspark import StorageLevel

    absorbed, versions = backfill.prepare(lake, first, last, ownership.SPARK)
    bronze = delta.open_table(lake, SOURCE)
    assert bronze is not None
    spark.read.format("delta").option("versionAsOf", bronze.version()).load(
        lake.table_uri(SOURCE)
    ).createOrReplaceTempView("bronze_snapshot")
    spark.createDataFrame(
        pa.table(
            {
                "batch_id": pa.array(list(versions), pa.string()),
                "commit_version": pa.array(list(versions.values()), pa.int64()),
            }
        )
    ).createOrReplaceTempView("batch_versions")
    unknown = spark.sql(
        "SELECT any_value(batch_id), count(DISTINCT batch_id) FROM bronze_snapshot "
        "WHERE batch_id NOT IN (SELECT batch_id FROM batch_versions)"
    ).collect()[0]
    if unknown[1]:
        raise backfill.unknown_batches(unknown[1], unknown[0])
    rows = spark.sql(
        f"""SELECT s.*, v.commit_version FROM bronze_snapshot AS s
            JOIN batch_versions AS v ON s.batch_id = v.batch_id
            WHERE v.commit_version <= {int(absorbed)}"""
    )
    extras = tuple(known_extras(lake))
    classified, _, _ = classify(
        spark,
        rows,
        reference.lookups(silver.base_currency),
        existing=None,
        extras=extras,
        run_id=run_id,
        future_tolerance_hours=silver.future_tolerance_hours,
        max_record_bytes=silver.max_record_bytes,
        max_field_chars=silver.max_field_chars,
    )
    range_sql = backfill.in_range(first, last)
    columns = [*EVENT_COLUMNS, *(x.name for x in extras)]
    selected = (
        classified.selectExpr(
            "outcome", "reasons", *columns, *(f"{src} AS {out}" for out, src in AUDIT_COLUMNS)
        )
        .where(range_sql)
        .persist(StorageLevel.MEMORY_AND_DISK)
    )
    try:
        counts = {
            r["outcome"]: int(r["n"])
            for r in selected.groupBy("outcome").count().toDF("outcome", "n").collect()
        }
        meta = spark_delta.user_metadata(operation="backfill", run_id=run_id, event_dates=f"{first}..{last}")
        events_uri = lake.table_uri(EVENTS)
        before_events = _count(spark, events_uri, range_sql)
        target = spark.read.format("delta").load(events_uri).columns
        (
            selected.where("outcome = 'insert'")
            .select(*target)
            .write.format("delta")
            .mode("overwrite")
            .option("replaceWhere", range_sql)
            .option("userMetadata", meta)
            .save(events_uri)
        )
        quarantined = _replace_quarantine(spark, lake, selected, run_id, meta)
        events = (before_events, _count(spark, events_uri, range_sql))
    finally:
        selected.unpersist()
    return backfill.result(run_id, first, last, counts, events, quarantined)


def _count(spark: SparkSession, uri: str, where: str) -> int:
    return int(spark.read.format("delta").load(uri).where(where).count())


def _replace_quarantine(
    spark: SparkSession, lake: Lake, selected: DataFrame, run_id: str, meta: str
) -> tuple[int, int]:
    """One MERGE INTO on (batch_id, ordinal) over every bronze row of the range; returns the
    range's quarantined rows before and after."""
    selected.createOrReplaceTempView("classified")
    new = spark.sql(
        f"""SELECT q.outcome = 'quarantine' AS _quarantined, {", ".join(QUARANTINE_COLUMNS)}
            FROM classified AS q
            JOIN bronze_rows AS b ON b.commit_version = q._commit_version AND b.ordinal = q._ordinal"""
    )
    uri = lake.table_uri(QUARANTINE)
    if delta.open_table(lake, QUARANTINE) is None:
        kept = new.where("_quarantined").drop("_quarantined")
        if kept.isEmpty():
            return 0, 0
        spark_delta.ensure_table(spark, uri, kept)
        spark_delta.append(kept, uri, run_id=run_id, operation="backfill")
        return 0, kept.count()
    new.createOrReplaceTempView("backfill_source")
    keys = new.select(*backfill.IDENTITY)

    def in_range() -> int:
        return int(
            spark.read.format("delta").load(uri).join(keys, list(backfill.IDENTITY), "left_semi").count()
        )

    before = in_range()
    names = spark.read.format("delta").load(uri).columns
    sources = set(new.columns)
    values = [f"s.`{n}`" if n in sources else "NULL" for n in names]
    assignments = ", ".join(f"t.`{n}` = {v}" for n, v in zip(names, values, strict=True))
    saved = spark.conf.get(USER_METADATA, None)
    spark.conf.set(USER_METADATA, meta)
    try:
        spark.sql(
            f"""MERGE INTO delta.`{uri}` AS t USING backfill_source AS s
                  ON t.batch_id = s.batch_id AND t.ordinal = s.ordinal
                WHEN MATCHED AND s._quarantined THEN UPDATE SET {assignments}
                WHEN MATCHED AND NOT s._quarantined THEN DELETE
                WHEN NOT MATCHED AND s._quarantined THEN
                  INSERT ({", ".join(f"`{n}`" for n in names)}) VALUES ({", ".join(values)})"""
        ).collect()
    finally:
        if saved is None:
            spark.conf.unset(USER_METADATA)
        else:
            spark.conf.set(USER_METADATA, saved)
    return before, in_range()
