"""Kafka -> bronze.events on Spark Structured Streaming: the rows and watermarks the embedded
consumer (`kafka_consumer` + `kafka_sink`) writes, so either engine can continue the other.

Rows: the Kafka source's records mapped to bronze's columns as `kafka_sink.records_table` maps
them (text `value` when the bytes are UTF-8, else NULL and `raw_bytes`; the key as text, invalid
bytes as `\\xNN`; no Kafka timestamp when the broker gives none).

Commits: `foreachBatch` writes each micro-batch as one Delta commit per Kafka partition, with
delta-spark's idempotent-write options: `txnAppId` = the embedded consumer's app id of that
partition (`bronze.events<-kafka/<topic>/<partition>`), `txnVersion` = the next offset to read.
So bronze.events holds one watermark per partition whichever engine wrote, and:

* a batch replayed after a crash (Spark re-runs an uncommitted batch) skips the partitions whose
  commit already went in (Delta ignores a version not above the stored one) and rows below a
  partition's stored watermark are dropped before writing, so nothing lands twice;
* the checkpoint (`checkpoint_uri`, beside the table) only says where Spark reads next. Each
  run first compares its last committed offsets with the table's watermarks; when they differ (a
  hand-over from the embedded consumer, a run killed between two partitions' commits, a restored
  table), the checkpoint is discarded and the new query starts exactly at the table's watermarks
  (`startingOffsets`). The table is the only truth, so nothing is lost or re-read twice.
"""

from __future__ import annotations

import contextlib
import json
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import pyarrow.fs as pafs
from confluent_kafka import Consumer, KafkaException

from lakehouse.bronze import kafka_sink
from lakehouse.bronze.kafka_offsets import stale_offsets
from lakehouse.bronze.landing import TABLE
from lakehouse.bronze.spark_landing import ROW_SCHEMA
from lakehouse.core import delta, ownership, spark_delta
from lakehouse.core.errors import LakehouseError
from lakehouse.core.kafka import check_broker, client_config, security_config
from lakehouse.core.reconcile import Reconciliation
from lakehouse.core.settings import StreamingSettings
from lakehouse.core.storage import Lake

if TYPE_CHECKING:  # pragma: no cover
    from pyspark.sql import DataFrame, SparkSession

CHECKPOINTS = "_spark_checkpoints"
# the Kafka source's earliest offset in a startingOffsets JSON
EARLIEST = -2

# bronze's columns from the Kafka source's (key, value, topic, partition, offset, timestamp,
# timestampType); `kafka_key` is finished in `_rows` (invalid UTF-8 needs Python)
_COLUMNS = [
    "CASE WHEN is_valid_utf8(CAST(value AS STRING)) THEN CAST(value AS STRING) END AS value",
    "CASE WHEN NOT is_valid_utf8(CAST(value AS STRING)) THEN value END AS raw_bytes",
    "'kafka' AS source_system",
    "CAST(NULL AS STRING) AS source_file",
    "CAST(NULL AS BIGINT) AS source_line",
    "topic",
    "CAST(partition AS INT) AS kafka_partition",
    "CAST(offset AS BIGINT) AS kafka_offset",
    "key",
    # no timestamp (type -1) or one before the epoch: NULL, as the embedded consumer stores it
    "CASE WHEN timestampType >= 0 AND timestamp >= TIMESTAMP '1970-01-01 00:00:00' THEN timestamp END "
    "AS kafka_timestamp",
]


@dataclass
class StreamResult:
    rows: int = 0  # rows committed
    advanced: int = 0  # offsets the commits moved forward
    commits: int = 0
    batches: int = 0
    checkpoint_reset: str | None = None  # why the checkpoint was discarded at start
    starting: dict[int, int] = field(default_factory=dict)  # offsets a fresh checkpoint began at


