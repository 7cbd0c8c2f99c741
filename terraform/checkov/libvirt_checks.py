"""checkov custom policies (CKV_AMPERE_LIBVIRT_*) for the libvirt resources in terraform/.

Loaded with `checkov --external-checks-dir terraform/checkov`. Each check fails on a value
it can read and is wrong; a value that is still an unresolved expression is left to the
terraform tests (UNKNOWN) instead of failing blindly.
"""

from __future__ import annotations

import os
import sys

from checkov.common.models.enums import CheckCategories, CheckResult
from checkov.terraform.checks.resource.base_resource_check import BaseResourceCheck

sys.path.insert(0, os.path.dirname(__file__))
from _libvirt_common import UNRESOLVED, blocks, first, truthy  # noqa: E402

LOOPBACK = {"127.0.0.1", "::1", "localhost"}


class DomainGuestAgent(BaseResourceCheck):
    """The provider needs qemu-guest-agent to read addresses and shut guests down cleanly."""

    def __init__(self) -> None:
        super().__init__(
            name="libvirt_domain enables the QEMU guest agent channel (qemu_agent = true)",
            id="CKV_AMPERE_LIBVIRT_1",
            categories=[CheckCategories.GENERAL_SECURITY],
            supported_resources=["libvirt_domain"],
        )

    def scan_resource_conf(self, conf):
        self.evaluated_keys = ["qemu_agent"]
        value = first(conf, "qemu_agent", default=False)
        if value is UNRESOLVED:
            return CheckResult.UNKNOWN
        return CheckResult.PASSED if truthy(value) else CheckResult.FAILED


class DomainAutostart(BaseResourceCheck):
    """A home-lab host reboots: the cluster must come back without a hand on virsh."""

    def __init__(self) -> None:
        super().__init__(
            name="libvirt_domain sets autostart explicitly",
            id="CKV_AMPERE_LIBVIRT_2",
            categories=[CheckCategories.BACKUP_AND_RECOVERY],
            supported_resources=["libvirt_domain"],
        )

    def scan_resource_conf(self, conf):
        self.evaluated_keys = ["autostart"]
        if "autostart" not in conf:
            return CheckResult.FAILED
        value = first(conf, "autostart")
        if value is UNRESOLVED:
            return CheckResult.PASSED  # set explicitly from a variable (validated there)
        return CheckResult.PASSED if truthy(value) else CheckResult.FAILED


class DomainConsoleLoopback(BaseResourceCheck):
    """SPICE/VNC and TCP consoles have no authentication: keep them on the host's loopback."""

    def __init__(self) -> None:
        super().__init__(
            name="libvirt_domain graphics and tcp consoles listen on loopback only",
            id="CKV_AMPERE_LIBVIRT_3",
            categories=[CheckCategories.NETWORKING],
            supported_resources=["libvirt_domain"],
        )

    def scan_resource_conf(self, conf):
        self.evaluated_keys = ["graphics", "console"]
        for g in blocks(conf, "graphics"):
            listen_type = first(g, "listen_type", default="none")
            address = first(g, "listen_address", default="127.0.0.1")
            if listen_type is UNRESOLVED or address is UNRESOLVED:
                return CheckResult.UNKNOWN
            if listen_type == "address" and address not in LOOPBACK:
                return CheckResult.FAILED
            if listen_type not in ("none", "address"):
                return CheckResult.FAILED
        for c in blocks(conf, "console"):
            if first(c, "type") == "tcp":
                host = first(c, "source_host", default="127.0.0.1")
                if host is UNRESOLVED:
                    return CheckResult.UNKNOWN
                if host not in LOOPBACK:
                    return CheckResult.FAILED
        return CheckResult.PASSED


class DomainExplicitSize(BaseResourceCheck):
    """The provider's defaults (1 vCPU, 512 MiB) cannot run a Kubernetes node."""

    def __init__(self) -> None:
        super().__init__(
            name="libvirt_domain sets vcpu and memory explicitly",
            id="CKV_AMPERE_LIBVIRT_4",
            categories=[CheckCategories.GENERAL_SECURITY],
            supported_resources=["libvirt_domain"],
        )

    def scan_resource_conf(self, conf):
        self.evaluated_keys = ["vcpu", "memory"]
        if "vcpu" not in conf or "memory" not in conf:
            return CheckResult.FAILED
        memory = first(conf, "memory")
        if memory is not UNRESOLVED and isinstance(memory, (int, float)) and memory < 1024:
            return CheckResult.FAILED
        return CheckResult.PASSED


