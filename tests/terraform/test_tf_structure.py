"""Static invariants of terraform/ and environments/*/terraform*, read with python-hcl2."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from tf_support import (
    MODULES_DIR,
    REPO_ROOT,
    TF_ROOT,
    environments,
    load_hcl,
    module_dirs,
    variables_of,
)

ALL_CONFIG_DIRS = [TF_ROOT, *module_dirs()]
PROVIDER_MODULES = ["network", "storage", "vm", "k8s_cluster"]
PROVIDER_FREE_MODULES = ["cluster_layout", "cloud_init"]

# Variables whose value space is constrained and therefore must carry a validation block.
MUST_VALIDATE = {
    "name_prefix", "environment", "network_cidr", "gateway", "dns_domain", "ssh_user",
    "address_plan", "control_plane", "workers", "storage_nodes", "libvirt_uri", "network_mode",
    "network_bridge", "dns_servers", "storage_pool_path", "base_image_source", "base_image_name",
    "ssh_public_key_paths", "console_password_hash",
    # module-level
    "name", "mode", "cidr", "bridge", "pool_name", "pool_path", "role", "vcpu", "memory_mib",
    "root_disk_gib", "data_disks", "hostname", "fqdn", "ssh_public_keys", "password_hash",
    "ip_cidr", "packages", "timezone", "cpu_mode",
}  # fmt: skip


def _rel(p: Path) -> str:
    return str(p.relative_to(REPO_ROOT))


@pytest.mark.parametrize("module", module_dirs(), ids=lambda p: p.name)
def test_module_has_standard_layout(module: Path) -> None:
    missing = [
        f
        for f in ("main.tf", "variables.tf", "outputs.tf", "versions.tf", "README.md")
        if not (module / f).is_file()
    ]
    assert not missing, f"{_rel(module)} lacks {missing}"


def test_expected_modules_exist() -> None:
    assert sorted(p.name for p in module_dirs()) == sorted(PROVIDER_MODULES + PROVIDER_FREE_MODULES)


@pytest.mark.parametrize("directory", ALL_CONFIG_DIRS, ids=lambda p: _rel(p))
def test_variables_typed_described_validated(directory: Path) -> None:
    variables = variables_of(directory)
    assert variables, f"{_rel(directory)} declares no variables"
    for name, spec in variables.items():
        assert "type" in spec, f"{_rel(directory)}: variable {name} has no type"
        assert len(spec.get("description", "")) >= 15, (
            f"{_rel(directory)}: variable {name} needs a description"
        )
        if name in MUST_VALIDATE:
            assert spec.get("validation"), f"{_rel(directory)}: variable {name} has no validation block"


@pytest.mark.parametrize("directory", ALL_CONFIG_DIRS, ids=lambda p: _rel(p))
def test_outputs_described(directory: Path) -> None:
    outputs = {}
    for block in load_hcl(directory / "outputs.tf").get("output", []):
        outputs.update(block)
    assert outputs, f"{_rel(directory)} has no outputs"
    for name, spec in outputs.items():
        assert spec.get("description"), f"{_rel(directory)}: output {name} has no description"


@pytest.mark.parametrize("directory", ALL_CONFIG_DIRS, ids=lambda p: _rel(p))
def test_resource_and_module_names_are_snake_case(directory: Path) -> None:
    for tf in directory.glob("*.tf"):
        doc = load_hcl(tf)
        for block in doc.get("resource", []):
            for rtype, named in block.items():
                for name in named:
                    assert re.fullmatch(r"[a-z][a-z0-9_]*", name), (
                        f"{_rel(tf)}: {rtype}.{name} is not snake_case"
                    )
        for block in doc.get("module", []):
            for name in block:
                assert re.fullmatch(r"[a-z][a-z0-9_]*", name), f"{_rel(tf)}: module {name} is not snake_case"


def _required_providers(directory: Path) -> dict:
    terraform_blocks = load_hcl(directory / "versions.tf").get("terraform", [])
    assert terraform_blocks, f"{_rel(directory)}/versions.tf has no terraform block"
    out: dict = {}
    for rp in terraform_blocks[0].get("required_providers", []):
        out.update(rp)
    return out


def test_root_pins_libvirt_provider_exactly() -> None:
    providers = _required_providers(TF_ROOT)
    assert providers["libvirt"]["source"] == "dmacvicar/libvirt"
    assert providers["libvirt"]["version"] == "= 0.8.3", "the root must pin the provider to exactly 0.8.3"


@pytest.mark.parametrize("name", PROVIDER_MODULES)
def test_modules_stay_on_the_0_8_schema(name: str) -> None:
    providers = _required_providers(MODULES_DIR / name)
    assert providers["libvirt"]["source"] == "dmacvicar/libvirt"
    # "~> 0.8.3" admits 0.8.x patches only: never the 0.9 rewrite.
    assert providers["libvirt"]["version"] == "~> 0.8.3"


@pytest.mark.parametrize("name", PROVIDER_FREE_MODULES)
def test_provider_free_modules_declare_no_provider(name: str) -> None:
    assert _required_providers(MODULES_DIR / name) == {}
    for tf in (MODULES_DIR / name).glob("*.tf"):
        assert "resource" not in load_hcl(tf), f"{_rel(tf)} must stay provider-free (no resources)"


@pytest.mark.parametrize("directory", [TF_ROOT, MODULES_DIR / "k8s_cluster"], ids=_rel)
def test_layout_variables_are_identical_copies(directory: Path) -> None:
    """Root and k8s_cluster repeat cluster_layout's sizing variables; they must not drift."""
    layout = variables_of(MODULES_DIR / "cluster_layout")
    other = variables_of(directory)
    for name, spec in layout.items():
        assert other.get(name) == spec, f"variable {name} in {_rel(directory)} differs from cluster_layout"


