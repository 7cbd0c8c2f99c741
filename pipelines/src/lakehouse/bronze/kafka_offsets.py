"""Where a topic's partitions end, and whether stored offsets point past that end."""

from __future__ import annotations

import time
from typing import Any, cast

from confluent_kafka import OFFSET_END, Consumer, KafkaError, KafkaException, TopicPartition

from lakehouse.bronze.stream_sink import offset_of
from lakehouse.core.kafka import client_config
from lakehouse.core.settings import StreamingSettings


def stale_offsets(streaming: StreamingSettings, stored: dict[int, int | None]) -> dict[int, tuple[int, int]]:
    """Partitions whose stored next offset lies past the log's exact end, as (stored, end): offsets
    of records the topic no longer has, so it was created anew or truncated. Ends only grow while
    a topic lives, so this cannot happen otherwise. {} when nothing is stored or the ends cannot be
    read (then nothing is claimed)."""
    if not any(stored.values()):
        return {}
    try:
        ends = log_end_offsets(streaming)
    except KafkaException:
        return {}
    return {p: (o, ends[p]) for p, o in stored.items() if o is not None and p in ends and o > ends[p]}


def log_end_offsets(streaming: StreamingSettings, timeout: float = 5.0, logger: Any = None) -> dict[int, int]:
    """The exact end offset of every partition, from fetch responses (end-of-partition events):
    start near the end and read to it. ListOffsets "latest" alone can lag on some brokers."""
    s = streaming
    conf = client_config(
        s,
        **{
            "group.id": "lakehouse-status",
            "enable.partition.eof": True,
            "enable.auto.commit": False,
            "socket.timeout.ms": 3000,
            "fetch.wait.max.ms": 50,
        },
    )
    if logger is not None:
        conf["logger"] = logger
    c = Consumer(conf)
    try:
        md = c.list_topics(s.topic, timeout=timeout)
        t = md.topics.get(s.topic)
        if t is None or t.error is not None:
            raise KafkaException(t.error if t is not None else f"no topic {s.topic}")
        parts = sorted(t.partitions)
        c.assign([TopicPartition(s.topic, p, OFFSET_END) for p in parts])
        ends: dict[int, int] = {}
        deadline = time.monotonic() + timeout
        while len(ends) < len(parts) and time.monotonic() < deadline:
            for m in c.consume(10_000, 0.2):
                err = m.error()
                if err is not None and err.code() == KafkaError._PARTITION_EOF:
                    ends[cast(int, m.partition())] = offset_of(m)
        return ends
    finally:
        c.close()