class VolumeTrustedSource(BaseResourceCheck):
    """Base images come over HTTPS or from a local file, never plain HTTP."""

    def __init__(self) -> None:
        super().__init__(
            name="libvirt_volume source is https:// or a local path, and format is set",
            id="CKV_AMPERE_LIBVIRT_5",
            categories=[CheckCategories.SUPPLY_CHAIN],
            supported_resources=["libvirt_volume"],
        )

    def scan_resource_conf(self, conf):
        self.evaluated_keys = ["source", "format"]
        if "format" not in conf:
            return CheckResult.FAILED
        source = first(conf, "source")
        if source is None or source is UNRESOLVED:
            return CheckResult.PASSED
        if isinstance(source, str) and (source.startswith("https://") or source.startswith("/")):
            return CheckResult.PASSED
        return CheckResult.FAILED


class NetworkNotOpen(BaseResourceCheck):
    """mode = open installs no firewall rules at all; DNS for the lab domain stays local."""

    def __init__(self) -> None:
        super().__init__(
            name="libvirt_network is nat, route or bridge, and its DNS answers locally",
            id="CKV_AMPERE_LIBVIRT_6",
            categories=[CheckCategories.NETWORKING],
            supported_resources=["libvirt_network"],
        )

    def scan_resource_conf(self, conf):
        self.evaluated_keys = ["mode", "dns"]
        mode = first(conf, "mode", default="nat")
        if mode is not UNRESOLVED and mode not in ("nat", "route", "bridge", "none"):
            return CheckResult.FAILED
        for dns in blocks(conf, "dns"):
            local_only = first(dns, "local_only", default=False)
            if local_only is not UNRESOLVED and not truthy(local_only):
                return CheckResult.FAILED
        return CheckResult.PASSED


class PoolTargetPath(BaseResourceCheck):
    """Use target { path } (the deprecated top-level path goes away) and never a system dir."""

    def __init__(self) -> None:
        super().__init__(
            name="libvirt_pool uses target.path, outside system directories",
            id="CKV_AMPERE_LIBVIRT_7",
            categories=[CheckCategories.GENERAL_SECURITY],
            supported_resources=["libvirt_pool"],
        )

    def scan_resource_conf(self, conf):
        self.evaluated_keys = ["path", "target"]
        if "path" in conf:
            return CheckResult.FAILED
        targets = blocks(conf, "target")
        if not targets:
            return CheckResult.FAILED
        path = first(targets[0], "path")
        if path is UNRESOLVED:
            return CheckResult.PASSED
        if not isinstance(path, str) or path.rstrip("/") in (
            "",
            "/",
            "/etc",
            "/usr",
            "/var",
            "/boot",
            "/root",
            "/home",
        ):
            return CheckResult.FAILED
        return CheckResult.PASSED


class CloudInitDiskComplete(BaseResourceCheck):
    """Static addressing relies on network_config; without it the VM would DHCP or stay offline."""

    def __init__(self) -> None:
        super().__init__(
            name="libvirt_cloudinit_disk carries user_data and network_config",
            id="CKV_AMPERE_LIBVIRT_8",
            categories=[CheckCategories.GENERAL_SECURITY],
            supported_resources=["libvirt_cloudinit_disk"],
        )

    def scan_resource_conf(self, conf):
        self.evaluated_keys = ["user_data", "network_config"]
        if "user_data" in conf and "network_config" in conf:
            return CheckResult.PASSED
        return CheckResult.FAILED


checks = [
    DomainGuestAgent(),
    DomainAutostart(),
    DomainConsoleLoopback(),
    DomainExplicitSize(),
    VolumeTrustedSource(),
    NetworkNotOpen(),
    PoolTargetPath(),
    CloudInitDiskComplete(),
]
