"""OPTIMIZE / VACUUM / checkpoint for the lake's Delta tables (delta-rs).

Every operation returns a MaintenanceResult (files compacted, bytes reclaimed, versions) and
`maintain` stores one row per table and operation in `ops.maintenance`, so a run's effect can be
read back later (`lakehouse maintain report`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
import pyarrow.fs as pafs
from deltalake import DeltaTable

from lakehouse.core import delta, ownership
from lakehouse.core.errors import LakehouseError
from lakehouse.core.settings import MaintenanceSettings
from lakehouse.core.storage import LAYERS, Lake

REPORT_TABLE = "ops.maintenance"
MB = 1024 * 1024

REPORT_SCHEMA = pa.schema(
    [
        ("run_id", pa.string()),
        ("table_name", pa.string()),
        ("operation", pa.string()),
        ("version_before", pa.int64()),
        ("version_after", pa.int64()),
        ("files_before", pa.int64()),
        ("files_after", pa.int64()),
        ("files_removed", pa.int64()),
        ("files_added", pa.int64()),
        ("bytes_before", pa.int64()),
        ("bytes_after", pa.int64()),
        ("bytes_reclaimed", pa.int64()),
        ("seconds", pa.float64()),
        ("detail", pa.string()),
        ("finished_at", pa.timestamp("us", tz="UTC")),
    ]
)


@dataclass
class MaintenanceResult:
    """What one operation did to one table."""

    table: str
    operation: str
    version_before: int = -1
    version_after: int = -1
    files_before: int = 0
    files_after: int = 0
    files_removed: int = 0
    files_added: int = 0
    bytes_before: int = 0
    bytes_after: int = 0
    bytes_reclaimed: int = 0
    seconds: float = 0.0
    detail: str = ""
    metrics: dict[str, Any] = field(default_factory=dict)

    def as_row(self, run_id: str) -> dict[str, Any]:
        row = asdict(self)
        row.pop("metrics")
        row["table_name"] = row.pop("table")
        row["run_id"] = run_id
        row["finished_at"] = datetime.now(UTC)
        return row


def _live(dt: DeltaTable) -> tuple[int, int]:
    """(files, bytes) of the table's current snapshot."""
    actions = pa.table(dt.get_add_actions(flatten=True))
    if actions.num_rows == 0:
        return 0, 0
    return actions.num_rows, int(pa.compute.sum(actions["size_bytes"]).as_py() or 0)


def discover_tables(lake: Lake) -> list[str]:
    """Every Delta table under <lake>/<layer>/<name>, sorted (the `maintenance.tables` default)."""
    found: list[str] = []
    for layer in LAYERS:
        fs, root = lake.filesystem(layer)
        infos = fs.get_file_info(pafs.FileSelector(root, allow_not_found=True))
        for info in infos:
            if info.type != pafs.FileType.Directory:
                continue
            name = f"{layer}.{info.base_name}"
            if lake.exists(name):
                found.append(name)
    return sorted(found)


def _started(
    lake: Lake, table: str, engine: str = ownership.EMBEDDED
) -> tuple[DeltaTable, MaintenanceResult, float]:
    """The table as the operation starts, refused when `engine` does not write it."""
    import time as _time

    dt = delta.open_table(lake, table)
    if dt is None:
        raise LakehouseError(f"table {table} does not exist in {lake.root}")
    ownership.check(lake, table, engine)
    files, size = _live(dt)
    res = MaintenanceResult(table, "", dt.version(), dt.version(), files, files, bytes_before=size)
    res.bytes_after = size
    return dt, res, _time.perf_counter()


def _finish(dt: DeltaTable, res: MaintenanceResult, t0: float) -> MaintenanceResult:
    import time as _time

    dt.update_incremental()
    res.version_after = dt.version()
    res.files_after, res.bytes_after = _live(dt)
    res.seconds = round(_time.perf_counter() - t0, 3)
    return res


def _zorder_columns(
    m: MaintenanceSettings, table: str, size: int, schema_names: set[str], forced: bool | None = None
) -> list[str]:
    """The Z-order columns of an OPTIMIZE: maintenance.zorder[table] once the table reaches
    zorder_min_mb; `forced` True takes them whatever the size, False takes none."""
    if forced is False:
        return []
    cols = m.zorder.get(table) or []
    if forced is True and not cols:
        raise LakehouseError(f"--zorder: no maintenance.zorder columns configured for {table}")
    if not cols or (forced is None and size < m.zorder_min_mb * MB):
        return []
    missing = [c for c in cols if c not in schema_names]
    if missing:
        raise LakehouseError(f"maintenance.zorder.{table}: no column(s) {', '.join(missing)} in {table}")
    return list(cols)


