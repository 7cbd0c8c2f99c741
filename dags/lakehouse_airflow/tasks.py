"""Task factories: one `lakehouse ...` command becomes one task, run the way the environment says.

Retries follow the CLI's exit code: 75 (a lock another run holds, a service not reachable) is
retried with exponential backoff; any other failure (1: a quality gate or a dbt test failed,
2: the command could not do its work, 127: the tool is missing) fails the task at once, since
running it again would fail the same way.

* LAKEHOUSE_EXECUTION=local: BashOperator runs the pipeline CLI of the pipeline's own virtualenv as
  a subprocess (Airflow's and the pipeline's dependencies never mix).
* LAKEHOUSE_EXECUTION=kubernetes: KubernetesPodOperator runs the same command in the pipeline image
  (embedded engine in a pod).

A layer in LAKEHOUSE_SPARK_STEPS has its jobs run by `lakehouse spark ...` instead (`spark_job`):
on Kubernetes each is a SparkApplication of the Spark image (SparkKubernetesOperator, base spec
k8s/spark-application.yaml) whose executors the Spark Operator starts; locally the same CLI.

Gold is dbt: with a parsed dbt project (manifest.json), one task per dbt model, wired by the
models' refs, each running `lakehouse gold build --select <model>`, which runs dbt in dbt's own
virtualenv (.venv-dbt; OpenLineage events per model, children of the task's run); without a
manifest, a single `lakehouse gold build` task. The gold gate reads those builds' test results.
"""

from __future__ import annotations

import functools
import shlex
from datetime import UTC, datetime, timedelta
from typing import Any

from airflow.sdk import Asset, BaseOperator

from lakehouse_airflow import config, notify

OWNER = "data-platform"
START = datetime(2026, 1, 1, tzinfo=UTC)

# Data-aware scheduling: a layer's gate publishes its Asset; the next layer's DAG runs on it.
BRONZE = Asset(name="lakehouse_bronze", uri="lakehouse://layers/bronze", group="lakehouse")
SILVER = Asset(name="lakehouse_silver", uri="lakehouse://layers/silver", group="lakehouse")
GOLD = Asset(name="lakehouse_gold", uri="lakehouse://layers/gold", group="lakehouse")
LAYER_ASSETS = {"bronze": BRONZE, "silver": SILVER, "gold": GOLD}

DEFAULT_ARGS: dict[str, Any] = {
    "owner": OWNER,
    "retries": config.RETRIES,
    "retry_delay": timedelta(seconds=config.RETRY_DELAY_S),
    "retry_exponential_backoff": True,
    "max_retry_delay": timedelta(minutes=10),
    "execution_timeout": timedelta(minutes=config.TASK_TIMEOUT_MIN),
    "on_failure_callback": notify.on_failure,
}
DAG_KWARGS: dict[str, Any] = {
    "start_date": START,
    "catchup": False,
    "max_active_runs": 1,
    "default_args": DEFAULT_ARGS,
    "dagrun_timeout": timedelta(hours=3),
    "on_failure_callback": notify.on_dag_failure,
}

_OL = "macros.OpenLineageProviderPlugin"


def _ol_macro(name: str) -> str:
    """An OpenLineage provider macro, or '' when the provider's plugin is disabled."""
    return f"{{{{ {_OL}.{name}(task_instance) if {_OL} is defined else '' }}}}"


def pipeline_env() -> dict[str, str]:
    """What a pipeline subprocess needs besides the worker's own environment."""
    return {
        "LAKEHOUSE_BIN": f"{{{{ var.value.get('lakehouse_bin', {config.LAKEHOUSE_BIN!r}) }}}}",
        "LAKEHOUSE_ENV": config.ENV,
        "LAKEHOUSE_ROOT": str(config.ROOT),
        "LAKEHOUSE_DBT": str(config.DBT_BIN),  # dbt in its own virtualenv (lakehouse gold ...)
        "LAKEHOUSE_DBT_PROJECT": str(config.DBT_DIR),
        # the pipeline's own OpenLineage events become children of this task's run
        "OPENLINEAGE_PARENT_ID": _ol_macro("lineage_parent_id"),
        "OPENLINEAGE_ROOT_PARENT_ID": _ol_macro("lineage_root_parent_id"),
        "PYTHONUNBUFFERED": "1",
        "NO_COLOR": "1",
    }


