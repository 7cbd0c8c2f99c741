"""`lakehouse snapshot` on a small lake: what the manifest says matches the Delta tables, an
unchanged table is linked rather than written again, a snapshot that fails half-way leaves the
previous one in place (readers never see a partial snapshot), and old snapshots are pruned."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from lakehouse.core.errors import LakehouseError
from lakehouse.core.storage import Lake
from lakehouse.serving import snapshots


@pytest.fixture
def small_lake(settings_factory: Any, tmp_path: Path) -> tuple[Lake, Any]:
    settings = settings_factory(
        {"state_dir": str(tmp_path / "state"), "serving.snapshot_keep": 3}, fresh_state=False
    )
    lake = Lake(settings)
    from deltalake import write_deltalake

    write_deltalake(lake.table_uri("silver.events"), pa.table({"id": [1, 2, 3], "kind": ["a", "b", "c"]}))
    write_deltalake(lake.table_uri("gold.daily"), pa.table({"day": ["2026-11-01"], "n": [3]}))
    write_deltalake(lake.table_uri("bronze.events"), pa.table({"value": ["x"]}))  # not snapshotted
    return lake, settings


def test_manifest_matches_the_tables(small_lake: tuple[Lake, Any]) -> None:
    lake, settings = small_lake
    result = snapshots.write(lake, settings)
    manifest = json.loads((settings.snapshot_path / "manifest.json").read_text())
    assert manifest["snapshot_id"] == result.snapshot_id
    by_table = {t["table"]: t for t in manifest["tables"]}
    assert set(by_table) == {"silver.events", "gold.daily"}
    ev = by_table["silver.events"]
    assert ev["delta_version"] == 0 and ev["rows"] == 3
    assert ev["etag"] == f'"{lake.table("silver.events").metadata().id}-v0"'
    table = pq.read_table(settings.snapshot_path / result.snapshot_id / ev["file"])
    assert table.to_pylist() == lake.table("silver.events").to_pyarrow_table().to_pylist()


def test_unchanged_tables_are_linked_changed_ones_rewritten(small_lake: tuple[Lake, Any]) -> None:
    lake, settings = small_lake
    first = snapshots.write(lake, settings)
    from deltalake import write_deltalake

    write_deltalake(lake.table_uri("silver.events"), pa.table({"id": [4], "kind": ["d"]}), mode="append")
    second = snapshots.write(lake, settings)
    old = {t["table"]: t for t in first.tables}
    new = {t["table"]: t for t in second.tables}
    assert new["silver.events"]["delta_version"] == 1 and new["silver.events"]["rows"] == 4
    assert new["silver.events"]["etag"] != old["silver.events"]["etag"] and not new["silver.events"]["reused"]
    assert new["gold.daily"]["reused"] and new["gold.daily"]["etag"] == old["gold.daily"]["etag"]
    a = (first.path / "gold.daily.parquet").stat()
    b = (second.path / "gold.daily.parquet").stat()
    assert a.st_ino == b.st_ino  # the same file, hard-linked


def test_a_failed_snapshot_leaves_the_previous_one(small_lake: tuple[Lake, Any], monkeypatch: Any) -> None:
    lake, settings = small_lake
    good = snapshots.write(lake, settings)
    from deltalake import write_deltalake

    write_deltalake(lake.table_uri("silver.events"), pa.table({"id": [9], "kind": ["z"]}), mode="append")
    write_deltalake(lake.table_uri("gold.daily"), pa.table({"day": ["2026-11-02"], "n": [1]}), mode="append")
    real = snapshots._write_table
    calls = []

    def dies_on_second(lake: Lake, name: str, path: Path) -> tuple[int, int, str]:
        calls.append(name)
        if len(calls) == 2:
            path.write_bytes(b"PAR1 half a file")
            raise OSError("disk full")
        return real(lake, name, path)

    monkeypatch.setattr(snapshots, "_write_table", dies_on_second)
    with pytest.raises(OSError, match="disk full"):
        snapshots.write(lake, settings)
    assert snapshots.current(settings)["snapshot_id"] == good.snapshot_id  # type: ignore[index]
    assert list(settings.snapshot_path.glob(".*.partial"))  # left behind, never named by a manifest
    monkeypatch.setattr(snapshots, "_write_table", real)
    fixed = snapshots.write(lake, settings)
    assert not list(settings.snapshot_path.glob(".*.partial"))
    assert {t["table"]: t["rows"] for t in fixed.tables} == {"gold.daily": 2, "silver.events": 4}


def test_old_snapshots_are_pruned_and_bad_requests_refused(small_lake: tuple[Lake, Any]) -> None:
    lake, settings = small_lake
    ids = [snapshots.write(lake, settings).snapshot_id for _ in range(4)]
    kept = sorted(
        p.name for p in settings.snapshot_path.iterdir() if p.is_dir() and not p.name.startswith(".")
    )
    assert kept == ids[1:]
    assert snapshots.find(settings, None, "silver.events.parquet") is not None
    assert snapshots.find(settings, ids[0], "silver.events.parquet") is None  # pruned
    assert snapshots.find(settings, None, "../manifest.json") is None
    assert snapshots.find(settings, "../../etc", "silver.events.parquet") is None
    with pytest.raises(LakehouseError, match=r"no Delta table silver\.nope"):
        snapshots.write(lake, settings, ["silver.nope"])
