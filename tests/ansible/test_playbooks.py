"""The real playbooks, run against each environment's real inventory with the cluster stand-in
(playbook_runs.py): every play runs in its own variable scope, so a variable a task or template
uses that does not resolve in that play fails the run. Then what the tasks sent to the nodes and
the cluster is checked, one regression test per defect a first real run would have hit (named
`test_defectNN_*`, the defect in each docstring)."""

from __future__ import annotations

import json
import re
import subprocess

import pytest
import yaml

from ansible_helpers import DEV_AGE_KEY, ROOT, VENV_BIN, tool_env
from playbook_runs import RELEASE_TAG, SCENARIOS, cached_run, failure_summary

@pytest.mark.parametrize("name", sorted(n for n in SCENARIOS if n not in ("dev-backup", "prod-no-secrets")))
def test_every_play_resolves_in_its_own_scope(name):
    run = cached_run(name)
    assert run.returncode == 0, failure_summary(run)
    assert run.calls, "the run sent nothing to the nodes"


def test_scenarios_cover_every_playbook():
    covered = {scenario[1] for scenario in SCENARIOS.values()} | {"playbooks/bootstrap.yml", "playbooks/platform.yml"}
    on_disk = {"site.yml"} | {f"playbooks/{p.name}" for p in (ROOT / "ansible/playbooks").glob("*.yml")}
    assert on_disk <= covered


def helm_values(run, release, index=-1):
    """The values of one helm call for a release (the last by default; Airflow's first call is the
    platform's, the last the pipelines release's)."""
    calls = run.helm(release)
    assert calls, f"no helm release {release}"
    return calls[index]["release_values"]


def kinds(docs):
    return {d["kind"]: d for d in docs}


# --- 1: layer users, policies and the backup's lists come from one contract ---

def test_defect01_seaweedfs_layer_users_and_policies_created(request):
    """Defect 1: the platform's users/policies were empty (buckets_users out of scope)."""
    run = cached_run("dev-site-fresh")
    contract = yaml.safe_load((ROOT / "ansible/roles/lakehouse/defaults/main.yml").read_text())
    expected = {u["name"] for u in contract["lakehouse_s3_users"]}
    assert {c["args"]["name"] for c in run.select("iam_user")} == expected
    assert {c["args"]["policy_name"] for c in run.select("iam_policy")} == {f"{u}-access" for u in expected}


@pytest.fixture(scope="module")
def minio_run():
    run = cached_run("dev-platform-minio")
    assert run.returncode == 0, failure_summary(run)
    return run


def test_defect01_minio_gets_one_user_and_policy_per_layer(minio_run):
    values = helm_values(minio_run, "minio")
    users = {u["accessKey"]: u for u in values["users"]}
    assert set(users) == {"lakehouse-bronze-writer", "lakehouse-silver-writer", "lakehouse-gold-writer",
                          "lakehouse-bi-reader", "airflow-logs-writer"}
    policies = {p["name"]: p for p in values["policies"]}
    silver_write = [s for s in policies["lakehouse-silver-writer-access"]["statements"] if "s3:PutObject" in s["actions"]]
    assert "arn:aws:s3:::silver/*" in silver_write[0]["resources"]
    assert not any("bronze" in r for r in silver_write[0]["resources"])
    assert minio_run.select("iam_user") == [], "MinIO has no IAM API: the chart creates the users"