def cli_args(command: str, *args: str) -> list[str]:
    """`lakehouse <command> --env <env> <args>`: the environment right after the (sub)command, so
    it never lands after a positional argument."""
    return [*command.split(), "--env", config.ENV, *args]


def lakehouse(task_id: str, command: str, *args: str, **kwargs: Any) -> BaseOperator:
    """A task that runs `lakehouse <command> --env <env> <args>`; `command` is the (sub)command
    path, e.g. "gold build"; arguments may hold Jinja templates."""
    argv = cli_args(command, *args)
    if config.EXECUTION == "kubernetes":
        return _pod(task_id, argv, **kwargs)
    command_line = " ".join(
        [
            '"$LAKEHOUSE_BIN"',
            *map(shlex.quote, command.split()),
            '--env "$LAKEHOUSE_ENV"',
        ]
        + [shlex.quote(a) for a in args]
    )
    kwargs.setdefault("doc_md", f"`lakehouse {' '.join(argv)}` (pipeline package, subprocess)")
    return _cli_operator()(
        task_id=task_id,
        bash_command=command_line,
        env=pipeline_env(),
        append_env=True,
        cwd=str(config.ROOT),
        **kwargs,
    )


TRANSIENT_EXIT = 75  # the CLI's EX_TEMPFAIL: the same command may succeed later


@functools.cache
def _cli_operator() -> type[BaseOperator]:
    """BashOperator whose failures say why in one line and retry only when the CLI says so."""
    from airflow.providers.standard.operators.bash import BashOperator
    from airflow.sdk.exceptions import AirflowException, AirflowFailException

    class LakehouseCliOperator(BashOperator):
        _last: Any = None

        def _run_inline_command(self, bash_path: str, env: dict[str, str]) -> Any:
            self._last = super()._run_inline_command(bash_path=bash_path, env=env)
            return self._last

        def execute(self, context: Any) -> Any:
            try:
                return super().execute(context)
            except AirflowException:
                if self._last is None or self._last.exit_code == 0:
                    raise
                code, line = self._last.exit_code, self._last.output.strip()
                reason = line.removeprefix("error: ") or f"exit code {code}"
                if code == TRANSIENT_EXIT:
                    raise AirflowException(f"transient (exit {code}), retried: {reason}") from None
                kind = {1: "check failed", 127: "tool missing"}.get(code, "failed")
                raise AirflowFailException(f"{kind} (exit {code}), not retried: {reason}") from None

    LakehouseCliOperator.__qualname__ = "LakehouseCliOperator"
    return LakehouseCliOperator


def _pod(task_id: str, args: list[str], **kwargs: Any) -> BaseOperator:
    from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator

    env = {
        k: v
        for k, v in pipeline_env().items()
        if not k.startswith(("LAKEHOUSE_BIN", "LAKEHOUSE_ROOT", "LAKEHOUSE_DBT"))
    }
    env["LAKEHOUSE_ROOT"] = "/app"
    return KubernetesPodOperator(
        task_id=task_id,
        name=f"lakehouse-{task_id.replace('_', '-')}",
        namespace=config.K8S_NAMESPACE,
        # service account, secrets, OpenLineage (Marquez) config, resources, security context
        pod_template_file=str(config.K8S_DIR / "pipeline-pod.yaml"),
        image=config.IMAGE,
        cmds=["lakehouse"],
        arguments=args,
        env_vars=env,
        labels={
            "app.kubernetes.io/part-of": "ampere-lakehouse",
            "lakehouse/step": task_id,
        },
        get_logs=True,
        on_finish_action="delete_succeeded_pod",
        startup_timeout_seconds=300,
        **kwargs,
    )


def spark_job(task_id: str, command: str, *args: str, **kwargs: Any) -> BaseOperator:
    """A `lakehouse spark ...` job: a SparkApplication on Kubernetes, the CLI locally."""
    if config.EXECUTION == "kubernetes":
        return spark_application(task_id, command, *args, **kwargs)
    return lakehouse(task_id, command, *args, **kwargs)


