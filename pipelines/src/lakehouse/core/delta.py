"""Thin helpers over delta-rs: atomic appends with app transactions, change reads, versions."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import unquote, urlparse

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads
import pyarrow.fs as pafs
from deltalake import (
    ColumnProperties,
    CommitProperties,
    DeltaTable,
    Transaction,
    WriterProperties,
    write_deltalake,
)
from deltalake.exceptions import CommitFailedError, TableNotFoundError

from lakehouse.core.storage import LAYERS, Lake

CDF = {"delta.enableChangeDataFeed": "true"}
# operationMetrics keys with the rows a commit added: delta-rs, then delta-spark
ROW_METRICS = ("num_added_rows", "num_output_rows", "numOutputRows")


def commit_props(app_id: str | None, version: int | None, **metadata: Any) -> CommitProperties:
    """Commit properties carrying an app transaction (exactly-once marker) and audit metadata."""
    txns = [Transaction(app_id, int(version))] if app_id is not None and version is not None else None
    return CommitProperties(app_transactions=txns, custom_metadata=_metadata(metadata), max_commit_retries=20)


def _metadata(metadata: dict[str, Any]) -> dict[str, str] | None:
    meta = {f"lakehouse.{k}": v if isinstance(v, str) else json.dumps(v) for k, v in metadata.items()}
    return meta or None


def append(
    lake: Lake,
    table: str,
    data: pa.Table | pa.RecordBatchReader,
    *,
    app_id: str | None = None,
    txn_version: int | None = None,
    partition_by: list[str] | None = None,
    configuration: dict[str, str] | None = None,
    evolve: bool = False,
    distinct_columns: tuple[str, ...] = (),
    snapshot: DeltaTable | None = None,
    **metadata: Any,
) -> None:
    """Append `data` to `table` in one Delta commit, recording (app_id, txn_version) in it.

    `distinct_columns`: columns whose values are (nearly) all different, such as ids and hashes;
    they are written without a dictionary (Parquet writers build one per column and drop it when
    it does not pay, which costs more than the rest of the encoding for such columns).
    `snapshot`: the table as the caller read it; the commit is made against it, so a competing
    commit of the same app id since then fails this one (ConcurrentTransaction) instead of
    landing twice."""
    props = WriterProperties(
        column_properties={c: ColumnProperties(dictionary_enabled=False) for c in distinct_columns}
    )
    write_deltalake(
        snapshot if snapshot is not None else lake.table_uri(table),
        data,
        mode="append",
        partition_by=partition_by,
        configuration=configuration if not lake.exists(table) else None,
        schema_mode="merge" if evolve else None,
        storage_options=lake.options(table),
        writer_properties=props,
        commit_properties=commit_props(app_id, txn_version, **metadata),
    )


def overwrite(lake: Lake, table: str, data: pa.Table, **metadata: Any) -> None:
    write_deltalake(
        lake.table_uri(table),
        data,
        mode="overwrite",
        schema_mode="overwrite",
        storage_options=lake.options(table),
        commit_properties=commit_props(None, None, **metadata),
    )


def create_empty(
    lake: Lake,
    table: str,
    schema: pa.Schema,
    *,
    partition_by: list[str] | None = None,
    configuration: dict[str, str] | None = None,
    **metadata: Any,
) -> DeltaTable:
    """`table`, created empty (schema, partitioning, properties) in a commit of its own when it
    does not exist yet; its newest version either way.

    Writers that fence their appends against a snapshot create the table this way first: a
    commit that creates a table has no snapshot to be checked against, so two runs that both
    found the table absent could both append their rows. The creating commit is tried once,
    never rebased: of two runs creating at once one writes version 0 and the other's commit
    fails, which means the table exists now, which is all it wanted."""
    dt = open_table(lake, table)
    if dt is not None:
        return dt
    # CommitFailedError: another run created it first, which the look below confirms
    with contextlib.suppress(CommitFailedError):
        DeltaTable.create(
            lake.table_uri(table),
            schema=schema,
            mode="ignore",
            partition_by=partition_by,
            configuration=configuration,
            storage_options=lake.options(table),
            # retried, delta-rs would put this creation after the other run's as one more
            # version that changes the metadata, failing every append made against version 0
            commit_properties=CommitProperties(
                custom_metadata=_metadata({"created_empty": True, **metadata}), max_commit_retries=0
            ),
        )
    created = open_table(lake, table)
    if created is None:
        raise TableNotFoundError(f"{table} could not be created at {lake.table_uri(table)}")
    return created


def open_table(lake: Lake, table: str) -> DeltaTable | None:
    try:
        return lake.table(table)
    except TableNotFoundError:
        return None


def dataset(lake: Lake, dt: DeltaTable) -> pads.Dataset:
    """The table's current files as an Arrow dataset, read through pyarrow's own filesystem.

    Without a filesystem, delta-rs reads through a Python file handler: Arrow's I/O threads then
    release its buffers under the GIL, and one still in flight when the interpreter finalizes
    aborts the process ("terminate called without an active exception") after a run that worked.
    """
    uri = dt.table_uri.rstrip("/")
    fs: pafs.FileSystem
    if uri.startswith("s3://"):
        layer = next(
            (name for name in LAYERS if uri.startswith(lake.layer_uri(name).rstrip("/") + "/")), None
        )
        if layer is None:
            return dt.to_pyarrow_dataset()
        fs, path = lake.filesystem(layer)[0], uri.removeprefix("s3://")
    else:
        fs, path = pafs.LocalFileSystem(), unquote(urlparse(uri).path) if uri.startswith("file://") else uri
    return dt.to_pyarrow_dataset(filesystem=pafs.SubTreeFileSystem(path, fs))


def txn_version(lake: Lake, table: str, app_id: str) -> int | None:
    """The last version an app recorded in `table`, None when the table or the app is new."""
    dt = open_table(lake, table)
    return None if dt is None else dt.transaction_version(app_id)


def rows_per_version(dt: DeltaTable, after: int) -> list[tuple[int, int]]:
    """(version, rows added) for data-changing commits newer than `after`, oldest first."""
    out = []
    for entry in dt.history():
        version = entry["version"]
        if version <= after:
            continue
        metrics = entry.get("operationMetrics", {}) or {}
        # delta-rs and delta-spark name the metric differently: a table either engine wrote
        # must be chunked by its real row counts
        rows = int(next((metrics[k] for k in ROW_METRICS if metrics.get(k) not in (None, "")), 0) or 0)
        out.append((version, rows))
    return sorted(out)


def undone_versions(dt: DeltaTable) -> set[int]:
    """Versions whose rows a RESTORE took back, plus restores that only removed files: a reader
    following the table's changes skips them, so rows that were restored away never travel on.

    The live line of versions runs back from the newest: a RESTORE to version v continues at v,
    any other commit at the one before it. Every version of the history off that line is undone."""
    history = {int(h["version"]): h for h in dt.history()}
    live: set[int] = set()
    at = dt.version()
    while at >= 0 and at not in live:
        live.add(at)
        entry = history.get(at, {})
        target = (entry.get("operationParameters") or {}).get("version")
        at = int(target) if entry.get("operation") == "RESTORE" and target is not None else at - 1
    undone = set(history) - live
    for version, entry in history.items():
        metrics = entry.get("operationMetrics") or {}
        if entry.get("operation") == "RESTORE" and not int(metrics.get("numRestoredFile", 0) or 0):
            undone.add(version)
    return undone


def live_ranges(dt: DeltaTable, first: int, last: int) -> list[tuple[int, int]]:
    """The contiguous (first, last) ranges of versions first..last that are not undone."""
    undone = undone_versions(dt) if first <= last else set()
    ranges: list[tuple[int, int]] = []
    for version in range(first, last + 1):
        if version in undone:
            continue
        if ranges and ranges[-1][1] == version - 1:
            ranges[-1] = (ranges[-1][0], version)
        else:
            ranges.append((version, version))
    return ranges


def version_chunks(dt: DeltaTable, after: int, max_rows: int) -> Iterator[tuple[int, int, int]]:
    """Group newer versions into (first, last, rows) ranges of about `max_rows` rows each; a
    range never spans a version a RESTORE undid (`undone_versions`), which no range holds."""
    start, rows = None, 0
    last = after
    undone = undone_versions(dt)
    for version, added in rows_per_version(dt, after):
        if version in undone:
            if start is not None:
                yield start, last, rows
            start, rows = None, 0
            continue
        if start is None:
            start = version
        rows += added
        last = version
        if rows >= max_rows:
            yield start, last, rows
            start, rows = None, 0
    if start is not None:
        yield start, last, rows


def changes(dt: DeltaTable, first: int, last: int) -> pa.RecordBatchReader:
    """Rows inserted by versions first..last (Change Data Feed), with _commit_version."""
    return pa.RecordBatchReader.from_stream(dt.load_cdf(starting_version=first, ending_version=last))


def appended_files(lake: Lake, table: str, first: int, last: int) -> list[tuple[str, int]] | None:
    """(data file URI, version) for every file that versions first..last added, read from the
    commit log, when those commits only appended rows to an unpartitioned table (what bronze
    does). None when a commit did anything else (removed or changed rows, wrote change files or
    deletion vectors) or its log entry is gone: then only the Change Data Feed can say which rows
    were inserted. Compaction commits (dataChange false) move rows without adding any."""
    fs, path = lake.table_path(table)
    uri = lake.table_uri(table)
    log = f"{path}/_delta_log"
    files: list[tuple[str, int]] = []
    for version in range(first, last + 1):
        try:
            with fs.open_input_stream(f"{log}/{version:020d}.json") as stream:
                lines = stream.read().decode("utf-8").splitlines()
        except (FileNotFoundError, OSError):
            return None
        for line in filter(None, lines):
            action = json.loads(line)
            if "cdc" in action or action.get("remove", {}).get("dataChange"):
                return None
            add = action.get("add")
            if not add or not add.get("dataChange", True):
                continue
            if add.get("partitionValues") or add.get("deletionVector"):
                return None
            path = add["path"]
            files.append((path if "://" in path else f"{uri}/{unquote(path)}", version))
    return files


def _plain(field: pa.Field) -> pa.Field:
    if pa.types.is_string_view(field.type):
        return field.with_type(pa.string())
    if pa.types.is_binary_view(field.type):
        return field.with_type(pa.binary())
    return field


def inserted_rows(dt: DeltaTable, first: int, last: int) -> pa.Table:
    """Rows inserted by versions first..last as one table (small tables only), view types made
    plain; versions a RESTORE undid are left out."""
    ranges = live_ranges(dt, first, last)
    if len(ranges) != 1 or ranges[0] != (first, last):
        parts = [inserted_rows(dt, a, b) for a, b in ranges]
        if not parts:
            raise ValueError(f"versions {first}..{last} were all restored away")
        return pa.concat_tables(parts, promote_options="default")
    table = changes(dt, first, last).read_all()
    table = table.cast(pa.schema([_plain(f) for f in table.schema]))
    table = table.filter(pc.equal(table["_change_type"], "insert")).drop_columns(
        ["_change_type", "_commit_timestamp"]
    )
    idx = table.schema.get_field_index("_commit_version")
    return table.set_column(idx, "_commit_version", table["_commit_version"].cast(pa.int64()))


def pending_versions(lake: Lake, source: str, target: str, app_id: str) -> tuple[DeltaTable, int, int] | str:
    """The versions of `source` that `target` has not absorbed yet (by the app transaction
    `app_id`): (source table, first, last), or why there is nothing to do."""
    src = open_table(lake, source)
    if src is None:
        return f"{source} does not exist yet"
    done = txn_version(lake, target, app_id)
    last = src.version()
    if done is not None and done >= last:
        return "up to date"
    first = (-1 if done is None else done) + 1
    if not live_ranges(src, first, last):
        return f"up to date (versions after {done} of {source} were restored away)"
    return src, first, last


def unabsorbed(lake: Lake, source: str, target: str, app_id: str) -> tuple[DeltaTable, pa.Table, int] | str:
    """Rows of `source` that `target` has not absorbed yet: (source table, inserted rows, source
    version to record), or why there is nothing to do (see `pending_versions`)."""
    pending = pending_versions(lake, source, target, app_id)
    if isinstance(pending, str):
        return pending
    src, first, last = pending
    return src, inserted_rows(src, first, last), last
