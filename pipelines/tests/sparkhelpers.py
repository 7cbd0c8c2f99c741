"""One local SparkSession (local[2], delta-spark) for a test module, and the copy of landing files
between lakes the Spark tests compare."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from lakehouse.core.jvm import JvmError, find_java
from lakehouse.core.spark import SparkOptions, build_session, spark_bundle, stop_session
from lakehouse.core.storage import Lake


def spark_session(settings_factory: Any, app_name: str) -> Iterator[Any]:
    """A module fixture's body: skips when Java or the jar bundle is missing; a JVM another module
    left running is set aside and given back afterwards."""
    try:
        find_java()
        spark_bundle()
    except JvmError as exc:
        pytest.skip(f"Spark cannot run here: {exc}")
    from pyspark import SparkContext

    saved = None
    if SparkContext._jvm is not None:  # another module's JVM: set aside, given back afterwards
        from pyspark.sql import SparkSession

        active = SparkSession.getActiveSession()
        if active is not None:
            active.stop()
        saved = (SparkContext._gateway, SparkContext._jvm)
        SparkContext._gateway = SparkContext._jvm = None
    options = SparkOptions(
        app_name=app_name,
        conf={"spark.driver.extraJavaOptions": "-XX:TieredStopAtLevel=1"},
    )
    session = build_session(settings_factory(), options)
    try:
        yield session
    finally:
        stop_session(session)
        if saved is not None:
            SparkContext._gateway, SparkContext._jvm = saved


def copy_landing(source: Lake, target: Lake) -> None:
    """landing/events of `source`, file for file, into `target` (local lakes)."""
    _, src = source.landing("events")
    _, dst = target.landing("events")
    for path in sorted(Path(src).rglob("*")):
        if path.is_file():
            out = Path(dst) / path.relative_to(src)
            out.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, out)


def duck(lake: Lake, table: str, columns: str, tail: str = "") -> list[tuple[Any, ...]]:
    """The rows of `table` through DuckDB's delta_scan (an independent reader), sorted."""
    con = lake.duckdb_with_delta()
    try:
        result = con.execute(f"SELECT {columns} FROM delta_scan('{lake.table_uri(table)}') {tail}").arrow()
        table_ = result.read_all() if isinstance(result, pa.RecordBatchReader) else result
    finally:
        con.close()
    return sorted((tuple(r.values()) for r in table_.to_pylist()), key=repr)