def spark_application(task_id: str, command: str, *args: str, **kwargs: Any) -> BaseOperator:
    """`lakehouse <command> --env <env> <args>` as a SparkApplication: the base spec with this job's
    name, the Spark image and the arguments `spark-submit` hands to the package's entry point."""
    import yaml
    from airflow.providers.cncf.kubernetes.operators.spark_kubernetes import SparkKubernetesOperator

    body = yaml.safe_load((config.K8S_DIR / "spark-application.yaml").read_text())
    pod = yaml.safe_load((config.K8S_DIR / "pipeline-pod.yaml").read_text())["spec"]
    name = f"lakehouse-{task_id.replace('_', '-')}"
    body["metadata"].update(name=name, namespace=config.K8S_NAMESPACE)
    spec = body["spec"]
    argv = cli_args(command, *args)
    spec.update(image=config.SPARK_IMAGE, arguments=argv, volumes=pod["volumes"])
    # the driver reads the settings and Secrets exactly as a pipeline pod does
    container = pod["containers"][0]
    spec["driver"].update({key: container[key] for key in ("env", "envFrom", "volumeMounts")})
    for role in ("driver", "executor"):
        spec[role]["podSecurityContext"] = pod["securityContext"]
    return SparkKubernetesOperator(
        task_id=task_id,
        name=name,
        namespace=config.K8S_NAMESPACE,
        template_spec=body,
        get_logs=True,
        # the provider's reattach labels go to a spec field the SparkApplication schema lacks;
        # a second submission after a scheduler restart loses its commit to the first (the
        # silver step commits against the snapshot it read)
        reattach_on_restart=False,
        delete_on_termination=True,
        doc_md=f"`lakehouse {' '.join(argv)}` as a SparkApplication of {config.SPARK_IMAGE}",
        **kwargs,
    )


def gate(layer: str, *, publish: bool = False) -> BaseOperator:
    """The data-quality gate after a layer: `lakehouse check <layer>` exits non-zero when a check
    fails, which fails this task and so every task downstream (no retries: the data would not
    change). With publish=True the gate announces the layer's Asset for data-aware scheduling."""
    return lakehouse(
        f"gate_{layer}",
        "check",
        layer,
        retries=0,
        outlets=[LAYER_ASSETS[layer]] if publish else [],
        doc_md=f"Data-quality gate: `lakehouse check {layer}`; fails the run when a check fails.",
    )


def check_sources(after: str) -> BaseOperator:
    """The independent reconciliation after a layer's gate: `lakehouse check sources` counts
    from the sources themselves (landing lines, Kafka offsets, PostgreSQL rows per updated_at
    window) against bronze, and bronze against silver, into ops.source_audit; it fails when a
    row is lost or repeated. A leaf: it reports, the layers downstream do not wait for it."""
    return lakehouse(
        f"check_sources_{after}",
        "check",
        "sources",
        doc_md="Independent reconciliation: `lakehouse check sources` (history in ops.source_audit).",
    )


def bronze_landing() -> BaseOperator:
    """Landing files -> bronze.events, each file exactly once, on the engine bronze is given."""
    if config.on_spark("bronze"):
        return spark_job("bronze_landing", "spark bronze", "--source", "events")
    return lakehouse("bronze_landing", "bronze", "--source", "events")


def ingest(*, publish: bool = False) -> list[BaseOperator]:
    """Sources -> bronze: PostgreSQL (incremental), landing files, Kafka (available-now); then the
    bronze gate. Returns [first tasks..., gate]; PostgreSQL and landing share bronze's step lock,
    so they run one after the other while Kafka runs beside them.

    With bronze on Spark, Kafka -> bronze is the Structured Streaming job (availableNow) and the
    speed layer a consumer of its own (`--no-bronze`): each sink keeps its own offsets."""
    spark = config.on_spark("bronze")
    if spark:
        pg = spark_job("bronze_postgres", "spark bronze", "--source", "postgres")
    else:
        pg = lakehouse("bronze_postgres", "bronze", "--source", "postgres")
    files = bronze_landing()
    check = gate("bronze", publish=publish)
    pg >> files >> check
    firsts = [pg]
    if config.kafka_enabled() and spark:
        kafka = spark_job("bronze_kafka", "spark stream-bronze")
        speed = lakehouse("speed_kafka", "stream consume", "--available-now", "--no-bronze")
        kafka >> check
        firsts += [kafka, speed]
    elif config.kafka_enabled():
        kafka = lakehouse("bronze_kafka", "stream consume", "--available-now")
        kafka >> check
        firsts.append(kafka)
    check >> check_sources("bronze")
    return [*firsts, check]


