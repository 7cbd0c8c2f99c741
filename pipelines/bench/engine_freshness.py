"""End-to-end freshness of Kafka -> bronze on both engines, in continuous mode.

Per engine: a fresh topic (3 partitions) and an empty lake; the consumer runs in a subprocess of
its own (the embedded `StreamRunner` without --available-now, or `lakehouse spark stream-bronze
--continuous`'s query with a micro-batch every `SPARK_INTERVAL_SECONDS`). Once it has committed
one warm-up record (so start-up is not counted), the parent produces records at a fixed rate for a
fixed time, waits until every one is in bronze.events and stops the consumer.

Freshness of a record = the timestamp of the Delta commit that added it (commitInfo.timestamp in
the table's log) minus its Kafka timestamp (CreateTime, set by the producer), both from this
machine's clock. Which commit added a record is read from the log (the files each version added);
the records are read back from those files. Reported: p50/p95/max over every timed record, and the
sustained rate (timed records / (last commit - first record's timestamp)).
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from bench.engine_steps import _spark, log

SPARK_INTERVAL_SECONDS = 1.0  # a micro-batch a second: the embedded sink's batch_max_seconds
STARTUP_TIMEOUT = 600.0
DRAIN_TIMEOUT = 300.0
TABLE = "bronze.events"


def _settings(work: Path, port: int, topic: str) -> Any:
    from lakehouse.core.settings import load_settings

    return load_settings(
        "local",
        overrides={
            "lake_root": str(work / "lake"),
            "state_dir": str(work / "state"),
            "streaming.broker_port": port,
            "streaming.topic": topic,
        },
    )


# -- the consumer (inside the child process) ------------------------------------------------------


def child(engine: str, work: Path) -> None:
    """Consume the topic named in <work>/topic.json into <work>/lake until <work>/stop appears."""
    from lakehouse.core.reconcile import new_run_id
    from lakehouse.core.storage import Lake

    where = json.loads((work / "topic.json").read_text())
    settings = _settings(work, where["port"], where["topic"])
    lake = Lake(settings)
    s = settings.streaming
    stop = threading.Event()

    def watch() -> None:
        while not (work / "stop").exists():
            time.sleep(0.1)
        stop.set()

    threading.Thread(target=watch, daemon=True).start()
    if engine == "embedded":
        from lakehouse.bronze.kafka_consumer import StreamRunner
        from lakehouse.bronze.kafka_sink import BronzeSink

        sink = BronzeSink(lake, s.topic, s.batch_max_rows, s.batch_max_seconds, new_run_id())
        runner = StreamRunner(s, [sink], s.bronze_group, available_now=False, assign_all=True)
        threading.Thread(target=lambda: (stop.wait(), runner.stop_event.set()), daemon=True).start()
        (work / "started").touch()
        runner.run()
        return
    from lakehouse.bronze import spark_kafka
    from lakehouse.core.spark import stop_session

    spark = _spark(settings)
    try:
        (work / "started").touch()
        spark_kafka.stream(
            spark,
            lake,
            s,
            new_run_id(),
            available_now=False,
            interval_seconds=SPARK_INTERVAL_SECONDS,
            stop=stop,
        )
    finally:
        stop_session(spark)


# -- the parent: produce at a fixed rate, then read the commits ---------------------------------


def _visible_rows(table_uri: str) -> int:
    from deltalake import DeltaTable
    from deltalake.exceptions import TableNotFoundError

    try:
        dt = DeltaTable(table_uri)
    except TableNotFoundError:
        return 0
    actions = dt.get_add_actions(flatten=True)
    return int(sum(v for v in actions.column("num_records").to_pylist() if v)) if actions.num_rows else 0


def _wait(what: str, done: Any, timeout: float, proc: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        if proc.poll() is not None:
            out = proc.stdout.read() if proc.stdout else ""
            raise RuntimeError(
                f"freshness: the consumer exited (code {proc.returncode}) before {what}:\n{out[-3000:]}"
            )
        if time.monotonic() > deadline:
            raise RuntimeError(f"freshness: no {what} within {timeout:.0f} s")
        time.sleep(0.1)


def _produce(producer: Any, topic: str, count: int, rate: float, first: int) -> tuple[float, float]:
    """`count` records at `rate` per second (each sent at its own slot); returns start and end."""
    t0 = time.time()
    for i in range(count):
        slot = t0 + i / rate
        pause = slot - time.time()
        if pause > 0:
            time.sleep(pause)
        n = first + i
        value = (
            f'{{"event_id":"f{n}","user_id":{n % 9973},"event_type":"page_view","ts":"2026-11-22T08:00:00Z"}}'
        )
        while True:
            try:
                producer.produce(topic, key=str(n % 9973).encode(), value=value.encode())
                break
            except BufferError:
                producer.poll(0.01)
        producer.poll(0)
    if producer.flush(60) != 0:
        raise RuntimeError(f"freshness: {count:,} records not all acknowledged by the broker")
    return t0, time.time()


def measure_engine(state: Path, broker: Any, engine: str, rate: float, seconds: float) -> dict[str, Any]:
    import dataclasses

    from confluent_kafka import Producer

    topic = f"fresh-{engine}-{uuid.uuid4().hex[:8]}"
    dataclasses.replace(broker, topic=topic, partitions=3).ensure_topic()
    work = Path(tempfile.mkdtemp(prefix=f"freshness-{engine}-", dir=state))
    (work / "topic.json").write_text(json.dumps({"port": broker.port, "topic": topic}))
    settings = _settings(work, broker.port, topic)
    from lakehouse.core.storage import Lake

    lake = Lake(settings)
    uri = lake.table_uri(TABLE)
    cmd = [sys.executable, "-m", "bench.engines", "--child", f"freshness:{engine}", "--work", str(work)]
    env_path = str(Path(__file__).resolve().parents[1])
    import os

    env = {**os.environ, "PYTHONPATH": os.pathsep.join([env_path, *sys.path])}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    producer = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 0, "enable.idempotence": True})
    count = max(1, int(rate * seconds))
    try:
        _wait("start-up", (work / "started").exists, STARTUP_TIMEOUT, proc)
        _produce(producer, topic, 1, 1.0, 0)  # the warm-up record: the consumer is live once it lands
        _wait("warm-up commit", lambda: _visible_rows(uri) >= 1, STARTUP_TIMEOUT, proc)
        log(f"freshness on {engine}: {count:,} records at {rate:,.0f}/s for {seconds:.0f} s")
        t0, t1 = _produce(producer, topic, count, rate, 1)
        _wait(
            f"commit of all {count + 1:,} records",
            lambda: _visible_rows(uri) >= count + 1,
            DRAIN_TIMEOUT,
            proc,
        )
    finally:
        (work / "stop").touch()
        try:
            proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    stats = freshness(lake, t0)
    stats.update(
        engine=engine, produced=count, rate=rate, seconds=seconds, produce_seconds=t1 - t0, lake=str(work)
    )
    if stats["records"] != count:
        raise RuntimeError(
            f"freshness on {engine}: {stats['records']:,} timed records committed, {count:,} produced"
        )
    return stats


def commits(lake: Any) -> list[dict[str, Any]]:
    """Per data-adding commit of bronze.events: version, commit timestamp (ms) and the Kafka
    timestamps (ms) of the records it added, read from the files the log says it added."""
    import pyarrow.parquet as pq

    from lakehouse.core import delta

    dt = delta.open_table(lake, TABLE)
    if dt is None:
        return []
    fs, path = lake.table_path(TABLE)
    log_dir = f"{path}/_delta_log"
    files = delta.appended_files(lake, TABLE, 0, dt.version())
    if files is None:
        raise RuntimeError("freshness: bronze.events has commits other than appends")
    by_version: dict[int, list[str]] = {}
    for uri, version in files:
        by_version.setdefault(version, []).append(uri)
    out = []
    for version, uris in sorted(by_version.items()):
        with fs.open_input_stream(f"{log_dir}/{version:020d}.json") as stream:
            lines = stream.read().decode("utf-8").splitlines()
        info = next(json.loads(x)["commitInfo"] for x in lines if x and "commitInfo" in json.loads(x))
        stamps: list[int] = []
        for uri in uris:
            local = uri.removeprefix("file://")
            stamps += micros(pq.read_table(local, columns=["kafka_timestamp"])["kafka_timestamp"])
        out.append({"version": version, "commit_ms": int(info["timestamp"]), "kafka_us": stamps})
    return out


def micros(col: Any) -> list[int | None]:
    """Epoch microseconds of a timestamp column, whatever unit its files hold: delta-spark writes
    INT96 timestamps, which read back in nanoseconds, delta-rs microseconds."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if pa.types.is_timestamp(col.type):
        col = pc.cast(col, pa.timestamp("us", tz=col.type.tz))
    return list(pc.cast(col, "int64").to_pylist())