def kafka_options(streaming: StreamingSettings) -> dict[str, str]:
    """The Kafka source's options: the topic and servers, and the security the embedded client
    gets from `core.kafka.security_config` (same settings, same checks), in the Java client's
    terms: TLS trusting `ssl_ca_file` (a PEM trust store), SCRAM through the JAAS login module.
    Spark redacts option values holding `password` in its plans, UI and logs."""
    s = streaming
    opts = {
        "kafka.bootstrap.servers": s.servers,
        "subscribe": s.topic,
        # the embedded consumer reads committed records only
        "kafka.isolation.level": "read_committed",
        "groupIdPrefix": f"{s.bronze_group}-spark",
        "maxOffsetsPerTrigger": str(s.batch_max_rows),
        # offsets gone from the log (a topic created anew): stop, as the embedded consumer does
        "failOnDataLoss": "true",
    }
    security = security_config(s)
    if not security:
        return opts
    opts["kafka.security.protocol"] = security["security.protocol"]
    if "ssl.ca.location" in security:
        opts["kafka.ssl.truststore.type"] = "PEM"
        opts["kafka.ssl.truststore.location"] = security["ssl.ca.location"]
    if "sasl.mechanism" in security:
        opts["kafka.sasl.mechanism"] = security["sasl.mechanism"]
        opts["kafka.sasl.jaas.config"] = (
            "org.apache.kafka.common.security.scram.ScramLoginModule required "
            f'username="{_jaas(security["sasl.username"])}" password="{_jaas(security["sasl.password"])}";'
        )
    return opts


def _jaas(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')


def checkpoint_location(lake: Lake, topic: str) -> tuple[pafs.FileSystem, str, str]:
    """(filesystem, path in it, URI for Spark) of the checkpoint: in bronze's location, beside
    the table, so it moves with the lake (and two lakes never share one)."""
    fs, root = lake.filesystem("bronze")
    path = f"{root}/{CHECKPOINTS}/events-kafka-{topic}"
    uri = f"s3a://{path}" if not isinstance(fs, pafs.LocalFileSystem) else path
    return fs, path, uri


def table_watermarks(lake: Lake, topic: str, partitions: list[int]) -> dict[int, int | None]:
    """Next offset to read per partition as bronze.events records it (None = never written)."""
    return kafka_sink.stored_offsets(lake, topic, partitions)


def checkpoint_offsets(fs: pafs.FileSystem, path: str, topic: str) -> dict[int, int] | None:
    """The end offsets of the checkpoint's last committed batch (None: no committed batch)."""
    try:
        done = fs.get_file_info(pafs.FileSelector(f"{path}/commits", allow_not_found=True))
    except OSError:
        return None
    ids = [int(f.base_name) for f in done if f.base_name.isdigit()]
    if not ids:
        return None
    try:
        with fs.open_input_stream(f"{path}/offsets/{max(ids)}") as stream:
            lines = stream.read().decode().splitlines()
        ends = json.loads(lines[2])  # v1 / batch metadata / one JSON object per source
    except (OSError, IndexError, ValueError):
        return None
    if not isinstance(ends, dict) or set(ends) != {topic}:
        return None
    return {int(p): int(o) for p, o in ends[topic].items()}


def plan_start(
    fs: pafs.FileSystem, path: str, topic: str, partitions: list[int], marks: dict[int, int | None]
) -> tuple[str | None, dict[int, int]]:
    """Whether the checkpoint can be continued: (None, {}) when its last committed offsets are
    the table's watermarks; else (why not, the offsets a fresh query starts at). A partition bronze
    never wrote starts at the earliest offset (-2)."""
    starting = {p: EARLIEST if marks.get(p) is None else int(marks[p] or 0) for p in partitions}
    ends = checkpoint_offsets(fs, path, topic)
    if ends is None:
        has_any = fs.get_file_info(path).type != pafs.FileType.NotFound
        return ("it has no committed batch" if has_any else "no checkpoint yet"), starting
    differ = {
        p: (ends.get(p), marks.get(p))
        for p in partitions
        if ends.get(p) != marks.get(p) and marks.get(p) is not None
    }
    # a partition bronze never wrote: the checkpoint may only have found it empty
    differ |= {
        p: (ends.get(p), None) for p in partitions if marks.get(p) is None and ends.get(p) not in (None, 0)
    }
    if set(ends) - set(partitions):
        differ |= {p: (ends[p], None) for p in set(ends) - set(partitions)}
    if not differ:
        return None, {}
    shown = ", ".join(f"{p}: {c} vs {t}" for p, (c, t) in sorted(differ.items()))
    return (
        f"its offsets differ from bronze.events' watermarks (partition: checkpoint vs table) {shown}",
        starting,
    )


def topic_partitions(streaming: StreamingSettings, timeout: float = 10.0) -> list[int]:
    """The topic's partitions, from the cluster's metadata (one line when it has no such topic)."""
    s = streaming
    c = Consumer(client_config(s, **{"group.id": f"{s.bronze_group}-spark-meta"}))
    try:
        md = c.list_topics(s.topic, timeout=timeout)
    except KafkaException as exc:
        raise LakehouseError(f"cannot read the metadata of {s.topic!r} from {s.servers}: {exc}") from None
    finally:
        c.close()
    t = md.topics.get(s.topic)
    if t is None or t.error is not None or not t.partitions:
        why = str(t.error) if t is not None and t.error else "no partitions"
        raise LakehouseError(f"topic {s.topic!r} not found on {s.servers} ({why})")
    return sorted(t.partitions)


def _open_owned(lake: Lake) -> None:
    ownership.check(lake, TABLE, ownership.SPARK)


def new_batch_id() -> str:
    """A commit's batch id, in the embedded consumer's form: K<UTC time>-<random>."""
    return "K" + datetime.now(UTC).strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:8]


