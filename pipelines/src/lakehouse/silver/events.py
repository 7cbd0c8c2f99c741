"""bronze.events -> silver.events + silver.quarantine_events on the embedded engine.

Incremental by bronze commit version: each output table records, in the same commit as its
rows, the last bronze version it has absorbed (app transaction). Work runs in bounded chunks of
bronze versions, so memory stays flat whatever the input size. Per chunk: the files its commits
appended are scanned in place (`_register_bronze`), one streaming query classifies every row
(`events_sql`), inserts go straight to the silver.events writer and quarantined rows follow.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
from deltalake.exceptions import CommitFailedError
from duckdb import DuckDBPyConnection

from lakehouse.core import delta, memory, ownership
from lakehouse.core.contract.events import CONTRACT_FIELDS
from lakehouse.core.errors import TransientError
from lakehouse.core.reconcile import Reconciliation
from lakehouse.core.settings import SilverSettings
from lakehouse.core.storage import Lake
from lakehouse.silver import duckdb_json as duckdb_engine
from lakehouse.silver import reference
from lakehouse.silver.events_sql import EVENT_COLUMNS, ExtraColumn, transform_sql

SOURCE = "bronze.events"
EVENTS = "silver.events"
QUARANTINE = "silver.quarantine_events"
APP_ID = "silver<-bronze.events"
# Rows per Arrow batch between DuckDB and the Delta writer. Every batch is alive up to three times
# at once (DuckDB's export, the insert-only copy, the writer's buffer): 64k rows keep that near
# 100 MB, which leaves DuckDB the memory to classify a chunk without spilling to disk.
WRITE_BATCH_ROWS = 65_536
# silver.events columns with (nearly) one value per row: written without a Parquet dictionary.
DISTINCT_COLUMNS = (
    "event_id",
    "payload_hash",
    "ts",
    "price",
    "amount",
    "amount_base",
    "_ordinal",
    "_source_line",
    "_kafka_offset",
)

# Audit columns of silver.events, as (output name, classified column).
AUDIT_COLUMNS = (
    ("dq_warnings", "dq_warnings"),
    ("payload_hash", "payload_hash"),
    ("_ingestion_time", "ingestion_time"),
    ("_source_system", "source_system"),
    ("_source_file", "source_file"),
    ("_source_line", "source_line"),
    ("_kafka_topic", "topic"),
    ("_kafka_partition", "kafka_partition"),
    ("_kafka_offset", "kafka_offset"),
    ("_batch_id", "batch_id"),
    ("_ordinal", "ordinal"),
    ("_commit_version", "commit_version"),
    ("_run_id", "run_id"),
)
# q = a quarantined classified row, b = its bronze row (for the raw payload).
QUARANTINE_COLUMNS = (
    "q._run_id AS run_id",
    "now() AS quarantined_at",
    "q.reasons",
    "b.value AS raw_value",
    "b.raw_bytes",
    "q.event_id",
    "b.source_system",
    "b.source_file",
    "b.source_line",
    "b.topic",
    "b.kafka_partition",
    "b.kafka_offset",
    "b.batch_id",
    "b.ordinal",
    "b.commit_version AS _commit_version",
    "b.ingestion_time",
)
BASE_COLUMNS = set(EVENT_COLUMNS) | {name for name, _ in AUDIT_COLUMNS}
ARROW_TO_SQL = {pa.int64(): "BIGINT", pa.float64(): "DOUBLE", pa.bool_(): "BOOLEAN"}


def known_extras(lake: Lake) -> list[ExtraColumn]:
    """Columns schema evolution added to silver.events earlier, in table order."""
    dt = delta.open_table(lake, EVENTS)
    if dt is None:
        return []
    schema = pa.schema(dt.schema())
    return [
        ExtraColumn(f.name, ARROW_TO_SQL.get(f.type, "VARCHAR")) for f in schema if f.name not in BASE_COLUMNS
    ]


def _register_existing(
    con: DuckDBPyConnection, lake: Lake, before_version: int, absorbed: int | None
) -> None:
    """`existing`: (event_id, payload_hash) of silver rows from bronze versions before this chunk.

    A lazy scan of the table's current files, not a copy in memory: DuckDB knows both sides'
    sizes from the Parquet footers, builds its join on the chunk's side and streams the history
    past it, so memory does not grow with the size of silver. The version filter is only added
    when silver already holds rows of this chunk (`absorbed`, after an interrupted run): a filter
    hides the history's size from the planner, which then builds on the history instead."""
    dt = delta.open_table(lake, EVENTS)
    files = dt.file_uris() if dt is not None else []
    if not files:
        con.execute(
            "CREATE OR REPLACE TEMP VIEW existing AS "
            "SELECT NULL::VARCHAR AS event_id, NULL::VARCHAR AS payload_hash WHERE false"
        )
        return
    holds_chunk = absorbed is not None and absorbed >= before_version
    where = f"WHERE _commit_version < {int(before_version)}" if holds_chunk else ""
    con.execute(
        f"""CREATE OR REPLACE TEMP VIEW existing AS
            SELECT event_id, payload_hash
            FROM read_parquet({_sql_list(files)}, hive_partitioning = false)
            {where}"""
    )


