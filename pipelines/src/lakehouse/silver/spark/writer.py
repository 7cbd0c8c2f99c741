"""bronze.events -> silver.events + silver.quarantine_events on Apache Spark with delta-spark.

The same tables as `silver.events` (the embedded runner) writes, by the same rules: the shared SQL
classifies (`silver.spark.events.classify`), bronze is absorbed in chunks of commit versions and
each output table records, in the commit of its rows, the last bronze version it holds (the
shared app transaction `silver.events.APP_ID`), so either engine continues where the other one
stopped. Rows of a chunk that an interrupted run already wrote to one table are not written
again (each table's own watermark), and counted once.

The classification of a chunk is computed once and kept (persisted) while its two outputs are
written; the `existing` rows it deduplicates against are read at a fixed version of
silver.events, so a recomputation (an evicted partition) gives the same rows even after the
inserts are committed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from lakehouse.core import delta, ownership, spark_delta
from lakehouse.core.reconcile import Reconciliation
from lakehouse.core.settings import SilverSettings
from lakehouse.core.storage import Lake
from lakehouse.silver import reference
from lakehouse.silver.events import (
    APP_ID,
    AUDIT_COLUMNS,
    EVENTS,
    QUARANTINE,
    QUARANTINE_COLUMNS,
    SOURCE,
    absorb_chunks,
    known_extras,
)
from lakehouse.silver.events_sql import EVENT_COLUMNS
from lakehouse.silver.spark.events import classify

if TYPE_CHECKING:  # pragma: no cover
    import pyarrow as pa
    from pyspark.sql import DataFrame, SparkSession

REFERENCE_TABLES = ("silver.ref_country", "silver.ref_source", "silver.ref_device", "silver.ref_fx_rate")
OUTPUT_TABLES = (EVENTS, QUARANTINE, *REFERENCE_TABLES)


def run(
    spark: SparkSession,
    lake: Lake,
    silver: SilverSettings,
    run_id: str,
    on_rows: Callable[[int], None] | None = None,
) -> Reconciliation:
    for table in OUTPUT_TABLES:
        ownership.check(lake, table, ownership.SPARK)
    rec = Reconciliation(run_id, "silver", SOURCE, f"{EVENTS} + {QUARANTINE}")
    bronze = delta.open_table(lake, SOURCE)
    if bronze is None:
        rec.detail = "bronze.events does not exist yet"
        return rec.finish()
    done = {t: delta.txn_version(lake, t, APP_ID) for t in (EVENTS, QUARANTINE)}
    after = min(-1 if v is None else v for v in done.values())
    chunks = list(delta.version_chunks(bronze, after, silver.chunk_rows))
    lookups = reference.lookups(silver.base_currency)
    publish_reference(spark, lake, silver.base_currency)
    return absorb_chunks(
        rec,
        chunks,
        lambda first, last: _run_chunk(spark, lake, silver, run_id, first, last, done, lookups),
        on_rows,
        engine="spark",
    )


def publish_reference(spark: SparkSession, lake: Lake, base_currency: str) -> None:
    """silver.ref_* through delta-spark, overwritten only when their content changed (as
    `reference.publish` does on the embedded engine)."""
    for name, table in reference.tables(base_currency).items():
        current = delta.open_table(lake, name)
        key = table.column_names[0]
        if current is not None and delta.dataset(lake, current).to_table().sort_by(key).equals(
            table.sort_by(key)
        ):
            continue
        frame = spark.createDataFrame(table)
        uri = lake.table_uri(name)
        # created empty first (a log-only commit): a run killed while the rows are written
        # leaves no stray files where the table is to be created
        spark_delta.ensure_table(spark, uri, frame)
        frame.write.format("delta").mode("overwrite").option("overwriteSchema", "true").save(uri)


def _bronze_rows(spark: SparkSession, lake: Lake, first: int, last: int) -> DataFrame:
    """Rows bronze versions first..last inserted (Change Data Feed), with `commit_version`."""
    return (
        spark.read.format("delta")
        .option("readChangeFeed", "true")
        .option("startingVersion", first)
        .option("endingVersion", last)
        .load(lake.table_uri(SOURCE))
        .where("_change_type = 'insert'")
        .drop("_change_type", "_commit_timestamp")
        .withColumnRenamed("_commit_version", "commit_version")
    )


def _existing(spark: SparkSession, lake: Lake, before_version: int, absorbed: int | None) -> DataFrame | None:
    """(event_id, payload_hash) of silver rows from bronze versions before this chunk, read at
    the table's current version (fixed for the whole chunk)."""
    dt = delta.open_table(lake, EVENTS)
    if dt is None:
        return None
    frame = spark.read.format("delta").option("versionAsOf", dt.version()).load(lake.table_uri(EVENTS))
    if absorbed is not None and absorbed >= before_version:
        frame = frame.where(f"_commit_version < {int(before_version)}")
    return frame.select("event_id", "payload_hash")


