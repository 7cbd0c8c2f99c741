"""Kafka records -> bronze.events, exactly once.

Every micro-batch is ONE Delta commit holding the rows and, per topic-partition in the batch,
an app transaction `bronze.events<-kafka/<topic>/<partition>` whose version is the next offset
to read. The stored offsets are therefore exactly the rows in the table, whatever kills the
process when. Rows keep the record as text (`value`; NULL and `raw_bytes` set when the bytes are
not UTF-8) and the Kafka metadata (topic, partition, offset, key, Kafka timestamp,
ingestion time); malformed records land like any other and silver quarantines them.
"""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime
from typing import cast

import pyarrow as pa
from confluent_kafka import TIMESTAMP_NOT_AVAILABLE, Message
from deltalake import CommitProperties, DeltaTable, Transaction, write_deltalake
from deltalake.exceptions import CommitFailedError, TableNotFoundError

from lakehouse.bronze.landing import SCHEMA, TABLE
from lakehouse.bronze.stream_sink import FlushResult, Sink
from lakehouse.core import delta, ownership
from lakehouse.core.storage import Lake


def app_id(topic: str, partition: int) -> str:
    return f"{TABLE}<-kafka/{topic}/{partition}"


def stored_offsets(lake: Lake, topic: str, partitions: list[int]) -> dict[int, int | None]:
    """Next offset to read per partition, as recorded in bronze.events (None = never)."""
    dt = delta.open_table(lake, TABLE)
    if dt is None:
        return {p: None for p in partitions}
    return {p: dt.transaction_version(app_id(topic, p)) for p in partitions}


def restart_offsets(lake: Lake, topic: str, partitions: list[int], reason: str) -> dict[int, int | None]:
    """Set the stored offsets of `topic` back to 0, in one empty commit that says why: for a
    topic that was created anew (a broker with memory storage restarted), whose offsets begin at
    0 again. Returns the offsets it replaced; nothing is written when none was stored."""
    before = stored_offsets(lake, topic, partitions)
    if not any(before.values()):
        return before
    write_deltalake(
        lake.table_uri(TABLE),
        SCHEMA.empty_table(),
        mode="append",
        storage_options=lake.options(TABLE),
        commit_properties=CommitProperties(
            app_transactions=[Transaction(app_id(topic, p), 0) for p in partitions],
            custom_metadata={
                "lakehouse.source": f"kafka/{topic}",
                "lakehouse.offsets_restarted": json.dumps({str(p): before[p] for p in partitions}),
                "lakehouse.reason": reason,
            },
        ),
    )
    return before


def _text(values: list[bytes | None]) -> tuple[pa.Array, pa.Array]:
    """(value, raw_bytes) as in bronze.landing: text when UTF-8, else NULL text + the raw bytes."""
    raw = pa.array(values, pa.binary())
    try:
        return raw.cast(pa.string()), pa.nulls(len(values), pa.binary())
    except pa.ArrowInvalid:
        text: list[str | None] = []
        bad: list[bytes | None] = []
        for v in values:
            if v is None:
                text.append(None)
                bad.append(None)
                continue
            try:
                text.append(v.decode("utf-8"))
                bad.append(None)
            except UnicodeDecodeError:
                text.append(None)
                bad.append(v)
        return pa.array(text, pa.string()), pa.array(bad, pa.binary())


def _keys(keys: list[bytes | None]) -> pa.Array:
    raw = pa.array(keys, pa.binary())
    try:
        return raw.cast(pa.string())
    except pa.ArrowInvalid:
        return pa.array(
            [k.decode("utf-8", "backslashreplace") if k is not None else None for k in keys], pa.string()
        )


