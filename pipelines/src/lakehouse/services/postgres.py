"""A throwaway local PostgreSQL 15 cluster under <state>/postgres, listening only on 127.0.0.1.

Layout of the state dir:

    <state>/postgres/data/          the cluster (PGDATA); postmaster.pid is the only pid we trust
    <state>/postgres/run/           unix socket directory (not used by the DSNs, which are TCP)
    <state>/postgres/postgres.log   server log (pg_ctl -l)
    <state>/postgres/initdb.log     output of initdb

Authentication is `trust` for loopback only (initdb's default pg_hba has no other host lines).
When the process runs as root, initdb/pg_ctl run as the `postgres` OS user through `runuser`;
the state dir is chowned to that user and any parent directory it could not traverse gets the
world-execute bit (x only, never read) added.
"""

from __future__ import annotations

import os
import pwd
import shutil
import stat
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from lakehouse.core.errors import ServiceError
from lakehouse.core.settings import PostgresSettings, Settings
from lakehouse.services.base import LocalService, ServiceStatus
from lakehouse.services.process import (
    LOOPBACK,
    log_tail,
    pid_alive,
    port_in_use,
    port_owner,
    proc_cwd,
    wait_until,
)

PG_BIN_CANDIDATES = (Path("/usr/lib/postgresql/15/bin"), Path("/usr/local/bin"))
SERVICE_USER = "postgres"
CONF_NAME = "lakehouse.conf"
# unix socket paths are limited to 107 bytes; longer state paths get TCP only
_MAX_SOCKET_DIR = 90


def find_pg_bin() -> Path:
    """The directory holding initdb, pg_ctl and postgres (PostgreSQL 15 preferred)."""
    for candidate in PG_BIN_CANDIDATES:
        if all((candidate / tool).exists() for tool in ("initdb", "pg_ctl")):
            return candidate
    found = shutil.which("pg_ctl")
    if found and (Path(found).parent / "initdb").exists():
        return Path(found).parent
    raise ServiceError(
        "PostgreSQL binaries not found (looked in /usr/lib/postgresql/15/bin, /usr/local/bin and PATH): "
        "install them with `apt-get install postgresql-15`"
    )


