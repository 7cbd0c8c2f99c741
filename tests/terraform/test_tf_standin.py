"""The test-only provider stand-in (tests/terraform/standin) against what it stands for.

- Its schema file must cover every libvirt resource and argument terraform/ uses (read with
  python-hcl2), so a gap shows up here rather than as a confusing terraform error.
- When a real dmacvicar/libvirt 0.8.3 binary is available, the transcription is compared
  with the schema that binary reports.
- The stand-in must refuse to create anything.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tf_support import MODULES_DIR, STANDIN_DIR, TF_ROOT, _real_provider_dir, load_hcl

SCHEMA = json.loads((STANDIN_DIR / "libvirt_0.8.3_schema.json").read_text())["provider_schemas"][
    "registry.terraform.io/dmacvicar/libvirt"
]
META = {"count", "for_each", "depends_on", "lifecycle", "provider", "dynamic"}


def _check_block(config: dict, schema: dict, where: str) -> list[str]:
    problems = []
    attrs = schema.get("attributes", {})
    blocks = schema.get("block_types", {})
    for key, value in config.items():
        if key in META:
            if key == "dynamic":
                for dyn in value:
                    for name, body in dyn.items():
                        if name not in blocks:
                            problems.append(f"{where}: dynamic block {name} not in schema")
                            continue
                        for content in body.get("content", []):
                            problems += _check_block(content, blocks[name]["block"], f"{where}.{name}")
            continue
        if key in attrs:
            if attrs[key].get("computed") and not (attrs[key].get("optional") or attrs[key].get("required")):
                problems.append(f"{where}: {key} is read-only")
            continue
        if key in blocks:
            for body in value if isinstance(value, list) else [value]:
                problems += _check_block(body, blocks[key]["block"], f"{where}.{key}")
            continue
        problems.append(f"{where}: {key} is not an argument of the 0.8.3 schema")
    for key, spec in attrs.items():
        if spec.get("required") and key not in config:
            problems.append(f"{where}: required argument {key} missing")
    return problems


def _used_resources():
    for tf in sorted([*TF_ROOT.glob("*.tf"), *MODULES_DIR.glob("*/*.tf")]):
        for block in load_hcl(tf).get("resource", []):
            for rtype, named in block.items():
                for name, body in named.items():
                    yield tf, rtype, name, body


def test_schema_covers_every_resource_used() -> None:
    used = list(_used_resources())
    assert {r for _, r, _, _ in used} == {
        "libvirt_domain",
        "libvirt_network",
        "libvirt_pool",
        "libvirt_volume",
        "libvirt_cloudinit_disk",
    }
    problems = []
    for tf, rtype, name, body in used:
        assert rtype in SCHEMA["resource_schemas"], f"{rtype} missing from the stand-in schema"
        problems += _check_block(
            body, SCHEMA["resource_schemas"][rtype]["block"], f"{tf.name}:{rtype}.{name}"
        )
    assert not problems, "\n".join(problems)


def test_schema_checker_catches_unknown_arguments() -> None:
    bad = {"name": "x", "devices": [{}], "memory_unit": "MiB"}  # 0.9-style arguments
    problems = _check_block(bad, SCHEMA["resource_schemas"]["libvirt_domain"]["block"], "t")
    assert len(problems) == 2


def test_transcription_matches_real_provider(terraform, state_dir: Path, libvirt_provider) -> None:
    if libvirt_provider.kind != "real" or _real_provider_dir() is None:
        pytest.skip(
            "no real dmacvicar/libvirt 0.8.3 binary here (registry unreachable); set TF_LIBVIRT_PROVIDER_DIR to compare"
        )
    data_dir = state_dir / "schema-compare"
    terraform.run(
        ["init", "-backend=false", "-input=false", "-no-color"],
        TF_ROOT,
        data_dir,
        cli_config=libvirt_provider.cli_config,
    )
    proc = terraform.run(
        ["providers", "schema", "-json"], TF_ROOT, data_dir, cli_config=libvirt_provider.cli_config
    )
    real = json.loads(proc.stdout)["provider_schemas"]["registry.terraform.io/dmacvicar/libvirt"]

    def shape(block: dict) -> dict:
        return {
            "attributes": {
                k: (v["type"], bool(v.get("required")), bool(v.get("optional")), bool(v.get("computed")))
                for k, v in block.get("attributes", {}).items()
            },
            "blocks": {
                k: (v["nesting_mode"], shape(v["block"])) for k, v in block.get("block_types", {}).items()
            },
        }

    for rtype, entry in SCHEMA["resource_schemas"].items():
        mine, theirs = shape(entry["block"]), shape(real["resource_schemas"][rtype]["block"])
        for attr, spec in mine["attributes"].items():
            assert theirs["attributes"].get(attr) == spec, (
                f"{rtype}.{attr}: {spec} vs real {theirs['attributes'].get(attr)}"
            )
        for blk in mine["blocks"]:
            assert blk in theirs["blocks"], f"{rtype}: block {blk} not in the real schema"


def test_standin_refuses_to_create(terraform, state_dir: Path, libvirt_provider, tmp_path: Path) -> None:
    if libvirt_provider.kind != "stand-in":
        pytest.skip("a real provider is installed; this checks the stand-in only")
    (tmp_path / "main.tf").write_text(
        'terraform {\n  required_providers {\n    libvirt = { source = "dmacvicar/libvirt" }\n  }\n}\n'
        'provider "libvirt" {\n  uri = "qemu:///system"\n}\n'
        'resource "libvirt_pool" "p" {\n  name = "p"\n  type = "dir"\n  target {\n    path = "/nonexistent/pool"\n  }\n}\n'
    )
    data_dir = tmp_path / "tfdata"
    proc = terraform.run(
        ["apply", "-auto-approve", "-input=false", "-no-color", f"-state={tmp_path / 's.tfstate'}"],
        tmp_path, data_dir, check=False, cli_config=libvirt_provider.cli_config,
    )  # fmt: skip
    assert proc.returncode != 0
    assert "the libvirt stand-in cannot create resources" in proc.stderr
