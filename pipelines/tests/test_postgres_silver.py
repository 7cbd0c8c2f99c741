"""PostgreSQL source -> bronze (incremental, watermark, ties, late rows) -> silver SCD2 and upserts,
against a real PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pyarrow.compute as pc
import pytest

from lakehelpers import read
from lakehouse.bronze import postgres_extract
from lakehouse.core.reconcile import new_run_id
from lakehouse.core.storage import Lake
from lakehouse.generator import source_db
from lakehouse.silver import current_state, scd2

pytestmark = pytest.mark.slow


@pytest.fixture
def source(settings_factory: Any, pg_service: Any, pg_conn: psycopg.Connection[Any]) -> dict[str, Any]:
    """A small source database in a fresh PostgreSQL database, and a lake to extract it into."""
    db = pg_conn.info.dbname
    settings = settings_factory(
        {
            "postgres.source_db": db,
            "generator.customers": 300,
            "generator.products": 40,
            "generator.orders": 800,
        }
    )
    dsn = settings.postgres.source_dsn
    source_db.load(dsn, settings.generator)
    return {"settings": settings, "lake": Lake(settings), "dsn": dsn}


def extract(src: dict[str, Any]) -> dict[str, Any]:
    recs = postgres_extract.extract_all(src["lake"], src["dsn"], new_run_id(), 120)
    assert all(r.balanced for r in recs)
    return {r.target: r for r in recs}


def silver(src: dict[str, Any]) -> dict[str, Any]:
    lake, run_id = src["lake"], new_run_id()
    recs = [scd2.apply(lake, d, run_id) for d in scd2.DIMENSIONS]
    recs += [current_state.apply(lake, t, run_id) for t in current_state.TABLES]
    assert all(r.balanced for r in recs), [(r.target, r.rows_in, r.accounted) for r in recs]
    return {r.target: r for r in recs}


def sql(dsn: str, statement: str, *params: Any) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(statement, params)


def test_full_then_incremental_extract_never_duplicates_or_skips(source: dict[str, Any]) -> None:
    first = extract(source)
    assert first["bronze.customers"].inserted == 300
    assert extract(source)["bronze.customers"].inserted == 0  # rerun: nothing new

    hwm = postgres_extract.high_water_mark(source["lake"], postgres_extract.SOURCE_TABLES[0])
    assert hwm is not None
    # A tie on the boundary (same updated_at as the mark) and a late row (older than the mark,
    # committed after the previous extract) must both arrive; a row outside the look-back must not
    # be re-read as new.
    sql(
        source["dsn"], "UPDATE shop.customers SET segment = 'tie', updated_at = %s WHERE customer_id = 1", hwm
    )
    sql(
        source["dsn"],
        "UPDATE shop.customers SET segment = 'late', updated_at = %s WHERE customer_id = 2",
        hwm - timedelta(minutes=30),
    )
    second = extract(source)["bronze.customers"]
    assert second.inserted == 2
    bronze = read(source["lake"], "bronze.customers")
    assert bronze.num_rows == 302
    segments = {r["customer_id"]: r["segment"] for r in bronze.to_pylist() if r["segment"] in ("tie", "late")}
    assert segments == {1: "tie", 2: "late"}
    assert extract(source)["bronze.customers"].inserted == 0


def test_scd2_versions_are_exact_and_idempotent(source: dict[str, Any]) -> None:
    extract(source)
    silver(source)
    dim = read(source["lake"], "silver.dim_customer")
    assert dim.num_rows == 300 and pc.all(dim["is_current"]).as_py()

    base = datetime(2027, 1, 1, tzinfo=UTC)
    # customer 5 changes twice; customer 6 is touched with no real change (no new version).
    sql(
        source["dsn"], "UPDATE shop.customers SET country = 'AQ', updated_at = %s WHERE customer_id = 5", base
    )
    extract(source)
    sql(
        source["dsn"],
        "UPDATE shop.customers SET segment = 'insider', updated_at = %s WHERE customer_id = 5",
        base + timedelta(hours=1),
    )
    sql(
        source["dsn"],
        "UPDATE shop.customers SET updated_at = %s WHERE customer_id = 6",
        base + timedelta(hours=1),
    )
    extract(source)
    recs = silver(source)
    assert recs["silver.dim_customer"].inserted == 2
    assert recs["silver.dim_customer"].unchanged == 1

    dim = read(source["lake"], "silver.dim_customer")
    five = sorted((r for r in dim.to_pylist() if r["customer_id"] == 5), key=lambda r: r["valid_from"])
    assert len(five) == 3
    assert [r["is_current"] for r in five] == [False, False, True]
    assert five[0]["valid_to"] == five[1]["valid_from"] == base
    assert five[1]["valid_to"] == five[2]["valid_from"] == base + timedelta(hours=1)
    assert five[2]["valid_to"] is None
    assert (five[1]["country"], five[2]["country"], five[2]["segment"]) == ("AQ", "AQ", "insider")
    assert len([r for r in dim.to_pylist() if r["customer_id"] == 6]) == 1
    # Exactly one current version per customer, and a rerun changes nothing.
    assert pc.sum(dim["is_current"]).as_py() == 300
    version = source["lake"].table("silver.dim_customer").version()
    assert silver(source)["silver.dim_customer"].rows_in == 0
    assert source["lake"].table("silver.dim_customer").version() == version


def test_late_change_slots_into_history(source: dict[str, Any]) -> None:
    extract(source)
    base = datetime(2027, 2, 1, tzinfo=UTC)
    sql(
        source["dsn"],
        "UPDATE shop.customers SET segment = 'insider', updated_at = %s WHERE customer_id = 9",
        base + timedelta(hours=2),
    )
    extract(source)
    silver(source)
    # A change that happened at +1h arrives after the +2h one was processed.
    sql(
        source["dsn"],
        "UPDATE shop.customers SET segment = 'partner', updated_at = %s WHERE customer_id = 9",
        base + timedelta(hours=1),
    )
    extract(source)
    silver(source)
    nine = sorted(
        (r for r in read(source["lake"], "silver.dim_customer").to_pylist() if r["customer_id"] == 9),
        key=lambda r: r["valid_from"],
    )
    assert [r["segment"] for r in nine][-2:] == ["partner", "insider"]
    assert nine[-2]["valid_to"] == nine[-1]["valid_from"] == base + timedelta(hours=2)
    assert [r["is_current"] for r in nine] == [False] * (len(nine) - 1) + [True]


def test_current_state_upserts_keep_the_newest_row(source: dict[str, Any]) -> None:
    extract(source)
    silver(source)
    assert read(source["lake"], "silver.orders").num_rows == 800
    summary = source_db.apply_changes(source["dsn"], source["settings"].generator, 1)
    assert summary and source_db.apply_changes(source["dsn"], source["settings"].generator, 1) is None
    extract(source)
    recs = silver(source)
    orders = read(source["lake"], "silver.orders")
    with psycopg.connect(source["dsn"]) as conn:
        truth = dict(conn.execute("SELECT order_id, status FROM shop.orders").fetchall())
        n_items = conn.execute("SELECT count(*) FROM shop.order_items").fetchone()[0]
    assert orders.num_rows == len(truth)
    assert len(pc.unique(orders["order_id"])) == orders.num_rows
    assert recs["silver.orders"].inserted > 0 and recs["silver.orders"].updated > 0
    mismatched = [r for r in orders.to_pylist() if truth[r["order_id"]] != r["status"]]
    # Only rows whose latest change committed late with an older updated_at may differ.
    assert len(mismatched) <= recs["silver.orders"].unchanged
    assert read(source["lake"], "silver.order_items").num_rows == n_items