IPV4 = re.compile(r"(?<![\d.])(\d{1,3}\.){3}\d{1,3}(/\d{1,2})?(?![\d.])")
ALLOWED_LITERALS = {"127.0.0.1", "0.0.0.0/0"}


def _code_strings(node, skip=("description", "error_message")):
    """Every string in parsed HCL except prose (descriptions and error messages)."""
    if isinstance(node, dict):
        for k, v in node.items():
            if k not in skip:
                yield from _code_strings(v, skip)
    elif isinstance(node, list):
        for v in node:
            yield from _code_strings(v, skip)
    elif isinstance(node, str):
        yield node


@pytest.mark.parametrize("module", module_dirs(), ids=lambda p: p.name)
def test_no_hard_coded_addresses_in_modules(module: Path) -> None:
    """Addresses belong in environments/<env>/terraform.tfvars, not in module code."""
    sources = {tf: list(_code_strings(load_hcl(tf))) for tf in module.glob("*.tf")}
    sources |= {
        t: [line for line in t.read_text().splitlines() if not line.lstrip().startswith("#")]
        for t in module.glob("templates/*")
    }
    for path, strings in sources.items():
        found = {m.group(0) for s in strings for m in IPV4.finditer(s)} - ALLOWED_LITERALS
        assert not found, f"{_rel(path)} hard-codes {sorted(found)}"


@pytest.mark.parametrize("env", environments())
def test_tfvars_only_set_declared_variables(env: str) -> None:
    tfvars = load_hcl(REPO_ROOT / "environments" / env / "terraform.tfvars")
    unknown = set(tfvars) - set(variables_of(TF_ROOT))
    assert not unknown, f"environments/{env}/terraform.tfvars sets undeclared {sorted(unknown)}"
    assert tfvars["environment"] == env


SECRET_NAME = re.compile(r"(password|passwd|secret|token|private|credential|api_key)", re.I)
SECRET_VALUE = re.compile(r"(BEGIN [A-Z ]*PRIVATE KEY|ssh-(ed25519|rsa) AAAA|\$[1256y]\$|AGE-SECRET-KEY)")


@pytest.mark.parametrize("env", environments())
def test_tfvars_hold_no_secrets(env: str) -> None:
    path = REPO_ROOT / "environments" / env / "terraform.tfvars"
    tfvars = load_hcl(path)
    assert not [k for k in tfvars if SECRET_NAME.search(k)], "secrets come from SOPS, not tfvars"
    assert not SECRET_VALUE.search(path.read_text()), f"{_rel(path)} contains key or hash material"
    for p in tfvars["ssh_public_key_paths"]:
        assert p.endswith(".pub"), "SSH keys are referenced by public-key path"


@pytest.mark.parametrize("env", environments())
def test_backend_state_lives_under_state_dir(env: str) -> None:
    backend = load_hcl(REPO_ROOT / "environments" / env / "terraform.backend.hcl")
    state = (TF_ROOT / backend["path"]).resolve()
    assert state == (REPO_ROOT / ".state" / "terraform" / env / "terraform.tfstate").resolve()


def test_gitignore_keeps_state_out() -> None:
    ignored = (TF_ROOT / ".gitignore").read_text().split()
    for pattern in (".terraform/", "*.tfstate", "*.tfstate.*"):
        assert pattern in ignored
