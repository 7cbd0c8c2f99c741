"""Every DAG run by a real Airflow 3, started the way `make airflow` starts it
(`dags/airflow-local.sh start`: metadata in PostgreSQL, api-server, scheduler, dag-processor,
triggerer, LocalExecutor at parallelism 4), on a small generated dataset with every source on:
landing files, the PostgreSQL source and a Kafka-protocol broker. Runs are triggered and watched
through the REST API, as the UI does it.

One Airflow instance serves the module; the tests run in file order on one lake:
the Asset chain (ingest -> silver -> gold, the gold DAG with one task per dbt model) starts by
itself from one triggered ingest run; then lakehouse_pipeline, maintenance, backfill and restore;
then a task whose tool is missing fails (and is not retried).

Heavy (a few minutes): marked `airflow_live`, run by `make test-airflow`."""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import time
import urllib.error
import urllib.request
import uuid
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml
from psycopg import sql

from airflow_helpers import DBT, LAKEHOUSE, REPO, require_airflow
from lakehouse.app import jobs
from lakehouse.core.jvm import load_bundle
from lakehouse.core.settings import Settings, load_settings
from lakehouse.core.storage import Lake
from lakehouse.services import local_broker
from lakehouse.services.process import free_port

pytestmark = [pytest.mark.slow, pytest.mark.airflow_live, pytest.mark.timeout(1800)]

DAG_IDS = {
    "lakehouse_ingest",
    "lakehouse_silver",
    "lakehouse_gold",
    "lakehouse_pipeline",
    "lakehouse_maintenance",
    "lakehouse_backfill",
    "lakehouse_restore",
}
LOCAL_SH = REPO / "dags" / "airflow-local.sh"
# the screenshot of the pipeline run's grid, kept in the checkout's state folder (README links it)
SCREENSHOT = REPO / ".state" / "screenshots" / "lakehouse_pipeline_grid.png"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
GRID_JS = REPO / "dags" / "browser" / "grid.mjs"
PLAYWRIGHT = REPO / "dashboards" / "browser" / "node_modules" / "playwright-core"