def _pct(sorted_values: list[float], q: float) -> float:
    i = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[i]


def freshness(lake: Any, timed_from: float) -> dict[str, Any]:
    """Freshness (s) of every record produced at or after `timed_from` (epoch s), from the log."""
    from_us = int(timed_from * 1_000_000) - 1_000  # Kafka timestamps have ms resolution
    lat: list[float] = []
    first_us, last_commit_ms, versions = None, 0, 0
    for c in commits(lake):
        timed = [us for us in c["kafka_us"] if us is not None and us >= from_us]
        if not timed:
            continue
        versions += 1
        last_commit_ms = max(last_commit_ms, c["commit_ms"])
        first_us = min(timed) if first_us is None else min(first_us, min(timed))
        lat += [(c["commit_ms"] * 1000 - us) / 1e6 for us in timed]
    lat.sort()
    if not lat or first_us is None:
        return {"records": 0, "commits": 0}
    span = max(last_commit_ms / 1000 - first_us / 1e6, 1e-3)
    return {
        "records": len(lat),
        "commits": versions,
        "p50_s": _pct(lat, 0.50),
        "p95_s": _pct(lat, 0.95),
        "max_s": lat[-1],
        "min_s": lat[0],
        "events_per_s": len(lat) / span,
    }


def run(
    state: Path, broker: Any, rate: float, seconds: float, engines: tuple[str, ...]
) -> list[dict[str, Any]]:
    results = []
    for engine in engines:
        r = measure_engine(state, broker, engine, rate, seconds)
        log(
            f"freshness on {engine}: p50 {r['p50_s']:.2f} s, p95 {r['p95_s']:.2f} s, max {r['max_s']:.2f} s, "
            f"{r['events_per_s']:,.0f} events/s over {r['commits']} commits"
        )
        results.append(r)
    return results
