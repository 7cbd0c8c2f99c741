"""The speed layer (windows, watermark, late events, upserts) and the stream metrics/status,
against the real broker and PostgreSQL."""

from __future__ import annotations

import json
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import psycopg
import pytest
from confluent_kafka import Producer
from typer.testing import CliRunner

from lakehouse.app import jobs as lake_jobs
from lakehouse.app import streaming as jobs
from lakehouse.app.cli.stream import app as stream_app
from lakehouse.core import ops_db
from lakehouse.core.settings import Settings
from lakehouse.core.storage import Lake
from lakehouse.generator import kafka_producer as producer
from lakehouse.services import Broker, local_broker
from lakehouse.services.process import free_port

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def broker(settings_factory: Any) -> Iterator[Broker]:
    """The default local broker (Apache Kafka from `make jars-kafka`) on a free port."""
    svc = local_broker(settings_factory({"streaming.broker_port": free_port()}))
    svc.start()
    try:
        yield svc
    finally:
        svc.stop()


def topic_settings(settings_factory: Any, broker: Broker, dbname: str, **extra: Any) -> Settings:
    settings = settings_factory(
        {
            "streaming.broker_port": broker.port,
            "streaming.topic": f"t-{uuid.uuid4().hex[:10]}",
            "postgres.serving_db": dbname,
            **extra,
        }
    )
    local_broker(settings).ensure_topic()
    return settings


def event(n: int, ts: str | int, etype: str = "page_view", **extra: Any) -> bytes:
    body = {"event_id": f"00000000-0000-4000-8000-{n:012d}", "user_id": n, "event_type": etype, "ts": ts}
    body.update({"page": "/", "source": "web", "device": "desktop", "country": "US"})
    body.update(extra)
    return json.dumps(body).encode()


def send(settings: Settings, values: list[bytes]) -> None:
    p = Producer({"bootstrap.servers": settings.streaming.servers})
    for v in values:
        p.produce(settings.streaming.topic, value=v, key=b"k")  # one key: one partition, in order
    assert p.flush(30) == 0


def rows(conn: psycopg.Connection[Any], sql: str) -> list[tuple[Any, ...]]:
    out = conn.execute(sql).fetchall()
    conn.commit()
    return out


def t(minute: int, second: int = 0) -> datetime:
    return datetime(2026, 11, 22, 12, minute, second, tzinfo=UTC)


def test_windows_watermark_late_events_and_idempotent_upserts(
    settings_factory: Any, broker: Broker, pg_conn: psycopg.Connection[Any]
) -> None:
    settings = topic_settings(settings_factory, broker, pg_conn.info.dbname)
    send(
        settings,
        [
            event(1, "2026-11-22T12:00:05Z"),
            event(2, "2026-11-22T12:00:10Z"),
            event(3, "2026-11-22T13:00:15+01:00"),  # same instant zone, other offset: 12:00:15Z
            event(4, "2026-11-22T12:00:20Z", "login", source="ios"),
            event(5, "2026-11-22T12:00:25Z", "login", source=" Web "),
            event(6, "2026-11-22T12:00:30Z", "purchase", product_id=1, price=9.2, quantity=2, currency="EUR"),
            event(7, int(t(1, 0).timestamp() * 1000), "click"),  # epoch milliseconds
            event(8, "2026-11-22T12:05:00Z", "logout"),  # moves the watermark to 12:03:00
            b"{broken",
        ],
    )
    first = jobs.consume(settings, "speed-1", available_now=True)
    assert first.summary.records == {"bronze": 9, "speed": 9}
    # next batch: behind the watermark (12:03) -> late; the 12:03 window is still open
    send(
        settings,
        [
            event(9, "2026-11-22T12:00:40Z"),  # window 12:00 ended 12:01 <= 12:03: late
            event(10, "2026-11-22T12:02:59Z"),  # window 12:02 ends 12:03 = watermark: late
            event(11, "2026-11-22T12:03:10Z"),  # window 12:03 ends 12:04: on time
        ],
    )
    second = jobs.consume(settings, "speed-2", available_now=True)
    assert second.summary.records == {"bronze": 3, "speed": 3}
    assert all(r.balanced for r in first.recs + second.recs), first.recs + second.recs

    def snapshot() -> dict[str, list[tuple[Any, ...]]]:
        return {
            "events": rows(
                pg_conn,
                "SELECT window_start, event_type, event_count FROM realtime.events_per_minute ORDER BY 1, 2",
            ),
            "logins": rows(
                pg_conn,
                "SELECT window_start, source, login_count FROM realtime.logins_per_source ORDER BY 1, 2",
            ),
            "purchases": rows(
                pg_conn, "SELECT window_start, purchase_count FROM realtime.purchases_per_minute"
            ),
            "orders": rows(
                pg_conn, "SELECT window_start, orders, units, gmv_usd FROM realtime.orders_per_minute"
            ),
            "late": rows(pg_conn, "SELECT window_start, late_count FROM realtime.late_events ORDER BY 1"),
            "rejected": rows(pg_conn, "SELECT reason, rejected_count FROM realtime.rejected_events"),
        }

    got = snapshot()
    assert got["events"] == [
        (t(0), "login", 2),
        (t(0), "page_view", 3),
        (t(0), "purchase", 1),
        (t(1), "click", 1),
        (t(3), "page_view", 1),
        (t(5), "logout", 1),
    ]
    assert got["logins"] == [(t(0), "mobile", 1), (t(0), "web", 1)]
    assert got["purchases"] == [(t(0), 1)]
    assert got["orders"] == [
        (t(0), 1, 2, Decimal("19.78"))
    ]  # 2 x 9.20 EUR at 0.93 EUR/USD (rate from 2026-11-04)
    assert got["late"] == [(t(0), 1), (t(2), 1)]
    assert got["rejected"] == [("malformed_json", 1)]
    (watermark,) = rows(pg_conn, "SELECT watermark FROM realtime.stream_state")[0]
    assert watermark == t(3)
    # idempotent: another drain with nothing new changes nothing; a replay (offsets rolled back
    # together with the counts by a crash) is covered by the SIGKILL test
    again = jobs.consume(settings, "speed-3", available_now=True)
    assert again.summary.records == {"bronze": 0, "speed": 0}
    assert snapshot() == got
    # late events still reach bronze and silver
    lake = Lake(settings)
    lake_jobs.silver(lake, settings, "speed-silver")
    ids = lake.table("silver.events").to_pyarrow_table(columns=["event_id"])["event_id"]
    late_ids = {"00000000-0000-4000-8000-000000000009", "00000000-0000-4000-8000-000000000010"}
    assert late_ids <= set(ids.to_pylist())
    assert len(set(ids.to_pylist())) == 11  # every valid event, late or not


