"""Every Kafka client of the package over SASL_SSL (SCRAM-SHA-512, TLS checked against a CA file),
against a real Apache Kafka broker started here on free loopback ports, configured only through
settings: the producer of the generator, the consumers of bronze, the offset lookups, the CLI.
A wrong password or an untrusted certificate is one line naming the host and the settings."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from confluent_kafka import Consumer, TopicPartition

from lakehouse.bronze.kafka_offsets import log_end_offsets
from lakehouse.core.jvm import JvmError, find_java, load_bundle
from lakehouse.core.kafka import BrokerUnavailable, check_broker, consumer_config
from lakehouse.core.settings import Settings, StreamingSettings, load_settings
from lakehouse.generator.kafka_producer import produce
from lakehouse.services.apache_kafka import ApacheKafka
from lakehouse.services.process import free_port

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]
LAKEHOUSE = Path(sys.executable).parent / "lakehouse"


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApacheKafka]:
    try:
        find_java()
        load_bundle("kafka")
    except JvmError as exc:
        pytest.skip(f"Apache Kafka not runnable here (`make jars-kafka`): {exc}")
    plain = free_port()
    topic = f"secure-{uuid.uuid4().hex[:8]}"
    svc = ApacheKafka(
        base=tmp_path_factory.mktemp("kafka") / "apache-kafka",
        port=plain,
        sasl_port=free_port({plain}),
        topic=topic,
        partitions=3,
    )
    svc.start()
    try:
        yield svc
    finally:
        svc.stop()


def add_scram_user(broker: ApacheKafka, user: str, password: str) -> None:
    """A SCRAM-SHA-512 user made by the broker's own tool (kafka-configs: ConfigCommand
    --add-config), as a platform makes the pipelines' KafkaUser."""
    made = subprocess.run(
        broker.tool(
            "org.apache.kafka.tools.ConfigCommand",
            *("--bootstrap-server", broker.bootstrap, "--alter", "--entity-type", "users"),
            *("--entity-name", user, "--add-config", f"SCRAM-SHA-512=[iterations=8192,password={password}]"),
        ),
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert made.returncode == 0, made.stdout[-2000:] + made.stderr[-2000:]


def wait_for_login(streaming: StreamingSettings, seconds: float = 30) -> None:
    """Until the broker accepts the settings' SCRAM login: a new credential reaches the SASL
    listener through the controller a moment after ConfigCommand returns."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            check_broker(streaming)
            return
        except BrokerUnavailable:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def secure_settings(broker: ApacheKafka, folder: Path, **overrides: object) -> dict[str, object]:
    """A dev-shaped streaming section: the broker's SASL_SSL listener, its user, the password in a
    file (as a mounted Secret) and the CA file."""
    password = folder / "kafka-password"
    password.write_text(broker.credentials()["password"] + "\n")
    values: dict[str, object] = {
        "streaming.bootstrap": broker.sasl_bootstrap,
        "streaming.security_protocol": "SASL_SSL",
        "streaming.sasl_username": broker.credentials()["username"],
        "streaming.sasl_password_file": str(password),
        "streaming.ssl_ca_file": str(broker.ca_path),
        "streaming.topic": broker.topic,
        "streaming.partitions": 3,
        "state_dir": str(folder / "state"),
    }
    values.update(overrides)
    return values


def settings_of(values: dict[str, object], monkeypatch: pytest.MonkeyPatch) -> Settings:
    for var in (
        "LAKEHOUSE_CONFIG",
        "LAKEHOUSE_KAFKA_PASSWORD",
        "LAKEHOUSE_KAFKA_BOOTSTRAP",
        "LAKEHOUSE_KAFKA_USERNAME",
    ):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("LAKEHOUSE_ROOT", str(REPO))
    return load_settings("local", values)


def test_producer_offsets_and_consumer_over_scram_and_tls(
    broker: ApacheKafka, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    s = settings_of(secure_settings(broker, tmp_path, **{"generator.events": 1000}), monkeypatch)
    check_broker(s.streaming)
    before = sum(log_end_offsets(s.streaming).values())
    stats = produce(s.generator, s.streaming, 400, None, seed=7)
    assert stats.failed == 0 and stats.delivered == stats.records >= 400
    ends = log_end_offsets(s.streaming)
    assert sum(ends.values()) - before == stats.records

    consumer = Consumer(consumer_config(s.streaming, f"g-{uuid.uuid4().hex[:6]}"))
    try:
        consumer.assign([TopicPartition(broker.topic, p, 0) for p in ends])
        got, eof, deadline = 0, set(), time.monotonic() + 60
        while len(eof) < len(ends) and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None:
                continue
            if msg.error() is None:
                got += 1
            elif msg.error().code() == msg.error()._PARTITION_EOF:
                eof.add(msg.partition())
            else:
                pytest.fail(str(msg.error()))
    finally:
        consumer.close()
    assert got == sum(ends.values())


def test_a_wrong_password_is_one_line(
    broker: ApacheKafka, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    values = secure_settings(broker, tmp_path)
    (tmp_path / "kafka-password").write_text("not-the-password\n")
    s = settings_of(values, monkeypatch)
    with pytest.raises(BrokerUnavailable) as err:
        check_broker(s.streaming)
    text = str(err.value)
    assert text.startswith(f"Kafka at {broker.sasl_bootstrap}: SCRAM login of 'lakehouse' refused"), text
    assert "streaming.sasl_password_file" in text and "\n" not in text


def test_an_untrusted_certificate_is_one_line(
    broker: ApacheKafka, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    other_ca = tmp_path / "other-ca.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=other",
         "-keyout", str(tmp_path / "other.key"), "-out", str(other_ca)],
        check=True, capture_output=True,
    )  # fmt: skip
    s = settings_of(
        secure_settings(broker, tmp_path, **{"streaming.ssl_ca_file": str(other_ca)}), monkeypatch
    )
    with pytest.raises(BrokerUnavailable) as err:
        check_broker(s.streaming)
    assert str(err.value) == (
        f"Kafka at {broker.sasl_bootstrap}: TLS certificate not trusted (setting streaming.ssl_ca_file = '{other_ca}')"
    )


def test_the_cli_stops_with_one_line_on_a_refused_login(broker: ApacheKafka, tmp_path: Path) -> None:
    values = secure_settings(broker, tmp_path)
    (tmp_path / "kafka-password").write_text("wrong\n")
    config = yaml.safe_load((REPO / "environments" / "local" / "pipeline.yaml").read_text())
    for dotted, value in values.items():
        node = config
        *parents, leaf = dotted.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    path = tmp_path / "pipeline.yaml"
    path.write_text(yaml.safe_dump(config))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LAKEHOUSE_", "AWS_"))}
    env.update(LAKEHOUSE_CONFIG=str(path), LAKEHOUSE_ROOT=str(REPO))
    proc = subprocess.run(
        [str(LAKEHOUSE), "stream", "produce", "--count", "10"],
        env=env, cwd=REPO, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    out = (proc.stdout + proc.stderr).strip()
    assert proc.returncode != 0
    assert "Traceback" not in out
    assert len(out.splitlines()) == 1, out
    assert "SCRAM login of 'lakehouse' refused" in out


def test_pipelines_consume_over_scram_and_tls_exactly_once_as_a_user_made_by_kafkas_tool(
    broker: ApacheKafka,
    settings_factory: Any,
    pg_conn: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The pipelines' SCRAM user is made by the broker's own tool (kafka-configs: ConfigCommand
    --add-config SCRAM-SHA-512=...), as a platform would; then Kafka -> bronze and the speed layer
    consume over SASL_SSL as that user: every record lands once, both stored positions reach the
    log end, and a second run adds nothing."""
    import dataclasses

    from lakehouse.app import streaming as jobs
    from lakehouse.bronze import kafka_sink as bronze_sink
    from lakehouse.core.reconcile import new_run_id
    from lakehouse.core.storage import Lake
    from lakehouse.speed import sink as speed_sink

    user, password = f"pipelines-{uuid.uuid4().hex[:6]}", uuid.uuid4().hex
    add_scram_user(broker, user, password)
    topic = f"secure-eo-{uuid.uuid4().hex[:8]}"
    dataclasses.replace(broker, topic=topic).ensure_topic()
    values = secure_settings(broker, tmp_path, **{"streaming.topic": topic, "streaming.sasl_username": user})
    (tmp_path / "kafka-password").write_text(password + "\n")  # the new user's, not the broker's own
    values.pop("state_dir")
    values.update({"postgres.serving_db": pg_conn.info.dbname, "generator.events": 1000})
    for var in ("LAKEHOUSE_KAFKA_PASSWORD", "LAKEHOUSE_KAFKA_BOOTSTRAP", "LAKEHOUSE_KAFKA_USERNAME"):
        monkeypatch.delenv(var, raising=False)
    s = settings_factory(values)
    wait_for_login(s.streaming)
    stats = produce(s.generator, s.streaming, 600, None, seed=11)
    assert stats.failed == 0 and stats.delivered == stats.records >= 600
    ends = log_end_offsets(s.streaming)
    assert sum(ends.values()) == stats.records

    def landed() -> list[tuple[int, int]]:
        table = (
            Lake(s)
            .table("bronze.events")
            .to_pyarrow_table(columns=["topic", "kafka_partition", "kafka_offset"])
        )
        return [
            (p, o)
            for t, p, o in zip(
                table["topic"].to_pylist(),
                table["kafka_partition"].to_pylist(),
                table["kafka_offset"].to_pylist(),
                strict=True,
            )
            if t == topic
        ]

    jobs.consume(s, new_run_id(), available_now=True)
    first = landed()
    assert len(first) == len(set(first)) == stats.records
    assert set(first) == {(p, o) for p, end in ends.items() for o in range(end)}
    assert bronze_sink.stored_offsets(Lake(s), topic, sorted(ends)) == ends
    assert speed_sink.stored_offsets(s.postgres.serving_dsn, s.streaming.speed_group, topic) == ends
    jobs.consume(s, new_run_id(), available_now=True)
    assert sorted(landed()) == sorted(first)
