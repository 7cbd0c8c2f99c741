"""Streaming bench: Kafka -> bronze throughput and freshness, speed-layer end-to-end latency,
with a naive per-message kafka-python consumer as the peer, all in one run on this machine.

    cd pipelines && python -m bench.streaming [--records 300000] [--seconds 20]

Phases (each against the real local broker and PostgreSQL, started in a throwaway state dir):

1. backlog: N generator records (with faults) are produced first; then
   a. ours, bronze only: `lakehouse stream consume --available-now --no-speed` (drain), records/s;
   b. ours, bronze + speed layer in one pass, records/s;
   c. peer: kafka-python, one message at a time into Python dicts, a Delta append + a Kafka
      offset commit every batch (at-least-once: what a first version usually looks like), records/s.
2. sustained: the consumer (bronze + speed layer) runs while `lakehouse stream produce` (its own
   process) sends live generator events at a steady rate; freshness = Kafka timestamp (when
   produced) -> commit that made the record visible, p50/p95, and for the speed layer also event
   time -> visible in PostgreSQL; at a high rate (bronze goal: p95 <= 5 s) and at 1k events/s
   (speed layer goal: p95 <= 2 s).

Results are printed and written to <repo>/.state/bench/streaming.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
from rich.console import Console
from rich.table import Table

from lakehouse.app import streaming as jobs
from lakehouse.bronze.kafka_offsets import log_end_offsets
from lakehouse.core.metrics import MetricsSnapshot, percentile
from lakehouse.core.settings import Settings, load_settings
from lakehouse.core.storage import Lake
from lakehouse.generator import kafka_producer as producer
from lakehouse.generator.events import generate_files
from lakehouse.services.kafka import LocalKafka
from lakehouse.services.postgres import LocalPostgres
from lakehouse.services.process import free_port

console = Console()
REPO = Path(__file__).resolve().parents[2]


def render_lines(settings: Settings, count: int, seed: int) -> list[bytes]:
    """`count` generator events (with faults) as record values, rendered on 2 processes."""
    spec = producer.stream_spec(settings.generator, count, None, seed)
    out: list[bytes] = []

    def keep(_name: str, data: bytes) -> None:
        out.extend(line for line in data.split(b"\n") if line)

    generate_files(spec, 16, keep, workers=2)
    return out


def send_live(settings: Settings, rate: float, seconds: float) -> tuple[int, float]:
    """Live generator events at `rate` events/s from a separate producer process (the CLI), so
    event times are the wall clock's; returns (records in the topic, producer seconds)."""
    s = settings.streaming
    cmd = [sys.executable, "-m", "lakehouse", "stream", "produce"]
    cmd += ["--count", str(int(rate * seconds)), "--rate", str(rate)]
    for key, value in (
        ("state_dir", settings.state_path),
        ("streaming.broker_port", s.broker_port),
        ("streaming.topic", s.topic),
    ):
        cmd += ["--set", f"{key}={value}"]
    env = {**os.environ, "LAKEHOUSE_ROOT": str(REPO)}
    t = time.perf_counter()
    subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL, cwd=REPO / "pipelines")
    seconds_taken = time.perf_counter() - t
    return sum(log_end_offsets(settings.streaming).values()), seconds_taken


def naive_kafka_python(settings: Settings, expected: int, batch: int = 50_000) -> tuple[int, float]:
    """The peer: kafka-python, one message at a time, Delta append + offset commit per batch."""
    from deltalake import write_deltalake
    from kafka import KafkaConsumer

    lake = Lake(settings)
    uri = lake.table_uri("bronze.events_naive")
    consumer = KafkaConsumer(
        settings.streaming.topic,
        bootstrap_servers=settings.streaming.servers,
        group_id=f"naive-{uuid.uuid4().hex[:6]}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        consumer_timeout_ms=30_000,
    )
    started = time.perf_counter()
    rows: list[dict[str, Any]] = []
    n = 0
    for msg in consumer:
        value = msg.value
        try:
            text, raw = value.decode("utf-8"), None
        except (UnicodeDecodeError, AttributeError):
            text, raw = None, value
        rows.append(
            {
                "value": text,
                "raw_bytes": raw,
                "topic": msg.topic,
                "kafka_partition": msg.partition,
                "kafka_offset": msg.offset,
                "kafka_key": msg.key.decode("utf-8", "backslashreplace") if msg.key else None,
                "kafka_timestamp": datetime.fromtimestamp(msg.timestamp / 1000, UTC),
                "ingestion_time": datetime.now(UTC),
            }
        )
        n += 1
        if len(rows) >= batch or n >= expected:
            write_deltalake(
                uri, pa.Table.from_pylist(rows), mode="append", storage_options=lake.storage_options
            )
            consumer.commit()
            rows = []
        if n >= expected:
            break
    seconds = time.perf_counter() - started
    consumer.close()
    return n, seconds


