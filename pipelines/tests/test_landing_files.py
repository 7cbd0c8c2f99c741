"""Nothing in landing/events is dropped in silence: compressed files are read, every other file
is reported with its reason, and bronze counts rows per file."""

from __future__ import annotations

import json
from typing import Any

import pyarrow.fs as pafs
import pytest

from lakehouse.bronze import landing
from lakehouse.core.reconcile import new_run_id
from lakehouse.core.storage import Lake


def _lines(n: int, tag: str) -> bytes:
    return b"".join(
        json.dumps({"event_id": f"{tag}-{i}", "user_id": i, "event_type": "click"}).encode() + b"\n"
        for i in range(n)
    )


def _put(lake: Lake, name: str, data: bytes, codec: str | None = None) -> None:
    fs, base = lake.landing("events")
    fs.create_dir(f"{base}/{name.rsplit('/', 1)[0]}" if "/" in name else base, recursive=True)
    with fs.open_output_stream(f"{base}/{name}", compression=codec) as out:
        out.write(data)


@pytest.fixture
def lake(settings_factory: Any) -> Lake:
    lake = Lake(settings_factory())
    _put(lake, "a.jsonl", _lines(2, "a"))
    _put(lake, "day=1/b.jsonl.gz", _lines(3, "b"), "gzip")
    _put(lake, "c.ndjson.zst", _lines(4, "c"), "zstd")
    _put(lake, "d.json.bz2", _lines(1, "d"), "bz2")
    _put(lake, "e.csv", b"event_id,user_id\n1,2\n")
    _put(lake, "f.jsonl.xz", b"\xfd7zXZ\x00")
    _put(lake, "g.jsonl.gz", b"this is not gzip")
    _put(lake, "h.tar.gz", b"\x1f\x8b")
    _put(lake, ".i.jsonl.part", _lines(1, "i"))  # still being written
    _put(lake, "backfill/2026-11-01/_SUCCESS", b"{}")
    return lake


def test_compressed_files_are_read_and_others_reported(lake: Lake) -> None:
    result, rec = landing.ingest(lake, new_run_id(), 1000)
    assert sorted(result.files) == ["a.jsonl", "c.ndjson.zst", "d.json.bz2", "day=1/b.jsonl.gz"]
    assert result.rows == rec.inserted == 2 + 3 + 4 + 1
    skipped = dict(result.skipped)
    assert sorted(skipped) == ["e.csv", "f.jsonl.xz", "g.jsonl.gz", "h.tar.gz"]
    assert "extension .csv is not NDJSON" in skipped["e.csv"]
    assert "compression .xz is not read" in skipped["f.jsonl.xz"]
    assert skipped["g.jsonl.gz"].startswith("cannot read gzip")
    assert "archive" in skipped["h.tar.gz"]
    assert result.ignored == 2
    assert "4 skipped" in rec.detail and "2 in-progress or marker files ignored" in rec.detail
    assert rec.balanced

    # per-file counts, and a rerun reads nothing again but still reports what it skips
    assert landing.rows_per_file(lake) == {
        "a.jsonl": 2,
        "day=1/b.jsonl.gz": 3,
        "c.ndjson.zst": 4,
        "d.json.bz2": 1,
    }
    again, rec2 = landing.ingest(lake, new_run_id(), 1000)
    assert again.files == [] and again.already_ingested == 4
    assert sorted(dict(again.skipped)) == sorted(skipped)
    assert rec2.rows_in == 0


def test_a_fixed_file_is_read_on_the_next_run(lake: Lake) -> None:
    landing.ingest(lake, new_run_id(), 1000)
    fs, base = lake.landing("events")
    fs.delete_file(f"{base}/g.jsonl.gz")
    _put(lake, "g.jsonl.gz", _lines(5, "g"), "gzip")
    result, _ = landing.ingest(lake, new_run_id(), 1000)
    assert result.files == ["g.jsonl.gz"] and result.rows == 5
    listing = landing.list_landing(lake, fs, base)
    assert sorted(f.name for f in listing.skipped) == ["e.csv", "f.jsonl.xz", "h.tar.gz"]
    assert not listing.todo and listing.ignored == 2
    assert fs.get_file_info(f"{base}/g.jsonl.gz").type == pafs.FileType.File


def test_per_file_counts_follow_each_file_to_silver(lake: Lake) -> None:
    """`lakehouse bronze --files`: each file's state, and its rows in bronze, silver and quarantine."""
    from lakehouse.app.render.tables import landing_rows
    from lakehouse.core.settings import SilverSettings
    from lakehouse.silver import events as silver_events

    good = {
        "event_id": "00000000-0000-4000-8000-000000000001",
        "user_id": 1,
        "event_type": "click",
        "ts": "2026-11-02T10:00:00Z",
    }
    _put(lake, "z.jsonl", json.dumps(good).encode() + b"\n{not json\n")
    landing.ingest(lake, new_run_id(), 1000)
    silver_events.run(lake, SilverSettings(), new_run_id())
    rows = {r["file"]: r for r in landing_rows(lake)}
    z = rows["z.jsonl"]
    assert (z["state"], z["bronze_rows"], z["silver_rows"], z["quarantined_rows"]) == ("ingested", 2, 1, 1)
    assert rows["day=1/b.jsonl.gz"]["bronze_rows"] == 3
    assert rows["day=1/b.jsonl.gz"]["quarantined_rows"] == 3  # ids that are not UUIDs
    assert rows["e.csv"]["state"] == "skipped" and "not NDJSON" in rows["e.csv"]["reason"]
    assert sum(r["bronze_rows"] for r in rows.values()) == 2 + 3 + 4 + 1 + 2
    assert all(r["silver_rows"] + r["quarantined_rows"] <= r["bronze_rows"] for r in rows.values())
