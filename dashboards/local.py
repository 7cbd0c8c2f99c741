"""A dashboard on the laptop: Apache Superset on 127.0.0.1 over the serving database.

    .venv/bin/python dashboards/local.py start     (make dashboard)
    .venv/bin/python dashboards/local.py stop      (make dashboard-stop)
    .venv/bin/python dashboards/local.py status
    .venv/bin/python dashboards/local.py check     (make dashboard-check) open it in headless Chromium
    .venv/bin/python dashboards/local.py serving   only step 2 below: the BI role's access

`start` needs what `make demo` leaves behind (published gold marts, the speed layer, the BI role)
and does, idempotently:
  1. starts the project's PostgreSQL if it is not running (`lakehouse services start` does the same);
  2. gives the BI role what the dashboard reads beyond gold: the package's own serving-database
     setup (lakehouse.serving.database.prepare: the speed layer's tables, the ops records, the
     health views and the grants, as gold publication and `lakehouse serve` apply them);
  3. creates Superset's metadata database `superset` in that PostgreSQL, a secret key and an
     admin password (files under <state>/dashboards/, mode 600);
  4. provisions Superset from dashboards/lakehouse-overview.yaml (dashboards/superset/provision.py:
     schema migration, roles, the admin user, the datasource as the BI role, datasets, charts,
     the dashboard);
  5. starts Superset (gunicorn) on 127.0.0.1:$DASHBOARD_PORT (default 28088) unless it already
     runs, records its pid and waits until it answers.
`stop` stops that process by the recorded pid. `check` logs in to the running dashboard in headless
Chromium (dashboards/browser/check.mjs), saves <state>/dashboards/lakehouse-overview.png and fails
unless every chart drew data. Settings come from the pipeline's configuration
(LAKEHOUSE_CONFIG, LAKEHOUSE_ENV, LAKEHOUSE_PG_PORT, ...), like every `lakehouse` command.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

ROOT = Path(__file__).resolve().parents[1]
HERE = ROOT / "dashboards"
SUPERSET_VENV = Path(os.environ.get("LAKEHOUSE_SUPERSET_VENV", ROOT / ".venv-superset"))
DEFAULT_PORT = 28088
METADATA_DB = "superset"
DASHBOARD_SLUG = "lakehouse-overview"
START_TIMEOUT = 180.0


class DashboardError(Exception):
    """`make dashboard` cannot go on; the message is one line naming the cause."""


def _pipeline() -> tuple[Any, Any, Any, Any]:
    """The pipeline package's pieces this script uses (one place to change if they move)."""
    from lakehouse.core.settings import load_settings
    from lakehouse.gold.publish import bi_role
    from lakehouse.services import LocalPostgres
    from lakehouse.serving.database import prepare

    return load_settings, bi_role, prepare, LocalPostgres


