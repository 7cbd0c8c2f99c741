"""The stream runner: one Kafka consumer feeding sinks that each commit their own offsets.

Correctness never depends on Kafka's committed offsets (they are only written for outside tools):
each sink stores, per topic-partition, the next offset to read *in the same atomic commit as its
data*. On (re)assignment the runner asks every sink for its stored offsets and starts each
partition at the smallest of them; a sink ignores records below its own offset. So:

* a crash (SIGKILL) at any point loses nothing (uncommitted buffers are re-read) and repeats
  nothing (committed records are skipped);
* a rebalance drops the revoked partitions' buffers (never flushed by the old owner) and the new
  owner seeks to the stored offsets;
* before writing, a sink checks that the stored offsets are still the ones it started from
  (a fence against a zombie owner); on a mismatch it drops that partition's buffer and the runner
  seeks back to the stored offset.

`available_now=True` drains what the topic holds and stops: every assigned partition must have
reached end-of-partition (as the consumer's own fetches report it) and at least the log-end
offsets listed at start. ListOffsets "latest" is only used as that lower bound, never for
correctness.
"""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import cast

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    TopicPartition,
)

from lakehouse.bronze.kafka_offsets import stale_offsets
from lakehouse.bronze.stream_sink import FlushResult, Sink
from lakehouse.core.errors import LakehouseError
from lakehouse.core.kafka import consumer_config
from lakehouse.core.metrics import StreamMetrics
from lakehouse.core.settings import StreamingSettings


@dataclass
class RunSummary:
    records: dict[str, int] = field(default_factory=dict)  # sink -> records committed
    advanced: dict[str, int] = field(default_factory=dict)  # sink -> offsets advanced
    commits: dict[str, int] = field(default_factory=dict)
    conflicts: int = 0
    rebalances: int = 0
    seconds: float = 0.0


