"""A SparkSession with delta-spark, S3A, the Kafka source, JDBC and OpenLineage, from the `spark`
jar bundle (`make jars-spark`): local[N] on this machine, the cluster's master when given.

Nothing is downloaded at session start: the jars come from the verified cache
(lakehouse.core.jvm), never from Ivy. Before the JVM starts, the bundle is checked against the
installed pyspark (Spark version, the Spark line delta-spark is built for, the Hadoop version
hadoop-aws must match) and a Java 17+ runtime is located; any mismatch stops with one line that
names the cause and the fix.

S3: tables are addressed as `s3://bucket/...` (as the embedded engine does) or `s3a://...`; both
schemes go through S3A, path-style, against the endpoint of the credentials
(lakehouse.storage.s3_credentials: the environment, else the local SeaweedFS of this project).
Keys reach Hadoop's configuration only, which Spark redacts in its UI and event log
(`spark.redaction.regex`); nothing is written into code or files.

Tuned for the 2-core, 24 GiB machines this runs on (see `local_defaults`): shuffle partitions at
twice the cores, adaptive execution coalescing small partitions, 2 GiB of driver heap, the UI off.
Spark keeps one session per process: a second call returns the running session, whose static
settings (jars, memory, master) cannot change.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from lakehouse.core.jvm import Bundle, JvmError, find_java, load_bundle
from lakehouse.core.settings import Settings

if TYPE_CHECKING:  # pragma: no cover
    from pyspark.sql import SparkSession

    from lakehouse.core.s3 import S3Credentials

SCALA = "2.13"
FIX = "run `make jars-spark`"


@dataclass(frozen=True)
class SparkOptions:
    """How to build the session; every field has a default that suits a laptop run."""

    master: str = "local[2]"
    app_name: str = "lakehouse"
    driver_memory: str = "2g"
    shuffle_partitions: int | None = None  # None: twice the cores of a local master, else 200
    event_log_dir: str | None = None  # a folder or s3:// URI; None = no event log
    ui: bool = False
    openlineage: dict[str, str] | None = None  # spark.openlineage.* settings; None = no listener
    conf: dict[str, str] = field(default_factory=dict)  # anything else, applied last


def _pyspark_version() -> tuple[str, Path]:
    try:
        import pyspark
    except ModuleNotFoundError:
        raise JvmError(
            "pyspark is not installed: install the package with its dev extra (`make setup`)"
        ) from None
    jars = Path(pyspark.__file__).parent / "jars"
    if not jars.is_dir() and os.environ.get("SPARK_HOME"):
        # a Spark distribution (the Spark image): pyspark in $SPARK_HOME/python, jars beside it
        jars = Path(os.environ["SPARK_HOME"]) / "jars"
    return pyspark.__version__, jars


def spark_bundle() -> Bundle:
    """The `spark` bundle, checked against the installed pyspark."""
    version, pyspark_jars = _pyspark_version()
    bundle = load_bundle("spark")
    fix = (
        "align pipelines/jvm/spark/pom.xml with the pyspark pin in pipelines/pyproject.toml, "
        "then `make jvm-lock jars-spark`"
    )
    kafka = bundle.version(f"org.apache.spark:spark-sql-kafka-0-10_{SCALA}")
    if kafka != version:
        raise JvmError(
            f"jar version mismatch: the spark jar cache is for Spark {kafka}, pyspark is {version}: {fix}"
        )
    line = ".".join(version.split(".")[:2])
    delta = [ga for ga in bundle.versions if ga.startswith("io.delta:delta-spark_")]
    if delta != [f"io.delta:delta-spark_{line}_{SCALA}"]:
        found = ", ".join(delta) or "no delta-spark jar"
        raise JvmError(
            f"jar version mismatch: pyspark {version} needs delta-spark_{line}_{SCALA}, the cache has {found}: {fix}"
        )
    hadoop = sorted(
        p.name.removeprefix("hadoop-client-api-").removesuffix(".jar")
        for p in pyspark_jars.glob("hadoop-client-api-*.jar")
    )
    aws = bundle.version("org.apache.hadoop:hadoop-aws")
    if hadoop and [aws] != hadoop:
        raise JvmError(
            f"jar version mismatch: hadoop-aws {aws} in the spark jar cache, pyspark ships Hadoop {hadoop[0]}: {fix}"
        )
    return bundle


def local_defaults(master: str, shuffle_partitions: int | None) -> dict[str, str]:
    cores = _local_cores(master)
    partitions = shuffle_partitions or (2 * cores if cores else 200)
    return {
        "spark.sql.shuffle.partitions": str(partitions),
        "spark.sql.adaptive.enabled": "true",
        "spark.sql.adaptive.coalescePartitions.enabled": "true",
        "spark.sql.adaptive.advisoryPartitionSizeInBytes": "64m",
        "spark.default.parallelism": str(partitions),
        # Delta rebuilds a table's state from its log in this many tasks (default 50): for the
        # tables of one machine, as many as the shuffle
        "spark.databricks.delta.snapshotPartitions": str(partitions),
        # same instants and overflow behaviour as the embedded engine (DuckDB runs in UTC, raises)
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.ansi.enabled": "true",
        "spark.sql.execution.arrow.pyspark.enabled": "true",
        "spark.ui.showConsoleProgress": "false",
        # Inputs built from Arrow tables (the silver lookups) are LocalRelations; this rule would
        # run whole queries over them on the driver, interpreted, at planning time
        "spark.sql.optimizer.excludedRules": "org.apache.spark.sql.catalyst.optimizer.ConvertToLocalRelation",
    }


def _local_cores(master: str) -> int | None:
    if not master.startswith("local"):
        return None
    inside = master.partition("[")[2].partition("]")[0].split(",")[0]
    if inside in ("", "*"):
        return os.cpu_count() or 1
    return int(inside) if inside.isdigit() else None


def delta_conf() -> dict[str, str]:
    return {
        "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
        "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
    }


def s3a_conf(creds: S3Credentials | None, buckets: dict[str, S3Credentials] | None = None) -> dict[str, str]:
    """Hadoop S3A settings for an S3-compatible endpoint (path-style), for s3:// and s3a:// paths:
    `creds` for every bucket, and each of `buckets` with its own key pair and endpoint (S3A's
    per-bucket settings), as a lake whose layers have users of their own needs."""
    conf = {
        "spark.hadoop.fs.s3.impl": "org.apache.hadoop.fs.s3a.S3AFileSystem",
        "spark.hadoop.fs.s3a.impl": "org.apache.hadoop.fs.s3a.S3AFileSystem",
        "spark.hadoop.fs.s3a.path.style.access": "true",
        "spark.hadoop.fs.s3a.aws.credentials.provider": "org.apache.hadoop.fs.s3a.SimpleAWSCredentialsProvider",
        # a dead endpoint fails in seconds, not after S3A's default minutes of retries
        "spark.hadoop.fs.s3a.attempts.maximum": "3",
        "spark.hadoop.fs.s3a.retry.limit": "3",
        "spark.hadoop.fs.s3a.connection.establish.timeout": "5s",
    }
    if creds is not None:
        conf.update(_s3a_keys("spark.hadoop.fs.s3a.", creds))
    for bucket, own in sorted((buckets or {}).items()):
        conf.update(_s3a_keys(f"spark.hadoop.fs.s3a.bucket.{bucket}.", own))
    return conf


def _s3a_keys(prefix: str, creds: S3Credentials) -> dict[str, str]:
    conf = {
        f"{prefix}endpoint.region": creds.region,
        f"{prefix}access.key": creds.access_key,
        f"{prefix}secret.key": creds.secret_key,
    }
    if creds.endpoint:
        conf[f"{prefix}endpoint"] = creds.endpoint
        conf[f"{prefix}connection.ssl.enabled"] = "true" if creds.use_ssl else "false"
    return conf


def openlineage_file_conf(path: Path, namespace: str) -> dict[str, str]:
    """OpenLineage listener settings that append every event as one JSON line to `path`."""
    return {
        "spark.openlineage.transport.type": "file",
        "spark.openlineage.transport.location": str(path),
        "spark.openlineage.namespace": namespace,
    }


def session_conf(
    settings: Settings,
    options: SparkOptions,
    bundle: Bundle,
    s3: S3Credentials | None,
    buckets: dict[str, S3Credentials] | None = None,
) -> dict[str, str]:
    """Every setting the session is built with (exposed for tests and the cluster's spark-defaults)."""
    work = settings.state_path / "spark"
    jars = ",".join(str(j) for j in bundle.jars)
    conf: dict[str, str] = {
        "spark.jars": jars,
        # local mode: the jars on the driver's own classpath, so Hadoop and JDBC find their classes
        "spark.driver.extraClassPath": bundle.classpath,
        "spark.driver.memory": options.driver_memory,
        "spark.local.dir": str(work / "local"),
        "spark.sql.warehouse.dir": str(work / "warehouse"),
        "spark.ui.enabled": "true" if options.ui else "false",
        **local_defaults(options.master, options.shuffle_partitions),
        **delta_conf(),
    }
    if s3 is not None or buckets:
        conf.update(s3a_conf(s3, buckets))
    if options.event_log_dir:
        conf["spark.eventLog.enabled"] = "true"
        conf["spark.eventLog.dir"] = options.event_log_dir
    if options.openlineage:
        conf["spark.extraListeners"] = "io.openlineage.spark.agent.OpenLineageSparkListener"
        conf.update(
            {
                k if k.startswith("spark.") else f"spark.openlineage.{k}": v
                for k, v in options.openlineage.items()
            }
        )
    conf.update(options.conf)
    return conf


def launched_by_spark_submit() -> bool:
    """True in a driver that `spark-submit` started (the Spark image's SparkApplications): its JVM
    already runs with the master and resources the submission chose, which the session keeps."""
    return bool(os.environ.get("PYSPARK_GATEWAY_PORT"))


def build_session(
    settings: Settings, options: SparkOptions | None = None, *, s3: S3Credentials | None = None
) -> SparkSession:
    """The SparkSession for `settings`: the spark bundle's jars, Delta's SQL extension and catalog,
    S3A when the lake is on S3 (or `s3` is given), tuned for this machine unless `options` say otherwise."""
    options = options or SparkOptions()
    find_java()
    bundle = spark_bundle()
    buckets: dict[str, S3Credentials] = {}
    if s3 is None and settings.is_s3:
        from lakehouse.core.storage import Lake

        # each bucket with the key pair of the locations in it: on a cluster every layer has a
        # user of its own and the lake no default key
        lake = Lake(settings, create=False)
        s3, buckets = lake.default_credentials, lake.bucket_credentials()
    conf = session_conf(settings, options, bundle, s3, buckets)
    if options.event_log_dir:
        _event_log_folder(options.event_log_dir, s3, buckets)
    Path(conf["spark.local.dir"]).mkdir(parents=True, exist_ok=True)

    from pyspark import SparkContext
    from pyspark.errors import PySparkException
    from pyspark.sql import SparkSession

    if SparkContext._jvm is not None:
        classpath = str(SparkContext._jvm.java.lang.System.getProperty("java.class.path"))
        if str(bundle.jars[0]) not in classpath:
            raise JvmError(
                "a Spark JVM without the spark jar bundle already runs in this process (a session built "
                "elsewhere): stop it with lakehouse.core.spark.stop_session() first"
            )
    if options.master.startswith("local"):
        # pyspark starts its Python workers with $PYSPARK_PYTHON (else `python3` from PATH): on a
        # local master they must be this interpreter, which has the `lakehouse` package
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    builder = SparkSession.builder.appName(options.app_name)
    if not launched_by_spark_submit():
        builder = builder.master(options.master)
    for key, value in conf.items():
        builder = builder.config(key, value)
    try:
        spark = builder.getOrCreate()
    except PySparkException as exc:
        raise JvmError(f"Spark did not start: {str(exc).splitlines()[0]}") from None
    spark.sparkContext.setLogLevel("WARN")
    return spark


def _event_log_folder(uri: str, s3: S3Credentials | None, buckets: dict[str, S3Credentials]) -> None:
    """Make the event log's folder: Spark refuses to start when it is not a directory, and on S3
    a prefix with no object is none (S3A takes an empty `<prefix>/` object for a directory)."""
    if "://" not in uri:
        Path(uri).mkdir(parents=True, exist_ok=True)
        return
    from lakehouse.core import s3 as s3_client

    scheme, _, rest = uri.partition("://")
    bucket, _, prefix = rest.partition("/")
    creds = buckets.get(bucket, s3)
    if scheme not in ("s3", "s3a") or creds is None:
        raise JvmError(
            f"engines.spark_event_log = {uri!r}: an s3:// location of the lake's store, or a folder"
        )
    marker = prefix.strip("/") + "/" if prefix.strip("/") else ""
    if marker:
        try:
            client = s3_client.client(creds)
            if not client.list_objects_v2(Bucket=bucket, Prefix=marker, MaxKeys=1).get("KeyCount"):
                client.put_object(Bucket=bucket, Key=marker, Body=b"")
        except Exception as exc:  # any S3 failure: the same one line, before the JVM starts
            raise JvmError(f"engines.spark_event_log = {uri!r}: cannot write there ({exc})") from None


def stop_session(spark: SparkSession | None = None, timeout: float = 60) -> None:
    """Stop the session (the active one when none is given) and the JVM behind it, so its memory
    is returned and the next build_session starts a JVM with the settings of that call."""
    from pyspark import SparkContext
    from pyspark.sql import SparkSession

    spark = spark or SparkSession.getActiveSession()
    if spark is not None:
        spark.stop()
    gateway = SparkContext._gateway
    if gateway is None:
        return
    proc = getattr(gateway, "proc", None)  # the JVM pyspark launched (absent when attached to one)
    gateway.shutdown()
    SparkContext._gateway = None
    SparkContext._jvm = None
    if proc is not None:
        if proc.stdin is not None:
            proc.stdin.close()  # pyspark's gateway server exits when its stdin closes
        try:
            proc.wait(timeout)
        except Exception:
            proc.kill()
            proc.wait(10)
