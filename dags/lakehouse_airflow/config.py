"""Where things are and how tasks run, read from the environment when the DAGs are parsed.

`make airflow` (dags/airflow.mk) and the Airflow Helm values on the cluster set these; the
defaults fit a checkout where `make setup` made .venv/ and (optionally) `make setup-dbt` .venv-dbt/.

LAKEHOUSE_ROOT              repository root (default: the parent of dags/)
LAKEHOUSE_ENV               environments/<env>/pipeline.yaml (default: local)
LAKEHOUSE_BIN               the pipeline CLI (default: <root>/.venv/bin/lakehouse); the Airflow
                            Variable `lakehouse_bin` overrides it at run time
LAKEHOUSE_DBT_BIN           dbt in its own virtualenv (default: <root>/.venv-dbt/bin/dbt)
LAKEHOUSE_DBT_DIR           the dbt project (default: <root>/dbt)
LAKEHOUSE_DBT_MANIFEST      its parsed manifest, for one task per model (default:
                            <root>/.state/airflow/dbt/manifest.json, written by `make airflow`)
LAKEHOUSE_EXECUTION         local (subprocess) | kubernetes (KubernetesPodOperator)
LAKEHOUSE_SPARK_STEPS       layers the environment's settings give to Spark (`engines`: bronze, silver),
                            comma-separated; the cluster's deploy role derives it from the settings.
                            Each Spark job of such a layer (bronze: landing files, PostgreSQL, Kafka;
                            silver; their maintenance) runs `lakehouse spark ...`: with
                            LAKEHOUSE_EXECUTION=kubernetes a SparkApplication of the Spark image
                            (SparkKubernetesOperator), locally the same CLI as a subprocess. Unset,
                            everything runs on the embedded engine as `lakehouse bronze|silver` decide.
LAKEHOUSE_IMAGE             pipeline image for KubernetesPodOperator
LAKEHOUSE_SPARK_IMAGE       Spark image of those SparkApplications (pipelines/image/spark/Dockerfile)
LAKEHOUSE_K8S_NAMESPACE     namespace of the pipeline pods (default: lakehouse)
LAKEHOUSE_SCHEDULE          cron or preset of the ingest DAG (default: @hourly; none: manual)
LAKEHOUSE_MAINTENANCE_SCHEDULE   (default: @daily; none: manual)
LAKEHOUSE_NOTIFY            failure hook: file:///path.jsonl | http(s)://webhook | cmd:<shell command>
                            (default: file://<AIRFLOW_HOME>/logs/lakehouse-failures.jsonl); the
                            Airflow Variable `lakehouse_notify` overrides it at run time
LAKEHOUSE_TASK_TIMEOUT_MIN  execution_timeout of a pipeline task (default: 60)
LAKEHOUSE_RETRIES           retries of a pipeline task after a transient failure (default: 2)
LAKEHOUSE_RETRY_DELAY_S     first retry delay in seconds, doubled per retry (default: 30)
LAKEHOUSE_KAFKA             1/0: ingest from Kafka (`lakehouse stream consume --available-now`;
                            default: on; `make airflow` starts the local broker)
"""

from __future__ import annotations

import os
from pathlib import Path

DAGS_DIR = Path(__file__).resolve().parent.parent


def _path(var: str, default: Path) -> Path:
    return Path(os.environ[var]).resolve() if os.environ.get(var) else default


ROOT = _path("LAKEHOUSE_ROOT", DAGS_DIR.parent)
ENV = os.environ.get("LAKEHOUSE_ENV", "local")
LAKEHOUSE_BIN = str(_path("LAKEHOUSE_BIN", ROOT / ".venv" / "bin" / "lakehouse"))
DBT_BIN = _path("LAKEHOUSE_DBT_BIN", ROOT / ".venv-dbt" / "bin" / "dbt")
DBT_DIR = _path("LAKEHOUSE_DBT_DIR", ROOT / "dbt")
DBT_MANIFEST = _path("LAKEHOUSE_DBT_MANIFEST", ROOT / ".state" / "airflow" / "dbt" / "manifest.json")
EXECUTION = os.environ.get("LAKEHOUSE_EXECUTION", "local")
SPARK_STEPS = tuple(s.strip() for s in os.environ.get("LAKEHOUSE_SPARK_STEPS", "").split(",") if s.strip())
IMAGE = os.environ.get("LAKEHOUSE_IMAGE", "ghcr.io/ampere-lakehouse/pipelines:0.1.0")
SPARK_IMAGE = os.environ.get("LAKEHOUSE_SPARK_IMAGE", "ampere-lakehouse/spark:0.1.0")
K8S_NAMESPACE = os.environ.get("LAKEHOUSE_K8S_NAMESPACE", "lakehouse")


def _schedule(var: str, default: str) -> str | None:
    """A cron expression or preset; "none" makes the DAG manual (triggered only)."""
    value = os.environ.get(var, default).strip()
    return None if value.lower() in ("none", "manual") else value


SCHEDULE = _schedule("LAKEHOUSE_SCHEDULE", "@hourly")
MAINTENANCE_SCHEDULE = _schedule("LAKEHOUSE_MAINTENANCE_SCHEDULE", "@daily")
TASK_TIMEOUT_MIN = int(os.environ.get("LAKEHOUSE_TASK_TIMEOUT_MIN", "60"))
RETRIES = int(os.environ.get("LAKEHOUSE_RETRIES", "2"))
RETRY_DELAY_S = int(os.environ.get("LAKEHOUSE_RETRY_DELAY_S", "30"))
K8S_DIR = DAGS_DIR / "k8s"

if EXECUTION not in ("local", "kubernetes"):
    raise ValueError(f"LAKEHOUSE_EXECUTION must be local or kubernetes (got {EXECUTION!r})")
SPARK_LAYERS = ("bronze", "silver")
if set(SPARK_STEPS) - set(SPARK_LAYERS):
    raise ValueError(
        f"LAKEHOUSE_SPARK_STEPS={','.join(SPARK_STEPS)!r}: Spark writes the layers "
        f"{', '.join(SPARK_LAYERS)} (the settings' `engines`); name only those"
    )


def on_spark(layer: str) -> bool:
    """True when the environment gives `layer`'s jobs to Spark."""
    return layer in SPARK_STEPS


def kafka_enabled() -> bool:
    flag = os.environ.get("LAKEHOUSE_KAFKA", "1")
    return flag.strip().lower() in ("1", "true", "yes", "on")


def dbt_manifest() -> Path | None:
    """dbt's manifest.json (from `dbt parse`: `make airflow` writes it), when there is one."""
    manifest = DBT_MANIFEST
    return manifest if manifest.is_file() and (DBT_DIR / "dbt_project.yml").is_file() else None
