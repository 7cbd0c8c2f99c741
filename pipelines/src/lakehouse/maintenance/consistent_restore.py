"""Restore a Delta table to an earlier version without breaking what reads it.

A table's app transactions are its watermarks: how far it has read each of its sources (a
bronze table: landing files, Kafka offsets, source-table extracts; a silver table: the version of
the bronze table it absorbed). Delta's RESTORE brings back the files of the old version but not
those watermarks, so a restored table would never read again what it had read after that version.
Here the restore commit itself carries every watermark as it stood at the restored version.

A table whose watermark on the restored table points past the restored version (it holds rows the
restore took back) is downstream: it is named, or with `cascade` restored too, to its newest
version whose watermark lies at or before the restored one; its own downstream tables follow.
Readers of a restored table skip the versions the restore undid (`delta.undone_versions`), so a
run after a restore reaches the result of a run that never saw the undone versions.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime

import pyarrow.fs as pafs
import pyarrow.parquet as pq
from deltalake import DeltaTable, Transaction

from lakehouse.core import delta
from lakehouse.core.errors import LakehouseError
from lakehouse.core.storage import Lake
from lakehouse.maintenance.ops import REPORT_TABLE, MaintenanceResult, _finish, _started, discover_tables

SOURCE_MARK = "<-"


@dataclass
class Step:
    """One table to restore: to which version, and which watermarks that rewinds."""

    table: str
    version: int
    watermarks: dict[str, int] = field(default_factory=dict)
    reason: str = ""


@dataclass
class Stale:
    """A downstream table that still holds rows of versions a restore took back."""

    table: str
    source: str
    watermark: int
    restored_to: int

    def line(self) -> str:
        return (
            f"{self.table} has read {self.source} up to version {self.watermark}, past the restored "
            f"version {self.restored_to}: restore it too (or rerun with --cascade)"
        )


def _log_dir(lake: Lake, table: str) -> tuple[pafs.FileSystem, str]:
    fs, root = lake.filesystem()
    uri = lake.table_uri(table)
    return fs, f"{root}/{uri.removeprefix(lake.root).lstrip('/')}/_delta_log"


def app_ids(lake: Lake, table: str) -> set[str]:
    """Every app id that has recorded a watermark in `table` (commit files and checkpoints)."""
    fs, log = _log_dir(lake, table)
    found: set[str] = set()
    for info in fs.get_file_info(pafs.FileSelector(log, allow_not_found=True)):
        if info.type != pafs.FileType.File:
            continue
        if info.base_name.endswith(".json") and info.base_name[:20].isdigit():
            with fs.open_input_stream(info.path) as stream:
                for line in stream.read().decode("utf-8").splitlines():
                    if '"txn"' in line:
                        txn = json.loads(line).get("txn")
                        if txn:
                            found.add(str(txn["appId"]))
        elif ".checkpoint" in info.base_name and info.base_name.endswith(".parquet"):
            with fs.open_input_file(info.path) as handle:
                txns = pq.read_table(handle, columns=["txn"]).column("txn").to_pylist()
            found.update(str(t["appId"]) for t in txns if t)
    return found


def _unset(app: str) -> int:
    """The watermark of an app that had recorded none yet at the restored version: Kafka's is the
    next offset to read (0: from the start), the others' the last version or batch read (-1)."""
    return 0 if "<-kafka/" in app else -1


def _watermarks_at(lake: Lake, dt: DeltaTable, apps: set[str], version: int) -> dict[str, int]:
    then = _load(lake, dt, version)
    out = {}
    for app in sorted(apps):
        value = then.transaction_version(app)
        out[app] = _unset(app) if value is None else int(value)
    return out


def _load(lake: Lake, dt: DeltaTable, version: int) -> DeltaTable:
    return DeltaTable(dt.table_uri, version=version, storage_options=lake.storage_options)


def version_at(lake: Lake, table: str, when: datetime) -> int:
    """The version current at `when` (no offset: UTC); a time before the first commit still in
    the log is refused."""
    when = when if when.tzinfo else when.replace(tzinfo=UTC)
    dt = _open(lake, table)
    history = sorted(dt.history(), key=lambda h: int(h["version"]))
    at_ms = when.timestamp() * 1000
    older = [h for h in history if int(h.get("timestamp", 0)) <= at_ms]
    if not older:
        first = history[0]
        first_at = datetime.fromtimestamp(int(first.get("timestamp", 0)) / 1000, UTC)
        raise LakehouseError(
            f"{table} did not exist at {when.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC: its first commit still in "
            f"the log is version {first['version']} at {first_at:%Y-%m-%d %H:%M:%S} UTC "
            f"(`lakehouse maintain history {table}`)"
        )
    return int(older[-1]["version"])