def _run_chunk(
    spark: SparkSession,
    lake: Lake,
    silver: SilverSettings,
    run_id: str,
    first: int,
    last: int,
    done: dict[str, int | None],
    lookups: dict[str, pa.Table],
) -> tuple[Reconciliation, list[str]]:
    from pyspark import StorageLevel

    bronze_rows = _bronze_rows(spark, lake, first, last)
    extras = known_extras(lake)
    classified, all_extras, rejected = classify(
        spark,
        bronze_rows,
        lookups,
        existing=_existing(spark, lake, first, done[EVENTS]),
        extras=None,
        known_extras=tuple(extras),
        run_id=run_id,
        future_tolerance_hours=silver.future_tolerance_hours,
        max_record_bytes=silver.max_record_bytes,
        max_field_chars=silver.max_field_chars,
    )
    columns = [*EVENT_COLUMNS, *(x.name for x in all_extras)]
    selected = classified.selectExpr(
        "outcome", "reasons", *columns, *(f"{src} AS {out}" for out, src in AUDIT_COLUMNS)
    ).persist(StorageLevel.MEMORY_AND_DISK)
    try:
        floors = {t: -1 if v is None else v for t, v in done.items()}
        floor = min(floors.values())
        counts = {
            r.outcome: r.n
            for r in selected.where(f"_commit_version > {floor}")
            .groupBy("outcome")
            .count()
            .withColumnRenamed("count", "n")
            .collect()
        }
        versions = f"{max(first, floors[EVENTS] + 1)}..{last}"
        if floors[EVENTS] < last:
            inserts = selected.where(f"outcome = 'insert' AND _commit_version > {floors[EVENTS]}").drop(
                "outcome", "reasons"
            )
            uri = lake.table_uri(EVENTS)
            spark_delta.ensure_table(spark, uri, inserts, partition_by=["event_date"])
            spark_delta.append(
                inserts,
                uri,
                app_id=APP_ID,
                txn_version=last,
                merge_schema=True,
                run_id=run_id,
                bronze_versions=versions,
            )
        if floors[QUARANTINE] < last:
            selected.where(
                f"outcome = 'quarantine' AND _commit_version > {floors[QUARANTINE]}"
            ).createOrReplaceTempView("quarantined")
            bronze_rows.createOrReplaceTempView("chunk_bronze_rows")
            rows = spark.sql(
                f"""SELECT {", ".join(QUARANTINE_COLUMNS)} FROM quarantined AS q
                    JOIN chunk_bronze_rows AS b
                      ON b.commit_version = q._commit_version AND b.ordinal = q._ordinal"""
            )
            uri = lake.table_uri(QUARANTINE)
            spark_delta.ensure_table(spark, uri, rows)
            spark_delta.append(
                rows,
                uri,
                app_id=APP_ID,
                txn_version=last,
                merge_schema=True,
                run_id=run_id,
                bronze_versions=f"{max(first, floors[QUARANTINE] + 1)}..{last}",
            )
    finally:
        selected.unpersist()
    rec = Reconciliation(run_id, "silver", SOURCE, f"{EVENTS} + {QUARANTINE}")
    rec.inserted = int(counts.get("insert", 0))
    rec.duplicates = int(counts.get("duplicate", 0))
    rec.quarantined = int(counts.get("quarantine", 0))
    rec.rows_in = rec.inserted + rec.duplicates + rec.quarantined
    return rec, rejected