def records_table(
    topic: str, batch: dict[int, list[Message]], batch_id: str, at: datetime
) -> tuple[pa.Table, list[float]]:
    """Bronze rows for a batch (partition order, offset order) and each record's Kafka timestamp (s)."""
    values: list[bytes | None] = []
    keys: list[bytes | None] = []
    parts: list[int] = []
    offsets: list[int] = []
    stamps: list[int | None] = []
    for p in sorted(batch):
        msgs = batch[p]
        values += [m.value() for m in msgs]
        keys += [m.key() for m in msgs]
        offsets += [cast(int, m.offset()) for m in msgs]
        parts += [p] * len(msgs)
        for m in msgs:
            kind, ms = m.timestamp()
            stamps.append(None if kind == TIMESTAMP_NOT_AVAILABLE or ms < 0 else ms)
    n = len(values)
    value, raw = _text(values)
    ts = pa.array(stamps, pa.int64()).cast(pa.timestamp("ms", tz="UTC")).cast(pa.timestamp("us", tz="UTC"))
    table = pa.table(
        {
            "value": value,
            "raw_bytes": raw,
            "source_system": pa.repeat("kafka", n).cast(pa.string()),
            "source_file": pa.nulls(n, pa.string()),
            "source_line": pa.nulls(n, pa.int64()),
            "topic": pa.repeat(topic, n).cast(pa.string()),
            "kafka_partition": pa.array(parts, pa.int32()),
            "kafka_offset": pa.array(offsets, pa.int64()),
            "kafka_key": _keys(keys),
            "kafka_timestamp": ts,
            "ingestion_time": pa.repeat(pa.scalar(at, pa.timestamp("us", tz="UTC")), n),
            "batch_id": pa.repeat(batch_id, n).cast(pa.string()),
            "ordinal": pa.array(range(n), pa.int64()),
        },
        schema=SCHEMA,
    )
    return table, [s / 1000.0 for s in stamps if s is not None]


class BronzeSink(Sink):
    name = "bronze"

    def __init__(self, lake: Lake, topic: str, max_rows: int, max_seconds: float, run_id: str = "") -> None:
        ownership.check(lake, TABLE, ownership.EMBEDDED)
        super().__init__(topic, max_rows, max_seconds)
        self.lake = lake
        self.uri = lake.table_uri(TABLE)
        self.run_id = run_id
        self._dt: DeltaTable | None = None

    def _table(self) -> DeltaTable:
        if self._dt is None:
            try:
                self._dt = DeltaTable(self.uri, storage_options=self.lake.options(TABLE))
            except TableNotFoundError:
                self._dt = self._create()
        else:
            self._dt.update_incremental()
        return self._dt

    def _create(self) -> DeltaTable:
        """Create bronze.events empty (schema + Change Data Feed) before the first data commit, so
        every data commit is an append against a known snapshot (the app-id fence needs one).
        Created at the same moment by another sink or a landing ingest: fine, it exists now."""
        return delta.create_empty(self.lake, TABLE, SCHEMA, configuration=delta.CDF, source="kafka/create")

    def load_offsets(self, partitions: list[int]) -> dict[int, int | None]:
        dt = self._table()
        return {p: dt.transaction_version(app_id(self.topic, p)) for p in partitions}

    def write(
        self, batch: dict[int, list[Message]], expected: dict[int, int | None], new: dict[int, int]
    ) -> FlushResult:
        # fence: the stored offsets must still be where this owner started. The commit below is
        # made against the same snapshot, so a competing commit of any of these app ids after it
        # fails this one (delta-rs: ConcurrentTransaction) instead of duplicating rows.
        stored = self.load_offsets(list(batch))
        conflicts = {p: stored[p] for p in batch if stored[p] != expected[p]}
        if conflicts:
            return FlushResult(conflicts=conflicts)
        batch_id = "K" + datetime.now(UTC).strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:8]
        table, stamps = records_table(self.topic, batch, batch_id, datetime.now(UTC))
        try:
            self._write(table, batch_id, expected, new)
        except CommitFailedError as exc:
            # another writer committed one of our app ids after our snapshot: write nothing,
            # re-read from the stored offsets
            if "oncurrent transaction" not in str(exc):
                raise
            stored = self.load_offsets(list(batch))
            return FlushResult(conflicts={p: stored[p] for p in batch})
        visible = time.time()
        return FlushResult(records=table.num_rows, freshness=[visible - s for s in stamps])

    def _table_at_fence(self) -> DeltaTable:
        assert self._dt is not None, "load_offsets() runs first"
        return self._dt  # the snapshot the fence was checked against

    def _write(
        self,
        table: pa.Table,
        batch_id: str,
        expected: dict[int, int | None],
        new: dict[int, int],
    ) -> None:
        write_deltalake(
            self._table_at_fence(),
            table,
            mode="append",
            storage_options=self.lake.options(TABLE),
            commit_properties=CommitProperties(
                app_transactions=[Transaction(app_id(self.topic, p), new[p]) for p in sorted(new)],
                custom_metadata={
                    "lakehouse.source": f"kafka/{self.topic}",
                    "lakehouse.batch_id": batch_id,
                    "lakehouse.run_id": self.run_id,
                    "lakehouse.offsets": json.dumps({str(p): [expected[p], new[p]] for p in sorted(new)}),
                },
                max_commit_retries=20,
            ),
        )
