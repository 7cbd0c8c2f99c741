"""Kafka client configuration: every producer, consumer and admin client of the package starts
from `client_config`, so where the brokers are (and how to reach them) is decided in one place.

The client library's own log lines go to the Python logger `lakehouse.kafka` (the command line
decides what reaches the terminal), and `check_broker` tells within seconds that no broker
answers, before a client would retry for a minute.
"""

from __future__ import annotations

import logging
import socket
import time
from pathlib import Path
from typing import Any

from lakehouse.core.errors import ConfigError, ServiceError
from lakehouse.core.settings import KAFKA_PASSWORD_ENV, StreamingSettings, read_secret

LOGGER = logging.getLogger("lakehouse.kafka")
# Seconds `check_broker` may spend in all; a stopped local broker refuses at once.
CHECK_SECONDS = 4.0


class BrokerUnavailable(ServiceError):
    """No bootstrap server accepts a connection, or none accepts this client's TLS or login."""


def security_config(streaming: StreamingSettings) -> dict[str, Any]:
    """librdkafka's security settings: nothing for PLAINTEXT; TLS checked against ssl_ca_file;
    SCRAM with the user of the settings and the password of a mounted Secret or the environment.
    A missing piece is a ConfigError naming the setting."""
    protocol = streaming.security_protocol
    if protocol == "PLAINTEXT":
        return {}
    conf: dict[str, Any] = {"security.protocol": protocol}
    if streaming.ssl_ca_file:
        if not Path(streaming.ssl_ca_file).is_file():
            raise ConfigError(
                f"setting 'streaming.ssl_ca_file' = {streaming.ssl_ca_file!r}: no such file "
                "(the CA certificate of the brokers' TLS)"
            )
        conf["ssl.ca.location"] = streaming.ssl_ca_file
    if protocol == "SASL_SSL":
        if not streaming.sasl_username:
            raise ConfigError(
                "setting 'streaming.sasl_username' (or LAKEHOUSE_KAFKA_USERNAME): required with "
                "streaming.security_protocol SASL_SSL"
            )
        password = read_secret(
            "streaming.sasl_password_file", streaming.sasl_password_file, KAFKA_PASSWORD_ENV
        )
        if not password:
            raise ConfigError(
                f"setting 'streaming.sasl_password_file' (or {KAFKA_PASSWORD_ENV}): the SCRAM password of "
                f"{streaming.sasl_username!r} is not set"
            )
        conf.update(
            {
                "sasl.mechanism": streaming.sasl_mechanism,
                "sasl.username": streaming.sasl_username,
                "sasl.password": password,
            }
        )
    return conf


def client_config(streaming: StreamingSettings, **extra: Any) -> dict[str, Any]:
    """librdkafka settings common to every client of this topic's cluster, plus `extra`."""
    conf: dict[str, Any] = {"bootstrap.servers": streaming.servers, "logger": LOGGER}
    conf.update(security_config(streaming))
    conf.update(extra)
    return conf


def _host_port(server: str) -> tuple[str, int]:
    host, _, port = server.strip().rpartition(":")
    return host.strip("[]"), int(port)


def check_broker(streaming: StreamingSettings, timeout: float = CHECK_SECONDS) -> None:
    """Return once any bootstrap server accepts a TCP connection (and, with TLS or SASL, a
    handshake and login); otherwise raise BrokerUnavailable "broker not running at host:port"
    within `timeout` seconds, or a one-line ServiceError naming the failed TLS or login."""
    _check_tcp(streaming, timeout)
    if streaming.security_protocol != "PLAINTEXT":
        check_login(streaming, timeout=max(timeout, 10.0))


def check_login(streaming: StreamingSettings, timeout: float = 10.0) -> None:
    """Ask the cluster for its metadata with the configured security; a refused login or a
    certificate that does not verify is one line naming the host and the settings to check."""
    from confluent_kafka import KafkaError, KafkaException
    from confluent_kafka.admin import AdminClient

    errors: list[KafkaError] = []
    conf = client_config(streaming, **{"error_cb": errors.append, "socket.timeout.ms": int(timeout * 1000)})
    conf.pop("logger", None)  # the error callback tells what went wrong; no log lines on the way
    conf["log_level"] = 0
    admin = AdminClient(conf)
    try:
        admin.list_topics(timeout=timeout)
        return
    except KafkaException as exc:
        admin.poll(0.5)  # serves error_cb
        reasons = [e.str() for e in errors] or [str(exc.args[0].str() if exc.args else exc)]
    text = " ".join(reasons)
    where = f"Kafka at {streaming.servers}"
    if "certificate verify failed" in text or "SSL handshake failed" in text:
        raise BrokerUnavailable(
            f"{where}: TLS certificate not trusted (setting streaming.ssl_ca_file = {streaming.ssl_ca_file!r})"
        )
    if "uthentication" in text or "invalid credentials" in text:
        raise BrokerUnavailable(
            f"{where}: SCRAM login of {streaming.sasl_username!r} refused (settings streaming.sasl_username, "
            f"streaming.sasl_password_file or {KAFKA_PASSWORD_ENV})"
        )
    raise BrokerUnavailable(f"{where}: {reasons[-1]}")


def _check_tcp(streaming: StreamingSettings, timeout: float) -> None:
    servers = [s for s in streaming.servers.split(",") if s.strip()]
    deadline = time.monotonic() + timeout
    reasons = []
    for i, server in enumerate(servers):
        left = max(0.2, (deadline - time.monotonic()) / (len(servers) - i))
        try:
            with socket.create_connection(_host_port(server), timeout=left):
                return
        except ValueError:
            reasons.append(f"{server.strip()} is not host:port")
        except OSError as exc:
            reasons.append(exc.strerror or str(exc) or type(exc).__name__)
    fix = (
        "start it with `lakehouse stream broker start`"
        if not streaming.bootstrap
        else "check streaming.bootstrap and that the cluster is up"
    )
    raise BrokerUnavailable(
        f"broker not running at {streaming.servers} ({reasons[0] if reasons else 'no server given'}): {fix}"
    )


def consumer_config(streaming: StreamingSettings, group: str, **extra: Any) -> dict[str, Any]:
    """A consumer that commits nothing to Kafka: offsets live with the data of each sink."""
    return client_config(
        streaming,
        **{
            "group.id": group,
            "client.id": f"lakehouse-{group}",
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "auto.offset.reset": "earliest",
            "enable.partition.eof": True,
            "isolation.level": "read_committed",
            "session.timeout.ms": streaming.session_timeout_ms,
            "heartbeat.interval.ms": max(100, streaming.session_timeout_ms // 4),
            "partition.assignment.strategy": "range",
            "fetch.wait.max.ms": 50,
            "queued.min.messages": 200_000,
            "fetch.max.bytes": 64 * 1024 * 1024,
            "max.partition.fetch.bytes": 16 * 1024 * 1024,
            **extra,
        },
    )


def producer_config(streaming: StreamingSettings, **extra: Any) -> dict[str, Any]:
    """An idempotent producer: acks=all, no duplicates or reordering from retries."""
    return client_config(
        streaming,
        **{
            "client.id": "lakehouse-producer",
            "enable.idempotence": True,
            "linger.ms": 5,
            "batch.num.messages": 10_000,
            "queue.buffering.max.messages": 500_000,
            "queue.buffering.max.kbytes": 262_144,
            "message.timeout.ms": 60_000,
            **extra,
        },
    )
