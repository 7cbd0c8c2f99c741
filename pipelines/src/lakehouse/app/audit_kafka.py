"""Kafka offsets per partition, read from the broker, against bronze.events' rows of them.

Bronze's committed offset of a partition (the app transaction stored with its rows) says it
holds every record below it. The partition is read from the broker, from its first record up to
that offset (read, not computed: offsets may have gaps), and bronze's rows
carrying (topic, kafka_partition, kafka_offset) in that range are counted: a record with no row
is lost, a second row of an offset is repeated. Rows written before the topic was last created
anew (a memory broker restarted; `lakehouse.offsets_restarted` in the commit log) belong to the
old topic's offsets and are left out.
"""

from __future__ import annotations

import json
import time
from typing import cast

import pyarrow as pa
import pyarrow.compute as pc
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, TopicPartition

from lakehouse.app.audit_result import AuditResult
from lakehouse.bronze import kafka_sink
from lakehouse.bronze.kafka_offsets import log_end_offsets
from lakehouse.bronze.landing import TABLE
from lakehouse.core import delta
from lakehouse.core.kafka import client_config
from lakehouse.core.settings import StreamingSettings
from lakehouse.core.storage import Lake
from lakehouse.silver import backfill

CHECK = "kafka_offsets"


def kafka_vs_bronze(lake: Lake, streaming: StreamingSettings, timeout: float = 30.0) -> list[AuditResult]:
    """One result per topic bronze.events holds Kafka rows of ([] when it holds none)."""
    dt = delta.open_table(lake, TABLE)
    if dt is None:
        return []
    rows = delta.dataset(lake, dt).to_table(
        columns=["topic", "kafka_partition", "kafka_offset", "batch_id"],
        filter=pc.field("source_system") == "kafka",
    )
    topics = sorted({t for t in rows["topic"].to_pylist() if t})
    if not topics:
        return []
    versions = backfill.batch_versions(lake)
    restarts = _restart_versions(dt.history())
    return [
        _topic(lake, streaming, topic, rows.filter(pc.field("topic") == topic), versions, restarts, timeout)
        for topic in topics
    ]


def _restart_versions(history: list[dict[str, object]]) -> dict[str, int]:
    """topic -> the last commit that set its offsets back to 0 (the topic was created anew)."""
    out: dict[str, int] = {}
    for entry in history:
        if entry.get("lakehouse.offsets_restarted") is None:
            continue
        topic = str(entry.get("lakehouse.source", "")).strip('"').removeprefix("kafka/")
        out[topic] = max(out.get(topic, -1), int(cast(int, entry["version"])))
    return out


def _topic(
    lake: Lake,
    streaming: StreamingSettings,
    topic: str,
    rows: pa.Table,
    versions: dict[str, int],
    restarts: dict[str, int],
    timeout: float,
) -> AuditResult:
    result = AuditResult(CHECK, f"kafka/{topic}", TABLE)
    since = restarts.get(topic, -1)
    if since >= 0:
        current = [versions.get(b, -1) > since for b in rows["batch_id"].to_pylist()]
        rows = rows.filter(pa.array(current, pa.bool_()))
    consumer = Consumer(
        client_config(
            streaming,
            **{
                "group.id": "lakehouse-audit",
                "enable.auto.commit": False,
                "enable.partition.eof": True,
                "isolation.level": "read_committed",
                "socket.timeout.ms": 5000,
                "fetch.wait.max.ms": 50,
            },
        )
    )
    try:
        try:
            md = consumer.list_topics(topic, timeout=min(timeout, 10.0))
        except KafkaException as exc:
            result.detail = f"broker not reachable ({exc.args[0]}): not checked"
            return result
        meta = md.topics.get(topic)
        if meta is None or meta.error is not None:
            result.detail = "topic not on the broker: not checked"
            return result
        parts = sorted(meta.partitions)
        committed = kafka_sink.stored_offsets(lake, topic, parts)
        # exact ends from fetch responses: some brokers answer ListOffsets "latest" late
        ends = log_end_offsets(streaming.model_copy(update={"topic": topic}), timeout=min(timeout, 10.0))
        notes: list[str] = []
        lag = 0
        for p in parts:
            upto = committed.get(p)
            mine = rows.filter(pc.field("kafka_partition") == p)["kafka_offset"]
            high = ends.get(p)
            if upto is None:
                lag += high or 0
                result.duplicated += len(mine)  # rows of a partition bronze says it never read
                if len(mine):
                    notes.append(f"p{p}: {len(mine)} rows, no committed offset")
                continue
            if high is None:
                notes.append(f"p{p}: the log's end not read: not checked")
                continue
            lag += max(0, high - upto)
            if upto > high:
                notes.append(f"p{p}: committed offset {upto} past the log's end {high}: not checked")
                continue
            low, records = _count_records(consumer, topic, p, upto, timeout)
            in_range = pc.and_(pc.greater_equal(mine, low), pc.less(mine, upto))
            held = mine.filter(in_range)
            distinct = len(pc.unique(held)) if len(held) else 0
            beyond = len(mine) - len(held) - int(pc.sum(pc.less(mine, low)).as_py() or 0)
            result.expected += records
            result.found += len(held)
            result.lost += max(0, records - distinct)
            result.duplicated += len(held) - distinct + beyond
            if records != distinct or len(held) != distinct or beyond:
                notes.append(
                    f"p{p}: {records} records in [{low}, {upto}), {len(held)} rows of {distinct} offsets"
                    + (f", {beyond} rows past the committed offset" if beyond else "")
                )
        result.detail = (
            f"{len(parts)} partitions, committed offsets {json.dumps({str(p): committed.get(p) for p in parts})}"
            + (f", {lag} records not read yet" if lag else "")
            + ("; " + "; ".join(notes[:5]) if notes else "")
        )
        return result
    finally:
        consumer.close()


def _count_records(
    consumer: Consumer, topic: str, partition: int, upto: int, timeout: float
) -> tuple[int, int]:
    """(first offset the log holds, records it holds below `upto`), read from the log's
    beginning: offsets may have gaps, and the low watermark some brokers report is not exact."""
    if upto <= 0:
        return 0, 0
    consumer.assign([TopicPartition(topic, partition, OFFSET_BEGINNING)])
    count = 0
    low: int | None = None
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            for m in consumer.consume(10_000, 0.5):
                err = m.error()
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:
                        return (upto if low is None else low), count
                    raise KafkaException(err)
                off = cast(int, m.offset())
                low = off if low is None else low
                if off >= upto:
                    return low, count
                count += 1
                if off == upto - 1:
                    return low, count
        raise KafkaException(f"reading {topic}/{partition} up to offset {upto} took over {timeout:.0f}s")
    finally:
        consumer.unassign()
