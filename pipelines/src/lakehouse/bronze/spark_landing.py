"""Landing files -> bronze.events on Apache Spark with delta-spark: the same table as
`bronze.landing` writes, each file exactly once.

Same rules as the embedded writer, only the I/O differs: the listing (what is new, skipped or
ignored) is `landing.list_landing`; the executors read the files (`binaryFile`, through S3A on an
`s3://` lake), decompress and split them with `landing`'s own functions, so a row's `value`,
`raw_bytes`, line number and ordinal are what the embedded engine gives. Files are grouped into
commits exactly as the embedded writer groups them (whole files, a commit closes once it holds
`max_rows_per_commit` rows), which needs each file's line count first: a first pass counts them.

Each commit carries the rows and, in them, the file list (`source_file`), under the shared app
transaction (`landing.APP_ID`, one version per commit), so a run killed at any point and rerun
neither loses nor repeats a file, and a rerun of a commit already made is skipped by Delta. A new
table gets the embedded writer's properties (Change Data Feed on, which silver reads).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from lakehouse.bronze import landing
from lakehouse.core import delta, ownership, spark_delta
from lakehouse.core.reconcile import Reconciliation
from lakehouse.core.storage import Lake

if TYPE_CHECKING:  # pragma: no cover
    from pyspark.sql import DataFrame, SparkSession

# landing.SCHEMA as Spark DDL (every column nullable, like the embedded writer's table)
ROW_SCHEMA = (
    "value STRING, raw_bytes BINARY, source_system STRING, source_file STRING, source_line BIGINT, "
    "topic STRING, kafka_partition INT, kafka_offset BIGINT, kafka_key STRING, "
    "kafka_timestamp TIMESTAMP, ingestion_time TIMESTAMP, batch_id STRING, ordinal BIGINT"
)


def _lines(content: bytes, codec: str | None) -> list[bytes]:
    if codec is None:
        return landing.split_lines(content)
    with pa.CompressedInputStream(pa.BufferReader(content), codec) as stream:
        return landing.split_lines(bytes(stream.read()))


def _count_file(codecs: dict[str, str | None]) -> Callable[[Any], tuple[str, int | None, str | None]]:
    """Executor side of the first pass: (file key, lines, why unreadable) of one file."""

    def count(row: Any) -> tuple[str, int | None, str | None]:
        key = _key(row.path)
        codec = codecs.get(key)
        try:
            return key, len(_lines(row.content, codec)), None
        except (OSError, pa.ArrowInvalid) as exc:
            return key, None, f"cannot read {codec or 'file'}: {exc}"

    return count


def _explode_file(
    names: dict[str, str], codecs: dict[str, str | None], offsets: dict[str, int], batch_id: str
) -> Callable[[Any], Iterator[tuple[Any, ...]]]:
    """Executor side of a commit: one file's rows, built by `landing.file_batch`."""

    def explode(row: Any) -> Iterator[tuple[Any, ...]]:
        key = _key(row.path)
        lines = _lines(row.content, codecs.get(key))
        rows = landing.file_batch(names[key], lines, batch_id, offsets[key], datetime.now(UTC))
        yield from zip(*(rows.column(c).to_pylist() for c in rows.column_names), strict=True)

    return explode


def _spark_uri(path: str, lake: Lake) -> str:
    """A landing file's path (as the lake's Arrow filesystem names it) as a Hadoop URI."""
    return f"s3a://{path}" if lake.settings.is_s3 else f"file://{path}"


def _read_files(spark: SparkSession, uris: list[str]) -> DataFrame:
    # binaryFile names a file by Hadoop's qualified path, which may differ in form from the URI
    # given (file:/x against file:///x): files are matched back by `_key`.
    return spark.read.format("binaryFile").load(uris).select("path", "content")


def _key(uri: str) -> str:
    """A file URI reduced to scheme-less path, so Hadoop's spelling and ours compare equal."""
    return uri.split(":", 1)[1].lstrip("/") if ":" in uri else uri.lstrip("/")


