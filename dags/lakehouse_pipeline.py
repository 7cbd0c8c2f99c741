"""The whole lakehouse in one run: sources -> bronze -> gate -> silver -> gate -> gold (dbt) ->
gate -> publish. Manual (or `airflow dags test lakehouse_pipeline`); the day-to-day schedule is
the layer DAGs chained by Assets (lakehouse_ingest -> lakehouse_silver -> lakehouse_gold)."""

from __future__ import annotations

from airflow.sdk import DAG
from lakehouse_airflow import tasks

with DAG(
    dag_id="lakehouse_pipeline",
    schedule=None,
    description="Full pipeline: ingest -> bronze -> silver -> gold, quality gates between layers",
    tags=["lakehouse", "pipeline"],
    doc_md=__doc__,
    **tasks.DAG_KWARGS,
) as dag:
    *_, bronze_gate = tasks.ingest()
    silver_first, silver_gate = tasks.silver()
    gold_first, *_ = tasks.gold()
    bronze_gate >> silver_first
    silver_gate >> gold_first
