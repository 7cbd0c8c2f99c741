"""Independent reconciliation: counted from the landing files and the tables themselves, it
passes on a healthy lake and sees a lost silver row and a repeated bronze row."""

from __future__ import annotations

from typing import Any

from lakehelpers import bronze_and_silver, read, write_landing
from lakehouse.app import source_audit
from lakehouse.core import delta
from lakehouse.core.storage import Lake


def test_audit_passes_then_sees_what_was_lost_or_repeated(settings_factory: Any) -> None:
    settings = settings_factory()
    lake = Lake(settings)
    good = [
        {
            "event_id": f"00000000-0000-4000-8000-{i:012d}",
            "user_id": 1,
            "event_type": "click",
            "ts": "2026-11-02T10:00:00Z",
        }
        for i in range(30)
    ]
    write_landing(lake, "a.jsonl", [*good[:20], good[0], "{broken"])
    write_landing(lake, "b.jsonl", good[20:])
    bronze_and_silver(lake, settings)

    results = source_audit.audit(lake, "audit-1")
    by_name = {r.check_name: r for r in results}
    assert all(r.ok for r in results), results
    assert (by_name["landing_lines"].expected, by_name["landing_lines"].found) == (32, 32)
    assert by_name["bronze_rows"].expected == 32 and by_name["bronze_rows"].found == 32
    assert "30 in silver.events, 1 quarantined, 1 duplicates" in by_name["bronze_rows"].detail

    # a silver row goes missing, a bronze row is repeated: both are seen
    lake.table("silver.events").delete("event_id = '00000000-0000-4000-8000-000000000025'")
    bronze = read(lake, "bronze.events")
    delta.append(lake, "bronze.events", bronze.slice(0, 1))
    results = {r.check_name: r for r in source_audit.audit(lake, "audit-2")}
    assert results["landing_lines"].duplicated == 1
    assert results["bronze_rows"].lost == 1
    history = read(lake, source_audit.AUDIT_TABLE)
    assert history.num_rows == 4 and set(history["run_id"].to_pylist()) == {"audit-1", "audit-2"}


def test_cli_check_sources(settings_factory: Any, monkeypatch: Any) -> None:
    import json

    from typer.testing import CliRunner

    from lakehouse.app.cli import check

    settings = settings_factory()
    lake = Lake(settings)
    write_landing(lake, "a.jsonl", [{"event_id": "x"}, "{broken"])
    bronze_and_silver(lake, settings)
    monkeypatch.setenv("LAKEHOUSE_LAKE_ROOT", settings.lake_root)
    monkeypatch.setenv("LAKEHOUSE_STATE_DIR", settings.state_dir)
    out = CliRunner().invoke(check.app, ["sources", "--json"])
    assert out.exit_code == 0, out.output
    assert [r["ok"] for r in json.loads(out.output)] == [True, True]
    lake.table("silver.quarantine_events").delete("true")
    out = CliRunner().invoke(check.app, ["sources"])
    assert out.exit_code == 1 and "rows lost or repeated" in out.output
