"""Defect 13: PostgreSQL backups that protect data, restored for real.

CloudNativePG archives WAL and takes base backups with barman-cloud (its barmanObjectStore stanza)
and recovers with barman-cloud-restore and barman-cloud-wal-restore. This test runs the same
barman-cloud tools (PyPI barman[cloud]) against a throwaway PostgreSQL 15 and a local SeaweedFS,
with the destination path, server name and compression the platform role renders for prod:
base backup, more rows, a disaster (DROP TABLE), then a point-in-time restore to just before the
disaster into a new data folder, and the rows must be identical."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from ansible_helpers import ROLES_DIR, VENV_BIN, tool_env
from playbook_runs import cached_run

PG_BIN = Path("/usr/lib/postgresql/15/bin")
SEAWEEDFS = ROLES_DIR / "buckets/molecule/default/seaweedfs.py"

pytestmark = pytest.mark.skipif(not (PG_BIN / "pg_ctl").exists(), reason="PostgreSQL 15 server binaries not installed")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def psql(port: int, sql: str) -> str:
    return subprocess.run(["psql", "-h", "127.0.0.1", "-p", str(port),
                           "-U", "postgres", "-d", "postgres", "-Atc", sql],
                          check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture
def seaweedfs(tmp_path):
    state = tmp_path / "seaweedfs"
    subprocess.run([str(VENV_BIN / "python"), str(SEAWEEDFS), "start", str(state)], env=tool_env(), check=True,
                   capture_output=True, timeout=120)
    try:
        yield json.loads((state / "endpoint.json").read_text())
    finally:
        subprocess.run([str(VENV_BIN / "python"), str(SEAWEEDFS), "stop", str(state)], env=tool_env(), check=False)


def as_server_user(args: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: as root, run its tools as the `postgres` OS user (the
    Debian package creates it), as the pipelines' local PostgreSQL service does."""
    return ["runuser", "-u", "postgres", "--", *args] if os.geteuid() == 0 else args


def hand_over(path: Path) -> None:
    if os.geteuid() == 0:
        shutil.chown(path, "postgres", "postgres")
        for child in path.rglob("*"):
            shutil.chown(child, "postgres", "postgres")


