"""Wall time of a full `lakehouse_pipeline` DAG run under Airflow 3, with a per-task breakdown.

What is timed: `airflow dags test lakehouse_pipeline <date>` (.venv-airflow, SQLite metadata DB in
a temporary AIRFLOW_HOME) over the demo dataset (environments/local/pipeline.yaml: 1M events,
10k customers, 50k orders) already generated into the source database and the landing folder:
ingest -> bronze gate -> silver -> silver gate -> gold (dbt) -> gold gate -> publish. Per task:
the task instance's own duration from Airflow's metadata DB; "Airflow overhead" is the wall time
not spent inside any task (CLI start, DAG parsing, scheduling between tasks).

"in command" is the part of a task spent in its pipeline command (`lakehouse ...`, from the task
log's "Running command" to "Command exited"): the rest of a task's time is Airflow's (task start,
OpenLineage events; in the first task also the in-process execution API's start-up, ~5 s, which
`airflow dags test` pays once per run).

Everything runs on its own PostgreSQL (fresh state dir, free loopback port), stopped at the end.

    python -m bench.airflow_dag [--events N] [--quick] [--skip-gold]

Results: a table on the console, <state>/bench/airflow_dag.json and airflow_dag.md.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
AIRFLOW = REPO / ".venv-airflow" / "bin" / "airflow"
GOAL_SECONDS = 90.0
LOGICAL_DATE = "2026-11-02"
GOLD = r"(gold_build|gate_gold|gold_publish|dbt\..*)"


def _free_port() -> int:
    from lakehouse.services.process import free_port

    return free_port()


def _airflow_env(home: Path, config: Path, tmp: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "LAKEHOUSE_", "OPENLINEAGE"))}
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
            "AIRFLOW__OPENLINEAGE__TRANSPORT": json.dumps(
                {"type": "file", "log_file_path": str(tmp / "lineage-airflow.jsonl"), "append": True}
            ),
            "LAKEHOUSE_ROOT": str(REPO),
            "LAKEHOUSE_CONFIG": str(config),
            "LAKEHOUSE_KAFKA": "0",
            "LAKEHOUSE_RETRIES": "0",
            "LAKEHOUSE_LINEAGE_FILE": str(tmp / "lineage-pipeline.jsonl"),
            "LAKEHOUSE_NOTIFY": f"file://{tmp / 'failures.jsonl'}",
            "LAKEHOUSE_DBT_MANIFEST": str(tmp / "no-manifest.json"),
            "NO_COLOR": "1",
        }
    )
    return env


def _tasks(db: Path) -> list[dict[str, Any]]:
    with sqlite3.connect(db) as con:
        rows = con.execute(
            "SELECT task_id, state, start_date, end_date, duration FROM task_instance "
            "WHERE dag_id = 'lakehouse_pipeline' ORDER BY start_date"
        ).fetchall()
    return [
        {"task": t, "state": s, "start": a, "end": b, "seconds": round(float(d or 0.0), 2)}
        for t, s, a, b, d in rows
    ]


def command_seconds(log: str) -> dict[str, float]:
    """task -> seconds inside its pipeline command, from `airflow dags test`'s log."""
    out: dict[str, float] = {}
    task, started = "", None
    for line in log.splitlines():
        stamp, _, rest = line.partition(" ")
        if "[DAG TEST] starting task_id=" in rest:
            task, started = rest.split("task_id=", 1)[1].split()[0], None
        elif "Running command:" in rest or "Command exited with return code" in rest:
            try:
                at = datetime.fromisoformat(stamp)
            except ValueError:
                continue
            if "Running command:" in rest:
                started = at
            elif started is not None and task:
                out[task] = round(out.get(task, 0.0) + (at - started).total_seconds(), 2)
                started = None
    return out