def _rows(
    batch: DataFrame, partition: int, start: int | None, with_invalid_keys: bool, batch_id: str
) -> DataFrame:
    """Bronze rows of one partition of a micro-batch, from offset `start` on."""
    from pyspark.sql import functions as F

    part = batch.where(F.col("partition") == partition)
    if start is not None:
        part = part.where(F.col("offset") >= start)
    rows = part.selectExpr(*_COLUMNS)
    text = F.col("key").cast("string")
    if with_invalid_keys:
        from pyspark.sql.types import StringType

        decode = F.udf(
            lambda b: None if b is None else bytes(b).decode("utf-8", "backslashreplace"), StringType()
        )
        valid = F.expr("key IS NULL OR is_valid_utf8(CAST(key AS STRING))")
        rows = (
            rows.where(valid)
            .withColumn("kafka_key", text)
            .unionByName(rows.where(~valid).withColumn("kafka_key", decode(F.col("key"))))
        )
    else:
        rows = rows.withColumn("kafka_key", text)
    from pyspark.sql.window import Window

    rows = (
        rows.drop("key")
        .withColumn("ingestion_time", F.current_timestamp())
        .withColumn("batch_id", F.lit(batch_id))
        .withColumn(
            "ordinal",
            F.row_number().over(Window.partitionBy("kafka_partition").orderBy("kafka_offset")).cast("long")
            - 1,
        )
    )
    names = [c.strip().split(" ")[0] for c in ROW_SCHEMA.split(",")]
    return rows.select(*names)


class _BatchWriter:
    """The `foreachBatch` function: each micro-batch as one commit per partition."""

    def __init__(self, spark: SparkSession, lake: Lake, topic: str, run_id: str) -> None:
        self.spark = spark
        self.lake = lake
        self.topic = topic
        self.run_id = run_id
        self.uri = lake.table_uri(TABLE)
        self.result = StreamResult()
        self.error: LakehouseError | None = None
        self.lock = threading.Lock()

    def __call__(self, batch: DataFrame, batch_id: int) -> None:
        try:
            self._write(batch, batch_id)
        except LakehouseError as exc:
            self.error = exc  # shown as itself, not as the streaming query's Python traceback
            raise

    def _write(self, batch: DataFrame, batch_id: int) -> None:
        from pyspark.sql import functions as F

        # owner checked per batch: a hand-over while a continuous query runs stops it
        _open_owned(self.lake)
        batch.persist()
        try:
            bad_key = "CASE WHEN key IS NOT NULL AND NOT is_valid_utf8(CAST(key AS STRING)) THEN 1 ELSE 0 END"
            stats = (
                batch.groupBy("partition")
                .agg(
                    F.min("offset").alias("first"),
                    F.max("offset").alias("last"),
                    F.count(F.lit(1)).alias("rows"),
                    F.sum(F.expr(bad_key)).alias("bad_keys"),
                )
                .collect()
            )
            self.result.batches += 1
            if not stats:
                return
            parts = sorted(int(r["partition"]) for r in stats)
            marks = table_watermarks(self.lake, self.topic, parts)
            for row in sorted(stats, key=lambda r: int(r["partition"])):
                p, first, last = int(row["partition"]), int(row["first"]), int(row["last"])
                stored = marks.get(p)
                if stored is not None and last < stored:
                    continue  # already in bronze (a replayed batch)
                below = stored is not None and first < stored
                commit_id = new_batch_id()
                rows = _rows(batch, p, stored if below else None, bool(row["bad_keys"]), commit_id)
                spark_delta.ensure_table(self.spark, self.uri, rows, properties=delta.CDF)
                count = rows.count() if below else int(row["rows"])
                spark_delta.append(
                    rows,
                    self.uri,
                    app_id=kafka_sink.app_id(self.topic, p),
                    txn_version=last + 1,
                    source=f"kafka/{self.topic}",
                    batch_id=commit_id,
                    spark_batch=batch_id,
                    run_id=self.run_id,
                    offsets={str(p): [stored, last + 1]},
                )
                self.result.rows += count
                self.result.advanced += last + 1 - (stored if below and stored is not None else first)
                self.result.commits += 1
        finally:
            batch.unpersist()