def silver(*, publish: bool = False) -> list[BaseOperator]:
    """bronze -> silver on the configured engine, then the silver gate."""
    step = spark_job("silver", "spark silver") if config.on_spark("silver") else lakehouse("silver", "silver")
    check = gate("silver", publish=publish)
    step >> check >> check_sources("silver")
    return [step, check]


def reclassify(start: str, end: str) -> BaseOperator:
    """Classify a date range of bronze events again and replace it in silver (one commit per
    table), on the engine that writes silver."""
    if config.on_spark("silver"):
        return spark_job("backfill_silver", "spark backfill", "--from", start, "--to", end, "--json")
    return lakehouse("backfill_silver", "maintain backfill", "--from", start, "--to", end, "--json")


def spark_maintenance() -> list[BaseOperator]:
    """OPTIMIZE then VACUUM of every table Spark writes, with delta-spark (the embedded engine's
    maintenance leaves those tables alone); none when no layer is on Spark."""
    if not config.SPARK_STEPS:
        return []
    optimize = spark_job("spark_optimize", "spark optimize", "--json")
    vacuum = spark_job("spark_vacuum", "spark vacuum", "--json")
    optimize >> vacuum
    return [optimize, vacuum]


def gold(*, publish: bool = False) -> list[BaseOperator]:
    """silver -> gold with dbt (one task per model when the project is parsed), the gold gate,
    then publishing the marts to the serving PostgreSQL."""
    models = dbt_models()
    check = gate("gold")
    publish_task = lakehouse(
        "gold_publish",
        "gold publish",
        outlets=[GOLD] if publish else [],
        doc_md="gold marts -> PostgreSQL",
    )
    models[-1] >> check >> publish_task
    return [models[0], models[-1], check, publish_task]


def dbt_models() -> list[Any]:
    """[first, last] of the dbt part.

    With a parsed dbt project (manifest.json, see config.dbt_manifest), one task per dbt model,
    wired by the models' `ref` dependencies: each runs `lakehouse gold build --select <model>`
    (`dbt build` of that model and the tests whose parents are built by then, in dbt's own
    virtualenv .venv-dbt, with the lake's profile environment set by the pipeline package). This is Cosmos' "one task per model"
    rendering (LoadMode.DBT_MANIFEST) done directly: Cosmos' LOCAL mode would have to rebuild the
    profile environment that `lakehouse gold` already owns. Without a manifest: one
    `lakehouse gold build` task."""
    from airflow.sdk import TaskGroup

    models = dbt_manifest_models()
    if not models:
        build = lakehouse(
            "gold_build",
            "gold build",
            doc_md="silver -> gold: the dbt project as one step",
        )
        return [build, build]
    with TaskGroup(group_id="dbt", tooltip="one task per dbt model (dbt build --select <model>)") as group:
        made = {
            uid: lakehouse(
                f"{m['name']}_build",
                "gold build",
                "--select",
                m["name"],
                # a test that also reads a model no upstream task has built yet (a sibling's
                # `relationships`) is left to the gold gate, which runs what the builds did not
                "--indirect-selection",
                "buildable",
                doc_md=f"dbt build --select {m['name']} --indirect-selection buildable ({m['path']})",
            )
            for uid, m in models.items()
        }
        for uid, m in models.items():
            for parent in m["depends_on"]:
                if parent in made:
                    made[parent] >> made[uid]
    return [group, group]


BUILT_NODES = ("model", "seed", "snapshot")


def dbt_manifest_models() -> dict[str, dict[str, Any]]:
    """unique_id -> {name, path, depends_on} of the enabled models, seeds and snapshots in dbt's
    manifest."""
    import json

    manifest = config.dbt_manifest()
    if manifest is None:
        return {}
    nodes = json.loads(manifest.read_text()).get("nodes", {})
    return {
        uid: {
            "name": node["name"],
            "path": node.get("original_file_path", ""),
            "depends_on": sorted(set(node.get("depends_on", {}).get("nodes", []))),
        }
        for uid, node in sorted(nodes.items())
        # seeds and snapshots are nodes models ref: they get their task like a model
        if node.get("resource_type") in BUILT_NODES and node.get("config", {}).get("enabled", True)
    }
