"""bronze -> silver whenever bronze changes (Asset `lakehouse_bronze`), then the silver gate,
which publishes `lakehouse_silver`."""

from __future__ import annotations

from airflow.sdk import DAG
from lakehouse_airflow import tasks

with DAG(
    dag_id="lakehouse_silver",
    schedule=[tasks.BRONZE],
    description="bronze -> silver (validate, quarantine, dedup, conform, SCD2), then the silver gate",
    tags=["lakehouse", "silver"],
    doc_md=__doc__,
    **tasks.DAG_KWARGS,
) as dag:
    tasks.silver(publish=True)
