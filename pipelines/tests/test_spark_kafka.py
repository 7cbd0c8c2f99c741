"""Kafka -> bronze.events on Spark Structured Streaming against a real Apache Kafka broker (KRaft,
jars from `make jars-kafka`), checked against the embedded consumer and the topic itself.

Parity compares every bronze column through an independent reader (DuckDB `delta_scan`) except
the three that differ by nature between two runs: `ingestion_time`, `batch_id` and `ordinal`
(a row's place in its commit; the engines cut commits differently). The exactly-once checks read
the topic back from its start: every (partition, offset) in bronze once, with the same bytes.

`make test` runs the one-line refusals (they need no Spark session); parity with the rerun, the
hand-over in both directions, SCRAM + TLS and the SIGKILL test (the CLI's process tree killed
repeatedly) are spark_long (`make test-spark`): on this 2-core machine under load, parity alone
took over two minutes with the JVM's start.
"""

from __future__ import annotations

import dataclasses
import os
import random
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Producer

from lakehouse.app import audit_kafka
from lakehouse.bronze import kafka_sink, spark_kafka
from lakehouse.bronze.kafka_consumer import StreamRunner
from lakehouse.bronze.kafka_sink import BronzeSink
from lakehouse.core import ownership
from lakehouse.core.jvm import JvmError, find_java, load_bundle
from lakehouse.core.kafka import BrokerUnavailable
from lakehouse.core.settings import KAFKA_PASSWORD_ENV, Settings
from lakehouse.core.storage import Lake
from lakehouse.services.apache_kafka import ApacheKafka
from lakehouse.services.process import free_port
from sparkhelpers import spark_session
from test_streaming_exactly_once import PIPELINES, assert_exactly_once, cli_env, read_topic

pytestmark = [pytest.mark.spark, pytest.mark.slow]

# the columns compared row for row; left out: ingestion_time, batch_id, ordinal (per run)
COLUMNS = (
    "value, raw_bytes, source_system, source_file, source_line, topic, kafka_partition, "
    "kafka_offset, kafka_key, kafka_timestamp"
)


@pytest.fixture(scope="module")
def kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApacheKafka]:
    try:
        find_java()
        load_bundle("kafka")
    except JvmError as exc:
        pytest.skip(f"Apache Kafka not runnable here: {exc}")
    svc = ApacheKafka(
        base=tmp_path_factory.mktemp("state") / "apache-kafka",
        port=free_port(),
        topic="user-events",
        partitions=3,
    )
    svc.start()
    try:
        yield svc
    finally:
        svc.stop()


@pytest.fixture(scope="module")
def spark(settings_factory: Any) -> Iterator[Any]:
    yield from spark_session(settings_factory, "lakehouse-spark-kafka")


def topic_settings(settings_factory: Any, kafka: ApacheKafka, **extra: Any) -> Settings:
    """Settings with a fresh lake and a fresh 3-partition topic (created now) on the broker."""
    settings = settings_factory(
        {
            "streaming.broker_port": kafka.port,
            "streaming.topic": f"t-{uuid.uuid4().hex[:10]}",
            "streaming.batch_max_rows": 150,
            "streaming.batch_max_seconds": 0.2,
            **extra,
        }
    )
    s = settings.streaming
    dataclasses.replace(kafka, topic=s.topic, partitions=s.partitions).ensure_topic()
    return settings


def same_topic(settings: Settings, settings_factory: Any) -> Settings:
    """The same topic and broker, another (new, empty) lake."""
    s = settings.streaming
    return settings_factory(
        {
            "streaming.broker_port": s.broker_port,
            "streaming.topic": s.topic,
            "streaming.batch_max_rows": s.batch_max_rows,
            "streaming.batch_max_seconds": s.batch_max_seconds,
        }
    )


def produce(settings: Settings, records: list[tuple[bytes | None, bytes | None, int | None]]) -> None:
    p = Producer({"bootstrap.servers": settings.streaming.servers, "enable.idempotence": True})
    for i, (key, value, ts) in enumerate(records):
        kwargs: dict[str, Any] = {"key": key, "value": value, "partition": i % 3}
        if ts is not None:
            kwargs["timestamp"] = ts
        p.produce(settings.streaming.topic, **kwargs)
    assert p.flush(30) == 0


