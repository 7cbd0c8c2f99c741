"""Re-ingesting landing files: exactly those files' rows in bronze are replaced, in one commit,
idempotently; silver takes the new rows and the independent reconciliation still adds up."""

from __future__ import annotations

import json
from typing import Any

import pyarrow.compute as pc
import pyarrow.fs as pafs
import pytest
from deltalake.exceptions import CommitFailedError

from lakehelpers import bronze_and_silver, read, write_landing
from lakehouse.app import source_audit
from lakehouse.app.cli import failures
from lakehouse.bronze import landing
from lakehouse.bronze import reingest as reingest_module
from lakehouse.bronze.reingest import reingest
from lakehouse.core import delta
from lakehouse.core.errors import LakehouseError
from lakehouse.core.storage import Lake
from lakehouse.silver import events as silver_events


def event(i: int, event_type: str = "click") -> dict[str, Any]:
    return {
        "event_id": f"00000000-0000-4000-8000-{i:012d}",
        "user_id": 1,
        "event_type": event_type,
        "ts": "2026-11-02T10:00:00Z",
    }


def test_reingest_replaces_exactly_the_named_files(settings_factory: Any) -> None:
    settings = settings_factory()
    lake = Lake(settings)
    write_landing(lake, "events-2026-11-01-a.jsonl", [event(i) for i in range(10)])
    write_landing(lake, "events-2026-11-02-b.jsonl", [*(event(i) for i in range(10, 14)), "{broken"])
    write_landing(lake, "events-2026-11-03-c.jsonl", [event(i) for i in range(20, 25)])
    bronze_and_silver(lake, settings)  # one commit, one data file holding all three files' rows
    before = read(lake, "bronze.events")
    untouched = before.filter(pc.invert(pc.equal(before["source_file"], "events-2026-11-02-b.jsonl")))

    # the export of 2026-11-02 is corrected: the broken line fixed, one event added
    write_landing(lake, "events-2026-11-02-b.jsonl", [event(i) for i in range(10, 16)])
    version_before = lake.table("bronze.events").version()
    result = reingest(lake, "reingest-1", "events-2026-11-02", "events-2026-11-02")
    assert result.files == ["events-2026-11-02-b.jsonl"]
    assert (result.rows_before, result.rows_after) == (5, 6)
    assert result.reconciliation is not None and result.reconciliation.balanced
    dt = lake.table("bronze.events")
    assert dt.version() == version_before + 1  # one commit
    assert landing.rows_per_file(lake) == {
        "events-2026-11-01-a.jsonl": 10,
        "events-2026-11-02-b.jsonl": 6,
        "events-2026-11-03-c.jsonl": 5,
    }
    after = read(lake, "bronze.events")
    kept = after.filter(pc.invert(pc.equal(after["source_file"], "events-2026-11-02-b.jsonl")))
    assert sorted(kept.select(["source_file", "source_line", "batch_id"]).to_pylist(), key=str) == sorted(
        untouched.select(["source_file", "source_line", "batch_id"]).to_pylist(), key=str
    )
    # what the commit inserted (what silver reads) is the new file's rows only, not the rows
    # of a and c the overwrite had to rewrite
    inserted = delta.inserted_rows(dt, dt.version(), dt.version())
    assert inserted.num_rows == 6 and set(inserted["source_file"].to_pylist()) == {
        "events-2026-11-02-b.jsonl"
    }
    meta = dt.history(1)[0]
    assert json.loads(meta["lakehouse.files"]) == ["events-2026-11-02-b.jsonl"]
    assert dt.transaction_version(landing.APP_ID) == 2

    # idempotent: again, the same rows
    again = reingest(lake, "reingest-2", "events-2026-11-02-b.jsonl", "events-2026-11-02-b.jsonl")
    assert (again.rows_before, again.rows_after) == (6, 6)
    third = read(lake, "bronze.events")
    assert sorted(third["value"].to_pylist(), key=str) == sorted(after["value"].to_pylist(), key=str)

    # silver takes the new rows: the fixed line's event and the new one reach silver.events
    silver_events.run(lake, settings.silver, "silver-2")
    ids = set(read(lake, "silver.events")["event_id"].to_pylist())
    assert {event(14)["event_id"], event(15)["event_id"]} <= ids and len(ids) == 21
    results = source_audit.audit(lake, "after-reingest", store=False)
    assert all(r.ok for r in results), results


