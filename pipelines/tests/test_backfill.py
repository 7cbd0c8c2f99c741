"""Backfill for real: a date range of events classified again from bronze after a rule change,
replacing exactly that range in silver.events and the quarantine (one commit per table),
idempotent, reconciled; read back through DuckDB's delta_scan."""

from __future__ import annotations

import uuid
from datetime import date
from typing import Any

import pytest

from lakehelpers import bronze_and_silver, write_landing
from lakehouse.core import delta
from lakehouse.core.errors import LakehouseError
from lakehouse.core.reconcile import new_run_id
from lakehouse.core.storage import Lake
from lakehouse.silver import backfill
from lakehouse.silver import events as silver_events
from test_restore_consistency import contents

DAYS = ("2026-11-01", "2026-11-02", "2026-11-03")


def event(day: str, hour: int, **fields: Any) -> dict[str, Any]:
    return {
        "event_id": str(uuid.uuid4()),
        "user_id": 7,
        "event_type": "page_view",
        "ts": f"{day}T{hour:02d}:00:00Z",
        "page": "/home",
        **fields,
    }


def by_day(lake: Lake, table: str) -> dict[str, int]:
    con = lake.duckdb()
    uri = lake.table_uri(table)
    column = "event_date" if table == silver_events.EVENTS else "CAST(NULL AS DATE)"
    rows = con.execute(
        f"SELECT CAST({column} AS VARCHAR), count(*) FROM delta_scan('{uri}') GROUP BY 1"
    ).fetchall()
    con.close()
    return dict(rows)


@pytest.fixture
def lake_with_long_pages(settings_factory: Any) -> tuple[Any, Lake, dict[str, dict[str, Any]]]:
    """Three days of events; each day has two with a 1,500-character page, quarantined while
    silver.max_field_chars is 1,000; plus an exact duplicate and a malformed line."""
    settings = settings_factory({"silver.max_field_chars": 1000})
    lake = Lake(settings)
    lines: list[Any] = []
    long_pages: dict[str, dict[str, Any]] = {}
    for day in DAYS:
        for hour in range(20):
            lines.append(event(day, hour))
        for hour in (21, 22):
            long = event(day, hour, page="/" + "p" * 1500)
            long_pages[long["event_id"]] = long
            lines.append(long)
    lines.append(lines[0])  # an exact duplicate
    lines.append("{not json")
    write_landing(lake, "days.jsonl", lines)
    _, silver = bronze_and_silver(lake, settings)
    assert (silver.inserted, silver.quarantined, silver.duplicates) == (60, 7, 1)
    return settings, lake, long_pages


