"""Restore keeps the lake consistent: a restored table rewinds its watermarks in the same commit,
downstream tables that read past the restored version are named (or restored with cascade), and
a run after the restore reaches what the uninterrupted run had, read back through DuckDB's
delta_scan (an independent reader, not delta-rs)."""

from __future__ import annotations

import time
from datetime import UTC, date, datetime, timedelta
from typing import Any

import psycopg
import pytest
from typer.testing import CliRunner

from lakehouse.app.cli import maintain as cli
from lakehouse.bronze import landing as bronze_landing
from lakehouse.bronze import postgres_extract
from lakehouse.core import delta
from lakehouse.core.errors import LakehouseError
from lakehouse.core.reconcile import new_run_id
from lakehouse.core.settings import Settings
from lakehouse.core.storage import Lake
from lakehouse.generator import landing, source_db
from lakehouse.maintenance import consistent_restore
from lakehouse.maintenance.consistent_restore import restore
from lakehouse.silver import current_state, scd2
from lakehouse.silver import events as silver_events

# columns that say when and in which run a row was written, not what it holds
RUN_COLUMNS = {"_run_id", "_ingestion_time", "_commit_version", "_processed_at", "_batch_id", "_ingested_at"}
RUN_COLUMNS |= {"_extracted_at", "quarantined_at", "ingestion_time", "batch_id", "run_id"}
RUN_COLUMNS |= {"ordinal", "_ordinal"}  # a row's position in its ingestion batch


def contents(lake: Lake, table: str) -> list[tuple[Any, ...]]:
    """The table's rows as DuckDB's delta extension reads them, without run bookkeeping, sorted."""
    con = lake.duckdb()
    uri = lake.table_uri(table)
    cols = [r[0] for r in con.execute(f"DESCRIBE SELECT * FROM delta_scan('{uri}')").fetchall()]
    kept = ", ".join(
        f'CAST("{c}" AS VARCHAR)' for c in cols if c not in RUN_COLUMNS and not c.endswith("_run_id")
    )
    rows = con.execute(f"SELECT {kept} FROM delta_scan('{uri}')").fetchall()
    con.close()
    return sorted(rows, key=repr)


def assert_same(lake: Lake, expected: dict[str, list[tuple[Any, ...]]]) -> None:
    for table, rows in expected.items():
        got = contents(lake, table)
        missing = [r for r in rows if r not in got][:2]
        extra = [r for r in got if r not in rows][:2]
        assert (len(got), missing, extra) == (len(rows), [], []), table


def _ingest(lake: Lake, settings: Settings) -> None:
    bronze_landing.ingest(lake, new_run_id(), settings.bronze.max_rows_per_commit)


def _silver(lake: Lake, settings: Settings) -> None:
    rec = silver_events.run(lake, settings.silver, new_run_id())
    assert rec.balanced


@pytest.fixture
def two_batches(settings_factory: Any) -> tuple[Settings, Lake, dict[str, int]]:
    """Landing files -> bronze -> silver twice; the versions each table had after the first batch."""
    settings = settings_factory({"generator.events": 3000, "generator.event_files": 3})
    lake = Lake(settings)
    from lakehouse.app import jobs

    jobs.generate_events(lake, settings)
    _ingest(lake, settings)
    _silver(lake, settings)
    after_first = {
        t: lake.table(t).version() for t in ("bronze.events", silver_events.EVENTS, silver_events.QUARANTINE)
    }
    landing.land_days(lake, settings.generator, 1500, date(2026, 10, 30), date(2026, 10, 31))
    _ingest(lake, settings)
    _silver(lake, settings)
    assert lake.table(silver_events.QUARANTINE).version() > after_first[silver_events.QUARANTINE]
    return settings, lake, after_first


def test_restoring_silver_rewinds_its_watermark_and_a_rerun_converges(two_batches) -> None:
    settings, lake, first = two_batches
    expected = {t: contents(lake, t) for t in (silver_events.EVENTS, silver_events.QUARANTINE)}
    bronze_version = lake.table("bronze.events").version()
    assert delta.txn_version(lake, silver_events.EVENTS, silver_events.APP_ID) == bronze_version

    results, stale = restore(lake, silver_events.EVENTS, first[silver_events.EVENTS])
    assert stale == []
    (res,) = results
    assert res.detail.startswith(f"restored to version {first[silver_events.EVENTS]}")
    # the watermark went back in the restore commit itself: silver reads bronze again from there
    assert delta.txn_version(lake, silver_events.EVENTS, silver_events.APP_ID) == first["bronze.events"]
    assert len(contents(lake, silver_events.EVENTS)) < len(expected[silver_events.EVENTS])

    _silver(lake, settings)
    assert_same(lake, expected)
    _silver(lake, settings)  # and nothing more on a second run
    assert_same(lake, expected)