def run(events: int | None, skip_gold: bool) -> dict[str, Any]:
    import yaml

    from lakehouse.app import jobs
    from lakehouse.core.settings import load_settings
    from lakehouse.core.storage import Lake
    from lakehouse.services.postgres import LocalPostgres

    base = load_settings("local")
    out_dir = base.state_path / "bench"
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="airflow-dag-", dir=out_dir))
    config = yaml.safe_load((REPO / "environments" / "local" / "pipeline.yaml").read_text())
    config.update({"lake_root": str(tmp / "lake"), "state_dir": str(tmp / "state")})
    config["postgres"]["port"] = _free_port()
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
    os.environ["LAKEHOUSE_CONFIG"] = str(config_file)
    settings = load_settings("local")
    pg = LocalPostgres.from_settings(settings)
    pg.start()
    try:
        t0 = time.perf_counter()
        jobs.generate_source(settings)
        jobs.generate_events(Lake(settings), settings)
        prep = time.perf_counter() - t0
        home = tmp / "airflow"
        home.mkdir()
        env = _airflow_env(home, config_file, tmp)
        subprocess.run([str(AIRFLOW), "db", "migrate"], env=env, capture_output=True, check=True, timeout=600)
        cmd = [str(AIRFLOW), "dags", "test", "lakehouse_pipeline", LOGICAL_DATE]
        if skip_gold:
            cmd += ["--mark-success-pattern", GOLD]
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=1800, check=False)
        wall = time.perf_counter() - t0
        (tmp / "dags-test.log").write_text(proc.stdout + proc.stderr)
        tasks = _tasks(home / "airflow.db")
        in_command = command_seconds(proc.stdout + proc.stderr)
        for t in tasks:
            t["command_seconds"] = in_command.get(t["task"])
    finally:
        pg.stop()
        os.environ.pop("LAKEHOUSE_CONFIG", None)
    in_tasks = sum(t["seconds"] for t in tasks)
    result = {
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "events": settings.generator.events,
        "customers": settings.generator.customers,
        "orders": settings.generator.orders,
        "cpus": os.cpu_count(),
        "data_generation_seconds": round(prep, 1),
        "wall_seconds": round(wall, 1),
        "in_tasks_seconds": round(in_tasks, 1),
        "airflow_overhead_seconds": round(wall - in_tasks, 1),
        "in_commands_seconds": round(sum(t["command_seconds"] or 0.0 for t in tasks), 1),
        "goal_seconds": GOAL_SECONDS,
        "met_goal": wall <= GOAL_SECONDS and proc.returncode == 0,
        "dag_run_ok": proc.returncode == 0,
        "gold": "marked success (not run)" if skip_gold else "run",
        "tasks": tasks,
        "log": str(tmp / "dags-test.log"),
    }
    (out_dir / "airflow_dag.json").write_text(json.dumps(result, indent=2))
    (out_dir / "airflow_dag.md").write_text(markdown(result))
    if result["dag_run_ok"]:
        shutil.rmtree(tmp / "lake", ignore_errors=True)
        shutil.rmtree(tmp / "state", ignore_errors=True)
    return result


def markdown(r: dict[str, Any]) -> str:
    lines = [
        f"# lakehouse_pipeline DAG run ({r['events']:,} events, {r['customers']:,} customers, {r['orders']:,} orders)",
        "",
        f"wall {r['wall_seconds']} s (goal <= {r['goal_seconds']:.0f} s: {'met' if r['met_goal'] else 'NOT met'}); "
        f"in tasks {r['in_tasks_seconds']} s; Airflow overhead {r['airflow_overhead_seconds']} s; "
        f"gold {r['gold']}; run {'succeeded' if r['dag_run_ok'] else 'FAILED'}",
        "",
        f"in the pipeline commands {r.get('in_commands_seconds', '?')} s; the rest of the wall time is "
        "Airflow's (CLI start, DAG parsing, task start-up incl. the in-process execution API, scheduling)",
        "",
        "| task | state | seconds | in command |",
        "| --- | --- | ---: | ---: |",
    ]
    lines += [
        f"| {t['task']} | {t['state']} | {t['seconds']:.1f} | "
        f"{'' if t.get('command_seconds') is None else format(t['command_seconds'], '.1f')} |"
        for t in r["tasks"]
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--events", type=int, default=None, help="events (default: the demo's, from pipeline.yaml)"
    )
    parser.add_argument("--quick", action="store_true", help="20,000 events (smoke run)")
    parser.add_argument("--skip-gold", action="store_true", help="mark the dbt/gold tasks successful")
    args = parser.parse_args(argv)
    if not AIRFLOW.exists():
        print(f"no Airflow virtualenv at {AIRFLOW.parent.parent}: run make setup-airflow", file=sys.stderr)
        return 2
    result = run(20_000 if args.quick else args.events, args.skip_gold)
    print(markdown(result))
    return 0 if result["dag_run_ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
