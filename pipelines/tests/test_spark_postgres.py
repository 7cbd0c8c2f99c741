"""PostgreSQL -> bronze over JDBC on Spark against the embedded extract (DuckDB's postgres
scanner): one source database (the generator's shop tables plus a table of NULLs, decimals and
timestamps with time zone and fractions), extracted into two lakes, then a second incremental
batch of changes, then a rerun. The bronze tables are equal row for row through DuckDB's
delta_scan, the row hashes byte for byte, with the same reconciliation counts and watermarks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pyarrow as pa
import pytest

from lakehouse.bronze import postgres_extract, spark_postgres
from lakehouse.bronze.postgres_extract import SourceTable
from lakehouse.core import delta, ownership
from lakehouse.core.errors import LakehouseError
from lakehouse.core.ownership import OwnershipError
from lakehouse.core.reconcile import new_run_id
from lakehouse.core.storage import Lake
from sparkhelpers import duck, spark_session

pytestmark = [pytest.mark.spark, pytest.mark.slow, pytest.mark.spark_long]

ODDITIES = SourceTable("oddities", ("id",))
TABLES = (*postgres_extract.SOURCE_TABLES, ODDITIES)
PER_RUN = {"_extracted_at", "_batch_id", "_run_id"}
ODDITIES_DDL = """
CREATE TABLE shop.oddities (
    id         bigint PRIMARY KEY,
    note       text,
    code       char(5),
    amount     numeric(12, 2),
    rate       numeric(10, 6),
    qty        int,
    flag       boolean,
    day        date,
    seen_at    timestamptz,
    updated_at timestamptz NOT NULL
)"""
ODDITIES_ROWS = """
INSERT INTO shop.oddities VALUES
  (1, 'plain', 'ab', 12.50, 0.000001, 3, true, '2026-11-01', '2026-11-01 09:30:00.25+00', '2026-11-01 10:00:00+00'),
  (2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, '2026-11-01 10:00:00.000001+00'),
  (3, 'Zürich | ∅ "quoted"', 'abcde', -0.05, -12.5, -7, false, '1969-12-31', '1969-12-31 23:59:59.999999+00',
      '2026-11-01 10:00:00.123456+00'),
  (4, '', '', 0.00, 0, 0, NULL, '0900-01-01', '2026-11-01 11:30:00+05:30', '2026-11-01 10:00:01+00'),
  (5, 'big', 'x', 9999999999.99, 9999.999999, 2147483647, true, '2026-12-31', '2026-11-01 00:00:00.1+00',
      '2026-11-01 10:00:01+00')
"""
# the second batch: values become NULL, NULLs get values, one row is new
ODDITIES_CHANGES = """
UPDATE shop.oddities SET note = NULL, amount = NULL, seen_at = NULL, updated_at = '2026-11-02 08:00:00.5+00'
  WHERE id = 1;
UPDATE shop.oddities SET note = 'now set', amount = 0.10, seen_at = '2026-11-02 07:59:59.000010+00',
  updated_at = '2026-11-02 08:00:00.5+00' WHERE id = 2;
INSERT INTO shop.oddities VALUES
  (6, 'late', 'q', 1.00, 1, 1, false, '2026-11-02', '2026-11-02 08:00:00+00', '2026-11-02 08:00:01+00')