class AirflowApi:
    """The public REST API (v2) of the api-server, with the token the UI would use."""

    def __init__(self, base: str) -> None:
        self.base = base
        self._token: str | None = None

    def token(self) -> str:
        if self._token is None:
            # SimpleAuthManager with every user an admin (as `make airflow` runs it): no login
            req = urllib.request.Request(f"{self.base}/auth/token", method="GET")
            with urllib.request.urlopen(req, timeout=30) as resp:
                self._token = json.loads(resp.read())["access_token"]
        return self._token

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        req = urllib.request.Request(
            f"{self.base}/api/v2{path}",
            data=json.dumps(body).encode() if body is not None else None,
            method=method,
            headers={"Authorization": f"Bearer {self.token()}", "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(req, timeout=60) as resp:
                return json.loads(resp.read() or b"null")
        except urllib.error.HTTPError as exc:
            raise AssertionError(f"{method} {path}: HTTP {exc.code} {exc.read()[:500]!r}") from None

    def unpause(self, dag_id: str, paused: bool = False) -> None:
        self.call("PATCH", f"/dags/{dag_id}", {"is_paused": paused})

    def trigger(self, dag_id: str, conf: dict[str, Any] | None = None) -> str:
        run = self.call("POST", f"/dags/{dag_id}/dagRuns", {"logical_date": None, "conf": conf or {}})
        return str(run["dag_run_id"])

    def runs(self, dag_id: str) -> list[dict[str, Any]]:
        return list(self.call("GET", f"/dags/{dag_id}/dagRuns?limit=100&order_by=start_date")["dag_runs"])

    def wait(self, dag_id: str, run_id: str, timeout: float = 1500) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            state = str(self.call("GET", f"/dags/{dag_id}/dagRuns/{run_id}")["state"])
            if state in ("success", "failed"):
                return state
            time.sleep(3)
        raise AssertionError(
            f"{dag_id} {run_id} still running after {timeout} s: {self.tasks(dag_id, run_id)}"
        )

    def task_instances(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        out = self.call("GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances?limit=500")
        return list(out["task_instances"])

    def tasks(self, dag_id: str, run_id: str) -> dict[str, str]:
        return {t["task_id"]: t["state"] for t in self.task_instances(dag_id, run_id)}


class Live:
    def __init__(self, tmp: Path, settings: Settings, env: dict[str, str], api: AirflowApi) -> None:
        self.tmp, self.settings, self.env, self.api = tmp, settings, env, api
        self.lake = Lake(settings)
        self.home = Path(env["AIRFLOW_HOME"])
        self.pipeline_run: str | None = None

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [str(LAKEHOUSE), *args], env=self.env, capture_output=True, text=True, timeout=300, check=False
        )
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
        return proc

    def count(self, table: str, where: str = "") -> int:
        con = self.lake.duckdb_with_delta()
        row = con.execute(
            f"SELECT count(*) FROM delta_scan('{self.lake.table_uri(table)}') {where}"
        ).fetchone()
        return int(row[0]) if row else 0

    def version(self, table: str) -> int:
        return int(self.lake.table(table).version())

    def run_ok(self, dag_id: str, conf: dict[str, Any] | None = None) -> tuple[str, dict[str, str]]:
        # DAGs start paused, and a paused DAG's triggered run stays queued: unpause it first, as
        # the README tells a user to
        self.api.unpause(dag_id)
        run_id = self.api.trigger(dag_id, conf)
        state = self.api.wait(dag_id, run_id)
        tasks = self.api.tasks(dag_id, run_id)
        assert state == "success", (dag_id, tasks, self.task_log_tail(dag_id, run_id, tasks))
        assert set(tasks.values()) == {"success"}, tasks
        return run_id, tasks

    def task_log_tail(self, dag_id: str, run_id: str, tasks: dict[str, str]) -> str:
        failed = [t for t, s in tasks.items() if s == "failed"]
        logs = []
        for task in failed:
            for path in (self.home / "logs").rglob(f"*{task}*/*.log"):
                if run_id in str(path):
                    logs.append(f"--- {path}\n" + path.read_text()[-3000:])
        return "\n".join(logs)

    def failures(self) -> list[dict[str, Any]]:
        path = self.home / "logs" / "lakehouse-failures.jsonl"
        return [json.loads(ln) for ln in path.read_text().splitlines() if ln.strip()] if path.exists() else []


def _airflow_env(tmp: Path, config_file: Path, port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "LAKEHOUSE_", "OPENLINEAGE"))}
    env.update(
        {
            "AIRFLOW_HOME": str(tmp / "airflow"),
            "AIRFLOW_PORT": str(port),
            "LAKEHOUSE_CONFIG": str(config_file),
            "LAKEHOUSE_SCHEDULE": "none",  # triggered by the tests only
            "LAKEHOUSE_MAINTENANCE_SCHEDULE": "none",
            "LAKEHOUSE_RETRY_DELAY_S": "2",
            "NO_COLOR": "1",
        }
    )
    return env


