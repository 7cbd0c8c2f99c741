"""The measured steps of `make bench-engines`, as each runs inside its own subprocess, and the
inputs they share: the cached bronze.events (bench.bronze_silver) and the MERGE tables built here.
The Spark peer's settings live here too: the steps build its session, the report lists them."""

from __future__ import annotations

import json
import os
import resource
import shutil
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench.bronze_silver import _settings

GIB = 1024**3
MIB = 1024**2


# The Spark peer, tuned for one machine with 2 cores and 24 GiB shared with other work.
SPARK_MASTER = "local[2]"
SPARK_DRIVER_MEMORY = "4g"  # local mode: the driver is all of Spark; 1M-10M events fit with room
SPARK_SHUFFLE_PARTITIONS = 4  # two per core; AQE coalesces the small ones
SPARK_TUNING = {
    # AQE on (also set by core.spark): coalesce shuffle partitions, split skewed joins
    "spark.sql.adaptive.enabled": "true",
    "spark.sql.adaptive.coalescePartitions.enabled": "true",
    "spark.sql.adaptive.skewJoin.enabled": "true",
    "spark.sql.adaptive.advisoryPartitionSizeInBytes": "64m",
    # read splits: a 1M-event bronze (~100 MB) gives each core at least one split
    "spark.sql.files.maxPartitionBytes": "64m",
    "spark.sql.files.openCostInBytes": "4m",
    # file sizes: bin rows into ~128 MB files per partition value instead of one file per task
    # and event_date (silver.events is partitioned by day)
    "spark.databricks.delta.optimizeWrite.enabled": "true",
    "spark.databricks.delta.optimizeWrite.binSize": "128m",
    # broadcast the reference lookups and small dedup sides, never the event rows
    "spark.sql.autoBroadcastJoinThreshold": "32m",
    # a throughput collector for batch work on 2 cores (G1's concurrent threads compete with tasks)
    "spark.driver.extraJavaOptions": "-XX:+UseParallelGC",
    "spark.sql.parquet.compression.codec": "snappy",  # what delta-rs writes by default
}

# columns that differ between two runs by nature (run ids, batch ids, times of the run, the
# bronze commit version a row came from); every other column is hashed
SILVER_SKIP = ("_run_id", "_batch_id", "_ingestion_time", "_commit_version")
QUARANTINE_HASHED = (
    "reasons",
    "raw_value",
    "raw_bytes",
    "event_id",
    "source_system",
    "source_file",
    "source_line",
    "ordinal",
)
MERGE_SKIP = ("_run_id",)

# bronze.events columns that differ between two consumers of the same records by nature: when a
# row was ingested and how the engines cut commits (batch id, place in the commit)
KAFKA_SKIP = ("ingestion_time", "batch_id", "ordinal")

NOT_MEASURED: dict[str, str] = {}


def log(msg: str) -> None:
    print(f"[bench-engines] {msg}", flush=True)


# -- the MERGE inputs: a 1M-row table and a change batch, written once ---------------------------


def _orders(first: int, count: int, updated: datetime, status: str, batch: str) -> Any:
    import pyarrow as pa

    ids = pa.array(range(first, first + count), pa.int64())
    base = datetime(2026, 1, 1, tzinfo=UTC)
    return pa.table(
        {
            "order_id": ids,
            "customer_id": pa.array([i % 50_000 + 1 for i in range(first, first + count)], pa.int64()),
            "status": pa.array([status] * count, pa.string()),
            "currency": pa.array(["EUR"] * count, pa.string()),
            "order_ts": pa.array([base] * count, pa.timestamp("us", "UTC")),
            "updated_at": pa.array([updated] * count, pa.timestamp("us", "UTC")),
            "_row_hash": pa.array([f"{i:x}-{status}" for i in range(first, first + count)], pa.string()),
            "_extracted_at": pa.array([updated] * count, pa.timestamp("us", "UTC")),
            "_batch_id": pa.array([batch] * count, pa.string()),
            "_run_id": pa.array([batch] * count, pa.string()),
        }
    )


