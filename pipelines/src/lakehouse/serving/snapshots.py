"""`lakehouse snapshot`: Parquet copies of the latest silver and gold tables, with a manifest.

Under `serving.snapshot_dir` (default <state>/snapshots):

    <snapshot id>/<layer>.<table>.parquet    one file per table
    <snapshot id>/manifest.json              table, Delta version, rows, bytes, ETag per file
    manifest.json                            the latest snapshot's manifest

A snapshot is written into a hidden `.<id>.partial/` folder, its files synced, the folder renamed
to `<id>/`, and only then `manifest.json` replaced (os.replace): a reader that reads the manifest,
then the files it names, always sees one complete snapshot; a crash leaves only a partial folder
that the next run removes. A table's ETag is its Delta table id and version, so it changes exactly
when the table does; a table whose version did not change since the previous snapshot is
hard-linked from it instead of being written again. Snapshots beyond `serving.snapshot_keep` are
removed, oldest first.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from lakehouse.core import delta
from lakehouse.core.errors import LakehouseError
from lakehouse.core.settings import Settings
from lakehouse.core.storage import Lake
from lakehouse.serving.lake import lake_tables

MANIFEST = "manifest.json"
_ID = re.compile(r"\d{8}T\d{12}-[0-9a-f]{8}")  # UTC time to the microsecond: ids sort by age
_FILE = re.compile(r"[a-z]+\.[A-Za-z0-9_]+\.parquet")
BATCH_ROWS = 65_536


@dataclass(frozen=True)
class SnapshotResult:
    snapshot_id: str
    path: Path
    tables: list[dict[str, Any]]
    seconds: float

    @property
    def written(self) -> int:
        return sum(1 for t in self.tables if not t["reused"])


def _plain_schema(schema: pa.Schema) -> pa.Schema:
    """View types (delta-rs reads strings as string_view) as their plain kind: every Parquet reader
    knows those."""
    fields = []
    for f in schema:
        t = f.type
        if pa.types.is_string_view(t) or pa.types.is_large_string(t):
            t = pa.string()
        elif pa.types.is_binary_view(t) or pa.types.is_large_binary(t):
            t = pa.binary()
        fields.append(f.with_type(t))
    return pa.schema(fields)


def _write_table(lake: Lake, name: str, path: Path) -> tuple[int, int, str]:
    """Write the table's current version to `path`; returns (version, rows, etag)."""
    dt = lake.table(name)
    version = dt.version()
    etag = f'"{dt.metadata().id}-v{version}"'
    dataset = delta.dataset(lake, dt)
    schema = _plain_schema(dataset.schema)
    rows = 0
    with pq.ParquetWriter(path, schema, compression="zstd") as writer:
        for batch in dataset.to_batches(batch_size=BATCH_ROWS):
            if batch.num_rows:
                writer.write_batch(batch.cast(schema))
                rows += batch.num_rows
    with open(path, "rb") as fh:
        os.fsync(fh.fileno())
    return version, rows, etag


def _read(path: Path) -> dict[str, Any] | None:
    try:
        data: dict[str, Any] = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data


def current(settings: Settings) -> dict[str, Any] | None:
    """The latest snapshot's manifest, None before the first one."""
    return _read(settings.snapshot_path / MANIFEST)


def find(settings: Settings, snapshot_id: str | None, file: str) -> tuple[Path, dict[str, Any]] | None:
    """A snapshot file by name (in the latest snapshot, or in `snapshot_id` while it is kept)."""
    base = settings.snapshot_path
    if snapshot_id is not None and not _ID.fullmatch(snapshot_id):
        return None
    if not _FILE.fullmatch(file):
        return None
    manifest = current(settings) if snapshot_id is None else _read(base / snapshot_id / MANIFEST)
    if manifest is None:
        return None
    for entry in manifest["tables"]:
        if entry["file"] == file:
            path = base / manifest["snapshot_id"] / file
            return (path, entry) if path.exists() else None
    return None


def write(lake: Lake, settings: Settings, tables: list[str] | None = None) -> SnapshotResult:
    """Snapshot `tables` (default: every table of serving.snapshot_layers) atomically."""
    start = time.perf_counter()
    base = settings.snapshot_path
    base.mkdir(parents=True, exist_ok=True)
    names = tables if tables is not None else lake_tables(lake, list(settings.serving.snapshot_layers))
    for name in names:
        if not lake.exists(name):
            raise LakehouseError(f"snapshot: no Delta table {name} in {lake.root}")
    if not names:
        raise LakehouseError(
            f"snapshot: no table in {', '.join(settings.serving.snapshot_layers)} of {lake.root}: run the pipeline first"
        )
    with open(base / ".lock", "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise LakehouseError(f"another snapshot is being written into {base}; wait for it") from None
        for partial in base.glob(".*.partial"):
            shutil.rmtree(partial, ignore_errors=True)
        previous = current(settings)
        before = {t["table"]: t for t in previous["tables"]} if previous else {}
        now = datetime.now(UTC)
        snapshot_id = f"{now:%Y%m%dT%H%M%S%f}-{uuid.uuid4().hex[:8]}"
        partial = base / f".{snapshot_id}.partial"
        partial.mkdir()
        entries = []
        for name in names:
            file = f"{name}.parquet"
            old = before.get(name)
            dt = lake.table(name)
            if old and old["etag"] == f'"{dt.metadata().id}-v{dt.version()}"':
                os.link(base / previous["snapshot_id"] / file, partial / file)  # type: ignore[index]
                entry = {**old, "reused": True}
            else:
                version, rows, etag = _write_table(lake, name, partial / file)
                entry = {"table": name, "file": file, "delta_version": version, "rows": rows, "etag": etag}
                entry["reused"] = False
            entry["bytes"] = (partial / file).stat().st_size
            entries.append(entry)
        manifest = {
            "snapshot_id": snapshot_id,
            "created_at": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
            "lake": lake.root,
            "tables": entries,
        }
        (partial / MANIFEST).write_text(json.dumps(manifest, indent=1))
        final = base / snapshot_id
        os.rename(partial, final)
        tmp = base / f".{MANIFEST}.tmp"
        tmp.write_text(json.dumps(manifest, indent=1))
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, base / MANIFEST)
        _prune(base, settings.serving.snapshot_keep)
    return SnapshotResult(snapshot_id, final, entries, time.perf_counter() - start)


def _prune(base: Path, keep: int) -> None:
    ids = sorted(p.name for p in base.iterdir() if p.is_dir() and _ID.fullmatch(p.name))
    for old in ids[:-keep]:
        shutil.rmtree(base / old, ignore_errors=True)
