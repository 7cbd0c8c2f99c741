"""Backfill: classify a date range of events again from bronze, after a rule change.

The rows of bronze.events that silver has absorbed (versions up to its watermark) go through the
same transform as the incremental run (`events_sql`), over the whole of bronze at once, so
deduplication decides as it did (first by ingestion order wins). What falls in the event-date
range then replaces silver's rows for that range:

- silver.events: one overwrite commit with the predicate `first <= event_date <= last`
  (rows of other dates are untouched);
- silver.quarantine_events: one MERGE on the bronze row identity (batch_id, ordinal): a row still
  quarantined gets its new reasons, a row that now passes leaves, a newly rejected row arrives.

Neither commit moves the watermarks, so the incremental run continues where it was. Running the
same backfill twice gives the same tables. The reconciliation counts the bronze rows of the range
(independently of the transform's own counters) against silver + quarantine + duplicates.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date
from typing import Any

import pyarrow as pa
from deltalake import write_deltalake

from lakehouse.core import delta, ownership
from lakehouse.core.contract.events import CONTRACT_FIELDS
from lakehouse.core.errors import LakehouseError
from lakehouse.core.reconcile import Reconciliation
from lakehouse.core.settings import SilverSettings
from lakehouse.core.storage import Lake
from lakehouse.silver import duckdb_json as duckdb_engine
from lakehouse.silver import reference
from lakehouse.silver.events import (
    APP_ID,
    AUDIT_COLUMNS,
    EVENTS,
    QUARANTINE,
    QUARANTINE_COLUMNS,
    SOURCE,
    known_extras,
)
from lakehouse.silver.events_sql import EVENT_COLUMNS, transform_sql

IDENTITY = ("batch_id", "ordinal")


@dataclass
class BackfillResult:
    first: date
    last: date
    events_before: int
    events_after: int
    quarantined_before: int
    quarantined_after: int
    reconciliation: Reconciliation

    @property
    def moved_to_quarantine(self) -> int:
        """Rows that left silver.events for the quarantine (negative: the reverse)."""
        return self.quarantined_after - self.quarantined_before


def batch_versions(lake: Lake) -> dict[str, int]:
    """batch_id -> the bronze.events version that appended it, from the commit log's metadata
    (landing and Kafka commits carry their batch id: delta-rs commits as a key of their own,
    delta-spark commits inside userMetadata, a JSON object of the same keys)."""
    dt = delta.open_table(lake, SOURCE)
    if dt is None:
        return {}
    out = {}
    for entry in dt.history():
        batch = entry.get("lakehouse.batch_id") or _user_metadata(entry).get("lakehouse.batch_id")
        if batch:
            out[str(batch).strip('"')] = int(entry["version"])
    return out


def _user_metadata(entry: dict[str, Any]) -> dict[str, Any]:
    try:
        meta = json.loads(entry.get("userMetadata") or "{}")
    except ValueError:
        return {}
    return meta if isinstance(meta, dict) else {}


def _watermark(lake: Lake) -> int:
    marks = [delta.txn_version(lake, t, APP_ID) for t in (EVENTS, QUARANTINE)]
    if any(m is None for m in marks) or not lake.exists(EVENTS):
        raise LakehouseError(
            "silver has not read bronze.events yet: run `lakehouse silver` before a backfill"
        )
    return min(int(m) for m in marks)  # type: ignore[arg-type]


def prepare(lake: Lake, first: date, last: date, engine: str) -> tuple[int, dict[str, int]]:
    """What either engine checks before a backfill reads anything: a non-empty range, bronze and
    silver present, both silver tables written by `engine`. Returns (the bronze version silver
    has absorbed, batch_id -> bronze version)."""
    if first > last:
        raise LakehouseError(f"backfill range is empty: {first} > {last}")
    if delta.open_table(lake, SOURCE) is None:
        raise LakehouseError("bronze.events does not exist yet: nothing to backfill")
    for table in (EVENTS, QUARANTINE):
        ownership.check(lake, table, engine)
    return _watermark(lake), batch_versions(lake)


def unknown_batches(count: int, example: object) -> LakehouseError:
    return LakehouseError(
        f"bronze.events holds {count} batch(es) whose commit is no longer in its log "
        f"(e.g. {example}): a backfill needs the log of every batch it reads"
    )


def in_range(first: date, last: date) -> str:
    """The event-date predicate of the range, in SQL both engines read. Two comparisons, not
    BETWEEN: Spark 4.1 rewrites BETWEEN into an expression its replaceWhere check cannot resolve
    (an INTERNAL_ERROR)."""
    return f"event_date >= DATE '{first.isoformat()}' AND event_date <= DATE '{last.isoformat()}'"


def result(
    run_id: str,
    first: date,
    last: date,
    counts: dict[str, int],
    events: tuple[int, int],
    quarantined: tuple[int, int],
) -> BackfillResult:
    """The backfill's result and reconciliation: the classified rows of the range (`counts` by
    outcome) against what silver.events and the quarantine hold for it afterwards, read back."""
    rec = Reconciliation(run_id, "silver", f"{SOURCE} {first}..{last}", f"{EVENTS} + {QUARANTINE}")
    rec.rows_in = sum(counts.values())
    rec.inserted = events[1]
    rec.duplicates = counts.get("duplicate", 0)
    rec.quarantined = quarantined[1]
    rec.detail = (
        f"backfill {first}..{last}: silver.events {events[0]} -> {events[1]}, "
        f"quarantine {quarantined[0]} -> {quarantined[1]}"
    )
    return BackfillResult(first, last, *events, *quarantined, rec.finish())


def reprocess(lake: Lake, silver: SilverSettings, run_id: str, first: date, last: date) -> BackfillResult:
    """Classify the events dated first..last again and replace them in silver (see the module)."""
    absorbed, versions = prepare(lake, first, last, ownership.EMBEDDED)
    bronze = delta.open_table(lake, SOURCE)
    assert bronze is not None
    con = lake.duckdb(memory_limit=silver.duckdb_memory_limit)
    try:
        lake.duckdb_s3(con)
        for name, table in reference.lookups(silver.base_currency).items():
            con.register(name, table)
        con.register("bronze_snapshot", delta.dataset(lake, bronze))
        con.register(
            "batch_versions",
            pa.table({"batch_id": list(versions), "commit_version": list(versions.values())}),
        )
        unknown = con.execute(
            "SELECT any_value(batch_id), count(DISTINCT batch_id) FROM bronze_snapshot "
            "WHERE batch_id NOT IN (SELECT batch_id FROM batch_versions)"
        ).fetchone()
        if unknown and unknown[1]:
            raise unknown_batches(unknown[1], unknown[0])
        con.execute(
            f"""CREATE TEMP VIEW bronze_rows AS
                SELECT s.*, v.commit_version FROM bronze_snapshot AS s
                JOIN batch_versions AS v USING (batch_id)
                WHERE v.commit_version <= {absorbed}"""
        )
        con.execute(
            "CREATE TEMP VIEW existing AS "
            "SELECT NULL::VARCHAR AS event_id, NULL::VARCHAR AS payload_hash WHERE false"
        )
        extras = known_extras(lake)
        fields = (*CONTRACT_FIELDS, *(x.name for x in extras))
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
        range_sql = in_range(first, last)
        con.execute(
            f"CREATE TEMP TABLE classified AS SELECT outcome, reasons, {select} FROM ({transform}) WHERE {range_sql}"
        )
        counts = dict(con.execute("SELECT outcome, count(*) FROM classified GROUP BY 1").fetchall())

        events = delta.open_table(lake, EVENTS)
        assert events is not None
        target = pa.schema(events.schema())
        before_events = _count(con, lake, EVENTS, range_sql)
        rows = con.execute(
            f"SELECT {', '.join(target.names)} FROM classified WHERE outcome = 'insert'"
        ).to_arrow_table()
        write_deltalake(
            lake.table_uri(EVENTS),
            rows.select(target.names).cast(target),
            mode="overwrite",
            predicate=range_sql.replace("DATE ", ""),
            storage_options=lake.storage_options,
            commit_properties=delta.commit_props(
                None, None, operation="backfill", run_id=run_id, event_dates=f"{first}..{last}"
            ),
        )

        quarantine_before, quarantine_after = _replace_quarantine(lake, con, run_id, first, last)
        # what the tables hold now, read back, against the rows of the range
        after_events = _count(con, lake, EVENTS, range_sql)
        return result(
            run_id, first, last, counts, (before_events, after_events), (quarantine_before, quarantine_after)
        )
    finally:
        con.close()


def _count(con: object, lake: Lake, table: str, where: str) -> int:
    dt = delta.open_table(lake, table)
    assert dt is not None
    con.register("counted", delta.dataset(lake, dt))  # type: ignore[attr-defined]
    return int(con.execute(f"SELECT count(*) FROM counted WHERE {where}").fetchone()[0])  # type: ignore[attr-defined]


def _replace_quarantine(lake: Lake, con: object, run_id: str, first: date, last: date) -> tuple[int, int]:
    """One MERGE on (batch_id, ordinal) over every bronze row of the range; returns the range's
    quarantined rows before and after."""
    new = con.execute(  # type: ignore[attr-defined]
        f"""SELECT q.outcome = 'quarantine' AS _quarantined, {", ".join(QUARANTINE_COLUMNS)}
            FROM classified AS q
            JOIN bronze_rows AS b ON b.commit_version = q._commit_version AND b.ordinal = q._ordinal"""
    ).to_arrow_table()
    dt = delta.open_table(lake, QUARANTINE)
    if dt is None:
        if not new.num_rows:
            return 0, 0
        kept = new.filter(new["_quarantined"]).drop_columns(["_quarantined"])
        delta.append(lake, QUARANTINE, kept, run_id=run_id, operation="backfill")
        return 0, kept.num_rows
    target = pa.schema(dt.schema())
    keys = new.select(list(IDENTITY))
    con.register("range_keys", keys)  # type: ignore[attr-defined]
    con.register("quarantine_now", delta.dataset(lake, dt))  # type: ignore[attr-defined]
    before = int(
        con.execute(  # type: ignore[attr-defined]
            "SELECT count(*) FROM quarantine_now AS t SEMI JOIN range_keys AS k USING (batch_id, ordinal)"
        ).fetchone()[0]
    )
    names = target.names
    columns = [
        new[n].cast(target.field(n).type)
        if n in new.column_names
        else pa.nulls(new.num_rows, target.field(n).type)
        for n in names
    ]
    source = pa.Table.from_arrays([new["_quarantined"], *columns], names=["_quarantined", *names])
    (
        dt.merge(
            source,
            predicate="t.batch_id = s.batch_id AND t.ordinal = s.ordinal",
            source_alias="s",
            target_alias="t",
            commit_properties=delta.commit_props(
                None, None, operation="backfill", run_id=run_id, event_dates=f"{first}..{last}"
            ),
        )
        .when_matched_update({n: f"s.{n}" for n in names}, predicate="s._quarantined")
        .when_matched_delete(predicate="NOT s._quarantined")
        .when_not_matched_insert({n: f"s.{n}" for n in names}, predicate="s._quarantined")
        .execute()
    )
    dt.update_incremental()
    con.register("quarantine_now", delta.dataset(lake, dt))  # type: ignore[attr-defined]
    after = int(
        con.execute(  # type: ignore[attr-defined]
            "SELECT count(*) FROM quarantine_now AS t SEMI JOIN range_keys AS k USING (batch_id, ordinal)"
        ).fetchone()[0]
    )
    return before, after
