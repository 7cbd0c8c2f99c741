"""Classify a date range of events again after a rule change: bronze's events of those days are
run through silver's current rules and replace the range in silver.events and the quarantine (one
commit per table, idempotent, reconciled: rows in the range before = after + moved to
quarantine), on the engine that writes silver. Then the silver gate, and gold rebuilt and
published as the gold DAG does.

Trigger with parameters, e.g. `airflow dags trigger lakehouse_reclassify -c '{"start":
"2026-10-01", "end": "2026-10-07"}'`, or from the UI's trigger form."""

from __future__ import annotations

from airflow.sdk import DAG, Param
from lakehouse_airflow import tasks

with DAG(
    dag_id="lakehouse_reclassify",
    schedule=None,
    description="Reclassify a date range from bronze into silver, then rebuild and publish gold",
    tags=["lakehouse", "silver", "backfill"],
    doc_md=__doc__,
    params={
        "start": Param("2026-10-31", type="string", format="date", description="first event date"),
        "end": Param(
            "2026-10-31",
            type="string",
            format="date",
            description="last event date (inclusive)",
        ),
    },
    **tasks.DAG_KWARGS,
) as dag:
    backfill = tasks.reclassify("{{ params.start }}", "{{ params.end }}")
    check = tasks.gate("silver")
    gold_first, *_ = tasks.gold()
    backfill >> check >> gold_first
