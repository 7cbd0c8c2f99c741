"""Land generator events for a date range: each day's source events (idempotent: a day already
landed is left alone), ingested into bronze exactly once, then the bronze gate. Publishing
`lakehouse_bronze` then runs silver and gold through their Assets. (Classifying a range that
silver already holds again, after a rule change, is the lakehouse_reclassify DAG.)

Trigger with parameters, e.g. `airflow dags trigger lakehouse_backfill -c '{"start": "2026-10-01",
"end": "2026-10-07"}'`, or from the UI's trigger form."""

from __future__ import annotations

from airflow.sdk import DAG, Param
from lakehouse_airflow import tasks

with DAG(
    dag_id="lakehouse_backfill",
    schedule=None,
    description="Backfill a date range through bronze (silver and gold follow by Asset)",
    tags=["lakehouse", "backfill"],
    doc_md=__doc__,
    params={
        "start": Param("2026-10-31", type="string", format="date", description="first day"),
        "end": Param(
            "2026-10-31",
            type="string",
            format="date",
            description="last day (inclusive)",
        ),
    },
    **tasks.DAG_KWARGS,
) as dag:
    land = tasks.lakehouse(
        "land_days",
        "generate events",
        "--from",
        "{{ params.start }}",
        "--to",
        "{{ params.end }}",
        "--json",
    )
    ingest = tasks.bronze_landing()
    land >> ingest >> tasks.gate("bronze", publish=True)
