"""Process and port helpers for the local services.

Everything here is loopback-only and acts only on processes whose pid this project recorded
itself (a pidfile in the service's state dir), never on processes found by name.
"""

from __future__ import annotations

import errno
import os
import signal
import socket
import time
from collections.abc import Callable
from pathlib import Path

from lakehouse.core.errors import ServiceError
from lakehouse.core.settings import LOOPBACK as LOOPBACK


def pid_alive(pid: int) -> bool:
    """True if a process with this pid exists (zombies count as gone)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, owned by someone else
    try:
        with open(f"/proc/{pid}/stat") as fh:
            # state is the field after the parenthesised command name
            state = fh.read().rsplit(")", 1)[1].split()[0]
        return state not in ("Z", "X")
    except (FileNotFoundError, IndexError):
        return False
    except OSError:
        return True


def proc_cwd(pid: int) -> Path | None:
    try:
        return Path(os.readlink(f"/proc/{pid}/cwd"))
    except OSError:
        return None


def proc_cmdline(pid: int) -> list[str]:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            return [part.decode(errors="replace") for part in fh.read().split(b"\0") if part]
    except OSError:
        return []


def port_in_use(port: int, host: str = LOOPBACK) -> bool:
    """True if something already accepts connections on host:port (or the port cannot be bound)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        if sock.connect_ex((host, port)) == 0:
            return True
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            return exc.errno in (errno.EADDRINUSE, errno.EACCES)
    return False


def ephemeral_ports() -> range | None:
    """This machine's range of local ports for outgoing connections (Linux), or None."""
    try:
        low, high = (int(v) for v in Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    except (OSError, ValueError):
        return None
    return range(low, high + 1)


def listening(port: int, host: str = LOOPBACK) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def free_port(avoid: set[int] | None = None) -> int:
    """A currently free TCP port on 127.0.0.1 whose +10000 neighbour is irrelevant (we set all ports)."""
    avoid = avoid or set()
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind((LOOPBACK, 0))
            port = int(sock.getsockname()[1])
        if port not in avoid and 1024 <= port <= 65535:
            return port
    raise ServiceError("could not find a free TCP port on 127.0.0.1")


def port_owner(port: int) -> str:
    """Best-effort 'pid N (name)' of the process listening on a TCP port, for error messages."""
    try:
        inode = None
        hexport = f"{port:04X}"
        for table in ("/proc/net/tcp", "/proc/net/tcp6"):
            with open(table) as fh:
                for line in fh.readlines()[1:]:
                    parts = line.split()
                    if parts[1].endswith(":" + hexport) and parts[3] == "0A":  # 0A = LISTEN
                        inode = parts[9]
                        break
            if inode:
                break
        if not inode:
            return "another process"
        target = f"socket:[{inode}]"
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            fd_dir = f"/proc/{entry}/fd"
            try:
                for fd in os.listdir(fd_dir):
                    if os.readlink(f"{fd_dir}/{fd}") == target:
                        cmd = proc_cmdline(int(entry))
                        name = Path(cmd[0]).name if cmd else "?"
                        return f"pid {entry} ({name})"
            except OSError:
                continue
    except OSError:
        pass
    return "another process"


def wait_until(check: Callable[[], bool], timeout: float, interval: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        if check():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


def terminate(pid: int, timeout: float = 15.0) -> bool:
    """SIGTERM this pid (and only it), wait, then SIGKILL if it does not go away. True when it
    exited on SIGTERM (a clean shutdown), False when it had to be killed."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return True
    if wait_until(lambda: not pid_alive(pid), timeout):
        return True
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return False
    if not wait_until(lambda: not pid_alive(pid), 5):
        raise ServiceError(f"process {pid} did not exit after SIGKILL")
    return False


def log_tail(path: Path, lines: int = 3) -> str:
    """Last non-empty lines of a log file joined with ' | ', for one-line error messages."""
    try:
        text = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return ""
    tail = [line.strip() for line in text if line.strip()][-lines:]
    return " | ".join(tail)


def read_pidfile(path: Path) -> int | None:
    try:
        first = path.read_text().splitlines()[0].strip()
        return int(first)
    except (OSError, IndexError, ValueError):
        return None


def write_private(path: Path, text: str) -> None:
    """Write a file only its owner can read (credentials, keys)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    os.chmod(path, 0o600)
