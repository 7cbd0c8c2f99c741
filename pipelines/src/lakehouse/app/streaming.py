"""Stream jobs as plain functions (the CLI, the demo, the bench and the tests call these)."""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from lakehouse.bronze import kafka_sink as bronze_sink
from lakehouse.bronze.kafka_consumer import RunSummary, StreamRunner
from lakehouse.bronze.kafka_offsets import stale_offsets
from lakehouse.bronze.kafka_sink import BronzeSink
from lakehouse.bronze.stream_sink import FlushResult, Sink
from lakehouse.core import ops_db
from lakehouse.core.errors import LakehouseError
from lakehouse.core.metrics import LakeHealthCollector, StreamMetrics
from lakehouse.core.reconcile import Reconciliation
from lakehouse.core.reconcile import now as reconcile_now
from lakehouse.core.settings import Settings
from lakehouse.core.storage import Lake
from lakehouse.services.process import pid_alive
from lakehouse.speed import sink as speed_sink
from lakehouse.speed.sink import SpeedSink


def restart_stale_offsets(settings: Settings, lake: Lake | None = None) -> dict[int, int | None] | None:
    """When bronze's stored offsets lie past the topic's exact log end (the topic was created
    anew, e.g. a broker with memory storage restarted), restart bronze's offsets at 0 in one
    empty commit that records the old ones and why, and drop the speed layer's. Returns the
    offsets replaced, or None when they were not stale (nothing is changed then)."""
    s = settings.streaming
    lake = lake or Lake(settings)
    partitions = list(range(s.partitions))
    stored = bronze_sink.stored_offsets(lake, s.topic, partitions)
    stale = stale_offsets(settings.streaming, stored)
    if not stale:
        return None
    reason = f"{s.topic} was created anew: stored offsets past the log end (stored, end) {stale}"
    before = bronze_sink.restart_offsets(lake, s.topic, partitions, reason)
    speed_sink.restart_offsets(settings.postgres.serving_dsn, s.topic)
    return before


def status_file(settings: Settings, group: str, pid: int | None = None) -> Path:
    """Where a consumer process of `group` writes its status (one file per process)."""
    return settings.state_path / "streaming" / f"{group}-{pid or os.getpid()}.json"


def status_files(settings: Settings, group: str) -> list[Path]:
    """Status files of `group`'s processes, newest first."""
    folder = settings.state_path / "streaming"
    dated = []
    for f in folder.glob(f"{group}-*.json") if folder.exists() else []:
        # another consumer of the group may remove a finished process's file between the listing
        # and this look at it
        with contextlib.suppress(FileNotFoundError):
            dated.append((f.stat().st_mtime, f))
    return [f for _, f in sorted(dated, reverse=True)]


@dataclass
class ConsumeResult:
    summary: RunSummary
    recs: list[Reconciliation] = field(default_factory=list)
    metrics: StreamMetrics | None = None


def build_sinks(settings: Settings, lake: Lake | None, bronze: bool, speed: bool, run_id: str) -> list[Sink]:
    s = settings.streaming
    sinks: list[Sink] = []
    if bronze:
        if lake is None:
            raise LakehouseError("the bronze sink needs a lake")
        sinks.append(BronzeSink(lake, s.topic, s.batch_max_rows, s.batch_max_seconds, run_id))
    if speed:
        sinks.append(
            SpeedSink(
                settings.postgres.serving_dsn,
                s.topic,
                s.speed_group,
                s.speed_batch_max_seconds,
                s.window_seconds,
                s.allowed_lateness_seconds,
                settings.silver.future_tolerance_hours * 3600,
                s.speed_batch_max_rows,
            )
        )
    if not sinks:
        raise LakehouseError("nothing to do: enable bronze and/or the speed layer")
    return sinks


def consume(
    settings: Settings,
    run_id: str,
    *,
    bronze: bool = True,
    speed: bool = True,
    available_now: bool = False,
    metrics_port: int | None = None,
    max_seconds: float | None = None,
    lake: Lake | None = None,
    signals: bool = False,
    record: bool = True,
    on_flush: Callable[[str, FlushResult], None] | None = None,
    group: str | None = None,
    use_group: bool = True,
    stop: threading.Event | None = None,
) -> ConsumeResult:
    """Run the consumer: bronze and/or speed layer; `available_now` drains and stops."""
    s = settings.streaming
    group = group or (s.bronze_group if bronze else s.speed_group)
    lake = lake or (Lake(settings) if bronze else None)
    for old in status_files(settings, group)[1:]:  # keep the latest finished run's file
        with contextlib.suppress(OSError, ValueError):
            if not pid_alive(int(old.stem.rsplit("-", 1)[1])):
                old.unlink()
    metrics = StreamMetrics(group, status_file(settings, group))
    metrics.registry.register(LakeHealthCollector(settings.postgres))  # quality and reconciliation
    lag_table = ops_db.ConsumerLagTable(settings.postgres, group, s.topic)
    metrics.on_status = lambda snap: lag_table.write(
        {name: (st.lag, st.committed) for name, st in snap.sinks.items()}
    )
    if metrics_port:
        try:
            metrics.serve(metrics_port)
        except OSError as exc:
            raise LakehouseError(
                f"metrics port 127.0.0.1:{metrics_port} is busy ({exc.strerror}): set streaming.metrics_port"
            ) from None
    sinks = build_sinks(settings, lake, bronze, speed, run_id)
    runner = StreamRunner(
        settings.streaming,
        sinks,
        group,
        available_now=available_now,
        metrics=metrics,
        on_flush=on_flush,
        assign_all=available_now or not use_group,
    )
    if stop is not None:
        runner.stop_event = stop
    if signals:
        runner.install_signal_handlers()
    started = reconcile_now()
    try:
        summary = runner.run(max_seconds=max_seconds)
    finally:
        lag_table.close()
    recs: list[Reconciliation] = []
    for sink in sinks:
        target = "bronze.events" if sink.name == "bronze" else "realtime.*"
        rec = Reconciliation(run_id, f"stream-{sink.name}", f"kafka/{s.topic}", target, started_at=started)
        rec.rows_in = sink.advanced  # offsets the sink's commits moved forward
        stats = metrics.sinks.get(sink.name)
        if sink.name == "bronze":
            rec.inserted = sink.written
        elif stats is not None:
            rec.inserted = sink.written - stats.late - stats.rejected
            rec.quarantined = stats.late + stats.rejected
            rec.detail = f"late (behind the watermark) {stats.late}, rejected {stats.rejected}"
        rec.detail = (rec.detail + f"; {summary.commits.get(sink.name, 0)} commits").lstrip("; ")
        recs.append(rec.finish())
    if record and lake is not None and any(r.rows_in for r in recs):
        ops_db.record_reconciliation(lake, settings.postgres, recs)
    return ConsumeResult(summary, recs, metrics)
