"""apply and destroy with the real dmacvicar/libvirt 0.8.3 provider against libvirt's
built-in test driver (a private daemon, see tf_libvirt.py): how far the configuration gets
without a KVM host.

- Each environment's layout goes through `tofu test` (tftest/testdriver): the provider
  creates the storage pool, the network with every VM's DNS entry, each VM's root overlay
  and data disks, reads them back (tofu fails on any difference from the plan), and
  destroys them. libvirt's own lifecycle events and its object lists are the evidence.
- The plain `tofu apply` of an environment, unmodified, is also run to the point where the
  test driver stops it: the base image upload, which that driver does not implement. The
  test pins that boundary and checks that destroy then removes what was created.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from tf_support import REPO_ROOT, TF_ROOT, TFTEST_DIR, Terraform, environments

# Volumes standing in for the two uploads (ids in tftest/testdriver/apply.tftest.hcl).
OVERRIDE_VOLUMES = {"ampere-test-base.qcow2": "qcow2", "ampere-test-cloudinit.iso": "raw"}
# The test driver gives every pool it defines a fixed 100 GiB and counts volumes at full size.
ROOT_GIB, DATA_GIB = 10, 1
STATES = ("Defined", "Undefined", "Started", "Stopped")


def _shrunk_sizes(tfvars: dict[str, Any]) -> dict[str, Any]:
    """The environment's roles (counts, vCPU, memory, data disk names) with disk sizes cut
    to the smallest the variables allow, so a whole layout fits the test driver's pool."""
    out = {}
    for role in ("control_plane", "workers", "storage_nodes"):
        if role in tfvars:
            spec = dict(tfvars[role])
            spec["root_disk_gib"] = ROOT_GIB
            if spec.get("data_disks"):
                spec["data_disks"] = [dict(d, size_gib=DATA_GIB) for d in spec["data_disks"]]
            out[role] = spec
    return out


def _vars(env: str, libvirt, test_public_key: Path, work: Path, tfvars: dict[str, Any]) -> list[str]:
    image = work / "base.img"
    image.write_bytes(b"\0" * 65536)  # any local file: the source is only read for the upload
    shrunk = work / "shrunk.tfvars.json"
    shrunk.write_text(json.dumps(_shrunk_sizes(tfvars)))
    return [
        f"-var-file={REPO_ROOT / 'environments' / env / 'terraform.tfvars'}",
        f"-var-file={shrunk}",
        f"-var=libvirt_uri={libvirt.uri}",
        f'-var=ssh_public_key_paths=["{test_public_key}"]',
        f"-var=base_image_source={image}",
    ]


def _ours(libvirt, name: str) -> dict[str, set[str]]:
    return {kind: {n for n in libvirt.names(kind) if n == name} for kind in ("pool", "net", "domain")}


@pytest.mark.parametrize("env", environments())
def test_testdriver_apply_and_destroy(
    env: str, terraform: Terraform, libvirt, env_tfvars: dict, test_public_key: Path, state_dir: Path
) -> None:
    tfvars = env_tfvars[env]
    name = f"{tfvars['name_prefix']}-{tfvars['environment']}"
    work = state_dir / f"testdriver-{env}"
    work.mkdir()
    for vol, fmt in OVERRIDE_VOLUMES.items():
        if vol not in libvirt.volumes("default-pool"):
            libvirt.virsh("vol-create-as", "default-pool", vol, "1M", "--format", fmt)
    data_dir = work / "tfdata"
    terraform.run(
        ["init", "-backend=false", "-input=false", "-no-color", "-test-directory=testdriver"],
        TFTEST_DIR,
        data_dir,
    )
    proc = terraform.run(
        [
            "test",
            "-no-color",
            "-test-directory=testdriver",
            *_vars(env, libvirt, test_public_key, work, tfvars),
        ],
        TFTEST_DIR,
        data_dir,
        check=False,
    )
    assert proc.returncode == 0 and "1 passed, 0 failed" in proc.stdout, (
        f"tofu test (testdriver, {env}) failed:\n{proc.stdout[-6000:]}\n{proc.stderr[-6000:]}\n{libvirt.log_tail()}"
    )
    # libvirt saw the pool and the network defined, started, then stopped and removed.
    for kind, label in (("pool", "storage pool"), ("net", "network")):
        seen = [e for e in libvirt.events(kind) if e.endswith(tuple(f"{label} {name}: {s}" for s in STATES))]
        states = [e.rsplit(":", 1)[1].strip() for e in seen]
        assert states[:2] == ["Defined", "Started"] and states[-1] == "Undefined", (label, seen)
    assert _ours(libvirt, name) == {"pool": set(), "net": set(), "domain": set()}
    assert set(libvirt.volumes("default-pool")) == set(OVERRIDE_VOLUMES)


def test_plain_apply_stops_at_the_base_image_upload(
    terraform: Terraform, libvirt, env_tfvars: dict, test_public_key: Path, state_dir: Path
) -> None:
    """`tofu apply` of environments/dev as a user runs it, on the test driver: the pool and
    the network are created, then the base image upload fails (unsupported by the driver)
    and nothing that depends on it is tried. destroy removes what was created."""
    env, tfvars = "dev", env_tfvars["dev"]
    name = f"{tfvars['name_prefix']}-{tfvars['environment']}"
    work = state_dir / "plain-apply"
    work.mkdir()
    data_dir = work / "tfdata"
    state = work / "terraform.tfstate"
    terraform.run(
        ["init", "-input=false", "-no-color", "-lockfile=readonly", f"-backend-config=path={state}"],
        TF_ROOT,
        data_dir,
    )
    args = _vars(env, libvirt, test_public_key, work, tfvars)
    args.remove(next(a for a in args if a.endswith("shrunk.tfvars.json")))  # the real sizes
    proc = terraform.run(
        ["apply", "-auto-approve", "-input=false", "-no-color", *args], TF_ROOT, data_dir, check=False
    )
    assert proc.returncode == 1, proc.stdout[-3000:] + proc.stderr[-3000:]
    errors = re.findall(r"Error: (.+)", proc.stderr)
    upload_error = (
        f"error while uploading source {work / 'base.img'}: error while uploading volume this function "
        "is not supported by the connection driver: virStorageVolUpload"
    )
    assert errors == [upload_error], proc.stderr[-3000:]
    listed = terraform.run(["state", "list"], TF_ROOT, data_dir).stdout.split()
    # The failed volume stays in the state (tainted): libvirt created it before the upload.
    assert sorted(listed) == [
        "module.network.libvirt_network.this",
        "module.storage.libvirt_pool.this[0]",
        "module.storage.libvirt_volume.base_image",
    ]
    assert _ours(libvirt, name) == {"pool": {name}, "net": {name}, "domain": set()}
    net = libvirt.virsh("net-dumpxml", name)
    for host, ip in ((f"{name}-cp-1", "10.42.10.10"), (f"{name}-worker-1", "10.42.10.20")):
        assert re.search(
            rf"<host ip='{re.escape(ip)}'>(?:(?!</host>).)*<hostname>{host}</hostname>", net, re.DOTALL
        ), net
    assert "<domain name='dev.ampere.lan' localOnly='yes'/>" in net and "<dhcp>" not in net

    destroyed = terraform.run(
        ["destroy", "-auto-approve", "-input=false", "-no-color", *args], TF_ROOT, data_dir
    )
    assert "Resources: 3 destroyed." in destroyed.stdout
    assert _ours(libvirt, name) == {"pool": set(), "net": set(), "domain": set()}
