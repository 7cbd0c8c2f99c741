"""The Spark jobs write the same tables as the embedded engine: landing -> bronze.events and
bronze -> silver.events + silver.quarantine_events, checked row for row against the embedded
job on the same input through an independent reader (DuckDB `delta_scan`).

One SparkSession (local[2]) for the module. `make test` runs the parity of the two jobs; the
tests marked spark_long (engine switch, SIGKILL + rerun, S3A, MERGE) run with `make test-spark`. The compared columns leave out only what is
different by nature between two runs: run ids, batch ids, ingestion and quarantine times and the
bronze commit version a row came from (a table Spark creates starts with a commit of its own).
"""

from __future__ import annotations

import hashlib
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from lakehouse.bronze import landing, spark_landing
from lakehouse.core import delta, ownership
from lakehouse.core.reconcile import Reconciliation, new_run_id
from lakehouse.core.settings import Settings
from lakehouse.core.spark import s3a_conf
from lakehouse.core.storage import Lake, s3_credentials
from lakehouse.generator import landing as landing_files
from lakehouse.silver import events as silver_events
from lakehouse.silver.spark import writer as spark_silver
from sparkhelpers import spark_session

pytestmark = [pytest.mark.spark, pytest.mark.slow]

EVENTS = 1500
BRONZE_COLUMNS = (
    "value, raw_bytes, source_system, source_file, source_line, topic, kafka_partition, "
    "kafka_offset, kafka_key, kafka_timestamp, ordinal"
)
# every silver.events column but the per-run ones
SILVER_SKIP = {"_run_id", "_batch_id", "_ingestion_time", "_commit_version"}
QUARANTINE_COLUMNS = (
    "reasons, raw_value, raw_bytes, event_id, source_system, source_file, source_line, ordinal"
)


@pytest.fixture(scope="module")
def spark(settings_factory: Any) -> Iterator[Any]:
    yield from spark_session(settings_factory, "lakehouse-spark-jobs")


def _settings(settings_factory: Any, **extra: Any) -> Settings:
    return settings_factory(
        {
            "generator.events": EVENTS,
            "generator.event_files": 4,
            "bronze.max_rows_per_commit": 700,
            "silver.chunk_rows": 1000,
            **extra,
        }
    )


@pytest.fixture(scope="module")
def landed(tmp_path_factory: pytest.TempPathFactory, settings_factory: Any) -> Path:
    """One set of generated landing files (with the generator's faults), copied into each lake."""
    settings = _settings(settings_factory)
    lake = Lake(settings)
    landing_files.write_events(lake, settings.generator)
    _, base = lake.landing("events")
    return Path(base)


def _lake(settings_factory: Any, landed: Path, files: list[str] | None = None) -> Lake:
    lake = Lake(_settings(settings_factory))
    _, base = lake.landing("events")
    _copy(landed, Path(base), files)
    return lake


def _copy(source: Path, target: Path, files: list[str] | None = None) -> None:
    for path in sorted(source.rglob("*")):
        name = str(path.relative_to(source))
        if path.is_file() and (files is None or name in files):
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target / name)


def duck(lake: Lake, table: str, columns: str, tail: str = "") -> list[tuple[Any, ...]]:
    con = lake.duckdb_with_delta()
    result = con.execute(f"SELECT {columns} FROM delta_scan('{lake.table_uri(table)}') {tail}").arrow()
    table = result.read_all() if isinstance(result, pa.RecordBatchReader) else result
    rows = [tuple(r.values()) for r in table.to_pylist()]
    return sorted(rows, key=repr)


def silver_columns(lake: Lake) -> str:
    schema = pa.schema(lake.table(silver_events.EVENTS).schema())
    return ", ".join(f.name for f in schema if f.name not in SILVER_SKIP)


def counts(recs: list[Reconciliation]) -> tuple[int, int, int, int]:
    return (
        sum(r.rows_in for r in recs),
        sum(r.inserted for r in recs),
        sum(r.duplicates for r in recs),
        sum(r.quarantined for r in recs),
    )


def embedded_bronze(lake: Lake) -> Reconciliation:
    _, rec = landing.ingest(lake, new_run_id(), lake.settings.bronze.max_rows_per_commit)
    return rec


