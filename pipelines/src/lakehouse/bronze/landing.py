"""Landing files -> bronze.events, each file exactly once (Auto Loader semantics).

A file counts as ingested when its rows are in bronze.events: the file list and the rows are
one Delta commit, so a run killed at any point and rerun neither loses nor repeats a file.
Concurrent runs are fenced by the commit's app transaction (same app id, expected version).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs

from lakehouse import delta
from lakehouse.reconcile import Reconciliation
from lakehouse.storage import Lake

TABLE = "bronze.events"
APP_ID = "bronze.events<-landing/events"
SUFFIXES = (".jsonl", ".json", ".ndjson")

SCHEMA = pa.schema(
    [
        ("value", pa.string()),  # the record as text; NULL only when it is not valid UTF-8
        ("raw_bytes", pa.binary()),  # the exact bytes, kept only when they are not valid UTF-8
        ("source_system", pa.string()),  # landing | kafka
        ("source_file", pa.string()),
        ("source_line", pa.int64()),
        ("topic", pa.string()),
        ("kafka_partition", pa.int32()),
        ("kafka_offset", pa.int64()),
        ("kafka_key", pa.string()),
        ("kafka_timestamp", pa.timestamp("us", tz="UTC")),
        ("ingestion_time", pa.timestamp("us", tz="UTC")),
        ("batch_id", pa.string()),
        ("ordinal", pa.int64()),  # position within the batch: ingestion order
    ]
)


@dataclass
class LandingResult:
    files: list[str] = field(default_factory=list)
    rows: int = 0
    commits: int = 0
    already_ingested: int = 0


def split_lines(data: bytes) -> list[bytes]:
    """NDJSON lines; a trailing newline does not make an extra (empty) record."""
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    return [ln[:-1] if ln.endswith(b"\r") else ln for ln in lines]


def decode(lines: list[bytes]) -> tuple[pa.Array, pa.Array]:
    """(value, raw_bytes): text where the bytes are UTF-8, raw bytes kept where they are not."""
    raw = pa.array(lines, pa.binary())
    try:
        return raw.cast(pa.string()), pa.nulls(len(lines), pa.binary())
    except pa.ArrowInvalid:
        values: list[str | None] = []
        bad: list[bytes | None] = []
        for line in lines:
            try:
                values.append(line.decode("utf-8"))
                bad.append(None)
            except UnicodeDecodeError:
                values.append(None)
                bad.append(line)
        return pa.array(values, pa.string()), pa.array(bad, pa.binary())


def file_batch(name: str, lines: list[bytes], batch_id: str, first_ordinal: int, at: datetime) -> pa.Table:
    n = len(lines)
    value, raw = decode(lines)
    return pa.table(
        {
            "value": value,
            "raw_bytes": raw,
            "source_system": pa.repeat("landing", n).cast(pa.string()),
            "source_file": pa.repeat(name, n).cast(pa.string()),
            "source_line": pa.array(range(1, n + 1), pa.int64()),
            "topic": pa.nulls(n, pa.string()),
            "kafka_partition": pa.nulls(n, pa.int32()),
            "kafka_offset": pa.nulls(n, pa.int64()),
            "kafka_key": pa.nulls(n, pa.string()),
            "kafka_timestamp": pa.nulls(n, pa.timestamp("us", tz="UTC")),
            "ingestion_time": pa.repeat(pa.scalar(at, pa.timestamp("us", tz="UTC")), n),
            "batch_id": pa.repeat(batch_id, n).cast(pa.string()),
            "ordinal": pa.array(range(first_ordinal, first_ordinal + n), pa.int64()),
        },
        schema=SCHEMA,
    )


def ingested_files(lake: Lake) -> set[str]:
    """Files whose rows are already in bronze.events."""
    dt = delta.open_table(lake, TABLE)
    if dt is None:
        return set()
    ds = dt.to_pyarrow_dataset()
    col = ds.to_table(columns=["source_file"], filter=pc.field("source_system") == "landing")["source_file"]
    return {str(v) for v in pc.unique(col).to_pylist() if v is not None}


def pending_files(lake: Lake, fs: pafs.FileSystem, base: str) -> tuple[list[pafs.FileInfo], int]:
    infos = fs.get_file_info(pafs.FileSelector(base, recursive=True, allow_not_found=True))
    files = sorted(
        (i for i in infos if i.type == pafs.FileType.File and i.path.endswith(SUFFIXES)),
        key=lambda i: i.path,
    )
    done = ingested_files(lake)
    todo = [i for i in files if _relative(i.path, base) not in done]
    return todo, len(files) - len(todo)


def _relative(path: str, base: str) -> str:
    return path[len(base) :].lstrip("/")


def ingest(
    lake: Lake,
    run_id: str,
    max_rows_per_commit: int,
    on_rows: Callable[[int], None] | None = None,
    on_plan: Callable[[int, int], None] | None = None,
) -> tuple[LandingResult, Reconciliation]:
    """Ingest every landing file not yet in bronze.events, in commits of bounded size."""
    fs, base = lake.landing("events")
    todo, skipped = pending_files(lake, fs, base)
    result = LandingResult(already_ingested=skipped)
    rec = Reconciliation(run_id, "bronze", "landing/events", TABLE)
    if on_plan:
        on_plan(len(todo), sum(i.size for i in todo))
    pending: list[pa.Table] = []
    names: list[str] = []
    rows = 0
    version = delta.txn_version(lake, TABLE, APP_ID) or 0
    batch_id = _batch_id()

    def flush() -> None:
        nonlocal pending, names, rows, version, batch_id
        if not pending:
            return
        version += 1
        delta.append(
            lake,
            TABLE,
            pa.concat_tables(pending),
            app_id=APP_ID,
            txn_version=version,
            configuration=delta.CDF,
            files=names,
            batch_id=batch_id,
            run_id=run_id,
        )
        result.commits += 1
        result.files.extend(names)
        rec.inserted += rows
        pending, names, rows, batch_id = [], [], 0, _batch_id()

    for info in todo:
        with fs.open_input_stream(info.path) as stream:
            lines = split_lines(stream.read())
        name = _relative(info.path, base)
        at = datetime.now(UTC)
        pending.append(file_batch(name, lines, batch_id, rows, at))
        names.append(name)
        rows += len(lines)
        rec.rows_in += len(lines)
        result.rows += len(lines)
        if on_rows:
            on_rows(len(lines))
        if rows >= max_rows_per_commit:
            flush()
    flush()
    rec.detail = f"{len(result.files)} files in {result.commits} commits; {skipped} already ingested"
    return result, rec.finish()


def _batch_id() -> str:
    return "L" + datetime.now(UTC).strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:8]