def test_restoring_bronze_names_downstream_then_cascades(two_batches) -> None:
    settings, lake, first = two_batches
    tables = ("bronze.events", silver_events.EVENTS, silver_events.QUARANTINE)
    expected = {t: contents(lake, t) for t in tables}
    versions = {t: lake.table(t).version() for t in tables}

    # without cascade only the named table is restored, and the stale readers are named
    plan_steps, stale = consistent_restore.plan(lake, "bronze.events", first["bronze.events"], cascade=False)
    assert [s.table for s in plan_steps] == ["bronze.events"]
    assert sorted(s.table for s in stale) == [silver_events.EVENTS, silver_events.QUARANTINE]
    assert all(f"past the restored version {first['bronze.events']}" in s.line() for s in stale)
    assert {t: lake.table(t).version() for t in tables} == versions  # planning commits nothing

    results, stale = restore(lake, "bronze.events", first["bronze.events"], cascade=True)
    assert stale == []
    assert [r.table for r in results] == ["bronze.events", silver_events.EVENTS, silver_events.QUARANTINE]
    for table in (silver_events.EVENTS, silver_events.QUARANTINE):
        assert delta.txn_version(lake, table, silver_events.APP_ID) <= first["bronze.events"]
    # bronze's landing watermark went back too, and its rows are those of the first batch
    assert len(contents(lake, "bronze.events")) < len(expected["bronze.events"])

    _ingest(lake, settings)  # the landing files after the restored version are read again
    _silver(lake, settings)
    assert_same(lake, expected)
    _ingest(lake, settings)
    _silver(lake, settings)
    assert_same(lake, expected)


def test_restore_by_timestamp(settings_factory, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = settings_factory()
    lake = Lake(settings)
    import pyarrow as pa

    for i in range(3):
        if i:
            time.sleep(1.1)  # the command line takes whole seconds
        delta.append(lake, "gold.t", pa.table({"k": [i]}))
    history = sorted(lake.table("gold.t").history(), key=lambda h: h["version"])
    at_v1 = datetime.fromtimestamp(history[1]["timestamp"] / 1000, UTC)
    naive = at_v1.replace(tzinfo=None)  # no offset: UTC
    assert consistent_restore.version_at(lake, "gold.t", naive) == 1
    assert consistent_restore.version_at(lake, "gold.t", at_v1.astimezone().replace()) == 1
    with pytest.raises(LakehouseError, match=r"did not exist at 2001-01-01 00:00:00 UTC.*first commit"):
        restore(lake, "gold.t", datetime(2001, 1, 1, tzinfo=UTC))
    assert lake.table("gold.t").version() == 2  # refused: nothing committed

    monkeypatch.setenv("LAKEHOUSE_LAKE_ROOT", settings.lake_root)
    monkeypatch.setenv("LAKEHOUSE_STATE_DIR", settings.state_dir)
    next_second = at_v1.replace(microsecond=0) + timedelta(seconds=1)  # before version 2
    stamp = next_second.strftime("%Y-%m-%dT%H:%M:%S")
    out = CliRunner().invoke(cli.app, ["restore", "gold.t", "--timestamp", stamp])
    assert out.exit_code == 0, out.output
    assert "gold.t: restored to version 1" in out.output
    assert sorted(r[0] for r in contents(lake, "gold.t")) == ["0", "1"]


@pytest.mark.slow
def test_restore_scd2_and_current_state_then_rerun_converges(
    settings_factory: Any, pg_service: Any, pg_conn: psycopg.Connection[Any]
) -> None:
    settings = settings_factory(
        {
            "postgres.source_db": pg_conn.info.dbname,
            "generator.customers": 200,
            "generator.products": 30,
            "generator.orders": 300,
        }
    )
    dsn = settings.postgres.source_dsn
    source_db.load(dsn, settings.generator)
    lake = Lake(settings)

    def run() -> None:
        postgres_extract.extract_all(lake, dsn, new_run_id(), 120)
        for d in scd2.DIMENSIONS:
            assert scd2.apply(lake, d, new_run_id()).balanced
        for t in current_state.TABLES:
            assert current_state.apply(lake, t, new_run_id()).balanced

    run()
    tables = ("bronze.customers", "silver.dim_customer", "bronze.orders", "silver.orders")
    first = {t: lake.table(t).version() for t in tables}
    later = datetime(2027, 1, 1, tzinfo=UTC)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(
            "UPDATE shop.customers SET segment = 'insider', updated_at = %s WHERE customer_id <= 5", [later]
        )
        conn.execute(
            "UPDATE shop.orders SET status = 'cancelled', updated_at = %s WHERE order_id <= 7", [later]
        )
    run()
    expected = {t: contents(lake, t) for t in tables}

    # a silver table alone: its watermark on bronze goes back with it
    for table in ("silver.dim_customer", "silver.orders"):
        (res,), stale = restore(lake, table, first[table])
        assert stale == [] and f"restored to version {first[table]}" in res.detail
    assert contents(lake, "silver.dim_customer") != expected["silver.dim_customer"]
    run()
    assert_same(lake, expected)

    # a bronze table with its downstream: re-extracted from the source, then absorbed again
    _, stale = consistent_restore.plan(lake, "bronze.customers", first["bronze.customers"], cascade=False)
    assert [s.table for s in stale] == ["silver.dim_customer"]
    results, _ = restore(lake, "bronze.customers", first["bronze.customers"], cascade=True)
    assert [r.table for r in results] == ["bronze.customers", "silver.dim_customer"]
    run()
    assert_same(lake, expected)