def events(n: int, start: int = 0) -> list[tuple[bytes | None, bytes | None, int | None]]:
    return [
        (
            f"u{i % 17}".encode(),
            f'{{"event_id":"e{i}","user_id":{i % 17},"event_type":"click","ts":"2026-11-22T08:00:00Z"}}'.encode(),
            None,
        )
        for i in range(start, start + n)
    ]


def embedded(settings: Settings) -> int:
    """The embedded consumer drains the topic into bronze (no speed layer, no PostgreSQL)."""
    s = settings.streaming
    sink = BronzeSink(Lake(settings), s.topic, s.batch_max_rows, s.batch_max_seconds, "embedded")
    summary = StreamRunner(s, [sink], s.bronze_group, available_now=True, assign_all=True).run(
        max_seconds=120
    )
    return summary.records["bronze"]


def bronze_rows(settings: Settings) -> list[dict[str, Any]]:
    con = Lake(settings).duckdb_with_delta()
    uri = Lake(settings).table_uri("bronze.events")
    query = f"SELECT {COLUMNS} FROM delta_scan('{uri}') ORDER BY kafka_partition, kafka_offset"
    return con.execute(query).to_arrow_table().to_pylist()


def watermarks(settings: Settings) -> dict[int, int | None]:
    return kafka_sink.stored_offsets(Lake(settings), settings.streaming.topic, [0, 1, 2])


@pytest.mark.spark_long
def test_spark_stream_matches_the_embedded_consumer_and_a_rerun_adds_nothing(
    settings_factory: Any, kafka: ApacheKafka, spark: Any
) -> None:
    settings = topic_settings(settings_factory, kafka)
    poison: list[tuple[bytes | None, bytes | None, int | None]] = [
        (b"k1", b"\xff\xfe not utf-8 at all", None),
        (None, None, None),  # a tombstone
        (b"k3", b"", 1_700_000_000_123),
        (b"\xc3\x28", b'{"event_id":"bad-key"}', None),  # the key is not UTF-8
        (b"k5", "caf\u00e9 \u2603".encode(), 0),  # the epoch itself
        (None, b"x" * 100_000, None),
    ]
    produce(settings, [*events(400), *poison, *events(100, 400)])
    other = same_topic(settings, settings_factory)
    assert embedded(settings) == 506
    result = spark_kafka.stream(spark, Lake(other), other.streaming, "spark-1")
    assert result.rows == result.advanced == 506
    assert result.checkpoint_reset == "no checkpoint yet"
    assert result.starting == {0: -2, 1: -2, 2: -2}
    ours, theirs = bronze_rows(other), bronze_rows(settings)
    assert len(ours) == 506 and ours == theirs
    keys = {r["kafka_key"] for r in ours}
    assert "\\xc3(" in keys and None in keys
    assert watermarks(other) == watermarks(settings) == {0: 169, 1: 169, 2: 168}
    assert ownership.owner(Lake(other), "bronze.events") == ownership.SPARK
    assert assert_exactly_once(other) == 506

    # a rerun with nothing new: the checkpoint continues, no commit is made
    version = Lake(other).table("bronze.events").version()
    again = spark_kafka.stream(spark, Lake(other), other.streaming, "spark-2")
    assert again.checkpoint_reset is None
    assert (again.rows, again.commits) == (0, 0)
    assert Lake(other).table("bronze.events").version() == version

    # new records: only they are read, from the checkpoint
    produce(other, events(30, 1000))
    more = spark_kafka.stream(spark, Lake(other), other.streaming, "spark-3")
    assert more.checkpoint_reset is None and more.rows == more.advanced == 30
    assert assert_exactly_once(other) == 536


