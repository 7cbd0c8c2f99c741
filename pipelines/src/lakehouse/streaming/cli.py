"""`lakehouse stream ...`: the broker, the producer, the consumers and their status."""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.live import Live
from rich.table import Table

from lakehouse import report
from lakehouse.config import Settings, settings_from_cli
from lakehouse.reconcile import new_run_id
from lakehouse.services.base import pid_alive
from lakehouse.services.kafka import LocalKafka

app = typer.Typer(
    help="Streaming: local Kafka broker, producer, exactly-once Kafka -> bronze, speed layer.",
    no_args_is_help=True,
)
broker_app = typer.Typer(help="The local Kafka-protocol broker (tansu) on 127.0.0.1.", no_args_is_help=True)
app.add_typer(broker_app, name="broker")
console = Console(width=None if sys.stdout.isatty() else 160)

EnvOpt = Annotated[
    str | None, typer.Option("--env", help="environments/<env>/pipeline.yaml (default: local)")
]
SetOpt = Annotated[
    list[str] | None, typer.Option("--set", help="override a setting: --set streaming.topic=x")
]


def _settings(env: str | None, sets: list[str] | None) -> Settings:
    return settings_from_cli(env, sets)


def _broker(settings: Settings) -> LocalKafka:
    if settings.streaming.broker_storage == "s3":
        from lakehouse.services.seaweedfs import LocalSeaweedFS

        LocalSeaweedFS.from_settings(settings).start()
    return LocalKafka.from_settings(settings)


def _service_row(table: Table, svc: LocalKafka) -> None:
    st = svc.status()
    table.add_row(
        st.name, "[green]yes[/]" if st.running else "[red]no[/]", str(st.pid or "-"), st.address, st.detail
    )


def _service_table(svc: LocalKafka) -> Table:
    table = Table(title="Kafka broker", title_justify="left")
    for col in ("service", "running", "pid", "address", "detail"):
        table.add_column(col)
    _service_row(table, svc)
    return table


@broker_app.command("start")
def broker_start(env: EnvOpt = None, set_: SetOpt = None) -> None:
    """Start the local broker and create the topic (idempotent)."""
    settings = _settings(env, set_)
    svc = _broker(settings)
    svc.start()
    console.print(_service_table(svc))


@broker_app.command("stop")
def broker_stop(env: EnvOpt = None, set_: SetOpt = None) -> None:
    """Stop the local broker this project started (idempotent)."""
    svc = LocalKafka.from_settings(_settings(env, set_))
    svc.stop()
    console.print(_service_table(svc))


@broker_app.command("status")
def broker_status(env: EnvOpt = None, set_: SetOpt = None) -> None:
    """Is the local broker running, and where."""
    console.print(_service_table(LocalKafka.from_settings(_settings(env, set_))))


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
    from lakehouse.streaming.producer import ProduceStats, produce

    settings = _settings(env, set_)
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

    with Live(console=console, refresh_per_second=4, transient=False) as live:
        stats = produce(settings, count, target, seed=seed, on_tick=lambda st: live.update(line(st)))
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
    from lakehouse.streaming import jobs

    settings = _settings(env, set_)
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
        from lakehouse.streaming import jobs

        before = jobs.restart_stale_offsets(_settings(env, set_))
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


def _print_snapshot(snap: dict[str, Any] | None, title: str = "Stream metrics (this run)") -> None:
    if not snap or not snap.get("sinks"):
        return
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
    for name, st in snap["sinks"].items():
        lag = sum(st["lag"].values()) if st["lag"] else 0
        p50, p95 = st.get("freshness_p50"), st.get("freshness_p95")
        ev = st.get("event_time_freshness_p95")
        table.add_row(
            name,
            f"{st['records']:,}",
            f"{st['commits']:,}",
            f"{st['rate']:,.0f}",
            f"{lag:,}",
            "-" if p50 is None else f"{p50:.2f}s",
            "-" if p95 is None else f"{p95:.2f}s",
            "-" if ev is None else f"{ev:.2f}s",
            f"{st['late']:,}",
            f"{st['rejected']:,}",
        )
    console.print(table)


