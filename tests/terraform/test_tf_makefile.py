"""terraform/terraform.mk, the fragment the root Makefile includes: the contract's targets,
an idempotent setup, and commands that land where ansible/ expects the inventory."""

from __future__ import annotations

import shutil
import subprocess

import pytest
from tf_support import REPO_ROOT

MK = "terraform/terraform.mk"


def _make(*args: str) -> subprocess.CompletedProcess:
    if shutil.which("make") is None:
        pytest.skip("GNU make not installed")
    return subprocess.run(
        ["make", "--no-print-directory", "-f", MK, *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_contract_targets_are_phony() -> None:
    text = (REPO_ROOT / MK).read_text()
    phony = text.split(".PHONY:", 1)[1].split("\n\n", 1)[0].replace("\\", " ").split()
    for target in ("setup-terraform", "lint-terraform", "test-terraform", "terraform-inventory"):
        assert target in phony
        assert f"\n{target}:" in text


def test_setup_is_a_no_op_when_done() -> None:
    if not (REPO_ROOT / ".venv-terraform" / ".setup-terraform.stamp").exists():
        pytest.skip("make setup-terraform has not run in this checkout")
    proc = _make("-q", "setup-terraform")  # -q: exit 0 only if nothing would be done
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_setup_installs_from_hashed_locks() -> None:
    dry = _make("-n", "-B", "setup-terraform").stdout
    assert "--require-hashes" in dry
    assert "terraform/requirements.lock" in dry and "terraform/requirements-checkov.lock" in dry


def test_inventory_target_writes_environment_inventory() -> None:
    dry = _make("-n", "terraform-inventory", "ENV=dev").stdout
    assert "output -raw ansible_inventory" in dry
    assert f"> {REPO_ROOT}/environments/dev/inventory/hosts.yml.tmp" in dry
    assert (
        f"mv {REPO_ROOT}/environments/dev/inventory/hosts.yml.tmp {REPO_ROOT}/environments/dev/inventory/hosts.yml"
        in dry
    )
    assert f"TF_DATA_DIR={REPO_ROOT}/.state/terraform/dev/.terraform" in dry


def test_unknown_environment_is_refused() -> None:
    proc = _make("terraform-inventory", "ENV=no-such-env")
    assert proc.returncode != 0
    assert "no environments/no-such-env/terraform.tfvars" in proc.stdout + proc.stderr


def test_apply_uses_the_saved_plan_and_env_state() -> None:
    dry = _make("-n", "terraform-apply", "ENV=prod").stdout
    assert f"-backend-config={REPO_ROOT}/environments/prod/terraform.backend.hcl" in dry
    assert (
        f"-var-file={REPO_ROOT}/environments/prod/terraform.tfvars -out={REPO_ROOT}/.state/terraform/prod/tfplan"
        in dry
    )
    assert f"apply -input=false {REPO_ROOT}/.state/terraform/prod/tfplan" in dry
