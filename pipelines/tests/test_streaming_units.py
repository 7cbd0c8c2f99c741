"""Fast checks of the streaming pieces that need no broker: settings, the producer's spec, and the bronze sink's offset bookkeeping against a real lake."""

from __future__ import annotations

from typing import Any

import pytest

from lakehouse.bronze.kafka_sink import _keys, _text, stored_offsets
from lakehouse.bronze.stream_sink import FlushResult, Sink
from lakehouse.core.errors import ConfigError
from lakehouse.generator import kafka_producer as producer


def test_streaming_settings_validate_with_one_line_errors(settings_factory: Any) -> None:
    s = settings_factory({"streaming.broker_port": 50000})
    assert s.streaming.servers == "127.0.0.1:50000"
    assert settings_factory({"streaming.bootstrap": "kafka-0:9092"}).streaming.servers == "kafka-0:9092"
    assert s.streaming.allowed_lateness_seconds == 120 and s.streaming.window_seconds == 60
    with pytest.raises(ConfigError, match=r"streaming\.broker_storage"):
        settings_factory({"streaming.broker_storage": "disk"})
    with pytest.raises(ConfigError, match=r"streaming\.partitions"):
        settings_factory({"streaming.partitions": 0})


def test_stream_events_never_reuse_the_batch_generators_ids(settings_factory: Any) -> None:
    s = settings_factory()
    spec = producer.stream_spec(s.generator, 100, 5.0)
    assert spec.seed != s.generator.seed
    assert spec.span_seconds == pytest.approx(20.0)  # 100 events at 5/s
    assert producer.user_key(spec, 3) == producer.user_key(spec, 3)


def test_text_and_keys_keep_bytes_that_are_not_utf8() -> None:
    value, raw = _text([b"ok", None, b"\xff"])
    assert value.to_pylist() == ["ok", None, None]
    assert raw.to_pylist() == [None, None, b"\xff"]
    assert _keys([b"k", None, b"\xc3\x28"]).to_pylist() == ["k", None, "\\xc3("]


class _MemorySink(Sink):
    """A sink whose store is a dict: the Sink bookkeeping (offsets, fences) in isolation."""

    name = "memory"

    def __init__(self) -> None:
        super().__init__("t", max_rows=3, max_seconds=60)
        self.store: dict[int, int] = {}
        self.rows_written: list[tuple[int, int]] = []

    def load_offsets(self, partitions: list[int]) -> dict[int, int | None]:
        return {p: self.store.get(p) for p in partitions}

    def write(self, batch: Any, expected: dict[int, int | None], new: dict[int, int]) -> FlushResult:
        conflicts = {p: self.store.get(p) for p in batch if self.store.get(p) != expected[p]}
        if conflicts:
            return FlushResult(conflicts=conflicts)
        for p, msgs in batch.items():
            self.rows_written += [(p, m.offset()) for m in msgs]
        self.store.update(new)
        return FlushResult(records=sum(len(m) for m in batch.values()))


class _Msg:
    def __init__(self, offset: int) -> None:
        self._offset = offset

    def offset(self) -> int:
        return self._offset


def test_sink_skips_what_it_stored_and_fences_a_moved_offset() -> None:
    sink = _MemorySink()
    sink.store = {0: 2}
    sink.assign([0, 1])
    sink.offer(0, [_Msg(o) for o in range(0, 5)])  # type: ignore[misc]
    sink.offer(1, [_Msg(0)])  # type: ignore[misc]
    assert sink.due(0.0)  # 3 + 1 rows >= max_rows
    result = sink.flush()
    assert result is not None and not result.conflicts
    assert sink.rows_written == [(0, 2), (0, 3), (0, 4), (1, 0)]
    assert sink.store == {0: 5, 1: 1} and sink.advanced == 4
    # another owner moved partition 0 meanwhile: nothing is written, the sink rewinds to it
    sink.offer(0, [_Msg(5), _Msg(6)])  # type: ignore[misc]
    sink.store[0] = 7
    result = sink.flush()
    assert result is not None and result.conflicts == {0: 7}
    assert sink.next[0] == 7 and sink.rows == 0 and len(sink.rows_written) == 4


def test_stored_offsets_of_a_lake_without_bronze(settings_factory: Any) -> None:
    from lakehouse.core.storage import Lake

    lake = Lake(settings_factory())
    assert stored_offsets(lake, "user-events", [0, 1]) == {0: None, 1: None}


def test_restart_offsets_sets_every_partition_back_to_zero_in_one_commit(settings_factory: Any) -> None:
    """A topic created anew (memory-storage broker restarted) begins at offset 0 again: the stored
    offsets go back to 0 in one empty commit that records what they were and why."""
    import json

    from deltalake import CommitProperties, Transaction, write_deltalake

    from lakehouse.bronze.kafka_sink import app_id, restart_offsets
    from lakehouse.bronze.landing import SCHEMA, TABLE
    from lakehouse.core.storage import Lake

    lake = Lake(settings_factory())
    assert restart_offsets(lake, "t", [0, 1], "nothing stored yet") == {0: None, 1: None}
    assert not lake.exists(TABLE)
    write_deltalake(
        lake.table_uri(TABLE),
        SCHEMA.empty_table(),
        mode="append",
        commit_properties=CommitProperties(app_transactions=[Transaction(app_id("t", 0), 42)]),
    )
    before = restart_offsets(lake, "t", [0, 1], "topic recreated")
    assert before == {0: 42, 1: None}
    assert stored_offsets(lake, "t", [0, 1]) == {0: 0, 1: 0}
    dt = lake.table(TABLE)
    last = dt.history(1)[0]
    assert last["lakehouse.reason"] == "topic recreated"
    assert json.loads(last["lakehouse.offsets_restarted"]) == {"0": 42, "1": None}
    assert dt.to_pyarrow_table().num_rows == 0


def test_status_files_skip_a_file_removed_while_listed(settings_factory: Any, monkeypatch: Any) -> None:
    """Two consumers of one group in one process each clean up the status files of finished
    processes: a file the other removed between the listing and the stat is skipped, not an error."""
    from pathlib import Path

    from lakehouse.app.streaming import status_files

    settings = settings_factory(fresh_state=True)
    folder = settings.state_path / "streaming"
    folder.mkdir(parents=True, exist_ok=True)
    kept = folder / "g-1.json"
    kept.write_text("{}")
    gone = folder / "g-2.json"  # listed, then removed by the other consumer
    real_glob = Path.glob

    def glob(self: Path, pattern: str) -> Any:
        return [*real_glob(self, pattern), gone]

    monkeypatch.setattr(Path, "glob", glob)
    assert status_files(settings, "g") == [kept]
