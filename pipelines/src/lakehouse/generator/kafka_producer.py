"""Producer: generator events (with the generator's fault injection) into the Kafka topic.

Event number i of a produce run is `lakehouse.generator.events.render(spec, i)` with the spec's
clock starting now and advancing at the target rate, so event times track the wall clock the way
a live source's would (out-of-order and late events are the generator's faults). Each event is
keyed by its user id, so one user's events stay in one partition, in order. Injected duplicates
are sent as separate records, like a retrying client would.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from confluent_kafka import KafkaError, Message, Producer

from lakehouse.core.errors import LakehouseError
from lakehouse.core.kafka import producer_config
from lakehouse.core.settings import GeneratorSettings, StreamingSettings
from lakehouse.generator.events import Draws, EventSpec, render

# Stream event ids must not collide with the batch generator's (same seed and index = same id).
STREAM_SEED_OFFSET = 1_000_003


@dataclass
class ProduceStats:
    events: int = 0
    records: int = 0
    delivered: int = 0
    failed: int = 0
    faults: Counter[str] = field(default_factory=Counter)
    started: float = field(default_factory=time.monotonic)
    finished: float | None = None
    last_error: str = ""

    @property
    def seconds(self) -> float:
        return (self.finished or time.monotonic()) - self.started

    @property
    def rate(self) -> float:
        return self.records / self.seconds if self.seconds > 0 else 0.0


def stream_spec(g: GeneratorSettings, count: int, rate: float | None, seed: int | None = None) -> EventSpec:
    """The generator spec of one produce run: clock starts now, advances at `rate` events/s."""
    if seed is None:
        seed = g.seed + STREAM_SEED_OFFSET + int(time.time())
    total = max(count, 1)
    return EventSpec(
        seed=seed,
        total=total,
        users=g.users,
        products=g.products,
        start=datetime.now(UTC),
        span_seconds=total / (rate or 50_000.0),
        faults=g.faults,
    )


def user_key(spec: EventSpec, index: int) -> bytes:
    """The event's user id (as the generator draws it), used as the record key."""
    return str(1 + Draws(spec.seed, index).below(12, spec.users)).encode()


def produce(
    generator: GeneratorSettings,
    streaming: StreamingSettings,
    count: int,
    rate: float | None,
    *,
    seed: int | None = None,
    on_tick: Callable[[ProduceStats], None] | None = None,
    tick_seconds: float = 0.5,
    stop: threading.Event | None = None,
) -> ProduceStats:
    """Send `count` generator events at `rate` events/s (None = as fast as possible); wait for delivery.

    `count` 0 means until interrupted (Ctrl-C) or `stop` is set: then the queue is flushed.
    """
    spec = stream_spec(generator, count if count > 0 else 1_000_000_000, rate, seed)
    topic = streaming.topic
    stats = ProduceStats()

    def delivered(err: KafkaError | None, _msg: Message) -> None:
        if err is None:
            stats.delivered += 1
        else:
            stats.failed += 1
            stats.last_error = str(err)

    producer = Producer(producer_config(streaming))
    t0 = time.monotonic()
    next_tick = t0 + tick_seconds
    index = 0
    try:
        while (count <= 0 or index < count) and not (stop is not None and stop.is_set()):
            if rate:
                due = t0 + index / rate
                now = time.monotonic()
                if due > now:
                    producer.poll(min(due - now, 0.05))
                    continue
            lines, faults = render(spec, index)
            key = user_key(spec, index)
            for line in lines:
                _send(producer, topic, key, line, delivered)
            stats.events += 1
            stats.records += len(lines)
            stats.faults.update(faults)
            index += 1
            if index % 1000 == 0:
                producer.poll(0)
            if on_tick and time.monotonic() >= next_tick:
                producer.poll(0)
                on_tick(stats)
                next_tick = time.monotonic() + tick_seconds
    except KeyboardInterrupt:
        pass
    finally:
        remaining = producer.flush(60)
        stats.finished = time.monotonic()
        if on_tick:
            on_tick(stats)
    if remaining:
        raise LakehouseError(f"{remaining} records were not delivered within 60 s: {stats.last_error}")
    if stats.failed:
        raise LakehouseError(f"{stats.failed} records failed delivery: {stats.last_error}")
    return stats


def send_lines(streaming: StreamingSettings, records: Iterable[tuple[bytes | None, bytes | None]]) -> int:
    """Send ready-made (key, value) records as fast as possible; returns how many were delivered."""
    failed: list[str] = []
    ok = 0

    def delivered(err: KafkaError | None, _msg: Message) -> None:
        nonlocal ok
        if err is None:
            ok += 1
        else:
            failed.append(str(err))

    producer = Producer(producer_config(streaming))
    for n, (key, value) in enumerate(records, 1):
        _send(producer, streaming.topic, key, value, delivered)
        if n % 5000 == 0:
            producer.poll(0)
    if producer.flush(120) or failed:
        raise LakehouseError(f"records not delivered: {failed[:1] or 'flush timed out'}")
    return ok


def _send(
    producer: Producer,
    topic: str,
    key: bytes | None,
    value: bytes | None,
    cb: Callable[[KafkaError | None, Message], None],
) -> None:
    while True:
        try:
            producer.produce(topic, value=value, key=key, on_delivery=cb)
            return
        except BufferError:  # local queue full: let deliveries drain
            producer.poll(0.05)
