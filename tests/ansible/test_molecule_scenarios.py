"""Molecule scenarios that run here, for real: each converges, proves idempotence (a second
converge changes nothing) and verifies (testinfra or Ansible asserts)."""

from __future__ import annotations

import re

from ansible_helpers import run_molecule


def assert_full_sequence(proc, *actions: str) -> None:
    out = proc.stdout + proc.stderr
    for action in actions:
        assert re.search(rf"{action}.*Executed: Successful", out), f"{action} did not run successfully"


def test_buckets_against_seaweedfs():
    """buckets role vs a local SeaweedFS S3 server: versioning, lifecycle, per-layer IAM policies
    and their enforcement (tests in roles/buckets/molecule/default/tests)."""
    proc = run_molecule("buckets", "default")
    assert_full_sequence(proc, "converge", "idempotence", "verify")
    summary = re.search(r"=+ (\d+) passed[^=]*=+", proc.stdout + proc.stderr)
    assert summary and int(summary.group(1)) >= 20, "expected the SeaweedFS testinfra suite to pass in full"


def test_secrets_decrypt_with_dev_age_key():
    """secrets role loads secrets/dev through community.sops with the dev/CI age key."""
    proc = run_molecule("secrets", "default")
    assert_full_sequence(proc, "converge", "idempotence", "verify")


def test_common_on_debian_container(podman_image):
    """common role on a throwaway Debian bookworm container (podman, systemd as PID 1)."""
    proc = run_molecule("common", "default")
    assert_full_sequence(proc, "converge", "idempotence", "verify")


def test_containerd_on_debian_container(podman_image):
    """containerd role on a throwaway Debian bookworm container (podman, systemd as PID 1)."""
    proc = run_molecule("containerd", "default")
    assert_full_sequence(proc, "converge", "idempotence", "verify")
