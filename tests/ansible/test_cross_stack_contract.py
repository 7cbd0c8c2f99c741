"""Every name that crosses a boundary agrees on every side: what the playbooks send to the cluster
(the real site.yml, rendered through the cluster stand-in, per environment), the Kubernetes
manifests the DAGs launch (dags/k8s), the DAGs' configuration names, the pipeline settings of the
environment (environments/<env>/pipeline.yaml) and the dbt profile. Each side is read from its
own rendered file; nothing is restated here but the question."""

from __future__ import annotations

import ast
import re
from pathlib import PurePosixPath

import pytest
import yaml

from ansible_helpers import ROOT
from playbook_runs import RELEASE_TAG, cached_run, failure_summary

ENVS = ["dev", "prod"]
K8S = ROOT / "dags/k8s"


def settings(env: str) -> dict:
    return yaml.safe_load((ROOT / f"environments/{env}/pipeline.yaml").read_text())


def pod() -> dict:
    return yaml.safe_load((K8S / "pipeline-pod.yaml").read_text())


def rbac() -> list[dict]:
    return [d for d in yaml.safe_load_all((K8S / "rbac.yaml").read_text()) if d]


def dag_config() -> dict[str, str]:
    """LAKEHOUSE_* variable -> default, as dags/lakehouse_airflow/config.py reads them."""
    tree = ast.parse((ROOT / "dags/lakehouse_airflow/config.py").read_text())
    found: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "get" and node.args:
            first = node.args[0]
            if isinstance(first, ast.Constant) and str(first.value).startswith("LAKEHOUSE_"):
                default = node.args[1] if len(node.args) > 1 else None
                found[first.value] = default.value if isinstance(default, ast.Constant) else None
    return found


@pytest.fixture(scope="module", params=ENVS)
def site(request):
    run = cached_run(f"{request.param}-site-fresh")
    assert run.returncode == 0, failure_summary(run)
    return request.param, run


def airflow_env(run) -> dict[str, str]:
    values = run.helm("airflow")[-1]["release_values"]  # the pipelines release's values
    return {e["name"]: e["value"] for e in values["env"]}


def test_dag_configuration_names_are_the_names_ansible_sets(site):
    env, run = site
    names = airflow_env(run)
    read = dag_config()
    for var in ("LAKEHOUSE_EXECUTION", "LAKEHOUSE_ENV", "LAKEHOUSE_IMAGE", "LAKEHOUSE_K8S_NAMESPACE"):
        assert var in read, f"the DAGs do not read {var}"
        assert var in names, f"Ansible does not set {var} for the DAGs"
    assert not [n for n in names if n.startswith("AIRFLOW_VAR_")], "variables no DAG reads"
    assert names["LAKEHOUSE_EXECUTION"] == "kubernetes" and names["LAKEHOUSE_ENV"] == env
    assert names["LAKEHOUSE_IMAGE"] == f"ampere-lakehouse/pipelines:{RELEASE_TAG}"
    # the pod template's image is the same repository, whatever its tag
    assert pod()["spec"]["containers"][0]["image"].rsplit(":", 1)[0] == names["LAKEHOUSE_IMAGE"].rsplit(":", 1)[0]
    assert (ROOT / f"environments/{names['LAKEHOUSE_ENV']}/pipeline.yaml").is_file()


def test_namespace_service_accounts_and_rbac_are_applied(site):
    _, run = site
    namespace = airflow_env(run)["LAKEHOUSE_K8S_NAMESPACE"]
    assert run.applied("Namespace", namespace), f"nothing creates namespace {namespace}"
    assert pod()["metadata"]["namespace"] == namespace
    for doc in rbac():
        if doc["kind"] != "Namespace":
            assert doc["metadata"]["namespace"] == namespace
        assert run.applied(doc["kind"], doc["metadata"]["name"]), f"{doc['kind']} {doc['metadata']['name']} is never applied"
    accounts = {d["metadata"]["name"] for d in rbac() if d["kind"] == "ServiceAccount"}
    assert pod()["spec"]["serviceAccountName"] in accounts
    # the launcher binding names Airflow's worker account in Airflow's namespace
    airflow_ns = {c["args"]["release_namespace"] for c in run.select("helm") if c["args"].get("release_name") == "airflow"}
    subjects = [s for d in rbac() if d["kind"] == "RoleBinding" for s in d["subjects"] if s["namespace"] != namespace]
    assert subjects and {s["namespace"] for s in subjects} <= airflow_ns
    assert {s["name"] for s in subjects} == {"airflow-worker"}  # the chart's <release>-worker