def _sql_list(items: list[str]) -> str:
    return "[" + ", ".join("'" + item.replace("'", "''") + "'" for item in items) + "]"


def run(
    lake: Lake,
    silver: SilverSettings,
    run_id: str,
    on_rows: Callable[[int], None] | None = None,
    on_plan: Callable[[int], None] | None = None,
) -> Reconciliation:
    for table in (EVENTS, QUARANTINE):
        ownership.check(lake, table, ownership.EMBEDDED)
    rec = Reconciliation(run_id, "silver", SOURCE, f"{EVENTS} + {QUARANTINE}")
    bronze = delta.open_table(lake, SOURCE)
    if bronze is None:
        rec.detail = "bronze.events does not exist yet"
        return rec.finish()
    done = {t: delta.txn_version(lake, t, APP_ID) for t in (EVENTS, QUARANTINE)}
    after = min(-1 if v is None else v for v in done.values())
    chunks = list(delta.version_chunks(bronze, after, silver.chunk_rows))
    if on_plan:
        on_plan(sum(c[2] for c in chunks))
    lookups = reference.lookups(silver.base_currency)
    reference.publish(lake, silver.base_currency)
    memory.cap_arenas()

    def chunk(first: int, last: int) -> tuple[Reconciliation, Iterable[str]]:
        try:
            return _run_chunk(lake, silver, run_id, bronze, first, last, done, lookups)
        finally:
            memory.release()

    return absorb_chunks(rec, chunks, chunk, on_rows)


def absorb_chunks(
    rec: Reconciliation,
    chunks: list[tuple[int, int, int]],
    run_chunk: Callable[[int, int], tuple[Reconciliation, Iterable[str]]],
    on_rows: Callable[[int], None] | None,
    engine: str = "",
) -> Reconciliation:
    """Run each chunk of bronze versions in order (each commits on its own, so a stop between
    chunks keeps what is done), adding its counts to `rec`; the detail names the chunks and the
    fields that stayed in bronze."""
    rejected_keys: set[str] = set()
    for first, last, _rows in chunks:
        part, rejected = run_chunk(first, last)
        rec.add(part)
        rejected_keys.update(rejected)
        if on_rows:
            on_rows(part.rows_in)
    notes = [f"{len(chunks)} chunk(s) of bronze versions{f' ({engine})' if engine else ''}"]
    if rejected_keys:
        notes.append(
            "fields kept only in bronze (not valid column names): " + ", ".join(sorted(rejected_keys))
        )
    rec.detail = "; ".join(notes)
    return rec.finish()