def test_refusals_are_one_line_before_spark_reads(settings_factory: Any, kafka: ApacheKafka) -> None:
    spark: Any = None  # refused before a session is needed: no JVM started for this test
    settings = topic_settings(settings_factory, kafka)
    produce(settings, events(10))
    assert embedded(settings) == 10  # bronze.events now belongs to the embedded engine
    with pytest.raises(ownership.OwnershipError) as refused:
        spark_kafka.stream(spark, Lake(settings), settings.streaming, "refused")
    assert "written by the embedded engine" in str(refused.value) and "\n" not in str(refused.value)
    assert watermarks(settings) == {0: 4, 1: 3, 2: 3}  # untouched

    nobody = settings_factory({"streaming.broker_port": free_port(), "streaming.topic": "x"})
    with pytest.raises(BrokerUnavailable, match=r"^broker not running at 127\.0\.0\.1:\d+"):
        spark_kafka.stream(spark, Lake(nobody), nobody.streaming, "no-broker")


@pytest.mark.spark_long
def test_hand_over_embedded_to_spark_and_back_mid_stream(
    settings_factory: Any, kafka: ApacheKafka, spark: Any
) -> None:
    """Embedded, then Spark (starting at the embedded watermarks, no checkpoint), then embedded
    again, then Spark again (its checkpoint is behind the table now: discarded), while records
    keep arriving between the runs: every offset in bronze once."""
    settings = topic_settings(settings_factory, kafka)
    lake = Lake(settings)
    produce(settings, events(200))
    assert embedded(settings) == 200
    before = watermarks(settings)
    produce(settings, events(100, 200))

    ownership.hand_over(lake, "bronze.events", ownership.SPARK)
    first = spark_kafka.stream(spark, lake, settings.streaming, "spark-a")
    assert first.starting == before  # the embedded consumer's watermarks, not the beginning
    assert first.rows == first.advanced == 100
    assert assert_exactly_once(settings) == 300

    produce(settings, events(60, 300))
    ownership.hand_over(lake, "bronze.events", ownership.EMBEDDED)
    assert embedded(settings) == 60  # continues from Spark's watermarks
    assert assert_exactly_once(settings) == 360

    produce(settings, events(30, 360))
    ownership.hand_over(lake, "bronze.events", ownership.SPARK)
    last = spark_kafka.stream(spark, lake, settings.streaming, "spark-b")
    assert last.checkpoint_reset is not None and "differ" in last.checkpoint_reset
    assert last.rows == 30
    assert assert_exactly_once(settings) == 390
    # the source audit reads Spark's watermarks and rows as it reads the embedded consumer's
    (audit,) = audit_kafka.kafka_vs_bronze(lake, settings.streaming)
    assert audit.ok and audit.expected == audit.found == 390, audit


def stream_cmd(settings: Settings, *args: str) -> list[str]:
    s = settings.streaming
    sets = {
        "state_dir": str(settings.state_path),
        "lake_root": settings.lake_uri,
        "postgres.port": settings.postgres.port,
        "streaming.broker_port": s.broker_port,
        "streaming.topic": s.topic,
        "streaming.batch_max_rows": s.batch_max_rows,
    }
    cmd = [sys.executable, "-m", "lakehouse", "spark", "stream-bronze", *args]
    for key, value in sets.items():
        cmd += ["--set", f"{key}={value}"]
    return cmd


def test_cli_refuses_an_unreachable_broker_and_a_missing_jar_cache_in_one_line(
    settings_factory: Any, kafka: ApacheKafka, tmp_path: Path
) -> None:
    def refused(settings: Settings, env: dict[str, str]) -> str:
        done = subprocess.run(stream_cmd(settings), cwd=PIPELINES, env=env, capture_output=True, timeout=120)
        assert done.returncode != 0
        lines = [line for line in done.stderr.decode().splitlines() if line.strip()]
        assert len(lines) == 1, done.stderr.decode()
        return lines[0]

    nobody = settings_factory({"streaming.broker_port": free_port(), "streaming.topic": "x"})
    assert "broker not running at 127.0.0.1" in refused(nobody, cli_env())
    settings = topic_settings(settings_factory, kafka)
    no_jars = {**cli_env(), "LAKEHOUSE_JVM_CACHE": str(tmp_path / "nowhere")}
    assert "no spark jar cache at" in refused(settings, no_jars)


