"""OpenLineage for the pipeline's own jobs: a START event before a step, COMPLETE (with output
statistics) or FAIL (with the error) after it, naming the datasets it reads and writes.

Where events go (first match wins):

* LAKEHOUSE_LINEAGE=off                no events
* LAKEHOUSE_LINEAGE_FILE=<path>        JSON lines appended to that file
* OPENLINEAGE_URL / OPENLINEAGE_CONFIG the OpenLineage client's own configuration: on the cluster
                                       an HTTP transport to Marquez (dags/k8s/openlineage-configmap.yaml)
* otherwise                            JSON lines in <state>/lineage/events.jsonl (local default)

When Airflow runs the step, OPENLINEAGE_PARENT_ID / OPENLINEAGE_ROOT_PARENT_ID
("namespace/job/run-uuid", set by the DAGs from the OpenLineage provider's macros) make each job
run a child of its Airflow task run, so Marquez shows task -> pipeline job -> tables.

Lineage never breaks a run: a transport error is logged and the step goes on.

dbt's models, snapshots and tests get their events from dbt's own virtualenv (dbt/scripts/run_dbt.py
with the `openlineage-dbt` library), sent to the same place: `dbt_spec` tells it where.

Usage:

    with lineage.job_run(settings, "silver", inputs=[...], outputs=[...]):
        ...the step...

or, for the pipeline's steps with their known datasets, `lineage.step(lake, "bronze", sources)`.
"""

from __future__ import annotations

import logging
import os
import traceback
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from lakehouse.core.settings import Settings
from lakehouse.core.storage import Lake

log = logging.getLogger(__name__)
PRODUCER = "https://github.com/ampere-lakehouse/ampere-lakehouse/tree/main/pipelines"
INTEGRATION = "LAKEHOUSE"

# The datasets of the pipeline's steps (see lakehouse.bronze / lakehouse.silver).
SOURCE_TABLES = ("customers", "products", "orders", "order_items")
STEP_DATASETS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "bronze:events": (("landing/events",), ("bronze.events",)),
    "bronze:postgres": (
        tuple(f"postgres:shop.{t}" for t in SOURCE_TABLES),
        tuple(f"bronze.{t}" for t in SOURCE_TABLES),
    ),
    "silver": (
        ("bronze.events", "bronze.customers", "bronze.products", "bronze.orders", "bronze.order_items"),
        (
            "silver.events",
            "silver.quarantine_events",
            "silver.dim_customer",
            "silver.dim_product",
            "silver.orders",
            "silver.order_items",
        ),
    ),
}


@dataclass
class LineageRun:
    """The run being reported; a step may add outputs it only knows at the end."""

    job: str
    run_id: str
    namespace: str
    inputs: list[str]
    outputs: list[str]
    facets: dict[str, Any] = field(default_factory=dict)


def enabled() -> bool:
    return os.environ.get("LAKEHOUSE_LINEAGE", "on").strip().lower() not in ("off", "0", "false", "no")


def namespace(settings: Settings) -> str:
    return os.environ.get("OPENLINEAGE_NAMESPACE") or f"lakehouse-{settings.env}"


def events_file(settings: Settings) -> Path:
    """Where events go when no OpenLineage transport is configured."""
    explicit = os.environ.get("LAKEHOUSE_LINEAGE_FILE")
    return Path(explicit) if explicit else settings.state_path / "lineage" / "events.jsonl"


