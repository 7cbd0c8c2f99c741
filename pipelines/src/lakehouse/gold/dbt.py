"""Running the dbt project (dbt/) in dbt's own virtualenv (.venv-dbt/).

dbt lives in its own virtualenv (Airflow runs it the same way), so this module never imports
dbt: it sets the environment the profile reads (lake location, DuckDB file, S3 credentials,
PostgreSQL), runs dbt as a subprocess, and reads the JSON artifacts it writes.

The subprocess is dbt/scripts/run_dbt.py under the virtualenv's python: one process runs one or
more dbt commands (dbt's programmatic API; importing dbt and parsing the project are paid once,
not per command) and emits OpenLineage events for every model, snapshot and test (library
`openlineage-dbt`) to the pipeline's lineage transport. Without that python (a `dbt` executable
that is not in a virtualenv) or with LAKEHOUSE_DBT_RUNNER=off, each command runs as a plain
`dbt <command>` process, without lineage.

Per lake, the build keeps its DuckDB file and dbt artifacts under
<state>/gold/<lake-id>/ (gold.duckdb, target/, logs/), so lakes sharing a state dir never mix.

One writer by design: DuckDB lets one process at a time open gold.duckdb for writing, and every
dbt command rewrites target/ (manifest, run_results.json) and the build ledger. So each dbt
invocation (and whatever reads its artifacts right after) holds `DbtProject.exclusive()`, a file
lock beside gold.duckdb: concurrent gold tasks (Airflow's per-model fan-out at any parallelism)
wait for one another instead of colliding. A wait longer than LAKEHOUSE_DBT_LOCK_WAIT_S (default
3600) is a transient failure (exit 75: a scheduler retries it).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lakehouse.core import lineage
from lakehouse.core.errors import LakehouseError, TransientError
from lakehouse.core.settings import PostgresSettings, Settings
from lakehouse.core.storage import Lake
from lakehouse.gold.dbt_results import DbtRun, parse_run_results

DBT_ENV = "LAKEHOUSE_DBT"  # path of the dbt executable
DBT_DIR_ENV = "LAKEHOUSE_DBT_PROJECT"  # path of the dbt project
RUNNER_ENV = "LAKEHOUSE_DBT_RUNNER"  # off: plain `dbt` processes (no lineage)
RUNNER = Path("scripts") / "run_dbt.py"  # in the dbt project
_MARK = "@@lakehouse-dbt "  # the runner's line before each command's output
LOCK_WAIT_ENV = "LAKEHOUSE_DBT_LOCK_WAIT_S"
# lock files this process holds, with their depth: a build that holds the lock runs dbt inside it
_HELD: dict[Path, int] = {}


class DbtError(LakehouseError):
    """dbt is missing, or a dbt command failed to run at all (not a failing test)."""


class DbtLockedError(DbtError, TransientError):
    """dbt could not open the build database: another process holds DuckDB's lock on it."""


