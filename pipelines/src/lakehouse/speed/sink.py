"""The speed layer: one-minute tumbling windows with a watermark -> PostgreSQL realtime.*.

Each micro-batch is one PostgreSQL transaction that (1) locks this consumer's watermark state row
(`realtime.stream_state`; concurrent writers queue there) and checks its stored offsets
(`realtime.stream_offsets`), (2) adds the batch's counts to the window
rows with `INSERT ... ON CONFLICT DO UPDATE` (one statement per table), (3) stores the new offsets
and watermark. Counts are added exactly once because the offsets move in the same transaction
(a replay after a crash starts from them). No append-then-GROUP-BY: one row per window and key.

Every record is classified by silver's own SQL (`silver.classify`): the same contract, spellings,
reference data and FX rates, so a record the speed layer counts is one silver keeps. Event time is
the event's normalised `ts`. The watermark is the largest event time seen minus the allowed
lateness (events too far in the future are quarantined by the contract and do not move it). An event whose window ended at or
before the watermark (as it stood when its batch started) is *late*: it is not added to the
windows but counted in `realtime.late_events` per window, reported in the metrics, and it still
reaches bronze and silver through the bronze consumer. Records that are not valid events are
counted in `realtime.rejected_events` under their first reason code (silver's codes: silver
quarantines them), and repeats of an event within a batch under `duplicate`.
"""

from __future__ import annotations

import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import psycopg
from confluent_kafka import Message

from lakehouse.bronze.kafka_sink import records_table
from lakehouse.bronze.stream_sink import FlushResult, Sink
from lakehouse.core.ops_db import REALTIME_WINDOWS
from lakehouse.silver.classify import BatchClassifier

SCHEMA_SQL = """
CREATE SCHEMA IF NOT EXISTS realtime;
CREATE TABLE IF NOT EXISTS realtime.events_per_minute (
    window_start timestamptz NOT NULL, event_type text NOT NULL, event_count bigint NOT NULL,
    updated_at timestamptz NOT NULL, PRIMARY KEY (window_start, event_type));
CREATE TABLE IF NOT EXISTS realtime.logins_per_source (
    window_start timestamptz NOT NULL, source text NOT NULL, login_count bigint NOT NULL,
    updated_at timestamptz NOT NULL, PRIMARY KEY (window_start, source));
CREATE TABLE IF NOT EXISTS realtime.purchases_per_minute (
    window_start timestamptz PRIMARY KEY, purchase_count bigint NOT NULL, updated_at timestamptz NOT NULL);
CREATE TABLE IF NOT EXISTS realtime.orders_per_minute (
    window_start timestamptz PRIMARY KEY, orders bigint NOT NULL, units bigint NOT NULL,
    gmv_usd numeric(18, 2) NOT NULL, updated_at timestamptz NOT NULL);
CREATE TABLE IF NOT EXISTS realtime.late_events (
    window_start timestamptz PRIMARY KEY, late_count bigint NOT NULL, updated_at timestamptz NOT NULL);
CREATE TABLE IF NOT EXISTS realtime.rejected_events (
    reason text PRIMARY KEY, rejected_count bigint NOT NULL, updated_at timestamptz NOT NULL);
CREATE TABLE IF NOT EXISTS realtime.stream_offsets (
    consumer text NOT NULL, topic text NOT NULL, kafka_partition integer NOT NULL,
    next_offset bigint NOT NULL, updated_at timestamptz NOT NULL,
    PRIMARY KEY (consumer, topic, kafka_partition));
CREATE TABLE IF NOT EXISTS realtime.stream_state (
    consumer text NOT NULL, topic text NOT NULL, max_event_time timestamptz,
    watermark timestamptz, records bigint NOT NULL DEFAULT 0, late bigint NOT NULL DEFAULT 0,
    rejected bigint NOT NULL DEFAULT 0, updated_at timestamptz NOT NULL, PRIMARY KEY (consumer, topic));
"""

TABLES = REALTIME_WINDOWS

