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
from typing import Any

from lakehouse.core.errors import ServiceError, TransientError
from lakehouse.core.settings import StreamingSettings

LOGGER = logging.getLogger("lakehouse.kafka")
# Seconds `check_broker` may spend in all; a stopped local broker refuses at once.
CHECK_SECONDS = 4.0


class BrokerUnavailable(ServiceError, TransientError):
    """No bootstrap server accepts a connection."""


def client_config(streaming: StreamingSettings, **extra: Any) -> dict[str, Any]:
    """librdkafka settings common to every client of this topic's cluster, plus `extra`."""
    conf: dict[str, Any] = {"bootstrap.servers": streaming.servers, "logger": LOGGER}
    conf.update(extra)
    return conf


def _host_port(server: str) -> tuple[str, int]:
    host, _, port = server.strip().rpartition(":")
    return host.strip("[]"), int(port)


def check_broker(streaming: StreamingSettings, timeout: float = CHECK_SECONDS) -> None:
    """Return once any bootstrap server accepts a TCP connection; otherwise raise
    BrokerUnavailable "broker not running at host:port" within `timeout` seconds."""
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