@dataclass
class LocalPostgres(LocalService):
    """Start/stop/status of the project's own PostgreSQL cluster. All methods are idempotent."""

    base: Path
    port: int
    user: str
    databases: tuple[str, ...]
    name: str = "postgres"

    @classmethod
    def from_settings(cls, settings: Settings) -> LocalPostgres:
        pg = settings.postgres
        dbs = tuple(dict.fromkeys((pg.source_db, pg.serving_db)))
        return cls(base=settings.state_path / "postgres", port=pg.port, user=pg.user, databases=dbs)

    # -- paths --------------------------------------------------------------------------------
    @property
    def data_dir(self) -> Path:
        return self.base / "data"

    @property
    def log_path(self) -> Path:
        return self.base / "postgres.log"

    @property
    def initdb_log(self) -> Path:
        return self.base / "initdb.log"

    @property
    def socket_dir(self) -> Path | None:
        run = self.base / "run"
        return run if len(str(run)) <= _MAX_SOCKET_DIR else None

    @property
    def pidfile(self) -> Path:
        return self.data_dir / "postmaster.pid"

    def dsn(self, dbname: str) -> str:
        """libpq connection string over TCP to database `dbname` of this cluster."""
        return PostgresSettings(host=LOOPBACK, port=self.port, user=self.user).dsn(dbname)

    # -- os user ------------------------------------------------------------------------------
    @staticmethod
    def _as_root() -> bool:
        return os.geteuid() == 0

    def _cmd(self, *args: str) -> list[str]:
        return ["runuser", "-u", SERVICE_USER, "--", *args] if self._as_root() else list(args)

    def _service_ids(self) -> tuple[int, int, set[int]]:
        try:
            entry = pwd.getpwnam(SERVICE_USER)
        except KeyError:
            raise ServiceError(
                f"running as root but there is no '{SERVICE_USER}' OS user to run PostgreSQL as "
                "(install postgresql-15, or run as a normal user)"
            ) from None
        groups = set(os.getgrouplist(SERVICE_USER, entry.pw_gid))
        return entry.pw_uid, entry.pw_gid, groups

    def _prepare_dirs(self) -> None:
        self.base.mkdir(parents=True, exist_ok=True)
        dirs = [self.base] + ([self.socket_dir] if self.socket_dir else [])
        for d in dirs:
            d.mkdir(parents=True, exist_ok=True)
        if not self._as_root():
            return
        uid, gid, groups = self._service_ids()
        for d in dirs:
            os.chown(d, uid, gid)
        for f in (self.log_path, self.initdb_log):
            if f.exists():
                os.chown(f, uid, gid)
        if self.data_dir.exists() and self.data_dir.stat().st_uid != uid:
            for root, subdirs, files in os.walk(self.data_dir):
                for name in (*subdirs, *files):
                    os.lchown(os.path.join(root, name), uid, gid)
            os.chown(self.data_dir, uid, gid)
        # every parent must be traversable (x) by the service user
        for parent in self.base.resolve().parents:
            st = parent.stat()
            if st.st_uid == uid:
                needed = stat.S_IXUSR
            elif st.st_gid in groups:
                needed = stat.S_IXGRP
            else:
                needed = stat.S_IXOTH
            if not st.st_mode & needed:
                os.chmod(parent, stat.S_IMODE(st.st_mode) | needed)

    def _run(self, args: list[str], log: Path | None, what: str, timeout: float = 120) -> None:
        try:
            proc = subprocess.run(
                self._cmd(*args),
                cwd=self.base,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise ServiceError(f"PostgreSQL {what} timed out after {timeout:.0f}s (log: {log})") from None
        except OSError as exc:  # runuser or a PostgreSQL binary missing / not executable
            raise ServiceError(
                f"PostgreSQL {what}: cannot run {exc.filename or args[0]}: {exc.strerror}"
            ) from None
        out = proc.stdout.decode(errors="replace")
        if log is not None and what == "initdb":
            log.write_text(out)
        if proc.returncode != 0:
            last = [ln for ln in out.strip().splitlines() if ln.strip()][-1:] or [""]
            where = log or self.log_path
            extra = log_tail(self.log_path, 1) if what != "initdb" else ""
            raise ServiceError(
                f"PostgreSQL {what} failed: {last[0].strip()} {extra}".strip() + f" (log: {where})"
            )

    # -- state --------------------------------------------------------------------------------
    def _pidfile_info(self) -> tuple[int | None, int | None]:
        """(pid, port) from postmaster.pid, or (None, None)."""
        try:
            lines = self.pidfile.read_text().splitlines()
        except OSError:
            return None, None
        try:
            pid = int(lines[0].strip())
        except (IndexError, ValueError):
            return None, None
        try:
            port: int | None = int(lines[3].strip())
        except (IndexError, ValueError):
            port = None
        return pid, port

    def _our_pid(self) -> int | None:
        """The postmaster pid if it is alive and really serves our data dir, else None."""
        pid, _ = self._pidfile_info()
        if pid is None or not pid_alive(pid):
            return None
        cwd = proc_cwd(pid)
        if cwd is not None and cwd.resolve() != self.data_dir.resolve():
            return None  # pid reused by an unrelated process: the pidfile is stale
        return pid

    def _clear_stale_pidfile(self) -> bool:
        """Remove postmaster.pid (and our socket lock files) left by a crash. True if any was stale.

        PostgreSQL itself refuses to start while the recorded pid exists, which includes a crashed
        postmaster that is still a zombie and an unrelated process that got the same pid."""
        stale = False
        if self.pidfile.exists() and self._our_pid() is None:
            old, _ = self._pidfile_info()
            self.pidfile.unlink(missing_ok=True)
            stale = True
            if old is not None:  # give a crashed postmaster a moment to be reaped
                wait_until(lambda: not Path(f"/proc/{old}").exists() or proc_cwd(old) != self.data_dir, 3)
        if self.socket_dir and self.socket_dir.is_dir() and not self.pidfile.exists():
            for lock in self.socket_dir.glob(".s.PGSQL.*.lock"):
                lock.unlink(missing_ok=True)
                stale = True
        return stale

    def status(self) -> ServiceStatus:
        pid = self._our_pid()
        _, file_port = self._pidfile_info()
        port = file_port if pid and file_port else self.port
        detail = f"data {self.data_dir}, log {self.log_path}"
        if pid is None and self.pidfile.exists():
            detail += " (stale postmaster.pid)"
        elif not (self.data_dir / "PG_VERSION").exists():
            detail += " (not initialised)"
        return ServiceStatus(self.name, pid is not None, pid, f"{LOOPBACK}:{port}", detail)

    # -- lifecycle ----------------------------------------------------------------------------
    def _write_conf(self) -> None:
        sockets = f"'{self.socket_dir}'" if self.socket_dir else "''"
        conf = (
            "# written by lakehouse.services.postgres on every start; edits are overwritten\n"
            f"listen_addresses = '{LOOPBACK}'\n"
            f"port = {self.port}\n"
            f"unix_socket_directories = {sockets}\n"
            "timezone = 'UTC'\n"
            "log_timezone = 'UTC'\n"
        )
        path = self.data_dir / CONF_NAME
        path.write_text(conf)
        main = self.data_dir / "postgresql.conf"
        text = main.read_text()
        include = f"include_if_exists = '{CONF_NAME}'"
        if include not in text:
            main.write_text(text.rstrip("\n") + f"\n\n# lakehouse local settings\n{include}\n")
        if self._as_root():
            uid, gid, _ = self._service_ids()
            os.chown(path, uid, gid)

    def _initdb(self, bindir: Path) -> None:
        if (self.data_dir / "PG_VERSION").exists():
            return
        if self.data_dir.exists() and any(self.data_dir.iterdir()):
            raise ServiceError(
                f"{self.data_dir} exists but is not a PostgreSQL data dir: move it away and start again"
            )
        self._run(
            [
                str(bindir / "initdb"),
                "-D",
                str(self.data_dir),
                "-U",
                self.user,
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C",
                "--no-sync",
            ],
            self.initdb_log,
            "initdb",
        )
        if self._as_root():
            uid, gid, _ = self._service_ids()
            os.chown(self.initdb_log, uid, gid)

    def start(self, timeout: float = 60) -> ServiceStatus:
        """Start (initdb on first use) and create the databases. No-op if already running."""
        current = self.status()
        if current.running:
            if current.address != f"{LOOPBACK}:{self.port}":
                raise ServiceError(
                    f"PostgreSQL is already running on {current.address} but settings say port {self.port}: "
                    "run `lakehouse services stop` first"
                )
            self._ensure_databases()
            return current
        bindir = find_pg_bin()
        self._prepare_dirs()
        crashed = self._clear_stale_pidfile()
        if port_in_use(self.port):
            raise ServiceError(
                f"port {LOOPBACK}:{self.port} is busy ({port_owner(self.port)}): stop it or set "
                "postgres.port / LAKEHOUSE_PG_PORT to a free port"
            )
        self._initdb(bindir)
        self._write_conf()
        start = [str(bindir / "pg_ctl"), "start", "-D", str(self.data_dir), "-l", str(self.log_path)]
        start += ["-w", "-t", str(int(timeout))]
        # after a crash, the old server's children may hold shared memory for a few more seconds
        attempts = 6 if crashed else 1
        for attempt in range(1, attempts + 1):
            try:
                self._run(start, self.log_path, "start", timeout=timeout + 10)
                break
            except ServiceError:
                if attempt == attempts:
                    raise
                time.sleep(1)
                self._clear_stale_pidfile()
        if not wait_until(lambda: self._our_pid() is not None, 10):
            raise ServiceError(
                f"PostgreSQL did not come up: {log_tail(self.log_path, 1)} (log: {self.log_path})"
            )
        self._ensure_databases()
        return self.status()

    def _ensure_databases(self) -> None:
        import psycopg
        from psycopg import sql

        try:
            with psycopg.connect(self.dsn("postgres"), autocommit=True, connect_timeout=10) as conn:
                existing = {row[0] for row in conn.execute("SELECT datname FROM pg_database")}
                for db in self.databases:
                    if db not in existing:
                        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(db)))
        except psycopg.Error as exc:
            msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            if f'role "{self.user}" does not exist' in str(exc):
                raise ServiceError(
                    f"the cluster in {self.data_dir} was initialised for another user than '{self.user}': "
                    "set postgres.user back, or stop the service and move that data dir away"
                ) from None
            raise ServiceError(
                f"PostgreSQL on {LOOPBACK}:{self.port} is up but creating databases failed: {msg} "
                f"(log: {self.log_path})"
            ) from None

    def stop(self, timeout: float | None = 60) -> ServiceStatus:
        """Fast shutdown of our postmaster (pid from our own postmaster.pid). No-op if not running."""
        pid = self._our_pid()
        if pid is None:
            self._clear_stale_pidfile()
            return self.status()
        timeout = 60 if timeout is None else timeout
        bindir = find_pg_bin()
        try:
            self._run(
                [
                    str(bindir / "pg_ctl"),
                    "stop",
                    "-D",
                    str(self.data_dir),
                    "-m",
                    "fast",
                    "-w",
                    "-t",
                    str(int(timeout)),
                ],
                self.log_path,
                "stop",
                timeout=timeout + 10,
            )
        except ServiceError:
            if pid_alive(pid):
                import signal

                os.kill(pid, signal.SIGINT)  # SIGINT = fast shutdown, to this pid only
        if not wait_until(lambda: not pid_alive(pid), 30):
            raise ServiceError(f"PostgreSQL (pid {pid}) did not stop within 30s (log: {self.log_path})")
        self._clear_stale_pidfile()
        return self.status()
