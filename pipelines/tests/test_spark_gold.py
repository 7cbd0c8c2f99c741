"""dbt gold on Spark-written silver: one input (landing files and one source database with a batch
of changes) taken through bronze and silver twice, by the embedded engine in lake a and by Spark
(delta-spark) in lake b; then gold is built by the project's gold step (dbt-duckdb reading silver
with delta_scan) for each lake and published to a PostgreSQL database of its own. The published
marts and the gold Delta tables are equal row for row.

In lake b every bronze and silver table is Spark's: landing files and the source tables (over
JDBC) to bronze, then silver. Left out of the comparison, as different by nature between two
runs: rpt_pipeline_runs (the run ids and times of ops.reconciliation) and the columns that hold a
time of the run itself (a mart's build time, `current_timestamp as updated_at`; the latest
quarantine time).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import psycopg
import pyarrow as pa
import pytest
from psycopg import sql

from lakehouse.core import ownership
from lakehouse.core.reconcile import new_run_id
from lakehouse.core.storage import Lake
from sparkhelpers import copy_landing, duck, spark_session

pytestmark = [pytest.mark.spark, pytest.mark.slow, pytest.mark.spark_long]

RUN_SPECIFIC = {"rpt_pipeline_runs"}
STAMPS: dict[str, set[str]] = {}  # per mart, its build-time columns (found by `_published`)
SPARK_TABLES = (
    "bronze.events",
    "bronze.customers",
    "bronze.products",
    "bronze.orders",
    "bronze.order_items",
    "silver.events",
    "silver.quarantine_events",
    "silver.dim_customer",
    "silver.dim_product",
    "silver.orders",
    "silver.order_items",
)


@pytest.fixture(scope="module")
def spark(settings_factory: Any) -> Iterator[Any]:
    yield from spark_session(settings_factory, "lakehouse-spark-gold")


def _create_db(pg: Any, name: str) -> None:
    with psycopg.connect(pg.dsn("postgres"), autocommit=True) as admin:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def _published(dsn: str, started: datetime) -> dict[str, list[tuple[Any, ...]]]:
    """Each table of schema gold, its rows sorted, without the columns that stamp a time of this
    run (every value after `started`: the build time of some marts, the latest quarantine time)."""
    out = {}
    with psycopg.connect(dsn) as conn:
        names = [
            r[0]
            for r in conn.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = 'gold' ORDER BY 1"
            ).fetchall()
        ]
        for name in names:
            cur = conn.execute(sql.SQL("SELECT * FROM gold.{}").format(sql.Identifier(name)))
            rows = cur.fetchall()
            stamps = {
                i
                for i in range(len(cur.description or []))
                if rows and all(isinstance(r[i], datetime) and r[i] >= started for r in rows)
            }
            out[name] = sorted((tuple(v for i, v in enumerate(r) if i not in stamps) for r in rows), key=repr)
            STAMPS[name] = {d.name for i, d in enumerate(cur.description or []) if i in stamps}
    return out


def test_dbt_gold_on_spark_silver_equals_gold_on_embedded_silver(
    spark: Any, settings_factory: Any, pg_service: Any
) -> None:
    from lakehouse.app import jobs, spark_jobs
    from lakehouse.generator import source_db
    from lakehouse.gold import build as gold_build
    from lakehouse.gold import publish
    from lakehouse.gold.dbt import DbtProject

    started = datetime.now(UTC)
    tag = uuid.uuid4().hex[:8]
    common = {
        "postgres.source_db": f"sgsrc_{tag}",
        "generator.events": 1500,
        "generator.event_files": 2,
        "generator.users": 200,
        "generator.customers": 120,
        "generator.products": 25,
        "generator.orders": 300,
        "generator.days": 2,
        "generator.change_batches": 1,
    }
    a = Lake(settings_factory({**common, "postgres.serving_db": f"sga_{tag}"}))
    b = Lake(settings_factory({**common, "postgres.serving_db": f"sgb_{tag}"}))
    project_a, project_b = DbtProject.from_settings(a.settings), DbtProject.from_settings(b.settings)
    if not project_a.executable.exists():
        pytest.skip(f"dbt not installed at {project_a.executable}: run make setup-dbt")
    for name in (
        a.settings.postgres.source_db,
        a.settings.postgres.serving_db,
        b.settings.postgres.serving_db,
    ):
        _create_db(pg_service, name)
    dsn = a.settings.postgres.source_dsn
    source_db.load(dsn, a.settings.generator)
    jobs.generate_events(a, a.settings)
    copy_landing(a, b)

    def both(sources: tuple[str, ...]) -> None:
        jobs.bronze(a, a.settings, new_run_id(), sources=sources)
        jobs.silver(a, a.settings, new_run_id())
        bronze = spark_jobs.bronze(spark, b, b.settings, new_run_id(), sources)
        assert all(r.balanced for r in bronze), [r.detail for r in bronze if not r.balanced]
        recs = spark_jobs.silver(spark, b, b.settings, new_run_id())
        assert all(r.balanced for r in recs), [r.detail for r in recs if not r.balanced]

    both(("events", "postgres"))
    assert source_db.apply_changes(dsn, a.settings.generator, 1)
    both(("postgres",))
    for table in SPARK_TABLES:
        assert ownership.owner(b, table) == ownership.SPARK, table
        assert ownership.owner(a, table) == ownership.EMBEDDED, table

    built = {}
    for lake, project in ((a, project_a), (b, project_b)):
        result = gold_build.build(project, lake)
        assert result.ok, result.run.output[-3000:]
        publish.publish(project)
        built[lake.settings.lake_root] = result.tables
    tables_a, tables_b = built[a.settings.lake_root], built[b.settings.lake_root]
    assert set(tables_a) == set(tables_b)
    compared = sorted(set(tables_a) - RUN_SPECIFIC)
    assert len(compared) >= 10
    assert {n: tables_a[n] for n in compared} == {n: tables_b[n] for n in compared}

    gold_a = _published(a.settings.postgres.serving_dsn, started)
    gold_b = _published(b.settings.postgres.serving_dsn, started)
    assert set(gold_a) == set(gold_b) == set(tables_a)
    for name in compared:
        assert gold_a[name], name  # each compared mart has rows
        assert gold_a[name] == gold_b[name], name
        columns = ", ".join(
            f.name for f in pa.schema(a.table(f"gold.{name}").schema()) if f.name not in STAMPS[name]
        )
        assert duck(a, f"gold.{name}", columns) == duck(b, f"gold.{name}", columns), name