# realtime.orders_per_minute.gmv_usd is in US dollars whatever silver's base currency is.
GMV_CURRENCY = "USD"


def ensure_schema(conn: psycopg.Connection[Any]) -> None:
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(hashtext('lakehouse.realtime.schema'))")
        conn.execute(SCHEMA_SQL)


class SpeedSink(Sink):
    """Windows of `window_seconds` with `allowed_lateness_seconds`, into the serving database."""

    name = "speed"

    def __init__(
        self,
        dsn: str,
        topic: str,
        consumer: str,
        max_seconds: float,
        window_seconds: int = 60,
        allowed_lateness_seconds: int = 120,
        future_tolerance_seconds: int = 24 * 3600,
        max_rows: int = 200_000,
    ) -> None:
        super().__init__(topic, max_rows, max_seconds)
        self.dsn = dsn
        self.consumer_name = consumer
        self.window = window_seconds
        self.lateness = timedelta(seconds=allowed_lateness_seconds)
        self.classifier = BatchClassifier(GMV_CURRENCY, int(future_tolerance_seconds // 3600))
        self.conn = psycopg.connect(dsn, autocommit=True)
        ensure_schema(self.conn)
        self.conn.autocommit = False
        self.watermark: datetime | None = None

    def close(self) -> None:
        self.conn.close()
        self.classifier.close()

    def load_offsets(self, partitions: list[int]) -> dict[int, int | None]:
        rows = self.conn.execute(
            "SELECT kafka_partition, next_offset FROM realtime.stream_offsets WHERE consumer = %s AND topic = %s",
            (self.consumer_name, self.topic),
        ).fetchall()
        self.conn.commit()
        stored = {int(p): int(o) for p, o in rows}
        return {p: stored.get(p) for p in partitions}

    def write(
        self, batch: dict[int, list[Message]], expected: dict[int, int | None], new: dict[int, int]
    ) -> FlushResult:
        conn = self.conn
        key = (self.consumer_name, self.topic)
        try:
            with conn.transaction():
                # every writer of (consumer, topic) locks the state row first: one at a time, and
                # the offsets read next (READ COMMITTED: a fresh snapshot) include the last commit
                conn.execute(
                    "INSERT INTO realtime.stream_state (consumer, topic, updated_at) VALUES (%s, %s, now()) "
                    "ON CONFLICT DO NOTHING",
                    key,
                )
                (max_ts,) = conn.execute(
                    "SELECT max_event_time FROM realtime.stream_state WHERE consumer = %s AND topic = %s FOR UPDATE",
                    key,
                ).fetchone() or (None,)
                rows = conn.execute(
                    "SELECT kafka_partition, next_offset FROM realtime.stream_offsets "
                    "WHERE consumer = %s AND topic = %s",
                    key,
                ).fetchall()
                stored = {int(p): int(o) for p, o in rows}
                conflicts = {p: stored.get(p) for p in batch if stored.get(p) != expected[p]}
                if conflicts:
                    return FlushResult(conflicts=conflicts)
                result, agg, max_ts = self._aggregate(batch, max_ts)
                self._upsert(conn, agg)
                watermark = max_ts - self.lateness if max_ts else None
                conn.execute(
                    "INSERT INTO realtime.stream_offsets (consumer, topic, kafka_partition, next_offset, updated_at) "
                    "SELECT %s, %s, p, o, now() FROM unnest(%s::int[], %s::bigint[]) AS t(p, o) "
                    "ON CONFLICT (consumer, topic, kafka_partition) DO UPDATE "
                    "SET next_offset = EXCLUDED.next_offset, updated_at = EXCLUDED.updated_at",
                    (*key, list(new), [new[p] for p in new]),
                )
                conn.execute(
                    "UPDATE realtime.stream_state SET max_event_time = %s, watermark = %s, records = records + %s, "
                    "late = late + %s, rejected = rejected + %s, updated_at = now() WHERE consumer = %s AND topic = %s",
                    (max_ts, watermark, result.records, result.late, sum(result.rejected.values()), *key),
                )
        finally:
            if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
                conn.rollback()
        visible = time.time()
        result.freshness = [visible - s for s in result.freshness]  # kafka stamps -> latency
        result.event_freshness = [visible - s for s in result.event_freshness]
        self.watermark = watermark
        return result

    def _aggregate(
        self, batch: dict[int, list[Message]], max_ts: datetime | None
    ) -> tuple[FlushResult, dict[str, Counter[Any]], datetime | None]:
        # windows are keyed by their start in epoch seconds here (cheap), datetimes in _upsert
        win = self.window
        watermark = max_ts.timestamp() - self.lateness.total_seconds() if max_ts else None
        rows, _ = records_table(self.topic, batch, "speed", datetime.now(UTC))
        verdicts = self.classifier.classify(rows).to_pylist()
        stamp_of = rows.column("kafka_timestamp").to_pylist()
        per_type: Counter[tuple[int, str]] = Counter()
        logins: Counter[tuple[int, str]] = Counter()
        purchases: Counter[int] = Counter()
        orders: Counter[int] = Counter()
        units: Counter[int] = Counter()
        gmv: Counter[int] = Counter()
        late: Counter[int] = Counter()
        rejected: Counter[str] = Counter()
        stamps: list[float] = []
        event_times: list[float] = []
        counted = 0
        new_max = max_ts.timestamp() if max_ts else None
        for v in verdicts:
            if v["outcome"] == "quarantine":
                rejected[v["reasons"][0]] += 1
                continue
            if v["outcome"] == "duplicate":
                rejected["duplicate"] += 1
                continue
            ts = v["ts"].timestamp()
            start = int(ts // win) * win
            if watermark is not None and start + win <= watermark:
                late[start] += 1
                continue
            if new_max is None or ts > new_max:
                new_max = ts
            counted += 1
            stamp = stamp_of[v["ordinal"]]
            if stamp is not None:
                stamps.append(stamp.timestamp())
            event_times.append(ts)
            etype = v["event_type"]
            per_type[(start, etype)] += 1
            if etype == "login":
                logins[(start, v["source"] or "unknown")] += 1
            elif etype == "purchase":
                purchases[start] += 1
                orders[start] += 1
                units[start] += v["quantity"]
                gmv[start] += v["amount_base"]
        result = FlushResult(
            records=rows.num_rows,
            late=sum(late.values()),
            rejected=dict(rejected),
            counted=counted,
            freshness=stamps,
            event_freshness=event_times,
        )
        agg: dict[str, Counter[Any]] = {
            "per_type": per_type,
            "logins": logins,
            "purchases": purchases,
            "orders": orders,
            "units": units,
            "gmv": gmv,
            "late": late,
            "rejected": rejected,
        }
        return result, agg, (datetime.fromtimestamp(new_max, UTC) if new_max is not None else None)

    @staticmethod
    def _upsert(conn: psycopg.Connection[Any], agg: dict[str, Counter[Any]]) -> None:
        def when(start: int) -> datetime:
            return datetime.fromtimestamp(start, UTC)

        if agg["per_type"]:
            ks = list(agg["per_type"])
            conn.execute(
                "INSERT INTO realtime.events_per_minute AS t (window_start, event_type, event_count, updated_at) "
                "SELECT w, e, n, now() FROM unnest(%s::timestamptz[], %s::text[], %s::bigint[]) AS u(w, e, n) "
                "ON CONFLICT (window_start, event_type) DO UPDATE "
                "SET event_count = t.event_count + EXCLUDED.event_count, updated_at = EXCLUDED.updated_at",
                ([when(k[0]) for k in ks], [k[1] for k in ks], [agg["per_type"][k] for k in ks]),
            )
        if agg["logins"]:
            ks = list(agg["logins"])
            conn.execute(
                "INSERT INTO realtime.logins_per_source AS t (window_start, source, login_count, updated_at) "
                "SELECT w, s, n, now() FROM unnest(%s::timestamptz[], %s::text[], %s::bigint[]) AS u(w, s, n) "
                "ON CONFLICT (window_start, source) DO UPDATE "
                "SET login_count = t.login_count + EXCLUDED.login_count, updated_at = EXCLUDED.updated_at",
                ([when(k[0]) for k in ks], [k[1] for k in ks], [agg["logins"][k] for k in ks]),
            )
        if agg["purchases"]:
            ws = list(agg["purchases"])
            conn.execute(
                "INSERT INTO realtime.purchases_per_minute AS t (window_start, purchase_count, updated_at) "
                "SELECT w, n, now() FROM unnest(%s::timestamptz[], %s::bigint[]) AS u(w, n) "
                "ON CONFLICT (window_start) DO UPDATE "
                "SET purchase_count = t.purchase_count + EXCLUDED.purchase_count, updated_at = EXCLUDED.updated_at",
                ([when(w) for w in ws], [agg["purchases"][w] for w in ws]),
            )
            conn.execute(
                "INSERT INTO realtime.orders_per_minute AS t (window_start, orders, units, gmv_usd, updated_at) "
                "SELECT w, o, u, g, now() FROM unnest(%s::timestamptz[], %s::bigint[], %s::bigint[], %s::numeric[]) "
                "AS x(w, o, u, g) ON CONFLICT (window_start) DO UPDATE SET orders = t.orders + EXCLUDED.orders, "
                "units = t.units + EXCLUDED.units, gmv_usd = t.gmv_usd + EXCLUDED.gmv_usd, "
                "updated_at = EXCLUDED.updated_at",
                (
                    [when(w) for w in ws],
                    [agg["orders"][w] for w in ws],
                    [agg["units"][w] for w in ws],
                    [round(Decimal(agg["gmv"][w]), 2) for w in ws],
                ),
            )
        if agg["late"]:
            ws = list(agg["late"])
            conn.execute(
                "INSERT INTO realtime.late_events AS t (window_start, late_count, updated_at) "
                "SELECT w, n, now() FROM unnest(%s::timestamptz[], %s::bigint[]) AS u(w, n) "
                "ON CONFLICT (window_start) DO UPDATE "
                "SET late_count = t.late_count + EXCLUDED.late_count, updated_at = EXCLUDED.updated_at",
                ([when(w) for w in ws], [agg["late"][w] for w in ws]),
            )
        if agg["rejected"]:
            rs = list(agg["rejected"])
            conn.execute(
                "INSERT INTO realtime.rejected_events AS t (reason, rejected_count, updated_at) "
                "SELECT r, n, now() FROM unnest(%s::text[], %s::bigint[]) AS u(r, n) "
                "ON CONFLICT (reason) DO UPDATE "
                "SET rejected_count = t.rejected_count + EXCLUDED.rejected_count, updated_at = EXCLUDED.updated_at",
                (rs, [agg["rejected"][r] for r in rs]),
            )


def restart_offsets(dsn: str, topic: str) -> int:
    """Forget every consumer's stored offsets of `topic` (a topic created anew starts at 0 again);
    the window counts stay. Returns how many partitions' offsets were dropped."""
    with psycopg.connect(dsn) as conn:
        exists = conn.execute("SELECT to_regclass('realtime.stream_offsets') IS NOT NULL").fetchone()
        if not exists or not exists[0]:
            return 0
        return conn.execute("DELETE FROM realtime.stream_offsets WHERE topic = %s", (topic,)).rowcount


def stored_offsets(dsn: str, consumer: str, topic: str) -> dict[int, int]:
    """The speed layer's stored next offsets (for `stream status`); {} before its first commit."""
    try:
        with psycopg.connect(dsn, connect_timeout=3) as conn:
            rows = conn.execute(
                "SELECT kafka_partition, next_offset FROM realtime.stream_offsets WHERE consumer = %s AND topic = %s",
                (consumer, topic),
            ).fetchall()
    except psycopg.Error:
        return {}
    return {int(p): int(o) for p, o in rows}
