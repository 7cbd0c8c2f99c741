"""The backup role's Jobs, executed here as the real playbooks render them.

The nightly `lakehouse-backup` CronJob (pg_dump per database, then rclone: the dumps and every layer
bucket to the backup target), the restore Job that `playbooks/restore.yml` starts (rclone fetch of
one run's dumps and the buckets back, then pg_restore) and the `etcd-snapshot` CronJob (etcdctl
snapshot save with kubeadm's client certificate, then rclone) are taken from what the real
playbook runs send to the cluster (cluster stand-in, playbook_runs.py). Each container's command
and script runs here as written, against a throwaway PostgreSQL 15, local SeaweedFS servers (the
layer store and the backup target) and a throwaway etcd with TLS. Only these are substituted:
  - the PostgreSQL service host `<cluster>-rw.<namespace>.svc` -> 127.0.0.1 (the port comes from
    PGPORT, which the scripts leave to libpq);
  - the etcd client endpoint's port 2379 -> a free port;
  - the pods' volume mounts (/dumps, /work, /snapshot, /etc/kubernetes/pki/etcd) -> folders of
    this test;
  - the S3 endpoints in the containers' env -> the SeaweedFS servers;
  - the `backup-credentials` Secret's values (its keys as prepare.yml writes them) -> the test's
    PostgreSQL password and SeaweedFS keys.
The tools are Debian's (pg_dump/pg_restore 15, rclone 1.60, etcd/etcdctl 3.4) rather than the
images' (PostgreSQL 16.6, rclone 1.69.1, etcd 3.5.21). The etcd restore follows the procedure in
ansible/README.md ("Backup and restore")."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import boto3
import pytest
import yaml
from ansible_helpers import ROLES_DIR, VENV_BIN, tool_env
from boto3.s3.transfer import TransferConfig
from playbook_runs import cached_run, failure_summary, run_playbook

PG_BIN = Path("/usr/lib/postgresql/15/bin")
SEAWEEDFS = ROLES_DIR / "buckets/molecule/default/seaweedfs.py"
CONTRACT = yaml.safe_load((ROLES_DIR / "lakehouse/defaults/main.yml").read_text())
PG_SERVICE = "lakehouse-pg-rw.postgres.svc"
SUPERUSER_PASSWORD = secrets.token_urlsafe(16)


def require(*tools: str) -> None:
    """Under `make test` a missing tool is a failure, not a skip: make setup-ansible installs them."""
    missing = [t for t in tools if shutil.which(t) is None and not Path(t).exists()]
    if missing:
        pytest.fail(f"missing {', '.join(missing)}: run `make setup-ansible` (apt: rclone, etcd-server, etcd-client, "
                    "postgresql-15)", pytrace=False)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --- throwaway servers ---

def as_server_user(args: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: as root, run its server tools as the `postgres` OS user."""
    return ["runuser", "-u", "postgres", "--", *args] if os.geteuid() == 0 else args


def hand_over(path: Path) -> None:
    if os.geteuid() == 0:
        shutil.chown(path, "postgres", "postgres")
        for child in path.rglob("*"):
            shutil.chown(child, "postgres", "postgres")


