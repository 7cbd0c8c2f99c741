"""SCD type 2 dimensions (dim_customer, dim_product) on Apache Spark: the rules and SQL of
`silver.scd2` (the embedded engine's), transpiled with SQLGlot, applied with one Delta
`MERGE INTO` per run.

For each key touched by bronze rows the dimension has not absorbed, the version history is
recomputed from all of that key's bronze rows (`scd2.versions_sql`) and merged on version_key:
new versions inserted, closed or corrected ones updated, versions a late change made obsolete
deleted. The bronze version absorbed is recorded in the MERGE's own commit (the shared app
transaction), so a rerun is a no-op and either engine continues where the other stopped.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from lakehouse.core import delta, ownership, spark_delta
from lakehouse.core.errors import ReconciliationError
from lakehouse.core.reconcile import Reconciliation
from lakehouse.core.storage import Lake
from lakehouse.silver.events_sql import to_dialect
from lakehouse.silver.scd2 import UPDATE_WHEN, Dimension, count_sql, versions_sql
from lakehouse.silver.spark.current_state import TXN_APP_ID, TXN_VERSION, inserted_rows

if TYPE_CHECKING:  # pragma: no cover
    from pyspark.sql import SparkSession


def _count(spark: SparkSession, duckdb_sql: str) -> int:
    return int(spark.sql(to_dialect(duckdb_sql, "spark")).collect()[0][0])


def apply(spark: SparkSession, lake: Lake, d: Dimension, run_id: str) -> Reconciliation:
    from pyspark import StorageLevel
    from pyspark.sql import functions as F

    ownership.check(lake, d.table, ownership.SPARK)
    rec = Reconciliation(run_id, "silver", d.source, d.table)
    pending = delta.pending_versions(lake, d.source, d.table, d.app_id)
    if isinstance(pending, str):
        rec.detail = pending
        return rec.finish()
    source, first, last = pending
    new_rows = inserted_rows(spark, lake, d.source, source, first, last).persist(StorageLevel.MEMORY_AND_DISK)
    cached = [new_rows]
    try:
        rec.rows_in = new_rows.count()
        if rec.rows_in == 0:
            rec.detail = "no new rows"
            return rec.finish()
        new_rows.createOrReplaceTempView("new_rows")
        keys = new_rows.select(d.key).distinct()
        history = (
            spark.read.format("delta")
            .option("versionAsOf", last)
            .load(lake.table_uri(d.source))
            .join(keys, d.key, "left_semi")
        )
        history.createOrReplaceTempView("history")
        versions = spark.sql(to_dialect(versions_sql(d), "spark")).persist(StorageLevel.MEMORY_AND_DISK)
        cached.append(versions)
        versions.createOrReplaceTempView("versions")
        uri = lake.table_uri(d.table)
        exists = delta.open_table(lake, d.table) is not None
        sql = count_sql(d)
        rec.duplicates = _count(spark, sql["repeated_rows"])
        starts = _count(spark, sql["starts"])
        already = reopened = 0
        if exists:
            current = (
                spark.read.format("delta")
                .load(uri)
                .select("version_key", d.key, "valid_from")
                .join(keys, d.key, "left_semi")
            )
            current.createOrReplaceTempView("current_versions")
            already = _count(spark, sql["already"])
            reopened = _count(spark, sql["reopened"])
        rec.inserted = starts - already
        rec.unchanged = rec.rows_in - rec.duplicates - rec.inserted
        if not exists:
            spark_delta.ensure_table(spark, uri, versions)
            spark_delta.append(versions, uri, app_id=d.app_id, txn_version=last, run_id=run_id)
            rec.detail = f"created with {versions.count()} versions"
            return rec.finish()
        obsolete = spark.sql(to_dialect(sql["obsolete"], "spark"))
        upserts = versions.withColumn("_action", F.lit("upsert"))
        deletes = obsolete.select(
            *(
                F.col(f.name)
                if f.name in ("version_key", d.key, "valid_from")
                else F.lit(None).cast(f.dataType).alias(f.name)
                for f in versions.schema.fields
            ),
            F.lit("delete").alias("_action"),
        )
        upserts.unionByName(deletes).createOrReplaceTempView("scd2_source")
        columns = versions.columns
        assignments = ", ".join(f"t.`{c}` = s.`{c}`" for c in columns)
        names = ", ".join(f"`{c}`" for c in columns)
        values = ", ".join(f"s.`{c}`" for c in columns)
        spark.conf.set(TXN_APP_ID, d.app_id)
        spark.conf.set(TXN_VERSION, str(last))
        try:
            result = spark.sql(
                f"""MERGE INTO delta.`{uri}` AS t USING scd2_source AS s ON t.version_key = s.version_key
                    WHEN MATCHED AND s._action = 'delete' THEN DELETE
                    WHEN MATCHED AND {UPDATE_WHEN} THEN UPDATE SET {assignments}
                    WHEN NOT MATCHED AND s._action = 'upsert' THEN INSERT ({names}) VALUES ({values})"""
            ).collect()[0]
        finally:
            spark.conf.unset(TXN_APP_ID)
            spark.conf.unset(TXN_VERSION)
    finally:
        for frame in cached:
            frame.unpersist()
    inserted = int(result["num_inserted_rows"])
    if inserted != rec.inserted + reopened:
        raise ReconciliationError(
            f"{d.table}: MERGE inserted {inserted} versions but {rec.inserted + reopened} new versions "
            f"were expected ({rec.inserted} started by new rows, {reopened} re-opened by late ones)"
        )
    rec.detail = (
        f"{inserted} versions inserted ({reopened} re-opened by late changes), "
        f"{int(result['num_updated_rows'])} closed or corrected, "
        f"{int(result['num_deleted_rows'])} made obsolete by late changes"
    )
    return rec.finish()