def test_every_secret_and_configmap_the_pod_uses_exists_with_its_keys(site):
    env, run = site
    namespace = pod()["metadata"]["namespace"]
    spec = pod()["spec"]
    container = spec["containers"][0]
    applied_secrets = {d["metadata"]["name"]: d for d in run.applied("Secret") if d["metadata"].get("namespace") == namespace}
    applied_maps = {d["metadata"]["name"]: d for d in run.applied("ConfigMap") if d["metadata"].get("namespace") == namespace}
    for ref in container.get("envFrom", []):
        if "secretRef" in ref:
            assert ref["secretRef"]["name"] in applied_secrets, f"Secret {ref['secretRef']['name']} is never written"
        if "configMapRef" in ref:
            assert ref["configMapRef"]["name"] in applied_maps, f"ConfigMap {ref['configMapRef']['name']} is never written"
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    files: dict[str, set[str]] = {}
    for volume in spec["volumes"]:
        if "secret" in volume:
            doc = applied_secrets.get(volume["secret"]["secretName"])
            assert doc, f"Secret {volume['secret']['secretName']} is never written in {namespace}"
            files[mounts[volume["name"]]] = set(doc.get("data") or doc.get("stringData") or {})
        if "configMap" in volume:
            doc = applied_maps.get(volume["configMap"]["name"])
            assert doc, f"ConfigMap {volume['configMap']['name']} is never written in {namespace}"
            files[mounts[volume["name"]]] = set(doc["data"])
    # every file the settings name is a key of a mounted Secret
    s = settings(env)
    named = [s["postgres"]["password_file"], s["postgres"]["source_password_file"],
             s["streaming"]["sasl_password_file"], s["streaming"]["ssl_ca_file"]]
    for path in named:
        folder, key = str(PurePosixPath(path).parent), PurePosixPath(path).name
        assert key in files.get(folder, set()), f"{path}: no mounted Secret holds it"
    # the settings file the pod reads is the environment's own
    config = {e["name"]: e.get("value") for e in container["env"]}["LAKEHOUSE_CONFIG"]
    folder, key = str(PurePosixPath(config).parent), PurePosixPath(config).name
    assert key in files.get(folder, set())
    cm = next(d for d in applied_maps.values() if key in d["data"])
    assert yaml.safe_load(cm["data"][key]) == s


def test_postgres_host_roles_and_databases(site):
    env, run = site
    pg = settings(env)["postgres"]
    cluster = run.applied("Cluster")[0]
    assert pg["host"] == f"{cluster['metadata']['name']}-rw.{cluster['metadata']['namespace']}.svc"
    assert pg["port"] == 5432
    roles = {r["name"] for r in cluster["spec"]["managed"]["roles"]}
    assert {pg["user"], pg["source_user"]} <= roles
    dbs = {c["args"]["name"]: c["args"]["owner"] for c in run.select("postgresql_db")}
    assert dbs.get(pg["serving_db"]) == pg["user"] and dbs.get(pg["source_db"]) == pg["source_user"]
    assert dbs.get("marquez") == "marquez" and "marquez" in roles
    # the Secret of the pipeline's passwords holds the passwords of these roles' own Secrets
    namespace = pod()["metadata"]["namespace"]
    mine = next(d for d in run.applied("Secret", "lakehouse-postgres") if d["metadata"]["namespace"] == namespace)
    by_role = {}
    for doc in run.applied("Secret"):
        if doc.get("type") == "kubernetes.io/basic-auth":
            data = doc.get("data") or {}
            by_role[data.get("username")] = data.get("password")
    import base64

    def plain(v: str) -> str:
        return base64.b64decode(v).decode()

    users = {plain(k) if k else k: v for k, v in by_role.items()}
    assert mine["data"]["password"] == users[pg["user"]]
    assert mine["data"]["source-password"] == users[pg["source_user"]]
    # Grafana reads as the BI login the platform grants gold and realtime to
    grafana = run.helm("grafana")[-1]["release_values"]
    source = grafana["datasources"]["datasources.yaml"]["datasources"][0]
    granted = {c["args"]["roles"] for c in run.select("postgresql_privs")}
    assert source["user"] in granted
    assert source["jsonData"]["database"] == pg["serving_db"]


def test_kafka_bootstrap_listener_user_and_topic(site):
    env, run = site
    st = settings(env)["streaming"]
    kafka = run.applied("Kafka")[0]
    host, port = st["bootstrap"].rsplit(":", 1)
    assert host == f"{kafka['metadata']['name']}-kafka-bootstrap.{kafka['metadata']['namespace']}.svc"
    listener = next(item for item in kafka["spec"]["kafka"]["listeners"] if item["port"] == int(port))
    assert listener["authentication"]["type"] == st["sasl_mechanism"].lower()
    assert listener["tls"] is (st["security_protocol"] in ("SSL", "SASL_SSL"))
    users = {u["metadata"]["name"]: u for u in run.applied("KafkaUser")}
    assert st["sasl_username"] in users
    topics = {t["metadata"]["name"]: t["spec"] for t in run.applied("KafkaTopic")}
    assert st["topic"] in topics and topics[st["topic"]]["partitions"] == st["partitions"]
    acls = users[st["sasl_username"]]["spec"]["authorization"]["acls"]
    groups = [a["resource"]["name"] for a in acls if a["resource"]["type"] == "group"]
    for group in (st["bronze_group"], st["speed_group"]):
        assert any(group.startswith(prefix) for prefix in groups), group
    # the Kafka Secret of the pods carries the CA from Strimzi's own CA Secret
    reads = [c["args"] for c in run.select("k8s_info") if c["args"].get("kind") == "Secret"]
    assert any(r.get("name") == f"{kafka['metadata']['name']}-cluster-ca-cert"
               and r.get("namespace") == kafka["metadata"]["namespace"] for r in reads)


