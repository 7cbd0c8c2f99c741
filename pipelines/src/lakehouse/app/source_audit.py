"""Independent reconciliation: counts taken from the sources and the tables themselves, never
from a job's own counters (which add up their own outcomes and so cannot see a lost batch).

- landing -> bronze: every landing file bronze has read is read and split again; its lines
  against the rows bronze.events holds for it.
- Kafka -> bronze: offsets per partition read from the broker against bronze's rows carrying
  them (`audit_kafka`), when streaming settings are given.
- PostgreSQL -> bronze: source rows per updated_at window against bronze (`audit_postgres`),
  when a source database is given.
- bronze -> silver: every bronze.events row silver has absorbed (batches up to silver's
  watermark) is in silver.events (by its bronze batch and ordinal), in the quarantine (same), or
  a duplicate: its event id is in silver.events. Any other row is lost.

Each check is one row of ops.source_audit (Delta, appended: the history of every audit).
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, datetime

import pyarrow as pa

from lakehouse.app.audit_kafka import kafka_vs_bronze
from lakehouse.app.audit_postgres import postgres_vs_bronze
from lakehouse.app.audit_result import AuditResult
from lakehouse.bronze import landing
from lakehouse.core import delta
from lakehouse.core.settings import StreamingSettings
from lakehouse.core.storage import Lake
from lakehouse.silver import backfill
from lakehouse.silver import events as silver_events

AUDIT_TABLE = "ops.source_audit"
SCHEMA = pa.schema(
    [
        ("run_id", pa.string()),
        ("check_name", pa.string()),
        ("source", pa.string()),
        ("target", pa.string()),
        ("expected", pa.int64()),
        ("found", pa.int64()),
        ("lost", pa.int64()),
        ("duplicated", pa.int64()),
        ("detail", pa.string()),
        ("checked_at", pa.timestamp("us", tz="UTC")),
    ]
)


def landing_vs_bronze(lake: Lake) -> AuditResult:
    """Lines of every ingested landing file, counted from the file, against bronze's rows of it."""
    result = AuditResult("landing_lines", "landing/events", landing.TABLE)
    held = landing.rows_per_file(lake)
    fs, base = lake.landing("events")
    listing = landing.list_landing(lake, fs, base)
    differing = []
    for f in listing.ingested:
        lines = len(landing.split_lines(landing._read(fs, f"{base}/{f.name}", f.codec)))
        rows = held.get(f.name, 0)
        result.expected += lines
        result.found += rows
        result.lost += max(0, lines - rows)
        result.duplicated += max(0, rows - lines)
        if lines != rows:
            differing.append(f"{f.name}: {lines} lines, {rows} rows")
    gone = sorted(set(held) - {f.name for f in listing.ingested})
    result.detail = (
        f"{len(listing.ingested)} files"
        + ("; " + "; ".join(differing[:5]) if differing else "")
        + (f"; {len(gone)} file(s) in bronze no longer in landing" if gone else "")
    )
    return result


def bronze_vs_silver(lake: Lake) -> AuditResult:
    """Every bronze row silver has absorbed: in silver.events, in the quarantine, or a duplicate."""
    result = AuditResult(
        "bronze_rows", silver_events.SOURCE, f"{silver_events.EVENTS} + {silver_events.QUARANTINE}"
    )
    bronze = delta.open_table(lake, silver_events.SOURCE)
    marks = [
        delta.txn_version(lake, t, silver_events.APP_ID)
        for t in (silver_events.EVENTS, silver_events.QUARANTINE)
    ]
    if bronze is None or any(m is None for m in marks):
        result.detail = "silver has not read bronze.events yet"
        return result
    absorbed = min(int(m) for m in marks if m is not None)
    versions = backfill.batch_versions(lake)
    con = lake.duckdb()
    try:
        con.register("bronze", delta.dataset(lake, bronze))
        con.register("batches", pa.table({"batch_id": list(versions), "v": list(versions.values())}))
        con.register("events", delta.dataset(lake, delta.open_table(lake, silver_events.EVENTS)))  # type: ignore[arg-type]
        quarantine = delta.open_table(lake, silver_events.QUARANTINE)
        if quarantine is not None:
            con.register("quarantine", delta.dataset(lake, quarantine))
        else:
            con.execute("CREATE TEMP TABLE quarantine (batch_id VARCHAR, ordinal BIGINT)")
        row = con.execute(
            f"""WITH absorbed AS (
                  SELECT b.batch_id, b.ordinal, b.value FROM bronze AS b JOIN batches USING (batch_id)
                  WHERE batches.v <= {absorbed}
                ),
                placed AS (
                  SELECT a.*,
                    EXISTS (SELECT 1 FROM events AS e WHERE e._batch_id = a.batch_id AND e._ordinal = a.ordinal) AS in_events,
                    EXISTS (SELECT 1 FROM quarantine AS q WHERE q.batch_id = a.batch_id AND q.ordinal = a.ordinal) AS in_quarantine
                  FROM absorbed AS a
                )
                SELECT count(*),
                  count(*) FILTER (WHERE in_events),
                  count(*) FILTER (WHERE in_quarantine),
                  count(*) FILTER (WHERE in_events AND in_quarantine),
                  count(*) FILTER (WHERE NOT in_events AND NOT in_quarantine AND lower(trim(
                    CASE WHEN json_valid(value) THEN json_extract_string(value, '$.event_id') END))
                    IN (SELECT event_id FROM events)),
                  (SELECT count(*) FROM bronze WHERE batch_id NOT IN (SELECT batch_id FROM batches))
                FROM placed"""
        ).fetchone()
    finally:
        con.close()
    assert row is not None
    total, in_events, in_quarantine, both, duplicates, unmapped = (int(x) for x in row)
    result.expected = total
    result.found = in_events + in_quarantine - both + duplicates
    result.lost = total - result.found
    result.duplicated = both
    result.detail = (
        f"bronze rows up to version {absorbed}: {in_events} in silver.events, {in_quarantine} quarantined, "
        f"{duplicates} duplicates of a kept event"
        + (f"; {unmapped} rows of batches without a commit in the log (not checked)" if unmapped else "")
    )
    return result


__all__ = ["AUDIT_TABLE", "AuditResult", "audit", "bronze_vs_silver", "landing_vs_bronze"]


def audit(
    lake: Lake,
    run_id: str,
    *,
    store: bool = True,
    streaming: StreamingSettings | None = None,
    source_dsn: str | None = None,
) -> list[AuditResult]:
    """Every check (Kafka with `streaming`, PostgreSQL with `source_dsn`); stored in
    ops.source_audit unless `store` is False."""
    results = [landing_vs_bronze(lake)]
    if source_dsn is not None:
        results += postgres_vs_bronze(lake, source_dsn)
    if streaming is not None:
        results += kafka_vs_bronze(lake, streaming)
    results.append(bronze_vs_silver(lake))
    if store:
        at = datetime.now(UTC)
        rows = [asdict(r) | {"run_id": run_id, "checked_at": at} for r in results]
        delta.append(lake, AUDIT_TABLE, pa.Table.from_pylist(rows, schema=SCHEMA))
    return results