def _run_chunk(
    lake: Lake,
    silver: SilverSettings,
    run_id: str,
    bronze: object,
    first: int,
    last: int,
    done: dict[str, int | None],
    lookups: dict[str, pa.Table],
) -> tuple[Reconciliation, list[str]]:
    """Classify one chunk of bronze versions in one streaming query: inserts flow straight into
    the silver.events writer; quarantined rows (few) are kept and written after, with their raw
    payload joined back from the bronze rows."""
    con = lake.duckdb(memory_limit=silver.duckdb_memory_limit)
    try:
        lake.duckdb_s3(con)
        for name, table in lookups.items():
            con.register(name, table)
        _register_bronze(con, lake, bronze, first, last)
        extras = known_extras(lake)
        new, rejected = duckdb_engine.discover_fields(
            con, "bronze_rows", set(CONTRACT_FIELDS) | {x.name for x in extras}
        )
        extras += new
        fields = CONTRACT_FIELDS + tuple(x.name for x in extras)
        _register_existing(con, lake, first, done[EVENTS])
        con.execute(f"CREATE TEMP VIEW parsed AS {duckdb_engine.parsed_sql('bronze_rows', fields)}")
        transform = transform_sql(
            tuple(extras),
            run_id,
            silver.future_tolerance_hours,
            silver.max_record_bytes,
            silver.max_field_chars,
        )
        columns = [*EVENT_COLUMNS, *(x.name for x in extras)]
        select = ", ".join([*columns, *(f"{src} AS {out}" for out, src in AUDIT_COLUMNS)])

        with another_writer(EVENTS):
            reader = con.execute(f"SELECT outcome, reasons, {select} FROM ({transform})").to_arrow_reader(
                WRITE_BATCH_ROWS
            )

            floors = {t: -1 if v is None else v for t, v in done.items()}
            split = _Split(reader, min(floors.values()), floors[EVENTS], floors[QUARANTINE])
            if floors[EVENTS] < last:
                _append(
                    lake, EVENTS, split.inserts(), first, last, floors[EVENTS], ["event_date"], run_id, done
                )
            else:
                split.drain()
        if floors[QUARANTINE] < last:
            with another_writer(QUARANTINE):
                con.register("quarantined", split.quarantined())
                rows = con.execute(
                    f"""SELECT {", ".join(QUARANTINE_COLUMNS)} FROM quarantined AS q
                        JOIN bronze_rows AS b ON b.commit_version = q._commit_version AND b.ordinal = q._ordinal
                        ORDER BY b.commit_version, b.ordinal"""
                ).to_arrow_reader(WRITE_BATCH_ROWS)
                _append(lake, QUARANTINE, rows, first, last, floors[QUARANTINE], None, run_id, done)

        rec = Reconciliation(run_id, "silver", SOURCE, f"{EVENTS} + {QUARANTINE}")
        rec.rows_in = sum(split.counts.values())
        rec.inserted = split.counts["insert"]
        rec.duplicates = split.counts["duplicate"]
        rec.quarantined = split.counts["quarantine"]
        return rec, rejected
    finally:
        con.close()


# What DuckDB says when a Parquet file of the table's snapshot is gone (a VACUUM removed it),
# locally and on S3
_FILE_GONE = ("no such file", "no files found", "http 404", "not found")


@contextmanager
def another_writer(table: str) -> Iterator[None]:
    """Another writer changing `table` under this run, said as such: a commit that lost to a
    concurrent one (OPTIMIZE, another silver run) or a file of the snapshot this run scans
    removed meanwhile (VACUUM). Nothing of the chunk was committed, and the marks moved on only
    by what did commit, so a new run continues from there: a TransientError."""
    try:
        yield
    except CommitFailedError as exc:
        raise TransientError(
            f"another writer changed {table} while this silver run committed to it "
            f"({_first_line(exc)}): nothing of this chunk was written; run silver again to continue"
        ) from exc
    except duckdb.IOException as exc:
        if not any(m in str(exc).lower() for m in _FILE_GONE):
            raise
        raise TransientError(
            f"another writer changed the tables this silver run reads while it wrote {table} (a file "
            "of the snapshot it read was removed, e.g. by VACUUM): nothing of this chunk was written; "
            "run silver again to continue"
        ) from exc


def _first_line(exc: BaseException) -> str:
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    return lines[0][:200] if lines else type(exc).__name__


def _register_bronze(con: DuckDBPyConnection, lake: Lake, bronze: object, first: int, last: int) -> None:
    """`bronze_rows`: the rows versions first..last appended to bronze.events, with their
    commit_version. Bronze only ever appends, so these are the files those commits added,
    scanned in place (lazy, parallel, memory-bounded); anything else goes through the CDF."""
    files = delta.appended_files(lake, SOURCE, first, last)
    if not files:
        rows = delta.inserted_rows(bronze, first, last)  # type: ignore[arg-type]
        con.register("bronze_rows", rows.rename_columns({"_commit_version": "commit_version"}))
        return
    con.register(
        "bronze_files", pa.table({"file": [f for f, _ in files], "commit_version": [v for _, v in files]})
    )
    con.execute(
        f"""CREATE TEMP VIEW bronze_rows AS
            SELECT r.* EXCLUDE (filename), f.commit_version
            FROM read_parquet({_sql_list([f for f, _ in files])}, filename = true, union_by_name = true) AS r
            JOIN bronze_files AS f ON f.file = r.filename"""
    )


