"""Restore one Delta table to an earlier version (a new commit; history and time travel stay).
Trigger with `{"table": "silver.events", "version": 3}`; `lakehouse maintain history <table>`
lists the versions."""

from __future__ import annotations

from airflow.sdk import DAG, Param
from lakehouse_airflow import tasks

with DAG(
    dag_id="lakehouse_restore",
    schedule=None,
    description="Restore a table to a version",
    tags=["lakehouse", "maintenance", "restore"],
    doc_md=__doc__,
    params={
        "table": Param(
            "silver.events",
            type="string",
            pattern=r"^(bronze|silver|gold|ops)\.[a-z0-9_]+$",
        ),
        "version": Param(0, type="integer", minimum=0),
    },
    **tasks.DAG_KWARGS,
) as dag:
    restore = tasks.lakehouse(
        "restore",
        "maintain restore",
        "{{ params.table }}",
        "--version",
        "{{ params.version }}",
        "--json",
        retries=0,
    )