def spark_bronze(spark: Any, lake: Lake) -> Reconciliation:
    _, rec = spark_landing.ingest(spark, lake, new_run_id(), lake.settings.bronze.max_rows_per_commit)
    return rec


def embedded_silver(lake: Lake) -> Reconciliation:
    return silver_events.run(lake, lake.settings.silver, new_run_id())


def spark_silver_run(spark: Any, lake: Lake) -> Reconciliation:
    return spark_silver.run(spark, lake, lake.settings.silver, new_run_id())


def schema_of(lake: Lake, table: str) -> list[tuple[str, str]]:
    """(column, type), by name: where schema evolution puts a partition column differs between
    delta-rs and delta-spark (both read and write by name)."""
    return sorted((f.name, str(f.type)) for f in pa.schema(lake.table(table).schema()))


def assert_same_tables(a: Lake, b: Lake) -> None:
    assert duck(a, "bronze.events", BRONZE_COLUMNS) == duck(b, "bronze.events", BRONZE_COLUMNS)
    assert schema_of(a, "silver.events") == schema_of(b, "silver.events")
    columns = silver_columns(a)
    assert duck(a, "silver.events", columns) == duck(b, "silver.events", columns)
    assert duck(a, "silver.quarantine_events", QUARANTINE_COLUMNS) == duck(
        b, "silver.quarantine_events", QUARANTINE_COLUMNS
    )


# -- each Spark job against the embedded job -----------------------------------------------------
@pytest.fixture(scope="module")
def pair(spark: Any, settings_factory: Any, landed: Path) -> tuple[Lake, Lake, dict[str, Any]]:
    """Lake a: both layers by the embedded engine; lake b: both by Spark."""
    a, b = _lake(settings_factory, landed), _lake(settings_factory, landed)
    started = time.monotonic()
    facts: dict[str, Any] = {"bronze": (embedded_bronze(a), spark_bronze(spark, b))}
    print(f"\nbronze: {time.monotonic() - started:.1f}s")
    embedded = embedded_silver(a)
    print(f"embedded silver done: {time.monotonic() - started:.1f}s")
    facts["silver"] = (embedded, spark_silver_run(spark, b))
    facts["seconds"] = time.monotonic() - started
    print(f"\nembedded + spark, bronze + silver: {facts['seconds']:.1f}s")
    return a, b, facts


def test_bronze_by_spark_equals_embedded(pair: tuple[Lake, Lake, dict[str, Any]]) -> None:
    a, b, facts = pair
    rec_a, rec_b = facts["bronze"]
    assert (rec_b.rows_in, rec_b.inserted) == (rec_a.rows_in, rec_a.inserted)
    assert rec_a.rows_in >= EVENTS  # the generator's duplicated lines come on top
    assert duck(a, "bronze.events", BRONZE_COLUMNS) == duck(b, "bronze.events", BRONZE_COLUMNS)
    assert schema_of(a, "bronze.events") == schema_of(b, "bronze.events")
    # same commits: files grouped the same way, the same watermark, batch ids and ordinals per commit
    per_batch = "source_file, count(DISTINCT batch_id), min(ordinal), max(ordinal)"
    group = "GROUP BY source_file"
    assert duck(a, "bronze.events", per_batch, group) == duck(b, "bronze.events", per_batch, group)
    commits = delta.txn_version(a, "bronze.events", landing.APP_ID)
    assert commits is not None and commits >= 2
    assert delta.txn_version(b, "bronze.events", landing.APP_ID) == commits
    props = b.table("bronze.events").metadata().configuration
    assert props["delta.enableChangeDataFeed"] == "true"
    assert props[ownership.PROPERTY] == ownership.SPARK
    assert ownership.owner(a, "bronze.events") == ownership.EMBEDDED
    assert b.table("bronze.events").protocol() == a.table("bronze.events").protocol()


def test_bronze_spark_rerun_ingests_nothing_again(
    spark: Any, pair: tuple[Lake, Lake, dict[str, Any]]
) -> None:
    _, b, _ = pair
    version = b.table("bronze.events").version()
    result, rec = spark_landing.ingest(spark, b, new_run_id(), b.settings.bronze.max_rows_per_commit)
    assert (result.commits, rec.rows_in, result.already_ingested) == (0, 0, 4)
    assert b.table("bronze.events").version() == version