def client(settings: Settings) -> Any:
    from openlineage.client import OpenLineageClient
    from openlineage.client.transport.file import FileConfig, FileTransport

    if not os.environ.get("LAKEHOUSE_LINEAGE_FILE") and (
        os.environ.get("OPENLINEAGE_URL") or os.environ.get("OPENLINEAGE_CONFIG")
    ):
        return OpenLineageClient()  # the client reads its own environment/config file
    path = events_file(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    return OpenLineageClient(transport=FileTransport(FileConfig(log_file_path=str(path), append=True)))


def dbt_spec(namespace: str, events_file: Path, job: str) -> dict[str, Any] | None:
    """Where the dbt runner (dbt/scripts/run_dbt.py, in dbt's own virtualenv) sends the events of
    a dbt invocation: the same transport as the pipeline's own events (the file, or the client's
    own configuration on the cluster), with `job` as the job run wrapping dbt's per-node events.
    None when lineage is off."""
    if not enabled():
        return None
    use_client_config = not os.environ.get("LAKEHOUSE_LINEAGE_FILE") and (
        os.environ.get("OPENLINEAGE_URL") or os.environ.get("OPENLINEAGE_CONFIG")
    )
    return {
        "job": job,
        "namespace": namespace,
        "file": None if use_client_config else str(events_file),
    }


def dataset(lake: Lake, name: str) -> tuple[str, str]:
    """(namespace, name) of a dataset in OpenLineage's naming: lake tables and folders by their
    storage location (file / s3://bucket), source tables by their PostgreSQL server."""
    settings = lake.settings
    if name.startswith("postgres:"):
        pg = settings.postgres
        return f"postgres://{pg.host}:{pg.port}", f"{pg.source_db}.{name.removeprefix('postgres:')}"
    path = lake.table_uri(name) if "." in name and "/" not in name else f"{lake.root}/{name}"
    if path.startswith("s3://"):
        bucket, _, key = path.removeprefix("s3://").partition("/")
        return f"s3://{bucket}", key
    return "file", path


def _parent(var: str) -> tuple[str, str, str] | None:
    value = os.environ.get(var, "").strip()
    parts = value.split("/")
    if len(parts) < 3 or not parts[-1]:
        return None
    return parts[0], "/".join(parts[1:-1]), parts[-1]


def _run_facets(extra: dict[str, Any]) -> dict[str, Any]:
    from openlineage.client.facet_v2 import parent_run, processing_engine_run

    facets: dict[str, Any] = {
        "processing_engine": processing_engine_run.ProcessingEngineRunFacet(
            version=_version(), name="lakehouse-embedded", openlineageAdapterVersion=_ol_version()
        )
    }
    parent = _parent("OPENLINEAGE_PARENT_ID")
    if parent:
        root = _parent("OPENLINEAGE_ROOT_PARENT_ID") or parent
        facets["parent"] = parent_run.ParentRunFacet(
            run=parent_run.Run(runId=parent[2]),
            job=parent_run.Job(namespace=parent[0], name=parent[1]),
            root=parent_run.Root(
                run=parent_run.RootRun(runId=root[2]), job=parent_run.RootJob(namespace=root[0], name=root[1])
            ),
        )
    facets.update(extra)
    return facets


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("ampere-lakehouse")
    except Exception:
        return "0"


def _ol_version() -> str:
    try:
        from importlib.metadata import version

        return version("openlineage-python")
    except Exception:
        return "0"


def _output_stats(lake: Lake, name: str) -> dict[str, Any]:
    from openlineage.client.facet_v2 import output_statistics_output_dataset as stats

    if "/" in name or name.startswith("postgres:") or not lake.exists(name):
        return {}
    actions = lake.table(name).get_add_actions(flatten=True)
    sizes = actions.column("size_bytes").to_pylist() if actions.num_rows else []
    rows = (
        actions.column("num_records").to_pylist()
        if actions.num_rows and "num_records" in actions.column_names
        else []
    )
    return {
        "outputStatistics": stats.OutputStatisticsOutputDatasetFacet(
            rowCount=int(sum(r or 0 for r in rows)), size=int(sum(sizes)), fileCount=len(sizes)
        )
    }


def _emit(
    settings: Settings, lake: Lake, run: LineageRun, state: str, error: BaseException | None = None
) -> None:
    from openlineage.client.event_v2 import InputDataset, Job, OutputDataset, Run, RunEvent, RunState
    from openlineage.client.facet_v2 import error_message_run, job_type_job

    facets = dict(run.facets)
    if error is not None:
        facets["errorMessage"] = error_message_run.ErrorMessageRunFacet(
            message=str(error)[:2000],
            programmingLanguage="python",
            stackTrace="".join(traceback.format_exception(error))[-8000:],
        )
    event = RunEvent(
        eventType=getattr(RunState, state),
        eventTime=datetime.now(UTC).isoformat(),
        run=Run(runId=run.run_id, facets=_run_facets(facets)),
        job=Job(
            namespace=run.namespace,
            name=run.job,
            facets={
                "jobType": job_type_job.JobTypeJobFacet(
                    processingType="BATCH", integration=INTEGRATION, jobType="JOB"
                )
            },
        ),
        inputs=[InputDataset(*dataset(lake, n)) for n in run.inputs],
        outputs=[
            OutputDataset(
                *dataset(lake, n), outputFacets=_output_stats(lake, n) if state == "COMPLETE" else {}
            )
            for n in run.outputs
        ],
        producer=PRODUCER,
    )
    client(settings).emit(event)


def _safe_emit(
    settings: Settings, lake: Lake, run: LineageRun, state: str, error: BaseException | None = None
) -> None:
    try:
        _emit(settings, lake, run, state, error)
    except Exception as exc:  # lineage must never fail the data run
        log.warning("OpenLineage %s event for %s not sent: %s", state, run.job, exc)


@contextmanager
def job_run(
    settings: Settings,
    job: str,
    inputs: Sequence[str] = (),
    outputs: Sequence[str] = (),
    lake: Lake | None = None,
) -> Iterator[LineageRun]:
    """START now; COMPLETE when the block ends, FAIL (and re-raise) when it raises.

    Dataset names are lake tables (`silver.events`), lake folders (`landing/events`) or source
    tables (`postgres:shop.orders`)."""
    from openlineage.client.uuid import generate_new_uuid

    run = LineageRun(job, str(generate_new_uuid()), namespace(settings), list(inputs), list(outputs))
    if not enabled():
        yield run
        return
    lake = lake or Lake(settings)
    _safe_emit(settings, lake, run, "START")
    try:
        yield run
    except BaseException as exc:
        _safe_emit(settings, lake, run, "FAIL", exc)
        raise
    _safe_emit(settings, lake, run, "COMPLETE")


def step(lake: Lake, name: str, sources: Sequence[str] = ()) -> Any:
    """`job_run` for a pipeline step with its known datasets: name "bronze" (with sources
    "events"/"postgres") or "silver"; the job is called lakehouse.<name>."""
    inputs: list[str] = []
    outputs: list[str] = []
    keys = [f"bronze:{s}" for s in sources] if name == "bronze" else [name]
    for key in keys:
        ins, outs = STEP_DATASETS[key]
        inputs += ins
        outputs += outs
    return job_run(lake.settings, f"lakehouse.{name}", inputs, [*outputs, "ops.reconciliation"], lake=lake)
