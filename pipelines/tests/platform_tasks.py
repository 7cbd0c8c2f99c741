"""Run the roles' own service-configuring tasks against the loopback services, with
ansible-playbook from .venv-ansible (`make setup-ansible`) on a local connection: the platform
role's PostgreSQL tasks (ansible/roles/platform/tasks/postgresql_databases.yml: databases, schemas,
the BI login's grants through community.postgresql) and the buckets role (amazon.aws: buckets,
versioning, lifecycle rules, one IAM user and policy per layer)."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
ANSIBLE_BIN = REPO / ".venv-ansible" / "bin"


def ansible_playbook() -> Path:
    path = ANSIBLE_BIN / "ansible-playbook"
    assert path.is_file(), f"{path} is missing: run `make setup-ansible`"
    return path


def converge_postgres(
    folder: Path,
    *,
    port: int,
    login_user: str,
    databases: list[dict[str, Any]],
    bi_user: str,
    bi_database: str,
) -> dict[str, int]:
    """The platform role's PostgreSQL tasks on 127.0.0.1:port; the play recap of localhost."""
    variables = {
        "lakehouse_secrets": {"postgresql": {"superuser_password": ""}},
        "platform_postgres_login_host": "127.0.0.1",
        "platform_postgres_login_port": port,
        "platform_postgres_login_user": login_user,
        "platform_postgres_databases": databases,
        "platform_postgres_bi_user": bi_user,
        "platform_postgres_bi_database": bi_database,
    }
    return run_role(folder / "postgres", "platform", variables, tasks_from="postgresql_databases")


def converge_buckets(
    folder: Path,
    *,
    endpoint: str,
    access_key: str,
    secret_key: str,
    buckets: list[dict[str, Any]],
    users: list[dict[str, Any]],
) -> dict[str, int]:
    """The buckets role on an S3 server with an IAM API (SeaweedFS); the play recap of localhost.
    The users name no Secret namespace: their keys are not issued into Kubernetes here."""
    variables = {
        "buckets_endpoint_url": endpoint,
        "buckets_access_key": access_key,
        "buckets_secret_key": secret_key,
        "buckets_region": "us-east-1",
        "buckets_validate_certs": False,
        "buckets_list": buckets,
        "buckets_users": users,
        "buckets_users_backend": "iam",
    }
    return run_role(folder / "buckets", "buckets", variables)


def run_role(folder: Path, role: str, variables: dict[str, Any], tasks_from: str = "main") -> dict[str, int]:
    """One ansible-playbook run of a role of ansible/roles on localhost; the play recap
    ({"ok": n, "changed": n, "failed": n, ...}). A failed run fails the test with its output."""
    folder.mkdir(parents=True, exist_ok=True)
    play = [
        {
            "name": f"The {role} role's own tasks, on the loopback services",
            "hosts": "localhost",
            "connection": "local",
            "gather_facts": False,
            "vars": variables,
            "tasks": [
                {
                    "name": "Run the role's tasks",
                    "ansible.builtin.include_role": {"name": role, "tasks_from": tasks_from},
                }
            ],
        }
    ]
    playbook = folder / "play.yml"
    playbook.write_text(yaml.safe_dump(play, sort_keys=False))
    env = {
        **os.environ,
        "PATH": f"{ANSIBLE_BIN}:{os.environ.get('PATH', '')}",
        "ANSIBLE_CONFIG": str(REPO / "ansible" / "ansible.cfg"),
        "ANSIBLE_ROLES_PATH": str(REPO / "ansible" / "roles"),
        "ANSIBLE_LOCAL_TEMP": str(folder / "tmp"),
        "ANSIBLE_PYTHON_INTERPRETER": str(ANSIBLE_BIN / "python"),
        "ANSIBLE_NOCOLOR": "1",
    }
    proc = subprocess.run(
        [str(ansible_playbook()), "-i", "localhost,", str(playbook)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    recap = re.search(r"^localhost\s*:\s*(.*)$", proc.stdout, flags=re.M)
    assert recap, proc.stdout[-2000:]
    return {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", recap.group(1))}


def issue_secret_folder(endpoint: str, access_key: str, secret_key: str, user: str, folder: Path) -> Path:
    """A key pair for the buckets role's IAM `user`, written as the files of a mounted Secret
    (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_ENDPOINT_URL): on the cluster the role hands
    it to a Secret; here the test asks the same IAM API."""
    import boto3

    iam = boto3.client(
        "iam",
        endpoint_url=endpoint,
        aws_access_key_id=access_key,
        aws_secret_access_key=secret_key,
        region_name="us-east-1",
    )
    key = iam.create_access_key(UserName=user)["AccessKey"]
    folder.mkdir(parents=True)
    (folder / "AWS_ACCESS_KEY_ID").write_text(key["AccessKeyId"])
    (folder / "AWS_SECRET_ACCESS_KEY").write_text(key["SecretAccessKey"] + "\n")
    (folder / "AWS_ENDPOINT_URL").write_text(endpoint)
    return folder