def test_reingest_refuses_what_it_cannot_do(settings_factory: Any) -> None:
    settings = settings_factory()
    lake = Lake(settings)
    write_landing(lake, "a.jsonl", [event(1)])
    bronze_and_silver(lake, settings)
    write_landing(lake, "b.jsonl", [event(2)])  # landed, not ingested
    version = lake.table("bronze.events").version()
    with pytest.raises(LakehouseError, match="1 not ingested yet"):
        reingest(lake, "r", "b", "b")
    with pytest.raises(LakehouseError, match="range is empty"):
        reingest(lake, "r", "b", "a")
    fs, base = lake.landing("events")
    fs.delete_file(f"{base}/a.jsonl")
    with pytest.raises(LakehouseError, match="no ingested landing file"):
        reingest(lake, "r", "a", "a")
    assert lake.table("bronze.events").version() == version  # nothing written


def test_cli_maintain_reingest(settings_factory: Any, monkeypatch: Any) -> None:
    from typer.testing import CliRunner

    from lakehouse.app.cli import maintain

    settings = settings_factory()
    lake = Lake(settings)
    write_landing(lake, "a.jsonl", [event(1), "{broken"])
    bronze_and_silver(lake, settings)
    write_landing(lake, "a.jsonl", [event(1), event(2), event(3)])
    monkeypatch.setenv("LAKEHOUSE_LAKE_ROOT", settings.lake_root)
    monkeypatch.setenv("LAKEHOUSE_STATE_DIR", settings.state_dir)
    out = CliRunner().invoke(maintain.app, ["reingest", "--from", "a", "--to", "a", "--json"])
    assert out.exit_code == 0, out.output
    assert json.loads(out.output) == {
        "files": ["a.jsonl"],
        "rows_before": 2,
        "rows_after": 3,
        "balanced": True,
    }
    out = CliRunner().invoke(maintain.app, ["reingest", "--from", "x", "--to", "y"])
    assert out.exit_code != 0 and "no ingested landing file named 'x'..'y'" in str(
        out.exception or out.output
    )


def _landing_watermarks(lake: Lake) -> list[int]:
    """The landing app transaction's version in each commit that carries it, oldest first."""
    fs, path = lake.table_path(landing.TABLE)
    marks = []
    for info in sorted(fs.get_file_info(pafs.FileSelector(f"{path}/_delta_log")), key=lambda i: i.path):
        if not info.path.endswith(".json"):
            continue
        with fs.open_input_stream(info.path) as stream:
            for line in stream.read().decode().splitlines():
                txn = json.loads(line).get("txn") if line else None
                if txn and txn["appId"] == landing.APP_ID:
                    marks.append(int(txn["version"]))
    return marks


def test_a_landing_ingest_between_read_and_commit_fails_the_reingest(
    settings_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A landing ingest commits after the re-ingest read bronze.events and before it commits:
    the re-ingest, fenced on the snapshot it read, fails and writes nothing (its watermark would
    repeat the ingest's); run again, it replaces the file's rows once."""
    settings = settings_factory()
    lake = Lake(settings)
    write_landing(lake, "a.jsonl", [event(1), event(2)])
    landing.ingest(lake, "first", 1000)
    write_landing(lake, "a.jsonl", [event(1), event(2), event(3)])  # corrected export
    write_landing(lake, "b.jsonl", [event(4)])  # new, for the landing ingest
    real_write = reingest_module.write_deltalake

    def ingest_first(*args: Any, **kwargs: Any) -> None:
        monkeypatch.setattr(reingest_module, "write_deltalake", real_write)
        result, _ = landing.ingest(lake, "rival", 1000)
        assert result.files == ["b.jsonl"]
        real_write(*args, **kwargs)

    monkeypatch.setattr(reingest_module, "write_deltalake", ingest_first)
    with pytest.raises(CommitFailedError) as lost:
        reingest(lake, "loser", "a.jsonl", "a.jsonl")
    assert failures.transient(lost.value)
    assert landing.rows_per_file(lake) == {"a.jsonl": 2, "b.jsonl": 1}
    again = reingest(lake, "rerun", "a.jsonl", "a.jsonl")
    assert (again.rows_before, again.rows_after) == (2, 3)
    assert landing.rows_per_file(lake) == {"a.jsonl": 3, "b.jsonl": 1}
    marks = _landing_watermarks(lake)
    assert marks == sorted(set(marks)), marks  # every commit moves the watermark on
