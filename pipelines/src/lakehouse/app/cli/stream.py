"""`lakehouse stream ...`: the broker, the producer, the consumers and their status."""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import RenderableType
from rich.table import Table

from lakehouse.app.cli import broker
from lakehouse.app.cli.options import EnvOpt, JsonOpt, SetOpt, cli_settings, console, emit, writable_lake
from lakehouse.app.cli.progress import bars
from lakehouse.core.kafka import BrokerUnavailable, check_broker

if TYPE_CHECKING:
    from lakehouse.core.metrics import MetricsSnapshot
    from lakehouse.generator.kafka_producer import ProduceStats

# seconds between progress lines of `stream produce` when its output is not a terminal
PIPED_TICK = 5.0

app = typer.Typer(
    help="Streaming: local Kafka broker, producer, exactly-once Kafka -> bronze, speed layer.",
    no_args_is_help=True,
)
app.add_typer(broker.app, name="broker")


@app.command("produce")
def produce_cmd(
    count: Annotated[int, typer.Option(help="events to send; 0 = until Ctrl-C")] = 0,
    rate: Annotated[float | None, typer.Option(help="events/s (default streaming.produce_rate)")] = None,
    max_rate: Annotated[bool, typer.Option("--max", help="as fast as the machine allows")] = False,
    seed: Annotated[int | None, typer.Option(help="generator seed (default: new per run)")] = None,
    env: EnvOpt = None,
    set_: SetOpt = None,
) -> None:
    """Send generator events (with fault injection) to the topic at a target rate, live rate shown."""
    from rich.live import Live

    from lakehouse.generator.kafka_producer import produce

    settings = cli_settings(env, set_)
    check_broker(settings.streaming)
    target = None if max_rate else (rate or settings.streaming.produce_rate)
    state = {"last": (time.monotonic(), 0)}

    def line(st: ProduceStats) -> Table:
        t0, n0 = state["last"]
        now = time.monotonic()
        current = (st.records - n0) / (now - t0) if now > t0 else 0.0
        state["last"] = (now, st.records)
        table = Table(
            box=None, show_header=True, title=f"-> {settings.streaming.servers} {settings.streaming.topic}"
        )
        for col in ("events", "records", "delivered", "now/s", "avg/s", "target/s", "faults injected"):
            table.add_column(col, justify="right")
        faults = sum(v for k, v in st.faults.items() if k != "valid")
        table.add_row(
            f"{st.events:,}",
            f"{st.records:,}",
            f"{st.delivered:,}",
            f"{current:,.0f}",
            f"{st.rate:,.0f}",
            "max" if target is None else f"{target:,.0f}",
            f"{faults:,}",
        )
        return table

    if console.is_terminal:
        with Live(console=console, refresh_per_second=4, transient=False) as live:
            stats = produce(
                settings.generator,
                settings.streaming,
                count,
                target,
                seed=seed,
                on_tick=lambda st: live.update(line(st)),
            )
    else:  # piped: a plain line every PIPED_TICK seconds instead of a live display
        printed = {"at": time.monotonic()}

        def tick(st: ProduceStats) -> None:
            if time.monotonic() - printed["at"] >= PIPED_TICK:
                printed["at"] = time.monotonic()
                typer.echo(
                    f"sent {st.records:,} records ({st.events:,} events), delivered {st.delivered:,}, "
                    f"{st.rate:,.0f}/s",
                )

        stats = produce(settings.generator, settings.streaming, count, target, seed=seed, on_tick=tick)
    table = Table(title="Faults injected", title_justify="left")
    table.add_column("kind")
    table.add_column("count", justify="right")
    for kind, n in sorted(stats.faults.items(), key=lambda kv: -kv[1]):
        table.add_row(kind, f"{n:,}")
    console.print(table)
    console.print(
        f"sent {stats.records:,} records ({stats.events:,} events) in {stats.seconds:.1f}s = {stats.rate:,.0f}/s"
    )