class Postgres:
    """A PostgreSQL 15 cluster on a free loopback port with a password-protected superuser, as
    CloudNativePG's (the Jobs log in with PGPASSWORD)."""

    def __init__(self, root: Path):
        self.data = root / "data"
        self.port = free_port()

    def start(self) -> Postgres:
        self.data.mkdir(mode=0o700)
        pwfile = self.data.parent / f"{self.data.parent.name}.pw"
        pwfile.write_text(SUPERUSER_PASSWORD + "\n")
        hand_over(self.data)
        hand_over(pwfile)
        subprocess.run(as_server_user([str(PG_BIN / "initdb"), "-D", str(self.data), "-U", "postgres",
                                       "-A", "scram-sha-256", f"--pwfile={pwfile}"]), check=True, capture_output=True)
        proc = subprocess.run(as_server_user([
            str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-l", str(self.data / "server.log"), "-w", "-t", "60",
            "-o", f"-p {self.port} -k {self.data} -c listen_addresses=127.0.0.1", "start"]), capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
        return self

    def stop(self) -> None:
        subprocess.run(as_server_user([str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop"]),
                       check=False, capture_output=True)

    def sql(self, sql: str, db: str = "postgres", role: str | None = None) -> str:
        if role:
            sql = f"SET ROLE {role}; {sql}"
        proc = subprocess.run(["psql", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-d", db,
                               "-v", "ON_ERROR_STOP=1", "-Atqc", sql],
                              env=tool_env(PGPASSWORD=SUPERUSER_PASSWORD), capture_output=True, text=True)
        assert proc.returncode == 0, f"{sql}\n{proc.stderr}"
        return proc.stdout.strip()


@pytest.fixture
def workdir():
    """A folder the postgres OS user can reach (pytest's tmp_path is private to root)."""
    path = Path(tempfile.mkdtemp(prefix="ampere-backup-jobs-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def postgres_servers(workdir):
    started: list[Postgres] = []

    def start(name: str) -> Postgres:
        (workdir / name).mkdir()
        (workdir / name).chmod(0o755)
        started.append(Postgres(workdir / name).start())
        return started[-1]

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def s3_servers(tmp_path):
    """SeaweedFS servers started side by side: s3_servers("layers", "target") -> their endpoints."""
    states: list[Path] = []

    def start(*names: str) -> list[dict]:
        new = [tmp_path / f"s3-{name}" for name in names]
        states.extend(new)
        procs = [subprocess.Popen([str(VENV_BIN / "python"), str(SEAWEEDFS), "start", str(s)], env=tool_env(),
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT) for s in new]
        for proc in procs:
            out = proc.communicate(timeout=120)[0]
            assert proc.returncode == 0, out.decode()[-2000:]
        return [json.loads((s / "endpoint.json").read_text()) for s in new]

    yield start
    stops = [subprocess.Popen([str(VENV_BIN / "python"), str(SEAWEEDFS), "stop", str(s)], env=tool_env()) for s in states]
    for stop in stops:
        stop.wait(timeout=60)


def s3_client(endpoint: dict):
    return boto3.client("s3", endpoint_url=endpoint["endpoint_url"], aws_access_key_id=endpoint["access_key"],
                        aws_secret_access_key=endpoint["secret_key"], region_name="us-east-1")


# --- the rendered manifests ---

def pod_spec(doc: dict) -> dict:
    spec = doc["spec"]["jobTemplate"]["spec"] if doc["kind"] == "CronJob" else doc["spec"]
    return spec["template"]["spec"]


def run_container(container: dict, secret: dict[str, str], substitutions: dict[str, str], extra_env: dict[str, str],
                  endpoints: dict[str, str], succeed: bool = True) -> str:
    """Run a container's command + args as written, with the substitutions the module docstring
    lists (endpoints: env variable name -> a local server's URL); fails the test with the
    container's output unless it exits as expected."""
    secret_refs = [e["secretRef"]["name"] for e in container.get("envFrom", [])]
    assert secret_refs in ([], ["backup-credentials"]), secret_refs
    # A pod's environment: only what the manifest sets (none of this machine's, e.g. AWS_CA_BUNDLE).
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", **(secret if secret_refs else {}), **extra_env}
    for item in container.get("env", []):
        env[item["name"]] = endpoints.get(item["name"], item["value"])
    argv = []
    for arg in container["command"] + container.get("args", []):
        for old, new in substitutions.items():
            # A mount path only where a path starts (not `dst:bucket/dumps/...`).
            arg = re.sub(rf"(?<![^\s=]){re.escape(old)}(?=[/\s]|$)", new, arg)
        argv.append(arg)
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300)
    assert (proc.returncode == 0) == succeed, (
        f"{container['name']} exited {proc.returncode}:\n{argv}\n{proc.stdout}{proc.stderr}")
    return proc.stdout + proc.stderr


def backup_secret_keys(run) -> set[str]:
    secrets = [d for d in run.applied("Secret", "backup-credentials") if d["metadata"]["namespace"] == "backup"]
    assert secrets, "the play writes no backup-credentials Secret"
    return set(secrets[0]["data"])


# --- what a backup must bring back ---

DATABASES = CONTRACT["lakehouse_postgres_databases"]
BI_USER = "bi_readonly"


def provision(pg: Postgres) -> None:
    """What the platform role creates before any data: the login roles, the databases with their
    owners, the schemas owned by the database owner, and the BI user's default SELECT."""
    for role in [d["owner"] for d in DATABASES] + [BI_USER]:
        pg.sql(f"CREATE ROLE {role} LOGIN")
    for db in DATABASES:
        pg.sql(f"CREATE DATABASE {db['name']} OWNER {db['owner']}")
        for schema in db["schemas"]:
            if schema != "public":
                pg.sql(f"CREATE SCHEMA {schema} AUTHORIZATION {db['owner']}", db=db["name"])
    pg.sql(f"GRANT USAGE ON SCHEMA gold, realtime TO {BI_USER}; "
           f"ALTER DEFAULT PRIVILEGES FOR ROLE serving_app IN SCHEMA gold, realtime GRANT SELECT ON TABLES TO {BI_USER}",
           db="serving")


def write_data(pg: Postgres) -> None:
    """Tables the applications create as their own roles (as the pipelines and Airflow do)."""
    for db in DATABASES:
        for schema in db["schemas"]:
            pg.sql(f"CREATE TABLE {schema}.events (id bigserial PRIMARY KEY, payload jsonb, amount numeric(12,2), "
                   f"at timestamptz DEFAULT now()); "
                   f"INSERT INTO {schema}.events (payload, amount) SELECT jsonb_build_object('n', g, 'db', "
                   f"'{db['name']}'), g * 1.25 FROM generate_series(1, 2000) g; "
                   f"CREATE VIEW {schema}.big_events AS SELECT * FROM {schema}.events WHERE amount > 1000",
                   db=db["name"], role=db["owner"])


def fingerprint(pg: Postgres, db: str) -> dict:
    """Rows (count + digest per table), owners and grants of every relation, and sequence positions."""
    tables = pg.sql("SELECT n.nspname || '.' || c.relname || '|' || c.relkind::text || '|' || pg_get_userbyid(c.relowner) "
                    "|| '|' || coalesce(c.relacl::text, '') FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                    "WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast') AND c.relkind IN ('r','v','S') "
                    "ORDER BY 1", db=db).splitlines()
    result = {"relations": tables}
    for line in tables:
        name, kind = line.split("|")[:2]
        if kind == "r":
            result[name] = pg.sql(f"SELECT count(*) || ':' || md5(coalesce(string_agg(t::text, ',' ORDER BY t::text), '')) "
                                  f"FROM {name} t", db=db)
        elif kind == "S":
            result[name] = pg.sql(f"SELECT last_value FROM {name}", db=db)
    return result


def layer_objects(s3, buckets: list[str]) -> dict[str, str]:
    """bucket/key -> sha256 of the content."""
    found = {}
    for bucket in buckets:
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            for obj in page.get("Contents", []):
                body = s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read()
                found[f"{bucket}/{obj['Key']}"] = hashlib.sha256(body).hexdigest()
    return found


def fill_buckets(s3, buckets: list[str]) -> None:
    """Delta-table-shaped objects; one uploaded in parts, as large Parquet files are (its ETag is
    not an MD5, which rclone's --checksum must cope with)."""
    for i, bucket in enumerate(buckets):
        s3.create_bucket(Bucket=bucket)
        s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
        for n in range(3):
            s3.put_object(Bucket=bucket, Key=f"orders/_delta_log/{n:020d}.json", Body=json.dumps({"commit": n}).encode())
            s3.put_object(Bucket=bucket, Key=f"orders/date=2026-01-0{n + 1}/part-{n:05d}-{bucket}.parquet",
                          Body=os.urandom(1000 + 97 * n))
        if i == 0:
            put_in_parts(s3, bucket, "orders/big.parquet")


def put_in_parts(s3, bucket: str, key: str) -> None:
    parts = TransferConfig(multipart_threshold=5 * 1024 * 1024, multipart_chunksize=5 * 1024 * 1024)
    s3.upload_fileobj(io.BytesIO(os.urandom(11 * 1024 * 1024 + 13)), bucket, key, Config=parts)
    assert s3.head_object(Bucket=bucket, Key=key)["ETag"].endswith('-3"')


# --- the round trip ---

RESTORE_RUN = "backup-jobs-restore"


def test_nightly_backup_then_restore_brings_back_rows_owners_and_objects(workdir, postgres_servers, s3_servers):
    require(str(PG_BIN / "initdb"), "psql", "pg_dump", "pg_restore", "rclone")
    backup_run = cached_run("prod-backup")
    assert backup_run.returncode == 0, failure_summary(backup_run)
    nightly = pod_spec(backup_run.applied("CronJob", "lakehouse-backup")[0])
    secret_keys = backup_secret_keys(backup_run)
    layers, target = s3_servers("layers", "target")
    secret = {"PGPASSWORD": SUPERUSER_PASSWORD,
              "RCLONE_CONFIG_SRC_ACCESS_KEY_ID": layers["access_key"],
              "RCLONE_CONFIG_SRC_SECRET_ACCESS_KEY": layers["secret_key"],
              "RCLONE_CONFIG_DST_ACCESS_KEY_ID": target["access_key"],
              "RCLONE_CONFIG_DST_SECRET_ACCESS_KEY": target["secret_key"]}
    assert set(secret) == secret_keys, "the test supplies exactly the Secret's keys"
    endpoints = {"RCLONE_CONFIG_SRC_ENDPOINT": layers["endpoint_url"], "RCLONE_CONFIG_DST_ENDPOINT": target["endpoint_url"]}

    # The cluster before the disaster.
    origin = postgres_servers("origin")
    provision(origin)
    write_data(origin)
    expected_db = {db["name"]: fingerprint(origin, db["name"]) for db in DATABASES}
    copy_script = nightly["containers"][0]["args"][0]
    buckets = re.findall(r"rclone sync src:(\S+)\s", copy_script)
    target_bucket = re.search(r"dst:(\S+?)/dumps/", copy_script).group(1)
    assert buckets and target_bucket
    layer_s3, target_s3 = s3_client(layers), s3_client(target)
    fill_buckets(layer_s3, buckets)
    expected_objects = layer_objects(layer_s3, buckets)
    # prepare.yml creates the target bucket, versioned.
    target_s3.create_bucket(Bucket=target_bucket)
    target_s3.put_bucket_versioning(Bucket=target_bucket, VersioningConfiguration={"Status": "Enabled"})

    # The nightly Job: the pg-dump init container, then the copy container, on one dumps volume.
    dumps = workdir / "dumps"
    dumps.mkdir()
    mounts = {"/dumps": str(dumps), PG_SERVICE: "127.0.0.1"}
    for container in nightly["initContainers"] + nightly["containers"]:
        run_container(container, secret, mounts, {"PGPORT": str(origin.port)}, endpoints)
    run_id = (dumps / "current/RUN").read_text().strip()
    stored = {o["Key"] for o in target_s3.list_objects_v2(Bucket=target_bucket, Prefix=f"dumps/{run_id}/")["Contents"]}
    assert stored == {f"dumps/{run_id}/{d['name']}.dump" for d in DATABASES} | {f"dumps/{run_id}/RUN"}
    # The next copy saves a same-size object rewritten in parts.
    put_in_parts(layer_s3, buckets[0], "orders/big.parquet")
    expected_objects = layer_objects(layer_s3, buckets)
    run_container(nightly["containers"][0], secret, mounts, {}, endpoints)

    # The disasters: bad writes to the running cluster (rows lost, changed and added, a view
    # dropped); a new, empty cluster as the platform role rebuilds it; objects lost, overwritten
    # and added in the layer buckets.
    origin.sql("DELETE FROM events WHERE id % 3 = 0; UPDATE events SET amount = -1 WHERE id < 10; "
               "INSERT INTO events (payload, amount) VALUES ('{}', 7); DROP VIEW big_events", db="source", role="source_app")
    origin.sql("TRUNCATE gold.events", db="serving", role="serving_app")
    assert {db["name"]: fingerprint(origin, db["name"]) for db in DATABASES} != expected_db
    rebuilt = postgres_servers("rebuilt")
    provision(rebuilt)
    first = sorted(expected_objects)[0].split("/", 1)
    layer_s3.delete_object(Bucket=first[0], Key=first[1])
    layer_s3.put_object(Bucket=buckets[-1], Key="orders/_delta_log/00000000000000000001.json", Body=b"overwritten")
    layer_s3.put_object(Bucket=buckets[1], Key="orders/_delta_log/00000000000000000099.json", Body=b"newer")
    put_in_parts(layer_s3, buckets[0], "orders/big.parquet")  # same size, other content
    assert layer_objects(layer_s3, buckets) != expected_objects

    # The restore Job as `playbooks/restore.yml -e backup_restore_from=<run> -e backup_restore_buckets=true` sends it.
    restore_run = run_playbook("prod", "playbooks/restore.yml", "converged", name=RESTORE_RUN,
                               extra={"backup_restore_from": run_id, "backup_restore_buckets": True})
    assert restore_run.returncode == 0, failure_summary(restore_run)
    assert backup_secret_keys(restore_run) == secret_keys
    restore = restore_run.applied("Job")
    assert len(restore) == 1, [j["metadata"]["name"] for j in restore]
    work = workdir / "work"
    work.mkdir()
    mounts = {"/work": str(work), PG_SERVICE: "127.0.0.1"}
    (fetch,), (pg_restore,) = pod_spec(restore[0])["initContainers"], pod_spec(restore[0])["containers"]
    run_container(fetch, secret, mounts, {}, endpoints)
    assert layer_objects(layer_s3, buckets) == expected_objects
    # A restore that cannot finish (a view made after the backup depends on a table it replaces)
    # fails and leaves that database as it was.
    origin.sql("CREATE VIEW late AS SELECT id FROM events", db="source", role="source_app")
    before = fingerprint(origin, "source")
    output = run_container(pg_restore, secret, mounts, {"PGPORT": str(origin.port)}, endpoints, succeed=False)
    assert "cannot drop table public.events because other objects depend on it" in output
    assert fingerprint(origin, "source") == before
    origin.sql("DROP VIEW late", db="source", role="source_app")
    # The same pg-restore container into the running cluster and into the rebuilt one.
    for server in (origin, rebuilt):
        run_container(pg_restore, secret, mounts, {"PGPORT": str(server.port)}, endpoints)
        assert {db["name"]: fingerprint(server, db["name"]) for db in DATABASES} == expected_db
        # The applications carry on as their own roles, and the BI user still reads gold.
        for db in DATABASES:
            server.sql(f"INSERT INTO {db['schemas'][0]}.events (payload, amount) VALUES ('{{}}', 1)",
                       db=db["name"], role=db["owner"])
        assert server.sql("SELECT count(*) FROM gold.events", db="serving", role=BI_USER) == "2001"


# --- etcd: the snapshot CronJob, then the restore procedure of ansible/README.md ---

KUBEADM_ETCD_PKI = "/etc/kubernetes/pki/etcd"
NODE = "ampere-prod-cp-1"


def make_kubeadm_etcd_pki(pki: Path) -> None:
    """A CA and the certificates kubeadm writes under /etc/kubernetes/pki/etcd: server and peer
    (serving + client auth, SANs localhost and 127.0.0.1), and the healthcheck client
    (CN kube-etcd-healthcheck-client, client auth) the CronJob logs in with."""
    pki.mkdir(parents=True)

    def openssl(*args: str) -> None:
        proc = subprocess.run(["openssl", *args], cwd=pki, capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr

    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt", "-days", "1",
            "-subj", "/CN=etcd-ca", "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,digitalSignature,keyEncipherment,keyCertSign")
    certs = {"server": (NODE, "serverAuth,clientAuth", True), "peer": (NODE, "serverAuth,clientAuth", True),
             "healthcheck-client": ("kube-etcd-healthcheck-client", "clientAuth", False)}
    for name, (cn, usage, sans) in certs.items():
        ext = pki / f"{name}.ext"
        ext.write_text("keyUsage=critical,digitalSignature,keyEncipherment\n"
                       f"extendedKeyUsage={usage}\n" + (f"subjectAltName=DNS:localhost,DNS:{NODE},IP:127.0.0.1\n" if sans else ""))
        openssl("req", "-new", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.csr",
                "-subj", f"/CN={cn}")
        openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
                "-days", "1", "-extfile", str(ext), "-out", f"{name}.crt")
        ext.unlink()
        (pki / f"{name}.csr").unlink()
    for key in pki.glob("*.key"):
        key.chmod(0o600)


class Etcd:
    """One etcd member with TLS and client-certificate authentication on both sides, flags as in
    kubeadm's etcd static pod."""

    def __init__(self, data: Path, pki: Path, client_port: int, peer_port: int):
        self.data, self.pki, self.client_port, self.peer_port = data, pki, client_port, peer_port
        self.proc: subprocess.Popen | None = None

    @property
    def endpoint(self) -> str:
        return f"https://127.0.0.1:{self.client_port}"

    def start(self) -> Etcd:
        peer = f"https://127.0.0.1:{self.peer_port}"
        p = self.pki
        self.proc = subprocess.Popen([
            "etcd", f"--name={NODE}", f"--data-dir={self.data}",
            f"--listen-client-urls={self.endpoint}", f"--advertise-client-urls={self.endpoint}",
            f"--listen-peer-urls={peer}", f"--initial-advertise-peer-urls={peer}",
            f"--initial-cluster={NODE}={peer}", "--initial-cluster-state=new",
            f"--listen-metrics-urls=http://127.0.0.1:{free_port()}",
            f"--cert-file={p}/server.crt", f"--key-file={p}/server.key", "--client-cert-auth=true",
            f"--trusted-ca-file={p}/ca.crt", f"--peer-cert-file={p}/peer.crt", f"--peer-key-file={p}/peer.key",
            "--peer-client-cert-auth=true", f"--peer-trusted-ca-file={p}/ca.crt", "--snapshot-count=10000"],
            stdout=subprocess.DEVNULL, stderr=(self.data.parent / f"{self.data.name}.log").open("w"))
        deadline = time.monotonic() + 60
        while self.ctl("endpoint", "health", check=False).returncode != 0:
            assert self.proc.poll() is None, (self.data.parent / f"{self.data.name}.log").read_text()[-2000:]
            assert time.monotonic() < deadline, "etcd did not become healthy"
            time.sleep(0.3)
        return self

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=30)

    def ctl(self, *args: str, check: bool = True, client: bool = True) -> subprocess.CompletedProcess:
        auth = [f"--cert={self.pki}/healthcheck-client.crt", f"--key={self.pki}/healthcheck-client.key"] if client else []
        proc = subprocess.run(["etcdctl", f"--endpoints={self.endpoint}", f"--cacert={self.pki}/ca.crt", *auth, *args],
                              env={"PATH": "/usr/bin:/bin", "ETCDCTL_API": "3"}, capture_output=True, text=True,
                              timeout=30)
        assert not check or proc.returncode == 0, proc.stderr
        return proc

    def contents(self) -> dict[str, str]:
        kvs = json.loads(self.ctl("get", "", "--prefix", "-w", "json").stdout).get("kvs", [])
        return {base64.b64decode(kv["key"]).decode(): base64.b64decode(kv["value"]).decode() for kv in kvs}


@pytest.fixture
def etcd_members():
    started: list[Etcd] = []

    def start(*args) -> Etcd:
        started.append(Etcd(*args))
        return started[-1].start()

    yield start
    for member in started:
        member.stop()


def test_etcd_snapshot_job_then_documented_restore_brings_back_every_key(tmp_path, etcd_members, s3_servers):
    require("etcd", "etcdctl", "openssl", "rclone")
    backup_run = cached_run("prod-backup")
    assert backup_run.returncode == 0, failure_summary(backup_run)
    job = pod_spec(backup_run.applied("CronJob", "etcd-snapshot")[0])
    (target,) = s3_servers("target")
    # The etcd Job reads only the target's keys from the Secret; the others are there, unused.
    secret = {key: target["secret_key" if "SECRET" in key else "access_key"] for key in backup_secret_keys(backup_run)}
    copy = job["containers"][0]
    target_bucket = re.search(r"dst:([^/\s]+)/etcd/", copy["args"][0]).group(1)
    target_s3 = s3_client(target)
    target_s3.create_bucket(Bucket=target_bucket)

    pki = tmp_path / "pki/etcd"
    make_kubeadm_etcd_pki(pki)
    member = etcd_members(tmp_path / "etcd", pki, free_port(), free_port())
    keys = {f"/registry/namespaces/ns-{i}": json.dumps({"kind": "Namespace", "name": f"ns-{i}"}) for i in range(20)}
    keys["/registry/secrets/backup/backup-credentials"] = "opaque \u00e9t\u00e9 value"
    for key, value in keys.items():
        member.ctl("put", key, value)
    # The member refuses a client without kubeadm's client certificate.
    assert member.ctl("get", "/registry", "--prefix", check=False, client=False).returncode != 0

    # The CronJob's two containers as rendered, on one snapshot volume.
    snapshot = tmp_path / "snapshot"
    snapshot.mkdir()
    mounts = {KUBEADM_ETCD_PKI: str(pki), "/snapshot": str(snapshot), "https://127.0.0.1:2379": member.endpoint}
    endpoints = {"RCLONE_CONFIG_DST_ENDPOINT": target["endpoint_url"]}
    for container in job["initContainers"] + job["containers"]:
        run_container(container, secret, mounts, {}, endpoints)
    member.ctl("put", "/registry/after-the-snapshot", "must not come back")
    member.stop()
    stored = [o["Key"] for o in target_s3.list_objects_v2(Bucket=target_bucket, Prefix="etcd/")["Contents"]]
    assert len(stored) == 1 and re.fullmatch(r"etcd/\d{8}T\d{6}Z/etcd\.db", stored[0]), stored

    # The restore procedure (ansible/README.md, "Backup and restore"): fetch the snapshot with the
    # Jobs' rclone settings, restore it into a new data folder under the member's name and peer
    # URL, start the member on it.
    rclone_env = {"PATH": "/usr/bin:/bin", **secret, **{e["name"]: endpoints.get(e["name"], e["value"]) for e in copy["env"]}}
    fetched = tmp_path / "etcd.db"
    subprocess.run(["rclone", "copyto", f"dst:{target_bucket}/{stored[0]}", str(fetched)], env=rclone_env, check=True,
                   capture_output=True, timeout=60)
    restored = tmp_path / "etcd-restored"
    peer = free_port()
    proc = subprocess.run(["etcdctl", "snapshot", "restore", str(fetched), f"--data-dir={restored}", f"--name={NODE}",
                           f"--initial-cluster={NODE}=https://127.0.0.1:{peer}",
                           f"--initial-advertise-peer-urls=https://127.0.0.1:{peer}"],
                          env={"PATH": "/usr/bin:/bin", "ETCDCTL_API": "3"}, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    back = etcd_members(restored, pki, free_port(), peer)
    assert back.contents() == keys
