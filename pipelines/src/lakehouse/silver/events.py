"""bronze.events -> silver.events + silver.quarantine_events on the embedded engine.

Incremental by bronze commit version (Change Data Feed): each output table records, in the
same commit as its rows, the last bronze version it has absorbed (app transaction). Work runs
in bounded chunks of bronze versions, so memory stays flat whatever the input size.
"""

from __future__ import annotations

from collections.abc import Callable

import pyarrow as pa
from duckdb import DuckDBPyConnection

from lakehouse import delta
from lakehouse.config import Settings
from lakehouse.engines import duckdb_engine
from lakehouse.reconcile import Reconciliation
from lakehouse.silver import reference
from lakehouse.silver.events_sql import CONTRACT_FIELDS, ExtraColumn, transform_sql
from lakehouse.storage import Lake

SOURCE = "bronze.events"
EVENTS = "silver.events"
QUARANTINE = "silver.quarantine_events"
APP_ID = "silver<-bronze.events"
WRITE_BATCH_ROWS = 250_000

EVENT_COLUMNS = (
    "event_id",
    "user_id",
    "event_type",
    "ts",
    "event_date",
    "page",
    "source",
    "device",
    "country",
    "product_id",
    "price",
    "quantity",
    "currency",
    "amount",
    "amount_base",
    "campaign",
)
# c = the classified row, b = its bronze row (joined back on commit_version, ordinal).
AUDIT_COLUMNS = (
    "c.dq_warnings",
    "c.payload_hash",
    "b.ingestion_time AS _ingestion_time",
    "b.source_system AS _source_system",
    "b.source_file AS _source_file",
    "b.source_line AS _source_line",
    "b.topic AS _kafka_topic",
    "b.kafka_partition AS _kafka_partition",
    "b.kafka_offset AS _kafka_offset",
    "b.batch_id AS _batch_id",
    "b.ordinal AS _ordinal",
    "b.commit_version AS _commit_version",
    "c.run_id AS _run_id",
)
QUARANTINE_COLUMNS = (
    "c.run_id",
    "now() AS quarantined_at",
    "c.reasons",
    "b.value AS raw_value",
    "b.raw_bytes",
    "c.event_id",
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
BASE_COLUMNS = set(EVENT_COLUMNS) | {c.split(" AS ")[-1].removeprefix("c.") for c in AUDIT_COLUMNS}
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


def _register_existing(con: DuckDBPyConnection, lake: Lake, before_version: int) -> None:
    """`existing`: (event_id, payload_hash) of silver rows from bronze versions before this chunk.

    A lazy scan of the Delta table, not a copy in memory: DuckDB builds its join on the chunk's
    side and streams the history past it, so memory does not grow with the size of silver."""
    dt = delta.open_table(lake, EVENTS)
    if dt is None:
        con.execute(
            "CREATE OR REPLACE TEMP VIEW existing AS SELECT NULL::VARCHAR AS event_id, NULL::VARCHAR AS payload_hash WHERE false"
        )
        return
    con.register("silver_history", dt.to_pyarrow_dataset())
    con.execute(
        f"CREATE OR REPLACE TEMP VIEW existing AS SELECT event_id, payload_hash FROM silver_history "
        f"WHERE _commit_version < {int(before_version)}"
    )


def run(
    lake: Lake,
    settings: Settings,
    run_id: str,
    on_rows: Callable[[int], None] | None = None,
    on_plan: Callable[[int], None] | None = None,
) -> Reconciliation:
    rec = Reconciliation(run_id, "silver", SOURCE, f"{EVENTS} + {QUARANTINE}")
    bronze = delta.open_table(lake, SOURCE)
    if bronze is None:
        rec.detail = "bronze.events does not exist yet"
        return rec.finish()
    done = {t: delta.txn_version(lake, t, APP_ID) for t in (EVENTS, QUARANTINE)}
    after = min(-1 if v is None else v for v in done.values())
    chunks = list(delta.version_chunks(bronze, after, settings.silver.chunk_rows))
    if on_plan:
        on_plan(sum(c[2] for c in chunks))
    lookups = reference.lookups(settings.silver.base_currency)
    reference.publish(lake, settings.silver.base_currency)
    rejected_keys: set[str] = set()
    for first, last, _rows in chunks:
        part, rejected = _run_chunk(lake, settings, run_id, bronze, first, last, done, lookups)
        rec.add(part)
        rejected_keys.update(rejected)
        if on_rows:
            on_rows(part.rows_in)
    notes = [f"{len(chunks)} chunk(s) of bronze versions"]
    if rejected_keys:
        notes.append(
            "fields kept only in bronze (not valid column names): " + ", ".join(sorted(rejected_keys))
        )
    rec.detail = "; ".join(notes)
    return rec.finish()


def _run_chunk(
    lake: Lake,
    settings: Settings,
    run_id: str,
    bronze: object,
    first: int,
    last: int,
    done: dict[str, int | None],
    lookups: dict[str, pa.Table],
) -> tuple[Reconciliation, list[str]]:
    con = lake.duckdb()
    try:
        for name, table in lookups.items():
            con.register(name, table)
        con.register("cdf", delta.changes(bronze, first, last))  # type: ignore[arg-type]
        con.execute(
            "CREATE TEMP TABLE bronze_rows AS SELECT * EXCLUDE (_change_type, _commit_version, _commit_timestamp), "
            "CAST(_commit_version AS BIGINT) AS commit_version FROM cdf WHERE _change_type = 'insert'"
        )
        extras = known_extras(lake)
        new, rejected = duckdb_engine.discover_fields(
            con, "bronze_rows", set(CONTRACT_FIELDS) | {x.name for x in extras}
        )
        extras += new
        fields = CONTRACT_FIELDS + tuple(x.name for x in extras)
        _register_existing(con, lake, first)
        con.execute(f"CREATE TEMP VIEW parsed AS {duckdb_engine.parsed_sql('bronze_rows', fields)}")
        sql = transform_sql(tuple(extras), run_id, settings.silver.future_tolerance_hours)
        con.execute(f"CREATE TEMP TABLE classified AS {sql}")
        con.execute("DROP VIEW parsed")

        rec = Reconciliation(run_id, "silver", SOURCE, f"{EVENTS} + {QUARANTINE}")
        counts = dict(
            con.execute(
                "SELECT outcome, count(*) FROM classified WHERE commit_version > ? GROUP BY 1",
                [min(-1 if v is None else v for v in done.values())],
            ).fetchall()
        )
        rec.rows_in = sum(counts.values())
        rec.inserted = counts.get("insert", 0)
        rec.duplicates = counts.get("duplicate", 0)
        rec.quarantined = counts.get("quarantine", 0)

        extra_cols = [x.name for x in extras]
        event_sql = ", ".join((*(f"c.{col}" for col in (*EVENT_COLUMNS, *extra_cols)), *AUDIT_COLUMNS))
        _write(lake, con, EVENTS, event_sql, "insert", first, last, done[EVENTS], ["event_date"], run_id)
        _write(
            lake,
            con,
            QUARANTINE,
            ", ".join(QUARANTINE_COLUMNS),
            "quarantine",
            first,
            last,
            done[QUARANTINE],
            None,
            run_id,
        )
        return rec, rejected
    finally:
        con.close()


def _write(
    lake: Lake,
    con: object,
    table: str,
    columns: str,
    outcome: str,
    first: int,
    last: int,
    done: int | None,
    partition_by: list[str] | None,
    run_id: str,
) -> None:
    """Append one outcome's rows, unless this table already absorbed those bronze versions."""
    if done is not None and done >= last:
        return
    floor = -1 if done is None else done
    reader = con.execute(  # type: ignore[attr-defined]
        f"""SELECT {columns} FROM classified AS c
            JOIN bronze_rows AS b ON b.commit_version = c.commit_version AND b.ordinal = c.ordinal
            WHERE c.outcome = ? AND c.commit_version > ?""",
        [outcome, floor],
    ).to_arrow_reader(WRITE_BATCH_ROWS)
    delta.append(
        lake,
        table,
        reader,
        app_id=APP_ID,
        txn_version=last,
        partition_by=partition_by,
        evolve=True,
        run_id=run_id,
        bronze_versions=f"{max(first, floor + 1)}..{last}",
    )
