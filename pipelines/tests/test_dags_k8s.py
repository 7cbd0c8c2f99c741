"""The cluster side, checked without a cluster: core-kind manifests pass kubernetes-validate
(strict, against the Kubernetes OpenAPI schemas it ships), and the SparkApplication template,
rendered with an Airflow-like context, matches the Spark Operator CRD schema subset."""

from __future__ import annotations

import json
import subprocess

import pytest

from airflow_helpers import AIRFLOW_PY, AIRFLOW_VENV, DAGS, require_airflow

K8S = DAGS / "k8s"
CORE = sorted(p for p in K8S.glob("*.yaml"))

RENDER_AND_CHECK = r"""
import json, sys
from types import SimpleNamespace
import jinja2, jsonschema, yaml
template, schema_file = sys.argv[1], sys.argv[2]
env = jinja2.Environment(undefined=jinja2.StrictUndefined)
class Var:
    class value:
        @staticmethod
        def get(key, default=None):
            return default
context = {
    "ts_nodash": "20261102T000000",
    "run_id": "manual__2026-11-02T00:00:00+00:00",
    "dag": SimpleNamespace(dag_id="lakehouse_pipeline"),
    "task": SimpleNamespace(task_id="silver"),
    "task_instance": None,
    "var": Var,
    "macros": SimpleNamespace(),
}
doc = yaml.safe_load(env.from_string(open(template).read()).render(**context))
schema = json.load(open(schema_file))
jsonschema.Draft202012Validator.check_schema(schema)
errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
          for e in jsonschema.Draft202012Validator(schema).iter_errors(doc)]
print(json.dumps({"errors": errors, "doc": doc}))
"""


@pytest.fixture(scope="module", autouse=True)
def _airflow() -> None:
    require_airflow()


def test_core_manifests_pass_kubernetes_validate() -> None:
    assert {p.name for p in CORE} == {"rbac.yaml", "openlineage-configmap.yaml", "pipeline-pod.yaml"}
    proc = subprocess.run(
        [str(AIRFLOW_VENV / "bin" / "kubernetes-validate"), "--strict", "-k", "1.33.0", *map(str, CORE)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    passed = [line for line in out.splitlines() if " passed for resource " in line]
    assert len(passed) == 8, out  # 6 RBAC objects + ConfigMap + Pod


def test_kubernetes_validate_rejects_a_broken_manifest(tmp_path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        (K8S / "pipeline-pod.yaml")
        .read_text()
        .replace("restartPolicy: Never", "restartPolicy: Sometimes")
        .replace("serviceAccountName:", "serviceAcountName:")
    )
    proc = subprocess.run(
        [str(AIRFLOW_VENV / "bin" / "kubernetes-validate"), "--strict", "-k", "1.33.0", str(bad)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode != 0
    assert "serviceAcountName" in proc.stdout + proc.stderr


def _render(template: str) -> dict:
    proc = subprocess.run(
        [
            str(AIRFLOW_PY),
            "-c",
            RENDER_AND_CHECK,
            template,
            str(K8S / "spark" / "sparkapplication.schema.json"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result: dict = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def test_sparkapplication_template_matches_the_crd_schema() -> None:
    result = _render(str(K8S / "spark" / "silver-sparkapplication.yaml"))
    assert result["errors"] == []
    doc = result["doc"]
    assert doc["metadata"]["name"] == "lakehouse-silver-20261102t000000"
    assert doc["spec"]["arguments"] == ["--env", "prod", "--run-id", "manual__2026-11-02T00:00:00+00:00"]
    assert doc["spec"]["sparkConf"]["spark.sql.session.timeZone"] == "UTC"
    assert doc["spec"]["driver"]["serviceAccount"] == "lakehouse-pipeline"


def test_schema_check_catches_crd_mistakes(tmp_path) -> None:
    broken = (K8S / "spark" / "silver-sparkapplication.yaml").read_text()
    broken = broken.replace("type: Python", "type: Pyhton").replace("instances: 2", "instances: 0")
    path = tmp_path / "broken.yaml"
    path.write_text(broken)
    errors = _render(str(path))["errors"]
    assert any(e.startswith("spec/type") for e in errors), errors
    assert any("instances" in e for e in errors), errors
