"""Which rows a silver chunk reads: the files bronze commits appended (from the Delta commit log),
and the Change Data Feed whenever a commit did more than append."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from lakehelpers import bronze_and_silver, read, write_landing
from lakehouse.bronze import landing
from lakehouse.core import delta
from lakehouse.core.reconcile import new_run_id
from lakehouse.core.storage import Lake
from lakehouse.silver import events as silver_events


def _event(i: int) -> dict[str, object]:
    return {
        "event_id": f"00000000-0000-4000-8000-{i:012d}",
        "user_id": i,
        "event_type": "page_view",
        "ts": "2026-11-01T10:00:00Z",
    }


def _table(n: int, start: int = 0) -> pa.Table:
    return pa.table({"k": pa.array(range(start, start + n), pa.int64())})


def test_appended_files_name_each_commits_files_and_version(settings_factory) -> None:
    lake = Lake(settings_factory())
    for version in range(3):
        delta.append(lake, "bronze.t", _table(10, version * 10), configuration=delta.CDF)
    files = delta.appended_files(lake, "bronze.t", 1, 2)
    assert files is not None and [v for _, v in files] == [1, 2]
    dt = delta.open_table(lake, "bronze.t")
    assert dt is not None
    current = set(dt.file_uris())
    assert {f for f, _ in files} <= current
    # the files hold exactly the rows the CDF says those versions inserted
    via_files = pa.concat_tables([pq.read_table(f) for f, _ in files])
    via_cdf = delta.inserted_rows(dt, 1, 2)
    assert sorted(via_files["k"].to_pylist()) == sorted(via_cdf["k"].to_pylist())


def test_appended_files_refuse_commits_that_remove_rows(settings_factory) -> None:
    lake = Lake(settings_factory())
    delta.append(lake, "bronze.t", _table(10), configuration=delta.CDF)
    dt = delta.open_table(lake, "bronze.t")
    assert dt is not None
    dt.delete("k < 3")
    assert delta.appended_files(lake, "bronze.t", 0, 0) is not None
    assert delta.appended_files(lake, "bronze.t", 0, 1) is None  # version 1 removed rows
    assert delta.appended_files(lake, "bronze.t", 0, 7) is None  # no such versions yet


def test_compaction_moves_rows_without_adding_any(settings_factory) -> None:
    lake = Lake(settings_factory())
    for version in range(3):
        delta.append(lake, "bronze.t", _table(5, version * 5), configuration=delta.CDF)
    dt = delta.open_table(lake, "bronze.t")
    assert dt is not None
    dt.optimize.compact()
    assert dt.version() == 3
    assert delta.appended_files(lake, "bronze.t", 3, 3) == []


def test_silver_reads_the_same_rows_after_bronze_compaction(settings_factory) -> None:
    """Two bronze commits, compacted before silver runs: silver reads the appended files (still
    present until VACUUM) and lands every event once; a second run adds nothing."""
    settings = settings_factory({"bronze.max_rows_per_commit": 5})
    lake = Lake(settings)
    write_landing(lake, "a.jsonl", [_event(i) for i in range(5)])
    write_landing(lake, "b.jsonl", [_event(i) for i in range(5, 10)] + [_event(0)])
    landing.ingest(lake, new_run_id(), settings.bronze.max_rows_per_commit)
    dt = delta.open_table(lake, "bronze.events")
    assert dt is not None
    dt.optimize.compact()
    rec = silver_events.run(lake, settings.silver, new_run_id())
    assert (rec.rows_in, rec.inserted, rec.duplicates, rec.quarantined) == (11, 10, 1, 0)
    again = silver_events.run(lake, settings.silver, new_run_id())
    assert again.rows_in == 0
    ids = read(lake, "silver.events")["event_id"]
    assert len(ids) == 10 and pc.count_distinct(ids).as_py() == 10


def test_silver_falls_back_to_the_change_feed_when_bronze_is_not_append_only(settings_factory) -> None:
    settings = settings_factory()
    lake = Lake(settings)
    write_landing(lake, "a.jsonl", [_event(i) for i in range(4)])
    bronze_and_silver(lake, settings)
    write_landing(lake, "b.jsonl", [_event(i) for i in range(4, 8)])
    landing.ingest(lake, new_run_id(), settings.bronze.max_rows_per_commit)
    dt = delta.open_table(lake, "bronze.events")
    assert dt is not None
    dt.delete("source_file = 'a.jsonl'")  # a commit that removes rows: no plain-append reading
    version = dt.version()
    assert delta.appended_files(lake, "bronze.events", 1, version) is None
    rec = silver_events.run(lake, settings.silver, new_run_id())
    assert (rec.rows_in, rec.inserted) == (4, 4)
    assert len(read(lake, "silver.events")) == 8


def test_history_leaves_out_the_chunk_silver_already_holds_from_version_0(settings_factory) -> None:
    """After an interrupted first run, silver.events holds rows of bronze version 0 while the
    quarantine table does not: the chunk restarts at version 0, and those rows must not count as
    history (they would turn this chunk's own inserts into duplicates)."""
    settings = settings_factory()
    lake = Lake(settings)
    # bronze.events whose first version holds rows (as a table Spark created); a landing ingest
    # creates it empty first, its rows then come at version 1
    lines = [json.dumps(_event(i)).encode() for i in range(4)]
    batch = landing.file_batch("a.jsonl", lines, landing.new_batch_id(), 0, datetime.now(UTC))
    delta.append(lake, landing.TABLE, batch, app_id=landing.APP_ID, txn_version=1, configuration=delta.CDF)
    silver_events.run(lake, settings.silver, new_run_id())
    assert delta.txn_version(lake, silver_events.EVENTS, silver_events.APP_ID) == 0
    con = lake.duckdb()
    try:
        silver_events._register_existing(con, lake, 0, 0)
        assert con.execute("SELECT count(*) FROM existing").fetchone() == (0,)
        silver_events._register_existing(con, lake, 1, 0)
        assert con.execute("SELECT count(*) FROM existing").fetchone() == (4,)
    finally:
        con.close()
