"""What the stream runner feeds: a sink stores its per-partition offsets atomically with its data.

A sink buffers the records of each partition, and on flush writes them together with the next
offset to read, after checking that the stored offsets are still the ones it started from (a
fence against a zombie owner). The Delta sink (`kafka_sink`) and the speed layer implement it.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import cast

from confluent_kafka import Message


def offset_of(m: Message) -> int:
    return cast(int, m.offset())  # never None for a delivered (non-error) message


@dataclass
class FlushResult:
    records: int = 0
    offsets: dict[int, int] = field(default_factory=dict)  # committed next offsets
    conflicts: dict[int, int | None] = field(default_factory=dict)  # partition -> stored offset
    freshness: list[float] = field(default_factory=list)  # Kafka timestamp -> visible, seconds
    event_freshness: list[float] = field(default_factory=list)  # event time -> visible (speed layer)
    seconds: float = 0.0
    late: int = 0
    rejected: dict[str, int] = field(default_factory=dict)
    counted: int = 0


class Sink(ABC):
    """A destination that stores its per-partition offsets atomically with its data."""

    name: str = "sink"

    def __init__(self, topic: str, max_rows: int, max_seconds: float) -> None:
        self.topic = topic
        self.max_rows = max_rows
        self.max_seconds = max_seconds
        self.base: dict[int, int | None] = {}  # stored next offset (as last read or committed)
        self.next: dict[int, int | None] = {}  # next offset this sink expects
        self.buf: dict[int, list[Message]] = {}
        self.rows = 0
        self.first_at: float | None = None
        self.advanced = 0  # offsets committed by this run (sum over partitions)
        self.written = 0  # records committed by this run

    # -- storage ----------------------------------------------------------------------------
    @abstractmethod
    def load_offsets(self, partitions: list[int]) -> dict[int, int | None]:
        """Stored next offset per partition (None: this sink never committed that partition)."""

    @abstractmethod
    def write(
        self, batch: dict[int, list[Message]], expected: dict[int, int | None], new: dict[int, int]
    ) -> FlushResult:
        """Atomically write `batch` and set the stored offsets to `new`, but only if they still
        equal `expected`; otherwise write nothing and return the stored offsets as conflicts."""

    def close(self) -> None:  # noqa: B027 - optional hook
        pass

    # -- buffering --------------------------------------------------------------------------
    def assign(self, partitions: list[int]) -> dict[int, int | None]:
        stored = self.load_offsets(partitions)
        for p in partitions:
            self.base[p] = self.next[p] = stored.get(p)
            self._drop(p)
        return stored

    def revoke(self, partitions: list[int]) -> None:
        for p in partitions:
            self._drop(p)
            self.base.pop(p, None)
            self.next.pop(p, None)

    def _drop(self, p: int) -> None:
        self.rows -= len(self.buf.pop(p, []))
        if self.rows <= 0:
            self.rows, self.first_at = 0, None

    def offer(self, p: int, msgs: list[Message]) -> None:
        if p not in self.next:
            return  # not (or no longer) assigned
        want = self.next[p]
        if want is not None and offset_of(msgs[0]) < want:
            msgs = [m for m in msgs if offset_of(m) >= want]
            if not msgs:
                return
        self.buf.setdefault(p, []).extend(msgs)
        self.next[p] = offset_of(msgs[-1]) + 1
        if self.first_at is None:
            self.first_at = time.monotonic()
        self.rows += len(msgs)

    def due(self, now: float) -> bool:
        return self.rows >= self.max_rows or (
            self.first_at is not None and now - self.first_at >= self.max_seconds
        )

    def wait_hint(self, now: float) -> float:
        return self.max_seconds if self.first_at is None else max(0.0, self.first_at + self.max_seconds - now)

    def flush(self) -> FlushResult | None:
        batch = {p: msgs for p, msgs in self.buf.items() if msgs}
        if not batch:
            self.rows, self.first_at = 0, None
            return None
        expected = {p: self.base.get(p) for p in batch}
        new = {p: offset_of(msgs[-1]) + 1 for p, msgs in batch.items()}
        started = time.perf_counter()
        result = self.write(batch, expected, new)
        result.seconds = time.perf_counter() - started
        if result.conflicts:
            for p, stored in result.conflicts.items():
                self._drop(p)
                self.base[p] = self.next[p] = stored
            return result
        for p, off in new.items():
            before = expected[p]
            self.advanced += off - (before if before is not None else offset_of(batch[p][0]))
            self.base[p] = off
        self.written += result.records
        result.offsets = new
        self.buf.clear()
        self.rows, self.first_at = 0, None
        return result
