"""Maintenance over real Delta tables: compaction, Z-order, VACUUM with retention from config,
checkpoints, restore, backfill; and that silver's incremental read survives all of it."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pyarrow as pa
import pytest
from typer.testing import CliRunner

from lakehouse.app import jobs
from lakehouse.app.cli import maintain as cli
from lakehouse.core import delta
from lakehouse.core.errors import LakehouseError
from lakehouse.core.reconcile import new_run_id
from lakehouse.core.settings import Settings
from lakehouse.core.storage import Lake
from lakehouse.generator import landing
from lakehouse.maintenance import ops, restore


def _small_lake(settings_factory, **extra: object) -> tuple[Settings, Lake]:
    settings = settings_factory(
        {
            "generator.events": 3000,
            "generator.event_files": 3,
            "maintenance.backfill_events_per_day": 500,
            **extra,
        }
    )
    lake = Lake(settings)
    jobs.generate_events(lake, settings)
    jobs.bronze(lake, settings, new_run_id(), sources=("events",))
    return settings, lake


def _many_small_commits(lake: Lake, table: str, commits: int) -> None:
    for i in range(commits):
        delta.append(lake, table, pa.table({"k": list(range(i * 10, i * 10 + 10)), "g": [i % 3] * 10}))


def test_compact_reports_files_and_keeps_rows(settings_factory) -> None:
    settings = settings_factory()
    lake = Lake(settings)
    _many_small_commits(lake, "gold.small", 6)
    before = lake.table("gold.small").to_pyarrow_table().sort_by("k")
    res = ops.optimize(lake, settings.maintenance, "gold.small")
    assert res.operation == "compact"
    assert (res.files_before, res.files_removed, res.files_added, res.files_after) == (6, 6, 1, 1)
    assert res.version_after == res.version_before + 1
    assert lake.table("gold.small").to_pyarrow_table().sort_by("k").equals(before)


def test_zorder_only_for_large_configured_tables(settings_factory) -> None:
    settings = settings_factory({"maintenance.zorder_min_mb": 0})
    settings = settings.model_copy(
        update={"maintenance": settings.maintenance.model_copy(update={"zorder": {"gold.big": ["g", "k"]}})}
    )
    lake = Lake(settings)
    _many_small_commits(lake, "gold.big", 4)
    _many_small_commits(lake, "gold.other", 4)
    assert ops.optimize(lake, settings.maintenance, "gold.big").operation == "zorder"
    assert ops.optimize(lake, settings.maintenance, "gold.other").operation == "compact"
    # above the size threshold: plain compaction even when configured
    big_min = settings.model_copy(
        update={"maintenance": settings.maintenance.model_copy(update={"zorder_min_mb": 1024})}
    )
    _many_small_commits(lake, "gold.big", 2)
    assert ops.optimize(lake, big_min.maintenance, "gold.big").operation == "compact"
    history = lake.table("gold.big").history()
    assert any(h["operation"] == "OPTIMIZE" and "zOrder" in json.dumps(h) for h in history)
    bad = settings.model_copy(
        update={"maintenance": settings.maintenance.model_copy(update={"zorder": {"gold.big": ["nope"]}})}
    )
    with pytest.raises(LakehouseError, match="no column"):
        ops.optimize(lake, bad.maintenance, "gold.big")


def test_vacuum_retention_from_config(settings_factory) -> None:
    keep = settings_factory()  # 168 h from environments/local/pipeline.yaml
    lake = Lake(keep)
    _many_small_commits(lake, "gold.v", 5)
    ops.optimize(lake, keep.maintenance, "gold.v")
    kept = ops.vacuum(lake, keep.maintenance, "gold.v")
    assert kept.files_removed == 0 and kept.bytes_reclaimed == 0
    assert kept.detail.startswith(f"retention {keep.maintenance.vacuum_retention_hours} h")

    short = settings_factory(
        {
            "lake_root": keep.lake_root,
            "maintenance.vacuum_retention_hours": 0,
            "maintenance.enforce_retention_duration": "false",
        }
    )
    files_on_disk = {p for p in Path(lake.table_uri("gold.v")).glob("*.parquet")}
    dry = ops.vacuum(lake, short.maintenance, "gold.v", dry_run=True)
    assert dry.files_removed == 5 and len(list(Path(lake.table_uri("gold.v")).glob("*.parquet"))) == 6
    expected_bytes = (
        sum(p.stat().st_size for p in files_on_disk)
        - lake.table("gold.v").get_add_actions(flatten=True).column("size_bytes").to_pylist()[0]
    )
    done = ops.vacuum(lake, short.maintenance, "gold.v")
    assert done.files_removed == 5
    assert done.bytes_reclaimed == expected_bytes > 0
    assert len(list(Path(lake.table_uri("gold.v")).glob("*.parquet"))) == 1
    assert lake.table("gold.v").count() == 50

    enforced = settings_factory({"lake_root": keep.lake_root, "maintenance.vacuum_retention_hours": 0})
    with pytest.raises(Exception, match=r"(?i)retention"):
        ops.vacuum(lake, enforced.maintenance, "gold.v")


def test_checkpoint_and_restore(settings_factory) -> None:
    settings = settings_factory()
    lake = Lake(settings)
    _many_small_commits(lake, "silver.r", 3)
    res = ops.checkpoint(lake, "silver.r")
    assert (Path(lake.table_uri("silver.r")) / "_delta_log" / "_last_checkpoint").exists()
    assert res.detail == "checkpoint at version 2"
    restored = restore(lake, "silver.r", 0)[0][0]
    assert restored.version_after == 3
    assert lake.table("silver.r").count() == 10
    assert lake.table("silver.r", version=2).count() == 30
    with pytest.raises(LakehouseError, match=r"versions 0\.\.3"):
        restore(lake, "silver.r", 9)


def test_maintenance_keeps_incremental_silver_exact(settings_factory) -> None:
    """OPTIMIZE + VACUUM + checkpoint on bronze between runs: silver still absorbs every new row
    once (app transactions survive checkpoints; compaction commits add no rows to the CDF)."""
    settings, lake = _small_lake(
        settings_factory,
        **{"maintenance.vacuum_retention_hours": 0, "maintenance.enforce_retention_duration": "false"},
    )
    first = jobs.silver(lake, settings, new_run_id())
    results = ops.maintain(lake, settings.maintenance, new_run_id())
    ops_done = {(r.table, r.operation) for r in results}
    assert {
        ("bronze.events", "compact"),
        ("bronze.events", "vacuum"),
        ("silver.events", "checkpoint"),
    } <= ops_done
    assert lake.table(ops.REPORT_TABLE).count() == len(results)

    landed = landing.land_days(
        lake,
        settings.generator,
        settings.maintenance.backfill_events_per_day,
        date(2026, 10, 30),
        date(2026, 10, 31),
    )
    assert landed == {"2026-10-30": 3, "2026-10-31": 3}
    assert landing.land_days(
        lake,
        settings.generator,
        settings.maintenance.backfill_events_per_day,
        date(2026, 10, 30),
        date(2026, 10, 31),
    ) == {
        "2026-10-30": 0,
        "2026-10-31": 0,
    }
    bronze = jobs.bronze(lake, settings, new_run_id(), sources=("events",))
    landed_lines = sum(
        len(f.read_bytes().splitlines())
        for f in (Path(lake.root) / "landing" / "events" / "backfill").rglob("*.jsonl")
    )
    assert bronze[0].rows_in == landed_lines >= 1000
    second = jobs.silver(lake, settings, new_run_id())
    assert second[0].rows_in == landed_lines and second[0].balanced
    total_silver = first[0].inserted + second[0].inserted
    assert lake.table("silver.events").count() == total_silver
    con = lake.duckdb()
    con.register("e", lake.table("silver.events").to_pyarrow_dataset())
    days = {
        str(d)
        for (d,) in con.execute(
            "SELECT DISTINCT event_date FROM e WHERE _run_id = ?", [second[0].run_id]
        ).fetchall()
    }
    assert {"2026-10-30", "2026-10-31"} <= days


def test_backfill_rejects_bad_ranges(settings_factory) -> None:
    settings = settings_factory()
    with pytest.raises(LakehouseError, match="empty"):
        landing.land_days(Lake(settings), settings.generator, 10, date(2026, 1, 2), date(2026, 1, 1))


def test_cli_json_report(settings_factory, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = settings_factory()
    lake = Lake(settings)
    _many_small_commits(lake, "gold.c", 4)
    monkeypatch.setenv("LAKEHOUSE_LAKE_ROOT", settings.lake_root)
    monkeypatch.setenv("LAKEHOUSE_STATE_DIR", settings.state_dir)
    out = CliRunner().invoke(cli.app, ["run", "--json", "--table", "gold.c"])
    assert out.exit_code == 0, out.output
    payload = json.loads(out.output)
    assert payload["files_compacted"] == 4
    assert [r["operation"] for r in payload["results"]] == ["compact", "vacuum", "checkpoint"]
    out = CliRunner().invoke(cli.app, ["restore", "gold.c", "--version", "1", "--json"])
    assert out.exit_code == 0, out.output
    assert lake.table("gold.c").count() == 20
