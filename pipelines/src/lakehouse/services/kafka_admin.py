"""Admin calls the local Kafka brokers share: create the pipeline's topic once it is reachable."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from lakehouse.core.errors import ServiceError
from lakehouse.core.kafka import LOGGER


def ensure_topic(
    bootstrap: str,
    topic: str,
    partitions: int,
    log_path: Path,
    timeout: float = 30,
    *,
    check: Callable[[], None] | None = None,
) -> None:
    """Create `topic` through the admin API unless it exists (an existing partition count is kept);
    retried while the broker settles, then one line naming the broker and its log. `check` raises
    when the broker process died meanwhile (so its own last log line is reported at once)."""
    conf: dict[str, Any] = {"bootstrap.servers": bootstrap, "socket.timeout.ms": 5000, "logger": LOGGER}
    admin = AdminClient(conf)
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        if check is not None:
            check()
        try:
            meta = admin.list_topics(timeout=5)
            if topic in meta.topics and meta.topics[topic].error is None:
                return
            futures = admin.create_topics([NewTopic(topic, partitions, 1)], request_timeout=15)
            futures[topic].result(timeout=20)
            return
        except KafkaException as exc:
            err = exc.args[0] if exc.args else None
            if err is not None and getattr(err, "name", lambda: "")() == "TOPIC_ALREADY_EXISTS":
                return
            last = str(err or exc)
        time.sleep(0.3)
    raise ServiceError(f"cannot create topic {topic!r} on {bootstrap}: {last} (log: {log_path})")