@pytest.fixture(scope="module")
def live(
    tmp_path_factory: pytest.TempPathFactory, pg_service: Any, session_state_dir: Path
) -> Iterator[Live]:
    require_airflow()
    assert DBT.exists(), f"dbt is part of these runs: run make setup-dbt ({DBT} missing)"
    load_bundle(
        "kafka"
    )  # the local Apache Kafka broker is part of these runs (fails with the reason if missing)
    tmp = tmp_path_factory.mktemp("live")
    tag = uuid.uuid4().hex[:6]
    source_db, serving_db = f"live_src_{tag}", f"live_serve_{tag}"
    with psycopg.connect(pg_service.dsn("postgres"), autocommit=True) as admin:
        for db in (source_db, serving_db, "airflow"):
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(db)))
        for db in (source_db, serving_db):
            admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(db)))
    config = yaml.safe_load((REPO / "environments" / "local" / "pipeline.yaml").read_text())
    config.update({"lake_root": str(tmp / "lake"), "state_dir": str(session_state_dir)})
    config["postgres"].update({"port": pg_service.port, "source_db": source_db, "serving_db": serving_db})
    config["generator"].update(
        {
            "events": 3000,
            "event_files": 2,
            "users": 300,
            "customers": 150,
            "products": 30,
            "orders": 400,
            "days": 2,
        }
    )
    config["streaming"].update({"broker_port": free_port(), "topic": f"live-{tag}"})
    config_file = tmp / "pipeline.yaml"
    config_file.write_text(yaml.safe_dump(config))
    mp = pytest.MonkeyPatch()
    mp.setenv("LAKEHOUSE_CONFIG", str(config_file))
    for var in ("LAKEHOUSE_LAKE_ROOT", "LAKEHOUSE_STATE_DIR", "LAKEHOUSE_PG_PORT", "LAKEHOUSE_EVENTS"):
        mp.delenv(var, raising=False)
    settings = load_settings("local")
    jobs.generate_source(settings)
    jobs.generate_events(Lake(settings), settings)
    env = _airflow_env(tmp, config_file, free_port())
    start = subprocess.run(
        ["bash", str(LOCAL_SH), "start"], env=env, capture_output=True, text=True, timeout=600, check=False
    )
    api = AirflowApi(f"http://127.0.0.1:{env['AIRFLOW_PORT']}")
    try:
        assert start.returncode == 0, start.stdout[-3000:] + start.stderr[-3000:]
        deadline = time.monotonic() + 300
        dags: set[str] = set()
        while time.monotonic() < deadline:
            dags = {d["dag_id"] for d in api.call("GET", "/dags?limit=100")["dags"]}
            if dags >= DAG_IDS:
                break
            time.sleep(3)
        assert dags >= DAG_IDS, dags
        live = Live(tmp, settings, env, api)
        live.cli("stream", "produce", "--count", "400", "--max", "--seed", "7")
        yield live
    finally:
        subprocess.run(
            ["bash", str(LOCAL_SH), "stop"], env=env, capture_output=True, timeout=120, check=False
        )
        local_broker(settings).stop()
        mp.undo()


def test_asset_chain_ingest_silver_gold_runs_by_itself(live: Live) -> None:
    """One triggered ingest run (files, PostgreSQL, Kafka): its gate publishes lakehouse_bronze,
    which starts lakehouse_silver, whose gate starts lakehouse_gold (one task per dbt model)."""
    for dag_id in ("lakehouse_ingest", "lakehouse_silver", "lakehouse_gold"):
        live.api.unpause(dag_id)
    _, tasks = live.run_ok("lakehouse_ingest")
    assert set(tasks) == {
        "bronze_postgres",
        "bronze_landing",
        "bronze_kafka",
        "gate_bronze",
        "check_sources_bronze",
    }
    assert live.count("bronze.events", "WHERE source_system = 'kafka'") >= 400
    assert live.count("bronze.events", "WHERE source_system = 'landing'") >= 3000
    assert live.count("bronze.customers") == 150 and live.count("bronze.orders") == 400
    for dag_id in ("lakehouse_silver", "lakehouse_gold"):
        deadline = time.monotonic() + 300
        runs: list[dict[str, Any]] = []
        while time.monotonic() < deadline and not runs:
            runs = live.api.runs(dag_id)
            time.sleep(3)
        assert len(runs) == 1 and runs[0]["run_type"] == "asset_triggered", runs
        state = live.api.wait(dag_id, runs[0]["dag_run_id"])
        tasks = live.api.tasks(dag_id, runs[0]["dag_run_id"])
        assert state == "success", (tasks, live.task_log_tail(dag_id, runs[0]["dag_run_id"], tasks))
        if dag_id == "lakehouse_silver":
            assert live.count("silver.events") > 3000 and live.count("silver.orders") == 400
        else:
            models = [t for t in tasks if t.startswith("dbt.")]
            assert len(models) >= 20, sorted(tasks)  # the per-model fan-out, as deployed
            assert {"gate_gold", "gold_publish"} <= set(tasks)
    with psycopg.connect(live.settings.postgres.serving_dsn) as con:
        summary = con.execute("SELECT total_orders, total_events FROM gold.rpt_executive_summary").fetchone()
    # orders of the reported period (the generated orders, less those outside it) and every event
    assert summary is not None and 0 < summary[0] <= 400 and summary[1] > 3000, summary
    for dag_id in ("lakehouse_ingest", "lakehouse_silver", "lakehouse_gold"):
        live.api.unpause(dag_id, paused=True)  # the DAGs below must not start the chain again