def _consume(
    env: str | None,
    set_: list[str] | None,
    *,
    bronze: bool,
    speed: bool,
    available_now: bool,
    metrics: bool,
    max_seconds: float | None,
    group: bool = True,
) -> None:
    settings = cli_settings(env, set_)
    check_broker(settings.streaming)  # a stopped broker: one line within seconds, not a minute of retries
    from lakehouse.app import streaming as jobs
    from lakehouse.app.render import tables as report
    from lakehouse.core.reconcile import new_run_id

    lake = writable_lake(settings) if bronze else None
    port = settings.streaming.metrics_port if metrics and not available_now else None
    what = " + ".join(n for n, on in (("bronze.events", bronze), ("realtime.* (speed layer)", speed)) if on)
    mode = "available now (drain, then stop)" if available_now else "continuous (Ctrl-C / SIGTERM to stop)"
    console.print(f"consuming {settings.streaming.servers} {settings.streaming.topic} -> {what}; {mode}")
    if port:
        console.print(f"metrics: http://127.0.0.1:{port}/metrics")
    result = jobs.consume(
        settings,
        new_run_id(),
        bronze=bronze,
        speed=speed,
        available_now=available_now,
        metrics_port=port,
        max_seconds=max_seconds,
        lake=lake,
        signals=True,
        use_group=group,
    )
    console.print(report.reconciliation_table(result.recs))
    _print_snapshot(result.metrics.snapshot() if result.metrics else None)


@app.command("consume")
def consume_cmd(
    available_now: Annotated[
        bool, typer.Option("--available-now", help="drain what is there, then stop")
    ] = False,
    bronze: Annotated[bool, typer.Option("--bronze/--no-bronze", help="write bronze.events")] = True,
    speed: Annotated[bool, typer.Option("--speed/--no-speed", help="also run the speed layer")] = True,
    metrics: Annotated[bool, typer.Option("--metrics/--no-metrics", help="Prometheus endpoint")] = True,
    max_seconds: Annotated[float | None, typer.Option(help="stop after this long")] = None,
    group: Annotated[
        bool,
        typer.Option(
            "--group/--no-group",
            help="join the consumer group (share partitions with other members, rebalances); "
            "--no-group reads every partition itself, like Spark's Kafka source (offsets always come "
            "from the sinks). --available-now never joins.",
        ),
    ] = True,
    restart_offsets: Annotated[
        bool,
        typer.Option(
            "--restart-offsets",
            help="if the stored offsets lie past the topic's end (the topic was created anew), "
            "start it from offset 0; without this the consumer stops with an error then",
        ),
    ] = False,
    env: EnvOpt = None,
    set_: SetOpt = None,
) -> None:
    """Kafka -> bronze.events exactly once (and the speed layer, unless --no-speed)."""
    if restart_offsets:
        from lakehouse.app import streaming as jobs

        check_broker(cli_settings(env, set_).streaming)
        before = jobs.restart_stale_offsets(cli_settings(env, set_))
        console.print(
            "stored offsets are not past the topic's end: nothing restarted"
            if before is None
            else f"stored offsets {before} were past the topic's end: restarted at 0"
        )
    _consume(
        env,
        set_,
        bronze=bronze,
        speed=speed,
        available_now=available_now,
        metrics=metrics,
        max_seconds=max_seconds,
        group=group,
    )


@app.command("speed-layer")
def speed_cmd(
    available_now: Annotated[
        bool, typer.Option("--available-now", help="drain what is there, then stop")
    ] = False,
    metrics: Annotated[bool, typer.Option("--metrics/--no-metrics", help="Prometheus endpoint")] = True,
    max_seconds: Annotated[float | None, typer.Option(help="stop after this long")] = None,
    env: EnvOpt = None,
    set_: SetOpt = None,
) -> None:
    """Only the speed layer: one-minute windows with a watermark -> PostgreSQL realtime.*."""
    _consume(
        env,
        set_,
        bronze=False,
        speed=True,
        available_now=available_now,
        metrics=metrics,
        max_seconds=max_seconds,
    )


def _print_snapshot(snap: MetricsSnapshot | None, title: str = "Stream metrics (this run)") -> None:
    table = _snapshot_table(snap, title)
    if table is not None:
        console.print(table)


def _snapshot_table(snap: MetricsSnapshot | None, title: str) -> Table | None:
    if not snap or not snap.sinks:
        return None
    table = Table(title=title, title_justify="left")
    for col in (
        "sink",
        "records",
        "commits",
        "rate/s",
        "lag",
        "freshness p50",
        "freshness p95",
        "event time p95",
        "late",
        "rejected",
    ):
        table.add_column(col, justify="right" if col != "sink" else "left")
    for name, st in snap.sinks.items():
        p50, p95, ev = st.freshness_p50, st.freshness_p95, st.event_time_freshness_p95
        table.add_row(
            name,
            f"{st.records:,}",
            f"{st.commits:,}",
            f"{st.rate:,.0f}",
            f"{sum(st.lag.values()):,}",
            "-" if p50 is None else f"{p50:.2f}s",
            "-" if p95 is None else f"{p95:.2f}s",
            "-" if ev is None else f"{ev:.2f}s",
            f"{st.late:,}",
            f"{st.rejected:,}",
        )
    return table


