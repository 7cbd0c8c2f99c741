"""Sources -> bronze on a schedule: PostgreSQL (incremental extract), landing files, Kafka
(available-now). The bronze gate publishes the `lakehouse_bronze` Asset, which starts
lakehouse_silver."""

from __future__ import annotations

from airflow.sdk import DAG
from lakehouse_airflow import config, tasks

with DAG(
    dag_id="lakehouse_ingest",
    schedule=config.SCHEDULE,
    description="Ingest sources into bronze, then the bronze quality gate",
    tags=["lakehouse", "bronze", "ingest"],
    doc_md=__doc__,
    **tasks.DAG_KWARGS,
) as dag:
    tasks.ingest(publish=True)
