"""Helpers for the Ansible tests: the repository layout, the tool venv, and a runner for Molecule
scenarios that live beside their roles (ansible/roles/<role>/molecule/<scenario>). A module with
its own name (not conftest) so that test files can import it next to other test suites."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ANSIBLE_DIR = ROOT / "ansible"
ROLES_DIR = ANSIBLE_DIR / "roles"
VENV_BIN = Path(sys.executable).parent
DEV_AGE_KEY = ROOT / "tests/ansible/fixtures/dev-ci.agekey"
CONTAINERS_CONF = ROOT / "tests/ansible/containers.conf"
IMAGE_SCRIPT = ROOT / "tests/ansible/images/build-debian-image.sh"


def tool_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    env["ANSIBLE_CONFIG"] = str(ANSIBLE_DIR / "ansible.cfg")
    env["CONTAINERS_CONF"] = str(CONTAINERS_CONF)
    env.setdefault("ANSIBLE_FORCE_COLOR", "0")
    env["NO_COLOR"] = "1"
    env.update(extra)
    return env


def run_molecule(role: str, scenario: str, timeout: int = 900, **env: str) -> subprocess.CompletedProcess:
    """`molecule test -s <scenario>` in the role's folder; fails the test with the log tail."""
    started = time.monotonic()
    proc = subprocess.run(
        [str(VENV_BIN / "molecule"), "test", "-s", scenario],
        cwd=ROLES_DIR / role,
        env=tool_env(**env),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    elapsed = time.monotonic() - started
    log_dir = ROOT / ".state/ansible/molecule-logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    (log_dir / f"{role}-{scenario}.log").write_text(proc.stdout + proc.stderr)
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-80:])
        pytest.fail(f"molecule test {role}/{scenario} failed after {elapsed:.0f}s:\n{tail}")
    return proc
