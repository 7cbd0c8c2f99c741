"""End to end: `airflow dags test lakehouse_pipeline` (Airflow 3 in .venv-airflow, SQLite
metadata DB in a temp AIRFLOW_HOME) runs the real pipeline CLI on a small dataset against the
session's PostgreSQL; then the same logical date again (idempotent), then a bronze row that breaks
a contract (the gate fails and nothing downstream runs, and the failure hook fires).

The dbt part (gold) runs for real (as one task in lakehouse_pipeline); without dbt the test fails,
it never marks gold done. Then the layer DAGs the schedule chains by Assets, with every source on
(landing files, PostgreSQL, a Kafka-protocol broker): lakehouse_ingest, lakehouse_silver and
lakehouse_gold with one task per dbt model, as `make airflow` deploys it. Then maintenance,
backfill and restore on the same lake; then how failures are retried. (`make test-airflow` runs
every DAG again under a real scheduler, triggered through the REST API.)"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pyarrow as pa
import pytest
import yaml
from psycopg import sql

from airflow_helpers import AIRFLOW, DBT, LAKEHOUSE, REPO, airflow_env, require_airflow
from lakehouse.app import jobs
from lakehouse.core.jvm import load_bundle
from lakehouse.core.settings import Settings, load_settings
from lakehouse.core.storage import Lake
from lakehouse.services import local_broker
from lakehouse.services.process import free_port

pytestmark = pytest.mark.slow

LOGICAL_DATE = "2026-11-02"
GOLD_TASKS = r"(gold_build|gate_gold|gold_publish|dbt\..*)"


class Run:
    def __init__(
        self, proc: subprocess.CompletedProcess[str], seconds: float, states: dict[str, str]
    ) -> None:
        self.proc, self.seconds, self.states = proc, seconds, states


class E2E:
    def __init__(self, tmp: Path, settings: Settings, env: dict[str, str]) -> None:
        self.tmp, self.settings, self.env = tmp, settings, env
        self.lake = Lake(settings)
        self.db = tmp / "airflow" / "airflow.db"
        self.runs: list[Run] = []

    def dags_test(
        self,
        dag_id: str = "lakehouse_pipeline",
        mark_success: str | None = None,
        env: dict[str, str] | None = None,
        conf: dict[str, Any] | None = None,
    ) -> Run:
        cmd = [str(AIRFLOW), "dags", "test", dag_id, LOGICAL_DATE]
        if mark_success:
            cmd += ["--mark-success-pattern", mark_success]
        if conf:
            cmd += ["--conf", json.dumps(conf)]
        before = self._run_ids(dag_id)
        start = time.perf_counter()
        proc = subprocess.run(
            cmd, env={**self.env, **(env or {})}, capture_output=True, text=True, timeout=1400, check=False
        )
        seconds = time.perf_counter() - start
        (self.tmp / f"dags-test-{len(self.runs)}.log").write_text(proc.stdout + proc.stderr)
        new = [r for r in self._run_ids(dag_id) if r not in before]
        assert len(new) == 1, proc.stdout[-3000:] + proc.stderr[-3000:]
        run = Run(proc, seconds, self.task_states(dag_id, new[0]))
        self.runs.append(run)
        return run

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [str(LAKEHOUSE), *args], env=self.env, capture_output=True, text=True, timeout=300, check=False
        )
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
        return proc

    def dbt_manifest(self) -> Path:
        """dbt's manifest, parsed as `make airflow` parses it, so lakehouse_gold gets one task per
        model."""
        target = self.tmp / "dbt-target"
        if not (target / "manifest.json").exists():
            proc = subprocess.run(
                [
                    str(DBT),
                    "parse",
                    "--quiet",
                    "--target-path",
                    str(target),
                    "--log-path",
                    str(self.tmp / "dbt-logs"),
                ],
                cwd=REPO / "dbt",
                env={**self.env, "DBT_PROFILES_DIR": str(REPO / "dbt")},
                capture_output=True,
                text=True,
                timeout=300,
                check=False,
            )
            assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
        return target / "manifest.json"

    def _query(self, q: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with sqlite3.connect(self.db) as con:
            return con.execute(q, args).fetchall()

    def _run_ids(self, dag_id: str) -> list[str]:
        return [r[0] for r in self._query("SELECT run_id FROM dag_run WHERE dag_id = ?", (dag_id,))]

    def tries(self, dag_id: str, run_id: str) -> dict[str, int]:
        rows = self._query(
            "SELECT task_id, try_number FROM task_instance WHERE dag_id = ? AND run_id = ?", (dag_id, run_id)
        )
        return {task: tries for task, tries in rows}

    def last_run_id(self, dag_id: str) -> str:
        rows = self._run_ids(dag_id)
        assert rows, dag_id
        return rows[-1]

    def task_states(self, dag_id: str, run_id: str) -> dict[str, str]:
        rows = self._query(
            "SELECT task_id, state FROM task_instance WHERE dag_id = ? AND run_id = ?", (dag_id, run_id)
        )
        return {task: state for task, state in rows}

    def counts(self) -> dict[str, int]:
        names = [
            "bronze.events",
            "bronze.customers",
            "bronze.orders",
            "silver.events",
            "silver.dim_customer",
            "silver.orders",
        ]
        return {n: self.lake.table(n).count() for n in names}


@pytest.fixture(scope="module")
def e2e(tmp_path_factory: pytest.TempPathFactory, pg_service: Any, session_state_dir: Path) -> Iterator[E2E]:
    require_airflow()
    assert DBT.exists(), f"dbt is part of this run: run make setup-dbt ({DBT} missing)"
    load_bundle("kafka")  # the layer DAGs run with Kafka on (fails with the reason if the broker is missing)
    tmp = tmp_path_factory.mktemp("e2e")
    source_db, serving_db = "e2e_source", "e2e_serving"
    with psycopg.connect(pg_service.dsn("postgres"), autocommit=True) as admin:
        for db in (source_db, serving_db):
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(db)))
            admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(db)))
    config = yaml.safe_load((REPO / "environments" / "local" / "pipeline.yaml").read_text())
    config.update({"lake_root": str(tmp / "lake"), "state_dir": str(session_state_dir)})
    config["postgres"].update({"port": pg_service.port, "source_db": source_db, "serving_db": serving_db})
    config["generator"].update(
        {"events": 4000, "event_files": 2, "users": 400, "customers": 200, "products": 40, "orders": 600}
    )
    config["streaming"].update({"broker_port": free_port(), "topic": f"e2e-{tmp.name}"})
    config_file = tmp / "pipeline.yaml"
    config_file.write_text(yaml.safe_dump(config))
    mp = pytest.MonkeyPatch()
    mp.setenv("LAKEHOUSE_CONFIG", str(config_file))
    for var in ("LAKEHOUSE_LAKE_ROOT", "LAKEHOUSE_STATE_DIR", "LAKEHOUSE_PG_PORT", "LAKEHOUSE_EVENTS"):
        mp.delenv(var, raising=False)
    settings = load_settings("local")
    jobs.generate_source(settings)
    jobs.generate_events(Lake(settings), settings)
    home = tmp / "airflow"
    home.mkdir()
    env = airflow_env(
        home,
        LAKEHOUSE_CONFIG=str(config_file),
        LAKEHOUSE_KAFKA="0",  # no Kafka-protocol broker in this test: the Kafka task is left out
        LAKEHOUSE_RETRIES="0",  # a failure shows at once instead of after retry back-offs
        LAKEHOUSE_NOTIFY=f"file://{tmp / 'failures.jsonl'}",
        LAKEHOUSE_LINEAGE_FILE=str(tmp / "lineage-pipeline.jsonl"),
        LAKEHOUSE_DBT_MANIFEST=str(tmp / "no-manifest.json"),
        AIRFLOW__OPENLINEAGE__NAMESPACE="lakehouse-e2e",
        AIRFLOW__OPENLINEAGE__TRANSPORT=json.dumps(
            {"type": "file", "log_file_path": str(tmp / "lineage-airflow.jsonl"), "append": True}
        ),
    )
    migrate = subprocess.run(
        [str(AIRFLOW), "db", "migrate"], env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert migrate.returncode == 0, migrate.stdout[-2000:] + migrate.stderr[-2000:]
    try:
        yield E2E(tmp, settings, env)
    finally:
        local_broker(settings).stop()
        mp.undo()


def _events(path: Path) -> list[dict[str, Any]]:
    return (
        [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []
    )


def test_full_pipeline_run(e2e: E2E) -> None:
    run = e2e.dags_test()
    expected = {
        "bronze_postgres",
        "bronze_landing",
        "gate_bronze",
        "check_sources_bronze",
        "silver",
        "gate_silver",
        "check_sources_silver",
        "gold_build",
        "gate_gold",
        "gold_publish",
    }
    assert set(run.states) == expected
    layers = {t: s for t, s in run.states.items() if not t.startswith(("gold_", "gate_gold"))}
    assert set(layers.values()) == {"success"}, run.states
    counts = e2e.counts()
    assert counts["bronze.customers"] == 200 and counts["silver.dim_customer"] >= 200
    assert counts["bronze.orders"] == 600 and counts["silver.orders"] == 600
    assert counts["bronze.events"] >= 4000 and 0 < counts["silver.events"] <= counts["bronze.events"]
    assert run.states["gold_build"] == run.states["gate_gold"] == "success", run.states
    log = run.proc.stdout + run.proc.stderr
    assert run.proc.returncode == 0, log[-5000:]
    assert run.states["gold_publish"] == "success"
    pg = e2e.settings.postgres
    with psycopg.connect(pg.serving_dsn) as con:
        marts = con.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'gold'"
        ).fetchone()
    assert marts and marts[0] > 0, "gold marts were published to PostgreSQL"


def _job_type(event: dict[str, Any]) -> str:
    return str(event["job"].get("facets", {}).get("jobType", {}).get("jobType", ""))


def _parent_run(event: dict[str, Any]) -> str | None:
    parent = event["run"].get("facets", {}).get("parent", {}).get("run", {}).get("runId")
    return str(parent) if parent else None


def test_lineage_for_every_task_and_pipeline_job(e2e: E2E) -> None:
    airflow_events = _events(e2e.tmp / "lineage-airflow.jsonl")
    by_task: dict[str, set[str]] = {}
    for ev in airflow_events:
        name = ev["job"]["name"]
        if name.startswith("lakehouse_pipeline."):
            by_task.setdefault(name.split(".", 1)[1], set()).add(ev["eventType"])
    ran = ["bronze_postgres", "bronze_landing", "gate_bronze", "silver", "gate_silver"]
    ran += ["gold_build", "gate_gold", "gold_publish"]
    for task in ran:
        assert {"START", "COMPLETE"} <= by_task.get(task, set()), (task, sorted(by_task))
    # the pipeline's own jobs (and the job runs wrapping dbt's nodes) are children of their
    # Airflow task runs
    task_runs = {
        ev["run"]["runId"]: ev["job"]["name"]
        for ev in airflow_events
        if ev["eventType"] == "START" and ev["job"]["name"].startswith("lakehouse_pipeline.")
    }
    pipeline_events = _events(e2e.tmp / "lineage-pipeline.jsonl")
    own = [e for e in pipeline_events if e["eventType"] == "COMPLETE" and _job_type(e) == "JOB"]
    parents = {e["job"]["name"]: task_runs.get(_parent_run(e) or "") for e in own}
    if not own:
        pytest.skip(
            "the pipeline's jobs do not emit OpenLineage yet (lakehouse.lineage is not wired into jobs.py)"
        )
    assert all(parents.values()), parents
    assert parents.get("lakehouse.silver") == "lakehouse_pipeline.silver", parents
    assert parents.get("lakehouse.gold.build") == "lakehouse_pipeline.gold_build", parents
    assert parents.get("lakehouse.check.silver") == "lakehouse_pipeline.gate_silver", parents
    _assert_dbt_model_lineage(e2e, pipeline_events, own)


def _assert_dbt_model_lineage(
    e2e: E2E, pipeline_events: list[dict[str, Any]], own: list[dict[str, Any]]
) -> None:
    """Every model of dbt's manifest: START and COMPLETE with its input and output datasets, a
    child of the gold build's job run; sources named as the lake's Delta tables that silver wrote."""
    from lakehouse.core.lineage import dataset
    from lakehouse.gold.dbt import DbtProject

    manifest = json.loads((DbtProject.from_settings(e2e.settings).target_path / "manifest.json").read_text())
    models = {uid: n for uid, n in manifest["nodes"].items() if n["resource_type"] == "model"}
    assert len(models) >= 20, sorted(models)
    build_run = next(e["run"]["runId"] for e in own if e["job"]["name"] == "lakehouse.gold.build")
    by_model: dict[str, dict[str, dict[str, Any]]] = {}
    for e in pipeline_events:
        uid = e["job"].get("facets", {}).get("dbt_node", {}).get("unique_id")
        if _job_type(e) == "MODEL" and uid:
            by_model.setdefault(uid, {})[e["eventType"]] = e
    assert set(by_model) == set(models), sorted(set(models) ^ set(by_model))
    silver_outputs = {
        (o["namespace"], o["name"])
        for e in own
        if e["job"]["name"] == "lakehouse.silver"
        for o in e["outputs"]
    }
    for uid, node in models.items():
        done = by_model[uid].get("COMPLETE")
        assert done is not None and "START" in by_model[uid], (uid, sorted(by_model[uid]))
        assert _parent_run(done) == build_run, uid
        assert [o["name"].rsplit(".", 1)[-1] for o in done["outputs"]] == [node["alias"]], uid
        parents = [p for p in node["depends_on"]["nodes"] if p.startswith(("model.", "source."))]
        assert len(done["inputs"]) == len(parents), (uid, done["inputs"], parents)
        for parent in parents:
            if parent.startswith("source."):
                src = manifest["sources"][parent]
                lake_table = dataset(e2e.lake, f"{src['source_name']}.{src['name']}")
                assert lake_table in {(i["namespace"], i["name"]) for i in done["inputs"]}, (uid, parent)
                if src["source_name"] == "silver" and src["name"] in ("events", "orders", "dim_customer"):
                    assert lake_table in silver_outputs, (lake_table, silver_outputs)


def test_rerun_of_the_same_logical_date_is_idempotent(e2e: E2E) -> None:
    before = e2e.counts()
    versions = {n: e2e.lake.table(n).version() for n in ("silver.events", "silver.dim_customer")}
    # gold (dbt's full rebuild) and the read-only silver gate ran in the first run; this rerun
    # checks that ingest and silver write nothing twice
    run = e2e.dags_test(mark_success=f"(gate_silver|{GOLD_TASKS})")
    assert run.proc.returncode == 0, run.proc.stdout[-5000:]
    assert set(run.states.values()) == {"success"}, run.states
    assert e2e.counts() == before
    # no new data: silver committed nothing to its tables
    assert {n: e2e.lake.table(n).version() for n in versions} == versions
    con = e2e.lake.duckdb_with_delta()
    latest = con.execute(
        f"""SELECT step, sum(inserted), sum(updated), bool_and(balanced) FROM delta_scan('{e2e.lake.table_uri("ops.reconciliation")}')
            WHERE run_id = (SELECT max(run_id) FROM delta_scan('{e2e.lake.table_uri("ops.reconciliation")}') WHERE step = 'silver')
            GROUP BY step"""
    ).fetchall()
    assert latest == [("silver", 0, 0, True)]


def _published_totals(e2e: E2E) -> tuple[int, int]:
    with psycopg.connect(e2e.settings.postgres.serving_dsn) as con:
        row = con.execute("SELECT total_orders, total_events FROM gold.rpt_executive_summary").fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


@pytest.mark.timeout(1500)  # one dbt process per model, one task at a time under `airflow dags test`
def test_layer_dags_ingest_silver_gold_with_every_source(e2e: E2E) -> None:
    """The DAGs the schedule chains by Assets, each run by Airflow on the lake the pipeline built,
    with every source on: new Kafka events and a source change go through lakehouse_ingest,
    lakehouse_silver and lakehouse_gold (one task per dbt model) to the published marts."""
    e2e.cli("stream", "broker", "start")  # as `make airflow` starts it
    e2e.cli("stream", "produce", "--count", "300", "--max", "--seed", "11")
    e2e.cli("generate", "changes", "--batch", "1")
    kafka = "WHERE source_system = 'kafka'"
    con = e2e.lake.duckdb_with_delta()

    def count(table: str, where: str = "") -> int:
        row = con.execute(
            f"SELECT count(*) FROM delta_scan('{e2e.lake.table_uri(table)}') {where}"
        ).fetchone()
        return int(row[0]) if row else 0

    bronze_before = {t: e2e.lake.table(t).version() for t in ("bronze.customers", "bronze.orders")}
    silver_before = {t: e2e.lake.table(t).version() for t in ("silver.events", "silver.dim_customer")}
    silver_events = count("silver.events")
    _, events_before = _published_totals(e2e)

    ingest = e2e.dags_test("lakehouse_ingest", env={"LAKEHOUSE_KAFKA": "1"})
    assert ingest.states == dict.fromkeys(
        ("bronze_postgres", "bronze_landing", "bronze_kafka", "gate_bronze", "check_sources_bronze"),
        "success",
    ), ingest.states
    assert ingest.proc.returncode == 0, ingest.proc.stdout[-3000:]
    # the broker's 300 events, with the few duplicate and broken records the producer injects
    assert 300 <= count("bronze.events", kafka) <= 330
    # the source change reached bronze: an incremental extract committed to a source table
    assert any(e2e.lake.table(t).version() > v for t, v in bronze_before.items()), bronze_before

    silver = e2e.dags_test("lakehouse_silver")
    assert silver.states == dict.fromkeys(("silver", "gate_silver", "check_sources_silver"), "success"), (
        silver.states
    )
    assert all(e2e.lake.table(t).version() > v for t, v in silver_before.items()), silver_before
    assert silver_events < count("silver.events") <= silver_events + 300

    gold = e2e.dags_test("lakehouse_gold", env={"LAKEHOUSE_DBT_MANIFEST": str(e2e.dbt_manifest())})
    models = [t for t in gold.states if t.startswith("dbt.")]
    assert len(models) >= 20, sorted(gold.states)  # the per-model fan-out, as deployed
    assert set(gold.states) == {*models, "gate_gold", "gold_publish"}, sorted(gold.states)
    assert set(gold.states.values()) == {"success"}, gold.states
    assert gold.proc.returncode == 0, gold.proc.stdout[-3000:]
    _, events_after = _published_totals(e2e)
    assert events_after > events_before, (events_before, events_after)  # the Kafka events, published


def test_reclassify_backfill_maintenance_and_restore_dags(e2e: E2E) -> None:
    """The operational DAGs on the lake the pipeline built: reclassify replaces one event date of
    silver (one commit, the same rows under the same rules) and rebuilds and publishes gold;
    backfill lands and ingests a date range (a second commit of new files in bronze.events),
    maintenance compacts them (an OPTIMIZE commit), restore makes a new version with the old rows."""
    import pyarrow.compute as pc

    silver = e2e.lake.table("silver.events")
    day = pc.min(silver.to_pyarrow_table(columns=["event_date"])["event_date"]).as_py().isoformat()
    rows, version = silver.count(), silver.version()
    run = e2e.dags_test("lakehouse_reclassify", conf={"start": day, "end": day})
    assert run.states == dict.fromkeys(
        ("backfill_silver", "gate_silver", "gold_build", "gate_gold", "gold_publish"), "success"
    ), run.states
    silver = e2e.lake.table("silver.events")
    assert silver.version() == version + 1 and silver.count() == rows
    assert silver.history(1)[0]["operationParameters"]["predicate"].count(day) == 2, silver.history(1)

    events = e2e.counts()["bronze.events"]
    run = e2e.dags_test("lakehouse_backfill", conf={"start": "2026-10-01", "end": "2026-10-02"})
    assert run.states == {"land_days": "success", "bronze_landing": "success", "gate_bronze": "success"}, (
        run.states
    )
    assert e2e.counts()["bronze.events"] > events

    before = e2e.lake.table("bronze.events").version()
    run = e2e.dags_test("lakehouse_maintenance")
    assert run.states == {"optimize": "success", "vacuum": "success", "checkpoint": "success"}, run.states
    history = e2e.lake.table("bronze.events").history(10)
    assert e2e.lake.table("bronze.events").version() > before
    assert any(h.get("operation") == "OPTIMIZE" for h in history), [h.get("operation") for h in history]

    table = e2e.lake.table("bronze.events")  # versions: the pipeline's, the backfill's, OPTIMIZE
    latest = table.version()
    table.load_as_version(0)
    rows_v0 = table.to_pyarrow_table().num_rows
    run = e2e.dags_test("lakehouse_restore", conf={"table": "bronze.events", "version": 0})
    assert run.states == {"restore": "success"}, run.states
    restored = e2e.lake.table("bronze.events")
    assert restored.version() == latest + 1
    assert restored.to_pyarrow_table().num_rows == rows_v0


def test_failing_gate_stops_everything_downstream(e2e: E2E) -> None:
    dt = e2e.lake.table("bronze.events")
    schema = pa.schema(dt.schema())
    row = {f.name: None for f in schema}
    row.update(
        {
            "source_system": "landing",
            "ingestion_time": datetime.now(UTC),
            "batch_id": "broken-batch",
            "ordinal": 0,
        }
    )
    bad = pa.Table.from_pylist([row], schema=schema)  # value and raw_bytes both NULL: raw_payload_kept fails
    from deltalake import write_deltalake

    write_deltalake(e2e.lake.table_uri("bronze.events"), bad, mode="append")
    silver_version = e2e.lake.table("silver.events").version()
    notified_before = len(_events(e2e.tmp / "failures.jsonl"))
    run = e2e.dags_test()
    assert run.proc.returncode != 0
    assert run.states["bronze_postgres"] == run.states["bronze_landing"] == "success"
    assert run.states["gate_bronze"] == "failed"
    for task in ("silver", "gate_silver", "gold_build", "gate_gold", "gold_publish"):
        assert run.states[task] == "upstream_failed", (task, run.states)
    assert e2e.lake.table("silver.events").version() == silver_version
    failures = _events(e2e.tmp / "failures.jsonl")[notified_before:]
    assert any(f["task_id"] == "gate_bronze" and f["dag_id"] == "lakehouse_pipeline" for f in failures), (
        failures
    )


# A stand-in for the CLI that fails the way the CLI does (its exit codes are the real CLI's, see
# test_cli_errors): `maintain optimize` fails once as transient (75: a lock another run holds),
# `maintain vacuum` fails its check (1), `maintain checkpoint` would succeed.
FLAKY_CLI = """#!/usr/bin/env bash
case "$1 $2" in
  "maintain optimize")
    if [[ ! -e "$STATE/optimize-tried" ]]; then
      touch "$STATE/optimize-tried"
      echo "error: another 'optimize' run holds /lake/locks/optimize.lock; wait for it to finish" >&2
      exit 75
    fi
    echo '{"optimized": 0}' ;;
  "maintain vacuum")
    echo "quality gate 'silver' failed (silver.events:event_id_unique): downstream steps must not run"
    exit 1 ;;
  *) echo '{}' ;;
