"""Table maintenance: OPTIMIZE (compaction; Z-order for large configured tables), VACUUM with the
retention from maintenance.vacuum_retention_hours, checkpoints. Each task prints a JSON report
(files compacted, bytes reclaimed), kept as its XCom. The tables of a layer given to Spark
(LAKEHOUSE_SPARK_STEPS) are compacted and vacuumed by delta-spark in tasks of their own, beside
the embedded ones, which leave them alone."""

from __future__ import annotations

from airflow.sdk import DAG
from lakehouse_airflow import config, tasks

with DAG(
    dag_id="lakehouse_maintenance",
    schedule=config.MAINTENANCE_SCHEDULE,
    description="OPTIMIZE / Z-order, VACUUM, checkpoints on every Delta table",
    tags=["lakehouse", "maintenance"],
    doc_md=__doc__,
    **tasks.DAG_KWARGS,
) as dag:
    optimize = tasks.lakehouse("optimize", "maintain optimize", "--json")
    vacuum = tasks.lakehouse("vacuum", "maintain vacuum", "--json")
    checkpoint = tasks.lakehouse("checkpoint", "maintain checkpoint", "--json")
    optimize >> vacuum >> checkpoint
    tasks.spark_maintenance()
