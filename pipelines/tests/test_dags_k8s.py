"""The cluster side, checked without a cluster: core-kind manifests pass kubernetes-validate
(strict, against the Kubernetes OpenAPI schemas it ships)."""

from __future__ import annotations

import subprocess

import pytest

from airflow_helpers import AIRFLOW_VENV, DAGS, require_airflow

K8S = DAGS / "k8s"
# the SparkApplication is a custom resource: its schema comes with the Spark Operator chart, not here
CORE = sorted(p for p in K8S.glob("*.yaml") if p.name != "spark-application.yaml")


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