esac
"""


def test_transient_failures_retry_and_failed_checks_do_not(e2e: E2E) -> None:
    """Exit 75 is retried (after the backoff), exit 1 fails at once, and the failure hook names
    the task and the reason in one line."""
    state = e2e.tmp / "flaky"
    state.mkdir()
    cli = state / "lakehouse"
    cli.write_text(FLAKY_CLI)
    cli.chmod(0o755)
    notified_before = len(_events(e2e.tmp / "failures.jsonl"))
    run = e2e.dags_test(
        "lakehouse_maintenance",
        env={
            "AIRFLOW_VAR_LAKEHOUSE_BIN": str(cli),
            "STATE": str(state),
            "LAKEHOUSE_RETRIES": "2",
            "LAKEHOUSE_RETRY_DELAY_S": "1",
        },
    )
    assert run.states == {"optimize": "success", "vacuum": "failed", "checkpoint": "upstream_failed"}, (
        run.states
    )
    tries = e2e.tries("lakehouse_maintenance", e2e.last_run_id("lakehouse_maintenance"))
    assert tries["optimize"] == 2, tries  # one retry after the transient failure
    assert tries["vacuum"] == 1, tries  # a failed check is not tried again
    failures = _events(e2e.tmp / "failures.jsonl")[notified_before:]
    vacuum = [f for f in failures if f["task_id"] == "vacuum"]
    assert [f["summary"] for f in failures if f["task_id"] is None] == [
        "lakehouse_maintenance run failed: task_failure"
    ], failures
    assert len(vacuum) == 1, failures
    summary = vacuum[0]["summary"]
    assert "\n" not in summary and summary.startswith("lakehouse_maintenance.vacuum failed: "), summary
    assert "not retried" in summary and "silver.events:event_id_unique" in summary, summary
    assert not [f for f in failures if f["task_id"] == "optimize"], failures
