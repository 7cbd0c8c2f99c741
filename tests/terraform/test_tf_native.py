"""OpenTofu's own checks: fmt, `tofu test`, `tofu validate` and a plan per environment.

The provider-free modules (cluster_layout, cloud_init) are tested with `tofu test`.
Everything that needs the dmacvicar/libvirt schema runs against the real provider 0.8.3
(built by `make terraform-tools`); plans connect it to libvirt's test driver (conftest.py).
"""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import pytest
from tf_cloud_init_checks import check_network_config, check_user_data
from tf_support import REPO_ROOT, TF_ROOT, TFTEST_DIR, Terraform, environments, load_hcl

PASSED = re.compile(r"Success! (\d+) passed, 0 failed\.")


def test_fmt_check(terraform: Terraform, state_dir: Path) -> None:
    targets = [TF_ROOT, REPO_ROOT / "tests" / "terraform"]
    targets += sorted((REPO_ROOT / "environments").glob("*/terraform*.tfvars"))
    for target in targets:
        proc = terraform.run(
            ["fmt", "-check", "-recursive", "-no-color", str(target)],
            REPO_ROOT,
            state_dir / "fmt",
            check=False,
        )
        assert proc.returncode == 0, (
            f"terraform fmt -check found unformatted files:\n{proc.stdout}{proc.stderr}"
        )


def _run_tftest(terraform: Terraform, suite: str, data_dir: Path) -> str:
    # init installs the modules the run blocks point at and, for the root suite, the
    # provider from the local mirror (its lock file there is git-ignored: each suite's
    # init rewrites it for the providers that suite needs).
    init = terraform.run(
        ["init", "-backend=false", "-input=false", "-no-color", f"-test-directory={suite}"],
        TFTEST_DIR,
        data_dir,
    )
    assert (data_dir / "modules" / "modules.json").is_file(), init.stdout + init.stderr
    proc = terraform.run(["test", "-no-color", f"-test-directory={suite}"], TFTEST_DIR, data_dir, check=False)
    assert proc.returncode == 0, (
        f"terraform test {suite} failed:\n{proc.stdout[-8000:]}\n{proc.stderr[-4000:]}"
    )
    return proc.stdout


def _expected_runs(suite: str) -> int:
    return sum(len(load_hcl(f).get("run", [])) for f in (TFTEST_DIR / suite).glob("*.tftest.hcl"))


@pytest.mark.parametrize("suite", ["cluster_layout", "cloud_init"])
def test_terraform_test_provider_free_modules(terraform: Terraform, state_dir: Path, suite: str) -> None:
    out = _run_tftest(terraform, suite, state_dir / f"tftest-{suite}")
    m = PASSED.search(out)
    assert m and int(m.group(1)) == _expected_runs(suite) > 0, out[-3000:]


def test_terraform_test_root_with_mock_provider(terraform: Terraform, state_dir: Path) -> None:
    out = _run_tftest(terraform, "root", state_dir / "tftest-root")
    m = PASSED.search(out)
    assert m and int(m.group(1)) == _expected_runs("root") > 0, out[-3000:]


def test_validate_root(terraform: Terraform, root_data_dir: Path) -> None:
    proc = terraform.run(["validate", "-no-color", "-json"], TF_ROOT, root_data_dir, check=False)
    result = json.loads(proc.stdout)
    assert result["valid"], json.dumps(result["diagnostics"], indent=1)
    assert result["error_count"] == 0


def test_validate_rejects_unknown_provider_argument(
    terraform: Terraform, root_data_dir: Path, tmp_path: Path
) -> None:
    """The schema really is enforced: an argument 0.8.3 does not have is an error (here the
    0.9 rewrite's `devices` block)."""
    import shutil

    copy = tmp_path / "terraform"
    shutil.copytree(TF_ROOT, copy, ignore=shutil.ignore_patterns(".terraform*"))
    vm = copy / "modules" / "vm" / "main.tf"
    vm.write_text(vm.read_text().replace("  qemu_agent  = true\n", "  qemu_agent  = true\n  devices {}\n", 1))
    data_dir = tmp_path / "tfdata"
    terraform.run(["init", "-backend=false", "-input=false", "-no-color"], copy, data_dir)
    proc = terraform.run(["validate", "-no-color", "-json"], copy, data_dir, check=False)
    result = json.loads(proc.stdout)
    assert not result["valid"]
    assert any("devices" in (d.get("detail", "") + d.get("summary", "")) for d in result["diagnostics"])


