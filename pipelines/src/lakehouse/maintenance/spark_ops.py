"""OPTIMIZE, VACUUM and RESTORE of a Spark-owned table through delta-spark's own SQL commands, by the
rules of `maintenance.ops` and `maintenance.consistent_restore` (the embedded engine's): the
same Z-order choice and target file size, the same retention rule, and a restore that keeps the
table's watermarks right.

delta-spark's RESTORE commits the old version's files but cannot record app transactions in
that commit (the txnAppId/txnVersion session settings carry one app id and RESTORE does not
read them). A restore that must rewind a watermark is therefore refused, in one line, rather than
committed without it (the table would never read again what it read after the restored version)
or followed by a second commit (a kill in between would leave exactly that). Such a table is
restored by the embedded engine after a hand-over. A restore that would leave a downstream table
holding rows the restore takes back is refused the same way (the embedded `--cascade` handles it).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import pyarrow as pa

from lakehouse.core import ownership
from lakehouse.core.errors import LakehouseError
from lakehouse.core.settings import MaintenanceSettings
from lakehouse.core.storage import Lake
from lakehouse.maintenance import consistent_restore
from lakehouse.maintenance.ops import (
    MB,
    REPORT_TABLE,
    MaintenanceResult,
    _finish,
    _sizes,
    _started,
    _zorder_columns,
    discover_tables,
)

if TYPE_CHECKING:  # pragma: no cover
    from pyspark.sql import SparkSession

USER_METADATA = "spark.databricks.delta.commitInfo.userMetadata"
MAX_FILE_SIZE = "spark.databricks.delta.optimize.maxFileSize"
RETENTION_CHECK = "spark.databricks.delta.retentionDurationCheck.enabled"
LISTING_PARALLELISM = "spark.sql.sources.parallelPartitionDiscovery.parallelism"


def _with_conf(spark: SparkSession, conf: dict[str, str]) -> dict[str, str | None]:
    saved = {k: spark.conf.get(k, None) for k in conf}
    for key, value in conf.items():
        spark.conf.set(key, value)
    return saved


def _restore_conf(spark: SparkSession, saved: dict[str, str | None]) -> None:
    for key, value in saved.items():
        if value is None:
            spark.conf.unset(key)
        else:
            spark.conf.set(key, value)


def _metadata(**values: str) -> str:
    return json.dumps({f"lakehouse.{k}": v for k, v in values.items()}, sort_keys=True)


def optimize(
    spark: SparkSession, lake: Lake, m: MaintenanceSettings, table: str, *, zorder: bool | None = None
) -> MaintenanceResult:
    """Compact to maintenance.target_file_mb, or Z-order by maintenance.zorder[table] when the
    table is large enough (`zorder` forces or prevents it), as `ops.optimize` decides."""
    dt, res, t0 = _started(lake, table, ownership.SPARK)
    names = {f.name for f in pa.schema(dt.schema())}
    cols = _zorder_columns(m, table, res.bytes_before, names, zorder)
    saved = _with_conf(
        spark, {MAX_FILE_SIZE: str(m.target_file_mb * MB), USER_METADATA: _metadata(operation="maintenance")}
    )
    try:
        statement = f"OPTIMIZE delta.`{lake.table_uri(table)}`"
        if cols:
            res.operation = "zorder"
            statement += " ZORDER BY (" + ", ".join(f"`{c}`" for c in cols) + ")"
            res.detail = "z-order by " + ", ".join(cols)
        else:
            res.operation = "compact"
        result = spark.sql(statement)
        metrics = result.collect()[0]["metrics"].asDict(recursive=True)
    finally:
        _restore_conf(spark, saved)
    res.metrics = {k: v for k, v in metrics.items() if isinstance(v, int | float | str)}
    res.files_removed = int(metrics.get("numFilesRemoved", 0))
    res.files_added = int(metrics.get("numFilesAdded", 0))
    return _finish(dt, res, t0)


def vacuum(
    spark: SparkSession,
    lake: Lake,
    m: MaintenanceSettings,
    table: str,
    *,
    retention_hours: int | None = None,
    dry_run: bool = False,
) -> MaintenanceResult:
    """Delete files unreferenced by versions newer than the retention (maintenance.
    vacuum_retention_hours); a retention shorter than the table's deletedFileRetentionDuration is
    refused unless maintenance.enforce_retention_duration is false (delta-spark's own check)."""
    dt, res, t0 = _started(lake, table, ownership.SPARK)
    hours = m.vacuum_retention_hours if retention_hours is None else retention_hours
    res.operation = "vacuum (dry run)" if dry_run else "vacuum"
    uri = lake.table_uri(table)
    saved = _with_conf(
        spark,
        {
            RETENTION_CHECK: str(m.enforce_retention_duration).lower(),
            # VACUUM lists the table's folders in this many tasks (10000 by default: minutes of
            # task overhead on a small machine for a small table)
            LISTING_PARALLELISM: str(max(2, spark.sparkContext.defaultParallelism)),
            USER_METADATA: _metadata(operation="maintenance"),
        },
    )
    try:
        try:
            listed = spark.sql(f"VACUUM delta.`{uri}` RETAIN {int(hours)} HOURS DRY RUN").collect()
        except Exception as exc:
            if "retention" not in str(exc).lower():
                raise
            raise LakehouseError(
                f"{table}: a retention of {hours} h is shorter than the table's deletedFileRetentionDuration; "
                "a shorter retention deletes files time travel and concurrent readers may still need: allow "
                "it with --set maintenance.enforce_retention_duration=false"
            ) from None
        # absolute URIs; a local one as file:/path, which `_sizes` takes as a plain path
        candidates = [str(r[0]).removeprefix("file:") for r in listed]
        sizes = _sizes(lake, dt, candidates, table)
        if not dry_run and candidates:
            spark.sql(f"VACUUM delta.`{uri}` RETAIN {int(hours)} HOURS")
    finally:
        _restore_conf(spark, saved)
    res.files_removed = len(candidates)
    res.bytes_reclaimed = sum(sizes.values())
    res.detail = f"retention {hours} h" + (" (nothing deleted: dry run)" if dry_run else "")
    return _finish(dt, res, t0)


def spark_tables(lake: Lake, m: MaintenanceSettings) -> list[str]:
    """The tables `lakehouse spark optimize|vacuum` cover when none is named: those of
    `maintenance.tables`, else every table in the lake, that Spark writes."""
    named = [n for n in (m.tables or discover_tables(lake)) if n != REPORT_TABLE and lake.exists(n)]
    return [n for n in named if ownership.owner(lake, n) == ownership.SPARK]


def check_owner(lake: Lake, table: str) -> None:
    """Refuse, in one line, a table the embedded engine writes (before a Spark session starts)."""
    ownership.check(lake, table, ownership.SPARK)


def check_restore(lake: Lake, table: str, version: int) -> None:
    """Refuse, in one line, a restore delta-spark cannot do with the watermarks kept right: a
    table the other engine writes, a watermark that would move, a downstream table that read
    past `version`."""
    check_owner(lake, table)
    steps, stale = consistent_restore.plan(lake, table, version, cascade=False)
    if stale:
        raise LakehouseError(stale[0].line().replace(" (or rerun with --cascade)", "") + " first")
    step = steps[0]
    dt = consistent_restore._open(lake, table)
    current = {app: dt.transaction_version(app) for app in step.watermarks}
    rewound = {app: v for app, v in step.watermarks.items() if current[app] != v}
    if rewound:
        moves = ", ".join(f"{a} {current[a]}->{v}" for a, v in sorted(rewound.items()))
        raise LakehouseError(
            f"restoring {table} to version {version} must rewind its watermarks ({moves}), which delta-spark's "
            f"RESTORE cannot record in its commit: `lakehouse spark handover {table} --to embedded`, then "
            f"`lakehouse maintain restore {table} --version {version}`"
        )


def restore(spark: SparkSession, lake: Lake, table: str, version: int) -> MaintenanceResult:
    """RESTORE `table` to `version` when that keeps every watermark right (none moves, no
    downstream table read past it); otherwise one line saying why and what to do instead."""
    check_restore(lake, table, version)
    dt, res, t0 = _started(lake, table, ownership.SPARK)
    res.operation = "restore"
    saved = _with_conf(spark, {USER_METADATA: _metadata(operation="restore", restored_to=str(version))})
    try:
        metrics = (
            spark.sql(f"RESTORE TABLE delta.`{lake.table_uri(table)}` TO VERSION AS OF {int(version)}")
            .collect()[0]
            .asDict()
        )
    finally:
        _restore_conf(spark, saved)
    res.metrics = {k: v for k, v in metrics.items() if isinstance(v, int | float | str)}
    res.files_removed = int(metrics.get("num_removed_files", 0))
    res.files_added = int(metrics.get("num_restored_files", 0))
    res.detail = f"restored to version {version}"
    return _finish(dt, res, t0)