class Postgres:
    def __init__(self, data: Path, port: int, env: dict):
        self.data, self.port, self.env = data, port, env

    def start(self) -> None:
        proc = subprocess.run(as_server_user([
            str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-l", str(self.data / "server.log"), "-w", "-t", "120",
            "-o", f"-p {self.port} -k {self.data} -c listen_addresses=127.0.0.1", "start"]),
            env=self.env, capture_output=True, text=True)
        log = self.data / "server.log"
        assert proc.returncode == 0, proc.stderr + (log.read_text()[-2000:] if log.exists() else "")

    def stop(self) -> None:
        subprocess.run(as_server_user([str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop"]),
                       env=self.env, check=False, capture_output=True)


@pytest.fixture
def workdir():
    """A folder the postgres OS user can reach (pytest's tmp_path is private to root)."""
    path = Path(tempfile.mkdtemp(prefix="ampere-pg-backup-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_defect13_barman_cloud_point_in_time_restore(workdir, seaweedfs):
    tmp_path = workdir
    if shutil.which("psql") is None:
        pytest.skip("psql not installed")
    cluster = cached_run("prod-site-fresh").applied("Cluster")[0]["spec"]["backup"]["barmanObjectStore"]
    destination, server = cluster["destinationPath"], cluster["serverName"]
    assert cluster["wal"]["compression"] == "gzip" and cluster["data"]["compression"] == "gzip"
    bucket = destination.removeprefix("s3://").split("/", 1)[0]

    import boto3  # noqa: PLC0415
    boto3.client("s3", endpoint_url=seaweedfs["endpoint_url"], aws_access_key_id=seaweedfs["access_key"],
                 aws_secret_access_key=seaweedfs["secret_key"], region_name="us-east-1").create_bucket(Bucket=bucket)

    env = tool_env(AWS_ACCESS_KEY_ID=seaweedfs["access_key"], AWS_SECRET_ACCESS_KEY=seaweedfs["secret_key"],
                   AWS_DEFAULT_REGION="us-east-1", PGHOST="127.0.0.1", PGUSER="postgres")
    cloud = ["--endpoint-url", seaweedfs["endpoint_url"], "--cloud-provider", "aws-s3"]
    # The server (as the postgres OS user) cannot run this test's virtualenv, so its
    # archive_command/restore_command hand the segments over through spool folders, and the test
    # runs barman-cloud-wal-archive / -wal-restore on them, as CloudNativePG's instance manager does.
    outbox, inbox = tmp_path / "wal-out", tmp_path / "wal-in"
    for spool in (outbox, inbox):
        spool.mkdir()
        hand_over(spool)
    archive = f"cp %p {outbox}/%f"
    fetch = f"cp {inbox}/%f %p"

    def ship_wal() -> None:
        for segment in sorted(outbox.iterdir()):
            subprocess.run([str(VENV_BIN / "barman-cloud-wal-archive"), *cloud, "--gzip", destination, server, str(segment)],
                           env=env, check=True, capture_output=True, text=True, timeout=120)
            segment.unlink()

    data = tmp_path / "pgdata"
    data.mkdir(mode=0o700)
    hand_over(data)
    subprocess.run(as_server_user([str(PG_BIN / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust"]),
                   check=True, capture_output=True)
    with (data / "postgresql.conf").open("a") as conf:
        conf.write(f"wal_level = replica\narchive_mode = on\narchive_command = '{archive}'\narchive_timeout = 0\n")
    port = free_port()
    primary = Postgres(data, port, env)
    primary.start()
    try:
        psql(port, "CREATE TABLE orders (id int PRIMARY KEY, amount numeric); "
                   "INSERT INTO orders SELECT g, g * 1.5 FROM generate_series(1, 1000) g")
        subprocess.run([str(VENV_BIN / "barman-cloud-backup"), *cloud, "--gzip", "-p", str(port), destination, server],
                       env=env, check=True, capture_output=True, text=True, timeout=300)
        ship_wal()
        # Rows written after the base backup exist only in the WAL archive.
        psql(port, "INSERT INTO orders SELECT g, g * 2 FROM generate_series(1001, 1500) g")
        expected = psql(port, "SELECT count(*), sum(amount), md5(string_agg(id::text || ':' || amount, ',' ORDER BY id)) FROM orders")
        time.sleep(1.1)
        target = psql(port, "SELECT now()")
        time.sleep(1.1)
        psql(port, "DROP TABLE orders")
        switched = psql(port, "SELECT pg_walfile_name(pg_switch_wal())")
        deadline = time.monotonic() + 120
        while psql(port, "SELECT coalesce(last_archived_wal, '') FROM pg_stat_archiver") < switched:
            assert time.monotonic() < deadline, "WAL segment was not archived"
            time.sleep(0.5)
    finally:
        primary.stop()
    ship_wal()

    restored = tmp_path / "restored"
    subprocess.run([str(VENV_BIN / "barman-cloud-restore"), *cloud, destination, server, "latest", str(restored)],
                   env=env, check=True, capture_output=True, text=True, timeout=300)
    # Every archived segment back from the object store with barman-cloud-wal-restore.
    s3 = boto3.client("s3", endpoint_url=seaweedfs["endpoint_url"], aws_access_key_id=seaweedfs["access_key"],
                      aws_secret_access_key=seaweedfs["secret_key"], region_name="us-east-1")
    prefix = destination.removeprefix(f"s3://{bucket}/") + f"/{server}/wals/"
    segments = sorted({Path(o["Key"]).name.split(".")[0] for o in s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])})
    assert segments, "no WAL in the archive"
    for segment in segments:
        subprocess.run([str(VENV_BIN / "barman-cloud-wal-restore"), *cloud, destination, server, segment, str(inbox / segment)],
                       env=env, check=True, capture_output=True, text=True, timeout=120)
    hand_over(inbox)
    with (restored / "postgresql.conf").open("a") as conf:
        conf.write(f"archive_mode = off\nrestore_command = '{fetch}'\nrecovery_target_time = '{target}'\n"
                   "recovery_target_action = promote\n")
    (restored / "recovery.signal").touch()
    os.chmod(restored, 0o700)
    hand_over(restored)
    replica = Postgres(restored, free_port(), env)
    replica.start()
    try:
        deadline = time.monotonic() + 120
        while psql(replica.port, "SELECT pg_is_in_recovery()") == "t":
            assert time.monotonic() < deadline, "recovery did not finish"
            time.sleep(0.5)
        actual = psql(replica.port, "SELECT count(*), sum(amount), md5(string_agg(id::text || ':' || amount, ',' ORDER BY id)) FROM orders")
    finally:
        replica.stop()
    assert actual == expected
    assert actual.startswith("1500|")
