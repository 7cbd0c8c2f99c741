"""silver -> gold whenever silver changes (Asset `lakehouse_silver`): dbt models (one task each),
the gold gate, then publishing the marts to PostgreSQL (publishes `lakehouse_gold`)."""

from __future__ import annotations

from airflow.sdk import DAG
from lakehouse_airflow import tasks

with DAG(
    dag_id="lakehouse_gold",
    schedule=[tasks.SILVER],
    description="silver -> gold with dbt, the gold gate, publish to the serving database",
    tags=["lakehouse", "gold", "dbt"],
    doc_md=__doc__,
    **tasks.DAG_KWARGS,
) as dag:
    tasks.gold(publish=True)