def test_silver_by_spark_equals_embedded(pair: tuple[Lake, Lake, dict[str, Any]]) -> None:
    a, b, facts = pair
    rec_a, rec_b = facts["silver"]
    assert counts([rec_b]) == counts([rec_a])
    _, inserted, duplicates, quarantined = counts([rec_a])
    assert inserted > 0 and duplicates > 0 and quarantined > 0  # the generator's faults are there
    assert_same_tables(a, b)
    assert schema_of(a, "silver.quarantine_events") == schema_of(b, "silver.quarantine_events")
    for table in ("silver.events", "silver.quarantine_events"):
        assert b.table(table).protocol() == a.table(table).protocol(), table
        assert b.table(table).metadata().partition_columns == a.table(table).metadata().partition_columns
    for table in ("silver.events", "silver.quarantine_events"):
        assert delta.txn_version(b, table, silver_events.APP_ID) == b.table("bronze.events").version()
        assert ownership.owner(b, table) == ownership.SPARK
    for name in spark_silver.REFERENCE_TABLES:
        key = a.table(name).schema().fields[0].name
        assert a.table(name).to_pyarrow_table().sort_by(key) == b.table(name).to_pyarrow_table().sort_by(key)


# -- one writer per table, and the engine switched mid-history -------------------------------------
SILVER_TABLES = (silver_events.EVENTS, silver_events.QUARANTINE, *spark_silver.REFERENCE_TABLES)


@pytest.mark.spark_long
def test_engine_switch_mid_history_equals_one_engine(
    spark: Any, settings_factory: Any, landed: Path, pair: tuple[Lake, Lake, dict[str, Any]]
) -> None:
    """Bronze by the embedded engine and silver by Spark on the first half of the files; then
    each table handed over, and the second half the other way round. The result equals the
    embedded engine throughout (lake a), with the same reconciliation counts."""
    a, _, facts = pair
    names = sorted(
        str(p.relative_to(landed)) for p in landed.rglob("*") if p.is_file() and not p.name.startswith("_")
    )
    half = len(names) // 2
    c = _lake(settings_factory, landed, names[:half])
    recs = [embedded_bronze(c)]
    recs.append(spark_silver_run(spark, c))

    _copy(landed, Path(c.landing("events")[1]), names[half:])
    with pytest.raises(ownership.OwnershipError, match=r"bronze\.events is written by the embedded engine"):
        spark_bronze(spark, c)  # refused before anything is written
    assert ownership.hand_over(c, "bronze.events", ownership.SPARK) == ownership.EMBEDDED
    with pytest.raises(
        ownership.OwnershipError, match=r"lakehouse spark handover bronze\.events --to embedded"
    ):
        embedded_bronze(c)
    recs.append(spark_bronze(spark, c))
    with pytest.raises(ownership.OwnershipError, match=r"silver\.events is written by the spark engine"):
        embedded_silver(c)
    for table in SILVER_TABLES:
        assert ownership.hand_over(c, table, ownership.EMBEDDED) == ownership.SPARK
    recs.append(embedded_silver(c))

    assert_same_tables(a, c)
    bronze_a, bronze_c = [r for r in facts["bronze"][:1]], recs[0::2]
    assert sum(r.rows_in for r in bronze_c) == bronze_a[0].rows_in
    assert counts(recs[1::2]) == counts([facts["silver"][0]])
    assert delta.txn_version(c, "bronze.events", landing.APP_ID) == delta.txn_version(
        a, "bronze.events", landing.APP_ID
    )
    # nothing left to do for either engine
    assert embedded_silver(c).rows_in == 0


# -- the Spark silver job killed with SIGKILL and rerun ----------------------------------------------
REPO = Path(__file__).resolve().parents[2]


def _cli(lake: Lake, *args: str) -> subprocess.Popen[bytes]:
    """`lakehouse ...` in its own process group: the kill takes the driver and its JVM at once,
    as losing a driver pod would."""
    settings = lake.settings
    env = {
        **os.environ,
        "LAKEHOUSE_LAKE_ROOT": settings.lake_uri,
        "LAKEHOUSE_STATE_DIR": str(settings.state_path),
        "LAKEHOUSE_PG_PORT": str(settings.postgres.port),
    }
    return subprocess.Popen(
        [sys.executable, "-m", "lakehouse", *args],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )


@pytest.mark.spark_long
def test_spark_silver_killed_and_rerun_equals_one_clean_run(
    settings_factory: Any, landed: Path, pair: tuple[Lake, Lake, dict[str, Any]]
) -> None:
    a, _, facts = pair
    d = _lake(settings_factory, landed)
    embedded_bronze(d)
    args = ("spark", "silver", "--set", "silver.chunk_rows=400")
    rng = random.Random(14)
    kills = 0
    for _ in range(2):
        proc = _cli(d, *args)
        # JVM start, then the chunks: commits come after about half a minute here
        time.sleep(rng.uniform(35, 70))
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            kills += 1
        proc.wait(timeout=60)
    assert kills >= 1, "every run finished before its kill: nothing was tested"
    proc = _cli(d, *args)
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err.decode()[-2000:]
    assert_same_tables(a, d)
    _, inserted, _, quarantined = counts([facts["silver"][0]])
    assert len(duck(d, "silver.events", "event_id")) == inserted
    assert len(duck(d, "silver.quarantine_events", "event_id")) == quarantined


# -- S3A against the local S3 server -----------------------------------------------------------------
@pytest.mark.spark_long
def test_spark_jobs_on_an_s3_lake_equal_embedded(
    spark: Any, s3_settings: Settings, landed: Path, pair: tuple[Lake, Lake, dict[str, Any]]
) -> None:
    """Both Spark jobs on an `s3://` lake (S3A, path-style, the server's credentials given to the
    session's Hadoop configuration): the same tables as the embedded engine's local lake."""
    a, _, facts = pair
    settings = s3_settings.model_copy(
        update={"bronze": a.settings.bronze, "silver": a.settings.silver, "generator": a.settings.generator}
    )
    s3 = Lake(settings)
    # the module's session started without S3: S3A settings go into its Hadoop configuration,
    # which the S3A filesystem reads when it is first used
    hadoop = spark.sparkContext._jsc.hadoopConfiguration()
    for key, value in s3a_conf(s3_credentials(settings)).items():
        hadoop.set(key.removeprefix("spark.hadoop."), value)
    fs, base = s3.landing("events")
    for path in sorted(p for p in landed.rglob("*") if p.is_file()):
        with fs.open_output_stream(f"{base}/{path.relative_to(landed)}") as out:
            out.write(path.read_bytes())
    spark_bronze(spark, s3)
    rec = spark_silver_run(spark, s3)
    assert s3.table_uri("bronze.events").startswith("s3://")
    assert counts([rec]) == counts([facts["silver"][0]])
    assert_same_tables(a, s3)