def test_dbt_profile_reads_what_the_pipeline_sets():
    project = yaml.safe_load((ROOT / "dbt/dbt_project.yml").read_text())
    profiles = (ROOT / "dbt/profiles.yml").read_text()
    assert project["profile"] in yaml.safe_load(re.sub(r"\{\{.*?\}\}", "x", profiles))
    read = set(re.findall(r"env_var\('([A-Z_]+)'", profiles))
    source = (ROOT / "pipelines/src/lakehouse/gold/dbt.py").read_text()
    set_by_pipeline = set(re.findall(r'"((?:LAKEHOUSE|DBT)_[A-Z_]+)"', source))
    optional = {"DBT_TARGET", "LAKEHOUSE_DBT_THREADS", "LAKEHOUSE_DBT_MEMORY"}  # tuning, defaults fit
    assert read - optional <= set_by_pipeline, read - optional - set_by_pipeline
    assert not list((ROOT / "ansible/roles/pipeline_deploy/templates").glob("profiles*")), "a second profile"


def test_every_layer_location_is_a_bucket_the_platform_makes_with_its_writer_mounted(site):
    env, run = site
    s = settings(env)
    made = {c["args"]["name"] for c in run.select("s3_bucket") if c["args"].get("state", "present") == "present"}
    assert s["lake_root"].removeprefix("s3://").split("/")[0] in made
    # IAM policies the buckets role puts on each user: which buckets it may write
    writes: dict[str, set[str]] = {}
    for call in run.select("iam_policy"):
        import json

        doc = call["args"]["policy_json"]
        doc = json.loads(doc) if isinstance(doc, str) else doc
        for st in doc["Statement"]:
            actions = st["Action"] if isinstance(st["Action"], list) else [st["Action"]]
            if any(a in ("s3:*", "s3:PutObject") for a in actions):
                resources = st["Resource"] if isinstance(st["Resource"], list) else [st["Resource"]]
                writes.setdefault(call["args"]["iam_name"], set()).update(
                    r.removeprefix("arn:aws:s3:::").split("/")[0] for r in resources)
    namespace = pod()["metadata"]["namespace"]
    container, spec = pod()["spec"]["containers"][0], pod()["spec"]
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in spec["volumes"]}
    key_secrets = {d["metadata"]["name"]: d for d in run.applied("Secret") if d["metadata"].get("namespace") == namespace}
    for layer, loc in s["layers"].items():
        bucket = loc["root"].removeprefix("s3://").split("/")[0]
        assert bucket in made, f"layers.{layer}: bucket {bucket} is not made by the buckets role"
        volume = volumes[mounts[loc["credentials"]]]
        secret = volume["secret"]["secretName"]
        assert secret in key_secrets, f"layers.{layer}: Secret {secret} is never written in {namespace}"
        data = key_secrets[secret].get("stringData") or key_secrets[secret].get("data") or {}
        assert {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_ENDPOINT_URL"} <= set(data)
        user = secret.removesuffix("-s3")
        assert bucket in writes.get(user, set()), f"layers.{layer}: user {user} may not write {bucket}"


def test_airflow_kafka_connection_is_the_pipelines_scram_tls_listener(site):
    """AIRFLOW_CONN_KAFKA_DEFAULT reaches the listener the pipeline settings name, with the same
    protocol, mechanism and user, and checks TLS against a CA file the Airflow containers mount
    from a Secret written from Strimzi's cluster CA."""
    import base64
    import json

    env, run = site
    st = settings(env)["streaming"]
    releases = run.helm("airflow")
    airflow_ns = releases[0]["release_namespace"]
    env_from = releases[0]["release_values"]["extraEnvFrom"]
    env_from = yaml.safe_load(env_from) if isinstance(env_from, str) else env_from
    sources = {ref["secretRef"]["name"] for ref in env_from if "secretRef" in ref}
    conn = None
    for doc in run.applied("Secret"):
        if doc["metadata"].get("namespace") != airflow_ns or doc["metadata"]["name"] not in sources:
            continue
        data = doc.get("stringData") or {k: base64.b64decode(v).decode() for k, v in (doc.get("data") or {}).items()}
        if "AIRFLOW_CONN_KAFKA_DEFAULT" in data:
            conn = json.loads(data["AIRFLOW_CONN_KAFKA_DEFAULT"])
    assert conn, "no Secret Airflow reads sets AIRFLOW_CONN_KAFKA_DEFAULT"
    extra = conn["extra"]
    assert conn["conn_type"] == "kafka"
    assert extra["bootstrap.servers"] == st["bootstrap"]
    assert extra["security.protocol"] == st["security_protocol"] == "SASL_SSL"
    assert extra.get("sasl.mechanism", extra.get("sasl.mechanisms")) == st["sasl_mechanism"]
    assert extra["sasl.username"] == st["sasl_username"]
    assert extra["sasl.password"]
    # the CA file lies in a volume of the Airflow containers, a Secret holding Strimzi's CA
    values = next(r["release_values"] for r in reversed(releases) if "volumes" in r["release_values"])
    ca = PurePosixPath(extra["ssl.ca.location"])
    mount = next((m for m in values["volumeMounts"] if PurePosixPath(m["mountPath"]) == ca.parent), None)
    assert mount, f"no Airflow volume is mounted at {ca.parent}"
    volume = next(v for v in values["volumes"] if v["name"] == mount["name"])
    written = run.applied("Secret", volume["secret"]["secretName"])
    assert [d for d in written if d["metadata"]["namespace"] == airflow_ns and ca.name in (d.get("data") or {})], (
        f"Secret {volume['secret']['secretName']} with {ca.name} is never written in {airflow_ns}"
    )
    kafka = run.applied("Kafka")[0]
    strimzi_ca = f"{kafka['metadata']['name']}-cluster-ca-cert"
    reads = [c for c in run.select("k8s_info") if c["args"].get("name") == strimzi_ca]
    assert reads, f"nothing reads {strimzi_ca}, the CA the connection must trust"


def test_the_spark_application_runs_where_the_operator_watches_with_names_that_exist(site):
    """The SparkApplication a Spark step submits (dags/k8s/spark-application.yaml, in the namespace
    the DAGs are given) lands in a namespace the Spark Operator watches, runs its driver as the
    service account the operator's chart creates there, names the Spark image `make image-spark`
    builds at the release's tag, and is used for exactly the steps the environment's settings
    give to Spark."""
    env, run = site
    names = airflow_env(run)
    read = dag_config()
    for var in ("LAKEHOUSE_SPARK_IMAGE", "LAKEHOUSE_SPARK_STEPS"):
        assert var in read and var in names, var
    app = yaml.safe_load((K8S / "spark-application.yaml").read_text())
    namespace = names["LAKEHOUSE_K8S_NAMESPACE"]
    assert app["metadata"]["namespace"] == namespace
    operator = run.helm("spark-operator")[-1]["release_values"]["spark"]
    assert namespace in operator["jobNamespaces"]
    assert run.applied("Namespace", namespace)
    assert operator["serviceAccount"]["create"] and operator["serviceAccount"]["name"] == app["spec"]["driver"]["serviceAccount"]
    make = (ROOT / "pipelines/image/spark/spark-image.mk").read_text()
    repository = re.search(r"^SPARK_IMAGE_REPOSITORY\s*\?=\s*(\S+)", make, re.MULTILINE).group(1)
    assert names["LAKEHOUSE_SPARK_IMAGE"] == f"{repository}:{RELEASE_TAG}"
    assert app["spec"]["image"].rsplit(":", 1)[0] == repository
    # the entry file is the repository's pipelines/image/spark/lakehouse_main.py, which `make
    # image-spark` puts in the build context and the Dockerfile copies to the path named
    dockerfile = (ROOT / "pipelines/image/spark/Dockerfile").read_text()
    entry = app["spec"]["mainApplicationFile"].removeprefix("local://")
    source = ROOT / "pipelines/image/spark" / PurePosixPath(entry).name
    assert source.is_file() and "main()" in source.read_text(), source
    assert re.search(rf"^COPY {source.name} {re.escape(entry)}$", dockerfile, re.MULTILINE), entry
    assert re.search(rf"^\tcp .*pipelines/image/spark/{source.name} \$\(SPARK_IMAGE_CONTEXT\)/$", make, re.MULTILINE)
    # its driver's volumes and environment are the pipeline pod's (the DAG copies them; checked by
    # pipelines/tests/test_dags_structure.py), whose Secrets and ConfigMaps the test above follows
    assert "volumes" not in app["spec"] and "env" not in app["spec"]["driver"]
    engines = settings(env).get("engines") or {}
    assert names["LAKEHOUSE_SPARK_STEPS"] == ",".join(k for k, v in engines.items() if v == "spark")
