"""Spark with delta-spark, running here from the `spark` jar bundle (lakehouse.core.spark).

One SparkSession for the module (local[2], S3A pointed at the session's SeaweedFS, the OpenLineage
listener writing to a file). Every table Spark writes is read back by independent readers: the
`deltalake` library (delta-rs) and DuckDB's `delta_scan`; tables the embedded engine wrote are
opened, appended to and read back by Spark, then appended to by delta-rs again.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import pyarrow as pa
import pytest
from confluent_kafka import Producer
from deltalake import DeltaTable, write_deltalake

from lakehouse.app import jobs
from lakehouse.core import delta
from lakehouse.core.jvm import JvmError, find_java
from lakehouse.core.reconcile import new_run_id
from lakehouse.core.settings import Settings
from lakehouse.core.spark import (
    SparkOptions,
    build_session,
    openlineage_file_conf,
    spark_bundle,
    stop_session,
)
from lakehouse.core.storage import Lake
from lakehouse.services.apache_kafka import ApacheKafka
from lakehouse.services.process import free_port

pytestmark = [pytest.mark.spark, pytest.mark.slow]


class SparkEnv(NamedTuple):
    spark: Any
    settings: Settings


@pytest.fixture(scope="module")
def env(
    tmp_path_factory: pytest.TempPathFactory, settings_factory: Any, s3_service: Any
) -> Iterator[SparkEnv]:
    try:
        find_java()
        spark_bundle()
    except JvmError as exc:
        pytest.skip(f"Spark cannot run here: {exc}")
    from pyspark import SparkContext

    # A test run may already hold a Spark JVM started without the bundle (engines.spark_engine's
    # own session, tests/test_parity.py). Stop that session, set its JVM aside, start ours, and give
    # the old JVM back afterwards so its owner's teardown still finds it.
    saved = None
    if SparkContext._jvm is not None:
        from pyspark.sql import SparkSession

        active = SparkSession.getActiveSession()
        if active is not None:
            active.stop()
        saved = (SparkContext._gateway, SparkContext._jvm)
        SparkContext._gateway = SparkContext._jvm = None
    settings = settings_factory()
    started = time.monotonic()
    # The tests run many short queries: the C1 compiler alone costs a third less CPU here than
    # tiered compilation (measured: 39 against 60 CPU-seconds for start, a write and a MERGE).
    options = SparkOptions(
        app_name="lakehouse-tests", conf={"spark.driver.extraJavaOptions": "-XX:TieredStopAtLevel=1"}
    )
    spark = build_session(settings, options, s3=s3_service.credentials)
    print(f"\nSparkSession up in {time.monotonic() - started:.1f}s")
    try:
        yield SparkEnv(spark, settings)
    finally:
        stop_session(spark)
        if saved is not None:
            SparkContext._gateway, SparkContext._jvm = saved


def rows(table: pa.Table, *columns: str) -> list[tuple[Any, ...]]:
    return sorted(zip(*(table.column(c).to_pylist() for c in columns), strict=True))


def duck_rows(settings: Settings, uri: str, columns: str) -> list[tuple[Any, ...]]:
    con = Lake(settings).duckdb_with_delta()
    return sorted(con.execute(f"SELECT {columns} FROM delta_scan('{uri}')").fetchall())


# -- Delta basics, read back by delta-rs and DuckDB ----------------------------------------------------
def test_delta_write_read_by_delta_rs_and_duckdb(env: SparkEnv, tmp_path: Path) -> None:
    spark = env.spark
    uri = str(tmp_path / "events")
    df = spark.createDataFrame(
        [(i, f"user-{i % 7}", i * 1.5, "2026-11-01" if i % 2 else "2026-11-02") for i in range(1000)],
        "id BIGINT, user STRING, amount DOUBLE, day STRING",
    )
    df.write.format("delta").partitionBy("day").save(uri)
    expected = sorted((r.id, r.user, r.amount, r.day) for r in spark.read.format("delta").load(uri).collect())
    assert len(expected) == 1000

    table = DeltaTable(uri)
    assert table.version() == 0
    assert rows(table.to_pyarrow_table(), "id", "user", "amount", "day") == expected
    assert duck_rows(env.settings, uri, "id, user, amount, day") == expected


def test_merge_upserts_and_is_recorded_as_merge(env: SparkEnv, tmp_path: Path) -> None:
    spark = env.spark
    uri = str(tmp_path / "customers")
    spark.createDataFrame(
        [(1, "DE", 1), (2, "FR", 1), (3, "IT", 1)], "id INT, country STRING, v INT"
    ).write.format("delta").save(uri)
    spark.createDataFrame(
        [(2, "ES", 2), (4, "PT", 2)], "id INT, country STRING, v INT"
    ).createOrReplaceTempView("changes")
    merged = spark.sql(
        f"""MERGE INTO delta.`{uri}` AS t USING changes AS s ON t.id = s.id
            WHEN MATCHED AND s.v > t.v THEN UPDATE SET *
            WHEN NOT MATCHED THEN INSERT *"""
    ).collect()[0]
    assert (merged.num_updated_rows, merged.num_inserted_rows) == (1, 1)
    expected = [(1, "DE", 1), (2, "ES", 2), (3, "IT", 1), (4, "PT", 2)]
    assert rows(DeltaTable(uri).to_pyarrow_table(), "id", "country", "v") == expected
    assert duck_rows(env.settings, uri, "id, country, v") == expected
    assert DeltaTable(uri).history(1)[0]["operation"] == "MERGE"


def test_app_transaction_makes_a_rewrite_a_no_op(env: SparkEnv, tmp_path: Path) -> None:
    spark = env.spark
    uri = str(tmp_path / "bronze")
    batch = spark.createDataFrame([(i,) for i in range(100)], "id INT")

    def write(version: int) -> None:
        batch.write.format("delta").mode("append").option("txnAppId", "landing").option(
            "txnVersion", version
        ).save(uri)

    write(1)
    write(1)  # a replay of batch 1 (a retried task, a rerun job): Delta skips it
    write(0)  # an older batch: skipped too
    assert DeltaTable(uri).version() == 0
    assert DeltaTable(uri).transaction_version("landing") == 1  # delta-rs reads Spark's watermark
    write(2)
    assert spark.read.format("delta").load(uri).count() == 200
    assert DeltaTable(uri).transaction_version("landing") == 2


# -- tables the embedded engine writes ----------------------------------------------------------------
def test_delta_rs_tables_are_appended_by_spark_and_again_by_delta_rs(
    env: SparkEnv, settings_factory: Any
) -> None:
    spark = env.spark
    settings = settings_factory({"generator.events": 1000, "generator.event_files": 2})
    lake = Lake(settings)
    jobs.generate_events(lake, settings)
    jobs.bronze(lake, settings, new_run_id(), sources=("events",))
    jobs.silver(lake, settings, new_run_id())

    for name in ("bronze.events", "silver.events"):
        uri = lake.table_uri(name)
        before = lake.table(name)
        protocol_before = before.protocol()
        n = before.to_pyarrow_table().num_rows
        assert spark.read.format("delta").load(uri).count() == n, name

        # Spark appends rows of the table's own schema, with an app transaction
        sample = spark.read.format("delta").load(uri).limit(5)
        sample.write.format("delta").mode("append").option("txnAppId", f"spark-{name}").option(
            "txnVersion", 7
        ).save(uri)
        after_spark = lake.table(name)
        assert after_spark.to_pyarrow_table().num_rows == n + 5, name
        assert after_spark.transaction_version(f"spark-{name}") == 7
        assert after_spark.protocol() == protocol_before, f"{name}: Spark changed the protocol"

        # delta-rs appends again through the package's own writer, with its own watermark
        extra = after_spark.to_pyarrow_table().slice(0, 3)
        delta.append(lake, name, extra, app_id=f"rs-{name}", txn_version=3)
        final = lake.table(name)
        assert final.to_pyarrow_table().num_rows == n + 8, name
        assert spark.read.format("delta").load(uri).count() == n + 8, name
        con = lake.duckdb_with_delta()
        assert con.execute(f"SELECT count(*) FROM delta_scan('{uri}')").fetchone() == (n + 8,)

        # Spark honours delta-rs's app transaction: replaying its version 3 is skipped
        sample.write.format("delta").mode("append").option("txnAppId", f"rs-{name}").option(
            "txnVersion", 3
        ).save(uri)
        assert lake.table(name).version() == final.version(), name


# -- S3A ----------------------------------------------------------------------------------------------
def test_delta_on_s3a_against_seaweedfs(env: SparkEnv, s3_settings: Settings) -> None:
    spark = env.spark
    lake = Lake(s3_settings)
    uri = lake.table_uri("silver.s3_check")  # s3://bucket/prefix/silver/s3_check: the embedded engine's URI
    df = spark.createDataFrame([(i, f"v{i}") for i in range(300)], "id INT, v STRING")
    df.write.format("delta").save(uri)
    assert spark.read.format("delta").load(uri.replace("s3://", "s3a://", 1)).count() == 300

    table = lake.table("silver.s3_check")  # delta-rs over the same endpoint, conditional put
    assert rows(table.to_pyarrow_table(), "id", "v") == [(i, f"v{i}") for i in range(300)]
    write_deltalake(uri, pa.table({"id": pa.array([1000], pa.int32()), "v": ["rs"]}), mode="append",
                    storage_options=lake.storage_options)  # fmt: skip
    assert spark.read.format("delta").load(uri).count() == 301


# -- Structured Streaming from Apache Kafka -----------------------------------------------------------
@pytest.fixture(scope="module")
def kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApacheKafka]:
    plain = free_port()
    broker = ApacheKafka(
        base=tmp_path_factory.mktemp("state") / "apache-kafka",
        port=plain,
        sasl_port=free_port({plain}),
        topic="user-events",
        partitions=3,
    )
    try:
        broker.start()
    except JvmError as exc:
        pytest.skip(f"Apache Kafka cannot run here: {exc}")
    try:
        yield broker
    finally:
        broker.stop()


def test_structured_streaming_from_kafka_over_scram_tls_into_delta(
    env: SparkEnv, kafka: ApacheKafka, tmp_path: Path
) -> None:
    spark = env.spark
    creds = kafka.credentials()
    source = {
        "kafka.bootstrap.servers": kafka.sasl_bootstrap,
        "kafka.security.protocol": "SASL_SSL",
        "kafka.sasl.mechanism": "SCRAM-SHA-512",
        "kafka.sasl.jaas.config": (
            "org.apache.kafka.common.security.scram.ScramLoginModule required "
            f'username="{creds["username"]}" password="{creds["password"]}";'
        ),
        "kafka.ssl.truststore.type": "PEM",
        "kafka.ssl.truststore.location": str(kafka.ca_path),
        "subscribe": kafka.topic,
        "startingOffsets": "earliest",
    }
    uri, checkpoint = str(tmp_path / "bronze_events"), str(tmp_path / "checkpoint")

    def produce(first: int, count: int) -> None:
        producer = Producer({**kafka.client_config(sasl=True), "enable.idempotence": True})
        for i in range(first, first + count):
            producer.produce(kafka.topic, json.dumps({"event_id": str(i)}).encode(), key=str(i).encode())
        assert producer.flush(30) == 0

    def drain() -> None:
        stream = spark.readStream.format("kafka").options(**source).load()
        query = (
            stream.selectExpr(
                "topic", "partition", "offset", "CAST(key AS STRING) AS key", "value", "timestamp"
            )
            .writeStream.format("delta")
            .option("checkpointLocation", checkpoint)
            .trigger(availableNow=True)
            .start(uri)
        )
        assert query.awaitTermination(180), "the availableNow query did not finish"
        assert query.exception() is None

    produce(0, 300)
    drain()
    drain()  # nothing new: the checkpoint holds the offsets, the table gets no new rows
    produce(300, 200)
    drain()
    landed = DeltaTable(uri).to_pyarrow_table()
    keys = landed.column("key").to_pylist()
    assert sorted(keys, key=int) == [str(i) for i in range(500)]  # every record exactly once
    offsets = rows(landed, "partition", "offset")
    assert len(set(offsets)) == 500
    assert {p for p, _ in offsets} == {0, 1, 2}


# -- JDBC from PostgreSQL -----------------------------------------------------------------------------
def test_jdbc_read_from_postgres(env: SparkEnv, pg_conn: Any) -> None:
    with pg_conn.cursor() as cur:
        cur.execute(
            "CREATE TABLE orders (id BIGINT PRIMARY KEY, status TEXT, amount NUMERIC(12,2), updated_at TIMESTAMPTZ)"
        )
        cur.execute(
            "INSERT INTO orders SELECT g, CASE WHEN g % 3 = 0 THEN 'shipped' ELSE 'new' END, g * 1.25, "
            "TIMESTAMPTZ '2026-11-01 00:00:00+00' + g * INTERVAL '1 minute' FROM generate_series(1, 5000) g"
        )
        cur.execute("SELECT count(*), sum(amount), count(*) FILTER (WHERE status = 'shipped') FROM orders")
        count, total, shipped = cur.fetchone()
    pg_conn.commit()
    info = pg_conn.info
    df = (
        env.spark.read.format("jdbc")
        .option("url", f"jdbc:postgresql://{info.host}:{info.port}/{info.dbname}")
        .option("user", info.user)
        .option("dbtable", "public.orders")
        .option("partitionColumn", "id")
        .option("lowerBound", "1")
        .option("upperBound", "5000")
        .option("numPartitions", "2")
        .load()
    )
    assert df.rdd.getNumPartitions() == 2
    got = df.selectExpr(
        "count(*) AS n", "sum(amount) AS total", "count_if(status = 'shipped') AS shipped"
    ).collect()[0]
    assert (got.n, got.total, got.shipped) == (count, total, shipped)


# -- lineage, and the session's own settings ----------------------------------------------------------
def test_openlineage_listener_reports_delta_writes(env: SparkEnv, tmp_path: Path) -> None:
    """The listener jar of the bundle on this Spark: registered for this test only (it inspects
    every query plan, which the other tests need not pay for); build_session registers the same
    class through spark.extraListeners (see test_session_settings)."""
    sc = env.spark.sparkContext
    lineage = tmp_path / "openlineage.jsonl"
    conf = sc._jsc.sc().conf().clone()
    for key, value in openlineage_file_conf(lineage, "lakehouse-tests").items():
        conf.set(key, value)
    listener = sc._jvm.io.openlineage.spark.agent.OpenLineageSparkListener(conf)
    sc._jsc.sc().addSparkListener(listener)
    uri = str(tmp_path / "lineage_target")
    try:
        env.spark.range(10).write.format("delta").save(uri)
        deadline = time.monotonic() + 60
        events: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            if lineage.exists():
                events = [json.loads(line) for line in lineage.read_text().splitlines()]
                if any(e.get("eventType") == "COMPLETE" and e.get("outputs") for e in events):
                    break
            time.sleep(0.5)
    finally:
        sc._jsc.sc().removeSparkListener(listener)
    done = [e for e in events if e.get("eventType") == "COMPLETE" and e.get("outputs")]
    assert done, [e.get("eventType") for e in events]
    output = done[-1]["outputs"][0]
    assert output["namespace"] == "file" and uri.endswith(output["name"]), output
    assert done[-1]["job"]["namespace"] == "lakehouse-tests"


def test_session_settings(tmp_path: Path, settings_factory: Any) -> None:
    """What build_session asks for (no JVM needed): jars from the cache, Delta, S3A, event log, lineage."""
    from lakehouse.core.s3 import S3Credentials
    from lakehouse.core.spark import session_conf

    try:
        bundle = spark_bundle()
    except JvmError as exc:
        pytest.skip(f"no spark jar cache: {exc}")
    options = SparkOptions(
        event_log_dir=str(tmp_path / "events"),
        openlineage=openlineage_file_conf(tmp_path / "ol.jsonl", "ns"),
    )
    creds = S3Credentials("AKIA-TEST", "secret-test", "http://127.0.0.1:9000")
    conf = session_conf(settings_factory(), options, bundle, creds)
    assert conf["spark.jars"].split(",") == [str(j) for j in bundle.jars]
    assert all(Path(j).is_file() for j in conf["spark.jars"].split(","))
    assert conf["spark.sql.catalog.spark_catalog"] == "org.apache.spark.sql.delta.catalog.DeltaCatalog"
    assert (
        conf["spark.hadoop.fs.s3.impl"]
        == conf["spark.hadoop.fs.s3a.impl"]
        == "org.apache.hadoop.fs.s3a.S3AFileSystem"
    )
    assert conf["spark.hadoop.fs.s3a.endpoint"] == "http://127.0.0.1:9000"
    assert conf["spark.hadoop.fs.s3a.path.style.access"] == "true"
    assert conf["spark.hadoop.fs.s3a.connection.ssl.enabled"] == "false"
    assert (conf["spark.eventLog.enabled"], conf["spark.eventLog.dir"]) == ("true", str(tmp_path / "events"))
    assert conf["spark.extraListeners"] == "io.openlineage.spark.agent.OpenLineageSparkListener"
    assert conf["spark.openlineage.transport.type"] == "file"
    assert "spark.jars.packages" not in conf  # nothing from Ivy
    # the keys are redacted by Spark's default spark.redaction.regex, (?i)secret|password|token|access[.]key
    import re

    redacted = re.compile(r"(?i)secret|password|token|access[.]key")
    assert redacted.search("spark.hadoop.fs.s3a.access.key") and redacted.search(
        "spark.hadoop.fs.s3a.secret.key"
    )


def test_the_spark_images_defaults_agree_with_the_session_settings(
    tmp_path: Path, settings_factory: Any
) -> None:
    """spark-defaults.conf of the Spark image holds what a driver started by spark-submit needs
    before job code runs; each value it sets is the one build_session would set, and the jar
    bundle it puts on both classpaths is where the image's LAKEHOUSE_JVM_CACHE points."""
    from lakehouse.core.s3 import S3Credentials
    from lakehouse.core.spark import delta_conf, local_defaults, s3a_conf

    image = Path(__file__).resolve().parents[1] / "image" / "spark"
    defaults = dict(
        line.split(None, 1)
        for line in (image / "spark-defaults.conf").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    )
    session = {
        **local_defaults("local[2]", None),
        **delta_conf(),
        **s3a_conf(S3Credentials("k", "s", "http://127.0.0.1:9000")),
    }
    classpath = {"spark.driver.extraClassPath", "spark.executor.extraClassPath"}
    assert {k: v.strip() for k, v in defaults.items() if k not in classpath} == {
        k: session[k] for k in defaults if k not in classpath
    }
    cache = re.search(r"LAKEHOUSE_JVM_CACHE=(\S+)", (image / "Dockerfile").read_text())
    assert cache is not None
    assert {defaults[k].strip() for k in classpath} == {f"{cache.group(1)}/spark/*"}