def test_metrics_endpoint_freshness_and_status(
    settings_factory: Any, broker: Broker, pg_conn: psycopg.Connection[Any]
) -> None:
    settings = topic_settings(
        settings_factory,
        broker,
        pg_conn.info.dbname,
        **{"streaming.batch_max_seconds": 0.5, "streaming.speed_batch_max_seconds": 0.25},
    )
    # what a first gold publication sets up: the health views the quality metrics read
    with psycopg.connect(settings.postgres.serving_dsn, autocommit=True) as conn:
        conn.execute(
            "DO $$BEGIN CREATE ROLE metrics_bi NOLOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END$$"
        )
        ops_db.grant_bi_access(conn, "metrics_bi")
    port = free_port()
    stop = threading.Event()
    results: list[Any] = []
    errors: list[BaseException] = []

    def consume() -> None:
        try:
            results.append(
                jobs.consume(
                    settings, "metrics", metrics_port=port, max_seconds=60, use_group=False, stop=stop
                )
            )
        except BaseException as exc:
            errors.append(exc)

    runner = threading.Thread(target=consume)
    runner.start()
    try:
        stats = producer.produce(settings.generator, settings.streaming, 1200, 200.0, seed=81)
        time.sleep(2)
        body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
        # listening on loopback only (0100007F = 127.0.0.1 in /proc/net/tcp)
        with open("/proc/net/tcp") as fh:
            listen = [ln.split()[1] for ln in fh.readlines()[1:] if ln.split()[3] == "0A"]
        assert f"0100007F:{port:04X}" in listen
        assert not [a for a in listen if a.endswith(f":{port:04X}") and a != f"0100007F:{port:04X}"]
        result = CliRunner().invoke(
            stream_app,
            [
                "status",
                "--set",
                f"state_dir={settings.state_path}",
                "--set",
                f"lake_root={settings.lake_uri}",
                "--set",
                f"streaming.broker_port={broker.port}",
                "--set",
                f"streaming.topic={settings.streaming.topic}",
                "--set",
                f"postgres.port={settings.postgres.port}",
                "--set",
                f"postgres.serving_db={settings.postgres.serving_db}",
            ],
        )
    finally:
        stop.set()
        runner.join(timeout=60)
    assert not errors, errors
    assert result.exit_code == 0, result.output
    for metric in (
        "lakehouse_stream_records_total",
        "lakehouse_stream_consumer_lag",
        "lakehouse_stream_processing_rate",
        "lakehouse_stream_freshness_seconds_bucket",
        "lakehouse_stream_commit_seconds",
        "lakehouse_stream_watermark_timestamp",
    ):
        assert metric in body, metric
    # beside the stream metrics: quality and reconciliation, read from the serving database
    assert "lakehouse_health_up 1.0" in body, [ln for ln in body.splitlines() if "health" in ln]
    records = {
        line.split('"')[1]: float(line.rsplit(" ", 1)[1])
        for line in body.splitlines()
        if line.startswith("lakehouse_stream_records_total{")
    }
    assert records["bronze"] == records["speed"] == stats.records  # all caught up
    snap = results[0].metrics.snapshot()
    assert snap.sinks["bronze"].records == stats.records
    assert (snap.sinks["speed"].freshness_p95 or 99) < 5.0
    assert (snap.sinks["bronze"].freshness_p95 or 99) < 5.0
    assert "bronze offset" in result.output and "speed offset" in result.output
    assert f"Topic {settings.streaming.topic}" in result.output
    assert "Consumer group lakehouse-bronze" in result.output