def test_pipeline_runs_every_layer_with_its_fan_out(live: Live) -> None:
    """lakehouse_pipeline, as the README tells a user to trigger it: new Kafka events and a new
    source change reach bronze, silver and the published gold marts."""
    live.cli("stream", "produce", "--count", "200", "--max", "--seed", "8")
    live.cli("generate", "changes", "--batch", "1")
    kafka_before = live.count("bronze.events", "WHERE source_system = 'kafka'")
    silver_before = live.version("silver.events")  # the chain above built it
    run_id, tasks = live.run_ok("lakehouse_pipeline")
    live.pipeline_run = run_id  # the screenshot below shows this run
    assert {
        "bronze_postgres",
        "bronze_landing",
        "bronze_kafka",
        "gate_bronze",
        "silver",
        "gate_silver",
    } <= set(tasks)
    assert len([t for t in tasks if t.startswith("dbt.")]) >= 20 and "gold_publish" in tasks
    # the 200 events, with the few duplicate and broken records the producer injects
    assert (
        kafka_before + 200
        <= live.count("bronze.events", "WHERE source_system = 'kafka'")
        <= kafka_before + 220
    )
    assert live.version("silver.events") > silver_before


def _pixels(path: Path) -> list[tuple[int, int, int]]:
    """The RGB pixels of an 8-bit RGB/RGBA PNG (what Chromium writes), PNG filters undone."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", path
    width, height, depth, colour = struct.unpack(">IIBB", data[16:26])
    assert depth == 8 and colour in (2, 6), (depth, colour)
    pos, idat = 8, b""
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        if data[pos + 4 : pos + 8] == b"IDAT":
            idat += data[pos + 8 : pos + 8 + length]
        pos += 12 + length
    raw, bpp = zlib.decompress(idat), 3 if colour == 2 else 4
    stride, prev, out = width * bpp, bytearray(width * bpp), []
    for y in range(height):
        kind, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1 : (y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b, c = prev[i], prev[i - bpp] if i >= bpp else 0
            if kind == 1:
                line[i] = (line[i] + a) & 0xFF
            elif kind == 2:
                line[i] = (line[i] + b) & 0xFF
            elif kind == 3:
                line[i] = (line[i] + (a + b) // 2) & 0xFF
            elif kind == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 0xFF
        out += [(line[x], line[x + 1], line[x + 2]) for x in range(0, stride, bpp)]
        prev = line
    return out


def test_screenshot_of_the_pipeline_runs_grid_is_green(live: Live) -> None:
    """The user's view: the run's page in the Airflow UI, opened by headless Chromium
    (playwright-core): the grid lists the run's tasks, its boxes are green and none is red."""
    assert CHROMIUM, "Debian chromium is needed for the screenshot: run make setup-dashboard-browser"
    assert PLAYWRIGHT.exists(), (
        "playwright-core is needed for the screenshot: run make setup-dashboard-browser"
    )
    assert live.pipeline_run, "lakehouse_pipeline ran in the test before"
    url = f"{live.api.base}/dags/lakehouse_pipeline/runs/{live.pipeline_run}"
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    SCREENSHOT.unlink(missing_ok=True)
    proc = subprocess.run(
        ["node", str(GRID_JS), "--url", url, "--screenshot", str(SCREENSHOT), "--chromium", CHROMIUM],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0 and SCREENSHOT.exists(), proc.stdout[-2000:] + proc.stderr[-2000:]
    report = json.loads(proc.stdout)
    (live.tmp / "grid-report.json").write_text(json.dumps(report, indent=2))
    tasks = set(report["tasks"])
    assert {"bronze_kafka", "gate_bronze", "silver", "gate_silver", "gate_gold", "gold_publish"} <= tasks, (
        report
    )
    width = 1600
    box = report["grid"]
    grid = [
        p
        for i, p in enumerate(_pixels(SCREENSHOT))
        if box["top"] <= i // width <= box["bottom"] and i % width <= box["right"]
    ]
    green = sum(1 for r, g, b in grid if g > r + 50 and g > b + 20)
    red = sum(1 for r, g, b in grid if r > g + 80 and r > b + 80)
    (live.tmp / "grid-pixels.json").write_text(json.dumps({"green": green, "red": red}))
    # one row per task (the dbt task group is one), its box about 180 green pixels when it succeeded
    assert green >= 150 * len(tasks), (green, red, sorted(tasks), SCREENSHOT)
    assert red == 0, (green, red, SCREENSHOT)


def test_maintenance_compacts_and_vacuums(live: Live) -> None:
    before = {t: live.version(t) for t in ("bronze.events", "silver.events")}
    run_id, tasks = live.run_ok("lakehouse_maintenance")
    assert set(tasks) == {"optimize", "vacuum", "checkpoint"}
    history = live.lake.table("bronze.events").history(5)
    assert any(h.get("operation") == "OPTIMIZE" for h in history), history
    assert live.version("bronze.events") > before["bronze.events"]
    xcom = live.api.call(
        "GET", f"/dags/lakehouse_maintenance/dagRuns/{run_id}/taskInstances/optimize/xcomEntries"
    )
    assert xcom["total_entries"] >= 1, xcom


def test_backfill_lands_and_ingests_a_date_range(live: Live) -> None:
    before = live.count("bronze.events")
    _, tasks = live.run_ok("lakehouse_backfill", {"start": "2026-10-01", "end": "2026-10-02"})
    assert set(tasks) == {"land_days", "bronze_landing", "gate_bronze"}
    assert live.count("bronze.events") > before
    # bronze keeps the raw rows with the file each came from: both days' landed files were read
    for day in ("2026-10-01", "2026-10-02"):
        assert live.count("bronze.events", f"WHERE source_file LIKE 'backfill/{day}/%'") > 0, day


def test_restore_makes_a_new_version_with_the_old_rows(live: Live) -> None:
    first = live.lake.table("silver.orders")
    first.load_as_version(0)
    rows_v0 = first.to_pyarrow_table().num_rows
    latest = live.version("silver.orders")
    live.run_ok("lakehouse_restore", {"table": "silver.orders", "version": 0})
    assert live.version("silver.orders") == latest + 1
    assert live.lake.table("silver.orders").to_pyarrow_table().num_rows == rows_v0


def test_a_task_whose_tool_is_missing_fails_at_once(live: Live) -> None:
    """The pipeline CLI is not where the Variable says: the first task fails on its first try
    (exit 127 is not retried, though the task has retries), nothing after it runs."""
    live.api.call(
        "PATCH", "/variables/lakehouse_bin", {"key": "lakehouse_bin", "value": "/nonexistent/lakehouse"}
    )
    try:
        live.api.unpause("lakehouse_maintenance")
        run_id = live.api.trigger("lakehouse_maintenance")
        assert live.api.wait("lakehouse_maintenance", run_id) == "failed"
    finally:
        live.api.call("PATCH", "/variables/lakehouse_bin", {"key": "lakehouse_bin", "value": str(LAKEHOUSE)})
    tis = {t["task_id"]: t for t in live.api.task_instances("lakehouse_maintenance", run_id)}
    assert tis["optimize"]["state"] == "failed" and tis["optimize"]["try_number"] == 1, tis["optimize"]
    assert tis["optimize"]["max_tries"] >= 1  # it could have retried: the exit code said not to
    assert tis["vacuum"]["state"] == tis["checkpoint"]["state"] == "upstream_failed", tis
    notices = [f for f in live.failures() if f["run_id"] == run_id and f["task_id"] == "optimize"]
    assert len(notices) == 1 and "tool missing (exit 127)" in notices[0]["summary"], notices
