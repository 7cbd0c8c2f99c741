"""Independent reconciliation: counted from the landing files and the tables themselves, it
passes on a healthy lake and sees a lost silver row and a repeated bronze row."""

from __future__ import annotations

from typing import Any

import pytest

from lakehelpers import bronze_and_silver, read, write_landing
from lakehouse.app import source_audit
from lakehouse.app.audit_postgres import postgres_vs_bronze
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


@pytest.mark.slow
def test_postgres_rows_per_window_see_a_lost_and_a_repeated_row(
    settings_factory: Any, pg_service: Any, pg_conn: Any
) -> None:
    import psycopg

    from lakehouse.bronze import postgres_extract
    from lakehouse.generator import source_db

    settings = settings_factory(
        {
            "postgres.source_db": pg_conn.info.dbname,
            "generator.customers": 200,
            "generator.products": 30,
            "generator.orders": 300,
        }
    )
    lake, dsn = Lake(settings), settings.postgres.source_dsn
    source_db.load(dsn, settings.generator)
    postgres_extract.extract_all(lake, dsn, "extract-1", 120)
    results = {r.source: r for r in postgres_vs_bronze(lake, dsn)}
    assert set(results) == {f"postgres:shop.{t.name}" for t in postgres_extract.SOURCE_TABLES}
    assert all(r.ok for r in results.values()), results
    customers = results["postgres:shop.customers"]
    assert customers.expected == customers.found == 200

    # a row changed at the source after the extract is pending, not lost
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("UPDATE shop.customers SET updated_at = now() WHERE customer_id = 1")
    pending = {r.source: r for r in postgres_vs_bronze(lake, dsn)}["postgres:shop.customers"]
    assert pending.ok and pending.expected == 199 and "newer source rows not extracted yet" in pending.detail
    postgres_extract.extract_all(lake, dsn, "extract-2", 120)
    assert {r.source: r for r in postgres_vs_bronze(lake, dsn)}["postgres:shop.customers"].expected == 200

    # a bronze row goes missing, another is written twice: both are seen, in their window
    lake.table("bronze.customers").delete("customer_id = 7")
    orders = read(lake, "bronze.orders")
    delta.append(lake, "bronze.orders", orders.slice(0, 1))
    results = {r.source: r for r in postgres_vs_bronze(lake, dsn)}
    assert (results["postgres:shop.customers"].lost, results["postgres:shop.customers"].duplicated) == (1, 0)
    assert "source rows, " in results["postgres:shop.customers"].detail
    assert (results["postgres:shop.orders"].lost, results["postgres:shop.orders"].duplicated) == (0, 1)
    assert results["postgres:shop.products"].ok

    # the whole audit carries them
    audited = source_audit.audit(lake, "audit-pg", source_dsn=dsn)
    assert [r.check_name for r in audited].count("postgres_rows") == 4
    assert not all(r.ok for r in audited)


def test_postgres_check_unreachable_source_is_one_line(settings_factory: Any) -> None:
    settings = settings_factory()
    lake = Lake(settings)
    write_landing(lake, "a.jsonl", [{"event_id": "x"}])
    bronze_and_silver(lake, settings)
    # no bronze table of the source yet: nothing to compare, the source is not asked
    assert postgres_vs_bronze(lake, "postgresql://nobody@127.0.0.1:1/none") == []