def _customers(first: int, count: int, updated: datetime, segment: str, batch: str) -> Any:
    import pyarrow as pa

    keys = range(first, first + count)
    return pa.table(
        {
            "customer_id": pa.array(keys, pa.int64()),
            "full_name": pa.array([f"Customer {i}" for i in keys], pa.string()),
            "email": pa.array([f"c{i}@example.org" for i in keys], pa.string()),
            "country": pa.array(["DE"] * count, pa.string()),
            "segment": pa.array([segment] * count, pa.string()),
            "created_at": pa.array([datetime(2025, 1, 1, tzinfo=UTC)] * count, pa.timestamp("us", "UTC")),
            "updated_at": pa.array([updated] * count, pa.timestamp("us", "UTC")),
            "_row_hash": pa.array([f"{i:x}-{segment}" for i in keys], pa.string()),
            "_extracted_at": pa.array([updated] * count, pa.timestamp("us", "UTC")),
            "_batch_id": pa.array([batch] * count, pa.string()),
            "_run_id": pa.array([batch] * count, pa.string()),
        }
    )


def change_batch_shape(rows: int) -> dict[str, int]:
    """The change batch MERGEd into a `rows`-row table: half the keys changed (newer), a quarter
    replayed with an older updated_at (must not win), a quarter of new keys."""
    return {"updated": rows // 2, "stale": rows // 4, "new": rows // 4}


def prepare_merge_input(state: Path, rows: int) -> Path:
    """bronze.orders/customers with two versions (the full table, then a change batch) and
    silver.orders/dim_customer holding the first one (embedded engine), built once."""
    import pyarrow as pa

    from lakehouse.core import delta
    from lakehouse.core.reconcile import new_run_id
    from lakehouse.core.storage import Lake
    from lakehouse.silver import current_state, scd2

    root = state / f"merge-{rows}"
    marker = root / "ready.json"
    if marker.exists():
        return root
    if root.exists():
        shutil.rmtree(root)
    lake = Lake(_settings(root, rows))
    t1 = datetime(2026, 1, 1, tzinfo=UTC)
    t2, t0 = t1 + timedelta(days=1), t1 - timedelta(days=1)
    shape = change_batch_shape(rows)
    t_start = time.perf_counter()
    orders = current_state.TABLES[0]
    customers = scd2.DIMENSIONS[0]
    builders: list[tuple[str, Callable[..., Any]]] = [
        (orders.source, _orders),
        (customers.source, _customers),
    ]
    for table, make in builders:
        delta.append(
            lake,
            table,
            make(1, rows, t1, "open" if make is _orders else "retail", "B1"),
            app_id="bench<-" + table,
            txn_version=1,
            configuration=delta.CDF,
        )
    current_state.apply(lake, orders, new_run_id())
    scd2.apply(lake, customers, new_run_id())
    for table, make in builders:
        changed = "shipped" if make is _orders else "business"
        batch = pa.concat_tables(
            [
                make(1, shape["updated"], t2, changed, "B2"),
                make(shape["updated"] + 1, shape["stale"], t0, changed, "B2"),
                make(rows + 1, shape["new"], t2, changed, "B2"),
            ]
        )
        delta.append(lake, table, batch, app_id="bench<-" + table, txn_version=2)
    marker.write_text(json.dumps({"rows": rows, **shape}))
    log(
        f"MERGE input: {rows:,}-row tables and a {sum(shape.values()):,}-row change batch in "
        f"{time.perf_counter() - t_start:.1f} s"
    )
    return root


# -- the runs (inside the child process) ----------------------------------------------------------


def _link_copy(source: Path, target: Path) -> None:
    """A lake copy made of hard links: Delta files are never modified in place, every run writes
    new ones, so each run starts from the same tables at no disk cost."""
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copytree(source, target, copy_function=os.link, dirs_exist_ok=True)


def _started(work: Path) -> None:
    (work / "started").touch()


def _spark(settings: Any) -> Any:
    from lakehouse.core.spark import SparkOptions, build_session

    return build_session(
        settings,
        SparkOptions(
            master=SPARK_MASTER,
            app_name="lakehouse-bench-engines",
            driver_memory=SPARK_DRIVER_MEMORY,
            shuffle_partitions=SPARK_SHUFFLE_PARTITIONS,
            conf=dict(SPARK_TUNING),
        ),
    )


def _timed(
    engine: str,
    work: Path,
    settings: Any,
    embedded: Callable[[], Any],
    on_spark: Callable[[Any], Any],
) -> tuple[Any, float]:
    """Run the step on `engine`, timing only the step: the Spark session is built before the clock
    starts (and before the parent is told the step started), and stopped after it."""
    if engine == "embedded":
        _started(work)
        t0 = time.perf_counter()
        return embedded(), time.perf_counter() - t0
    from lakehouse.core.spark import stop_session

    spark = _spark(settings)
    try:
        _started(work)
        t0 = time.perf_counter()
        return on_spark(spark), time.perf_counter() - t0
    finally:
        stop_session(spark)


def _result(settings: Any, rec: Any, seconds: float, detail: tuple[str, ...]) -> dict[str, Any]:
    return {
        "seconds": seconds,
        "lake": str(settings.lake_root),
        "rows_in": rec.rows_in,
        "detail": {name: getattr(rec, name) for name in detail},
    }


def _silver(engine: str, input_root: Path, work: Path, rows: int) -> dict[str, Any]:
    from lakehouse.core.reconcile import new_run_id
    from lakehouse.core.storage import Lake
    from lakehouse.silver import events

    settings = _settings(work, rows)
    lake = Lake(settings)
    _link_copy(input_root / "lake" / "bronze" / "events", Path(lake.table_uri("bronze.events")))

    def on_spark(spark: Any) -> Any:
        from lakehouse.silver.spark import writer

        return writer.run(spark, lake, settings.silver, new_run_id())

    rec, seconds = _timed(
        engine, work, settings, lambda: events.run(lake, settings.silver, new_run_id()), on_spark
    )
    return _result(settings, rec, seconds, ("inserted", "duplicates", "quarantined"))


def _merge(engine: str, input_root: Path, work: Path, rows: int) -> dict[str, Any]:
    from lakehouse.silver import current_state

    def on_spark(spark: Any, lake: Any, run_id: str) -> Any:
        from lakehouse.silver.spark import current_state as spark_current_state

        return spark_current_state.apply(spark, lake, current_state.TABLES[0], run_id)

    return _merge_step(
        engine,
        input_root,
        work,
        rows,
        current_state.TABLES[0].table,
        lambda lake, run_id: current_state.apply(lake, current_state.TABLES[0], run_id),
        on_spark,
        ("inserted", "updated", "unchanged"),
    )


def _scd2(engine: str, input_root: Path, work: Path, rows: int) -> dict[str, Any]:
    from lakehouse.silver import scd2

    def on_spark(spark: Any, lake: Any, run_id: str) -> Any:
        from lakehouse.silver.spark import scd2 as spark_scd2

        return spark_scd2.apply(spark, lake, scd2.DIMENSIONS[0], run_id)

    return _merge_step(
        engine,
        input_root,
        work,
        rows,
        scd2.DIMENSIONS[0].table,
        lambda lake, run_id: scd2.apply(lake, scd2.DIMENSIONS[0], run_id),
        on_spark,
        ("inserted", "unchanged", "duplicates"),
    )


def _merge_step(
    engine: str,
    input_root: Path,
    work: Path,
    rows: int,
    table: str,
    embedded: Callable[[Any, str], Any],
    on_spark: Callable[[Any, Any, str], Any],
    detail: tuple[str, ...],
) -> dict[str, Any]:
    """A MERGE into `table` on a hard-linked copy of the prepared lake; the Spark run's copy is
    handed to Spark first, so both engines MERGE into the same table."""
    from lakehouse.core import ownership
    from lakehouse.core.reconcile import new_run_id
    from lakehouse.core.storage import Lake

    settings = _settings(work, rows)
    lake = Lake(settings)
    _link_copy(input_root / "lake", Path(str(settings.lake_root)))
    if engine != "embedded":
        ownership.hand_over(lake, table, ownership.SPARK)
    run_id = new_run_id()
    rec, seconds = _timed(
        engine, work, settings, lambda: embedded(lake, run_id), lambda spark: on_spark(spark, lake, run_id)
    )
    return _result(settings, rec, seconds, detail)


# -- Kafka -> bronze: one topic, produced once per run of the bench, drained by each engine ---------


def prepare_kafka_input(state: Path, rows: int, broker: Any) -> Path:
    """A topic of `rows` event records (3 partitions) on the running `broker`, and its address in
    <state>/kafka-<rows>/topic.json (the topic lives as long as the broker: made every run)."""
    import dataclasses
    import uuid

    from confluent_kafka import Producer

    topic = f"bench-{rows}-{uuid.uuid4().hex[:8]}"
    dataclasses.replace(broker, topic=topic, partitions=3).ensure_topic()
    p = Producer({"bootstrap.servers": broker.bootstrap, "enable.idempotence": True, "linger.ms": 20})
    for i in range(rows):
        value = (
            f'{{"event_id":"e{i}","user_id":{i % 9973},"event_type":"page_view",'
            f'"ts":"2026-11-22T08:{i // 60 % 60:02d}:{i % 60:02d}Z","page":"/p/{i % 500}"}}'
        )
        while True:
            try:
                p.produce(topic, key=str(i % 9973).encode(), value=value.encode())
                break
            except BufferError:
                p.poll(0.05)
        if i % 10_000 == 0:
            p.poll(0)
    if p.flush(120) != 0:
        raise RuntimeError(f"bench-engines: {rows:,} records not all acknowledged by the broker")
    root = state / f"kafka-{rows}"
    root.mkdir(parents=True, exist_ok=True)
    (root / "topic.json").write_text(json.dumps({"port": broker.port, "topic": topic}))
    return root


def _kafka(engine: str, input_root: Path, work: Path, rows: int) -> dict[str, Any]:
    """The topic drained into an empty bronze.events: the embedded consumer (availableNow, every
    partition read by itself) against `lakehouse spark stream-bronze`'s query (availableNow)."""
    from types import SimpleNamespace

    from lakehouse.core.reconcile import new_run_id
    from lakehouse.core.settings import load_settings
    from lakehouse.core.storage import Lake

    where = json.loads((input_root / "topic.json").read_text())
    settings = load_settings(
        "local",
        overrides={
            "lake_root": str(work / "lake"),
            "state_dir": str(work / "state"),
            "streaming.broker_port": where["port"],
            "streaming.topic": where["topic"],
        },
    )
    lake = Lake(settings)
    s = settings.streaming

    def embedded() -> Any:
        from lakehouse.bronze.kafka_consumer import StreamRunner
        from lakehouse.bronze.kafka_sink import BronzeSink

        sink = BronzeSink(lake, s.topic, s.batch_max_rows, s.batch_max_seconds, new_run_id())
        StreamRunner(s, [sink], s.bronze_group, available_now=True, assign_all=True).run()
        return SimpleNamespace(rows_in=sink.advanced, inserted=sink.written)

    def on_spark(spark: Any) -> Any:
        from lakehouse.bronze import spark_kafka

        result = spark_kafka.stream(spark, lake, s, new_run_id())
        return SimpleNamespace(rows_in=result.advanced, inserted=result.rows, commits=result.commits)

    rec, seconds = _timed(engine, work, settings, embedded, on_spark)
    return _result(settings, rec, seconds, ("inserted",))


STEPS: dict[str, Callable[[str, Path, Path, int], dict[str, Any]]] = {
    "silver": _silver,
    "merge": _merge,
    "scd2": _scd2,
    "kafka": _kafka,
}
# the tables each step writes, compared across engines
OUTPUTS = {
    "silver": ("silver.events", "silver.quarantine_events"),
    "merge": ("silver.orders",),
    "scd2": ("silver.dim_customer",),
    "kafka": ("bronze.events",),
}


def child_main(step: str, engine: str, input_root: Path, work: Path, rows: int, result: Path) -> None:
    out = STEPS[step](engine, input_root, work, rows)
    out["self_maxrss_bytes"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    result.write_text(json.dumps(out))
