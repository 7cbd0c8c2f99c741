"""terraform/terraform.mk, the fragment the root Makefile includes: the contract's targets,
an idempotent setup, and commands that land where ansible/ expects the inventory."""

from __future__ import annotations

import re
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


SUBCOMMANDS = {
    "init",
    "plan",
    "apply",
    "destroy",
    "fmt",
    "output",
    "validate",
    "test",
    "version",
    "providers",
}


def _tofu_commands(line: str) -> list[str]:
    """The terraform/tofu binaries a shell line runs (a binary token followed by a subcommand)."""
    tokens = line.replace("'", " ").split()
    found = []
    for i, tok in enumerate(tokens[:-1]):
        if not tok.startswith("-") and re.fullmatch(r"(.*/)?(terraform|tofu(-v[\d.]+)?)", tok):
            rest = [t for t in tokens[i + 1 : i + 3] if not t.startswith("-chdir=")]
            if rest and rest[0] in SUBCOMMANDS:
                found.append(tok)
    return found


@pytest.mark.parametrize(
    "target", ["terraform-plan ENV=dev", "terraform-destroy ENV=prod", "lint-terraform", "test-terraform"]
)
def test_targets_run_the_pinned_tofu(target: str) -> None:
    """Every tofu command is the pinned build in .state/ with the CLI config that serves the
    locally built provider; nothing calls a terraform/tofu found on PATH."""
    dry = _make("-n", "-B", *target.split()).stdout
    pinned = f"{REPO_ROOT}/.state/terraform/tools/bin/tofu-v"
    runs = [line for line in dry.splitlines() if _tofu_commands(line)]
    if target != "test-terraform":
        assert runs, dry
    for line in runs:
        assert all(cmd.startswith(pinned) for cmd in _tofu_commands(line)), f"not the pinned tofu: {line}"
        assert f"TF_CLI_CONFIG_FILE={REPO_ROOT}/.state/terraform/tools/tofurc" in line, line
    if target == "test-terraform":
        assert f"TOFU={pinned}" in dry and f"TOFU_CLI_CONFIG={REPO_ROOT}/.state/terraform/tools/tofurc" in dry


def test_tools_are_built_from_pinned_module_hashes() -> None:
    dry = _make("-n", "-B", "terraform-tools").stdout
    assert re.search(
        r"go-build-release\.sh github\.com/opentofu/opentofu v[\d.]+ 'h1:[A-Za-z0-9+/=]{44}' \./cmd/tofu", dry
    )
    assert re.search(
        r"go-build-release\.sh github\.com/dmacvicar/terraform-provider-libvirt v0\.8\.3 'h1:[A-Za-z0-9+/=]{44}' \. "
        rf"{re.escape(str(REPO_ROOT))}/\.state/terraform/tools/providers/registry\.opentofu\.org/dmacvicar/libvirt/0\.8\.3/linux_amd64/terraform-provider-libvirt_v0\.8\.3",
        dry,
    )
    assert "GOTOOLCHAIN=go1.26.8" in dry


def test_tools_build_once() -> None:
    """Once built, terraform-tools does nothing: the pinned file names are the cache keys."""
    if not list((REPO_ROOT / ".state" / "terraform" / "tools" / "bin").glob("tofu-v*")):
        pytest.skip("make terraform-tools has not run in this checkout")
    dry = _make("-n", "terraform-tools")
    assert dry.returncode == 0 and "go-build-release" not in dry.stdout, dry.stdout
