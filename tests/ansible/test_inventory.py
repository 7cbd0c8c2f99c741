"""Inventories: dev (hand-written) and the prod example (Terraform's shape) parse with
ansible-inventory and carry what the playbooks read."""

from __future__ import annotations

import json
import subprocess

import pytest

from ansible_helpers import ROOT, VENV_BIN, tool_env

INVENTORIES = {
    "dev": ROOT / "environments/dev/inventory/hosts.yml",
    "prod": ROOT / "environments/prod/inventory/hosts.example.yml",
}


def inventory(env: str) -> dict:
    out = subprocess.run([str(VENV_BIN / "ansible-inventory"), "-i", str(INVENTORIES[env]), "--list"],
                         env=tool_env(), capture_output=True, text=True, check=True).stdout
    return json.loads(out)


@pytest.mark.parametrize("env", sorted(INVENTORIES))
def test_group_tree_matches_the_terraform_contract(env):
    inv = inventory(env)
    assert "k8s_cluster" in inv["all"]["children"]
    assert set(inv["k8s_cluster"]["children"]) == {"kube_control_plane", "kube_workers", "storage_nodes"}
    assert inv["kube_control_plane"]["hosts"], "at least one control-plane node"


@pytest.mark.parametrize("env", sorted(INVENTORIES))
def test_host_vars_and_environment_group_vars(env):
    inv = inventory(env)
    hostvars = inv["_meta"]["hostvars"]
    role_of_group = {"kube_control_plane": "control_plane", "kube_workers": "worker", "storage_nodes": "storage"}
    for group, role in role_of_group.items():
        for host in inv.get(group, {}).get("hosts", []):
            hv = hostvars[host]
            assert hv["node_role"] == role
            assert hv["ansible_host"] == hv["node_ip"]
            assert hv["ansible_user"] == "ampere"
            assert isinstance(hv["data_disks"], list) and all(d.startswith("/dev/") for d in hv["data_disks"])
            assert hv["lakehouse_environment"] == env
            assert hv["cluster_addons_metallb_addresses"], "LoadBalancer pool set per environment"


def test_prod_is_highly_available_and_dev_is_not():
    prod, dev = inventory("prod"), inventory("dev")
    assert len(prod["kube_control_plane"]["hosts"]) == 3
    cp = prod["kube_control_plane"]["hosts"][0]
    assert prod["_meta"]["hostvars"][cp]["kubernetes_control_plane_vip"]
    assert len(dev["kube_control_plane"]["hosts"]) == 1
    assert dev["_meta"]["hostvars"][dev["kube_control_plane"]["hosts"][0]]["kubernetes_control_plane_vip"] == ""