def optimize(
    lake: Lake, m: MaintenanceSettings, table: str, *, zorder: bool | None = None
) -> MaintenanceResult:
    """Compact small files (bin-packing to maintenance.target_file_mb); Z-order instead when the
    table is configured for it and large enough (or `zorder=True` forces it, `False` prevents it)."""
    dt, res, t0 = _started(lake, table)
    names = {f.name for f in pa.schema(dt.schema())}
    cols = _zorder_columns(m, table, res.bytes_before, names, zorder)
    target = m.target_file_mb * MB
    props = delta.commit_props(None, None, operation="maintenance")
    if cols:
        res.operation = "zorder"
        metrics = dt.optimize.z_order(cols, target_size=target, commit_properties=props)
        res.detail = "z-order by " + ", ".join(cols)
    else:
        res.operation = "compact"
        metrics = dt.optimize.compact(target_size=target, commit_properties=props)
    res.metrics = dict(metrics)
    res.files_removed = int(metrics.get("numFilesRemoved", 0))
    res.files_added = int(metrics.get("numFilesAdded", 0))
    return _finish(dt, res, t0)


def _sizes(lake: Lake, dt: DeltaTable, files: list[str], table: str) -> dict[str, int]:
    """Size in bytes of each of `files` (as VACUUM lists them: relative to the table, or URIs)."""
    fs, _ = lake.table_path(table)
    base = dt.table_uri.rstrip("/")
    paths = {}
    for f in files:
        uri = f if "://" in f or f.startswith("/") else f"{base}/{f}"
        paths[f] = uri.removeprefix("file://").removeprefix("s3://")
    infos = fs.get_file_info(list(paths.values())) if paths else []
    return {
        f: int(info.size or 0)
        for f, info in zip(paths, infos, strict=True)
        if info.type == pafs.FileType.File
    }


def vacuum(
    lake: Lake,
    m: MaintenanceSettings,
    table: str,
    *,
    retention_hours: int | None = None,
    dry_run: bool = False,
) -> MaintenanceResult:
    """Delete files no longer referenced by versions newer than the retention (maintenance.
    vacuum_retention_hours); report how many and how many bytes were reclaimed."""
    dt, res, t0 = _started(lake, table)
    hours = m.vacuum_retention_hours if retention_hours is None else retention_hours
    enforce = m.enforce_retention_duration
    res.operation = "vacuum (dry run)" if dry_run else "vacuum"
    candidates = dt.vacuum(retention_hours=hours, dry_run=True, enforce_retention_duration=enforce)
    sizes = _sizes(lake, dt, candidates, table)
    deleted = candidates
    if not dry_run and candidates:
        deleted = dt.vacuum(
            retention_hours=hours,
            dry_run=False,
            enforce_retention_duration=enforce,
            commit_properties=delta.commit_props(None, None, operation="maintenance"),
        )
    res.files_removed = len(deleted)
    res.bytes_reclaimed = sum(sizes.get(f, 0) for f in deleted)
    res.detail = f"retention {hours} h" + (" (nothing deleted: dry run)" if dry_run else "")
    return _finish(dt, res, t0)


def checkpoint(lake: Lake, table: str) -> MaintenanceResult:
    """Write a checkpoint at the current version and drop expired log files (log retention)."""
    dt, res, t0 = _started(lake, table)
    res.operation = "checkpoint"
    dt.create_checkpoint()
    dt.cleanup_metadata()
    res.detail = f"checkpoint at version {dt.version()}"
    return _finish(dt, res, t0)


def maintain(
    lake: Lake,
    m: MaintenanceSettings,
    run_id: str,
    tables: list[str] | None = None,
    *,
    operations: tuple[str, ...] = ("optimize", "vacuum", "checkpoint"),
) -> list[MaintenanceResult]:
    """OPTIMIZE, VACUUM and checkpoint each table; store the results in ops.maintenance."""
    names = maintained_tables(lake, m, tables)
    results: list[MaintenanceResult] = []
    for name in names:
        if "optimize" in operations:
            results.append(optimize(lake, m, name))
        if "vacuum" in operations:
            results.append(vacuum(lake, m, name))
        if "checkpoint" in operations:
            results.append(checkpoint(lake, name))
    record(lake, results, run_id)
    return results


def maintained_tables(lake: Lake, m: MaintenanceSettings, tables: list[str] | None = None) -> list[str]:
    """The tables an operation covers: those named, else `maintenance.tables`, else every table the
    embedded engine writes (Spark's tables are maintained by `lakehouse spark optimize|vacuum`; a
    named one is refused in one line when the operation starts)."""
    named = tables or m.tables
    if named:
        return [n for n in named if n != REPORT_TABLE and lake.exists(n)]
    return [
        n
        for n in discover_tables(lake)
        if n != REPORT_TABLE and ownership.owner(lake, n) in (None, ownership.EMBEDDED)
    ]


def record(lake: Lake, results: list[MaintenanceResult], run_id: str) -> None:
    if results:
        rows = pa.Table.from_pylist([r.as_row(run_id) for r in results], schema=REPORT_SCHEMA)
        delta.append(lake, REPORT_TABLE, rows)
