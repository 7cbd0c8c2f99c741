"""The demo's streaming phase: broker, a burst of events with faults, Kafka -> bronze + speed
layer (available now), then silver so the streamed events reach it."""

from __future__ import annotations

from typing import TYPE_CHECKING

import psycopg
from rich.table import Table

from lakehouse import jobs as lake_jobs
from lakehouse.reconcile import new_run_id
from lakehouse.services.kafka import LocalKafka
from lakehouse.streaming import bronze_sink, jobs, producer, speed
from lakehouse.streaming.consumer import log_end_offsets

if TYPE_CHECKING:
    from lakehouse.demo import DemoContext

BURST_EVENTS = 20_000


def stage(ctx: DemoContext, events: int | None = None) -> None:
    settings = ctx.settings
    s = settings.streaming
    console = ctx.console
    console.rule("[bold]Streaming: Kafka -> bronze (exactly once) + speed layer")
    broker = LocalKafka.from_settings(settings)
    local = not s.bootstrap
    started_here = False
    if local:
        started_here = not broker.status().running
        if s.broker_storage == "s3":
            from lakehouse.services.seaweedfs import LocalSeaweedFS

            LocalSeaweedFS.from_settings(settings).start()
        ctx.timed("stream: start broker", broker.start)
        if s.broker_storage == "memory":
            _restart_offsets_of_a_new_topic(ctx)
    try:
        stats = ctx.timed(
            "stream: produce burst",
            lambda: producer.produce(
                settings, events or min(BURST_EVENTS, max(settings.generator.events, 1)), None
            ),
        )
        faults = sum(n for k, n in stats.faults.items() if k != "valid")
        console.print(
            f"produced {stats.records:,} records ({stats.events:,} events, {faults:,} with injected faults) "
            f"to {s.servers} {s.topic} at {stats.rate:,.0f}/s"
        )
        run_id = new_run_id()
        ctx.run_ids.append(run_id)
        result = ctx.timed(
            "stream: Kafka -> bronze + speed layer",
            lambda: jobs.consume(settings, run_id, available_now=True),
        )
        ctx.recs += result.recs
        snap = result.metrics.snapshot() if result.metrics else {"sinks": {}}
        for name, st in snap["sinks"].items():
            p95 = st.get("freshness_p95")
            console.print(
                f"{name}: {st['records']:,} records in {st['commits']} commits"
                + (f", freshness p95 {p95:.2f}s" if p95 is not None else "")
                + (f", late {st['late']:,}, rejected {st['rejected']:,}" if name == "speed" else "")
            )
        ctx.recs += ctx.timed("stream: silver", lambda: lake_jobs.silver(ctx.lake, settings, run_id))
        console.print(_realtime_table(jobs.serving_dsn(settings)))
    finally:
        if started_here:
            broker.stop()  # memory storage: nothing to keep; bronze and realtime.* hold the data


def _restart_offsets_of_a_new_topic(ctx: DemoContext) -> None:
    """A broker with memory storage loses its topic when it stops; started again, it serves a
    new topic whose offsets begin at 0. Offsets stored by an earlier run then point past the new
    log's end (exact ends, read by fetching to the end): start both sinks from the beginning of
    the new topic instead of waiting for offsets that will never come."""
    settings = ctx.settings
    s = settings.streaming
    partitions = list(range(s.partitions))
    stored = bronze_sink.stored_offsets(ctx.lake, s.topic, partitions)
    if not any(stored.values()):
        return
    ends = log_end_offsets(settings)
    if not any((o or 0) > ends.get(p, 0) for p, o in stored.items()):
        return
    reason = f"{s.topic} was created anew (memory storage): stored offsets {stored} are past its ends {ends}"
    bronze_sink.restart_offsets(ctx.lake, s.topic, partitions, reason)
    dropped = speed.restart_offsets(jobs.serving_dsn(settings), s.topic)
    ctx.console.print(
        f"{s.topic} is new on this broker (memory storage): bronze offsets {stored} and the speed "
        f"layer's ({dropped} partition(s)) restart at 0"
    )


def _realtime_table(dsn: str) -> Table:
    table = Table(title="realtime.* (speed layer), latest minutes", title_justify="left")
    for col in ("window_start", "events", "logins", "purchases", "GMV (USD)", "late"):
        table.add_column(col, justify="right")
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            """
            SELECT w.window_start, w.events, coalesce(l.logins, 0), coalesce(p.purchase_count, 0),
                   coalesce(o.gmv_usd, 0), coalesce(x.late_count, 0)
            FROM (SELECT window_start, sum(event_count) AS events FROM realtime.events_per_minute
                  GROUP BY window_start ORDER BY window_start DESC LIMIT 5) w
            LEFT JOIN (SELECT window_start, sum(login_count) AS logins FROM realtime.logins_per_source
                       GROUP BY window_start) l USING (window_start)
            LEFT JOIN realtime.purchases_per_minute p USING (window_start)
            LEFT JOIN realtime.orders_per_minute o USING (window_start)
            LEFT JOIN realtime.late_events x USING (window_start)
            ORDER BY w.window_start
            """
        ).fetchall()
    for w, events, logins, purchases, gmv, late in rows:
        table.add_row(
            w.strftime("%Y-%m-%d %H:%M"),
            f"{events:,}",
            f"{logins:,}",
            f"{purchases:,}",
            f"{gmv:,.2f}",
            f"{late:,}",
        )
    return table
