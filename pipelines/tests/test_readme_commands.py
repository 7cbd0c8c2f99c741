"""The README's commands, run exactly as written, as a user on a fresh clone runs them.

A fresh state folder has no local services and no credentials: the local folder demo starts
PostgreSQL and the Apache Kafka broker itself, and the S3 one-liner must start the S3 server
before anything asks for them. The test's own configuration (LAKEHOUSE_CONFIG) only
moves the local services to free ports and keeps the data small; the command line is the
README's own.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from lakehouse.core import s3
from lakehouse.core.settings import Settings, load_settings
from lakehouse.core.storage import Lake
from lakehouse.services import known_services
from local_config import user_env, write_local_config
from test_dev_shaped_run import DevPlatform, broker, dev_platform  # noqa: F401 (fixtures)

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"


def readme_command(pattern: str) -> str:
    """The one line of a ```bash block of the README that matches `pattern`, without its comment."""
    blocks = re.findall(r"```bash\n(.*?)```", README.read_text(), flags=re.S)
    lines = [ln.split("#", 1)[0].strip() for b in blocks for ln in b.splitlines()]
    found = sorted({ln for ln in lines if re.search(pattern, ln)})  # one command, maybe shown twice
    assert len(found) == 1, f"README: {len(found)} commands match {pattern!r}: {found}"
    return found[0]


def small_config(base: Path) -> Path:
    """The local settings with free ports, a fresh state folder and small data; the lake is the command's."""
    small = {"events": 2000, "event_files": 2, "customers": 200, "orders": 1000, "users": 300}
    return write_local_config(base, small, lake=False)[0]


def shell_env(config: Path) -> dict[str, str]:
    """This shell's environment without any lakehouse, AWS or make setting, plus the test's config."""
    return user_env(config, ("LAKEHOUSE_", "AWS_", "MAKE"), root=False, COLUMNS="120")


def settings_for(config: Path, lake_root: str) -> Settings:
    old = {k: os.environ.get(k) for k in ("LAKEHOUSE_CONFIG", "LAKEHOUSE_LAKE_ROOT")}
    os.environ.update(LAKEHOUSE_CONFIG=str(config), LAKEHOUSE_LAKE_ROOT=lake_root)
    try:
        return load_settings("local")
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def run_shell(command: str, env: dict[str, str]) -> str:
    proc = subprocess.run(
        ["bash", "-c", command], cwd=REPO, env=env, capture_output=True, text=True, timeout=1200
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    assert "Traceback" not in out, out[-4000:]
    return out


@pytest.fixture
def fresh(tmp_path: Path) -> Iterator[Path]:
    config = small_config(tmp_path)
    try:
        yield config
    finally:
        settings = settings_for(config, "s3://lakehouse/dev")
        for service in reversed(known_services(settings)):
            service.stop()


def test_s3_one_liner_on_a_fresh_state_folder(fresh: Path) -> None:
    command = readme_command(r"LAKEHOUSE_LAKE_ROOT=s3://\S+ make demo")
    lake_root = re.search(r"LAKEHOUSE_LAKE_ROOT=(\S+)", command).group(1)  # type: ignore[union-attr]
    settings = settings_for(fresh, lake_root)
    assert not (settings.state_path / "seaweedfs").exists()  # nothing started, no credentials yet

    out = run_shell(command, shell_env(fresh))
    assert "every run's counts add up" in out
    assert f"lake: {lake_root}" in out

    # the tables are in the bucket the README names, read back through the store itself
    lake = Lake(settings)
    assert lake.missing() is None
    bucket, _, prefix = lake_root.removeprefix("s3://").partition("/")
    client = s3.client(lake._creds)  # type: ignore[arg-type]
    keys = {
        o["Key"]
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=f"{prefix}/")
        for o in page.get("Contents", [])
    }
    for table in ("bronze/events", "silver/events", "gold/agg_purchases_per_page_daily"):
        assert any(k.startswith(f"{prefix}/{table}/_delta_log/") for k in keys), table
    assert int(lake.table("silver.events").count()) > 0


def test_local_folder_demo_on_a_fresh_state_folder(tmp_path: Path) -> None:
    """`make demo` as the README's first command gives it: the lake is a folder (here the test's
    own, through the configuration), the services start on a fresh state folder, the Apache Kafka
    broker among them, and every table reaches the folder."""
    command = readme_command(r"^make demo$")
    small = {"events": 2000, "event_files": 2, "customers": 200, "orders": 1000, "users": 300}
    config = write_local_config(tmp_path, small)[0]  # the lake: tmp_path / "lake"
    settings = settings_for(config, str(tmp_path / "lake"))
    try:
        out = run_shell(command, shell_env(config))
        assert "every run's counts add up" in out
        assert f"lake: {tmp_path / 'lake'}" in out
        running = {s.name for s in known_services(settings) if s.status().running}
        assert {"postgres", "apache-kafka"} <= running, running
        lake = Lake(settings)
        for table in ("bronze.events", "silver.events", "gold.agg_purchases_per_page_daily"):
            assert (tmp_path / "lake" / table.replace(".", "/") / "_delta_log").is_dir(), table
        assert int(lake.table("silver.events").count()) > 0
    finally:
        for service in reversed(known_services(settings)):
            service.stop()


def test_dev_command_on_dev_settings_made_by_the_platforms_tasks(dev_platform: DevPlatform) -> None:  # noqa: F811
    """The README's dev command, exactly as written, with the variables it lists pointing dev's own
    settings file at loopback services that the platform's tasks made into dev (buckets, layer
    users and keys, databases, roles, the Kafka user): bronze and silver land in dev's buckets,
    every landing line and source row once (`lakehouse check sources`)."""
    from test_dev_shaped_run import generate, lakehouse, settings_of

    command = readme_command(r"lakehouse run --env dev")
    env = dev_platform.env
    generate(env, "source")
    generate(env, "events")
    run_shell(command, env)

    settings = settings_of(env)
    lake = Lake(settings)
    assert int(lake.table("silver.events").count()) > 0
    results = json.loads(lakehouse(env, "check", "sources", "--json").stdout)
    assert results and all(r["ok"] for r in results), results
    landing = [r for r in results if r["check_name"] == "landing_lines"]
    assert landing and landing[0]["expected"] == landing[0]["found"] == int(
        lake.table("bronze.events").count()
    )
    assert any(r["source"].startswith("postgres:") and r["found"] > 0 for r in results), results
    admin = s3.client(dev_platform.admin)
    for layer in ("bronze", "silver"):
        bucket, _, prefix = settings.layers[layer].root.removeprefix("s3://").partition("/")
        pages = admin.get_paginator("list_objects_v2").paginate(
            Bucket=bucket, Prefix=f"{prefix}/events/_delta_log/"
        )
        assert any(page.get("Contents") for page in pages), layer
