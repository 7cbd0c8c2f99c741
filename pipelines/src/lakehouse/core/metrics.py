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
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily, Metric

from lakehouse.core.settings import LOOPBACK, PostgresSettings

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


@dataclass(frozen=True)
class SinkSnapshot:
    """One sink's figures at a moment: what `stream status`, the demo and the bench show."""

    records: int
    commits: int
    rate: float
    lag: dict[int, int]
    committed: dict[int, int]
    freshness_p50: float | None
    freshness_p95: float | None
    event_time_freshness_p95: float | None
    late: int
    rejected: int


@dataclass(frozen=True)
class MetricsSnapshot:
    """A consumer process's figures at a moment; also its status file's content (JSON)."""

    group: str
    pid: int
    started: float
    updated: float
    metrics_url: str | None
    watermark: float | None
    sinks: dict[str, SinkSnapshot]

    def as_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> MetricsSnapshot:
        sinks = {
            name: SinkSnapshot(
                **{
                    **st,
                    "lag": {int(p): int(n) for p, n in st["lag"].items()},
                    "committed": {int(p): int(n) for p, n in st["committed"].items()},
                }
            )
            for name, st in data["sinks"].items()
        }
        return cls(**{**data, "sinks": sinks})


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
        # called with each status (about once a second): e.g. the lag table in the serving database
        self.on_status: Callable[[MetricsSnapshot], object] | None = None
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

    def snapshot(self) -> MetricsSnapshot:
        with self._lock:
            sinks = {}
            for name, st in self.sinks.items():
                fresh = list(st.freshness)
                sinks[name] = SinkSnapshot(
                    records=st.records,
                    commits=st.commits,
                    rate=round(st.rate(), 1),
                    lag=dict(sorted(st.lag.items())),
                    committed=dict(sorted(st.committed.items())),
                    freshness_p50=percentile(fresh, 0.5),
                    freshness_p95=percentile(fresh, 0.95),
                    event_time_freshness_p95=percentile(list(st.event_freshness), 0.95),
                    late=st.late,
                    rejected=st.rejected,
                )
        return MetricsSnapshot(
            group=self.group,
            pid=os.getpid(),
            started=self.started,
            updated=time.time(),
            metrics_url=f"http://{LOOPBACK}:{self.server_port}/metrics" if self.server_port else None,
            watermark=self.watermark,
            sinks=sinks,
        )

    def write_status(self) -> None:
        snap = self.snapshot()
        if self.on_status is not None:
            self.on_status(snap)
        if self.status_file is None:
            return
        self.status_file.parent.mkdir(parents=True, exist_ok=True)
        # one temporary file per writer: consumers of one group in one process share the status file
        tmp = self.status_file.with_suffix(f".{os.getpid()}-{threading.get_ident()}.tmp")
        tmp.write_text(json.dumps(snap.as_json(), indent=1))
        os.replace(tmp, self.status_file)


class LakeHealthCollector:
    """Data-quality and reconciliation figures as Prometheus metrics, read at scrape time from the
    serving database (ops.quality_results, ops.reconciliation), where every gate and run publishes
    them: the last gate run per layer and the last run per step and source. Registered beside the
    stream metrics by the consumer and on the API's /metrics."""

    def __init__(self, serving: PostgresSettings, timeout: float = 3.0) -> None:
        self.dsn = serving.serving_dsn
        self.timeout = timeout

    def _rows(self) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
        with psycopg.connect(self.dsn, connect_timeout=max(1, int(self.timeout)), autocommit=True) as conn:
            conn.execute(f"SET statement_timeout = {int(self.timeout * 1000)}")
            quality = conn.execute(
                "SELECT layer, status, checks, failed_checks, failing_rows, extract(epoch FROM checked_at) "
                "FROM health.last_gate_results"
            ).fetchall()
            recon = conn.execute(
                "SELECT DISTINCT ON (step, source) step, source, rows_in, inserted, updated, unchanged, "
                "quarantined, duplicates, balanced, extract(epoch FROM finished_at) "
                "FROM ops.reconciliation ORDER BY step, source, finished_at DESC"
            ).fetchall()
        return quality, recon

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("lakehouse_health_up", "1 when the serving database's ops records were read")
        try:
            quality, recon = self._rows()
        except psycopg.Error:
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        checks = GaugeMetricFamily(
            "lakehouse_quality_checks", "checks of the last gate run per layer", labels=["layer", "result"]
        )
        failing = GaugeMetricFamily(
            "lakehouse_quality_failing_rows", "failing rows over the last gate run's checks", labels=["layer"]
        )
        passed = GaugeMetricFamily(
            "lakehouse_quality_gate_passed", "1 when the last gate run of the layer passed", labels=["layer"]
        )
        when = GaugeMetricFamily(
            "lakehouse_quality_last_run_timestamp_seconds",
            "last gate run per layer (unix s)",
            labels=["layer"],
        )
        for layer, status, n, failed, rows, at in quality:
            checks.add_metric([layer, "failed"], failed)
            checks.add_metric([layer, "passed"], n - failed)
            failing.add_metric([layer], rows)
            passed.add_metric([layer], 0 if status == "fail" else 1)
            when.add_metric([layer], float(at))
        yield from (checks, failing, passed, when)
        recon_rows = GaugeMetricFamily(
            "lakehouse_reconciliation_rows",
            "rows of the last run per step and source, by outcome (in = the rest summed)",
            labels=["step", "source", "outcome"],
        )
        balanced = GaugeMetricFamily(
            "lakehouse_reconciliation_balanced",
            "1 when the last run's rows add up",
            labels=["step", "source"],
        )
        recon_when = GaugeMetricFamily(
            "lakehouse_reconciliation_last_run_timestamp_seconds",
            "end of the last run per step and source (unix s)",
            labels=["step", "source"],
        )
        outcomes = ("in", "inserted", "updated", "unchanged", "quarantined", "duplicates")
        for step, source, *counts, ok, at in recon:
            for outcome, n in zip(outcomes, counts, strict=True):
                recon_rows.add_metric([step, source, outcome], n)
            balanced.add_metric([step, source], 1 if ok else 0)
            recon_when.add_metric([step, source], float(at))
        yield from (recon_rows, balanced, recon_when)