@pytest.fixture(scope="module")
def env_plans(
    terraform: Terraform, root_data_dir: Path, libvirt, test_public_key: Path, state_dir: Path
) -> dict:
    """`tofu plan` of terraform/ for each environment's tfvars, the provider connected to
    libvirt's test driver (the tfvars name qemu:///system; the SSH key path is a test key:
    the tfvars point at the operator's ~/.ssh)."""
    plans = {}
    for env in environments():
        plan = state_dir / f"plan-{env}"
        terraform.run(
            [
                "plan", "-input=false", "-no-color", "-lock=false", "-refresh=false", f"-out={plan}",
                f"-var-file={REPO_ROOT / 'environments' / env / 'terraform.tfvars'}",
                f'-var=ssh_public_key_paths=["{test_public_key}"]',
                f"-var=libvirt_uri={libvirt.uri}",
            ],
            TF_ROOT,
            root_data_dir,
        )  # fmt: skip
        shown = terraform.run(["show", "-json", str(plan)], TF_ROOT, root_data_dir)
        plans[env] = json.loads(shown.stdout)
    return plans


def _resources(plan: dict) -> list[dict]:
    return [rc for rc in plan["resource_changes"] if rc["change"]["actions"] == ["create"]]


@pytest.mark.parametrize("env", environments())
def test_env_plan_creates_expected_resources(env: str, env_plans: dict, layouts: dict) -> None:
    plan = env_plans[env]
    nodes = layouts[env]["nodes"]
    counts = Counter(rc["type"] for rc in _resources(plan))
    data_disks = sum(len(n["data_disks"]) for n in nodes.values())
    assert counts["libvirt_domain"] == len(nodes)
    assert counts["libvirt_cloudinit_disk"] == len(nodes)
    assert counts["libvirt_volume"] == 1 + len(nodes) + data_disks  # base image, roots, data
    assert counts["libvirt_network"] == 1 and counts["libvirt_pool"] == 1
    domains = {
        rc["change"]["after"]["name"]: rc["change"]["after"]
        for rc in _resources(plan)
        if rc["type"] == "libvirt_domain"
    }
    assert set(domains) == set(nodes)
    for name, d in domains.items():
        assert d["vcpu"] == nodes[name]["vcpu"] and d["memory"] == nodes[name]["memory_mib"]
        assert d["autostart"] is True and d["qemu_agent"] is True and d["running"] is True
        assert len(d["disk"]) == 1 + len(nodes[name]["data_disks"])


@pytest.mark.parametrize("env", environments())
def test_env_plan_network_matches_mode(env: str, env_plans: dict, env_tfvars: dict) -> None:
    tfvars = env_tfvars[env]
    (net,) = [rc["change"]["after"] for rc in _resources(env_plans[env]) if rc["type"] == "libvirt_network"]
    assert net["mode"] == tfvars.get("network_mode", "nat")
    if net["mode"] == "bridge":
        assert net["bridge"] == tfvars["network_bridge"] and not net.get("addresses")
    else:
        assert net["addresses"] == [tfvars["network_cidr"]]
        assert net["dns"][0]["local_only"] is True and net["dhcp"][0]["enabled"] is False


@pytest.mark.parametrize("env", environments())
def test_env_plan_cloud_init_documents(
    env: str, env_plans: dict, layouts: dict, env_tfvars: dict, test_public_key: Path
) -> None:
    """The documents as the root configuration wires them (not just the module in isolation)."""
    tfvars = env_tfvars[env]
    nodes = layouts[env]["nodes"]
    disks = [
        rc["change"]["after"] for rc in _resources(env_plans[env]) if rc["type"] == "libvirt_cloudinit_disk"
    ]
    assert len(disks) == len(nodes)
    for disk in disks:
        name = disk["name"].removesuffix("-cloudinit.iso")
        node = nodes[name]
        check_user_data(
            disk["user_data"], hostname=name, ssh_user=tfvars["ssh_user"], keys=[test_public_key.read_text()]
        )
        check_network_config(
            disk["network_config"],
            ip_cidr=node["ip_cidr"],
            gateway=node["gateway"],
            dns_servers=tfvars.get("dns_servers") or [node["gateway"]],
        )


@pytest.mark.parametrize("env", environments())
def test_env_plan_inventory_output(env: str, env_plans: dict, layouts: dict) -> None:
    out = env_plans[env]["planned_values"]["outputs"]
    assert out["ansible_inventory"]["value"] == layouts[env]["ansible_inventory_yaml"]
    assert out["node_addresses"]["value"] == {n: v["ip"] for n, v in layouts[env]["nodes"].items()}