def test_same_rules_change_nothing_and_a_rule_change_moves_only_the_range(lake_with_long_pages) -> None:
    settings, lake, long_pages = lake_with_long_pages
    tables = (silver_events.EVENTS, silver_events.QUARANTINE)
    incremental = {t: contents(lake, t) for t in tables}
    versions = {t: lake.table(t).version() for t in tables}
    marks = {t: delta.txn_version(lake, t, silver_events.APP_ID) for t in tables}

    same = backfill.reprocess(lake, settings.silver, new_run_id(), date(2026, 11, 2), date(2026, 11, 2))
    assert same.reconciliation.balanced
    assert (same.events_before, same.events_after, same.moved_to_quarantine) == (20, 20, 0)
    assert {t: contents(lake, t) for t in tables} == incremental  # the same rules give the same rows
    assert {t: lake.table(t).version() for t in tables} == {t: v + 1 for t, v in versions.items()}

    # the rule changes: fields up to 32,768 characters are fine now
    relaxed = settings.model_copy(
        update={"silver": settings.silver.model_copy(update={"max_field_chars": 32_768})}
    )
    moved = backfill.reprocess(lake, relaxed.silver, new_run_id(), date(2026, 11, 2), date(2026, 11, 2))
    rec = moved.reconciliation
    assert rec.balanced and (rec.rows_in, rec.inserted, rec.quarantined) == (22, 22, 0)
    assert (moved.events_before, moved.events_after) == (20, 22)
    assert moved.moved_to_quarantine == -2  # two rows left the quarantine for silver.events
    assert moved.events_before + moved.quarantined_before == moved.events_after + moved.quarantined_after
    assert by_day(lake, silver_events.EVENTS) == {"2026-11-01": 20, "2026-11-02": 22, "2026-11-03": 20}
    con = lake.duckdb()
    kept = {
        r[0]
        for r in con.execute(
            f"SELECT event_id FROM delta_scan('{lake.table_uri(silver_events.EVENTS)}') WHERE length(page) > 1000"
        ).fetchall()
    }
    still_quarantined = {
        r[0]
        for r in con.execute(
            f"SELECT event_id FROM delta_scan('{lake.table_uri(silver_events.QUARANTINE)}') "
            "WHERE list_contains(reasons, 'field_too_long')"
        ).fetchall()
    }
    con.close()
    day2 = {i for i, e in long_pages.items() if e["ts"].startswith("2026-11-02")}
    assert kept == day2 and still_quarantined == set(long_pages) - day2  # other days untouched
    # the watermarks did not move: the incremental run carries on as before
    assert {t: delta.txn_version(lake, t, silver_events.APP_ID) for t in tables} == marks

    after = {t: contents(lake, t) for t in tables}
    again = backfill.reprocess(lake, relaxed.silver, new_run_id(), date(2026, 11, 2), date(2026, 11, 2))
    assert again.moved_to_quarantine == 0 and again.reconciliation.balanced
    assert {t: contents(lake, t) for t in tables} == after  # idempotent

    write_landing(lake, "later.jsonl", [event("2026-11-03", 23)])
    _, later = bronze_and_silver(lake, settings)
    assert (later.rows_in, later.inserted) == (1, 1)


def test_backfill_refuses_what_it_cannot_do(settings_factory: Any) -> None:
    settings = settings_factory()
    lake = Lake(settings)
    with pytest.raises(LakehouseError, match="empty"):
        backfill.reprocess(lake, settings.silver, "r", date(2026, 1, 2), date(2026, 1, 1))
    with pytest.raises(LakehouseError, match=r"bronze\.events does not exist"):
        backfill.reprocess(lake, settings.silver, "r", date(2026, 1, 1), date(2026, 1, 1))
    write_landing(lake, "a.jsonl", [event("2026-11-01", 1)])
    from lakehouse.bronze import landing

    landing.ingest(lake, new_run_id(), settings.bronze.max_rows_per_commit)
    with pytest.raises(LakehouseError, match="run `lakehouse silver` before a backfill"):
        backfill.reprocess(lake, settings.silver, "r", date(2026, 11, 1), date(2026, 11, 1))


def test_cli_backfill_and_generator_days(lake_with_long_pages, monkeypatch: pytest.MonkeyPatch) -> None:
    import json

    from typer.testing import CliRunner

    from lakehouse.app.cli import generate
    from lakehouse.app.cli import maintain as cli

    settings, _, _ = lake_with_long_pages
    monkeypatch.setenv("LAKEHOUSE_LAKE_ROOT", settings.lake_root)
    monkeypatch.setenv("LAKEHOUSE_STATE_DIR", settings.state_dir)
    args = ["backfill", "--from", "2026-11-01", "--to", "2026-11-03", "--json"]
    out = CliRunner().invoke(cli.app, [*args, "--set", "silver.max_field_chars=32768"])
    assert out.exit_code == 0, out.output
    payload = json.loads(out.output)
    assert payload["balanced"] and payload["moved_to_quarantine"] == -6
    assert (payload["events_before"], payload["events_after"]) == (60, 66)

    out = CliRunner().invoke(
        generate.app,
        [
            "events",
            "--from",
            "2026-10-30",
            "--to",
            "2026-10-31",
            "--json",
            "--set",
            "maintenance.backfill_events_per_day=50",
        ],
    )
    assert out.exit_code == 0, out.output
    assert set(json.loads(out.output)["days"]) == {"2026-10-30", "2026-10-31"}
