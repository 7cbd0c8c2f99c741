"""testinfra checks of the common role on the converged Debian container."""

import socket

import pytest


@pytest.mark.parametrize("name", ["chrony", "nftables", "openssh-server", "sudo", "conntrack", "nfs-common"])
def test_base_packages_installed(host, name):
    assert host.package(name).is_installed


def test_admin_user_with_exclusive_key_and_sudo(host):
    user = host.user("lakeadmin")
    assert user.exists
    assert "ampere-admins" in user.groups
    assert user.password in ("!", "!*")
    keys = host.file("/home/lakeadmin/.ssh/authorized_keys")
    assert keys.mode == 0o600
    assert keys.content_string.strip().endswith("molecule@ampere")
    assert len(keys.content_string.strip().splitlines()) == 1
    sudo = host.run("sudo -l -U lakeadmin")
    assert "NOPASSWD: ALL" in sudo.stdout


def test_sshd_effective_config_is_hardened(host):
    effective = host.run("/usr/sbin/sshd -T")
    assert effective.rc == 0, effective.stderr
    settings = dict(line.split(" ", 1) for line in effective.stdout.splitlines() if " " in line)
    assert settings["permitrootlogin"] == "no"
    assert settings["passwordauthentication"] == "no"
    assert settings["kbdinteractiveauthentication"] == "no"
    assert settings["x11forwarding"] == "no"
    assert settings["maxauthtries"] == "3"
    assert settings["allowgroups"] == "ampere-admins"


def test_sshd_running(host):
    assert host.service("ssh").is_running


def test_chrony_configured_and_running(host):
    conf = host.file("/etc/chrony/chrony.conf").content_string
    assert "pool 0.debian.pool.ntp.org iburst" in conf
    assert host.service("chrony").is_enabled
    assert host.service("chrony").is_running
    assert host.file("/etc/localtime").linked_to.endswith("Etc/UTC")


def test_sysctl_and_modules_persisted(host):
    conf = host.file("/etc/sysctl.d/60-ampere.conf").content_string
    assert "net.ipv4.ip_forward=1" in conf
    assert "net.bridge.bridge-nf-call-iptables=1" in conf
    assert "vm.swappiness=0" in conf
    assert host.file("/etc/modules-load.d/ampere.conf").content_string.split() == ["overlay", "br_netfilter"]


def test_swap_disabled_in_fstab(host):
    lines = host.file("/etc/fstab").content_string.splitlines()
    assert "# /swapfile none swap sw 0 0" in lines
    assert "/swapfile none swap sw 0 0" not in lines


def test_firewall_ruleset_loaded_with_drop_policy(host):
    assert host.service("nftables").is_enabled
    ruleset = host.run("nft list table inet ampere_filter")
    assert ruleset.rc == 0, ruleset.stderr
    out = ruleset.stdout
    assert "policy drop;" in out
    assert "tcp dport { 22, 6443 } accept" in out
    assert "10.42.10.0/24" in out and "10.244.0.0/16" in out
    assert "fd00:10:244::/56" in out


def test_firewall_enforced_from_outside(host):
    """From the host into the container's own network namespace: the allowed port (22) connects,
    an unlisted port with a listener behind it is silently dropped."""
    addr = host.run("hostname -I").stdout.split()[0]
    host.run("sh -c 'nohup python3 -m http.server 18080 --bind 0.0.0.0 >/dev/null 2>&1 & echo $! > /tmp/probe.pid'")
    try:
        for _ in range(25):
            if host.socket("tcp://0.0.0.0:18080").is_listening:
                break
            host.run("sleep 0.2")
        assert host.socket("tcp://0.0.0.0:18080").is_listening
        with socket.create_connection((addr, 22), timeout=3):
            pass
        with pytest.raises(OSError):
            socket.create_connection((addr, 18080), timeout=2).close()
        # The same listener through the LoadBalancer-style address: accepted (defect 7, kube-proxy
        # IPVS binds LoadBalancer addresses on the node, so the input chain must accept them).
        lb = host.run("ip -4 -o addr show dev eth0").stdout.split("inet ")[-1].split("/32")[0].strip()
        assert lb != addr
        with socket.create_connection((lb, 18080), timeout=3):
            pass
    finally:
        host.run("kill $(cat /tmp/probe.pid)")


def test_kubelet_prerequisites_are_what_boot_applies(host):
    """What a container can show of the kernel settings the kubelet needs (the kernel is the
    host's: see ansible/README.md): systemd reads the module list and the sysctl values from our
    files at boot, and no swap area is left active in fstab."""
    modules = host.run("systemd-analyze cat-config modules-load.d")
    assert modules.rc == 0, modules.stderr
    assert "# /etc/modules-load.d/ampere.conf" in modules.stdout
    assert {"overlay", "br_netfilter"} <= set(modules.stdout.split())
    sysctl = host.run("systemd-analyze cat-config sysctl.d")
    assert sysctl.rc == 0, sysctl.stderr
    assert "# /etc/sysctl.d/60-ampere.conf" in sysctl.stdout
    effective = {}
    for line in sysctl.stdout.splitlines():
        if "=" in line and not line.lstrip().startswith(("#", ";")):
            key, value = (part.strip() for part in line.split("=", 1))
            effective[key] = value  # later files win, as in systemd-sysctl
    for key in ("net.ipv4.ip_forward", "net.bridge.bridge-nf-call-iptables", "net.bridge.bridge-nf-call-ip6tables"):
        assert effective[key] == "1", key
    active_swap = [line for line in host.file("/etc/fstab").content_string.splitlines()
                   if line.strip() and not line.lstrip().startswith("#") and line.split()[2:3] == ["swap"]]
    assert active_swap == []
