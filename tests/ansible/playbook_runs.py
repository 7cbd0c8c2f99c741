"""Run the real playbooks against an environment's real inventory with the cluster stand-in
(standin/callback_plugins/cluster_standin.py) answering the module calls, and read back what each
task sent. Secrets are fakes from the real file's key tree (standin/fake_sops.py)."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from ansible_helpers import ANSIBLE_DIR, ROOT, VENV_BIN, tool_env

STANDIN = ROOT / "tests/ansible/standin"
INVENTORIES = {
    "dev": ROOT / "environments/dev/inventory/hosts.yml",
    "prod": ROOT / "environments/prod/inventory/hosts.example.yml",
}
PLAYBOOKS = ["site.yml"] + sorted(f"playbooks/{p.name}" for p in (ANSIBLE_DIR / "playbooks").glob("*.yml"))
RUNS_DIR = ROOT / ".state/ansible/playbook-runs"
RELEASE_TAG = "1.2.3"


def prod_secrets_file() -> Path:
    """secrets/prod/ can only be created with Azure Key Vault access; the tests make the same file
    with ansible/scripts/secrets_init.py, encrypted for the dev/CI age key instead."""
    target = RUNS_DIR / "prod-platform.sops.yaml"
    if not target.exists():
        RUNS_DIR.mkdir(parents=True, exist_ok=True)
        recipient = (ROOT / "tests/ansible/fixtures/dev-ci.agekey").read_text().split("public key: ")[1].split()[0]
        subprocess.run([str(VENV_BIN / "python"), str(ANSIBLE_DIR / "scripts/secrets_init.py"), "prod",
                        "--output", str(target), "--", "--age", recipient],
                       env=tool_env(SOPS=str(VENV_BIN / "sops")), check=True, capture_output=True, text=True)
    return target


def extra_vars(env: str, playbook: str) -> dict:
    """What an operator passes on the command line for each playbook (README), plus the wiring of
    the stand-in: every host is reached locally, without privilege escalation."""
    extra = {
        "ansible_connection": "standin",
        "ansible_become": False,
        "ansible_python_interpreter": str(VENV_BIN / "python"),
        "secrets_sops_binary": str(STANDIN / "fake_sops.py"),
    }
    if env == "prod" and not (ROOT / "secrets/prod/platform.sops.yaml").exists():
        extra["secrets_file"] = str(prod_secrets_file())
    if playbook in ("site.yml", "playbooks/deploy-pipelines.yml"):
        extra["pipeline_deploy_image_tag"] = RELEASE_TAG
    if playbook == "playbooks/restore.yml":
        extra.update(restore_confirm=env, backup_restore_from="20260101T020000Z")
    if playbook == "playbooks/reset.yml":
        extra["reset_confirm"] = env
    return extra


@dataclass
class Run:
    env: str
    playbook: str
    state: str
    returncode: int
    output: str
    calls: list[dict] = field(default_factory=list)
    objects: dict = field(default_factory=dict)

    def select(self, module: str | None = None, host: str | None = None, task: str | None = None) -> list[dict]:
        return [c for c in self.calls
                if (module is None or c["module"].rsplit(".", 1)[-1] == module)
                and (host is None or c["host"] == host)
                and (task is None or task in c["task"])]

    def helm(self, release: str) -> list[dict]:
        """Every helm call for a release, in order (release_values as sent)."""
        return [c["args"] for c in self.select("helm") if c["args"].get("release_name") == release]

    def applied(self, kind: str, name: str | None = None) -> list[dict]:
        """Every object of a kind sent through kubernetes.core.k8s (state present), in order."""
        docs = []
        for call in self.select("k8s"):
            if call["args"].get("state", "present") not in ("present",):
                continue
            definition = call["args"].get("definition") or call["args"].get("resource_definition")
            if isinstance(definition, str):
                definition = list(yaml.safe_load_all(definition))
            for doc in definition if isinstance(definition, list) else [definition]:
                if doc and doc.get("kind") == kind and (name is None or doc["metadata"]["name"] == name):
                    docs.append(doc)
        return docs

    def written(self, dest: str, host: str | None = None) -> list[str]:
        """Contents of every file a template/copy task wrote to dest."""
        return [c["args"]["_content"] for c in self.select("copy", host=host)
                if c["args"].get("dest") == dest and "_content" in c["args"]]


def run_playbook(env: str, playbook: str, state: str = "fresh", seed: dict | None = None,
                 extra: dict | None = None, name: str | None = None, timeout: int = 900,
                 standin_env: dict | None = None) -> Run:
    label = name or f"{env}-{playbook.replace('/', '_').removesuffix('.yml')}-{state}"
    out = RUNS_DIR / label
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    seed_file = None
    if seed is not None:
        seed_file = out / "seed.json"
        seed_file.write_text(json.dumps(seed))
    variables = extra_vars(env, playbook) | (extra or {})
    (out / "extra-vars.json").write_text(json.dumps(variables))
    env_vars = tool_env(
        STANDIN_DIR=str(out), STANDIN_STATE=state,
        ANSIBLE_CALLBACK_PLUGINS=str(STANDIN / "callback_plugins"),
        ANSIBLE_CALLBACKS_ENABLED="cluster_standin",
        ANSIBLE_CONNECTION_PLUGINS=str(STANDIN / "connection_plugins"),
        ANSIBLE_LOCAL_TEMP=str(out / "tmp"), ANSIBLE_REMOTE_TEMP=str(out / "remote-tmp"),
        ANSIBLE_FORCE_COLOR="0", ANSIBLE_NOCOLOR="1",
    )
    if seed_file:
        env_vars["STANDIN_SEED"] = str(seed_file)
    env_vars.update(standin_env or {})
    started = time.monotonic()
    proc = subprocess.run(
        [str(VENV_BIN / "ansible-playbook"), "-i", str(INVENTORIES[env]), playbook, "-e", f"@{out / 'extra-vars.json'}"],
        cwd=ANSIBLE_DIR, env=env_vars, capture_output=True, text=True, timeout=timeout)
    output = proc.stdout + proc.stderr
    (out / "ansible.log").write_text(output + f"\n# {time.monotonic() - started:.1f}s\n")
    calls_file = out / "calls.jsonl"
    calls = [json.loads(line) for line in calls_file.read_text().splitlines()] if calls_file.exists() else []
    objects_file = out / "objects.json"
    objects = json.loads(objects_file.read_text()) if objects_file.exists() else {}
    return Run(env, playbook, state, proc.returncode, output, calls, objects)


PINNED_RELEASE = {"ConfigMap/airflow/ampere-pipelines-release": {
    "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "ampere-pipelines-release", "namespace": "airflow"},
    "data": {"image": "ampere-lakehouse/pipelines:1.4.2", "dags_source": "gitsync", "git_ref": "1.4.2"}}}
SINGLE_INSTANCE_PG = {"Cluster/postgres/lakehouse-pg": {
    "apiVersion": "postgresql.cnpg.io/v1", "kind": "Cluster", "metadata": {"name": "lakehouse-pg", "namespace": "postgres"},
    "spec": {"instances": 1}}}

# name -> (env, playbook, state, seed, extra vars, environment for the stand-in)
SCENARIOS = {
    "dev-site-fresh": ("dev", "site.yml", "fresh", None, {}, {}),
    "prod-site-fresh": ("prod", "site.yml", "fresh", None, {}, {}),
    "dev-site-converged": ("dev", "site.yml", "converged", None, {}, {}),
    # A minor upgrade (1.33 -> 1.34) of a dev cluster whose PostgreSQL has one instance.
    "dev-upgrade": ("dev", "playbooks/upgrade.yml", "converged", SINGLE_INSTANCE_PG,
                    {"kubernetes_version": "1.34.1"}, {"STANDIN_SERVER_VERSION": "v1.33.5"}),
    # prod with a pipelines release deployed (git ref 1.4.2).
    "prod-upgrade": ("prod", "playbooks/upgrade.yml", "converged", PINNED_RELEASE, {}, {}),
    "prod-backup": ("prod", "playbooks/backup.yml", "converged", None, {}, {}),
    "dev-backup": ("dev", "playbooks/backup.yml", "converged", None, {}, {}),
    "prod-restore": ("prod", "playbooks/restore.yml", "converged", None, {}, {}),
    "prod-restore-pitr": ("prod", "playbooks/restore.yml", "converged", None,
                          {"backup_restore_method": "pitr", "backup_restore_target_time": "2026-01-01 02:00:00+00"}, {}),
    "dev-deploy": ("dev", "playbooks/deploy-pipelines.yml", "converged", None, {}, {}),
    "prod-reset": ("prod", "playbooks/reset.yml", "converged", None, {}, {}),
    "dev-platform-minio": ("dev", "playbooks/platform.yml", "converged", None, {"lakehouse_object_store": "minio"}, {}),
    "prod-no-secrets": ("prod", "playbooks/deploy-pipelines.yml", "converged", None,
                        {"secrets_file": str(ROOT / "secrets/prod/absent.sops.yaml")}, {}),
}

_CACHE: dict[str, Run] = {}


def _load(label: str, env: str, playbook: str, state: str, returncode: int) -> Run:
    out = RUNS_DIR / label
    calls_file = out / "calls.jsonl"
    calls = [json.loads(line) for line in calls_file.read_text().splitlines()] if calls_file.exists() else []
    objects = json.loads((out / "objects.json").read_text()) if (out / "objects.json").exists() else {}
    return Run(env, playbook, state, returncode, (out / "ansible.log").read_text(), calls, objects)


def cached_run(name: str) -> Run:
    """One run per scenario per test session; pytest-xdist workers share it through a file lock
    and the run folder."""
    if name in _CACHE:
        return _CACHE[name]
    env, playbook, state, seed, extra, standin_env = SCENARIOS[name]
    lock_path = RUNS_DIR / f"{name}.lock"
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    marker = RUNS_DIR / f"{name}.done.json"
    token = os.environ.get("PYTEST_XDIST_TESTRUNUID") or str(os.getpid())
    with lock_path.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if marker.exists() and json.loads(marker.read_text()).get("token") == token:
            run = _load(name, env, playbook, state, json.loads(marker.read_text())["returncode"])
        else:
            run = run_playbook(env, playbook, state, seed=seed, extra=extra, name=name, standin_env=standin_env)
            marker.write_text(json.dumps({"token": token, "returncode": run.returncode}))
    _CACHE[name] = run
    return run


def failure_summary(run: Run) -> str:
    lines = [line for line in run.output.splitlines() if "fatal:" in line or "ERROR!" in line or "FAILED!" in line]
    return "\n".join(lines[:20]) or run.output[-3000:]
