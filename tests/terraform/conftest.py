"""Fixtures for the terraform/ tests.

What runs where:
- python-hcl2 parsing, checkov policies and the provider-free modules (cluster_layout,
  cloud_init, evaluated by the terraform binary itself) run on any machine with terraform.
- Anything that needs the dmacvicar/libvirt provider's schema (terraform validate, plan,
  terraform test with mock_provider) uses, in this order: a real provider binary
  (TF_LIBVIRT_PROVIDER_DIR, or one found in .state/terraform/plugin-cache), else the
  test-only stand-in in tests/terraform/standin that serves the transcribed 0.8.3 schema,
  else it skips and says why.
- cloud-init's own schema validator runs when Debian's cloud-init has been unpacked into
  .state/terraform/cloud-init by `make setup-terraform`.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest
from tf_support import (
    MODULES_DIR,
    PYTEST_STATE,
    REPO_ROOT,
    STANDIN_DIR,
    TF_ROOT,
    LibvirtProvider,
    Terraform,
    _real_provider_dir,
    environments,
    load_hcl,
    variables_of,
)


@pytest.fixture(scope="session")
def state_dir() -> Path:
    if PYTEST_STATE.exists():
        shutil.rmtree(PYTEST_STATE)
    PYTEST_STATE.mkdir(parents=True)
    return PYTEST_STATE


@pytest.fixture(scope="session")
def terraform(state_dir: Path) -> Terraform:
    binary = os.environ.get("TERRAFORM") or shutil.which("terraform")
    if not binary:
        pytest.skip("terraform CLI not found on PATH (install Terraform >= 1.9 to run this test)")
    empty_rc = state_dir / "empty.tfrc"
    empty_rc.write_text("# no provider installation overrides\n")
    env = {
        k: v for k, v in os.environ.items() if not k.startswith("TF_") or k in ("TF_LIBVIRT_PROVIDER_DIR",)
    }
    env.update(
        TF_IN_AUTOMATION="1",
        TF_INPUT="0",
        CHECKPOINT_DISABLE="1",
        TF_CLI_CONFIG_FILE=str(empty_rc),
    )
    return Terraform(binary=binary, base_env=env)


@pytest.fixture(scope="session")
def libvirt_provider(state_dir: Path) -> LibvirtProvider:
    """A dmacvicar/libvirt provider terraform can load through dev_overrides."""
    real = _real_provider_dir()
    if real is not None:
        directory, kind = real, "real"
    else:
        try:
            import tf  # noqa: F401  (PyPI package `tf`, the stand-in's plugin framework)
        except ImportError:
            pytest.skip(
                "no dmacvicar/libvirt provider binary (the registry is unreachable here) and the "
                "stand-in's framework, PyPI `tf`, is not installed: run `make setup-terraform`"
            )
        directory, kind = state_dir / "standin-bin", "stand-in"
        directory.mkdir(exist_ok=True)
        launcher = directory / "terraform-provider-libvirt"
        launcher.write_text(
            "#!/bin/sh\n"
            "# Test-only: serves the transcribed dmacvicar/libvirt 0.8.3 schema.\n"
            f'exec "{sys.executable}" "{STANDIN_DIR / "provider.py"}" "$@"\n'
        )
        launcher.chmod(0o755)
    # dev_overrides points terraform at the binary; the empty filesystem mirror makes
    # `terraform init` fail fast and offline for the provider instead of asking the registry.
    mirror = state_dir / "empty-mirror"
    mirror.mkdir(exist_ok=True)
    rc = state_dir / f"libvirt-{kind}.tfrc"
    rc.write_text(
        "provider_installation {\n"
        "  dev_overrides {\n"
        f'    "dmacvicar/libvirt" = "{directory}"\n'
        "  }\n"
        "  filesystem_mirror {\n"
        f'    path = "{mirror}"\n'
        "  }\n"
        "}\n"
    )
    return LibvirtProvider(kind=kind, directory=directory, cli_config=rc)


@pytest.fixture(scope="session")
def test_public_key(state_dir: Path) -> Path:
    """A syntactically valid OpenSSH public key line; not the public half of any real key."""
    path = state_dir / "test_ed25519.pub"
    path.write_text(
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHRlc3Qta2V5LW9ubHktbm90LWEtcmVhbC1rZXktMDAw test-only@ampere\n"
    )
    return path


@pytest.fixture(scope="session")
def env_tfvars() -> dict[str, dict[str, Any]]:
    """environments/<env>/terraform.tfvars parsed by python-hcl2, by environment."""
    envs = environments()
    assert envs, "no environments/<env>/terraform.tfvars found"
    return {e: load_hcl(REPO_ROOT / "environments" / e / "terraform.tfvars") for e in envs}


@pytest.fixture(scope="session")
def root_defaults() -> dict[str, Any]:
    """Defaults of the root module's variables (python-hcl2)."""
    return {name: spec.get("default") for name, spec in variables_of(TF_ROOT).items()}


@pytest.fixture(scope="session")
def layouts(terraform: Terraform, state_dir: Path) -> dict[str, dict[str, Any]]:
    """cluster_layout evaluated by terraform with each environment's tfvars."""
    out = {}
    for env in environments():
        out[env] = terraform.plan_outputs(
            MODULES_DIR / "cluster_layout",
            [REPO_ROOT / "environments" / env / "terraform.tfvars"],
            state_dir / f"layout-{env}",
        )
    return out