def stream(
    spark: SparkSession,
    lake: Lake,
    streaming: StreamingSettings,
    run_id: str,
    *,
    available_now: bool = True,
    interval_seconds: float = 10.0,
    stop: threading.Event | None = None,
    on_reset: Callable[[str], None] | None = None,
) -> StreamResult:
    """Run the query: drain the topic and stop (`available_now`), or read every
    `interval_seconds` until `stop` is set. Refuses, before Spark reads anything, a table the
    embedded engine owns, an unreachable broker, an unknown topic and stored offsets past the end
    of the log (a topic created anew)."""
    _open_owned(lake)
    check_broker(streaming)
    partitions = topic_partitions(streaming)
    marks = table_watermarks(lake, streaming.topic, partitions)
    stale = stale_offsets(streaming, marks)
    if stale:
        raise LakehouseError(
            f"{streaming.topic}: bronze.events' offsets lie past the end of the log (partition: (stored, "
            f"end)) {stale}: the topic was created anew or truncated since they were stored. To read "
            "the new topic from its start: `lakehouse stream consume --restart-offsets`"
        )
    fs, path, uri = checkpoint_location(lake, streaming.topic)
    reason, starting = plan_start(fs, path, streaming.topic, partitions, marks)
    options = kafka_options(streaming)
    if reason is not None:
        with contextlib.suppress(FileNotFoundError):
            fs.delete_dir(path)
        if on_reset:
            on_reset(reason)
        options["startingOffsets"] = json.dumps({streaming.topic: {str(p): o for p, o in starting.items()}})
    writer = _BatchWriter(spark, lake, streaming.topic, run_id)
    writer.result.checkpoint_reset = reason
    writer.result.starting = starting
    source = spark.readStream.format("kafka")
    for key, value in options.items():
        source = source.option(key, value)
    query = source.load().writeStream.foreachBatch(writer).option("checkpointLocation", uri)
    if available_now:
        query = query.trigger(availableNow=True)
    else:
        query = query.trigger(processingTime=f"{interval_seconds} seconds")
    running = query.queryName(f"bronze-kafka-{streaming.topic}").start()
    try:
        if available_now:
            running.awaitTermination()
        else:
            while running.isActive and not (stop is not None and stop.is_set()):
                running.awaitTermination(1)
    except Exception:
        if writer.error is not None:
            raise writer.error from None
        raise
    finally:
        with contextlib.suppress(Exception):
            running.stop()
    if writer.error is not None:
        raise writer.error
    return writer.result


def reconciliation(run_id: str, topic: str, result: StreamResult, started: datetime) -> Reconciliation:
    """The run's reconciliation, as the embedded consumer records its bronze sink's."""
    rec = Reconciliation(run_id, "stream-bronze", f"kafka/{topic}", TABLE, started_at=started)
    rec.rows_in = result.advanced
    rec.inserted = result.rows
    rec.detail = f"{result.commits} commits (spark)"
    if result.checkpoint_reset:
        rec.detail += f"; started at bronze's watermarks: {result.checkpoint_reset}"
    return rec.finish()


def run_summary(result: StreamResult) -> dict[str, Any]:
    return {
        "rows": result.rows,
        "offsets_advanced": result.advanced,
        "commits": result.commits,
        "batches": result.batches,
        "checkpoint_reset": result.checkpoint_reset,
    }
