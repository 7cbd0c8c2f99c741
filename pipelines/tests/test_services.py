"""Local services against the real binaries: idempotent lifecycle, stale pidfiles, loopback-only
listeners, and S3 authentication really being on."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import socket
import stat
import subprocess
import time
from pathlib import Path
from typing import Any

import psutil
import psycopg
import pytest
from tests.conftest import S3Service, SettingsFactory

from lakehouse.core import s3
from lakehouse.core.errors import ServiceError
from lakehouse.core.s3 import ClientError, S3Credentials
from lakehouse.services import (
    ApacheKafka,
    LocalKafka,
    LocalPostgres,
    LocalSeaweedFS,
    ServiceStatus,
    all_services,
)
from lakehouse.services.process import wait_until

pytestmark = pytest.mark.slow


def _listeners(pid: int) -> list[Any]:
    """TCP listening sockets of pid and its children."""
    procs = [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]
    found = []
    for proc in procs:
        try:
            found += [c for c in proc.net_connections(kind="inet") if c.status == psutil.CONN_LISTEN]
        except psutil.NoSuchProcess:
            continue
    return found


def _assert_loopback_only(pid: int, port: int) -> None:
    listeners = _listeners(pid)
    assert any(c.laddr.port == port for c in listeners), (
        f"nothing of pid {pid} listens on {port}: {listeners}"
    )
    wide = [f"{c.laddr.ip}:{c.laddr.port}" for c in listeners if c.laddr.ip != "127.0.0.1"]
    assert not wide, f"pid {pid} listens beyond 127.0.0.1: {wide}"


def _dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


# -- PostgreSQL --------------------------------------------------------------------------------
def test_pg_dsn_and_service_list(settings_factory: SettingsFactory) -> None:
    settings = settings_factory({"postgres.port": 55999})
    pg = LocalPostgres.from_settings(settings)
    assert pg.dsn("source") == "host=127.0.0.1 port=55999 user=lakehouse dbname=source"
    assert pg.base == settings.state_path / "postgres"
    assert [type(s) for s in all_services(settings)] == [LocalPostgres, ApacheKafka]
    s3 = settings_factory({"lake_root": "s3://lakehouse/dev"})
    assert [type(s) for s in all_services(s3)] == [LocalPostgres, LocalSeaweedFS, ApacheKafka]
    tansu = settings_factory({"streaming.broker": "tansu"})
    assert [type(s) for s in all_services(tansu)] == [LocalPostgres, LocalKafka]
    tansu_s3 = settings_factory({"streaming.broker": "tansu", "streaming.broker_storage": "s3"})
    assert [type(s) for s in all_services(tansu_s3)] == [LocalPostgres, LocalSeaweedFS, LocalKafka]
    # s3 storage is tansu's own: Apache Kafka keeps its log on disk and needs no S3 server
    kafka_s3 = settings_factory({"streaming.broker_storage": "s3"})
    assert [type(s) for s in all_services(kafka_s3)] == [LocalPostgres, ApacheKafka]
    external = settings_factory({"streaming.bootstrap": "kafka.example:9092"})
    assert [type(s) for s in all_services(external)] == [LocalPostgres]


def test_pg_running_idempotent_and_usable(pg_service: LocalPostgres) -> None:
    first = pg_service.status()
    assert isinstance(first, ServiceStatus)
    assert first.running and first.pid
    assert first.address == f"127.0.0.1:{pg_service.port}"
    assert str(pg_service.log_path) in first.detail
    again = pg_service.start()
    assert again.running and again.pid == first.pid
    with psycopg.connect(pg_service.dsn("source")) as conn:
        user, superuser, tz = conn.execute(
            "SELECT current_user, rolsuper, current_setting('TimeZone') "
            "FROM pg_roles WHERE rolname = current_user"
        ).fetchone() or (None, None, None)
        dbs = {row[0] for row in conn.execute("SELECT datname FROM pg_database")}
    assert (user, superuser, tz) == ("lakehouse", True, "UTC")
    assert {"source", "serving"} <= dbs


def test_pg_listens_on_loopback_only(pg_service: LocalPostgres) -> None:
    pid = pg_service.status().pid
    assert pid
    _assert_loopback_only(pid, pg_service.port)


def test_pg_conn_fixture_gives_fresh_database(pg_conn: psycopg.Connection[Any]) -> None:
    assert pg_conn.info.dbname.startswith("t_")
    assert pg_conn.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'").fetchone() == (0,)


def test_pg_lifecycle_and_stale_pidfile(settings_factory: SettingsFactory) -> None:
    pg = LocalPostgres.from_settings(settings_factory(fresh_state=True))
    assert not pg.status().running
    assert "not initialised" in pg.status().detail
    pg.stop()  # stopping something never started is fine
    try:
        started = pg.start()
        assert started.running and started.pid
        moved = dataclasses.replace(pg, port=pg.port + 1)  # same cluster, settings now name another port
        with pytest.raises(ServiceError, match=r"already running on 127\.0\.0\.1:"):
            moved.start()
        if os.geteuid() == 0:
            assert pg.data_dir.stat().st_uid == psutil.Process(started.pid).uids().real
        pidfile_text = pg.pidfile.read_text()
        stopped = pg.stop()
        assert not stopped.running and stopped.pid is None
        assert not pg.pidfile.exists()
        assert not pg.stop().running  # twice is fine

        # a crash leaves postmaster.pid behind: first with a pid that no longer exists ...
        lines = pidfile_text.splitlines()
        pg.pidfile.write_text("\n".join([str(_dead_pid()), *lines[1:]]) + "\n")
        assert not pg.status().running and "stale" in pg.status().detail
        restarted = pg.start()
        assert restarted.running and restarted.pid != started.pid
        pg.stop()

        # ... then with a pid reused by an unrelated live process (postgres alone would refuse)
        with subprocess.Popen(["sleep", "60"]) as other:
            try:
                pg.pidfile.write_text("\n".join([str(other.pid), *lines[1:]]) + "\n")
                assert not pg.status().running
                again = pg.start()
                assert again.running and again.pid != other.pid
                assert other.poll() is None  # the unrelated process was left alone
            finally:
                os.kill(other.pid, signal.SIGTERM)

        # ... and a real crash: postmaster SIGKILLed with a client connected
        conn = psycopg.connect(pg.dsn("source"))
        assert again.pid
        os.kill(again.pid, signal.SIGKILL)
        assert wait_until(lambda: not pg.status().running, 10)
        assert "stale" in pg.status().detail
        recovered = pg.start()
        assert recovered.running and recovered.pid != again.pid
        conn.close()
        with psycopg.connect(pg.dsn("serving")) as fresh:
            assert fresh.execute("SELECT 1").fetchone() == (1,)
    finally:
        pg.stop()
    assert not pg.status().running


def test_pg_port_busy_is_one_clear_error(settings_factory: SettingsFactory) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        pg = LocalPostgres.from_settings(settings_factory({"postgres.port": port}, fresh_state=True))
        with pytest.raises(
            ServiceError, match=rf"port 127\.0\.0\.1:{port} is busy \(pid {os.getpid()}"
        ) as err:
            pg.start()
    assert "\n" not in str(err.value)


# -- SeaweedFS ---------------------------------------------------------------------------------
@pytest.mark.s3
def test_s3_listens_on_loopback_only(s3_service: S3Service) -> None:
    sw = s3_service.service
    pid = sw.status().pid
    assert pid
    _assert_loopback_only(pid, sw.port)
    assert len(_listeners(pid)) >= 5  # master, volume, filer (http+grpc), s3 ... all checked above


@pytest.mark.s3
def test_s3_a_new_bucket_takes_one_volume_so_a_small_disk_holds_many_buckets(s3_service: S3Service) -> None:
    """The master caps the volume count at free disk / volume size; at 7 volumes per new bucket a
    disk with 17 GB free ran out after nine buckets and writes failed with InternalError."""
    import urllib.request

    sw = s3_service.service
    master = json.loads(sw.ports_path.read_text())["master.port"]

    def free_volumes() -> int:
        with urllib.request.urlopen(f"http://127.0.0.1:{master}/dir/status", timeout=5) as reply:
            return int(json.load(reply)["Topology"]["Free"])

    before = free_volumes()
    client = sw.client()
    bucket = f"one-volume-{os.getpid()}-{time.monotonic_ns()}"
    client.create_bucket(Bucket=bucket)
    client.put_object(Bucket=bucket, Key="x", Body=b"x")
    assert before - free_volumes() == 1


@pytest.mark.s3
def test_s3_auth_is_enforced(s3_service: S3Service) -> None:
    sw, creds = s3_service
    sw.client().head_bucket(Bucket=sw.bucket)
    with pytest.raises(ClientError) as wrong_secret:
        sw.client(secret_key=creds.secret_key + "x").head_bucket(Bucket=sw.bucket)
    assert s3.status_code(wrong_secret.value) == 403
    with pytest.raises(ClientError) as listing:
        sw.client(secret_key=creds.secret_key + "x").list_objects_v2(Bucket=sw.bucket)
    assert s3.error_code(listing.value) == "SignatureDoesNotMatch"
    unknown = s3.client(S3Credentials("NOSUCHKEY", creds.secret_key, sw.endpoint))
    with pytest.raises(ClientError) as unknown_key:
        unknown.list_objects_v2(Bucket=sw.bucket)
    assert s3.status_code(unknown_key.value) == 403
    with pytest.raises(ClientError) as wrong_put:
        sw.client(secret_key="not-the-secret").put_object(Bucket=sw.bucket, Key="x.txt", Body=b"nope")
    assert s3.status_code(wrong_put.value) == 403
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", sw.port, timeout=5)
    try:
        conn.request("GET", f"/{sw.bucket}")  # anonymous, unsigned
        assert conn.getresponse().status == 403
    finally:
        conn.close()


@pytest.mark.s3
def test_s3_lifecycle_crash_recovery_and_credentials(
    settings_factory: SettingsFactory, s3_service: S3Service
) -> None:
    # s3_service is requested only so the AWS_* variables are cleared and the binary is known present
    sw = LocalSeaweedFS.from_settings(settings_factory(fresh_state=True))
    assert not sw.status().running
    sw.stop()
    with pytest.raises(ServiceError, match="lakehouse services start"):
        sw.credentials()
    try:
        first = sw.start()
        assert first.running and first.pid
        assert sw.start().pid == first.pid  # idempotent
        with pytest.raises(ServiceError, match=r"already running on 127\.0\.0\.1:"):
            dataclasses.replace(sw, port=sw.port + 1).start()
        saved = json.loads(sw.credentials_path.read_text())
        assert set(saved) == {"access_key", "secret_key", "endpoint"}
        assert saved["endpoint"] == f"http://127.0.0.1:{sw.port}"
        assert stat.S_IMODE(sw.credentials_path.stat().st_mode) == 0o600
        assert stat.S_IMODE(sw.identities_path.stat().st_mode) == 0o600
        assert sw.credentials().secret_key == saved["secret_key"]
        sw.client().put_object(Bucket=sw.bucket, Key="keep.txt", Body=b"kept")

        # crash: the process dies, weed.pid stays behind
        os.kill(first.pid, signal.SIGKILL)
        os.waitpid(first.pid, 0)
        crashed = sw.status()
        assert not crashed.running and "stale" in crashed.detail
        second = sw.start()
        assert second.running and second.pid != first.pid
        assert json.loads(sw.credentials_path.read_text()) == saved  # same keys after restart
        assert sw.client().get_object(Bucket=sw.bucket, Key="keep.txt")["Body"].read() == b"kept"

        sw.stop(timeout=2)
        assert not sw.status().running and not sw.pidfile.exists()
        grpc_ports = {k: v for k, v in json.loads(sw.ports_path.read_text()).items() if k.endswith(".grpc")}
        left = [
            f"{k}={v}" for k, v in grpc_ports.items() if list(Path("/tmp").glob(f"seaweedfs-*-grpc-{v}.sock"))
        ]
        assert not left, f"gRPC unix sockets left in /tmp for {left}"
        sw.stop()  # twice is fine

        # a pidfile naming a live process that is not our weed is ignored, never signalled
        sw.pidfile.write_text(f"{os.getpid()}\n")
        assert not sw.status().running
        sw.stop()
        assert psutil.pid_exists(os.getpid())
    finally:
        sw.stop(timeout=2)


@pytest.mark.s3
def test_s3_port_busy_is_one_clear_error(settings_factory: SettingsFactory, s3_service: S3Service) -> None:
    sw = LocalSeaweedFS.from_settings(
        settings_factory({"seaweedfs.port": s3_service.service.port}, fresh_state=True)
    )
    with pytest.raises(ServiceError, match=r"is busy \(pid \d+ \(weed\)\)"):
        sw.start()


# -- every service of the state folder; a service that dies at start -----------------------------
LAKEHOUSE = Path(__file__).resolve().parents[2] / ".venv" / "bin" / "lakehouse"


def _cli(settings: Any, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("LAKEHOUSE_")}
    base.update(
        LAKEHOUSE_STATE_DIR=str(settings.state_path),
        LAKEHOUSE_LAKE_ROOT=settings.lake_uri,
        LAKEHOUSE_PG_PORT=str(settings.postgres.port),
        LAKEHOUSE_ROOT=str(Path(__file__).resolve().parents[2]),
        **(env or {}),
    )
    return subprocess.run(
        [str(LAKEHOUSE), *args], env=base, capture_output=True, text=True, timeout=300, check=False
    )


def test_status_and_stop_cover_a_service_started_under_other_settings(
    settings_factory: SettingsFactory,
) -> None:
    """A broker started with a local bootstrap is still shown and stopped when the settings now
    name an external cluster (as the s3:// lake's SeaweedFS is when the lake is a folder again)."""
    from lakehouse.services.process import free_port

    port = free_port()
    settings = settings_factory(
        {"streaming.broker_port": port, "streaming.broker": "tansu"}, fresh_state=True
    )
    broker = LocalKafka.from_settings(settings)
    broker.start()
    try:
        external = (
            "--set",
            "streaming.bootstrap=kafka.example:9092",
            "--set",
            f"streaming.broker_port={port}",
        )
        status = _cli(settings, "services", "status", "--json", *external)
        assert status.returncode == 0, status.stderr
        rows = {r["name"]: r for r in json.loads(status.stdout)["services"]}
        assert rows["kafka"]["running"] and rows["kafka"]["pid"] == broker.status().pid
        assert not rows["postgres"]["running"]
        stop = _cli(settings, "services", "stop", "--json", *external)
        assert stop.returncode == 0, stop.stderr
        assert not {r["name"]: r for r in json.loads(stop.stdout)["services"]}["kafka"]["running"]
        assert not broker.status().running
    finally:
        broker.stop()


@pytest.mark.s3
def test_status_and_stop_cover_the_s3_server_of_a_lake_that_is_a_folder_again(
    settings_factory: SettingsFactory, s3_service: S3Service
) -> None:
    """SeaweedFS started for an s3:// lake keeps running when the lake is a folder again; status
    still lists it and stop stops it (the state folder, not the current settings, decides)."""
    from lakehouse.services.process import free_port

    settings = settings_factory({"seaweedfs.port": free_port()}, fresh_state=True)
    assert not settings.is_s3
    sw = LocalSeaweedFS.from_settings(settings)
    sw.start()
    try:
        seaweed = ("--set", f"seaweedfs.port={sw.port}")
        status = _cli(settings, "services", "status", "--json", *seaweed)
        assert status.returncode == 0, status.stderr
        rows = {r["name"]: r for r in json.loads(status.stdout)["services"]}
        assert rows["seaweedfs"]["running"] and rows["seaweedfs"]["pid"] == sw.status().pid
        stop = _cli(settings, "services", "stop", "--json", *seaweed)
        assert stop.returncode == 0, stop.stderr
        assert not {r["name"]: r for r in json.loads(stop.stdout)["services"]}["seaweedfs"]["running"]
        assert not sw.status().running
    finally:
        sw.stop(timeout=2)


def _fake_broker(tmp_path: Path, body: str) -> Path:
    """An executable standing in for tansu: `body` runs with the port of --listener-url."""
    script = tmp_path / "tansu"
    script.write_text(
        "#!/usr/bin/env python3\n"
        "import socket, sys, time\n"
        "port = int(sys.argv[sys.argv.index('--listener-url') + 1].rsplit(':', 1)[1])\n" + body
    )
    script.chmod(0o755)
    return script


@pytest.mark.parametrize(
    ("body", "last_line"),
    [
        ("print('Error: Address already in use (os error 98)', flush=True)\nsys.exit(1)\n", "os error 98"),
        (  # answers first, then dies while the topic is being created
            "s = socket.socket(); s.bind(('127.0.0.1', port)); s.listen()\n"
            "time.sleep(1.5)\nprint('panic: storage engine unavailable', flush=True)\nsys.exit(101)\n",
            "panic: storage engine unavailable",
        ),
    ],
)
def test_a_broker_dying_at_start_is_one_line_with_its_last_log_line(
    settings_factory: SettingsFactory,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    body: str,
    last_line: str,
) -> None:
    from lakehouse.services.process import free_port

    settings = settings_factory(
        {"streaming.broker_port": free_port(), "streaming.broker": "tansu"}, fresh_state=True
    )
    fake = _fake_broker(tmp_path, body)
    monkeypatch.setenv("LAKEHOUSE_TANSU_BIN", str(fake))
    start = time.monotonic()
    with pytest.raises(ServiceError, match=last_line):
        LocalKafka.from_settings(settings).start()
    assert time.monotonic() - start < 10  # noticed at once, not after the 30 s readiness timeout
    out = _cli(
        settings,
        "stream",
        "broker",
        "start",
        "--set",
        f"streaming.broker_port={settings.streaming.broker_port}",
        "--set",
        "streaming.broker=tansu",
        env={"LAKEHOUSE_TANSU_BIN": str(fake)},
    )
    lines = [ln for ln in out.stderr.splitlines() if ln.strip()]
    assert out.returncode == 2 and len(lines) == 1, out.stderr
    assert "kafka exited with code" in lines[0] and last_line in lines[0], lines[0]
    assert "Traceback" not in out.stdout + out.stderr