def _open(lake: Lake, table: str) -> DeltaTable:
    dt = delta.open_table(lake, table)
    if dt is None:
        raise LakehouseError(f"table {table} does not exist in {lake.root}")
    return dt


def _downstream(lake: Lake, source: str, restored_to: int) -> list[tuple[str, str, int]]:
    """(table, app id, watermark) of every table that has read `source` past `restored_to`."""
    out = []
    for name in discover_tables(lake):
        if name in (source, REPORT_TABLE):
            continue
        dt = _open(lake, name)
        for app in sorted(a for a in app_ids(lake, name) if a.endswith(SOURCE_MARK + source)):
            mark = dt.transaction_version(app)
            if mark is not None and mark > restored_to:
                out.append((name, app, int(mark)))
    return out


def _newest_version_before(lake: Lake, table: str, app: str, limit: int) -> int:
    """The newest version of `table` whose watermark `app` is at most `limit` (or unset)."""
    dt = _open(lake, table)
    for version in range(dt.version(), -1, -1):
        try:
            mark = _load(lake, dt, version).transaction_version(app)
        except Exception:  # a version whose log was cleaned up: nothing older can be loaded
            break
        if mark is None or mark <= limit:
            return version
    raise LakehouseError(
        f"{table} has no version left that had read {app.split(SOURCE_MARK)[-1]} only up to version "
        f"{limit}; rebuild it instead of restoring it"
    )


def plan(lake: Lake, table: str, version: int, *, cascade: bool) -> tuple[list[Step], list[Stale]]:
    """The restores to commit (the named table first, then its downstream tables when `cascade`)
    and the downstream tables left stale (when not)."""
    dt = _open(lake, table)
    if not 0 <= version <= dt.version():
        raise LakehouseError(f"{table} has versions 0..{dt.version()}; cannot restore to {version}")
    steps = [Step(table, version, _watermarks_at(lake, dt, app_ids(lake, table), version))]
    stale: list[Stale] = []
    queue = [(table, version)]
    seen = {table}
    while queue:
        source, restored_to = queue.pop(0)
        for name, app, mark in _downstream(lake, source, restored_to):
            if not cascade:
                stale.append(Stale(name, source, mark, restored_to))
                continue
            if name in seen:
                continue
            seen.add(name)
            target = _newest_version_before(lake, name, app, restored_to)
            ddt = _open(lake, name)
            step = Step(
                name,
                target,
                _watermarks_at(lake, ddt, app_ids(lake, name), target),
                f"had read {source} up to version {mark}, past the restored version {restored_to}",
            )
            steps.append(step)
            queue.append((name, target))
    return steps, stale


def restore_one(lake: Lake, step: Step) -> MaintenanceResult:
    """One restore commit: the files of `step.version` and its watermarks, together."""
    dt, res, t0 = _started(lake, step.table)
    res.operation = "restore"
    current = {app: dt.transaction_version(app) for app in step.watermarks}
    rewound = {app: v for app, v in step.watermarks.items() if current[app] != v}
    props = delta.commit_props(None, None, operation="restore", restored_to=str(step.version))
    props.app_transactions = [Transaction(app, v) for app, v in sorted(rewound.items())] or None
    metrics = dt.restore(step.version, commit_properties=props)
    res.metrics = dict(metrics)
    res.files_removed = int(metrics.get("num_removed_file", metrics.get("numRemovedFile", 0)))
    res.files_added = int(metrics.get("num_restored_file", metrics.get("numRestoredFile", 0)))
    notes = [f"restored to version {step.version}"]
    if rewound:
        notes.append("watermarks rewound: " + ", ".join(f"{a} {current[a]}->{v}" for a, v in rewound.items()))
    if step.reason:
        notes.append(step.reason)
    res.detail = "; ".join(notes)
    return _finish(dt, res, t0)


def restore(
    lake: Lake, table: str, target: int | datetime, *, cascade: bool = False
) -> tuple[list[MaintenanceResult], list[Stale]]:
    """Restore `table` to a version (or the version current at a time) with its watermarks; with
    `cascade` also every downstream table that had read past it. Downstream tables are restored
    before the named one, so a run stopped halfway leaves only tables that read too little, which
    the next run completes; all steps are planned (and refused) before the first commit."""
    version = target if isinstance(target, int) else version_at(lake, table, target)
    steps, stale = plan(lake, table, version, cascade=cascade)
    results = [restore_one(lake, step) for step in reversed(steps)]
    results.reverse()
    return results, stale
