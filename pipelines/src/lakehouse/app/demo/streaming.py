"""The demo's streaming phase: broker, a burst of events with faults, Kafka -> bronze + speed
layer (available now), then silver so the streamed events reach it."""

from __future__ import annotations

from typing import TYPE_CHECKING

import psycopg
from rich.table import Table

from lakehouse.app import jobs as lake_jobs
from lakehouse.app import streaming as jobs
from lakehouse.core.kafka import check_broker
from lakehouse.core.reconcile import new_run_id
from lakehouse.generator import kafka_producer as producer
from lakehouse.services import local_broker

if TYPE_CHECKING:
    from lakehouse.app.demo.context import DemoContext

BURST_EVENTS = 20_000


def stage(ctx: DemoContext, events: int | None = None) -> None:
    settings = ctx.settings
    s = settings.streaming
    console = ctx.console
    console.rule("[bold]Streaming: Kafka -> bronze (exactly once) + speed layer")
    broker = local_broker(settings)
    local = not s.bootstrap
    started_here = False
    if local:
        started_here = not broker.status().running
        if s.broker_needs_s3:
            from lakehouse.services.seaweedfs import LocalSeaweedFS

            LocalSeaweedFS.from_settings(settings).start()
        ctx.timed("stream: start broker", broker.start)
        if s.broker == "tansu" and s.broker_storage == "memory":
            _restart_offsets_of_a_new_topic(ctx)
    check_broker(s)
    try:
        stats = ctx.timed(
            "stream: produce burst",
            lambda: producer.produce(
                settings.generator,
                settings.streaming,
                events or min(BURST_EVENTS, max(settings.generator.events, 1)),
                None,
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
        sinks = result.metrics.snapshot().sinks if result.metrics else {}
        for name, st in sinks.items():
            p95 = st.freshness_p95
            console.print(
                f"{name}: {st.records:,} records in {st.commits} commits"
                + (f", freshness p95 {p95:.2f}s" if p95 is not None else "")
                + (f", late {st.late:,}, rejected {st.rejected:,}" if name == "speed" else "")
            )
        ctx.recs += ctx.timed("stream: silver", lambda: lake_jobs.silver(ctx.lake, settings, run_id))
        ctx.audit("streaming", kafka=True)  # while the broker still runs: offsets are read from it
        console.print(_realtime_table(settings.postgres.serving_dsn))
    finally:
        if started_here:
            broker.stop()  # bronze and realtime.* hold the data; a broker log on disk stays for the next run


def _restart_offsets_of_a_new_topic(ctx: DemoContext) -> None:
    """A broker with memory storage loses its topic when it stops; started again, it serves a new
    topic whose offsets begin at 0, and offsets stored by an earlier run point past its end."""
    before = jobs.restart_stale_offsets(ctx.settings, ctx.lake)
    if before is not None:
        ctx.console.print(
            f"{ctx.settings.streaming.topic} is new on this broker (memory storage): the stored "
            f"offsets {before} restart at 0 (bronze and the speed layer)"
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