# -- current state and SCD2 by MERGE INTO, through the whole silver job -------------------------------
@pytest.mark.spark_long
def test_silver_job_merges_by_spark_equal_embedded(
    spark: Any, settings_factory: Any, pg_service: Any, pg_conn: Any
) -> None:
    """bronze.customers / products / orders / order_items extracted into two lakes from one
    source database; `jobs.silver` (embedded) builds the SCD2 dimensions and current-state tables
    in one, `spark_jobs.silver` (MERGE INTO) in the other; then a batch of source changes,
    extracted and merged again, and a rerun that is a no-op."""
    from lakehouse.app import jobs, spark_jobs
    from lakehouse.bronze import postgres_extract
    from lakehouse.generator import source_db
    from lakehouse.silver import current_state, scd2

    overrides = {
        "postgres.source_db": pg_conn.info.dbname,
        "generator.customers": 200,
        "generator.products": 30,
        "generator.orders": 500,
    }
    a, b = Lake(settings_factory(overrides)), Lake(settings_factory(overrides))
    dsn = a.settings.postgres.source_dsn
    source_db.load(dsn, a.settings.generator)
    merged = [
        *((d.table, d.source, d.app_id) for d in scd2.DIMENSIONS),
        *((t.table, t.source, t.app_id) for t in current_state.TABLES),
    ]

    def round_trip() -> None:
        for lake in (a, b):
            postgres_extract.extract_all(lake, dsn, new_run_id(), 120)
        recs_a = {r.target: r for r in jobs.silver(a, a.settings, new_run_id())}
        recs_b = {r.target: r for r in spark_jobs.silver(spark, b, b.settings, new_run_id())}
        for table, source, app_id in merged:
            ra, rb = recs_a[table], recs_b[table]
            assert rb.balanced, (table, rb.detail)
            assert (rb.rows_in, rb.inserted, rb.updated, rb.unchanged, rb.duplicates) == (
                ra.rows_in,
                ra.inserted,
                ra.updated,
                ra.unchanged,
                ra.duplicates,
            ), table
            columns = ", ".join(
                f.name
                for f in pa.schema(a.table(table).schema())
                if f.name not in ("_run_id", "_bronze_batch_id", "_extracted_at")
            )
            assert duck(a, table, columns) == duck(b, table, columns), table
            assert schema_of(a, table) == schema_of(b, table)
            assert delta.txn_version(b, table, app_id) == b.table(source).version()
            assert ownership.owner(b, table) == ownership.SPARK

    round_trip()
    assert source_db.apply_changes(dsn, a.settings.generator, 1)
    round_trip()
    versions = {table: b.table(table).version() for table, _, _ in merged}
    again = spark_jobs.silver(spark, b, b.settings, new_run_id())
    assert {r.target: r.detail for r in again if r.target in versions} == dict.fromkeys(
        versions, "up to date"
    )
    assert {table: b.table(table).version() for table in versions} == versions


# -- SCD2 dimensions by MERGE INTO ---------------------------------------------------------------------
T0 = datetime(2026, 1, 1, tzinfo=UTC)
# (customer_id, hour, segment): per batch; the second batch brings late changes, the third replays it
CUSTOMER_BATCHES = [
    [(1, 0, "vip"), (1, 2, "vip"), (2, 0, "consumer"), (3, 1, "consumer"), (3, 1, "consumer"),
     (4, 0, "vip"), (4, 3, "consumer")],
    # 1: a late change between two rows of one state re-opens a version at hour 2;
    # 2: an ordinary change; 4: a late change that makes the version at hour 3 obsolete; 3: a replay
    [(1, 1, "consumer"), (2, 5, "vip"), (4, 2, "consumer"), (3, 1, "consumer"), (5, 4, "vip")],
    [(1, 1, "consumer"), (2, 5, "vip"), (4, 2, "consumer")],
]  # fmt: skip


def _customers(rows: list[tuple[int, int, str]], batch: int) -> pa.Table:
    ts = pa.timestamp("us", tz="UTC")
    return pa.table(
        {
            "customer_id": pa.array([r[0] for r in rows], pa.int64()),
            "full_name": [f"Customer {r[0]}" for r in rows],
            "email": [f"c{r[0]}@example.com" for r in rows],
            "country": ["PL" for _ in rows],
            "segment": [r[2] for r in rows],
            "created_at": pa.array([T0 for _ in rows], ts),
            "updated_at": pa.array([T0 + timedelta(hours=r[1]) for r in rows], ts),
            "_row_hash": [hashlib.md5(repr(r).encode()).hexdigest() for r in rows],
            "_extracted_at": pa.array([T0 + timedelta(days=1, minutes=batch) for _ in rows], ts),
        }
    )


