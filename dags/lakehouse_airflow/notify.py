"""Failure notifications through a configurable hook (task and DAG `on_failure_callback`).

The target is the Airflow Variable `lakehouse_notify`, else LAKEHOUSE_NOTIFY, else a JSON-lines
file in Airflow's log folder:

* file:///path/to/failures.jsonl   append one JSON object per failure
* http://... or https://...        POST the JSON object (a Slack/Teams/Alertmanager-style webhook)
* cmd:<shell command>              run the command with the JSON object on its standard input
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


def default_target() -> str:
    home = Path(os.environ.get("AIRFLOW_HOME", Path.home() / "airflow"))
    return os.environ.get("LAKEHOUSE_NOTIFY") or f"file://{home / 'logs' / 'lakehouse-failures.jsonl'}"


def _target() -> str:
    try:
        from airflow.sdk import Variable

        return str(Variable.get("lakehouse_notify", default=default_target()))
    except Exception:  # no API server / metadata DB reachable from here: use the environment
        return default_target()


def message(context: dict[str, Any], *, run_level: bool = False) -> dict[str, Any]:
    ti = context.get("task_instance") or context.get("ti")
    dag_run = context.get("dag_run")
    exc = context.get("exception")
    dag_id = getattr(ti, "dag_id", None) or getattr(dag_run, "dag_id", None)
    # a DAG's callback sees the run's last task instance too: the run, not that task, failed
    task_id = None if run_level else getattr(ti, "task_id", None)
    error = str(exc) if exc else context.get("reason")
    where = f"{dag_id}.{task_id}" if task_id else f"{dag_id} run"
    return {
        "at": datetime.now(UTC).isoformat(),
        "dag_id": dag_id,
        "task_id": task_id,
        "run_id": getattr(dag_run, "run_id", None) or context.get("run_id"),
        "logical_date": str(context.get("logical_date")),
        "try_number": getattr(ti, "try_number", None),
        "error": error,
        # what a chat message or a pager shows: the task and the reason, in one line
        "summary": " ".join(f"{where} failed: {error or 'no reason given'}".split()),
    }


def send(payload: dict[str, Any], target: str) -> None:
    body = json.dumps(payload, default=str)
    if target.startswith("file://"):
        path = Path(target.removeprefix("file://"))
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a") as out:
            out.write(body + "\n")
    elif target.startswith(("http://", "https://")):
        req = urllib.request.Request(
            target,
            data=body.encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(req, timeout=10):
            pass
    elif target.startswith("cmd:"):
        subprocess.run(
            target.removeprefix("cmd:"),
            shell=True,
            input=body.encode(),
            check=True,
            timeout=30,
        )
    else:
        raise ValueError(f"lakehouse_notify: unsupported target {target!r} (file://, http(s)://, cmd:)")


def on_failure(context: dict[str, Any]) -> None:
    """A task's failure callback: never raises (a broken hook must not hide the real failure)."""
    _notify(message(context))


def on_dag_failure(context: dict[str, Any]) -> None:
    """A DAG run's failure callback (the failed task has said why in its own notice)."""
    _notify(message(context, run_level=True))


def _notify(payload: dict[str, Any]) -> None:
    target = _target()
    log.error("%s", payload["summary"])
    try:
        send(payload, target)
    except Exception as exc:
        log.error("lakehouse failure notification to %s failed: %s", target, exc)
