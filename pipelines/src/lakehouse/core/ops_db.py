"""The pipeline's own records in the serving database, and what the BI role may read of them.

- `ops.publications`: one row per gold publication, inserted in the transaction that swaps the
  marts in, so its `publication_id` changes exactly when the published data does (the API's ETags
  and freshness read it: one indexed row).
- `ops.reconciliation`: every run's reconciliation records (the Delta table ops.reconciliation is
  the source; each run copies what PostgreSQL lacks, so a run that could not reach it is caught up
  by the next one).
- `realtime.consumer_lag`: records behind the log end per consumer group, sink and partition,
  upserted by the stream consumer where it measures the lag (once a second).
- `sql/serving_access.sql`: the `health` views over ops.* and the BI role's grants beyond gold
  (the speed layer's window tables, the consumer lag, the health views; never ops.* itself nor
  the stream offsets). Gold publication applies it; so do `lakehouse serve` and `make dashboard`.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from importlib import resources
from typing import Any

import psycopg
import pyarrow.compute as pc
from psycopg import sql
from psycopg.types.json import Jsonb

from lakehouse.core import delta, quality
from lakehouse.core import reconcile as reconcile_records
from lakehouse.core.reconcile import Reconciliation
from lakehouse.core.settings import PostgresSettings
from lakehouse.core.storage import Lake

log = logging.getLogger(__name__)

DDL = """
CREATE SCHEMA IF NOT EXISTS ops;
CREATE TABLE IF NOT EXISTS ops.publications (
    publication_id    bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    schema_name       text NOT NULL,
    published_at      timestamptz NOT NULL DEFAULT now(),
    tables            jsonb NOT NULL,
    dbt_invocation_id text
);
COMMENT ON TABLE ops.publications IS 'One row per gold publication (written in the swap transaction): tables -> rows';
CREATE TABLE IF NOT EXISTS ops.reconciliation (
    run_id      text NOT NULL,
    step        text NOT NULL,
    source      text NOT NULL,
    target      text NOT NULL,
    rows_in     bigint NOT NULL,
    inserted    bigint NOT NULL,
    updated     bigint NOT NULL,
    unchanged   bigint NOT NULL,
    quarantined bigint NOT NULL,
    duplicates  bigint NOT NULL,
    balanced    boolean NOT NULL,
    started_at  timestamptz NOT NULL,
    finished_at timestamptz NOT NULL,
    seconds     double precision NOT NULL,
    detail      text NOT NULL,
    PRIMARY KEY (run_id, step, source, target, started_at)
);
CREATE INDEX IF NOT EXISTS reconciliation_finished_at ON ops.reconciliation (finished_at);
CREATE SCHEMA IF NOT EXISTS realtime;
CREATE TABLE IF NOT EXISTS realtime.consumer_lag (
    consumer_group   text NOT NULL,
    topic            text NOT NULL,
    sink             text NOT NULL,
    kafka_partition  integer NOT NULL,
    lag_records      bigint NOT NULL,
    committed_offset bigint,
    updated_at       timestamptz NOT NULL,
    PRIMARY KEY (consumer_group, topic, sink, kafka_partition)
);
COMMENT ON TABLE realtime.consumer_lag IS 'Records behind the log end per consumer group, sink and partition (the stream consumer, each second)';
"""

# The speed layer's windowed tables: what it writes per window and what the API serves.
REALTIME_WINDOWS = (
    "events_per_minute",
    "logins_per_source",
    "purchases_per_minute",
    "orders_per_minute",
    "late_events",
    "rejected_events",
)
# The speed layer's tables a dashboard may read (never realtime.stream_offsets).
REALTIME_READABLE = (*REALTIME_WINDOWS, "stream_state", "consumer_lag")
# Readers that cache versions or tokens (the API) LISTEN here; a publication and a token change
# NOTIFY in their own transaction, so the message arrives exactly when the change is visible.
CHANNEL = "lakehouse_serving"
# Reconciliation rows already in PostgreSQL are looked for this far before its newest one.
CATCH_UP = timedelta(days=2)
_LOCK = "lakehouse.ops.schema"


def ensure(conn: psycopg.Connection[Any]) -> None:
    """Create the ops and realtime records (idempotent; concurrent callers queue on a lock)."""
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", [_LOCK])
        conn.execute(DDL)
        conn.execute(quality.PG_DDL)


def access_sql() -> str:
    return resources.files("lakehouse.core").joinpath("sql/serving_access.sql").read_text()


def grant_bi_access(conn: psycopg.Connection[Any], role: str) -> list[str]:
    """The health views and the BI role's grants beyond gold; returns the realtime tables granted
    (those that exist: the speed layer creates its own when it first runs)."""
    ensure(conn)
    ident = sql.Identifier(role).as_string(conn)
    granted = []
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", [_LOCK])
        conn.execute(access_sql().replace(':"bi_role"', ident))
        conn.execute(sql.SQL("GRANT USAGE ON SCHEMA realtime TO {}").format(sql.Identifier(role)))
        for name in REALTIME_READABLE:
            row = conn.execute("SELECT to_regclass(%s) IS NOT NULL", [f"realtime.{name}"]).fetchone()
            if row and row[0]:
                conn.execute(
                    sql.SQL("GRANT SELECT ON {} TO {}").format(
                        sql.Identifier("realtime", name), sql.Identifier(role)
                    )
                )
                granted.append(name)
    return granted


# -- publications ---------------------------------------------------------------------------------
def record_publication(
    conn: psycopg.Connection[Any], schema: str, tables: dict[str, int], dbt_invocation_id: str | None
) -> int:
    """Insert the publication row in the caller's transaction (the swap); returns its id."""
    row = conn.execute(
        "INSERT INTO ops.publications (schema_name, tables, dbt_invocation_id) VALUES (%s, %s, %s) "
        "RETURNING publication_id",
        [schema, Jsonb(tables), dbt_invocation_id],
    ).fetchone()
    assert row is not None
    conn.execute("SELECT pg_notify(%s, %s)", [CHANNEL, f"publication {row[0]}"])
    return int(row[0])