def test_scd2_by_spark_equals_embedded_with_late_changes_and_a_rerun(
    spark: Any, settings_factory: Any
) -> None:
    """bronze.customers in two lakes, batch by batch; the embedded engine builds
    silver.dim_customer in one, Spark's MERGE INTO in the other. After each batch: the same
    reconciliation counts, the same versions row for row, the same schema and watermark."""
    from lakehouse.silver import scd2
    from lakehouse.silver.spark import scd2 as spark_scd2

    dim = scd2.DIMENSIONS[0]
    a, b = Lake(settings_factory()), Lake(settings_factory())
    columns = "version_key, customer_id, full_name, email, country, segment, created_at, change_hash, valid_from, valid_to, is_current"
    details = []
    for i, rows in enumerate(CUSTOMER_BATCHES):
        for lake in (a, b):
            delta.append(lake, dim.source, _customers(rows, i), configuration=delta.CDF)
        ra = scd2.apply(a, dim, new_run_id())
        rb = spark_scd2.apply(spark, b, dim, new_run_id())
        assert rb.balanced, rb.detail
        assert (rb.rows_in, rb.inserted, rb.updated, rb.unchanged, rb.duplicates) == (
            ra.rows_in,
            ra.inserted,
            ra.updated,
            ra.unchanged,
            ra.duplicates,
        ), i
        details.append(rb.detail)
        assert duck(a, dim.table, columns) == duck(b, dim.table, columns), i
        assert schema_of(a, dim.table) == schema_of(b, dim.table)
        assert delta.txn_version(b, dim.table, dim.app_id) == b.table(dim.source).version()
    # the late batch re-opened one version and made one obsolete (the cases the MERGE must handle)
    assert "(1 re-opened by late changes)" in details[1] and "1 made obsolete" in details[1], details
    current = duck(b, dim.table, "customer_id, segment, valid_from", "WHERE is_current")
    assert [(k, s) for k, s, _ in current] == [
        (1, "vip"),
        (2, "vip"),
        (3, "consumer"),
        (4, "consumer"),
        (5, "vip"),
    ]
    assert ownership.owner(b, dim.table) == ownership.SPARK
    version = b.table(dim.table).version()
    again = spark_scd2.apply(spark, b, dim, new_run_id())
    assert again.detail == "up to date" and b.table(dim.table).version() == version


# -- the engine per job, from the settings ---------------------------------------------------------
def _finish(proc: subprocess.Popen[bytes], timeout: int = 600) -> tuple[int, str]:
    _, err = proc.communicate(timeout=timeout)
    return proc.returncode, err.decode()


def test_engine_setting_refuses_bad_values_and_sources_in_one_line(
    settings_factory: Any, landed: Path
) -> None:
    """No JVM is started for these: the settings and the sources are checked first."""
    d = _lake(settings_factory, landed)
    for args, expect in (
        (("silver", "--set", "engines.silver=flink"), "setting 'engines.silver' = 'flink'"),
        (("bronze", "--set", "engines.gold=spark"), "setting 'engines.gold' = 'spark'"),
    ):
        code, err = _finish(_cli(d, *args), timeout=120)
        lines = err.strip().splitlines()
        assert code == 2 and len(lines) == 1 and expect in lines[0], (args, code, err)
    assert not d.exists("bronze.events")
    # maintenance of a table the embedded engine writes: refused before Spark starts
    delta.append(d, "silver.embedded_small", pa.table({"id": [1, 2]}))
    for args in (
        ("spark", "optimize", "silver.embedded_small"),
        ("spark", "vacuum", "silver.embedded_small"),
        ("spark", "restore", "silver.embedded_small", "--version", "0"),
    ):
        code, err = _finish(_cli(d, *args), timeout=120)
        lines = err.strip().splitlines()
        assert code == 2 and len(lines) == 1, (args, code, err)
        assert "silver.embedded_small is written by the embedded engine" in lines[0], err
    assert d.table("silver.embedded_small").version() == 0


@pytest.mark.spark_long
def test_engine_setting_sends_bronze_to_spark_and_the_guard_holds(
    settings_factory: Any, landed: Path, pair: tuple[Lake, Lake, dict[str, Any]]
) -> None:
    """`lakehouse bronze` with engines.bronze=spark writes bronze.events by delta-spark (owned by
    Spark, equal to the embedded engine's); the same command on the embedded engine then
    refuses the Spark-owned table in one line and writes nothing."""
    a, _, _ = pair
    d = _lake(settings_factory, landed)
    rows = ("--set", "bronze.max_rows_per_commit=700")
    code, err = _finish(_cli(d, "bronze", "--source", "events", "--set", "engines.bronze=spark", *rows))
    assert code == 0, err
    assert ownership.owner(d, "bronze.events") == ownership.SPARK
    assert duck(a, "bronze.events", BRONZE_COLUMNS) == duck(d, "bronze.events", BRONZE_COLUMNS)
    version = d.table("bronze.events").version()
    code, err = _finish(_cli(d, "bronze", "--source", "events", *rows))
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and "bronze.events is written by the spark engine" in lines[0], err
    assert d.table("bronze.events").version() == version


