"""The pipeline image, run: its `lakehouse` ingests and refines the same landing files and the
same PostgreSQL source as the host's package, against the loopback services (the container
shares the host's network), and writes the same tables.

Run by `make test-image` (after `make image`), with the session services of tests/conftest.py:
    pytest -p tests.conftest image/test_image.py
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from lakehouse.app import jobs
from lakehouse.core.reconcile import new_run_id
from lakehouse.core.storage import Lake
from lakehouse.services import LocalPostgres

REPO = Path(__file__).resolve().parents[2]
IMAGE = os.environ.get("LAKEHOUSE_IMAGE_UNDER_TEST", "")
PODMAN = ["podman"]
ENV = {**os.environ, "CONTAINERS_CONF": str(REPO / "tests/ansible/containers.conf")}
# columns a run stamps with its own time or id: the same rows, told apart by when they came
RUN_COLUMNS = {
    "ingestion_time", "batch_id", "_ingestion_time", "_batch_id", "_bronze_batch_id", "_extracted_at",
    "_run_id", "run_id", "quarantined_at",
}  # fmt: skip


def podman(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*PODMAN, *args], env=ENV, capture_output=True, text=True, timeout=timeout, check=False
    )


@pytest.fixture(scope="module")
def image() -> str:
    if not IMAGE:
        pytest.fail("LAKEHOUSE_IMAGE_UNDER_TEST is not set: run `make test-image`")
    assert podman("image", "exists", IMAGE).returncode == 0, f"no image {IMAGE}: `make image` first"
    return IMAGE


def rows(lake: Lake, table: str) -> list[tuple[Any, ...]]:
    data = lake.table(table).to_pyarrow_table()
    keep = [c for c in data.column_names if c not in RUN_COLUMNS]
    return sorted(tuple(str(v) for v in r.values()) for r in data.select(keep).to_pylist())


def test_the_image_runs_as_a_non_root_user_with_the_cli_as_entry_point(image: str) -> None:
    inspect = podman("image", "inspect", "--format", "{{.Config.User}} {{json .Config.Entrypoint}}", image)
    assert inspect.stdout.strip() == '10001:10001 ["lakehouse"]'
    help_ = podman("run", "--rm", image, "--help")
    assert help_.returncode == 0 and "bronze" in help_.stdout
    dbt = podman("run", "--rm", "--entrypoint", "/app/.venv-dbt/bin/dbt", image, "--version")
    assert dbt.returncode == 0 and "duckdb" in dbt.stdout and "postgres" in dbt.stdout, (
        dbt.stdout + dbt.stderr
    )


def test_bronze_and_silver_in_the_container_write_what_the_host_writes(
    image: str, settings_factory: Any, pg_service: LocalPostgres, tmp_path: Path
) -> None:
    work = tmp_path / "container"
    work.mkdir()
    work.chmod(0o777)
    small = {"generator.events": 2000, "generator.event_files": 2, "generator.customers": 200,
             "generator.orders": 500, "generator.users": 300, "generator.products": 50}  # fmt: skip
    host = settings_factory(small)
    jobs.generate_source(host)
    host_lake = Lake(host)
    jobs.generate_events(host_lake, host)
    # the container's lake starts with the same landing files
    shutil.copytree(Path(host.lake_uri) / "landing", work / "lake" / "landing")
    for path in (work / "lake").rglob("*"):
        path.chmod(0o777 if path.is_dir() else 0o666)
    (work / "lake").chmod(0o777)
    jobs.bronze(host_lake, host, new_run_id())
    jobs.silver(host_lake, host, new_run_id())

    config = yaml.safe_load((REPO / "environments/local/pipeline.yaml").read_text())
    config.update(lake_root=str(work / "lake"), state_dir="/tmp/lakehouse-state")
    config["postgres"]["port"] = host.postgres.port
    for key, value in small.items():
        config["generator"][key.split(".")[1]] = value
    (work / "pipeline.yaml").write_text(yaml.safe_dump(config))
    (work / "pipeline.yaml").chmod(0o644)
    for command in ("bronze", "silver"):
        proc = podman(
            "run", "--rm", "--network", "host",
            "-v", f"{work}:{work}", "-e", f"LAKEHOUSE_CONFIG={work / 'pipeline.yaml'}",
            image, command,
        )  # fmt: skip
        out = proc.stdout + proc.stderr
        assert proc.returncode == 0, out[-3000:]
        assert "Traceback" not in out

    other = settings_factory({**small, "lake_root": str(work / "lake")})
    container_lake = Lake(other)
    tables = ["bronze.events", "silver.events", "silver.orders", "silver.order_items", "silver.dim_customer",
              "silver.dim_product", "silver.quarantine_events"]  # fmt: skip
    for table in tables:
        assert container_lake.exists(table), f"the container wrote no {table}"
        assert rows(container_lake, table) == rows(host_lake, table), table
