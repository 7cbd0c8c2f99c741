"""Wall time of a `lakehouse_pipeline` DAG run the way the README tells a user to run it, with a
per-task breakdown.

What is timed: Airflow 3 started as `make airflow` starts it (`dags/airflow-local.sh start`:
metadata DB in PostgreSQL, api-server, scheduler, dag-processor, triggerer, LocalExecutor at
parallelism 4, the dbt project parsed so gold has one task per dbt model), then
`lakehouse_pipeline` unpaused and triggered through the REST API as the UI does it, over the demo
dataset (environments/local/pipeline.yaml: 1M events, 10k customers, 50k orders) generated into
the source database and the landing folder, plus the demo's burst of 20,000 events on the local
Kafka-protocol broker: every source on. The wall time runs from the trigger to the run's end.

Per task: the task instance's duration from the REST API; "not in a task" is the wall time no task
was running (queueing, scheduling, task start-up between dependent tasks). Tasks overlap (Kafka
beside PostgreSQL + files; dbt models side by side), so the task durations add up to more than the
wall time. The load average of the machine over the run is part of the result: on a shared
machine it is most of the spread between runs.

Everything runs on its own services (fresh state dir, free loopback ports), stopped at the end.

    python -m bench.airflow_dag [--events N] [--quick]

Results: a table on the console, <state>/bench/airflow_dag.json and airflow_dag.md.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
AIRFLOW = REPO / ".venv-airflow" / "bin" / "airflow"
LOCAL_SH = REPO / "dags" / "airflow-local.sh"
LAKEHOUSE = REPO / ".venv" / "bin" / "lakehouse"
DBT = REPO / ".venv-dbt" / "bin" / "dbt"
DAG_ID = "lakehouse_pipeline"
KAFKA_EVENTS = 20_000  # the demo's burst (lakehouse demo's stream part)


def _free_port() -> int:
    from lakehouse.services.process import free_port

    return free_port()


class Api:
    """The REST API (v2) with the token the UI uses (SimpleAuthManager, every user an admin)."""

    def __init__(self, base: str) -> None:
        self.base, self._token = base, ""

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        if not self._token:
            with urllib.request.urlopen(f"{self.base}/auth/token", timeout=30) as resp:
                self._token = json.loads(resp.read())["access_token"]
        req = urllib.request.Request(
            f"{self.base}/api/v2{path}",
            data=json.dumps(body).encode() if body is not None else None,
            method=method,
            headers={"Authorization": f"Bearer {self._token}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=60) as resp:
            return json.loads(resp.read() or b"null")


def _seconds(start: str | None, end: str | None) -> float:
    if not start or not end:
        return 0.0
    return (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds()


def _idle_seconds(tasks: list[dict[str, Any]], start: str, end: str) -> float:
    """Seconds of [start, end] in which no task was running."""
    spans = sorted(
        (datetime.fromisoformat(t["start"]), datetime.fromisoformat(t["end"]))
        for t in tasks
        if t["start"] and t["end"]
    )
    cursor, idle = datetime.fromisoformat(start), 0.0
    for a, b in spans:
        if a > cursor:
            idle += (a - cursor).total_seconds()
        cursor = max(cursor, b)
    return idle + max(0.0, (datetime.fromisoformat(end) - cursor).total_seconds())


def _wait_for_dag(api: Api, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            api.call("GET", f"/dags/{DAG_ID}")
            return
        except OSError:
            time.sleep(3)
    raise SystemExit(f"{DAG_ID} was not parsed within {timeout:.0f} s")


def run(events: int | None) -> dict[str, Any]:
    import yaml

    from lakehouse.app import jobs
    from lakehouse.core.settings import load_settings
    from lakehouse.core.storage import Lake

    base = load_settings("local")
    out_dir = base.state_path / "bench"
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="airflow-dag-", dir=out_dir))
    config = yaml.safe_load((REPO / "environments" / "local" / "pipeline.yaml").read_text())
    config.update({"lake_root": str(tmp / "lake"), "state_dir": str(tmp / "state")})
    config["postgres"]["port"] = _free_port()
    config["streaming"].update({"broker_port": _free_port(), "metrics_port": _free_port()})
    if events is not None:
        g = config["generator"]
        scale = events / g["events"]
        g.update(
            events=events,
            event_files=max(2, min(g["event_files"], events // 50_000)),
            users=max(100, int(g["users"] * scale)),
            customers=max(100, int(g["customers"] * scale)),
            orders=max(100, int(g["orders"] * scale)),
        )
    config_file = tmp / "pipeline.yaml"
    config_file.write_text(yaml.safe_dump(config))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "LAKEHOUSE_", "OPENLINEAGE"))}
    port = _free_port()
    env.update(
        AIRFLOW_HOME=str(tmp / "airflow"),
        AIRFLOW_PORT=str(port),
        LAKEHOUSE_CONFIG=str(config_file),
        LAKEHOUSE_SCHEDULE="none",  # only the triggered run
        LAKEHOUSE_MAINTENANCE_SCHEDULE="none",
        NO_COLOR="1",
    )
    os.environ["LAKEHOUSE_CONFIG"] = str(config_file)
    settings = load_settings("local")
    kafka_events = min(KAFKA_EVENTS, settings.generator.events)
    api = Api(f"http://127.0.0.1:{port}")
    try:
        subprocess.run([str(LAKEHOUSE), "services", "start"], env=env, capture_output=True, check=True)
        t0 = time.perf_counter()
        jobs.generate_source(settings)
        jobs.generate_events(Lake(settings), settings)
        subprocess.run(
            [str(LAKEHOUSE), "stream", "produce", "--count", str(kafka_events), "--max"],
            env=env,
            capture_output=True,
            check=True,
        )
        prep = time.perf_counter() - t0
        start = subprocess.run(["bash", str(LOCAL_SH), "start"], env=env, capture_output=True, text=True)
        if start.returncode != 0:
            raise SystemExit(f"make airflow's start failed:\n{start.stdout[-2000:]}{start.stderr[-2000:]}")
        _wait_for_dag(api)
        api.call("PATCH", f"/dags/{DAG_ID}", {"is_paused": False})
        load_before = os.getloadavg()
        t0 = time.perf_counter()
        run_id = api.call("POST", f"/dags/{DAG_ID}/dagRuns", {"logical_date": None, "conf": {}})["dag_run_id"]
        loads = []
        while True:
            dag_run = api.call("GET", f"/dags/{DAG_ID}/dagRuns/{run_id}")
            if dag_run["state"] in ("success", "failed"):
                break
            loads.append(os.getloadavg()[0])
            time.sleep(2)
        wall = time.perf_counter() - t0
        tis = api.call("GET", f"/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances?limit=500")["task_instances"]
    finally:
        subprocess.run(["bash", str(LOCAL_SH), "stop"], env=env, capture_output=True, check=False)
        subprocess.run([str(LAKEHOUSE), "services", "stop"], env=env, capture_output=True, check=False)
        os.environ.pop("LAKEHOUSE_CONFIG", None)
    tasks = sorted(
        (
            {
                "task": t["task_id"],
                "state": t["state"],
                "start": t["start_date"],
                "end": t["end_date"],
                "seconds": round(float(t["duration"] or 0.0), 2),
            }
            for t in tis
        ),
        key=lambda t: t["start"] or "",
    )
    models = [t for t in tasks if t["task"].startswith("dbt.")]
    ok = dag_run["state"] == "success"
    result = {
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "how": "make airflow (LocalExecutor, parallelism 4), triggered through the REST API",
        "events": settings.generator.events,
        "kafka_events": kafka_events,
        "customers": settings.generator.customers,
        "orders": settings.generator.orders,
        "cpus": os.cpu_count(),
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_during": round(sum(loads) / len(loads), 2) if loads else None,
        "data_generation_seconds": round(prep, 1),
        "wall_seconds": round(wall, 1),
        "run_seconds": round(_seconds(dag_run["start_date"], dag_run["end_date"]), 1),
        "not_in_a_task_seconds": round(_idle_seconds(tasks, dag_run["start_date"], dag_run["end_date"]), 1)
        if dag_run["start_date"] and dag_run["end_date"]
        else None,
        "dbt_model_tasks": len(models),
        "dbt_seconds": round(_seconds(min(t["start"] for t in models), max(t["end"] for t in models)), 1)
        if models and all(t["start"] and t["end"] for t in models)
        else None,
        "dag_run_ok": ok,
        "tasks": tasks,
        "airflow_home": str(tmp / "airflow"),
    }
    (out_dir / "airflow_dag.json").write_text(json.dumps(result, indent=2))
    (out_dir / "airflow_dag.md").write_text(markdown(result))
    if ok:
        shutil.rmtree(tmp / "lake", ignore_errors=True)
        shutil.rmtree(tmp / "state", ignore_errors=True)
    return result


def markdown(r: dict[str, Any]) -> str:
    lines = [
        f"# lakehouse_pipeline DAG run ({r['events']:,} events + {r['kafka_events']:,} on Kafka, "
        f"{r['customers']:,} customers, {r['orders']:,} orders)",
        "",
        f"{r['how']}; {r['cpus']} CPUs, load average {r['load_average_during']} during the run "
        f"(1/5/15 min before it: {r['load_average_before']})",
        "",
        f"wall {r['wall_seconds']} s from the trigger (run {r['run_seconds']} s); no task running for "
        f"{r['not_in_a_task_seconds']} s of it; {r['dbt_model_tasks']} dbt model tasks in "
        f"{r['dbt_seconds']} s; run {'succeeded' if r['dag_run_ok'] else 'FAILED'}",
        "",
        "| task | state | seconds |",
        "| --- | --- | ---: |",
    ]
    lines += [f"| {t['task']} | {t['state']} | {t['seconds']:.1f} |" for t in r["tasks"]]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--events", type=int, default=None, help="events (default: the demo's, from pipeline.yaml)"
    )
    parser.add_argument("--quick", action="store_true", help="20,000 events (smoke run)")
    args = parser.parse_args(argv)
    if not AIRFLOW.exists():
        print(f"no Airflow virtualenv at {AIRFLOW.parent.parent}: run make setup-airflow", file=sys.stderr)
        return 2
    if not DBT.exists():
        print(
            f"no dbt at {DBT}: run make setup-dbt (gold's one task per dbt model needs it)", file=sys.stderr
        )
        return 2
    result = run(20_000 if args.quick else args.events)
    print(markdown(result))
    if not result["dbt_model_tasks"]:
        print("error: gold ran as one task, not one task per dbt model (dbt parse failed?)", file=sys.stderr)
        return 1
    return 0 if result["dag_run_ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
