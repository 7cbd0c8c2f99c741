"""Driving the Airflow virtualenv (.venv-airflow) from the pipeline's pytest: Airflow and the
pipeline never share an interpreter, so tests talk to Airflow through subprocesses."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
DAGS = REPO / "dags"
AIRFLOW_VENV = REPO / ".venv-airflow"
AIRFLOW_PY = AIRFLOW_VENV / "bin" / "python"
AIRFLOW = AIRFLOW_VENV / "bin" / "airflow"
LAKEHOUSE = REPO / ".venv" / "bin" / "lakehouse"
DBT = REPO / ".venv-dbt" / "bin" / "dbt"

# Run inside .venv-airflow: parse dags/ the way the dag-processor does (bundle on sys.path) and
# describe every DAG as JSON.
INSPECT = r"""
import json, os, sys, warnings
from pathlib import Path
warnings.simplefilter("always")
from airflow.dag_processing.dagbag import BundleDagBag
folder = Path(sys.argv[1])
modes = json.loads(sys.argv[2])

def assets(objs):
    return sorted(getattr(o, "name", str(o)) for o in objs or [])

def describe(env):
    os.environ.update(env)
    for name in [m for m in sys.modules if m.split(".")[0] == "lakehouse_airflow"]:
        del sys.modules[name]  # the wiring reads the environment when imported
    with warnings.catch_warnings(record=True) as caught:
        bag = BundleDagBag(dag_folder=str(folder), bundle_path=folder, bundle_name="dags-folder")
    out = {"import_errors": {k: v for k, v in bag.import_errors.items()},
           "captured_warnings": {k: list(v) for k, v in bag.captured_warnings.items()},
           "dag_warnings": [str(w.message) for w in caught if str(folder) in str(w.filename)],
           "dags": {}}
    for dag_id, dag in bag.dags.items():
        describe_dag(out, dag_id, dag)
    for key in env:
        os.environ.pop(key, None)
    return out

def describe_dag(out, dag_id, dag):
    tasks = {}
    for t in dag.tasks:
        tasks[t.task_id] = {
            "operator": type(t).__name__,
            "owner": t.owner,
            "retries": t.retries,
            "execution_timeout": t.execution_timeout.total_seconds() if t.execution_timeout else None,
            "upstream": sorted(t.upstream_task_ids),
            "downstream": sorted(t.downstream_task_ids),
            "outlets": assets(t.outlets),
            "trigger_rule": str(t.trigger_rule),
            "has_failure_callback": bool(t.on_failure_callback),
            "command": getattr(t, "bash_command", None),
            "arguments": [str(a) for a in getattr(t, "arguments", None) or []] or None,
            "image": getattr(t, "image", None),
            "application_file": getattr(t, "application_file", None),
            "template_spec": getattr(t, "template_spec", None),
            "namespace": getattr(t, "namespace", None),
        }
    timetable = dag.timetable
    out["dags"][dag_id] = {
        "tags": sorted(dag.tags),
        "schedule": getattr(timetable, "summary", str(timetable)),
        "asset_triggers": assets(getattr(getattr(timetable, "asset_condition", None), "objects", None)),
        "catchup": dag.catchup,
        "max_active_runs": dag.max_active_runs,
        "has_failure_callback": bool(dag.on_failure_callback),
        "params": sorted(dag.params.keys()),
        "tasks": tasks,
    }

print("@@JSON@@" + json.dumps({name: describe(env) for name, env in modes.items()}, default=str))
"""


def require_airflow() -> None:
    if not AIRFLOW_PY.exists():
        pytest.skip(f"no Airflow virtualenv at {AIRFLOW_VENV}: run `make setup-airflow`")


def airflow_env(home: Path, **extra: str) -> dict[str, str]:
    """A clean Airflow environment: AIRFLOW_HOME in a temp dir, SQLite metadata DB, dags/."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "LAKEHOUSE_", "OPENLINEAGE"))}
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
            "LAKEHOUSE_ROOT": str(REPO),
            "NO_COLOR": "1",
        }
    )
    env.update(extra)
    return env


def inspect_dags(home: Path, modes: dict[str, dict[str, str]]) -> dict[str, Any]:
    """{mode: DagBag description} for each named set of extra environment variables."""
    require_airflow()
    home.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(
        [str(AIRFLOW_PY), "-c", INSPECT, str(DAGS), json.dumps(modes)],
        env=airflow_env(home),
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    payload = proc.stdout.split("@@JSON@@", 1)
    assert len(payload) == 2, proc.stdout[-2000:] + proc.stderr[-2000:]
    data: dict[str, Any] = json.loads(payload[1])
    return data