def test_defect01_backup_saves_every_database_and_layer_bucket():
    run = cached_run("prod-backup")
    assert run.returncode == 0, failure_summary(run)
    cron = {c["metadata"]["name"]: c for c in run.applied("CronJob")}
    spec = cron["lakehouse-backup"]["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    dump = spec["initContainers"][0]["args"][0]
    for db in ("source", "serving", "airflow"):
        assert f"-d {db} -Fc" in dump
    copy = spec["containers"][0]["args"][0]
    for bucket in ("bronze", "silver", "gold", "checkpoints"):
        assert f"rclone sync src:{bucket} dst:ampere-prod-backup/buckets/{bucket}" in copy
    assert "scratch" not in copy


def test_defect01_backup_refuses_to_save_nothing():
    run = cached_run("dev-backup")
    assert run.returncode != 0
    assert "Nothing to back up or nowhere to put it" in run.output
    assert not run.applied("CronJob") and not run.applied("Job")


# --- 2: MinIO lifecycle ---

def _minio_accepts(rule_args: dict) -> bool:
    """MinIO's Rule.Validate (internal/bucket/lifecycle/rule.go, minio/minio@7aac2a2): a rule needs
    Expiration, Transition, NoncurrentVersionExpiration/Transition or DelMarkerExpiration."""
    actions = ("expiration_days", "expiration_date", "noncurrent_version_expiration_days", "transition_days",
               "transitions", "noncurrent_version_transition_days", "expire_object_delete_marker")
    return rule_args.get("state") == "absent" or any(rule_args.get(a) not in (None, "", []) for a in actions)


def test_defect02_minio_gets_no_abort_only_lifecycle_rule(minio_run):
    rules = minio_run.select("s3_lifecycle")
    assert rules
    rejected = [(r["args"]["name"], r["args"]["rule_id"]) for r in rules if not _minio_accepts(r["args"])]
    assert rejected == []


def test_defect02_seaweedfs_keeps_the_abort_rule_and_never_expires_delta_tables():
    rules = cached_run("dev-site-fresh").select("s3_lifecycle")
    by_bucket = {}
    for r in rules:
        by_bucket.setdefault(r["args"]["name"], {})[r["args"]["rule_id"]] = r["args"]
    assert "abort-incomplete-multipart" in by_bucket["bronze"]
    for bucket in ("bronze", "silver", "gold", "checkpoints"):
        assert by_bucket[bucket]["expiry"]["state"] == "absent", f"{bucket} holds Delta tables"


# --- 3: Airflow logs ---

def test_defect03_airflow_logs_go_to_the_object_store():
    run = cached_run("dev-site-fresh")
    values = helm_values(run, "airflow", 0)
    assert values["logs"]["persistence"]["enabled"] is False
    logging = values["config"]["logging"]
    assert logging["remote_logging"] == "True" and logging["remote_base_log_folder"].startswith("s3://airflow-logs/")
    assert "airflow-logs-writer-s3" in values["extraEnvFrom"]
    assert "airflow-logs" in {c["args"]["name"] for c in run.select("s3_bucket")}
    key_secrets = [d for d in run.applied("Secret", "airflow-logs-writer-s3") if d["metadata"]["namespace"] == "airflow"]
    assert key_secrets and set(key_secrets[0]["stringData"]) >= {"AWS_ACCESS_KEY_ID", "AWS_ENDPOINT_URL"}
    # The Secret exists before Airflow is installed, or its pods could not start.
    order = [c["task"] for c in run.calls]
    assert max(i for i, t in enumerate(order) if "Store the new key pair" in t) < order.index(
        next(t for t in order if "Install Airflow" in t))


# --- 4: git-sync ---

def git_sync_ref(values: dict) -> str:
    """git-sync v4's resolution of --ref from the chart's GITSYNC_REF, GIT_SYNC_BRANCH, GIT_SYNC_REV
    (main.go of kubernetes/git-sync v4.7.1); a config error is raised as in git-sync."""
    git = values["dags"]["gitSync"]
    ref, branch, rev = git.get("ref", "HEAD") or "HEAD", git.get("branch", ""), git.get("rev", "")
    if branch and rev not in ("", "HEAD"):
        raise ValueError("deprecated flag combo: can't set --ref from deprecated --branch and --rev")
    if branch:
        return branch
    if rev:
        return rev
    return ref


def test_defect04_git_sync_gets_the_ref_alone():
    run = cached_run("prod-site-fresh")
    calls = run.helm("airflow")
    assert git_sync_ref(calls[0]["release_values"]) == "main"
    assert git_sync_ref(calls[-1]["release_values"]) == RELEASE_TAG


def test_defect04_upgrade_keeps_the_release_pin():
    run = cached_run("prod-upgrade")
    assert run.returncode == 0, failure_summary(run)
    assert git_sync_ref(helm_values(run, "airflow")) == "1.4.2"


# --- 5: kube-vip and HA joins ---

def _index(run, host, predicate):
    return [i for i, c in enumerate(run.calls) if c["host"] == host and predicate(c)]


def test_defect05_kube_vip_comes_after_the_control_plane_join():
    run = cached_run("prod-site-fresh")
    for host in ("ampere-prod-cp-2", "ampere-prod-cp-3"):
        join = _index(run, host, lambda c: "--control-plane" in str(c["args"].get("cmd", "")))
        vip = _index(run, host, lambda c: c["args"].get("dest") == "/etc/kubernetes/manifests/kube-vip.yaml")
        assert join and vip and min(vip) > max(join), host


def test_defect05_control_plane_nodes_join_one_at_a_time():
    run = cached_run("prod-site-fresh")
    play = [i for i, c in enumerate(run.calls) if c["play"].startswith("Bootstrap - join the other control-plane")]
    hosts = [run.calls[i]["host"] for i in play]
    assert hosts == sorted(hosts, key=lambda h: hosts.index(h)) and hosts.index("ampere-prod-cp-3") > len(hosts) - 1 - hosts[::-1].index("ampere-prod-cp-2")


def test_defect12_kube_vip_keeps_super_admin_only_until_init():
    run = cached_run("prod-site-fresh")
    manifests = run.written("/etc/kubernetes/manifests/kube-vip.yaml", host="ampere-prod-cp-1")
    paths = [yaml.safe_load(m)["spec"]["volumes"][0]["hostPath"]["path"] for m in manifests]
    assert paths == ["/etc/kubernetes/super-admin.conf", "/etc/kubernetes/admin.conf"]
    converged = cached_run("dev-site-converged")
    assert not any("super-admin" in m for m in converged.written("/etc/kubernetes/manifests/kube-vip.yaml"))


# --- 6: kubelet serving certificates ---

def test_defect06_serving_certificate_requests_are_approved():
    run = cached_run("prod-site-fresh")
    kubeadm = list(yaml.safe_load_all(run.written("/etc/kubernetes/kubeadm-config.yaml", host="ampere-prod-cp-1")[0]))
    assert kinds(kubeadm)["KubeletConfiguration"]["serverTLSBootstrap"] is True
    values = helm_values(run, "kubelet-csr-approver")
    hosts = yaml.safe_load((ROOT / "environments/prod/inventory/hosts.example.yml").read_text())
    nodes = {name: hv for group in hosts["all"]["children"]["k8s_cluster"]["children"].values()
             for name, hv in (group.get("hosts") or {}).items()}
    assert all(re.match(values["providerRegex"], n) for n in nodes)
    assert not re.match(values["providerRegex"], "evil-node")
    assert sorted(values["providerIpPrefixes"]) == sorted(f"{hv['node_ip']}/32" for hv in nodes.values())


# --- 7: LoadBalancer traffic ---

@pytest.mark.parametrize("env", ["dev", "prod"])
def test_defect07_firewall_accepts_the_load_balancer_pool(env):
    run = cached_run(f"{env}-site-fresh")
    ruleset = run.written("/etc/nftables.conf")[0]
    pool = yaml.safe_load((ROOT / f"environments/{env}/inventory/group_vars/k8s_cluster.yml").read_text())["cluster_addons_metallb_addresses"]
    assert "ip daddr @accepted_destinations_v4 accept" in ruleset
    assert all(p in ruleset for p in pool)
    assert "policy drop;" in ruleset


def test_defect07_object_store_service_is_a_load_balancer_in_prod():
    values = helm_values(cached_run("prod-site-fresh"), "seaweedfs")
    assert values["s3"]["service"]["type"] == "LoadBalancer"
    assert values["s3"]["annotations"]["metallb.io/loadBalancerIPs"] == "192.168.50.240"


def test_object_store_keeps_a_second_copy_when_it_has_two_servers():
    prod = helm_values(cached_run("prod-site-fresh"), "seaweedfs")
    assert prod["volume"]["replicas"] == 2 and prod["master"]["defaultReplication"] == "001"
    dev = helm_values(cached_run("dev-site-fresh"), "seaweedfs")
    assert dev["volume"]["replicas"] == 1 and dev["master"]["defaultReplication"] == "000"


# --- 8: Grafana datasource ---

def test_defect08_grafana_reads_a_service_that_one_instance_answers():
    run = cached_run("dev-site-fresh")
    source = helm_values(run, "grafana")["datasources"]["datasources.yaml"]["datasources"][0]
    assert source["url"] == "lakehouse-pg-r.postgres.svc:5432"
    assert run.applied("Cluster")[0]["spec"]["instances"] == 1


# --- 9: upgrades ---

def test_defect09_upgrade_moves_the_package_repository_to_the_new_minor():
    run = cached_run("dev-upgrade")
    assert run.returncode == 0, failure_summary(run)
    lists = run.written("/etc/apt/sources.list.d/kubernetes.list")
    assert lists and all("/v1.34/deb/" in content and "v1.33" not in content for content in lists)


def test_defect09_single_instance_postgres_does_not_block_the_drain():
    run = cached_run("dev-upgrade")
    assert run.returncode == 0, failure_summary(run)
    for host in ("ampere-dev-worker-1",):
        tasks = [c for c in run.calls if c["host"] == host]
        names = [c["task"] for c in tasks]
        open_at = names.index("Open CloudNativePG's maintenance window for a single instance")
        drain = names.index("Drain the node")
        close_at = names.index("Close CloudNativePG's maintenance window")
        assert open_at < drain < close_at
        assert tasks[open_at]["args"]["definition"]["spec"]["nodeMaintenanceWindow"]["inProgress"] is True


# --- 10: storage ---

@pytest.mark.parametrize("env", ["dev", "prod"])
def test_defect10_stateful_services_use_the_data_disks(env):
    run = cached_run(f"{env}-site-fresh")
    config = json.loads(kinds([d for d in run.applied("ConfigMap", "local-path-config")])["ConfigMap"]["data"]["config.json"])
    classes = config["storageClassConfigs"]
    assert config["nodePathMap"] == []
    hosts = yaml.safe_load(ROOT.joinpath("environments", env, "inventory",
                                         "hosts.yml" if env == "dev" else "hosts.example.yml").read_text())
    nodes = {n: hv for g in hosts["all"]["children"]["k8s_cluster"]["children"].values() for n, hv in (g.get("hosts") or {}).items()}
    with_disks = {n for n, hv in nodes.items() if hv["data_disks"]}
    assert {m["node"] for m in classes["lakehouse-objects"]["nodePathMap"]} == with_disks
    assert all(m["paths"] == ["/mnt/disks/0/local-path"] for m in classes["lakehouse-objects"]["nodePathMap"])
    assert all(m["paths"] == ["/mnt/disks/1/local-path"] for m in classes["lakehouse-postgres"]["nodePathMap"])
    labels = {c["args"]["name"]: c["args"]["definition"]["metadata"]["labels"] for c in run.select("k8s", task="Label each node")}
    assert {n for n, lab in labels.items() if lab["lakehouse.ampere/data-disks"] == "true"} == with_disks
    seaweed = helm_values(run, "seaweedfs")
    assert seaweed["volume"]["dataDirs"][0]["storageClass"] == "lakehouse-objects"
    assert "lakehouse.ampere/data-disks" in seaweed["volume"]["nodeSelector"]
    cluster = run.applied("Cluster")[0]["spec"]
    assert cluster["storage"]["storageClass"] == "lakehouse-postgres"
    assert cluster["affinity"]["nodeSelector"] == {"lakehouse.ampere/data-disks": "true"}
    # Every data volume fits the data disks of the nodes that may hold it (one volume per node).
    assert int(seaweed["volume"]["replicas"]) <= len(with_disks)
    assert int(cluster["instances"]) <= len(with_disks)


# --- 12: smaller ones ---

def test_defect12_join_token_only_when_a_node_must_join():
    fresh = cached_run("dev-site-fresh")
    converged = cached_run("dev-site-converged")
    assert any("kubeadm token create" in str(c["args"].get("cmd", "")) for c in fresh.select("command"))
    assert not any("kubeadm token create" in str(c["args"].get("cmd", "")) for c in converged.select("command"))
    assert not any("upload-certs" in str(c["args"].get("cmd", "")) for c in converged.select("command"))


def test_defect12_databases_wait_for_the_managed_roles():
    run = cached_run("dev-site-fresh")
    names = [c["task"] for c in run.calls]
    wait = names.index("platform : Wait for CloudNativePG to create the managed login roles")
    first_db = names.index("platform : Create the databases with their owners")
    assert wait < first_db


def test_defect12_airflow_admin_password_comes_from_sops():
    values = helm_values(cached_run("dev-site-fresh"), "airflow", 0)
    user = values["createUserJob"]["defaultUser"]
    assert user["enabled"] is True and user["password"] == "fake-airflow.admin_password"


def test_defect12_dev_names_nothing_that_is_not_provisioned():
    text = (ROOT / "environments/dev/inventory/group_vars/k8s_cluster.yml").read_text()
    values = yaml.safe_load(text)
    assert "git.ampere.lan" not in text and "10.42.10.1:" not in text
    assert values["platform_airflow_dags_source"] == "image"
    assert values["backup_target_endpoint"] == ""


def test_defect12_missing_secrets_file_is_one_clear_line():
    run = cached_run("prod-no-secrets")
    assert run.returncode != 0
    assert re.search(r"absent\.sops\.yaml does not exist: create it with `make secrets-init ENV=prod`", run.output)


def test_defect12_secrets_init_creates_every_key_for_a_new_environment(tmp_path):
    recipient = DEV_AGE_KEY.read_text().split("public key: ")[1].split()[0]
    target = tmp_path / "prod.sops.yaml"
    subprocess.run([str(VENV_BIN / "python"), str(ROOT / "ansible/scripts/secrets_init.py"), "prod", "--output", str(target),
                    "--", "--age", recipient], env=tool_env(SOPS=str(VENV_BIN / "sops")), check=True, capture_output=True)
    assert "ENC[AES256_GCM" in target.read_text()
    sops = [str(VENV_BIN / "sops"), "--disable-version-check", "decrypt", "--output-type", "json"]
    new = json.loads(subprocess.run(sops + [str(target)], env=tool_env(SOPS_AGE_KEY_FILE=str(DEV_AGE_KEY)),
                                    check=True, capture_output=True, text=True).stdout)
    dev = json.loads(subprocess.run(sops + [str(ROOT / "secrets/dev/platform.sops.yaml")],
                                    env=tool_env(SOPS_AGE_KEY_FILE=str(DEV_AGE_KEY)), check=True, capture_output=True, text=True).stdout)

    def shape(node):
        return {k: shape(v) for k, v in node.items()} if isinstance(node, dict) else None
    assert shape(new) == shape(dev)
    assert new["s3"]["admin_secret_key"] != dev["s3"]["admin_secret_key"]


# --- 13: backups that protect data ---

def test_defect13_postgres_archives_wal_and_takes_scheduled_base_backups():
    run = cached_run("prod-site-fresh")
    store = run.applied("Cluster")[0]["spec"]["backup"]["barmanObjectStore"]
    assert store["destinationPath"] == "s3://ampere-prod-backup/postgres"
    assert store["endpointURL"] == "http://192.168.50.5:9000" and store["serverName"] == "lakehouse-pg"
    assert store["s3Credentials"]["accessKeyId"]["name"] == "backup-target"
    assert [d for d in run.applied("Secret", "backup-target") if d["metadata"]["namespace"] == "postgres"]
    scheduled = run.applied("ScheduledBackup")[0]["spec"]
    assert scheduled["method"] == "barmanObjectStore" and scheduled["cluster"]["name"] == "lakehouse-pg"


def test_defect13_etcd_snapshots_are_scheduled():
    run = cached_run("prod-backup")
    cron = {c["metadata"]["name"]: c for c in run.applied("CronJob")}
    etcd = cron["etcd-snapshot"]["spec"]
    pod = etcd["jobTemplate"]["spec"]["template"]["spec"]
    assert pod["initContainers"][0]["command"][-3:] == ["snapshot", "save", "/snapshot/etcd.db"]
    assert "node-role.kubernetes.io/control-plane" in pod["nodeSelector"]
    assert etcd["schedule"] and cron["lakehouse-backup"]["spec"]["schedule"]
    assert len(run.applied("Job")) == 2, "backup.yml also runs one backup now"


def test_defect13_point_in_time_recovery_cluster():
    run = cached_run("prod-restore-pitr")
    assert run.returncode == 0, failure_summary(run)
    cluster = run.applied("Cluster", "lakehouse-pg-pitr")[0]["spec"]
    assert cluster["bootstrap"]["recovery"]["recoveryTarget"]["targetTime"] == "2026-01-01 02:00:00+00"
    assert cluster["externalClusters"][0]["barmanObjectStore"]["destinationPath"] == "s3://ampere-prod-backup/postgres"


# --- what the old template test checked, now on what the real plays send ---

def test_kubeadm_and_kube_vip_per_environment():
    for env, endpoint in (("dev", "10.42.10.10:6443"), ("prod", "192.168.50.199:6443")):
        run = cached_run(f"{env}-site-fresh")
        first = f"ampere-{env}-cp-1"
        docs = kinds(list(yaml.safe_load_all(run.written("/etc/kubernetes/kubeadm-config.yaml", host=first)[0])))
        assert docs["ClusterConfiguration"]["controlPlaneEndpoint"] == endpoint
        assert docs["ClusterConfiguration"]["kubernetesVersion"] == "v1.33.5"
        assert docs["KubeletConfiguration"]["cgroupDriver"] == "systemd"
    vip = yaml.safe_load(cached_run("prod-site-fresh").written("/etc/kubernetes/manifests/kube-vip.yaml")[0])
    env_vars = {e["name"]: e["value"] for e in vip["spec"]["containers"][0]["env"]}
    assert env_vars["address"] == "192.168.50.199" and env_vars["vip_interface"] == "enp1s0"


def test_postgres_kafka_and_release_values():
    run = cached_run("prod-site-fresh")
    roles = {r["name"] for r in run.applied("Cluster")[0]["spec"]["managed"]["roles"]}
    assert roles == {"source_app", "serving_app", "bi_readonly", "airflow", "marquez"}
    pool = run.applied("KafkaNodePool")[0]["spec"]
    assert pool["replicas"] == 3 and set(pool["roles"]) == {"controller", "broker"}
    release = helm_values(run, "airflow")
    env_vars = {e["name"]: e["value"] for e in release["env"]}
    assert env_vars["LAKEHOUSE_IMAGE"] == f"ampere-lakehouse/pipelines:{RELEASE_TAG}"
    assert env_vars["LAKEHOUSE_EXECUTION"] == "kubernetes" and env_vars["LAKEHOUSE_ENV"] == "prod"
    assert run.applied("ConfigMap", "lakehouse-dashboards"), "dashboards ConfigMap"


def _gib(size: str) -> int:
    assert size.endswith("Gi"), size
    return int(size[:-2])


@pytest.mark.parametrize("env", ["dev", "prod"])
def test_defect10_volumes_fit_the_disks_terraform_creates(env):
    """Defect 10: prod asked for 4 x 400 GiB object volumes where no worker has a data disk. The
    sizes Ansible requests must fit the disks in the environment's terraform.tfvars, per node."""
    import hcl2  # noqa: PLC0415

    tfvars = hcl2.load((ROOT / f"environments/{env}/terraform.tfvars").open())
    with_disks = [g for g in ("control_plane", "workers", "storage_nodes") if tfvars.get(g, {}).get("data_disks")]
    assert len(with_disks) == 1, with_disks
    group = tfvars[with_disks[0]]
    disks = [d["size_gib"] for d in group["data_disks"]]
    run = cached_run(f"{env}-site-fresh")
    seaweed = helm_values(run, "seaweedfs")
    per_node = -(-int(seaweed["volume"]["replicas"]) // group["count"])
    objects = per_node * _gib(seaweed["volume"]["dataDirs"][0]["size"]) + _gib(seaweed["master"]["data"]["size"]) \
        + _gib(seaweed["filer"]["data"]["size"])
    assert objects <= disks[0], f"object store needs {objects} GiB on a {disks[0]} GiB disk"
    cluster = run.applied("Cluster")[0]["spec"]
    postgres = -(-int(cluster["instances"]) // group["count"]) * _gib(cluster["storage"]["size"])
    assert postgres <= disks[min(1, len(disks) - 1)], f"PostgreSQL needs {postgres} GiB"
    roots = [tfvars[g]["root_disk_gib"] for g in ("control_plane", "workers", "storage_nodes") if tfvars.get(g, {}).get("count")]
    kafka = _gib(run.applied("KafkaNodePool")[0]["spec"]["storage"]["volumes"][0]["size"])
    assert kafka <= min(roots) - 10, "Kafka's volume on the smallest root disk, 10 GiB left to the system"
