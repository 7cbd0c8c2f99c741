"""Current-state silver tables (orders, order_items) on Apache Spark: the latest row per key by
Delta `MERGE INTO`, with the rules of `silver.current_state` (the embedded engine's): a source
row replaces the silver row only when its updated_at is newer; the bronze versions absorbed are
recorded in the MERGE's own commit (the shared app transaction), so a rerun is a no-op.

delta-spark records an app transaction for a MERGE through the session settings
`spark.databricks.delta.write.txnAppId` / `txnVersion`, which apply to the next write only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from lakehouse.core import delta, ownership, spark_delta
from lakehouse.core.reconcile import Reconciliation
from lakehouse.core.storage import Lake
from lakehouse.silver.current_state import DROPPED, CurrentState

if TYPE_CHECKING:  # pragma: no cover
    from deltalake import DeltaTable
    from pyspark.sql import DataFrame, SparkSession

TXN_APP_ID = "spark.databricks.delta.write.txnAppId"
TXN_VERSION = "spark.databricks.delta.write.txnVersion"


def inserted_rows(
    spark: SparkSession, lake: Lake, table: str, dt: DeltaTable, first: int, last: int
) -> DataFrame:
    """Rows versions first..last of `table` inserted (Change Data Feed), with `_commit_version`;
    versions a RESTORE undid are left out, as `delta.inserted_rows` does on the embedded engine."""
    from functools import reduce

    parts = [
        spark.read.format("delta")
        .option("readChangeFeed", "true")
        .option("startingVersion", a)
        .option("endingVersion", b)
        .load(lake.table_uri(table))
        .where("_change_type = 'insert'")
        .drop("_change_type", "_commit_timestamp")
        for a, b in delta.live_ranges(dt, first, last)
    ]
    if not parts:
        raise ValueError(f"versions {first}..{last} of {table} were all restored away")
    return reduce(lambda x, y: x.unionByName(y, allowMissingColumns=True), parts)


def _latest(rows: DataFrame, t: CurrentState, run_id: str) -> DataFrame:
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    order = Window.partitionBy(*t.keys).orderBy(F.col("updated_at").desc(), F.col("_commit_version").desc())
    kept = [F.col(f"`{c}`") for c in rows.columns if c not in DROPPED]
    return (
        rows.withColumn("_rank", F.row_number().over(order))
        .where("_rank = 1")
        .select(*kept, F.col("_batch_id").alias("_bronze_batch_id"), F.lit(run_id).alias("_run_id"))
    )


def apply(spark: SparkSession, lake: Lake, t: CurrentState, run_id: str) -> Reconciliation:
    ownership.check(lake, t.table, ownership.SPARK)
    from pyspark import StorageLevel

    rec = Reconciliation(run_id, "silver", t.source, t.table)
    pending = delta.pending_versions(lake, t.source, t.table, t.app_id)
    if isinstance(pending, str):
        rec.detail = pending
        return rec.finish()
    source, first, last = pending
    rows = inserted_rows(spark, lake, t.source, source, first, last)
    latest = _latest(rows, t, run_id).persist(StorageLevel.MEMORY_AND_DISK)
    try:
        rec.rows_in = rows.count()
        kept = latest.count()
        rec.duplicates = rec.rows_in - kept
        uri = lake.table_uri(t.table)
        if delta.open_table(lake, t.table) is None:
            spark_delta.ensure_table(spark, uri, latest)
            spark_delta.append(latest, uri, app_id=t.app_id, txn_version=last, run_id=run_id)
            rec.inserted = kept
            return rec.finish()
        latest.createOrReplaceTempView("current_state_source")
        on = " AND ".join(f"t.{k} = s.{k}" for k in t.keys)
        spark.conf.set(TXN_APP_ID, t.app_id)
        spark.conf.set(TXN_VERSION, str(last))
        try:
            result = spark.sql(
                f"""MERGE INTO delta.`{uri}` AS t USING current_state_source AS s ON {on}
                    WHEN MATCHED AND s.updated_at > t.updated_at THEN UPDATE SET *
                    WHEN NOT MATCHED THEN INSERT *"""
            ).collect()[0]
        finally:
            spark.conf.unset(TXN_APP_ID)
            spark.conf.unset(TXN_VERSION)
    finally:
        latest.unpersist()
    rec.inserted = int(result["num_inserted_rows"])
    rec.updated = int(result["num_updated_rows"])
    rec.unchanged = kept - rec.inserted - rec.updated
    rec.detail = f"{rec.unchanged} rows not newer than silver (late or replayed)"
    return rec.finish()
