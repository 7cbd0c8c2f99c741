"""cloud-init templates rendered by terraform (templatefile in modules/cloud_init) for every
VM of every environment, then validated: YAML and structure always, cloud-init's own schema
and network-config parser when Debian's cloud-init is unpacked (make setup-terraform)."""

from __future__ import annotations

import json

import pytest
from tf_cloud_init_checks import (
    check_meta_data,
    check_network_config,
    check_user_data,
    cloud_init_available,
    run_cloud_init_validators,
)
from tf_support import MODULES_DIR, environments

HASH = "$6$ampere.test$" + "a" * 86  # shape of a sha512-crypt hash; not the hash of any password


def _inputs(node: dict, tfvars: dict, keys: list[str], password_hash: str | None = None) -> dict:
    """The cloud_init module inputs, wired as terraform/main.tf and k8s_cluster do."""
    gateway = node["gateway"]
    inputs = {
        "hostname": node["name"],
        "fqdn": node["fqdn"],
        "ssh_user": tfvars["ssh_user"],
        "ssh_public_keys": keys,
        "ip_cidr": node["ip_cidr"],
        "gateway": gateway,
        "dns_servers": tfvars.get("dns_servers") or [gateway],
        "dns_search": [tfvars["dns_domain"]],
        "packages": tfvars.get("extra_packages", []),
        "timezone": tfvars.get("timezone", "Etc/UTC"),
    }
    if password_hash:
        inputs["password_hash"] = password_hash
    return inputs


@pytest.fixture(scope="module")
def rendered(terraform, layouts, env_tfvars, test_public_key, state_dir) -> dict:
    """Every VM's documents, rendered by terraform. Each environment's first VM is also
    rendered with a console password hash, to cover that branch of the template."""
    keys = [test_public_key.read_text()]
    out = {}
    for env in environments():
        for i, (name, node) in enumerate(sorted(layouts[env]["nodes"].items())):
            for with_hash in [False, True] if i == 0 else [False]:
                inputs = _inputs(node, env_tfvars[env], keys, HASH if with_hash else None)
                work = state_dir / f"cloud-init-{name}{'-hash' if with_hash else ''}"
                work.mkdir(parents=True, exist_ok=True)
                var_file = work / "inputs.tfvars.json"
                var_file.write_text(json.dumps(inputs))
                outputs = terraform.plan_outputs(MODULES_DIR / "cloud_init", [var_file], work)
                out[(env, name, with_hash)] = (inputs, outputs)
    return out


def _cases():
    return [e for e in environments()]


@pytest.mark.parametrize("env", _cases())
def test_user_data_structure(env, rendered) -> None:
    cases = [(k, v) for k, v in rendered.items() if k[0] == env]
    assert cases
    for (_, name, with_hash), (inputs, outputs) in cases:
        doc = check_user_data(
            outputs["user_data"], hostname=name, ssh_user=inputs["ssh_user"], keys=inputs["ssh_public_keys"]
        )
        user = doc["users"][0]
        assert user["lock_passwd"] is (not with_hash)
        if with_hash:
            assert user["passwd"] == HASH
        assert doc["fqdn"] == inputs["fqdn"] and doc["timezone"] == inputs["timezone"]
        assert set(inputs["packages"]) <= set(doc["packages"])


@pytest.mark.parametrize("env", _cases())
def test_network_and_meta_data_structure(env, rendered) -> None:
    for (_, name, _), (inputs, outputs) in [(k, v) for k, v in rendered.items() if k[0] == env]:
        doc = check_network_config(
            outputs["network_config"],
            ip_cidr=inputs["ip_cidr"],
            gateway=inputs["gateway"],
            dns_servers=inputs["dns_servers"],
        )
        assert doc["ethernets"]["primary"]["nameservers"]["search"] == inputs["dns_search"]
        check_meta_data(outputs["meta_data"], hostname=name)


@pytest.mark.parametrize("env", _cases())
def test_cloud_init_schema_and_network_parser(env, rendered, state_dir) -> None:
    if not cloud_init_available():
        pytest.skip(
            "Debian's cloud-init is not unpacked in .state/terraform/cloud-init (make setup-terraform fetches it with apt-get download)"
        )
    for (_, name, with_hash), (inputs, outputs) in [(k, v) for k, v in rendered.items() if k[0] == env]:
        result = run_cloud_init_validators(
            outputs["user_data"], outputs["network_config"], state_dir / f"ci-validate-{name}-{with_hash}"
        )
        assert result["schema_errors"] == [], f"{name}: {result['schema_errors']}"
        (iface,) = result["interfaces"]
        (subnet,) = iface["subnets"]
        assert subnet["type"] == "static"
        assert f"{subnet['address']}/{subnet['prefix']}" == inputs["ip_cidr"]
        netplan = result["netplan"]["network"]["ethernets"]["primary"]
        assert netplan["addresses"] == [inputs["ip_cidr"]]
        assert netplan["routes"] == [{"to": "0.0.0.0/0", "via": inputs["gateway"]}]


def test_cloud_init_validator_rejects_broken_documents(state_dir) -> None:
    """The validators used above do fail on bad input (so a pass means something)."""
    if not cloud_init_available():
        pytest.skip(
            "Debian's cloud-init is not unpacked in .state/terraform/cloud-init (make setup-terraform fetches it with apt-get download)"
        )
    bad_user_data = "#cloud-config\nruncmd: 5\nusers:\n  - name: x\n    lock_passwd: maybe\n"
    good_network = (
        "version: 2\nethernets:\n  primary:\n    match: {driver: virtio_net}\n    addresses: [10.0.0.5/24]\n"
    )
    result = run_cloud_init_validators(bad_user_data, good_network, state_dir / "ci-validate-bad")
    assert len(result["schema_errors"]) >= 2
    with pytest.raises(AssertionError, match="crashed"):
        # "to: default" is what older cloud-init parsers reject; the template avoids it.
        bad_network = good_network + "    routes: [{to: default, via: 10.0.0.1}]\n"
        run_cloud_init_validators("#cloud-config\n", bad_network, state_dir / "ci-validate-bad-net")


def test_template_rejects_secret_inputs(terraform, state_dir, test_public_key) -> None:
    """A plain password or a private key never reaches a rendered document."""
    base = {
        "hostname": "ampere-test-cp-1",
        "fqdn": "ampere-test-cp-1.test.lan",
        "ssh_user": "ampere",
        "ssh_public_keys": [test_public_key.read_text()],
        "ip_cidr": "10.1.0.10/24",
        "gateway": "10.1.0.1",
        "dns_servers": ["10.1.0.1"],
    }
    for label, override in {
        "plain-password": {"password_hash": "correct horse battery staple"},
        "private-key": {
            "ssh_public_keys": ["-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n"]
        },
    }.items():
        work = state_dir / f"cloud-init-reject-{label}"
        work.mkdir(parents=True, exist_ok=True)
        var_file = work / "inputs.tfvars.json"
        var_file.write_text(json.dumps(base | override))
        with pytest.raises(AssertionError, match="Invalid value for variable"):
            terraform.plan_outputs(MODULES_DIR / "cloud_init", [var_file], work)
