"""Validation of rendered cloud-init documents, shared by the tests.

Two layers: structural checks in plain Python (always), and cloud-init's own validators
(`cloud-init schema` for user-data, its network-config v2 parser and netplan renderer) when
Debian's cloud-init package has been unpacked by `make setup-terraform`.
"""

from __future__ import annotations

import ipaddress
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml
from tf_support import CLOUD_INIT_PYTHONPATH

KEY_LINE = r"^(ssh-(ed25519|rsa)|ecdsa-sha2-nistp(256|384|521)) [A-Za-z0-9+/=]+( .*)?$"


def cloud_init_available() -> bool:
    return (CLOUD_INIT_PYTHONPATH / "cloudinit" / "config" / "schema.py").is_file()


def check_user_data(text: str, *, hostname: str, ssh_user: str, keys: list[str]) -> dict[str, Any]:
    import re

    assert text.startswith("#cloud-config\n"), "user-data must start with #cloud-config"
    doc = yaml.safe_load(text)
    assert isinstance(doc, dict)
    assert doc["hostname"] == hostname
    assert doc["ssh_pwauth"] is False and doc["disable_root"] is True
    (user,) = doc["users"]
    assert user["name"] == ssh_user and user["sudo"] == "ALL=(ALL) NOPASSWD:ALL"
    assert user["ssh_authorized_keys"] == [k.strip() for k in keys]
    for k in user["ssh_authorized_keys"]:
        assert re.match(KEY_LINE, k), f"not a public key line: {k[:30]}..."
    if user["lock_passwd"] is False:
        assert re.match(r"^\$(6|y|2[aby]?|5)\$", user["passwd"]), "only password hashes may be written"
    else:
        assert "passwd" not in user and "plain_text_passwd" not in user
    assert "chpasswd" not in doc and "plain_text_passwd" not in text
    assert "qemu-guest-agent" in doc["packages"]
    assert ["systemctl", "enable", "--now", "qemu-guest-agent.service"] in doc["runcmd"]
    return doc


def check_network_config(text: str, *, ip_cidr: str, gateway: str, dns_servers: list[str]) -> dict[str, Any]:
    doc = yaml.safe_load(text)
    assert doc["version"] == 2
    (nic,) = doc["ethernets"].values()
    assert nic["dhcp4"] is False
    assert nic["addresses"] == [ip_cidr]
    iface = ipaddress.ip_interface(ip_cidr)
    assert ipaddress.ip_address(gateway) in iface.network, "gateway must be on the VM's subnet"
    assert nic["routes"] == [{"to": "0.0.0.0/0", "via": gateway}]
    assert nic["nameservers"]["addresses"] == dns_servers
    return doc


def check_meta_data(text: str, *, hostname: str) -> None:
    doc = yaml.safe_load(text)
    assert doc == {"instance-id": hostname, "local-hostname": hostname}


_VALIDATOR = r"""
import json, sys, yaml
from cloudinit.config.schema import get_schema, validate_cloudconfig_schema, SchemaValidationError
from cloudinit.net.network_state import parse_net_config_data
from cloudinit.net import netplan

user_data_path, network_config_path = sys.argv[1], sys.argv[2]
result = {}
with open(user_data_path) as fh:
    config = yaml.safe_load(fh)
try:
    validate_cloudconfig_schema(config, get_schema(), strict=True)
    result["schema_errors"] = []
except SchemaValidationError as exc:
    result["schema_errors"] = [f"{path}: {msg}" for path, msg in exc.schema_errors]
with open(network_config_path) as fh:
    state = parse_net_config_data(yaml.safe_load(fh), skip_broken=False)
renderer = netplan.Renderer({"netplan_path": "/nonexistent", "postcmds": False})
result["netplan"] = yaml.safe_load(renderer._render_content(state))
result["interfaces"] = [
    {"name": i["name"], "subnets": i["subnets"]} for i in state.iter_interfaces()
]
print(json.dumps(result))
"""


def run_cloud_init_validators(user_data: str, network_config: str, workdir: Path) -> dict[str, Any]:
    """Validate with the unpacked Debian cloud-init (its schema and network parser)."""
    workdir.mkdir(parents=True, exist_ok=True)
    ud, nc = workdir / "user-data", workdir / "network-config"
    ud.write_text(user_data)
    nc.write_text(network_config)
    env = dict(os.environ, PYTHONPATH=str(CLOUD_INIT_PYTHONPATH))
    proc = subprocess.run(
        [sys.executable, "-c", _VALIDATOR, str(ud), str(nc)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert proc.returncode == 0, f"cloud-init validators crashed:\n{proc.stderr[-4000:]}"
    return json.loads(proc.stdout.strip().splitlines()[-1])