# -- maintenance on Spark ------------------------------------------------------------------------------
def _small_spark_table(spark: Any, lake: Lake, table: str, app_id: str) -> None:
    """A Spark-owned table of three small appends, each recording its batch as the watermark."""
    from lakehouse.core import spark_delta

    uri = lake.table_uri(table)
    for batch in range(1, 4):
        rows = spark.createDataFrame(
            [(batch * 100 + i, f"k{i % 3}") for i in range(20)], "id BIGINT, k STRING"
        )
        spark_delta.ensure_table(spark, uri, rows)
        spark_delta.append(rows.repartition(2), uri, app_id=app_id, txn_version=batch)


@pytest.mark.spark_long
def test_spark_optimize_restore_vacuum_keep_rows_watermarks_and_owner(
    spark: Any, settings_factory: Any
) -> None:
    from lakehouse.core.errors import LakehouseError
    from lakehouse.core.settings import MaintenanceSettings
    from lakehouse.maintenance import spark_ops

    lake = Lake(settings_factory())
    table, app = "silver.small", "silver<-bronze.small"
    _small_spark_table(spark, lake, table, app)
    rows = duck(lake, table, "id, k")
    assert len(rows) == 60 and lake.table(table).version() == 3
    m = MaintenanceSettings(zorder={table: ["k", "id"]})

    opt = spark_ops.optimize(spark, lake, m, table, zorder=True)
    assert (opt.operation, opt.version_after) == ("zorder", 4)
    assert opt.files_before == 6 and opt.files_after == 1 and opt.files_removed == 6, opt
    last = lake.table(table).history(1)[0]
    assert last["operation"] == "OPTIMIZE" and "zOrderBy" in str(last.get("operationParameters"))
    assert duck(lake, table, "id, k") == rows

    # back to before the OPTIMIZE: no watermark moves, so delta-spark's RESTORE may do it
    res = spark_ops.restore(spark, lake, table, 3)
    assert (res.operation, res.version_after, res.files_after) == ("restore", 5, 6)
    assert duck(lake, table, "id, k") == rows
    assert delta.txn_version(lake, table, app) == 3
    assert ownership.owner(lake, table) == ownership.SPARK
    # back to batch 1 would have to rewind the watermark 3 -> 1: refused, nothing committed
    with pytest.raises(LakehouseError, match=r"must rewind its watermarks \(silver<-bronze\.small 3->1\)"):
        spark_ops.restore(spark, lake, table, 1)
    assert lake.table(table).version() == 5

    with pytest.raises(LakehouseError, match="enforce_retention_duration=false"):
        spark_ops.vacuum(spark, lake, m, table, retention_hours=0)
    with pytest.raises(LakehouseError, match="enforce_retention_duration=false"):
        spark_ops.vacuum(spark, lake, m, table, retention_hours=0, dry_run=True)
    assert lake.table(table).version() == 5
    loose = MaintenanceSettings(enforce_retention_duration=False)
    planned = spark_ops.vacuum(spark, lake, loose, table, retention_hours=0, dry_run=True)
    assert planned.files_removed >= 1 and planned.bytes_reclaimed > 0  # the OPTIMIZE's file at least
    done = spark_ops.vacuum(spark, lake, loose, table, retention_hours=0)
    assert (done.files_removed, done.bytes_reclaimed) == (planned.files_removed, planned.bytes_reclaimed)
    assert spark_ops.vacuum(spark, lake, loose, table, retention_hours=0, dry_run=True).files_removed == 0
    assert duck(lake, table, "id, k") == rows
    assert delta.txn_version(lake, table, app) == 3

    # the embedded engine's table: refused before anything is done
    delta.append(lake, "silver.embedded_small", pa.table({"id": [1, 2]}))
    for job in (
        lambda: spark_ops.optimize(spark, lake, m, "silver.embedded_small"),
        lambda: spark_ops.vacuum(spark, lake, loose, "silver.embedded_small", retention_hours=0),
        lambda: spark_ops.restore(spark, lake, "silver.embedded_small", 0),
    ):
        with pytest.raises(ownership.OwnershipError, match="written by the embedded engine"):
            job()
