"""PostgreSQL source tables -> bronze.<table> on Apache Spark (JDBC), by the rules of
`bronze.postgres_extract` (the embedded engine's): the high-water mark is the largest updated_at
bronze holds, each run re-reads a look-back window below it and keeps only rows whose (key,
updated_at, row hash) bronze does not hold yet; the new mark is in the commit of the rows.

The row hash is the canonical one of `bronze.row_hash`, so either engine recognises the other's
rows and a table handed over mid-history is neither duplicated nor skipped. A source column of a
type without a canonical text form stops the table's extract with one line before anything is
written.

A table's rows are read from PostgreSQL once per run and kept (local checkpoint) while they are
counted, compared and written: a second JDBC read could see rows committed in between.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from lakehouse.bronze import row_hash
from lakehouse.bronze.postgres_extract import SCHEMA, SOURCE_TABLES, SourceTable, high_water_mark
from lakehouse.core import delta, ownership, spark_delta
from lakehouse.core.errors import LakehouseError
from lakehouse.core.reconcile import Reconciliation
from lakehouse.core.settings import PostgresSettings
from lakehouse.core.storage import Lake

if TYPE_CHECKING:  # pragma: no cover
    from pyspark.sql import DataFrame, SparkSession


def jdbc_options(pg: PostgresSettings) -> dict[str, str]:
    """The JDBC connection of the source database, from the same settings (and PGPASSWORD) the
    embedded extract's libpq connection uses."""
    from psycopg.conninfo import conninfo_to_dict

    params = conninfo_to_dict(pg.source_dsn)
    url = f"jdbc:postgresql://{params['host']}:{params['port']}/{params['dbname']}"
    options = {"url": url, "driver": "org.postgresql.Driver", "user": str(params["user"])}
    password = params.get("password") or os.environ.get("PGPASSWORD")
    if password:
        options["password"] = str(password)
    for key in ("sslmode", "sslrootcert"):
        if params.get(key):
            options[key] = str(params[key])
    return options


def _utc_text(value: datetime) -> str:
    return value.astimezone(UTC).isoformat()


def read_source(
    spark: SparkSession, pg: PostgresSettings, table: SourceTable, lower: datetime | None
) -> DataFrame:
    """The source rows with updated_at >= lower (all when None), with `_row_hash`."""
    from pyspark.sql import functions as F

    where = f" WHERE updated_at >= TIMESTAMPTZ '{_utc_text(lower)}'" if lower else ""
    catalog = _jdbc(
        spark,
        pg,
        table,
        "SELECT column_name, data_type FROM information_schema.columns "
        f"WHERE table_schema = '{SCHEMA}' AND table_name = '{table.name}' ORDER BY ordinal_position",
    ).collect()
    if not catalog:
        raise LakehouseError(f"source table {SCHEMA}.{table.name} does not exist in {pg.source_db}")
    # char(n) as text: JDBC pads the value to n characters, DuckDB's scanner (and ::text) does not
    select = ", ".join(
        f'"{name}"::text AS "{name}"' if kind == "character" else f'"{name}"' for name, kind in catalog
    )
    frame = _jdbc(spark, pg, table, f"SELECT {select} FROM {SCHEMA}.{table.name}{where}")
    bad = row_hash.unsupported(frame.schema)
    if bad:
        raise LakehouseError(
            f"{SCHEMA}.{table.name}: column {', '.join(bad)} has no canonical text form for the row hash "
            "both engines compute (bronze.row_hash); extract it with the embedded engine"
        )
    return frame.withColumn("_row_hash", F.expr(row_hash.spark_sql(frame.schema)))


def _jdbc(spark: SparkSession, pg: PostgresSettings, table: SourceTable, query: str) -> DataFrame:
    reader = spark.read.format("jdbc").option("query", query).option("fetchsize", "10000")
    for key, value in jdbc_options(pg).items():
        reader = reader.option(key, value)
    try:
        return reader.load()
    except Exception as exc:
        if not type(exc).__module__.startswith(("pyspark", "py4j")):
            raise
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
        raise LakehouseError(
            f"source table {SCHEMA}.{table.name} could not be read over JDBC ({first}); "
            "start the database with `lakehouse services start`"
        ) from None


def extract_table(
    spark: SparkSession,
    lake: Lake,
    pg: PostgresSettings,
    table: SourceTable,
    run_id: str,
    lookback: timedelta,
) -> Reconciliation:
    from pyspark.sql import functions as F

    ownership.check(lake, table.bronze, ownership.SPARK)
    rec = Reconciliation(run_id, "bronze", f"postgres:{SCHEMA}.{table.name}", table.bronze)
    hwm = high_water_mark(lake, table)
    lower = hwm - lookback if hwm else None
    extracted = read_source(spark, pg, table, lower).localCheckpoint(eager=True)
    rec.rows_in = extracted.count()
    uri = lake.table_uri(table.bronze)
    if lower is not None and delta.open_table(lake, table.bronze) is not None:
        seen = (
            spark.read.format("delta")
            .load(uri)
            .where(F.col("updated_at") >= F.lit(lower))
            .select(*table.keys, "updated_at", "_row_hash")
        )
        extracted = extracted.join(seen, on=[*table.keys, "updated_at", "_row_hash"], how="left_anti")
    batch_id = f"P{datetime.now(UTC):%Y%m%dT%H%M%S}-{run_id[-8:]}"
    fresh = (
        extracted.withColumn("_extracted_at", F.current_timestamp())
        .withColumn("_batch_id", F.lit(batch_id))
        .withColumn("_run_id", F.lit(run_id))
        .orderBy("updated_at", *table.keys)
        .localCheckpoint(eager=True)
    )
    rec.inserted = fresh.count()
    rec.duplicates = rec.rows_in - rec.inserted  # re-read from the look-back window, already in bronze
    if rec.inserted:
        version = (delta.txn_version(lake, table.bronze, table.app_id) or 0) + 1
        mark = fresh.select(F.max("updated_at").alias("updated_at"))
        new_hwm = mark.selectExpr(f"{row_hash.spark_text('updated_at', 'timestamp')} AS t").collect()[0]["t"]
        spark_delta.ensure_table(spark, uri, fresh, properties=delta.CDF)
        spark_delta.append(
            fresh,
            uri,
            app_id=table.app_id,
            txn_version=version,
            run_id=run_id,
            batch_id=batch_id,
            high_water_mark=new_hwm,
        )
    rec.detail = f"high-water mark {hwm or 'none'}; look-back from {lower or 'the beginning'}"
    return rec.finish()


def extract_all(
    spark: SparkSession,
    lake: Lake,
    pg: PostgresSettings,
    run_id: str,
    lookback_minutes: int,
    tables: tuple[SourceTable, ...] = SOURCE_TABLES,
) -> list[Reconciliation]:
    """Every source table, each checked to be Spark's before the first one is read."""
    for table in tables:
        ownership.check(lake, table.bronze, ownership.SPARK)
    return [extract_table(spark, lake, pg, t, run_id, timedelta(minutes=lookback_minutes)) for t in tables]
