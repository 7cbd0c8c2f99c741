"""The serving tests' fixture: a small `lakehouse demo` on its own ports and state folder (as a user
runs it, through LAKEHOUSE_CONFIG), an API token, and `lakehouse serve` as a real server process.

The serving database logs every statement it runs (log_statement = all, set before the server
connects), so a test can read what SQL text reached PostgreSQL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from lakehouse.core.settings import Settings, load_settings
from local_config import user_env, write_local_config

ROOT = Path(__file__).resolve().parents[3]
BIN = Path(sys.executable).parent
DBT = ROOT / ".venv-dbt" / "bin" / "dbt"
SMALL = {
    "events": 4000,
    "event_files": 2,
    "users": 600,
    "customers": 300,
    "products": 40,
    "orders": 1200,
    "days": 2,
    "change_batches": 1,
}


@dataclass
class Served:
    env: dict[str, str]
    config: Path
    settings: Settings
    url: str
    token: str
    server: subprocess.Popen[bytes]
    log: Path

    def lakehouse(
        self, *args: str, timeout: float = 600, stdin: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(BIN / "lakehouse"), *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            input=stdin,
        )

    def client(self, token: str | None = "default") -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.token if token == 'default' else token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30)

    def pg(self) -> psycopg.Connection[Any]:
        return psycopg.connect(self.settings.postgres.serving_dsn, autocommit=True)

    @property
    def pg_log(self) -> Path:
        return self.settings.state_path / "postgres" / "postgres.log"


def start_server(env: dict[str, str], port: int, log: Path, *extra: str) -> subprocess.Popen[bytes]:
    out = open(log, "ab")  # noqa: SIM115 (the server process owns it)
    proc = subprocess.Popen(
        [str(BIN / "lakehouse"), "serve", "--port", str(port), *extra],
        env=env,
        stdout=out,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"lakehouse serve exited: {log.read_text()[-2000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    stop_server(proc)
    raise AssertionError(f"lakehouse serve did not answer within 60 s: {log.read_text()[-2000:]}")


def stop_server(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


@pytest.fixture(scope="session")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    if not DBT.exists():
        pytest.fail(f"dbt is missing at {DBT}: run `make setup-dbt` (make test-pipelines does)")
    base = tmp_path_factory.mktemp("serving")
    path, config = write_local_config(base, SMALL, extra_ports=[("serving", "port")])
    env = user_env(path)
    mp = pytest.MonkeyPatch()
    for k in [k for k in os.environ if k.startswith("LAKEHOUSE_")]:
        mp.delenv(k)
    mp.setenv("LAKEHOUSE_CONFIG", str(path))
    mp.setenv("LAKEHOUSE_ROOT", str(ROOT))
    settings = load_settings()
    server = None
    try:
        demo = subprocess.run(
            [str(BIN / "lakehouse"), "demo"],
            env=env,
            capture_output=True,
            text=True,
            timeout=1200,
            check=False,
        )
        assert demo.returncode == 0, (demo.stdout + demo.stderr)[-3000:]
        with psycopg.connect(settings.postgres.serving_dsn, autocommit=True) as conn:
            conn.execute(f"ALTER DATABASE {settings.postgres.serving_db} SET log_statement = 'all'")
        made = subprocess.run(
            [str(BIN / "lakehouse"), "token", "create", "tests"],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        assert made.returncode == 0, made.stderr
        token = made.stdout.strip()
        log = base / "serve.log"
        server = start_server(env, config["serving"]["port"], log)
        yield Served(env, path, settings, f"http://127.0.0.1:{config['serving']['port']}", token, server, log)
    finally:
        if server is not None:
            stop_server(server)
        subprocess.run([str(BIN / "lakehouse"), "services", "stop"], env=env, check=False, timeout=120)
        mp.undo()