def fresh_settings(base: dict[str, Any], topic: str) -> Settings:
    lake = tempfile.mkdtemp(prefix="lake-", dir=base["state_dir"])
    return load_settings("local", overrides={**base, "lake_root": lake, "streaming.topic": topic})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=300_000, help="backlog size for the throughput phase")
    ap.add_argument(
        "--high-rate", type=float, default=5_000, help="events/s of the sustained high-rate phase"
    )
    ap.add_argument("--seconds", type=float, default=20, help="length of each sustained phase")
    ap.add_argument("--skip-peer", action="store_true", help="do not run the kafka-python peer")
    args = ap.parse_args()

    state = Path(tempfile.mkdtemp(prefix="bench-stream-"))
    os.chmod(state, 0o755)  # PostgreSQL runs as another OS user when we are root
    base: dict[str, Any] = {
        "state_dir": str(state),
        "postgres.port": free_port(),
        "streaming.broker_port": free_port(),
    }
    settings = load_settings("local", overrides={**base, "lake_root": str(state / "lake")})
    pg = LocalPostgres.from_settings(settings)
    broker = LocalKafka.from_settings(settings)
    results: dict[str, Any] = {"machine": {"cpus": os.cpu_count()}, "records": args.records}
    try:
        console.print(f"state {state}: starting PostgreSQL and the broker")
        pg.start()
        broker.start()

        # -- 1. backlog throughput ------------------------------------------------------------
        console.print(f"rendering {args.records:,} generator events (with faults)")
        lines = render_lines(settings, args.records, seed=4242)[: args.records]
        topic = "bench-backlog"
        s_bronze = fresh_settings(base, topic)
        LocalKafka.from_settings(s_bronze).ensure_topic()
        t = time.perf_counter()
        producer.send_lines(s_bronze.streaming, ((None, v) for v in lines))
        results["produce_per_s"] = len(lines) / (time.perf_counter() - t)
        console.print(f"produced {len(lines):,} records at {results['produce_per_s']:,.0f}/s")

        r = jobs.consume(s_bronze, "bench-bronze", speed=False, available_now=True, record=False)
        n = r.summary.records["bronze"]
        assert n == len(lines), f"bronze got {n} of {len(lines)}"
        results["ours_bronze"] = {"records": n, "seconds": r.summary.seconds, "per_s": n / r.summary.seconds}
        console.print(f"ours (bronze): {n:,} in {r.summary.seconds:.2f}s = {n / r.summary.seconds:,.0f}/s")

        s_both = fresh_settings({**base, "postgres.serving_db": "serving"}, topic)
        r = jobs.consume(s_both, "bench-both", available_now=True, record=False, group="bench-both")
        n = r.summary.records["bronze"]
        results["ours_bronze_speed"] = {
            "records": n,
            "seconds": r.summary.seconds,
            "per_s": n / r.summary.seconds,
        }
        console.print(
            f"ours (bronze + speed layer): {n:,} in {r.summary.seconds:.2f}s = {n / r.summary.seconds:,.0f}/s"
        )

        if not args.skip_peer:
            s_peer = fresh_settings(base, topic)
            n, seconds = naive_kafka_python(s_peer, len(lines))
            results["peer_kafka_python"] = {"records": n, "seconds": seconds, "per_s": n / seconds}
            console.print(f"peer (kafka-python, per message): {n:,} in {seconds:.2f}s = {n / seconds:,.0f}/s")

        # -- 2. sustained rates: freshness ----------------------------------------------------
        for name, rate, speed in (
            ("sustained_high", args.high_rate, True),
            ("sustained_1k", 1000.0, True),
        ):
            s_live = fresh_settings({**base, "postgres.serving_db": "serving"}, f"bench-{name}")
            LocalKafka.from_settings(s_live).ensure_topic()
            stop = threading.Event()
            out: list[Any] = []
            runner = threading.Thread(
                target=lambda s_live=s_live, stop=stop, out=out, speed=speed, name=name: out.append(
                    jobs.consume(
                        s_live, name, speed=speed, use_group=False, stop=stop, record=False, group=name
                    )
                )
            )
            runner.start()
            time.sleep(2)  # consumer up
            sent, produced_in = send_live(s_live, rate, args.seconds)
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                snap_now = _last_snapshot(s_live, name)
                if snap_now and all(st.records >= sent for st in snap_now.sinks.values()):
                    break
                time.sleep(0.5)
            stop.set()
            runner.join(timeout=120)
            m = out[0].metrics
            phase: dict[str, Any] = {"rate": rate, "sent": sent, "producer_seconds": produced_in}
            for sink, st in m.sinks.items():
                fresh = list(st.freshness)
                phase[sink] = {
                    "records": st.records,
                    "commits": st.commits,
                    "freshness_p50": percentile(fresh, 0.5),
                    "freshness_p95": percentile(fresh, 0.95),
                    "freshness_max": max(fresh) if fresh else None,
                    "event_time_freshness_p95": percentile(list(st.event_freshness), 0.95),
                }
            results[name] = phase
            console.print(f"{name}: {json.dumps(phase)}")
    finally:
        broker.stop()
        pg.stop()

    show(results)
    out_dir = REPO / ".state" / "bench"
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "streaming.json").write_text(json.dumps(results, indent=1, default=str))
    console.print(f"results: {out_dir / 'streaming.json'}")
    shutil.rmtree(state, ignore_errors=True)