class StreamRunner:
    """Consume `streaming.topic` as `group` and feed `sinks` until stopped (or drained)."""

    def __init__(
        self,
        streaming: StreamingSettings,
        sinks: list[Sink],
        group: str,
        *,
        available_now: bool = False,
        metrics: StreamMetrics | None = None,
        idle_seconds: float = 0.3,
        assign_timeout: float = 60.0,
        on_flush: Callable[[str, FlushResult], None] | None = None,
        assign_all: bool = False,
    ) -> None:
        if not sinks:
            raise LakehouseError("the stream runner needs at least one sink")
        self.streaming = streaming
        self.topic = streaming.topic
        self.sinks = sinks
        self.group = group
        self.available_now = available_now
        self.metrics = metrics or StreamMetrics(group)
        self.idle_seconds = idle_seconds
        self.assign_timeout = assign_timeout
        self.on_flush = on_flush
        self.assign_all = assign_all
        self.slice = max(1, min(s.max_rows for s in sinks))
        self._seeked: set[int] = set()
        self.stop_event = threading.Event()
        self.assigned: set[int] = set()
        self.eof: set[int] = set()
        self.targets: dict[int, int] = {}
        self.summary = RunSummary()
        self.consumer: Consumer | None = None
        self._last_msg = time.monotonic()
        self._commits = {s.name: 0 for s in sinks}

    # -- rebalance callbacks ----------------------------------------------------------------
    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self.summary.rebalances += 1
        ps = [tp.partition for tp in partitions]
        starts: dict[int, int | None] = {p: None for p in ps}
        first = True
        for sink in self.sinks:
            stored = sink.assign(ps)
            for p in ps:
                off = stored.get(p)
                if first:
                    starts[p] = off
                elif starts[p] is None or off is None:
                    starts[p] = None
                else:
                    starts[p] = min(starts[p], off)  # type: ignore[type-var]
            first = False
        stale = stale_offsets(self.streaming, starts)
        if stale:
            raise LakehouseError(
                f"{self.topic}: stored offsets lie past the end of the log (partition: (stored, end)) "
                f"{stale}: the topic was created anew or truncated since they were stored (a broker "
                "with memory storage forgets its topics when it stops). To read the new topic from its "
                "start: `lakehouse stream consume --restart-offsets`"
            )
        for tp in partitions:
            start = starts[tp.partition]
            tp.offset = OFFSET_BEGINNING if start is None else start
        self.assigned |= set(ps)
        self.eof -= set(ps)
        if self.available_now:
            for tp in partitions:
                try:
                    _low, high = consumer.get_watermark_offsets(tp, timeout=5, cached=False)
                    self.targets[tp.partition] = max(high, 0)
                except KafkaException:
                    self.targets[tp.partition] = 0
        consumer.assign(partitions)

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        ps = [tp.partition for tp in partitions]
        for sink in self.sinks:
            sink.revoke(ps)  # buffers dropped: the next owner re-reads from the stored offsets
        self.assigned -= set(ps)
        self.eof -= set(ps)
        with contextlib.suppress(KafkaException, RuntimeError):
            consumer.unassign()

    # -- loop -------------------------------------------------------------------------------
    def stop(self, *_: object) -> None:
        self.stop_event.set()

    def install_signal_handlers(self) -> None:
        signal.signal(signal.SIGTERM, self.stop)
        signal.signal(signal.SIGINT, self.stop)

    def run(self, max_seconds: float | None = None) -> RunSummary:
        started = time.monotonic()
        consumer = Consumer(consumer_config(self.streaming, self.group))
        self.consumer = consumer
        if self.assign_all:
            # a drain run reads every partition itself: no group join to wait for (offsets live in
            # the sinks, so the group is only needed to share partitions between long-running members)
            self._on_assign(consumer, self._all_partitions(consumer))
        else:
            consumer.subscribe(
                [self.topic], on_assign=self._on_assign, on_revoke=self._on_revoke, on_lost=self._on_revoke
            )
        last_status = 0.0
        try:
            while not self.stop_event.is_set():
                now = time.monotonic()
                if max_seconds is not None and now - started > max_seconds:
                    break
                if self.available_now and not self.assigned and now - started > self.assign_timeout:
                    raise LakehouseError(
                        f"no partition of {self.topic!r} assigned to group {self.group!r} within "
                        f"{self.assign_timeout:.0f}s (is the broker up? `lakehouse stream broker status`)"
                    )
                timeout = min([0.1, *(s.wait_hint(now) for s in self.sinks if s.rows)])
                msgs = consumer.consume(num_messages=20_000, timeout=max(timeout, 0.005))
                # in slices no bigger than the smallest batch, so every sink's batches keep their size
                self._seeked = set()
                for i in range(0, max(len(msgs), 1), self.slice):
                    chunk = msgs[i : i + self.slice]
                    if self._seeked:
                        # fetched before a seek back: re-delivered after it, never skipped ahead
                        chunk = [m for m in chunk if m.partition() not in self._seeked]
                    if chunk:
                        self._dispatch(chunk)
                    now = time.monotonic()
                    for sink in self.sinks:
                        if sink.due(now):
                            self._flush(sink)
                if now - last_status >= 1.0:
                    self._report()
                    last_status = now
                if self.available_now and self._drained(now):
                    break
            for sink in self.sinks:
                self._flush(sink)
        finally:
            self._report()
            try:
                consumer.close()
            finally:
                for sink in self.sinks:
                    sink.close()
        self.summary.seconds = time.monotonic() - started
        for sink in self.sinks:
            self.summary.records[sink.name] = sink.written
            self.summary.advanced[sink.name] = sink.advanced
            self.summary.commits[sink.name] = self._commits[sink.name]
        return self.summary

    def _all_partitions(self, consumer: Consumer) -> list[TopicPartition]:
        deadline = time.monotonic() + self.assign_timeout
        last = "no metadata"
        while time.monotonic() < deadline:
            try:
                md = consumer.list_topics(self.topic, timeout=5)
                t = md.topics.get(self.topic)
                if t is not None and t.error is None and t.partitions:
                    return [TopicPartition(self.topic, p) for p in sorted(t.partitions)]
                last = str(t.error) if t is not None and t.error else "topic has no partitions"
            except KafkaException as exc:
                last = str(exc)
            time.sleep(0.2)
        raise LakehouseError(
            f"topic {self.topic!r} not found on {self.streaming.servers} ({last}); "
            "is the broker up? `lakehouse stream broker status`"
        )

    def _dispatch(self, msgs: list[Message]) -> None:
        groups: dict[int, list[Message]] = {}
        eof = self.eof
        for m in msgs:
            err = m.error()
            if err is not None:
                if err.code() == KafkaError._PARTITION_EOF:
                    eof.add(cast(int, m.partition()))  # the partition's end as of this fetch (in order)
                    continue
                if err.fatal():
                    raise LakehouseError(f"Kafka consumer failed: {err.str()}")
                continue  # transient (broker restart, ...): librdkafka retries on its own
            p = cast(int, m.partition())
            eof.discard(p)
            lst = groups.get(p)
            if lst is None:
                groups[p] = [m]
            else:
                lst.append(m)
        if groups:
            self._last_msg = time.monotonic()
        for p, lst in groups.items():
            for sink in self.sinks:
                sink.offer(p, lst)

    def _flush(self, sink: Sink) -> None:
        result = sink.flush()
        if result is None:
            return
        if result.conflicts:
            self.summary.conflicts += 1
            self._seek(list(result.conflicts))
            return
        self._commits[sink.name] += 1
        self.metrics.committed(
            sink.name,
            result.records,
            result.freshness,
            result.seconds,
            result.offsets,
            late=result.late,
            rejected=result.rejected,
            event_freshness=result.event_freshness,
        )
        if sink is self.sinks[0] and self.consumer is not None:
            # for outside tools only (kafka-consumer-groups lag); never read back
            tps = [TopicPartition(self.topic, p, off) for p, off in result.offsets.items()]
            with contextlib.suppress(KafkaException):
                self.consumer.commit(offsets=tps, asynchronous=True)
        if self.on_flush:
            self.on_flush(sink.name, result)

    def _seek(self, partitions: list[int]) -> None:
        assert self.consumer is not None
        for p in partitions:
            if p not in self.assigned:
                continue
            for s in self.sinks:  # everything buffered is re-read from the stored offsets
                if s.buf.get(p):
                    s._drop(p)
                    s.next[p] = s.base.get(p)
            offs = [s.next.get(p) for s in self.sinks]
            start = None if any(o is None for o in offs) else min(o for o in offs if o is not None)
            target = TopicPartition(self.topic, p, OFFSET_BEGINNING if start is None else start)
            try:
                self.consumer.seek(target)
            except KafkaException as exc:
                # records between the stored offset and our position must be re-read: without the
                # seek they would be skipped, so stop here (a restart starts from the stored offsets)
                raise LakehouseError(f"cannot seek {self.topic}/{p} back to {start}: {exc}") from None
            self._seeked.add(p)
            self.eof.discard(p)

    def _drained(self, now: float) -> bool:
        if not self.assigned:
            return False
        if now - self._last_msg < self.idle_seconds:
            return False
        for p in self.assigned:
            if p not in self.eof:
                return False
            target = self.targets.get(p, 0)
            for s in self.sinks:
                got = s.next.get(p)
                if target > 0 and (got is None or got < target):
                    return False
        for sink in self.sinks:  # at the end: no reason to wait for the batch timer
            if sink.rows:
                self._flush(sink)
        return not any(s.rows for s in self.sinks)

    def _report(self) -> None:
        if self.consumer is not None and self.assigned:
            for sink in self.sinks:
                lag = {}
                for p in sorted(self.assigned):
                    try:
                        _low, high = self.consumer.get_watermark_offsets(
                            TopicPartition(self.topic, p), cached=True
                        )
                    except KafkaException:
                        continue
                    if high is None or high < 0:
                        continue
                    base = sink.base.get(p)
                    lag[p] = max(0, high - (base if base is not None else 0))
                self.metrics.set_lag(sink.name, lag)
        self.metrics.write_status()