@dataclass(frozen=True)
class DbtProject:
    """The gold layer's inputs: where dbt, the project and this lake's gold artifacts are, the
    lake it reads, the serving database it publishes to, and where its lineage goes."""

    executable: Path
    project_dir: Path
    work_dir: Path
    lake_uri: str
    serving: PostgresSettings
    lineage_namespace: str
    lineage_file: Path

    @classmethod
    def from_settings(cls, settings: Settings) -> DbtProject:
        root = settings.root
        exe = Path(os.environ.get(DBT_ENV, root / ".venv-dbt" / "bin" / "dbt"))
        project = Path(os.environ.get(DBT_DIR_ENV, root / "dbt"))
        lake_id = hashlib.sha1(settings.lake_uri.encode()).hexdigest()[:12]
        return cls(
            exe,
            project.resolve(),
            settings.state_path / "gold" / lake_id,
            settings.lake_uri,
            settings.postgres,
            lineage.namespace(settings),
            lineage.events_file(settings),
        )

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

    @property
    def ledger_path(self) -> Path:
        """Per dbt node, its result in the latest `dbt build` that ran it (see BuildLedger)."""
        return self.work_dir / "build_ledger.json"

    @property
    def lock_path(self) -> Path:
        return self.work_dir / "dbt.lock"

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        """Hold the build database and the dbt artifacts for this process (waits for another
        process holding them; re-entrant within this process)."""
        path = self.lock_path
        if _HELD.get(path):
            _HELD[path] += 1
            try:
                yield
            finally:
                _HELD[path] -= 1
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        wait = float(os.environ.get(LOCK_WAIT_ENV, "3600"))
        with open(path, "w") as handle:
            deadline = time.monotonic() + wait
            while True:
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        raise TransientError(
                            f"another dbt process held {path} for more than {wait:.0f} s; try again later"
                        ) from None
                    time.sleep(0.2)
            _HELD[path] = 1
            try:
                yield
            finally:
                del _HELD[path]

    def database_state(self) -> dict[str, Any]:
        """What changes whenever anything writes the build database (gold.duckdb and its WAL)."""
        out: dict[str, Any] = {}
        for path in (self.duckdb_path, self.duckdb_path.with_name(self.duckdb_path.name + ".wal")):
            if path.exists():
                st = path.stat()
                out[path.name] = [st.st_ino, st.st_size, st.st_mtime_ns]
        return out

    def project_state(self) -> str:
        """A digest of the dbt project's files (models, tests, macros, seeds, configuration)."""
        digest = hashlib.sha256()
        skip = {"target", "logs", "dbt_packages", "__pycache__"}
        for path in sorted(self.project_dir.rglob("*")):
            rel = path.relative_to(self.project_dir)
            if path.is_dir() or skip.intersection(rel.parts) or path.name.startswith("."):
                continue
            digest.update(str(rel).encode() + b"\0" + path.read_bytes() + b"\0")
        return digest.hexdigest()

    def artifact(self, name: str) -> dict[str, Any]:
        path = self.target_path / name
        if not path.exists():
            raise LakehouseError(f"no dbt {name} at {path}: run `lakehouse gold build` first")
        data: dict[str, Any] = json.loads(path.read_text())
        return data

    def env(self, lake: Lake) -> dict[str, str]:
        pg = self.serving
        env = dict(os.environ)
        env.update(
            {
                "DBT_PROFILES_DIR": str(self.project_dir),
                "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
                "DBT_USE_COLORS": "false",
                "LAKEHOUSE_DBT_DIR": str(self.project_dir),
                "LAKEHOUSE_LAKE_URI": self.lake_uri,
                "LAKEHOUSE_GOLD_DUCKDB": str(self.duckdb_path),
                "LAKEHOUSE_PG_HOST": pg.host,
                "LAKEHOUSE_PG_PORT": str(pg.port),
                "LAKEHOUSE_PG_USER": pg.user,
                "LAKEHOUSE_PG_SERVING_DB": pg.serving_db,
                "LAKEHOUSE_PG_SSLMODE": "disable" if pg.is_local else pg.sslmode,
                "TZ": "UTC",
            }
        )
        # the profile's serving target logs in as the pipeline does (password_file or PGPASSWORD)
        if password := pg.password:
            env["LAKEHOUSE_PG_PASSWORD"] = password
        # dbt reads silver and ops: their locations, and silver's credentials
        env["LAKEHOUSE_SILVER_URI"] = lake.layer_uri("silver")
        env["LAKEHOUSE_OPS_URI"] = lake.layer_uri("ops")
        opts = lake.options("silver") or {}
        for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION", "AWS_ENDPOINT_URL"):
            if key in opts:
                env[key] = opts[key]
        return env

    @property
    def runner(self) -> tuple[Path, Path] | None:
        """(python of dbt's virtualenv, dbt/scripts/run_dbt.py), or None: plain `dbt` processes."""
        if os.environ.get(RUNNER_ENV, "on").strip().lower() in ("off", "0", "false", "no"):
            return None
        python = self.executable.parent / "python"
        script = self.project_dir / RUNNER
        return (python, script) if python.exists() and script.exists() else None

    def _common_args(self) -> list[str]:
        return [
            "--project-dir",
            str(self.project_dir),
            "--target-path",
            str(self.target_path),
            "--log-path",
            str(self.log_path),
        ]

    def run(
        self,
        lake: Lake,
        args: Sequence[str],
        on_line: Callable[[str], None] | None = None,
        results_name: str = "run_results.json",
        job: str | None = None,
    ) -> DbtRun:
        """Run `dbt <args>`; returns its exit code and per-node results (from run_results.json)."""
        return self.run_many(lake, [(args, results_name)], on_line, job)[0]

    def run_many(
        self,
        lake: Lake,
        commands: Sequence[tuple[Sequence[str], str]],
        on_line: Callable[[str], None] | None = None,
        job: str | None = None,
    ) -> list[DbtRun]:
        """Run dbt commands one after the other in one dbt process: [(args, results file name)]
        -> one DbtRun each. `job` names the OpenLineage job run of the invocation (default
        lakehouse.gold.dbt.<first command>)."""
        if not self.executable.exists():
            raise DbtError(f"dbt not found at {self.executable}: run make setup-dbt")
        if not (self.project_dir / "dbt_project.yml").exists():
            raise DbtError(f"no dbt project at {self.project_dir} (set {DBT_DIR_ENV})")
        if not commands:
            return []
        with self.exclusive():
            return self._run_many(lake, commands, on_line, job)

    def _run_many(
        self,
        lake: Lake,
        commands: Sequence[tuple[Sequence[str], str]],
        on_line: Callable[[str], None] | None,
        job: str | None,
    ) -> list[DbtRun]:
        self.work_dir.mkdir(parents=True, exist_ok=True)
        runner = self.runner
        if runner is None:
            return [self._run_cli(lake, list(args), on_line, name) for args, name in commands]
        job = job or f"lakehouse.gold.dbt.{commands[0][0][0] if commands[0][0] else 'run'}"
        with tempfile.TemporaryDirectory(prefix="dbt-run-", dir=self.work_dir) as tmp:
            summary = Path(tmp) / "summary.json"
            spec = {
                "commands": [{"args": list(args), "results": name} for args, name in commands],
                "common": self._common_args(),
                "project_dir": str(self.project_dir),
                "target_path": str(self.target_path),
                "summary": str(summary),
                "lineage": lineage.dbt_spec(self.lineage_namespace, self.lineage_file, job),
            }
            (Path(tmp) / "spec.json").write_text(json.dumps(spec))
            code, lines, seconds = self._stream(
                lake, [str(runner[0]), str(runner[1]), str(Path(tmp) / "spec.json")], on_line
            )
            done = json.loads(summary.read_text()) if summary.exists() else []
        if len(done) != len(commands):
            tail = "\n".join(lines[-15:])
            raise DbtError(f"dbt runner {runner[1]} failed (exit {code}):\n{tail}")
        outputs = _split_output(lines, len(commands))
        runs = []
        for k, ((args, _), item) in enumerate(zip(commands, done, strict=True)):
            took = float(item["seconds"])
            if k == 0:  # the first command carries the process start (imports, parsing)
                took = max(took, seconds - sum(float(i["seconds"]) for i in done[1:]))
            run = DbtRun(
                [str(self.executable), *args, *self._common_args()],
                int(item["returncode"]),
                took,
                parse_run_results(item["results"]) if item["results"] else [],
                outputs[k],
            )
            self._check(args, run)
            runs.append(run)
        return runs

    def _run_cli(
        self, lake: Lake, args: list[str], on_line: Callable[[str], None] | None, results_name: str
    ) -> DbtRun:
        """`dbt <args>` as its own process (no runner)."""
        cmd = [str(self.executable), *args, *self._common_args()]
        results_file = self.target_path / results_name
        results_file.unlink(missing_ok=True)
        code, lines, seconds = self._stream(lake, cmd, on_line)
        run = DbtRun(cmd, code, seconds, output="\n".join(lines))
        if results_file.exists():
            run.results = parse_run_results(json.loads(results_file.read_text()))
        self._check(args, run)
        return run

    @staticmethod
    def _check(args: Sequence[str], run: DbtRun) -> None:
        if run.returncode == 2 or (run.returncode != 0 and not run.results):
            tail = "\n".join(run.output.splitlines()[-15:])
            if "Could not set lock on file" in run.output:
                raise DbtLockedError(
                    f"dbt {' '.join(args)}: the build database is locked by another process:\n{tail}"
                )
            raise DbtError(f"dbt {' '.join(args)} failed to run (exit {run.returncode}):\n{tail}")

    def _stream(
        self, lake: Lake, cmd: list[str], on_line: Callable[[str], None] | None
    ) -> tuple[int, list[str], float]:
        """Run `cmd` in the project dir with the lake's dbt environment; (exit code, lines, s)."""
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
        for raw in proc.stdout:
            line = raw.rstrip("\n")
            lines.append(line)
            if on_line:
                on_line(line.removeprefix(_MARK))
        code = proc.wait()
        return code, lines, time.perf_counter() - start


def _split_output(lines: list[str], n: int) -> list[str]:
    """The runner's output, one text per command (what precedes the first command goes to it)."""
    parts: list[list[str]] = [[] for _ in range(n)]
    k = 0
    for line in lines:
        if line.startswith(_MARK):
            head = line.removeprefix(_MARK).split("/", 1)[0]
            k = min(max(int(head) - 1, 0), n - 1) if head.isdigit() else k
        parts[k].append(line)
    return ["\n".join(p) for p in parts]
