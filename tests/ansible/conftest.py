"""Fixtures for the Ansible tests (helpers live in ansible_helpers.py)."""

from __future__ import annotations

import fcntl
import shutil
import subprocess

import pytest

from ansible_helpers import IMAGE_SCRIPT, ROOT, tool_env


@pytest.fixture(scope="session")
def podman_image() -> str:
    """The offline-built Debian image (debootstrap + podman import, cached), built on first use."""
    missing = [tool for tool in ("podman", "debootstrap", "runc") if shutil.which(tool) is None]
    if missing:
        pytest.skip(f"Molecule podman scenarios need {', '.join(missing)} (make setup-ansible installs them)")
    lock_path = ROOT / ".state/ansible/image-build.lock"
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with lock_path.open("w") as lock:  # one build at a time across pytest-xdist workers
        fcntl.flock(lock, fcntl.LOCK_EX)
        proc = subprocess.run(["bash", str(IMAGE_SCRIPT)], env=tool_env(), capture_output=True, text=True, timeout=900)
    if proc.returncode != 0:
        pytest.fail(f"building the Debian test image failed:\n{proc.stderr[-4000:]}")
    return proc.stdout.strip().splitlines()[-1]
