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
from pathlib import Path
from typing import Any

import psutil
import psycopg
import pytest

from conftest import S3Service, SettingsFactory
from lakehouse.errors import ServiceError
from lakehouse.services import LocalKafka, LocalPostgres, LocalSeaweedFS, ServiceStatus, all_services
from lakehouse.services.base import wait_until
from lakehouse.services.seaweedfs import S3Client

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
    assert pg.dsn("source") == "postgresql://lakehouse@127.0.0.1:55999/source"
    assert pg.base == settings.state_path / "postgres"
    assert [type(s) for s in all_services(settings)] == [LocalPostgres, LocalKafka]
    s3 = settings_factory({"lake_root": "s3://lakehouse/dev"})
    assert [type(s) for s in all_services(s3)] == [LocalPostgres, LocalSeaweedFS, LocalKafka]
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
def test_s3_auth_is_enforced(s3_service: S3Service) -> None:
    sw, creds = s3_service
    bucket = f"/{sw.bucket}"
    assert sw.client().request("GET", bucket).status == 200
    wrong_secret = sw.client(secret_key=creds.secret_key + "x").request("GET", bucket)
    assert wrong_secret.status == 403, wrong_secret.body
    assert b"SignatureDoesNotMatch" in wrong_secret.body
    unknown_key = S3Client(sw.endpoint, "NOSUCHKEY", creds.secret_key).request("GET", bucket)
    assert unknown_key.status == 403
    wrong_put = sw.client(secret_key="not-the-secret").request("PUT", f"{bucket}/x.txt", b"nope")
    assert wrong_put.status == 403
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", sw.port, timeout=5)
    try:
        conn.request("GET", bucket)  # anonymous, unsigned
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
        assert sw.client().request("PUT", f"/{sw.bucket}/keep.txt", b"kept").status == 200

        # crash: the process dies, weed.pid stays behind
        os.kill(first.pid, signal.SIGKILL)
        os.waitpid(first.pid, 0)
        crashed = sw.status()
        assert not crashed.running and "stale" in crashed.detail
        second = sw.start()
        assert second.running and second.pid != first.pid
        assert json.loads(sw.credentials_path.read_text()) == saved  # same keys after restart
        got = sw.client().request("GET", f"/{sw.bucket}/keep.txt")
        assert (got.status, got.body) == (200, b"kept")

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
