"""The Spark image, run: `spark-submit` in the container (the way a Spark Operator driver starts a
job, in local mode here) runs `lakehouse spark bronze` and `lakehouse spark silver` on the same
landing files and PostgreSQL extracts as the host's embedded run, against the loopback services,
and writes the same tables.

Run by `make test-image-spark` (after `make image-spark`), with the session services of
tests/conftest.py:
    pytest -p tests.conftest image/spark/test_spark_image.py
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
import yaml
from tests.test_spark_jobs import assert_same_tables, duck

from lakehouse.app import jobs
from lakehouse.core import ownership
from lakehouse.core.reconcile import new_run_id
from lakehouse.core.storage import Lake
from lakehouse.services import LocalPostgres
from lakehouse.silver import current_state, scd2

REPO = Path(__file__).resolve().parents[3]
IMAGE = os.environ.get("LAKEHOUSE_SPARK_IMAGE_UNDER_TEST", "")
ENV = {**os.environ, "CONTAINERS_CONF": str(REPO / "tests/ansible/containers.conf")}

# stamped by each run: the same rows, told apart by when and in which run they came
RUN_COLUMNS = {"_run_id", "_bronze_batch_id", "_extracted_at"}


def podman(*args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["podman", *args], env=ENV, capture_output=True, text=True, timeout=timeout, check=False
    )


@pytest.fixture(scope="module")
def image() -> str:
    if not IMAGE:
        pytest.fail("LAKEHOUSE_SPARK_IMAGE_UNDER_TEST is not set: run `make test-image-spark`")
    assert podman("image", "exists", IMAGE).returncode == 0, f"no image {IMAGE}: `make image-spark` first"
    return IMAGE


def test_the_spark_image_runs_as_the_pipeline_user_with_java_spark_and_the_verified_jars(image: str) -> None:
    inspect = podman("image", "inspect", "--format", "{{.Config.User}} {{json .Config.Entrypoint}}", image)
    assert inspect.stdout.strip() == '10001:10001 ["/opt/entrypoint.sh"]'
    # the bundle is checked in the container as on the host: every jar of the lock with its size,
    # the Spark line delta-spark is built for, the Hadoop that hadoop-aws must match
    check = podman(
        "run", "--rm", image, "python", "-c",
        "from lakehouse.core.jvm import find_java; from lakehouse.core.spark import spark_bundle; "
        "b = spark_bundle(); print(find_java().major, len(b.jars), b.version('org.apache.hadoop:hadoop-aws'))",
    )  # fmt: skip
    assert check.returncode == 0, check.stderr[-2000:]
    lock = json.loads((REPO / "pipelines/jvm/spark/jars.lock.json").read_text())
    major, jars, hadoop_aws = check.stdout.split()
    assert (int(major), int(jars)) == (17, len(lock["jars"]))
    spark_jars = podman("run", "--rm", image, "sh", "-c", "ls /opt/spark/jars | grep hadoop-client-api")
    assert spark_jars.stdout.strip() == f"hadoop-client-api-{hadoop_aws}.jar"
    version = podman("run", "--rm", image, "spark-submit", "--version")
    assert version.returncode == 0 and "version 4.1.1" in version.stdout + version.stderr


def test_spark_submit_in_the_container_writes_what_the_host_writes(
    image: str, settings_factory: Any, pg_service: LocalPostgres, tmp_path: Path
) -> None:
    work = tmp_path / "container"
    work.mkdir()
    work.chmod(0o777)
    small = {"generator.events": 1500, "generator.event_files": 2, "generator.customers": 200,
             "generator.orders": 400, "generator.users": 300, "generator.products": 40}  # fmt: skip
    host = settings_factory(small)
    jobs.generate_source(host)
    host_lake = Lake(host)
    jobs.generate_events(host_lake, host)
    shutil.copytree(Path(host.lake_uri) / "landing", work / "lake" / "landing")
    # the PostgreSQL extracts come from the embedded engine in both lakes (Spark has no JDBC
    # extract); landing -> bronze.events and everything in silver run in the container
    theirs = Lake(settings_factory({**small, "lake_root": str(work / "lake")}))
    jobs.bronze(theirs, theirs.settings, new_run_id(), sources=("postgres",))
    jobs.bronze(host_lake, host, new_run_id())
    jobs.silver(host_lake, host, new_run_id())
    for path in (work / "lake").rglob("*"):
        path.chmod(0o777 if path.is_dir() else 0o666)
    (work / "lake").chmod(0o777)

    config = yaml.safe_load((REPO / "environments/local/pipeline.yaml").read_text())
    config.update(lake_root=str(work / "lake"), state_dir="/tmp/lakehouse-state")
    config["postgres"]["port"] = host.postgres.port
    config["postgres"]["source_db"] = host.postgres.source_db
    for key, value in small.items():
        config["generator"][key.split(".")[1]] = value
    (work / "pipeline.yaml").write_text(yaml.safe_dump(config))
    (work / "pipeline.yaml").chmod(0o644)
    for step in ("bronze", "silver"):
        proc = podman(
            "run", "--rm", "--network", "host", "-v", f"{work}:{work}",
            "-e", f"LAKEHOUSE_CONFIG={work / 'pipeline.yaml'}", image,
            "spark-submit", "--master", "local[2]", "--driver-memory", "1g",
            "/opt/spark/work-dir/lakehouse_main.py", "spark", step,
        )  # fmt: skip
        out = proc.stdout + proc.stderr
        assert proc.returncode == 0, out[-3000:]
        assert "Traceback" not in out

    container_lake = Lake(settings_factory({**small, "lake_root": str(work / "lake")}))
    assert_same_tables(host_lake, container_lake)
    merged = [*(d.table for d in scd2.DIMENSIONS), *(t.table for t in current_state.TABLES)]
    for table in ("bronze.events", "silver.events", *merged):
        assert ownership.owner(container_lake, table) == ownership.SPARK, table
    for table in merged:
        columns = ", ".join(
            f.name for f in pa.schema(host_lake.table(table).schema()) if f.name not in RUN_COLUMNS
        )
        assert duck(host_lake, table, columns) == duck(container_lake, table, columns), table
