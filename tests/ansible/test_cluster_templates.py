"""The manifests and chart values the cluster roles would apply, rendered with each environment's
real inventory and group_vars (tests/ansible/render/render.yml) and checked here. This is what
can be verified of those roles without a cluster; the live checks are their `cluster` scenarios."""

from __future__ import annotations

import json
import subprocess
from functools import lru_cache
from pathlib import Path

import pytest

from ansible_helpers import ROOT, VENV_BIN, tool_env

INVENTORIES = {
    "dev": ROOT / "environments/dev/inventory/hosts.yml",
    "prod": ROOT / "environments/prod/inventory/hosts.example.yml",
}


@lru_cache(maxsize=None)
def rendered(env: str, out_dir: str) -> dict:
    out = Path(out_dir) / f"{env}.json"
    proc = subprocess.run(
        [str(VENV_BIN / "ansible-playbook"), "-i", str(INVENTORIES[env]), str(ROOT / "tests/ansible/render/render.yml"),
         "-e", f"render_output={out}", "-e", "pipeline_deploy_image_tag=1.2.3"],
        env=tool_env(), capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return json.loads(out.read_text())


@pytest.fixture(scope="module", params=sorted(INVENTORIES))
def env_docs(request, tmp_path_factory):
    return request.param, rendered(request.param, str(tmp_path_factory.mktemp(request.param)))


def kinds(docs: list[dict]) -> dict[str, dict]:
    return {doc["kind"]: doc for doc in docs}


def test_kubeadm_config(env_docs):
    env, r = env_docs
    docs = kinds(r["kubeadm"])
    cluster = docs["ClusterConfiguration"]
    assert cluster["kubernetesVersion"] == "v1.33.5"
    endpoint = {"dev": "10.42.10.10:6443", "prod": "192.168.50.199:6443"}[env]
    assert cluster["controlPlaneEndpoint"] == endpoint
    assert cluster["networking"]["podSubnet"] == "10.244.0.0/16"
    assert endpoint.split(":")[0] in cluster["apiServer"]["certSANs"]
    assert docs["KubeletConfiguration"]["cgroupDriver"] == "systemd"
    assert docs["InitConfiguration"]["nodeRegistration"]["criSocket"] == "unix:///run/containerd/containerd.sock"


def test_kube_vip_carries_the_prod_vip(env_docs):
    env, r = env_docs
    env_vars = {e["name"]: e["value"] for e in r["kube_vip"][0]["spec"]["containers"][0]["env"]}
    assert env_vars["address"] == {"dev": "", "prod": "192.168.50.199"}[env]
    assert env_vars["vip_interface"] == "enp1s0"


def test_local_path_is_the_default_storage_class_on_the_data_disks(env_docs):
    env, r = env_docs
    docs = kinds(r["local_path"])
    sc = docs["StorageClass"]
    assert sc["metadata"]["annotations"]["storageclass.kubernetes.io/is-default-class"] == "true"
    paths = {m["node"]: m["paths"] for m in json.loads(docs["ConfigMap"]["data"]["config.json"])["nodePathMap"]}
    with_disks = {"dev": "ampere-dev-worker-1", "prod": "ampere-prod-storage-1"}[env]
    without = {"dev": "ampere-dev-cp-1", "prod": "ampere-prod-worker-1"}[env]
    assert paths[with_disks] == ["/mnt/disks/0/local-path"]
    assert paths[without] == ["/var/lib/local-path-provisioner"]


def test_minio_gets_one_policy_and_user_per_layer(env_docs):
    _, r = env_docs
    values = r["minio"][0]
    policies = {p["name"]: p for p in values["policies"]}
    users = {u["accessKey"]: u for u in values["users"]}
    assert set(users) == {"lakehouse-bronze-writer", "lakehouse-silver-writer", "lakehouse-gold-writer", "lakehouse-bi-reader"}
    for name, user in users.items():
        assert user["policy"] == f"{name}-access" and user["existingSecret"] == f"minio-user-{name}"
    silver_write = [s for s in policies["lakehouse-silver-writer-access"]["statements"] if "s3:PutObject" in s["actions"]]
    assert "arn:aws:s3:::silver/*" in silver_write[0]["resources"]
    assert not any("bronze" in res for res in silver_write[0]["resources"])
    bi = policies["lakehouse-bi-reader-access"]["statements"]
    assert len(bi) == 1 and "s3:PutObject" not in bi[0]["actions"]
    assert set(bi[0]["resources"]) == {"arn:aws:s3:::gold", "arn:aws:s3:::gold/*"}
    assert values["existingSecret"] == "minio-root"  # pragma: allowlist secret


def test_postgres_cluster_and_roles(env_docs):
    env, r = env_docs
    cluster = r["postgres"][0]
    assert cluster["spec"]["instances"] == {"dev": 1, "prod": 3}[env]
    roles = {role["name"]: role for role in cluster["spec"]["managed"]["roles"]}
    assert set(roles) == {"source_app", "serving_app", "bi_readonly", "airflow"}
    assert roles["bi_readonly"]["passwordSecret"]["name"] == "pg-role-bi-readonly"


def test_kafka_is_kraft_with_node_pools_and_a_scram_user(env_docs):
    env, r = env_docs
    docs = r["kafka"]
    by_kind = {}
    for doc in docs:
        by_kind.setdefault(doc["kind"], []).append(doc)
    kafka = by_kind["Kafka"][0]
    assert kafka["metadata"]["annotations"] == {"strimzi.io/node-pools": "enabled", "strimzi.io/kraft": "enabled"}
    assert by_kind["KafkaNodePool"][0]["spec"]["replicas"] == {"dev": 1, "prod": 3}[env]
    assert set(by_kind["KafkaNodePool"][0]["spec"]["roles"]) == {"controller", "broker"}
    assert [t["metadata"]["name"] for t in by_kind["KafkaTopic"]] == ["user-events"]
    assert by_kind["KafkaUser"][0]["spec"]["authentication"]["type"] == "scram-sha-512"


def test_airflow_and_grafana_values(env_docs):
    _, r = env_docs
    airflow = r["airflow"][0]
    assert airflow["executor"] == "KubernetesExecutor"
    assert airflow["data"]["metadataSecretName"] == "airflow-metadata"  # pragma: allowlist secret
    assert airflow["dags"]["gitSync"]["enabled"] is True
    grafana = r["grafana"][0]
    source = grafana["datasources"]["datasources.yaml"]["datasources"][0]
    assert source["user"] == "bi_readonly" and source["jsonData"]["database"] == "serving"
    assert source["secureJsonData"]["password"] == "$BI_READONLY_PASSWORD"


def test_pipeline_release_values_name_the_image_tag(env_docs):
    _, r = env_docs
    env_vars = {e["name"]: e["value"] for e in r["pipeline_values"][0]["env"]}
    assert env_vars["AIRFLOW_VAR_PIPELINES_IMAGE"] == "ampere-lakehouse/pipelines:1.2.3"
    assert env_vars["AIRFLOW_VAR_DBT_PROJECT_DIR"] == "/opt/ampere/dbt"
    assert r["pipeline_values"][0]["dags"]["gitSync"]["rev"] == "1.2.3"
    profile = r["dbt_profiles"][0]["ampere_lakehouse"]
    assert profile["outputs"][profile["target"]]["dbname"] == "serving"


def test_backup_job_dumps_every_database_and_mirrors_the_layers(env_docs):
    env, r = env_docs
    spec = r["backup_job"][0]["spec"]["template"]["spec"]
    dump = spec["initContainers"][0]["args"][0]
    for db in ("source", "serving", "airflow"):
        assert f"-d {db} -Fc" in dump
    mirror = spec["containers"][0]["args"][0]
    for bucket in ("bronze", "silver", "gold", "checkpoints"):
        assert f"rclone sync src:{bucket} dst:ampere-{env}-backup-{bucket}" in mirror
    assert "scratch" not in mirror