def _port() -> int:
    raw = os.environ.get("DASHBOARD_PORT", str(DEFAULT_PORT))
    if not raw.isdigit() or not 1024 <= int(raw) <= 65535:
        raise DashboardError(f"setting 'DASHBOARD_PORT': a port number 1024..65535 (got {raw!r})")
    return int(raw)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _tail(path: Path, lines: int = 1) -> str:
    try:
        text = [ln for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return "(no log)"
    return " | ".join(text[-lines:]) if text else "(empty log)"


@dataclass
class LocalSuperset:
    settings: Any
    port: int

    # -- places -----------------------------------------------------------------------------------
    @property
    def state(self) -> Path:
        return Path(self.settings.state_path) / "dashboards"

    @property
    def pid_file(self) -> Path:
        return self.state / "superset.pid"

    @property
    def log(self) -> Path:
        return self.state / "superset.log"

    @property
    def secret_file(self) -> Path:
        return self.state / "secret_key"

    @property
    def password_file(self) -> Path:
        return self.state / "admin_password"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def dashboard_url(self) -> str:
        return f"{self.url}/superset/dashboard/{DASHBOARD_SLUG}/"

    def _dsn(self, db: str, user: str | None = None) -> str:
        pg = self.settings.postgres
        return f"postgresql://{user or pg.user}@{pg.host}:{pg.port}/{db}"

    def bi_uri(self) -> str:
        """The datasource: the serving database as the read-only BI role."""
        _, bi_role, *_ = _pipeline()
        pg = self.settings.postgres
        return f"postgresql+psycopg2://{bi_role()}@{pg.host}:{pg.port}/{pg.serving_db}"

    def pid(self) -> int | None:
        try:
            pid = int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None
        return pid if _alive(pid) else None

    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "SUPERSET_CONFIG_PATH": str(HERE / "superset" / "superset_config.py"),
            "SUPERSET_HOME": str(self.state / "home"),
            "LAKEHOUSE_SUPERSET_SECRET_FILE": str(self.secret_file),
            "LAKEHOUSE_SUPERSET_METADATA_URI": self._dsn(METADATA_DB).replace(
                "postgresql://", "postgresql+psycopg2://", 1
            ),
            "PYTHONUNBUFFERED": "1",
        }

    # -- steps ------------------------------------------------------------------------------------
    def _serving_access(self) -> None:
        """The BI role reads realtime.* and the health views (the package's serving setup)."""
        _, _, prepare, _ = _pipeline()
        done = prepare(self.settings.postgres)
        if not done["gold_published"] or not done["bi_role"]:
            raise DashboardError(
                f"the serving database {self.settings.postgres.serving_db} has no published gold marts "
                "(or no BI role): run `make demo` first"
            )

    def _metadata_db(self) -> None:
        with psycopg.connect(self._dsn("postgres"), autocommit=True, connect_timeout=10) as conn:
            if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [METADATA_DB]).fetchone():
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(METADATA_DB)))

    def _secrets(self) -> None:
        self.state.mkdir(parents=True, exist_ok=True)
        for path, make in (
            (self.secret_file, lambda: secrets.token_hex(32)),
            (self.password_file, secrets.token_urlsafe),
        ):
            if not path.exists() or not path.read_text().strip():
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                with os.fdopen(fd, "w") as fh:
                    fh.write(make() + "\n")

    def _provision(self) -> None:
        python = SUPERSET_VENV / "bin" / "python"
        if not python.exists():
            raise DashboardError(f"no Superset virtualenv at {SUPERSET_VENV}: run `make setup-superset`")
        cmd = [
            str(python),
            str(HERE / "superset" / "provision.py"),
            "--database-uri",
            self.bi_uri(),
            "--admin-password-file",
            str(self.password_file),
        ]
        log = self.state / "provision.log"
        with open(log, "w") as out:
            proc = subprocess.run(cmd, env=self.env(), stdout=out, stderr=subprocess.STDOUT, check=False)
        if proc.returncode != 0:
            raise DashboardError(f"provisioning Superset failed: {_tail(log)} (log: {log})")
        for line in log.read_text().splitlines():
            if line.startswith(("==>", "    ")):
                print(line)

    def _port_free(self) -> None:
        from lakehouse.services.process import port_in_use

        if port_in_use(self.port):
            raise DashboardError(
                f"port 127.0.0.1:{self.port} is busy: stop what holds it or set DASHBOARD_PORT to a free port"
            )

    def _serve(self) -> int:
        if (pid := self.pid()) is not None:
            print(f"Superset already runs (pid {pid})")
            return pid
        self._port_free()
        cmd = [
            str(SUPERSET_VENV / "bin" / "gunicorn"),
            "--bind",
            f"127.0.0.1:{self.port}",
            "--workers",
            "1",
            "--worker-class",
            "gthread",
            "--threads",
            "8",  # a dashboard asks for all its charts at once
            "--timeout",
            "120",
            "--graceful-timeout",
            "5",  # on stop, a browser's idle keep-alive connection would hold a worker for 30 s
            "superset.app:create_app()",
        ]
        with open(self.log, "ab") as out:
            proc = subprocess.Popen(
                cmd,
                env=self.env(),
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                cwd=self.state,
            )
        self.pid_file.write_text(f"{proc.pid}\n")
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                self.pid_file.unlink(missing_ok=True)
                raise DashboardError(f"Superset exited at start: {_tail(self.log)} (log: {self.log})")
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=5) as resp:
                    if resp.status == 200:
                        return proc.pid
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(1)
        self.stop()
        raise DashboardError(
            f"Superset did not answer on {self.url} within {START_TIMEOUT:.0f} s (log: {self.log})"
        )

    # -- verbs ------------------------------------------------------------------------------------
    def start(self) -> None:
        if self.pid() is None:
            self._port_free()  # before a minute of provisioning, not after
        _, _, _, local_postgres = _pipeline()
        local_postgres.from_settings(self.settings).start()
        self._serving_access()
        self._metadata_db()
        self._secrets()
        self._provision()
        pid = self._serve()
        print(f"Superset is up (pid {pid}, log {self.log})")
        print(f"  dashboard: {self.dashboard_url}")
        print(f"  login:     admin / {self.password_file.read_text().strip()}   (in {self.password_file})")

    def stop(self) -> None:
        pid = self.pid()
        if pid is None:
            self.pid_file.unlink(missing_ok=True)
            print("Superset is not running")
            return
        os.kill(pid, signal.SIGTERM)  # gunicorn's master stops its workers
        deadline = time.monotonic() + 30
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)
        self.pid_file.unlink(missing_ok=True)
        print(f"stopped Superset (pid {pid})")

    def serving(self) -> None:
        _, _, _, local_postgres = _pipeline()
        local_postgres.from_settings(self.settings).start()
        self._serving_access()
        print(
            f"BI role: reads gold, realtime windows and health views in {self.settings.postgres.serving_db}"
        )

    @property
    def screenshot(self) -> Path:
        return self.state / f"{DASHBOARD_SLUG}.png"

    def check(self, watch: int = 15) -> dict[str, Any]:
        """Open the dashboard in headless Chromium; the browser's report (see check.mjs)."""
        if self.pid() is None:
            raise DashboardError("Superset is not running: run `make dashboard` first")
        script = HERE / "browser" / "check.mjs"
        if not (HERE / "browser" / "node_modules" / "playwright-core").is_dir():
            raise DashboardError("playwright-core is not installed: run `make setup-dashboard-browser`")
        cmd = [
            "node",
            str(script),
            "--url",
            self.url,
            "--password-file",
            str(self.password_file),
            "--dashboard",
            DASHBOARD_SLUG,
            "--screenshot",
            str(self.screenshot),
            "--watch",
            str(watch),
        ]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False)
        except FileNotFoundError:
            raise DashboardError("node is not installed (Node.js 20 runs the browser check)") from None
        if proc.returncode != 0:
            err = [ln for ln in proc.stderr.splitlines() if ln.strip()]
            raise DashboardError(f"the browser check failed: {err[-1] if err else proc.returncode}")
        report: dict[str, Any] = json.loads(proc.stdout)
        return report

    def print_check(self, report: dict[str, Any]) -> bool:
        ok = True
        for c in report["charts"]:
            shows = c["bigNumber"] or (
                f"{c['tableRows']} rows" if c["tableRows"] else f"{c['canvasPixels']} px drawn"
            )
            bad = (
                c["noData"]
                or c["alerts"]
                or not (c["bigNumber"] or c["tableRows"] or c["canvasPixels"] > 100)
            )
            ok = ok and not bad
            print(f"  {'FAIL' if bad else 'ok  '} {c['name']:<40} {c['viz']:<24} {shows}")
        print(f"  auto-refresh: {report.get('refreshRequests', 0)} chart data requests in the watch window")
        print(f"screenshot: {self.screenshot}")
        return ok

    def status(self) -> None:
        pid = self.pid()
        print(f"Superset: running (pid {pid}) on {self.dashboard_url}" if pid else "Superset: stopped")


def main(argv: list[str]) -> int:
    verbs = ("start", "stop", "status", "check", "serving")
    if len(argv) != 1 or argv[0] not in verbs:
        print(f"usage: local.py {'|'.join(verbs)}", file=sys.stderr)
        return 2
    try:
        load_settings, *_ = _pipeline()
        superset = LocalSuperset(load_settings(), _port())
        if argv[0] == "check":
            return 0 if superset.print_check(superset.check()) else 1
        getattr(superset, argv[0])()
    except DashboardError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # the package's own errors are one line too (config, services)
        if type(exc).__module__.startswith("lakehouse"):
            print(f"error: {exc}", file=sys.stderr)
            return 1
        raise
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
