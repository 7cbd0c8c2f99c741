"""Stream metrics: Prometheus (127.0.0.1 only) and a status file `lakehouse stream status` reads.

Per sink (bronze, speed): records written, processing rate, consumer lag per partition (high
watermark from the consumer's own fetches minus the sink's committed offset), end-to-end freshness
(Kafka record timestamp, i.e. when the event was produced, to the commit that made it visible)
and commit duration; for the speed layer also the event-time freshness (the event's own ts to
visible in PostgreSQL, on-time events) and late (behind the watermark) and rejected events.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from lakehouse.services.base import LOOPBACK

FRESHNESS_BUCKETS = (0.05, 0.1, 0.25, 0.5, 0.75, 1, 1.5, 2, 3, 5, 7.5, 10, 20, 30, 60, 120, 300)


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    k = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[k]


@dataclass
class SinkStats:
    records: int = 0
    commits: int = 0
    late: int = 0
    rejected: int = 0
    freshness: deque[float] = field(default_factory=lambda: deque(maxlen=200_000))
    event_freshness: deque[float] = field(default_factory=lambda: deque(maxlen=200_000))
    rate_window: deque[tuple[float, int]] = field(default_factory=lambda: deque(maxlen=600))
    lag: dict[int, int] = field(default_factory=dict)
    committed: dict[int, int] = field(default_factory=dict)

    def rate(self, seconds: float = 10.0) -> float:
        now = time.monotonic()
        recent = [(t, n) for t, n in self.rate_window if now - t <= seconds]
        if not recent:
            return 0.0
        span = max(now - recent[0][0], 1e-3)
        return sum(n for _, n in recent) / max(span, min(seconds, 1.0))


class StreamMetrics:
    """Collects the numbers; optionally serves them on http://127.0.0.1:<port>/metrics."""

    def __init__(self, group: str, status_file: Path | None = None) -> None:
        self.group = group
        self.status_file = status_file
        self.registry = CollectorRegistry()
        self.sinks: dict[str, SinkStats] = {}
        self.started = time.time()
        self.watermark: float | None = None
        self.server_port: int | None = None
        self._lock = threading.Lock()
        r = self.registry
        self.m_records = Counter(
            "lakehouse_stream_records", "Kafka records committed by a sink", ["sink"], registry=r
        )
        self.m_late = Counter(
            "lakehouse_stream_late_events", "events behind the speed-layer watermark", registry=r
        )
        self.m_rejected = Counter(
            "lakehouse_stream_rejected_events", "records the speed layer cannot count", ["reason"], registry=r
        )
        self.m_lag = Gauge(
            "lakehouse_stream_consumer_lag", "records behind the log end", ["sink", "partition"], registry=r
        )
        self.m_rate = Gauge(
            "lakehouse_stream_processing_rate", "records/s over the last 10 s", ["sink"], registry=r
        )
        self.m_fresh = Histogram(
            "lakehouse_stream_freshness_seconds",
            "produced (Kafka timestamp) -> visible (commit)",
            ["sink"],
            buckets=FRESHNESS_BUCKETS,
            registry=r,
        )
        self.m_event_fresh = Histogram(
            "lakehouse_stream_event_time_freshness_seconds",
            "event time (the event's ts) -> visible in PostgreSQL, on-time events",
            ["sink"],
            buckets=FRESHNESS_BUCKETS,
            registry=r,
        )
        self.m_commit = Histogram(
            "lakehouse_stream_commit_seconds", "time per sink commit", ["sink"], registry=r
        )
        self.m_watermark = Gauge(
            "lakehouse_stream_watermark_timestamp", "speed-layer watermark (unix s)", registry=r
        )

    def serve(self, port: int) -> int:
        """Start the Prometheus endpoint on 127.0.0.1 only; returns the port."""
        start_http_server(port, addr=LOOPBACK, registry=self.registry)
        self.server_port = port
        return port

    def sink(self, name: str) -> SinkStats:
        return self.sinks.setdefault(name, SinkStats())

    def committed(
        self,
        sink: str,
        records: int,
        freshness: list[float],
        commit_seconds: float,
        offsets: dict[int, int],
        late: int = 0,
        rejected: dict[str, int] | None = None,
        event_freshness: list[float] | None = None,
    ) -> None:
        with self._lock:
            st = self.sink(sink)
            st.records += records
            st.commits += 1
            st.late += late
            st.freshness.extend(freshness)
            st.rate_window.append((time.monotonic(), records))
            st.committed.update(offsets)
            self.m_records.labels(sink).inc(records)
            self.m_commit.labels(sink).observe(commit_seconds)
            hist = self.m_fresh.labels(sink)
            for f in freshness[:: max(1, len(freshness) // 2000)]:  # sample big batches
                hist.observe(f)
            if event_freshness:
                st.event_freshness.extend(event_freshness)
                ehist = self.m_event_fresh.labels(sink)
                for f in event_freshness[:: max(1, len(event_freshness) // 2000)]:
                    ehist.observe(f)
            if late:
                self.m_late.inc(late)
            for reason, n in (rejected or {}).items():
                st.rejected += n
                self.m_rejected.labels(reason).inc(n)
            self.m_rate.labels(sink).set(st.rate())

    def set_lag(self, sink: str, lag: dict[int, int]) -> None:
        with self._lock:
            st = self.sink(sink)
            st.lag = dict(lag)
            for p, n in lag.items():
                self.m_lag.labels(sink, str(p)).set(n)
            self.m_rate.labels(sink).set(st.rate())

    def set_watermark(self, ts: float | None) -> None:
        if ts is not None:
            self.watermark = ts
            self.m_watermark.set(ts)

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            sinks = {}
            for name, st in self.sinks.items():
                fresh = list(st.freshness)
                sinks[name] = {
                    "records": st.records,
                    "commits": st.commits,
                    "rate": round(st.rate(), 1),
                    "lag": {str(p): n for p, n in sorted(st.lag.items())},
                    "committed": {str(p): n for p, n in sorted(st.committed.items())},
                    "freshness_p50": percentile(fresh, 0.5),
                    "freshness_p95": percentile(fresh, 0.95),
                    "event_time_freshness_p95": percentile(list(st.event_freshness), 0.95),
                    "late": st.late,
                    "rejected": st.rejected,
                }
        return {
            "group": self.group,
            "pid": os.getpid(),
            "started": self.started,
            "updated": time.time(),
            "metrics": f"http://{LOOPBACK}:{self.server_port}/metrics" if self.server_port else None,
            "watermark": self.watermark,
            "sinks": sinks,
        }

    def write_status(self) -> None:
        if self.status_file is None:
            return
        self.status_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.status_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.snapshot(), indent=1))
        os.replace(tmp, self.status_file)