@app.command("status")
def status_cmd(env: EnvOpt = None, set_: SetOpt = None) -> None:
    """Broker, log-end offsets, offsets stored by bronze and the speed layer, lag, running consumers."""
    from confluent_kafka import KafkaException

    from lakehouse.storage import Lake
    from lakehouse.streaming import bronze_sink, jobs, speed
    from lakehouse.streaming.consumer import log_end_offsets

    settings = _settings(env, set_)
    s = settings.streaming
    if not s.bootstrap:
        console.print(_service_table(LocalKafka.from_settings(settings)))
    ends: dict[int, int] = {}
    quiet = logging.getLogger("lakehouse.stream.status")
    quiet.addHandler(logging.NullHandler())
    quiet.propagate = False
    try:
        if not s.bootstrap and not LocalKafka.from_settings(settings).status().running:
            raise KafkaException("the local broker is not running (`lakehouse stream broker start`)")
        ends = log_end_offsets(settings, logger=quiet)
    except KafkaException as exc:
        console.print(f"[yellow]broker {s.servers} not reachable: {exc.args[0] if exc.args else exc}[/]")
    parts = sorted(ends) or list(range(s.partitions))
    bronze_off = bronze_sink.stored_offsets(Lake(settings), s.topic, parts)
    speed_off = speed.stored_offsets(jobs.serving_dsn(settings), s.speed_group, s.topic)
    table = Table(title=f"Topic {s.topic} on {s.servers}", title_justify="left")
    for col in ("partition", "log end*", "bronze offset", "bronze lag", "speed offset", "speed lag"):
        table.add_column(col, justify="right")
    for p in parts:
        end = ends.get(p)
        b, sp = bronze_off.get(p), speed_off.get(p)
        table.add_row(
            str(p),
            "-" if end is None else f"{end:,}",
            "-" if b is None else f"{b:,}",
            "-" if end is None else f"{max(0, end - (b or 0)):,}",
            "-" if sp is None else f"{sp:,}",
            "-" if end is None else f"{max(0, end - (sp or 0)):,}",
        )
    console.print(table)
    console.print("* end of each partition as a fetch reports it (read from the end, not ListOffsets)")
    for group in (s.bronze_group, s.speed_group):
        shown = 0
        for path in jobs.status_files(settings, group):
            try:
                snap = json.loads(path.read_text())
            except (OSError, ValueError):
                continue
            alive = pid_alive(int(snap.get("pid") or 0))
            if not alive and shown:
                continue  # one finished run is enough: the latest
            age = time.time() - float(snap.get("updated") or 0)
            state = f"running (pid {snap['pid']})" if alive else "not running (last run)"
            title = f"Consumer group {group}: {state}, updated {age:.0f}s ago"
            if alive and snap.get("metrics"):
                title += f", metrics {snap['metrics']}"
            _print_snapshot(snap, title)
            shown += 1


@app.command("demo")
def demo_cmd(
    events: Annotated[int, typer.Option(help="events in the burst")] = 20_000,
    env: EnvOpt = None,
    set_: SetOpt = None,
) -> None:
    """The streaming phase of `lakehouse demo` on its own: services, broker, a burst of events
    with faults, Kafka -> bronze + speed layer (available now), silver, summary."""
    from contextlib import nullcontext

    from lakehouse import demo
    from lakehouse.services import all_services
    from lakehouse.storage import Lake
    from lakehouse.streaming import demo as stream_demo

    settings = _settings(env, set_)
    for svc in all_services(settings):
        svc.start()
    ctx = demo.DemoContext(settings, Lake(settings), console, lambda: nullcontext())
    stream_demo.stage(ctx, events)
    console.print(report.reconciliation_table(ctx.recs, "Reconciliation (streaming demo)"))
    console.print(report.timings(ctx.steps))