@app.command("status")
def status_cmd(env: EnvOpt = None, set_: SetOpt = None, as_json: JsonOpt = False) -> None:
    """Broker, log-end offsets, offsets stored by bronze and the speed layer, lag, running consumers."""
    from confluent_kafka import KafkaException

    from lakehouse.app import streaming as jobs
    from lakehouse.bronze import kafka_sink as bronze_sink
    from lakehouse.bronze.kafka_offsets import log_end_offsets
    from lakehouse.core.metrics import MetricsSnapshot
    from lakehouse.core.storage import Lake
    from lakehouse.services import local_broker
    from lakehouse.services.process import pid_alive
    from lakehouse.speed import sink as speed_sink

    settings = cli_settings(env, set_)
    s = settings.streaming
    shown: list[RenderableType] = []
    payload: dict[str, Any] = {"servers": s.servers, "topic": s.topic, "broker": None, "problem": None}
    if not s.bootstrap:
        local = local_broker(settings)
        payload["broker"] = local.status().as_dict()
        shown.append(broker.service_table(local))
    ends: dict[int, int] = {}
    try:
        check_broker(s)
        ends = log_end_offsets(s)
    except BrokerUnavailable as exc:
        payload["problem"] = str(exc)
    except KafkaException as exc:
        payload["problem"] = f"broker {s.servers}: {exc.args[0] if exc.args else exc}"
    if payload["problem"]:
        shown.append(f"[yellow]{payload['problem']}[/]")
    parts = sorted(ends) or list(range(s.partitions))
    bronze_off = bronze_sink.stored_offsets(Lake(settings, create=False), s.topic, parts)
    speed_off = speed_sink.stored_offsets(settings.postgres.serving_dsn, s.speed_group, s.topic)
    rows = []
    for p in parts:
        end, b, sp = ends.get(p), bronze_off.get(p), speed_off.get(p)
        rows.append(
            {
                "partition": p,
                "log_end": end,
                "bronze_offset": b,
                "bronze_lag": None if end is None else max(0, end - (b or 0)),
                "speed_offset": sp,
                "speed_lag": None if end is None else max(0, end - (sp or 0)),
            }
        )
    payload["partitions"] = rows
    table = Table(title=f"Topic {s.topic} on {s.servers}", title_justify="left")
    for col in ("partition", "log end*", "bronze offset", "bronze lag", "speed offset", "speed lag"):
        table.add_column(col, justify="right")
    for r in rows:
        table.add_row(*("-" if v is None else f"{v:,}" for v in r.values()))
    shown += [table, "* end of each partition as a fetch reports it (read from the end, not ListOffsets)"]
    payload["consumers"] = []
    for group in (s.bronze_group, s.speed_group):
        count = 0
        for path in jobs.status_files(settings, group):
            try:
                snap = MetricsSnapshot.from_json(json.loads(path.read_text()))
            except (OSError, ValueError, KeyError, TypeError):
                continue
            alive = pid_alive(snap.pid)
            if not alive and count:
                continue  # one finished run is enough: the latest
            age = time.time() - snap.updated
            payload["consumers"].append(
                {"group": group, "running": alive, "pid": snap.pid, "updated_seconds_ago": round(age, 1)}
            )
            state = f"running (pid {snap.pid})" if alive else "not running (last run)"
            title = f"Consumer group {group}: {state}, updated {age:.0f}s ago"
            if alive and snap.metrics_url:
                title += f", metrics {snap.metrics_url}"
            snapshot = _snapshot_table(snap, title)
            if snapshot is not None:
                shown.append(snapshot)
            count += 1
    emit(as_json, payload, *shown)


@app.command("demo")
def demo_cmd(
    events: Annotated[int, typer.Option(help="events in the burst")] = 20_000,
    env: EnvOpt = None,
    set_: SetOpt = None,
) -> None:
    """The streaming phase of `lakehouse demo` on its own: services, broker, a burst of events
    with faults, Kafka -> bronze + speed layer (available now), silver, summary."""
    from lakehouse.app import demo
    from lakehouse.app.demo import streaming as stream_demo
    from lakehouse.app.render import tables as report
    from lakehouse.core.storage import Lake
    from lakehouse.services import all_services

    settings = cli_settings(env, set_)
    for svc in all_services(settings):
        svc.start()
    ctx = demo.DemoContext(settings, Lake(settings), console, bars)
    stream_demo.stage(ctx, events)
    console.print(report.reconciliation_table(ctx.recs, "Reconciliation (streaming demo)"))
    console.print(report.timings(ctx.steps))