def test_a_driver_started_by_spark_submit_keeps_the_submissions_master(
    tmp_path: Path, settings_factory: Any
) -> None:
    """A SparkApplication's driver is started by spark-submit with the cluster's master; the job's
    session must run there, not on the `local[2]` of the settings. Here spark-submit asks for
    local[1] and the settings say local[2]."""
    import subprocess
    import sys

    try:
        find_java()
        spark_bundle()
    except JvmError as exc:
        pytest.skip(f"Spark cannot run here: {exc}")
    settings = settings_factory()
    script = tmp_path / "job.py"
    script.write_text(
        "from lakehouse.core.settings import load_settings\n"
        "from lakehouse.core.spark import SparkOptions, build_session, launched_by_spark_submit\n"
        f"settings = load_settings('local', overrides={{'state_dir': {str(settings.state_path)!r}, "
        f"'lake_root': {str(tmp_path / 'lake')!r}}})\n"
        "spark = build_session(settings, SparkOptions(master='local[2]'))\n"
        "print('MASTER', launched_by_spark_submit(), spark.sparkContext.master)\n"
        "spark.range(3).count()\n"
        "spark.stop()\n"
    )
    submit = Path(sys.executable).parent / "spark-submit"
    proc = subprocess.run(
        [str(submit), "--master", "local[1]", "--driver-memory", "512m", str(script)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={**os.environ, "PYSPARK_PYTHON": sys.executable, "PYSPARK_DRIVER_PYTHON": sys.executable},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "MASTER True local[1]" in proc.stdout, proc.stdout[-2000:]


def test_spark_bundle_ships_no_jar_that_pyspark_has() -> None:
    import re

    import pyspark

    shipped = [p.name for p in (Path(pyspark.__file__).parent / "jars").glob("*.jar")]
    lock = json.loads((Path(__file__).resolve().parents[1] / "jvm" / "spark" / "jars.lock.json").read_text())
    artifacts = [j["coordinate"].split(":")[1] for j in lock["jars"]]
    assert len(artifacts) == 19
    clashes = [(a, n) for a in artifacts for n in shipped if re.match(re.escape(a) + r"-\d", n)]
    assert clashes == []
    assert {
        "delta-spark_4.1_2.13",
        "delta-storage",
        "hadoop-aws",
        "bundle",
        "spark-sql-kafka-0-10_2.13",
    } <= set(artifacts)


def test_session_is_tuned_for_this_machine(env: SparkEnv) -> None:
    conf = env.spark.sparkContext.getConf()
    assert conf.get("spark.master") == "local[2]"
    assert env.spark.conf.get("spark.sql.shuffle.partitions") == "4"
    assert env.spark.conf.get("spark.sql.adaptive.enabled") == "true"
    assert conf.get("spark.sql.extensions") == "io.delta.sql.DeltaSparkSessionExtension"
    assert "io.delta.delta-spark_4.1_2.13-4.3.1.jar" in conf.get("spark.jars")
    max_heap = env.spark.sparkContext._jvm.java.lang.Runtime.getRuntime().maxMemory()
    assert 1.5 * 2**30 < max_heap <= 2 * 2**30  # spark.driver.memory reached the JVM
    assert env.spark.conf.get("spark.databricks.delta.snapshotPartitions") == "4"


# -- bad input: one line naming the cause and the fix ------------------------------------------------------
def _fake_cache(real: Path, tmp_path: Path, edit: Any) -> Path:
    """A copy of the spark cache's lock with sparse files of the locked sizes (no real jars)."""
    lock = json.loads((real / "jars.lock.json").read_text())
    edit(lock)
    folder = tmp_path / "jvm" / "spark"
    folder.mkdir(parents=True)
    for jar in lock["jars"]:
        with open(folder / jar["file"], "wb") as fh:
            fh.truncate(jar["size"])
    (folder / "jars.lock.json").write_text(json.dumps(lock))
    return folder


def test_missing_jar_cache_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LAKEHOUSE_JVM_CACHE", str(tmp_path / "nowhere"))
    with pytest.raises(JvmError, match=r"^no spark jar cache at .*: run `make jars-spark`"):
        spark_bundle()


def test_version_mismatch_and_missing_jar_are_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    try:
        real = spark_bundle().folder
    except JvmError as exc:
        pytest.skip(f"no spark jar cache: {exc}")

    def older_spark(lock: dict[str, Any]) -> None:
        for jar in lock["jars"]:
            if jar["coordinate"].startswith("org.apache.spark:spark-sql-kafka"):
                jar["coordinate"] = jar["coordinate"].replace(":4.1.1", ":4.0.0")

    monkeypatch.setenv("LAKEHOUSE_ROOT", str(tmp_path))  # no repository lock to compare with
    monkeypatch.setenv("LAKEHOUSE_JVM_CACHE", str(_fake_cache(real, tmp_path / "a", older_spark).parent))
    with pytest.raises(
        JvmError, match=r"jar version mismatch: the spark jar cache is for Spark 4\.0\.0, pyspark is 4\.1\.1"
    ):
        spark_bundle()

    folder = _fake_cache(real, tmp_path / "b", lambda lock: None)
    next(folder.glob("org.postgresql.postgresql-*.jar")).unlink()
    monkeypatch.setenv("LAKEHOUSE_JVM_CACHE", str(folder.parent))
    with pytest.raises(
        JvmError, match=r"jar org\.postgresql\.postgresql-.*\.jar is missing from .*: run `make jars-spark`"
    ):
        spark_bundle()


def test_missing_java_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, settings_factory: Any
) -> None:
    monkeypatch.delenv("JAVA_HOME", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(JvmError, match=r"no `java` on PATH: install a Java 17 runtime"):
        build_session(settings_factory())