class _Split:
    """Routes the classified stream: insert rows on to the events writer, quarantined rows
    kept aside (a small share of any real input), every outcome counted.

    A row counts only once: rows of bronze versions that both tables absorbed in an earlier,
    interrupted run (commit_version <= floor) are skipped; a table's own floor keeps it from
    receiving rows it already has."""

    def __init__(
        self, reader: pa.RecordBatchReader, floor: int, events_floor: int, quarantine_floor: int
    ) -> None:
        self.reader = reader
        self.floor, self.events_floor, self.quarantine_floor = floor, events_floor, quarantine_floor
        self.counts: Counter[str] = Counter()
        self._quarantined: list[pa.RecordBatch] = []
        self.event_schema = pa.schema([f for f in reader.schema if f.name not in ("outcome", "reasons")])
        self.quarantine_schema = pa.schema(
            [
                reader.schema.field(n)
                for n in ("reasons", "event_id", "_commit_version", "_ordinal", "_run_id")
            ]
        )

    def _batches(self) -> Iterator[pa.RecordBatch]:
        for batch in self.reader:
            version = batch.column("_commit_version")
            outcome = batch.column("outcome")
            counted = pc.greater(version, self.floor)
            for item in pc.value_counts(pc.filter(outcome, counted)).to_pylist():
                self.counts[item["values"]] += item["counts"]
            quarantine = pc.and_(pc.equal(outcome, "quarantine"), pc.greater(version, self.quarantine_floor))
            if pc.any(quarantine).as_py():
                self._quarantined.append(batch.filter(quarantine).select(self.quarantine_schema.names))
            insert = pc.and_(pc.equal(outcome, "insert"), pc.greater(version, self.events_floor))
            yield batch if pc.all(insert).as_py() else batch.filter(insert)

    def inserts(self) -> pa.RecordBatchReader:
        names = self.event_schema.names
        return pa.RecordBatchReader.from_batches(
            self.event_schema, (b.select(names) for b in self._batches() if b.num_rows)
        )

    def drain(self) -> None:
        for _ in self._batches():
            pass

    def quarantined(self) -> pa.Table:
        return pa.Table.from_batches(self._quarantined, self.quarantine_schema)


def _append(
    lake: Lake,
    table: str,
    rows: pa.RecordBatchReader,
    first: int,
    last: int,
    floor: int,
    partition_by: list[str] | None,
    run_id: str,
    marks: dict[str, int | None],
) -> None:
    """Append one outcome's rows with the app transaction that marks versions ..last absorbed.

    Fenced: the table's mark must still be what this run read (`marks`, moved on by each of its
    commits), and the commit is made against the snapshot that showed it, so of two silver runs
    at once only one absorbs a bronze version; the other stops with a TransientError (a new
    attempt starts from the new mark) or delta-rs's CommitFailedError, writing nothing."""
    snapshot = delta.open_table(lake, table)
    if snapshot is None:
        # created empty in a commit of its own first: a commit creating the table could not be
        # fenced, and two runs that both found it absent would both add their rows
        snapshot = delta.create_empty(lake, table, rows.schema, partition_by=partition_by, source=SOURCE)
    if snapshot.transaction_version(APP_ID) != marks[table]:
        raise TransientError(
            f"another silver run absorbed bronze versions into {table} meanwhile "
            f"(mark {snapshot.transaction_version(APP_ID)}, this run read {marks[table]}): "
            "this run stops; a new one takes up from there"
        )
    delta.append(
        lake,
        table,
        rows,
        snapshot=snapshot,
        app_id=APP_ID,
        txn_version=last,
        partition_by=partition_by,
        evolve=True,
        distinct_columns=DISTINCT_COLUMNS if table == EVENTS else (),
        run_id=run_id,
        bronze_versions=f"{max(first, floor + 1)}..{last}",
    )
    marks[table] = last