def ingest(
    spark: SparkSession,
    lake: Lake,
    run_id: str,
    max_rows_per_commit: int,
    on_rows: Callable[[int], None] | None = None,
) -> tuple[landing.LandingResult, Reconciliation]:
    """Ingest every landing file not yet in bronze.events, through delta-spark."""
    ownership.check(lake, landing.TABLE, ownership.SPARK)
    fs, base = lake.landing("events")
    listing = landing.list_landing(lake, fs, base)
    result = landing.LandingResult(
        already_ingested=len(listing.ingested),
        skipped=[(f.name, f.skip or "") for f in listing.skipped],
        ignored=listing.ignored,
    )
    rec = Reconciliation(run_id, "bronze", "landing/events", landing.TABLE)
    todo = [(_spark_uri(info.path, lake), f) for info, f in listing.todo]
    by_key = {_key(uri): (uri, f) for uri, f in todo}
    counts: dict[str, tuple[int | None, str | None]] = {}
    if todo:
        codecs_by_key = {k: f.codec for k, (_, f) in by_key.items()}
        frame = _read_files(spark, [uri for uri, _ in todo])
        counted = frame.rdd.map(_count_file(codecs_by_key)).collect()
        counts = {key: (lines, error) for key, lines, error in counted}
        unknown = sorted(set(counts) - set(by_key))
        if unknown:
            raise landing_error(f"Spark read {unknown[0]}, which the landing listing does not hold")

    groups: list[list[tuple[str, landing.LandingFile, int]]] = []
    current: list[tuple[str, landing.LandingFile, int]] = []
    rows = 0
    for uri, f in todo:
        lines, error = counts.get(_key(uri), (None, "disappeared before it was read"))
        if error is not None or lines is None:
            result.skipped.append((f.name, error or "unreadable"))
            continue
        current.append((uri, f, lines))
        rows += lines
        if rows >= max_rows_per_commit:
            groups.append(current)
            current, rows = [], 0
    if current:
        groups.append(current)

    version = delta.txn_version(lake, landing.TABLE, landing.APP_ID) or 0
    for group in groups:
        version += 1
        _commit(spark, lake, group, version, run_id)
        n = sum(lines for _, _, lines in group)
        result.commits += 1
        result.files.extend(f.name for _, f, _ in group)
        result.rows += n
        rec.rows_in += n
        rec.inserted += n
        if on_rows:
            on_rows(n)
    notes = [
        f"{len(result.files)} files in {result.commits} commits (spark)",
        f"{result.already_ingested} already ingested",
    ]
    if result.skipped:
        notes.append(f"{len(result.skipped)} skipped (not readable: `lakehouse bronze --files`)")
    if result.ignored:
        notes.append(f"{result.ignored} in-progress or marker files ignored")
    rec.detail = "; ".join(notes)
    return result, rec.finish()


def landing_error(message: str) -> Exception:
    from lakehouse.core.errors import LakehouseError

    return LakehouseError(message)


def _commit(
    spark: SparkSession,
    lake: Lake,
    group: list[tuple[str, landing.LandingFile, int]],
    version: int,
    run_id: str,
) -> None:
    """One commit: the group's rows under app transaction version `version`."""
    batch_id = landing.new_batch_id()
    names = {_key(uri): f.name for uri, f, _ in group}
    codecs = {_key(uri): f.codec for uri, f, _ in group}
    offsets: dict[str, int] = {}
    at = 0
    for uri, _, lines in group:
        offsets[_key(uri)] = at
        at += lines
    frame = _read_files(spark, [uri for uri, _, _ in group])
    # an RDD of plain tuples: pyspark's Arrow functions (mapInArrow) would need pandas
    rows = spark.createDataFrame(
        frame.rdd.flatMap(_explode_file(names, codecs, offsets, batch_id)), ROW_SCHEMA
    )
    uri = lake.table_uri(landing.TABLE)
    spark_delta.ensure_table(spark, uri, rows, properties=delta.CDF)
    files = [f.name for _, f, _ in group]
    spark_delta.append(
        rows, uri, app_id=landing.APP_ID, txn_version=version, files=files, batch_id=batch_id, run_id=run_id
    )
