"""Run the platform role's own PostgreSQL tasks (ansible/roles/platform/tasks/postgresql_databases.yml:
databases, schemas, the BI login's grants through community.postgresql) against a loopback
PostgreSQL, with ansible-playbook from .venv-ansible (`make setup-ansible`) on a local connection."""

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
    """One ansible-playbook run of the role's tasks; the play recap of localhost
    ({"ok": n, "changed": n, "failed": n, ...}). A failed run fails the test with its output."""
    folder.mkdir(parents=True, exist_ok=True)
    play = [
        {
            "name": "The platform role's PostgreSQL databases and grants, on a loopback server",
            "hosts": "localhost",
            "connection": "local",
            "gather_facts": False,
            "vars": {
                "lakehouse_secrets": {"postgresql": {"superuser_password": ""}},
                "platform_postgres_login_host": "127.0.0.1",
                "platform_postgres_login_port": port,
                "platform_postgres_login_user": login_user,
                "platform_postgres_databases": databases,
                "platform_postgres_bi_user": bi_user,
                "platform_postgres_bi_database": bi_database,
            },
            "tasks": [
                {
                    "name": "Run the role's tasks",
                    "ansible.builtin.include_role": {
                        "name": "platform",
                        "tasks_from": "postgresql_databases",
                    },
                }
            ],
        }
    ]
    playbook = folder / "postgres.yml"
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