# -- reconciliation -------------------------------------------------------------------------------
_RECON_COLS = [f.name for f in reconcile_records.SCHEMA]


def publish_reconciliation(lake: Lake, serving: PostgresSettings) -> int | None:
    """Copy the reconciliation records PostgreSQL lacks from the Delta table (appended, never
    changed). Returns the rows added, or None when the serving database cannot be reached
    (logged; the next run catches up)."""
    dt = delta.open_table(lake, reconcile_records.TABLE)
    if dt is None:
        return 0
    try:
        with psycopg.connect(serving.serving_dsn, connect_timeout=5) as conn:
            conn.autocommit = True
            ensure(conn)
            conn.autocommit = False
            newest = conn.execute("SELECT max(finished_at) FROM ops.reconciliation").fetchone()
            data = delta.dataset(lake, dt)
            if newest and newest[0] is not None:
                cutoff: datetime = newest[0] - CATCH_UP
                table = data.to_table(filter=pc.field("finished_at") >= pc.scalar(cutoff))
            else:
                table = data.to_table()
            rows = [tuple(r[c] for c in _RECON_COLS) for r in table.select(_RECON_COLS).to_pylist()]
            with conn.cursor() as cur:
                cur.executemany(
                    sql.SQL("INSERT INTO ops.reconciliation ({}) VALUES ({}) ON CONFLICT DO NOTHING").format(
                        sql.SQL(", ").join(sql.Identifier(c) for c in _RECON_COLS),
                        sql.SQL(", ").join(sql.Placeholder() for _ in _RECON_COLS),
                    ),
                    rows,
                )
                added = cur.rowcount if cur.rowcount >= 0 else 0
            conn.commit()
            return added
    except psycopg.OperationalError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        log.warning("reconciliation not published to %s (the next run will): %s", serving.serving_db, first)
        return None


def record_reconciliation(lake: Lake, serving: PostgresSettings, recs: list[Reconciliation]) -> None:
    """Store `recs` (Delta; raises when a run does not balance) and publish them to PostgreSQL,
    an unbalanced run included: dashboards must show the failure too."""
    try:
        reconcile_records.record(lake, recs)
    finally:
        if recs:
            publish_reconciliation(lake, serving)


# -- consumer lag ---------------------------------------------------------------------------------
class ConsumerLagTable:
    """Upserts a consumer's lag per sink and partition into realtime.consumer_lag."""

    def __init__(self, serving: PostgresSettings, group: str, topic: str) -> None:
        self.dsn = serving.serving_dsn
        self.group = group
        self.topic = topic
        self.conn: psycopg.Connection[Any] | None = None
        self.failures = 0

    def write(self, sinks: dict[str, tuple[dict[int, int], dict[int, int]]]) -> bool:
        """`sinks`: sink -> (lag per partition, committed offset per partition). False when the
        serving database could not be written (counted, logged once; the consumer goes on)."""
        rows = [
            (self.group, self.topic, sink, p, n, committed.get(p))
            for sink, (lag, committed) in sinks.items()
            for p, n in lag.items()
        ]
        if not rows:
            return True
        try:
            if self.conn is None or self.conn.closed:
                self.conn = psycopg.connect(self.dsn, autocommit=True, connect_timeout=3)
                ensure(self.conn)
            with self.conn.cursor() as cur:
                cur.executemany(
                    "INSERT INTO realtime.consumer_lag AS t (consumer_group, topic, sink, kafka_partition, "
                    "lag_records, committed_offset, updated_at) VALUES (%s, %s, %s, %s, %s, %s, now()) "
                    "ON CONFLICT (consumer_group, topic, sink, kafka_partition) DO UPDATE SET "
                    "lag_records = EXCLUDED.lag_records, committed_offset = EXCLUDED.committed_offset, "
                    "updated_at = EXCLUDED.updated_at",
                    rows,
                )
            return True
        except psycopg.Error as exc:
            if self.failures == 0:
                first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                log.warning("consumer lag not written to realtime.consumer_lag: %s", first)
            self.failures += 1
            self.close()
            return False

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None
