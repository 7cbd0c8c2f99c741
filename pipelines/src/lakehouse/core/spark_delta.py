"""delta-spark writes with the conventions of `core.delta` (the embedded engine's writer): an app
transaction in the same commit as the rows, the package's audit metadata, and tables created with
the properties the embedded engine gives them plus the owning engine (`core.ownership`).

A table is created by a commit of its own (schema, partitioning, properties, no rows) before the
first rows go in: a DataFrame write sets only `delta.*` options as table properties when it creates
a table, and the owner must be recorded from the table's first version on, or a killed first run
would leave a table that looks owned by the other engine.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from lakehouse.core import ownership

if TYPE_CHECKING:  # pragma: no cover
    from pyspark.sql import DataFrame, SparkSession


def ensure_table(
    spark: SparkSession,
    uri: str,
    frame: DataFrame,
    *,
    partition_by: list[str] | None = None,
    properties: dict[str, str] | None = None,
) -> None:
    """Create the Delta table at `uri` with `frame`'s columns (empty, owned by Spark) unless it
    exists. The protocol is the one delta-rs gives a new table (reader 1, writer 2, or 4 with the
    Change Data Feed), not Spark's default table-features protocol, so the two engines' tables
    are alike and readable by older readers."""
    from pyspark.sql import functions as F

    jvm = spark.sparkContext._jvm
    assert jvm is not None
    if jvm.io.delta.tables.DeltaTable.isDeltaTable(spark._jsparkSession, uri):
        return
    props = {**(properties or {}), **ownership.properties(ownership.SPARK)}
    cdf = props.get("delta.enableChangeDataFeed") == "true"
    props |= {"delta.minReaderVersion": "1", "delta.minWriterVersion": "4" if cdf else "2"}
    empty = frame.limit(0)
    writer = empty.writeTo(f"delta.`{uri}`").using("delta")
    if partition_by:
        writer = writer.partitionedBy(*(F.col(c) for c in partition_by))
    for key, value in props.items():
        writer = writer.tableProperty(key, value)
    writer.create()


def append(
    frame: DataFrame,
    uri: str,
    *,
    app_id: str | None = None,
    txn_version: int | None = None,
    merge_schema: bool = False,
    **metadata: Any,
) -> None:
    """Append `frame` to `uri` in one commit, with (app_id, txn_version) and the audit metadata."""
    writer = frame.write.format("delta").mode("append")
    if app_id is not None and txn_version is not None:
        writer = writer.option("txnAppId", app_id).option("txnVersion", str(int(txn_version)))
    if metadata:
        writer = writer.option("userMetadata", user_metadata(**metadata))
    if merge_schema:
        writer = writer.option("mergeSchema", "true")
    writer.save(uri)


def user_metadata(**metadata: Any) -> str:
    """The commit's audit metadata as delta-spark's userMetadata, with the keys `core.delta` gives
    the embedded engine's commits."""
    meta = {f"lakehouse.{k}": v if isinstance(v, str) else json.dumps(v) for k, v in metadata.items()}
    return json.dumps(meta, sort_keys=True)