def _last_snapshot(settings: Settings, group: str) -> MetricsSnapshot | None:
    path = jobs.status_file(settings, group)  # this process's consumer thread
    try:
        return MetricsSnapshot.from_json(json.loads(path.read_text()))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def show(results: dict[str, Any]) -> None:
    table = Table(title="Streaming bench", title_justify="left")
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_column("goal / peer", justify="right")
    ours = results["ours_bronze"]["per_s"]
    peer = results.get("peer_kafka_python", {}).get("per_s")
    table.add_row("Kafka -> bronze, records/s (ours)", f"{ours:,.0f}", "goal >= 50,000")
    table.add_row(
        "Kafka -> bronze + speed layer, records/s (ours)", f"{results['ours_bronze_speed']['per_s']:,.0f}", ""
    )
    if peer:
        table.add_row("Kafka -> Delta, records/s (kafka-python per message)", f"{peer:,.0f}", "")
        table.add_row("ratio ours / kafka-python", f"{ours / peer:,.1f}x", "")
    for name, sink, goal in (
        ("sustained_high", "bronze", "goal p95 <= 5 s"),
        ("sustained_high", "speed", ""),
        ("sustained_1k", "bronze", "goal p95 <= 5 s"),
        ("sustained_1k", "speed", "goal p95 <= 2 s"),
    ):
        phase = results.get(name, {})
        st = phase.get(sink)
        if not st or st["freshness_p95"] is None:
            continue
        table.add_row(
            f"{sink} freshness at {phase['rate']:,.0f}/s: p50 / p95",
            f"{st['freshness_p50']:.2f}s / {st['freshness_p95']:.2f}s",
            goal,
        )
        if st.get("event_time_freshness_p95") is not None:
            table.add_row(
                f"{sink} event time -> PostgreSQL at {phase['rate']:,.0f}/s: p95",
                f"{st['event_time_freshness_p95']:.2f}s",
                "",
            )
    console.print(table)


if __name__ == "__main__":
    main()
