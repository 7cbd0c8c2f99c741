"""A private libvirt daemon whose built-in test driver (test:///default) backs the provider.

dmacvicar/libvirt 0.8.3 speaks libvirt's RPC protocol itself (go-libvirt, no libvirt C
library), so it needs a daemon even for the test driver, which libvirt serves inside the
daemon process. This module runs Debian's libvirtd in session mode (as `nobody` when the
tests run as root) with every path in a private temporary folder, so it touches no system
libvirt state, listens on no network port, and ends with the tests.

The test driver keeps its objects (pools, networks, volumes, domains) in memory while at
least one connection to test:///default is open and forgets them when the last one closes.
Each provider run opens and closes its own connection, so two `virsh <kind>-event --loop`
processes hold connections open for the daemon's lifetime (what one tofu command creates is
still there for the next) and log every storage pool and network lifecycle event, the
record of what the provider did.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class LibvirtTestDaemon:
    root: Path
    daemon: subprocess.Popen
    keepers: list[subprocess.Popen]
    socket: Path
    _logs: list = field(default_factory=list)

    @property
    def uri(self) -> str:
        """The URI for the provider and virsh: test driver, reached over the daemon's socket."""
        return f"test+unix:///default?socket={self.socket}"

    def virsh(self, *args: str, check: bool = True) -> str:
        proc = subprocess.run(
            ["virsh", "-q", "-c", self.uri, *args], check=False, capture_output=True, text=True, timeout=60
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"virsh {' '.join(args)} exited {proc.returncode}: {proc.stderr.strip()}")
        return proc.stdout

    def names(self, kind: str) -> set[str]:
        """Names of every pool / net / domain the test driver holds (kind: pool, net, domain)."""
        cmd = {"pool": "pool-list", "net": "net-list", "domain": "list"}[kind]
        return set(self.virsh(cmd, "--all", "--name").split())

    def volumes(self, pool: str) -> dict[str, int]:
        """Volume name -> capacity in bytes, for one pool."""
        out = {}
        for name in self.virsh("vol-list", "--pool", pool).split("\n"):
            if name.strip():
                vol = name.split()[0]
                info = self.virsh("vol-info", "--bytes", "--pool", pool, vol)
                cap = [line.split()[1] for line in info.splitlines() if line.startswith("Capacity:")]
                out[vol] = int(cap[0])
        return out

    def events(self, kind: str) -> list[str]:
        """Lifecycle events seen so far for kind pool or net, e.g. "Storage pool x: Defined"."""
        lines = (self.root / f"events-{kind}.log").read_text(errors="replace").splitlines()
        return [line.strip() for line in lines if line.startswith("event 'lifecycle'")]

    def log_tail(self) -> str:
        return (self.root / "libvirtd.log").read_text(errors="replace")[-3000:]

    def stop(self) -> None:
        for proc in (*self.keepers, self.daemon):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=5)
        for fh in self._logs:
            fh.close()
        shutil.rmtree(self.root, ignore_errors=True)


def missing_tools() -> list[str]:
    return [
        t
        for t in ("libvirtd", "virsh")
        if shutil.which(t, path="/usr/sbin:/usr/bin:" + os.environ.get("PATH", "")) is None
    ]


def start(timeout: float = 30.0) -> LibvirtTestDaemon:
    # A short private folder: a unix socket path must stay under 108 bytes wherever CI clones.
    root = Path(tempfile.mkdtemp(prefix="ampere-libvirt-", dir="/tmp"))
    dirs = {name: root / name for name in ("run", "config", "cache", "data")}
    for d in dirs.values():
        d.mkdir()
    (dirs["config"] / "libvirt").mkdir()
    # Errors only; the daemon logs to stderr, which goes to libvirtd.log.
    (dirs["config"] / "libvirt" / "libvirtd.conf").write_text(
        'log_outputs = "3:stderr"\nmax_client_requests = 50\n'
    )
    env = {
        "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
        "HOME": str(root),
        "XDG_RUNTIME_DIR": str(dirs["run"]),
        "XDG_CONFIG_HOME": str(dirs["config"]),
        "XDG_CACHE_HOME": str(dirs["cache"]),
        "XDG_DATA_HOME": str(dirs["data"]),
    }
    libvirtd = shutil.which("libvirtd", path="/usr/sbin:/usr/bin") or "libvirtd"
    cmd = [libvirtd]
    if os.geteuid() == 0:
        # Root would make it the system daemon (/run/libvirt, /var/lib/libvirt); an ordinary
        # user gets a session daemon confined to the folders above.
        nobody = pwd.getpwnam("nobody")
        for p in [root, *root.rglob("*")]:
            os.chown(p, nobody.pw_uid, nobody.pw_gid)
        cmd = ["setpriv", f"--reuid={nobody.pw_uid}", f"--regid={nobody.pw_gid}", "--clear-groups", *cmd]
    log = (root / "libvirtd.log").open("w")
    daemon = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    socket = dirs["run"] / "libvirt" / "libvirt-sock"
    deadline = time.monotonic() + timeout
    while not socket.exists():
        if daemon.poll() is not None or time.monotonic() > deadline:
            daemon.kill()
            log.close()
            text = (root / "libvirtd.log").read_text(errors="replace")[-2000:]
            shutil.rmtree(root, ignore_errors=True)
            raise RuntimeError(f"libvirtd did not open its socket within {timeout:.0f}s:\n{text}")
        time.sleep(0.1)
    logs, keepers = [log], []
    for kind in ("pool", "net"):
        logs.append((root / f"events-{kind}.log").open("w"))
        keepers.append(subprocess.Popen(
            ["virsh", "-c", f"test+unix:///default?socket={socket}", f"{kind}-event", "--event", "lifecycle", "--loop"],
            stdout=logs[-1], stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        ))  # fmt: skip
    lv = LibvirtTestDaemon(root=root, daemon=daemon, keepers=keepers, socket=socket, _logs=logs)
    # Ready once a second connection sees the test driver's stock objects.
    while True:
        try:
            if "default-pool" in lv.names("pool") and all(k.poll() is None for k in keepers):
                return lv
        except AssertionError:
            pass
        if any(k.poll() is not None for k in keepers) or time.monotonic() > deadline:
            lv.stop()
            raise RuntimeError("the libvirt test driver did not answer through the private daemon")
        time.sleep(0.2)
