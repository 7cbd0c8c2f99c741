"""Fixtures for the terraform/ tests.

What runs where:
- Every tofu command runs the pinned OpenTofu that `make terraform-tools` builds from the Go
  module proxy (TOFU and TOFU_CLI_CONFIG, set by `make test-terraform`), never a terraform
  or tofu found on PATH.
- The dmacvicar/libvirt provider is the real 0.8.3, built by the same target and installed
  by `tofu init` from a filesystem mirror (the CLI config), checked against the committed
  lock files. validate, plan, `tofu test` with mock_provider and apply/destroy use it.
- plan and apply need a libvirt daemon: tf_libvirt starts a private one whose built-in test
  driver (test:///default) stands for the KVM host (Debian's libvirt-daemon, installed by
  `make terraform-test-deps`).
- python-hcl2 parsing, checkov policies and the provider-free modules need nothing else.
- cloud-init's own schema validator runs when Debian's cloud-init has been unpacked into
  .state/terraform/cloud-init by `make setup-terraform`.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import tf_libvirt
from tf_support import (
    MODULES_DIR,
    PYTEST_STATE,
    REPO_ROOT,
    TF_ROOT,
    Terraform,
    environments,
    load_hcl,
    provider_binaries,
    tofu_tools,
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
    """The pinned OpenTofu with the CLI config that serves the locally built provider."""
    tools = tofu_tools()
    if tools is None:
        pytest.fail("the pinned OpenTofu is not built: run `make terraform-tools` (or `make test-terraform`)")
    binary, cli_config = tools
    if not provider_binaries():
        pytest.fail("the dmacvicar/libvirt provider is not built: run `make terraform-tools`")
    env = {k: v for k, v in os.environ.items() if not k.startswith("TF_")}
    env.update(
        TF_IN_AUTOMATION="1",
        TF_INPUT="0",
        CHECKPOINT_DISABLE="1",
        TF_CLI_CONFIG_FILE=str(cli_config),
    )
    return Terraform(binary=str(binary), base_env=env)


@pytest.fixture(scope="session")
def libvirt() -> Iterator[tf_libvirt.LibvirtTestDaemon]:
    """A private libvirt daemon; its test driver answers the provider in plan/apply/destroy."""
    missing = tf_libvirt.missing_tools()
    if missing:
        pytest.fail(
            f"{', '.join(missing)} not installed: run `make terraform-test-deps` (Debian libvirt-daemon, libvirt-clients)"
        )
    daemon = tf_libvirt.start()
    try:
        yield daemon
    finally:
        daemon.stop()


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


@pytest.fixture(scope="session")
def root_data_dir(terraform: Terraform, state_dir: Path) -> Path:
    """terraform/ initialised with a throw-away local backend (state never leaves .state/).
    -lockfile=readonly: the provider built here must match terraform/.terraform.lock.hcl."""
    data_dir = state_dir / "root-tfdata"
    terraform.run(
        [
            "init",
            "-input=false",
            "-no-color",
            "-lockfile=readonly",
            f"-backend-config=path={state_dir / 'root-test.tfstate'}",
        ],
        TF_ROOT,
        data_dir,
    )
    assert (data_dir / "modules" / "modules.json").is_file()
    assert (data_dir / "terraform.tfstate").is_file(), "backend was not initialised"
    assert not (TF_ROOT / ".terraform").exists(), "terraform data must stay out of terraform/"
    return data_dir