"""


@pytest.fixture(scope="module")
def spark(settings_factory: Any) -> Iterator[Any]:
    yield from spark_session(settings_factory, "lakehouse-spark-postgres")


def _embedded(lake: Lake) -> dict[str, Any]:
    con = lake.duckdb()
    try:
        postgres_extract.attach(con, lake.settings.postgres.source_dsn)
        lookback = timedelta(minutes=lake.settings.bronze.extract_lookback_minutes)
        run_id = new_run_id()
        return {t.bronze: postgres_extract.extract_table(lake, con, t, run_id, lookback) for t in TABLES}
    finally:
        con.close()


def _spark(spark: Any, lake: Lake) -> dict[str, Any]:
    recs = spark_postgres.extract_all(
        spark,
        lake,
        lake.settings.postgres,
        new_run_id(),
        lake.settings.bronze.extract_lookback_minutes,
        tables=TABLES,
    )
    return {r.target: r for r in recs}


def _columns(lake: Lake, table: str) -> str:
    return ", ".join(f.name for f in pa.schema(lake.table(table).schema()) if f.name not in PER_RUN)


def _schema(lake: Lake, table: str) -> list[tuple[str, str]]:
    return sorted((f.name, str(f.type)) for f in pa.schema(lake.table(table).schema()))


def _assert_same(a: Lake, b: Lake, recs_a: dict[str, Any], recs_b: dict[str, Any]) -> None:
    for t in TABLES:
        ra, rb = recs_a[t.bronze], recs_b[t.bronze]
        assert (rb.rows_in, rb.inserted, rb.duplicates, rb.detail) == (
            ra.rows_in,
            ra.inserted,
            ra.duplicates,
            ra.detail,
        ), t.bronze
        assert _schema(a, t.bronze) == _schema(b, t.bronze), t.bronze
        columns = _columns(a, t.bronze)
        assert duck(a, t.bronze, columns) == duck(b, t.bronze, columns), t.bronze
        assert duck(a, t.bronze, "_row_hash") == duck(b, t.bronze, "_row_hash"), t.bronze
        assert delta.txn_version(b, t.bronze, t.app_id) == delta.txn_version(a, t.bronze, t.app_id)
        meta_a = a.table(t.bronze).history(1)[0]
        meta_b = b.table(t.bronze).history(1)[0]
        hwm_b = json.loads(meta_b["userMetadata"])["lakehouse.high_water_mark"]
        assert hwm_b == meta_a["lakehouse.high_water_mark"], t.bronze


def test_jdbc_extract_equals_embedded_with_nulls_decimals_timestamps_and_a_second_batch(
    spark: Any, settings_factory: Any, pg_conn: Any
) -> None:
    from lakehouse.generator import source_db

    overrides = {
        "postgres.source_db": pg_conn.info.dbname,
        "generator.customers": 60,
        "generator.products": 15,
        "generator.orders": 120,
    }
    a, b = Lake(settings_factory(overrides)), Lake(settings_factory(overrides))
    dsn = a.settings.postgres.source_dsn
    source_db.load(dsn, a.settings.generator)
    pg_conn.execute(ODDITIES_DDL)
    pg_conn.execute(ODDITIES_ROWS)
    pg_conn.commit()

    first_a, first_b = _embedded(a), _spark(spark, b)
    _assert_same(a, b, first_a, first_b)
    assert first_b[ODDITIES.bronze].inserted == 5
    for t in TABLES:
        assert ownership.owner(b, t.bronze) == ownership.SPARK
        assert b.table(t.bronze).metadata().configuration["delta.enableChangeDataFeed"] == "true"
        assert b.table(t.bronze).protocol() == a.table(t.bronze).protocol(), t.bronze

    assert source_db.apply_changes(dsn, a.settings.generator, 1)
    for statement in ODDITIES_CHANGES.split(";"):
        pg_conn.execute(statement)
    pg_conn.commit()
    second_a, second_b = _embedded(a), _spark(spark, b)
    _assert_same(a, b, second_a, second_b)
    assert second_b[ODDITIES.bronze].inserted == 3  # rows 1 and 2 changed, row 6 new
    assert sum(r.inserted for r in second_b.values()) > 3  # the generator's changes came too

    again = _spark(spark, b)
    assert all(r.inserted == 0 and r.balanced for r in again.values()), again
    versions = {t.bronze: b.table(t.bronze).version() for t in TABLES}
    assert {t: b.table(t).version() for t in versions} == versions

    # each engine refuses the other's tables; a type without a canonical text form is refused
    with pytest.raises(OwnershipError, match=r"bronze\.customers is written by the embedded engine"):
        spark_postgres.extract_all(spark, a, a.settings.postgres, new_run_id(), 120)
    pg_conn.execute(
        "CREATE TABLE shop.floats (id bigint PRIMARY KEY, x double precision, updated_at timestamptz)"
    )
    pg_conn.commit()
    with pytest.raises(LakehouseError, match=r"shop\.floats: column x \(double\) has no canonical text form"):
        spark_postgres.extract_all(
            spark, b, b.settings.postgres, new_run_id(), 120, tables=(SourceTable("floats", ("id",)),)
        )
    assert not b.exists("bronze.floats")

    # the command line: `lakehouse spark bronze --source postgres` finds nothing new
    env = {
        **os.environ,
        "LAKEHOUSE_LAKE_ROOT": b.settings.lake_uri,
        "LAKEHOUSE_STATE_DIR": str(b.settings.state_path),
        "LAKEHOUSE_PG_PORT": str(b.settings.postgres.port),
    }
    args = [
        "spark",
        "bronze",
        "--source",
        "postgres",
        "--set",
        f"postgres.source_db={pg_conn.info.dbname}",
        "--json",
    ]
    done = subprocess.run(
        [sys.executable, "-m", "lakehouse", *args], env=env, capture_output=True, text=True, timeout=900
    )
    assert done.returncode == 0, done.stderr[-2000:]
    rows = {r["target"]: r for r in json.loads(done.stdout)["reconciliation"]}
    assert set(rows) == {t.bronze for t in postgres_extract.SOURCE_TABLES}
    assert all(r["balanced"] and r["inserted"] == 0 for r in rows.values()), rows
    assert sum(r["rows_in"] for r in rows.values()) > 0  # the look-back window was read again
    assert {t: b.table(t).version() for t in versions} == versions
