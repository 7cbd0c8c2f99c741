"""Every DAG in dags/ imports through Airflow's DagBag (as the dag-processor parses them) with no
import errors and no warnings, in each execution mode, and has the structure the lakehouse needs:
layer order, gates between layers, Assets for data-aware scheduling, retries, timeouts, owners,
tags, failure notifications, no cycles."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from airflow_helpers import DAGS, inspect_dags

EXPECTED_DAGS = {
    "lakehouse_pipeline",
    "lakehouse_ingest",
    "lakehouse_silver",
    "lakehouse_gold",
    "lakehouse_maintenance",
    "lakehouse_backfill",
    "lakehouse_restore",
    "lakehouse_reclassify",
}

# A tiny dbt manifest: three models, stg -> int -> mart, a seed the mart reads, plus a disabled
# model and a test node.
MANIFEST = {
    "nodes": {
        "model.lakehouse.stg_silver__events": {
            "resource_type": "model",
            "name": "stg_silver__events",
            "original_file_path": "models/staging/stg_silver__events.sql",
            "depends_on": {"nodes": ["source.lakehouse.silver.events"]},
            "config": {"enabled": True},
        },
        "model.lakehouse.int_events__sessionised": {
            "resource_type": "model",
            "name": "int_events__sessionised",
            "original_file_path": "models/intermediate/int_events__sessionised.sql",
            "depends_on": {"nodes": ["model.lakehouse.stg_silver__events"]},
            "config": {"enabled": True},
        },
        "model.lakehouse.fct_sessions": {
            "resource_type": "model",
            "name": "fct_sessions",
            "original_file_path": "models/marts/fct_sessions.sql",
            "depends_on": {
                "nodes": [
                    "model.lakehouse.int_events__sessionised",
                    "model.lakehouse.stg_silver__events",
                    "seed.lakehouse.page_groups",
                ]
            },
            "config": {"enabled": True},
        },
        "seed.lakehouse.page_groups": {
            "resource_type": "seed",
            "name": "page_groups",
            "original_file_path": "seeds/page_groups.csv",
            "depends_on": {"nodes": []},
            "config": {"enabled": True},
        },
        "model.lakehouse.old_mart": {
            "resource_type": "model",
            "name": "old_mart",
            "depends_on": {"nodes": []},
            "config": {"enabled": False},
        },
        "test.lakehouse.not_null_fct_sessions_id": {
            "resource_type": "test",
            "name": "not_null_fct_sessions_id",
            "depends_on": {"nodes": ["model.lakehouse.fct_sessions"]},
            "config": {"enabled": True},
        },
    }
}


@pytest.fixture(scope="module")
def bags(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    tmp = tmp_path_factory.mktemp("airflow")
    manifest = tmp / "manifest.json"
    manifest.write_text(json.dumps(MANIFEST))
    dbt_dir = tmp / "dbt"
    dbt_dir.mkdir()
    (dbt_dir / "dbt_project.yml").write_text("name: lakehouse\nprofile: lakehouse\n")
    no_manifest = str(tmp / "missing.json")
    return inspect_dags(
        tmp / "home",
        {
            "local": {"LAKEHOUSE_KAFKA": "1", "LAKEHOUSE_DBT_MANIFEST": no_manifest},
            "local_dbt": {
                "LAKEHOUSE_KAFKA": "0",
                "LAKEHOUSE_DBT_MANIFEST": str(manifest),
                "LAKEHOUSE_DBT_DIR": str(dbt_dir),
            },
            "kubernetes": {
                "LAKEHOUSE_EXECUTION": "kubernetes",
                "LAKEHOUSE_DBT_MANIFEST": no_manifest,
            },
            "spark_silver": {
                "LAKEHOUSE_EXECUTION": "kubernetes",
                "LAKEHOUSE_SPARK_STEPS": "silver",
                "LAKEHOUSE_SPARK_IMAGE": "registry.lan:5000/ampere-lakehouse/spark:0.1.0",
                "LAKEHOUSE_DBT_MANIFEST": no_manifest,
            },
            "spark_bronze": {
                "LAKEHOUSE_EXECUTION": "kubernetes",
                "LAKEHOUSE_SPARK_STEPS": "bronze,silver",
                "LAKEHOUSE_SPARK_IMAGE": "registry.lan:5000/ampere-lakehouse/spark:0.1.0",
                "LAKEHOUSE_DBT_MANIFEST": no_manifest,
            },
            "spark_local": {
                "LAKEHOUSE_SPARK_STEPS": "bronze,silver",
                "LAKEHOUSE_DBT_MANIFEST": no_manifest,
            },
            "spark_gold": {
                "LAKEHOUSE_EXECUTION": "kubernetes",
                "LAKEHOUSE_SPARK_STEPS": "silver,gold",
                "LAKEHOUSE_DBT_MANIFEST": no_manifest,
            },
        },
    )


@pytest.mark.parametrize(
    "mode", ["local", "local_dbt", "kubernetes", "spark_silver", "spark_bronze", "spark_local"]
)
def test_dagbag_imports_without_errors_or_warnings(bags: dict[str, Any], mode: str) -> None:
    bag = bags[mode]
    assert bag["import_errors"] == {}
    assert bag["captured_warnings"] == {}
    assert bag["dag_warnings"] == []
    assert set(bag["dags"]) == EXPECTED_DAGS
    dag_files = {p.stem for p in DAGS.glob("*.py")}
    assert dag_files == EXPECTED_DAGS, "one DAG per file, named after the file"


def _acyclic(tasks: dict[str, Any]) -> bool:
    indegree = {t: len(v["upstream"]) for t, v in tasks.items()}
    ready = [t for t, n in indegree.items() if n == 0]
    seen = 0
    while ready:
        t = ready.pop()
        seen += 1
        for d in tasks[t]["downstream"]:
            indegree[d] -= 1
            if indegree[d] == 0:
                ready.append(d)
    return seen == len(tasks)


def _reaches(tasks: dict[str, Any], start: str, goal: str) -> bool:
    todo, seen = [start], set()
    while todo:
        t = todo.pop()
        if t == goal:
            return True
        if t not in seen:
            seen.add(t)
            todo += tasks[t]["downstream"]
    return False


@pytest.mark.parametrize("mode", ["local", "local_dbt", "kubernetes"])
def test_every_task_has_owner_retries_timeout_callback(bags: dict[str, Any], mode: str) -> None:
    for dag_id, dag in bags[mode]["dags"].items():
        assert "lakehouse" in dag["tags"] and len(dag["tags"]) >= 2, dag_id
        assert dag["catchup"] is False and dag["max_active_runs"] == 1, dag_id
        assert dag["has_failure_callback"], dag_id
        assert _acyclic(dag["tasks"]), f"{dag_id} has a cycle"
        for task_id, task in dag["tasks"].items():
            where = f"{dag_id}.{task_id}"
            assert task["owner"] == "data-platform", where
            assert task["execution_timeout"] and 0 < task["execution_timeout"] <= 6 * 3600, where
            assert task["has_failure_callback"], where
            if task_id.startswith("gate_") or task_id == "restore":
                assert task["retries"] == 0, f"{where}: a failed check or restore must not retry"
            else:
                assert task["retries"] >= 1, where


def test_pipeline_order_and_gates_between_layers(bags: dict[str, Any]) -> None:
    tasks = bags["local"]["dags"]["lakehouse_pipeline"]["tasks"]
    assert set(tasks) == {
        "bronze_postgres",
        "bronze_landing",
        "bronze_kafka",
        "gate_bronze",
        "silver",
        "gate_silver",
        "gold_build",
        "gate_gold",
        "gold_publish",
        "check_sources_bronze",
        "check_sources_silver",
    }
    # the independent reconciliation follows each layer's gate, as a leaf
    assert tasks["check_sources_bronze"]["upstream"] == ["gate_bronze"]
    assert tasks["check_sources_silver"]["upstream"] == ["gate_silver"]
    assert tasks["check_sources_silver"]["command"] == '"$LAKEHOUSE_BIN" check --env "$LAKEHOUSE_ENV" sources'
    # each layer's gate sits between it and the next layer: nothing bypasses a gate
    assert tasks["silver"]["upstream"] == ["gate_bronze"]
    assert tasks["gold_build"]["upstream"] == ["gate_silver"]
    assert tasks["gold_publish"]["upstream"] == ["gate_gold"]
    assert set(tasks["gate_bronze"]["upstream"]) == {"bronze_landing", "bronze_kafka"}
    assert tasks["bronze_landing"]["upstream"] == ["bronze_postgres"], "bronze steps share a lock"
    for a, b in [
        ("bronze_postgres", "gold_publish"),
        ("bronze_kafka", "silver"),
        ("gate_silver", "gate_gold"),
    ]:
        assert _reaches(tasks, a, b)
    # the whole-pipeline DAG publishes no Assets (the layer DAGs would run a second time)
    assert all(not t["outlets"] for t in tasks.values())


def test_commands_call_the_pipeline_cli(bags: dict[str, Any]) -> None:
    tasks = bags["local"]["dags"]["lakehouse_pipeline"]["tasks"]
    expected = {
        "bronze_postgres": 'bronze --env "$LAKEHOUSE_ENV" --source postgres',
        "bronze_landing": 'bronze --env "$LAKEHOUSE_ENV" --source events',
        "bronze_kafka": 'stream consume --env "$LAKEHOUSE_ENV" --available-now',
        "gate_bronze": 'check --env "$LAKEHOUSE_ENV" bronze',
        "silver": 'silver --env "$LAKEHOUSE_ENV"',
        "gate_silver": 'check --env "$LAKEHOUSE_ENV" silver',
        "gold_build": 'gold build --env "$LAKEHOUSE_ENV"',
        "gate_gold": 'check --env "$LAKEHOUSE_ENV" gold',
        "gold_publish": 'gold publish --env "$LAKEHOUSE_ENV"',
    }
    for task_id, args in expected.items():
        assert tasks[task_id]["operator"] == "LakehouseCliOperator"
        assert tasks[task_id]["command"] == f'"$LAKEHOUSE_BIN" {args}', task_id
    maint = bags["local"]["dags"]["lakehouse_maintenance"]["tasks"]
    assert [maint[t]["command"].split()[1:3] for t in ("optimize", "vacuum", "checkpoint")] == [
        ["maintain", "optimize"],
        ["maintain", "vacuum"],
        ["maintain", "checkpoint"],
    ]
    assert maint["vacuum"]["upstream"] == ["optimize"] and maint["checkpoint"]["upstream"] == ["vacuum"]


def test_assets_chain_the_layer_dags(bags: dict[str, Any]) -> None:
    dags = bags["local"]["dags"]
    assert dags["lakehouse_ingest"]["tasks"]["gate_bronze"]["outlets"] == ["lakehouse_bronze"]
    assert dags["lakehouse_backfill"]["tasks"]["gate_bronze"]["outlets"] == ["lakehouse_bronze"]
    assert dags["lakehouse_silver"]["asset_triggers"] == ["lakehouse_bronze"]
    assert dags["lakehouse_silver"]["tasks"]["gate_silver"]["outlets"] == ["lakehouse_silver"]
    assert dags["lakehouse_gold"]["asset_triggers"] == ["lakehouse_silver"]
    assert dags["lakehouse_gold"]["tasks"]["gold_publish"]["outlets"] == ["lakehouse_gold"]
    # only a passed gate (or publish after the gold gate) announces a layer
    for dag in dags.values():
        for task_id, task in dag["tasks"].items():
            if task["outlets"]:
                assert task_id.startswith("gate_") or task_id == "gold_publish"


def test_backfill_and_restore_take_parameters(bags: dict[str, Any]) -> None:
    dags = bags["local"]["dags"]
    assert dags["lakehouse_backfill"]["params"] == ["end", "start"]
    assert "generate events" in dags["lakehouse_backfill"]["tasks"]["land_days"]["command"]
    assert "{{ params.start }}" in dags["lakehouse_backfill"]["tasks"]["land_days"]["command"]
    assert dags["lakehouse_restore"]["params"] == ["table", "version"]
    assert re.search(
        r"maintain restore .*\{\{ params.table \}\}.*--version",
        dags["lakehouse_restore"]["tasks"]["restore"]["command"],
    )


def test_one_task_per_dbt_model_following_refs(bags: dict[str, Any]) -> None:
    tasks = bags["local_dbt"]["dags"]["lakehouse_gold"]["tasks"]
    models = {t: v for t, v in tasks.items() if t.startswith("dbt.")}
    assert set(models) == {
        "dbt.stg_silver__events_build",
        "dbt.int_events__sessionised_build",
        "dbt.fct_sessions_build",
        "dbt.page_groups_build",  # a seed is built by its own task before the models that read it
    }
    assert models["dbt.int_events__sessionised_build"]["upstream"] == ["dbt.stg_silver__events_build"]
    assert models["dbt.fct_sessions_build"]["upstream"] == [
        "dbt.int_events__sessionised_build",
        "dbt.page_groups_build",
        "dbt.stg_silver__events_build",
    ]
    assert models["dbt.stg_silver__events_build"]["command"].endswith(
        'gold build --env "$LAKEHOUSE_ENV" --select stg_silver__events --indirect-selection buildable'
    )
    assert tasks["gate_gold"]["upstream"] == ["dbt.fct_sessions_build"]
    assert "bronze_kafka" not in bags["local_dbt"]["dags"]["lakehouse_pipeline"]["tasks"]


def test_kubernetes_mode_runs_every_task_in_a_pod(bags: dict[str, Any]) -> None:
    tasks = bags["kubernetes"]["dags"]["lakehouse_pipeline"]["tasks"]
    for task_id, task in tasks.items():
        assert task["operator"] == "KubernetesPodOperator", task_id
        args = task["arguments"]
        assert task["image"] and args[args.index("--env") + 1] == "local", task_id
    assert tasks["gate_gold"]["arguments"] == ["check", "--env", "local", "gold"]


def test_dag_files_stay_thin() -> None:
    """Wiring only: DAG files hold no pipeline logic (no SQL, no data libraries, no Python tasks)."""
    for path in sorted(DAGS.glob("*.py")):
        text = path.read_text()
        assert len(text.splitlines()) < 60, path.name
        for forbidden in (
            "import duckdb",
            "import deltalake",
            "import pyarrow",
            "import pandas",
            "SELECT ",
            "@task",
        ):
            assert forbidden not in text, f"{path.name}: {forbidden!r}"
    assert Path(DAGS / "lakehouse_airflow" / "tasks.py").is_file()


# task -> the `lakehouse` arguments it runs when its layer is on Spark (before `--env`, after it)
SPARK_SILVER_TASKS = {
    "silver": (["spark", "silver"], []),
    "backfill_silver": (
        ["spark", "backfill"],
        ["--from", "{{ params.start }}", "--to", "{{ params.end }}", "--json"],
    ),
    "spark_optimize": (["spark", "optimize"], ["--json"]),
    "spark_vacuum": (["spark", "vacuum"], ["--json"]),
}
SPARK_BRONZE_TASKS = {
    "bronze_postgres": (["spark", "bronze"], ["--source", "postgres"]),
    "bronze_landing": (["spark", "bronze"], ["--source", "events"]),
    "bronze_kafka": (["spark", "stream-bronze"], []),
}


def _spark_tasks(bag: dict[str, Any], expected: dict[str, tuple[list[str], list[str]]]) -> dict[str, int]:
    """Checks every task of every DAG: those named in `expected` are SparkApplications of the
    Spark image running those arguments, with the pipeline pod's namespace, volumes, env and
    security context; every other task is a pipeline pod. Returns task -> DAGs it is in."""
    import yaml

    assert bag["import_errors"] == {}
    pod = yaml.safe_load((DAGS / "k8s" / "pipeline-pod.yaml").read_text())
    seen: dict[str, int] = {}
    for dag in bag["dags"].values():
        for task_id, task in dag["tasks"].items():
            if task_id not in expected:
                assert task["operator"] == "KubernetesPodOperator", task_id
                continue
            seen[task_id] = seen.get(task_id, 0) + 1
            assert task["operator"] == "SparkKubernetesOperator", task_id
            body = task["template_spec"]
            assert task["namespace"] == body["metadata"]["namespace"] == pod["metadata"]["namespace"]
            assert body["metadata"]["name"] == f"lakehouse-{task_id.replace('_', '-')}"
            spec = body["spec"]
            assert spec["image"] == "registry.lan:5000/ampere-lakehouse/spark:0.1.0"
            command, args = expected[task_id]
            assert spec["arguments"] == [*command, "--env", "local", *args], task_id
            assert spec["mainApplicationFile"] == "local:///opt/spark/work-dir/lakehouse_main.py"
            assert spec["volumes"] == pod["spec"]["volumes"]
            mounts = {m["name"]: m["mountPath"] for m in spec["driver"]["volumeMounts"]}
            base = pod["spec"]["containers"][0]
            assert mounts == {m["name"]: m["mountPath"] for m in base["volumeMounts"]}
            assert spec["driver"]["env"] == base["env"] and spec["driver"]["envFrom"] == base["envFrom"]
            for role in ("driver", "executor"):
                assert spec[role]["podSecurityContext"] == pod["spec"]["securityContext"]
    return seen


def test_a_silver_layer_given_to_spark_runs_its_jobs_as_spark_applications(bags: dict[str, Any]) -> None:
    """With the environment's silver on Spark: silver, its date-range reclassification and the
    maintenance of Spark's tables submit the SparkApplication of k8s/spark-application.yaml (the
    Spark image, `lakehouse spark ... --env <env>` through the image's entry file, the pipelines'
    namespace, every volume of the pipeline pod); everything else stays a pipeline pod."""
    seen = _spark_tasks(bags["spark_silver"], SPARK_SILVER_TASKS)
    # silver in lakehouse_pipeline and lakehouse_silver; the others in one DAG each
    assert seen == {"silver": 2, "backfill_silver": 1, "spark_optimize": 1, "spark_vacuum": 1}
    maint = bags["spark_silver"]["dags"]["lakehouse_maintenance"]["tasks"]
    assert maint["spark_vacuum"]["upstream"] == ["spark_optimize"]


def test_a_bronze_layer_given_to_spark_runs_every_source_as_a_spark_application(bags: dict[str, Any]) -> None:
    """With bronze on Spark as well: PostgreSQL and landing files through `lakehouse spark bronze`,
    Kafka through the Structured Streaming job (availableNow); the speed layer keeps a consumer
    of its own that leaves bronze alone, as a pipeline pod."""
    seen = _spark_tasks(bags["spark_bronze"], {**SPARK_SILVER_TASKS, **SPARK_BRONZE_TASKS})
    # bronze_landing in ingest, pipeline and backfill; PostgreSQL and Kafka in ingest and pipeline
    assert seen == {
        "silver": 2,
        "backfill_silver": 1,
        "spark_optimize": 1,
        "spark_vacuum": 1,
        "bronze_postgres": 2,
        "bronze_landing": 3,
        "bronze_kafka": 2,
    }
    ingest = bags["spark_bronze"]["dags"]["lakehouse_ingest"]["tasks"]
    assert ingest["speed_kafka"]["arguments"] == [
        "stream",
        "consume",
        "--env",
        "local",
        "--available-now",
        "--no-bronze",
    ]
    assert sorted(ingest["gate_bronze"]["upstream"]) == ["bronze_kafka", "bronze_landing"]
    assert ingest["bronze_landing"]["upstream"] == ["bronze_postgres"]


def test_spark_layers_run_the_spark_cli_when_airflow_runs_locally(bags: dict[str, Any]) -> None:
    tasks = bags["spark_local"]["dags"]["lakehouse_pipeline"]["tasks"]
    assert (
        tasks["bronze_landing"]["command"]
        == '"$LAKEHOUSE_BIN" spark bronze --env "$LAKEHOUSE_ENV" --source events'
    )
    assert tasks["bronze_kafka"]["command"] == '"$LAKEHOUSE_BIN" spark stream-bronze --env "$LAKEHOUSE_ENV"'
    assert tasks["silver"]["command"] == '"$LAKEHOUSE_BIN" spark silver --env "$LAKEHOUSE_ENV"'
    assert {t["operator"] for t in tasks.values()} == {"LakehouseCliOperator"}


def test_a_layer_spark_does_not_write_is_refused_in_one_line(bags: dict[str, Any]) -> None:
    errors = bags["spark_gold"]["import_errors"]
    assert len(errors) == len(EXPECTED_DAGS), errors
    for message in errors.values():
        assert "LAKEHOUSE_SPARK_STEPS='silver,gold': Spark writes the layers bronze, silver" in message, (
            message
        )


def test_the_reclassify_dag_replaces_a_date_range_on_the_engine_that_writes_silver(
    bags: dict[str, Any],
) -> None:
    dag = bags["local"]["dags"]["lakehouse_reclassify"]
    assert dag["params"] == ["end", "start"]
    tasks = dag["tasks"]
    assert tasks["backfill_silver"]["command"] == (
        '"$LAKEHOUSE_BIN" maintain backfill --env "$LAKEHOUSE_ENV" --from \'{{ params.start }}\' '
        "--to '{{ params.end }}' --json"
    )
    assert _reaches(tasks, "backfill_silver", "gate_silver")
    assert _reaches(tasks, "gate_silver", "gold_build")
    assert _reaches(tasks, "gold_build", "gold_publish")
    assert all(not t["outlets"] for t in tasks.values())