@pytest.mark.spark_long
@pytest.mark.timeout(2400)  # each of the 5 runs starts a JVM: minutes on a loaded 2-core machine
def test_sigkill_of_the_job_tree_at_random_points_lands_every_offset_once(
    settings_factory: Any, kafka: ApacheKafka, tmp_path: Path
) -> None:
    """`lakehouse spark stream-bronze --continuous` (its JVM and Python workers included) is
    SIGKILLed 4 times at a random moment after a commit while a producer writes; a final
    availableNow run must leave every produced offset in bronze exactly once."""
    settings = topic_settings(settings_factory, kafka, **{"streaming.batch_max_rows": 1000})
    rng = random.Random(20261207)
    stop = threading.Event()
    produced = [0]

    def producer() -> None:
        # about 10 records/s for as long as the jobs run: the final drain stays a few batches
        p = Producer({"bootstrap.servers": settings.streaming.servers, "enable.idempotence": True})
        while not stop.is_set():
            for record in events(5, produced[0]):
                p.produce(settings.streaming.topic, key=record[0], value=record[1])
            assert p.flush(30) == 0
            produced[0] += 5
            time.sleep(0.5)

    log = Path(settings.lake_uri) / "bronze" / "events" / "_delta_log"

    def version() -> int:
        return len(list(log.glob("*.json"))) if log.exists() else 0

    thread = threading.Thread(target=producer)
    thread.start()
    kills = 0
    try:
        for _ in range(4):
            before = version()
            proc = subprocess.Popen(
                stream_cmd(settings, "--continuous", "--interval", "0.5"),
                cwd=PIPELINES,
                env=cli_env(),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,  # its own process group: the JVM and the Python workers
            )
            deadline = time.monotonic() + 240
            while version() == before and proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.05)
            time.sleep(rng.uniform(0.0, 3.0))
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                kills += 1
            proc.wait()
    finally:
        stop.set()
        thread.join(timeout=60)
    assert kills == 4, f"only {kills} of 4 jobs were still running when killed"
    done = subprocess.run(
        stream_cmd(settings), cwd=PIPELINES, env=cli_env(), capture_output=True, timeout=600
    )
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    total = assert_exactly_once(settings)
    assert total == len(read_topic(settings)) == produced[0] >= 300


@pytest.mark.spark_long
def test_over_scram_and_tls_from_the_settings_alone(
    settings_factory: Any, spark: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A broker with a SASL_SSL listener (SCRAM-SHA-512, TLS from its own CA): the job reaches it
    with the settings the embedded consumer uses (user, password file, CA file) and nothing else."""
    try:
        load_bundle("kafka")
    except JvmError as exc:
        pytest.skip(f"Apache Kafka not runnable here: {exc}")
    plain = free_port()
    topic = f"secure-{uuid.uuid4().hex[:8]}"
    broker = ApacheKafka(
        base=tmp_path / "apache-kafka", port=plain, sasl_port=free_port({plain}), topic=topic, partitions=3
    )
    broker.start()
    try:
        monkeypatch.delenv(KAFKA_PASSWORD_ENV, raising=False)
        password = tmp_path / "kafka-password"
        password.write_text(broker.credentials()["password"] + "\n")
        settings = settings_factory(
            {
                "streaming.bootstrap": broker.sasl_bootstrap,
                "streaming.security_protocol": "SASL_SSL",
                "streaming.sasl_username": broker.credentials()["username"],
                "streaming.sasl_password_file": str(password),
                "streaming.ssl_ca_file": str(broker.ca_path),
                "streaming.topic": topic,
            }
        )
        options = spark_kafka.kafka_options(settings.streaming)
        assert options["kafka.security.protocol"] == "SASL_SSL"
        assert options["kafka.sasl.mechanism"] == "SCRAM-SHA-512"
        assert options["kafka.ssl.truststore.location"] == str(broker.ca_path)
        p = Producer({"bootstrap.servers": broker.bootstrap})
        for i in range(90):
            p.produce(topic, key=b"k", value=f'{{"n":{i}}}'.encode(), partition=i % 3)
        assert p.flush(30) == 0
        result = spark_kafka.stream(spark, Lake(settings), settings.streaming, "secure")
        assert result.rows == 90
        assert watermarks(settings) == {0: 30, 1: 30, 2: 30}
    finally:
        broker.stop()
