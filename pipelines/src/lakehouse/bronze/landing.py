"""Landing files -> bronze.events, each file exactly once (Auto Loader semantics).

A file counts as ingested when its rows are in bronze.events: the file list and the rows are
one Delta commit, so a run killed at any point and rerun neither loses nor repeats a file.
Concurrent runs are fenced: a run reads the ingested files and its app transaction from one
snapshot and commits against that snapshot, so delta-rs fails the commit of a run that another
run's commit (same app id) overtook; the loser writes nothing and a rerun takes up the rest.
A run that finds bronze.events absent creates it empty first (a commit of its own, which a
run creating it at the same moment takes as done), so even its first commit is fenced.

Which files: NDJSON (`.jsonl`, `.ndjson`, `.json`), plain or compressed (`.gz`, `.zst`, `.bz2`,
read through Arrow's codecs). Nothing else is dropped in silence: a file with another extension,
another compression or a body that does not decompress is *skipped* with its reason, reported
by every run (and by `lakehouse bronze --files`) until it is removed or fixed. Names starting
with `.` or `_` are files still being written and markers (`_SUCCESS`); they are counted, not read.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import PurePosixPath

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs
from deltalake import DeltaTable

from lakehouse.core import delta, ownership
from lakehouse.core.reconcile import Reconciliation
from lakehouse.core.storage import Lake

TABLE = "bronze.events"
APP_ID = "bronze.events<-landing/events"
SUFFIXES = (".jsonl", ".json", ".ndjson")
# compressed landing files: extension -> Arrow codec
CODECS = {".gz": "gzip", ".zst": "zstd", ".bz2": "bz2"}
ARCHIVES = (".zip", ".tar", ".tgz", ".7z", ".rar")

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
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (file, why it was not read)
    ignored: int = 0  # in-progress files and markers (names starting with . or _)


@dataclass(frozen=True)
class LandingFile:
    """One file under landing/events and what bronze does with it."""

    name: str  # relative to landing/events
    size: int
    codec: str | None  # Arrow codec of a compressed file
    skip: str | None  # why it is not read; None = readable


def classify(name: str, size: int = 0) -> LandingFile:
    """Whether bronze reads a landing file (and how), or why it skips it."""
    lower = name.lower()
    codec = None
    body = lower
    for ext, candidate in CODECS.items():
        if lower.endswith(ext):
            codec, body = candidate, lower.removesuffix(ext)
            break
    if body.endswith(SUFFIXES):
        return LandingFile(name, size, codec, None)
    if lower.endswith(ARCHIVES) or lower.endswith(tuple(f".tar{e}" for e in CODECS)):
        why = "an archive: unpack it into landing/events"
    elif codec is not None:
        why = f"compressed {PurePosixPath(body).suffix or 'file'} is not NDJSON"
    elif PurePosixPath(lower).suffix in (".lz4", ".xz", ".br", ".snappy", ".zstd", ".gzip"):
        why = f"compression {PurePosixPath(lower).suffix} is not read (use .gz, .zst or .bz2)"
    else:
        why = f"extension {PurePosixPath(lower).suffix or '(none)'} is not NDJSON"
    return LandingFile(
        name, size, None, why + " (landing/events takes .jsonl/.ndjson/.json, optionally .gz/.zst/.bz2)"
    )


def _hidden(name: str) -> bool:
    return any(part.startswith((".", "_")) for part in name.split("/"))


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


def ingested_files(lake: Lake, dt: DeltaTable | None = None) -> set[str]:
    """Files whose rows are already in bronze.events (in `dt`, the table as a run read it)."""
    dt = dt if dt is not None else delta.open_table(lake, TABLE)
    if dt is None:
        return set()
    ds = delta.dataset(lake, dt)
    col = ds.to_table(columns=["source_file"], filter=pc.field("source_system") == "landing")["source_file"]
    return {str(v) for v in pc.unique(col).to_pylist() if v is not None}


@dataclass
class Listing:
    """The landing folder as bronze sees it."""

    todo: list[tuple[pafs.FileInfo, LandingFile]] = field(default_factory=list)
    ingested: list[LandingFile] = field(default_factory=list)
    skipped: list[LandingFile] = field(default_factory=list)
    ignored: int = 0


def list_landing(lake: Lake, fs: pafs.FileSystem, base: str, snapshot: DeltaTable | None = None) -> Listing:
    """Every file under landing/events: to ingest, already ingested, skipped (with why), ignored.
    `snapshot`: bronze.events as the run read it (default: its newest version)."""
    infos = fs.get_file_info(pafs.FileSelector(base, recursive=True, allow_not_found=True))
    done = ingested_files(lake, snapshot)
    out = Listing()
    for info in sorted((i for i in infos if i.type == pafs.FileType.File), key=lambda i: i.path):
        name = _relative(info.path, base)
        if _hidden(name):
            out.ignored += 1
            continue
        f = classify(name, int(info.size or 0))
        if name in done:
            out.ingested.append(f)
        elif f.skip:
            out.skipped.append(f)
        else:
            out.todo.append((info, f))
    return out


def rows_per_file(lake: Lake, dt: DeltaTable | None = None) -> dict[str, int]:
    """Rows bronze.events holds per landing file (in `dt`, the table as a run read it)."""
    dt = dt if dt is not None else delta.open_table(lake, TABLE)
    if dt is None:
        return {}
    col = delta.dataset(lake, dt).to_table(
        columns=["source_file"], filter=pc.field("source_system") == "landing"
    )["source_file"]
    counts = pc.value_counts(col).to_pylist()
    return {str(c["values"]): int(c["counts"]) for c in counts if c["values"] is not None}


def _read(fs: pafs.FileSystem, path: str, codec: str | None) -> bytes:
    with fs.open_input_stream(path, compression=codec) as stream:
        return bytes(stream.read())


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
    ownership.check(lake, TABLE, ownership.EMBEDDED)
    fs, base = lake.landing("events")
    # one snapshot for what is done, the watermark and every commit: a commit made against a
    # newer version than the listing was read from would not see a competing run's files
    snapshot = delta.open_table(lake, TABLE)
    listing = list_landing(lake, fs, base, snapshot)
    if snapshot is None and listing.todo:
        # a first commit that also creates the table has nothing to be fenced against (two runs
        # could both create it and both add their rows): the table is created empty in a commit
        # of its own, whichever run gets there first, and the listing read again from it
        snapshot = delta.create_empty(lake, TABLE, SCHEMA, configuration=delta.CDF, source="landing/events")
        listing = list_landing(lake, fs, base, snapshot)
    todo = listing.todo
    result = LandingResult(
        already_ingested=len(listing.ingested),
        skipped=[(f.name, f.skip or "") for f in listing.skipped],
        ignored=listing.ignored,
    )
    rec = Reconciliation(run_id, "bronze", "landing/events", TABLE)
    if on_plan:
        on_plan(len(todo), sum(int(i.size or 0) for i, _ in todo))
    pending: list[pa.Table] = []
    names: list[str] = []
    rows = 0
    version = (snapshot.transaction_version(APP_ID) if snapshot is not None else None) or 0
    batch_id = new_batch_id()

    def flush() -> None:
        nonlocal pending, names, rows, version, batch_id
        if not pending:
            return
        version += 1
        # against the snapshot, delta-rs rebases past other commits only when none of them
        # carries this app id (and moves the snapshot on to this commit)
        delta.append(
            lake,
            TABLE,
            pa.concat_tables(pending),
            app_id=APP_ID,
            txn_version=version,
            configuration=delta.CDF,
            snapshot=snapshot,
            files=names,
            batch_id=batch_id,
            run_id=run_id,
        )
        result.commits += 1
        result.files.extend(names)
        rec.inserted += rows
        pending, names, rows, batch_id = [], [], 0, new_batch_id()

    for info, landed in todo:
        name = landed.name
        try:
            lines = split_lines(_read(fs, info.path, landed.codec))
        except (OSError, pa.ArrowInvalid) as exc:
            # a body that does not decompress: reported, and read again once it is replaced
            result.skipped.append((name, f"cannot read {landed.codec or 'file'}: {exc}"))
            continue
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
    notes = [
        f"{len(result.files)} files in {result.commits} commits",
        f"{result.already_ingested} already ingested",
    ]
    if result.skipped:
        notes.append(f"{len(result.skipped)} skipped (not readable: `lakehouse bronze --files`)")
    if result.ignored:
        notes.append(f"{result.ignored} in-progress or marker files ignored")
    rec.detail = "; ".join(notes)
    return result, rec.finish()


def new_batch_id() -> str:
    """A fresh batch id: L<UTC time>-<random>."""
    return "L" + datetime.now(UTC).strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:8]
