"""The tools the tests and the make targets run: the pinned OpenTofu and the libvirt provider
0.8.3, both built from the Go module proxy by `make terraform-tools`.

- tofu is the pinned build in .state/terraform/tools, not a terraform or tofu on PATH.
- `tofu init` installs dmacvicar/libvirt from the local filesystem mirror, and the build
  matches the hash in the committed terraform/.terraform.lock.hcl (the build is reproducible).
- The schema the provider reports is the 0.8 one the modules are written for.
"""

from __future__ import annotations

import filecmp
import json
import re
from pathlib import Path

from tf_support import (
    PROVIDER_ADDRESS,
    PROVIDER_VERSION,
    REPO_ROOT,
    TF_ROOT,
    TOOLS_DIR,
    Terraform,
    provider_binaries,
)

MK = (REPO_ROOT / "terraform" / "terraform.mk").read_text()


def _pin(name: str) -> str:
    m = re.search(rf"^{name}\s*:=\s*(\S+)", MK, re.MULTILINE)
    assert m, f"{name} not set in terraform/terraform.mk"
    return m.group(1)


def test_tofu_is_the_pinned_build(terraform: Terraform, state_dir: Path) -> None:
    assert Path(terraform.binary).resolve().is_relative_to(TOOLS_DIR.resolve())
    proc = terraform.run(["version", "-json"], REPO_ROOT, state_dir / "version")
    version = json.loads(proc.stdout)
    assert version["terraform_version"] == _pin("TOFU_VERSION")  # no "-dev": a release build
    assert _pin("TF_LIBVIRT_VERSION") == PROVIDER_VERSION


def test_init_installs_the_local_build_from_the_mirror(terraform: Terraform, root_data_dir: Path) -> None:
    (built,) = provider_binaries()
    installed = (
        root_data_dir / "providers" / PROVIDER_ADDRESS / PROVIDER_VERSION / built.parent.name / built.name
    )
    assert installed.is_file(), f"tofu init did not install {built.name} into {root_data_dir}"
    assert filecmp.cmp(installed, built, shallow=False)
    proc = terraform.run(["version", "-json"], TF_ROOT, root_data_dir)
    assert json.loads(proc.stdout)["provider_selections"] == {PROVIDER_ADDRESS: PROVIDER_VERSION}


def test_lock_file_pins_the_provider() -> None:
    text = (TF_ROOT / ".terraform.lock.hcl").read_text()
    block = re.search(r'provider "([^"]+)" \{(.*?)\n\}', text, re.DOTALL)
    assert block and block.group(1) == PROVIDER_ADDRESS
    assert f'version     = "{PROVIDER_VERSION}"' in block.group(2)
    assert re.search(r'"h1:[A-Za-z0-9+/=]{44}"', block.group(2)), "no h1: hash for the local build"


def test_schema_is_the_legacy_0_8_schema(terraform: Terraform, root_data_dir: Path) -> None:
    proc = terraform.run(["providers", "schema", "-json"], TF_ROOT, root_data_dir)
    schema = json.loads(proc.stdout)["provider_schemas"][PROVIDER_ADDRESS]["resource_schemas"]
    assert {
        "libvirt_domain",
        "libvirt_network",
        "libvirt_pool",
        "libvirt_volume",
        "libvirt_cloudinit_disk",
    } <= set(schema)
    domain = schema["libvirt_domain"]["block"]
    assert "network_interface" in domain["block_types"] and "disk" in domain["block_types"]
    assert "qemu_agent" in domain["attributes"] and "cloudinit" in domain["attributes"]
    assert "devices" not in domain.get("block_types", {}), "0.9's XML-shaped schema"
