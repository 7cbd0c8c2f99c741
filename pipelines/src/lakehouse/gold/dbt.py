"""Running the dbt project (dbt/) as a subprocess of dbt's own virtualenv (.venv-dbt/).

dbt lives in its own virtualenv (Airflow runs it the same way), so this module never imports
dbt: it sets the environment the profile reads (lake location, DuckDB file, S3 credentials,
PostgreSQL), runs `.venv-dbt/bin/dbt <command>`, and reads the JSON artifacts it writes.

Per lake, the build keeps its DuckDB file and dbt artifacts under
<state>/gold/<lake-id>/ (gold.duckdb, target/, logs/), so lakes sharing a state dir never mix.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lakehouse.config import Settings
from lakehouse.errors import LakehouseError
from lakehouse.storage import Lake

DBT_ENV = "LAKEHOUSE_DBT"  # path of the dbt executable
DBT_DIR_ENV = "LAKEHOUSE_DBT_PROJECT"  # path of the dbt project


class DbtError(LakehouseError):
    """dbt is missing, or a dbt command failed to run at all (not a failing test)."""


@dataclass(frozen=True)
class NodeResult:
    unique_id: str
    resource_type: str
    name: str
    status: str  # success | pass | fail | error | warn | skipped | runtime error ...
    failures: int
    message: str
    seconds: float
    relation: str = ""

    @property
    def failed(self) -> bool:
        return self.status in ("fail", "error", "runtime error")


@dataclass
class DbtRun:
    command: list[str]
    returncode: int
    seconds: float
    results: list[NodeResult] = field(default_factory=list)
    output: str = ""

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not any(r.failed for r in self.results)

    @property
    def failed(self) -> list[NodeResult]:
        return [r for r in self.results if r.failed]

    @property
    def skipped(self) -> list[NodeResult]:
        return [r for r in self.results if r.status == "skipped"]


@dataclass(frozen=True)
class DbtProject:
    """Where dbt, the project and this lake's gold artifacts are."""

    settings: Settings
    executable: Path
    project_dir: Path
    work_dir: Path

    @classmethod
    def from_settings(cls, settings: Settings) -> DbtProject:
        root = settings.root
        exe = Path(os.environ.get(DBT_ENV, root / ".venv-dbt" / "bin" / "dbt"))
        project = Path(os.environ.get(DBT_DIR_ENV, root / "dbt"))
        lake_id = hashlib.sha1(settings.lake_uri.encode()).hexdigest()[:12]
        return cls(settings, exe, project.resolve(), settings.state_path / "gold" / lake_id)

    @property
    def duckdb_path(self) -> Path:
        return self.work_dir / "gold.duckdb"

    @property
    def target_path(self) -> Path:
        return self.work_dir / "target"

    @property
    def build_results_path(self) -> Path:
        """run_results.json of the last `dbt build` (the publication gate reads it)."""
        return self.work_dir / "last_build_results.json"

    @property
    def log_path(self) -> Path:
        return self.work_dir / "logs"

    def artifact(self, name: str) -> dict[str, Any]:
        path = self.target_path / name
        if not path.exists():
            raise LakehouseError(f"no dbt {name} at {path}: run `lakehouse gold build` first")
        data: dict[str, Any] = json.loads(path.read_text())
        return data

    def env(self, lake: Lake) -> dict[str, str]:
        pg = self.settings.postgres
        env = dict(os.environ)
        env.update(
            {
                "DBT_PROFILES_DIR": str(self.project_dir),
                "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
                "DBT_USE_COLORS": "false",
                "LAKEHOUSE_DBT_DIR": str(self.project_dir),
                "LAKEHOUSE_LAKE_URI": self.settings.lake_uri,
                "LAKEHOUSE_GOLD_DUCKDB": str(self.duckdb_path),
                "LAKEHOUSE_PG_HOST": pg.host,
                "LAKEHOUSE_PG_PORT": str(pg.port),
                "LAKEHOUSE_PG_USER": pg.user,
                "LAKEHOUSE_PG_SERVING_DB": pg.serving_db,
                "TZ": "UTC",
            }
        )
        opts = lake.storage_options or {}
        for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION", "AWS_ENDPOINT_URL"):
            if key in opts:
                env[key] = opts[key]
        return env

    def run(
        self,
        lake: Lake,
        args: Sequence[str],
        on_line: Callable[[str], None] | None = None,
        results_name: str = "run_results.json",
    ) -> DbtRun:
        """Run `dbt <args>`; returns its exit code and per-node results (from run_results.json)."""
        if not self.executable.exists():
            raise DbtError(f"dbt not found at {self.executable}: run make setup-dbt")
        if not (self.project_dir / "dbt_project.yml").exists():
            raise DbtError(f"no dbt project at {self.project_dir} (set {DBT_DIR_ENV})")
        self.work_dir.mkdir(parents=True, exist_ok=True)
        cmd = [
            str(self.executable),
            *args,
            "--project-dir",
            str(self.project_dir),
            "--target-path",
            str(self.target_path),
            "--log-path",
            str(self.log_path),
        ]
        results_file = self.target_path / results_name
        results_file.unlink(missing_ok=True)
        start = time.perf_counter()
        proc = subprocess.Popen(
            cmd,
            cwd=self.project_dir,
            env=self.env(lake),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        lines: list[str] = []
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line.rstrip("\n"))
            if on_line:
                on_line(line.rstrip("\n"))
        code = proc.wait()
        run = DbtRun(cmd, code, time.perf_counter() - start, output="\n".join(lines))
        if results_file.exists():
            run.results = parse_run_results(json.loads(results_file.read_text()))
        if code == 2 or (code != 0 and not run.results):
            tail = "\n".join(lines[-15:])
            raise DbtError(f"dbt {' '.join(args)} failed to run (exit {code}):\n{tail}")
        return run


def parse_run_results(data: dict[str, Any]) -> list[NodeResult]:
    out = []
    for r in data.get("results", []):
        uid = r["unique_id"]
        kind = uid.split(".", 1)[0]
        out.append(
            NodeResult(
                unique_id=uid,
                resource_type=kind,
                name=uid.split(".")[-1] if kind != "source" else ".".join(uid.split(".")[-2:]),
                status=str(r.get("status")),
                failures=int(r.get("failures") or 0),
                message=str(r.get("message") or r.get("error") or "")[:2000],
                seconds=float(r.get("execution_time") or 0.0),
                relation=str(r.get("relation_name") or ""),
            )
        )
    return out
