"""What every local service is, and the lifecycle of the ones that run as one process of ours.

`LocalService`: start / stop / status, each idempotent; state (data, logs, pidfile) under the
service's own folder in the state dir; only 127.0.0.1.

`SpawnedService`: a service that is one long-running process this project starts itself (the
S3 server, a Kafka broker). Start refuses a busy port, launches the process in its own session
(it outlives the CLI), records its pid, and waits until the service answers — failing with the
process's last log line if it dies on the way. Stop signals that recorded pid only, then waits
for the port to close. Subclasses say how to launch it, how to tell it is ready, and what to
do once it is (create a bucket, a topic).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import signal
import subprocess
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from lakehouse.core.errors import ServiceError
from lakehouse.services.process import (
    LOOPBACK,
    listening,
    log_tail,
    pid_alive,
    port_in_use,
    port_owner,
    proc_cmdline,
    read_pidfile,
    terminate,
    wait_until,
)

__all__ = ["LOOPBACK", "LocalService", "ServiceStatus", "SpawnedService"]


@dataclass(frozen=True)
class ServiceStatus:
    """What `lakehouse services status` shows for one service."""

    name: str
    running: bool
    pid: int | None
    address: str
    detail: str

    def as_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "running": self.running,
            "pid": self.pid,
            "address": self.address,
            "detail": self.detail,
        }


class LocalService(ABC):
    """A service of the local run: start, stop and status are idempotent."""

    name: str

    @abstractmethod
    def start(self, timeout: float = 60) -> ServiceStatus: ...

    @abstractmethod
    def stop(self, timeout: float | None = None) -> ServiceStatus: ...

    @abstractmethod
    def status(self) -> ServiceStatus: ...


class SpawnedService(LocalService):
    """A local service that is one process started by this project and known by its pidfile."""

    base: Path
    port: int
    # the setting that moves `port`, named in the "port is busy" message
    port_setting: str = ""
    # seconds SIGTERM gets before SIGKILL on stop
    stop_timeout: float = 20

    # -- what a subclass provides ---------------------------------------------------------------
    @property
    @abstractmethod
    def pidfile(self) -> Path: ...

    @property
    @abstractmethod
    def log_path(self) -> Path: ...

    @abstractmethod
    def command(self) -> list[str]:
        """The process to run (resolving binaries may raise ServiceError with the fix)."""

    @abstractmethod
    def is_ours(self, cmdline: list[str]) -> bool:
        """Whether a live process with our recorded pid is really this service (pids are reused)."""

    @abstractmethod
    def ready(self) -> str | None:
        """None once the service answers; otherwise why not yet (shown if start times out)."""

    def environment(self) -> dict[str, str]:
        return dict(os.environ)

    def prepare(self) -> None:
        """Before launch: folders, configuration, credentials."""
        self.base.mkdir(parents=True, exist_ok=True)

    def after_start(self, timeout: float) -> None:
        """Once ready, and on every start of a running service: buckets, topics."""

    def detail(self) -> str:
        return f"log {self.log_path}"

    def ports(self) -> list[int]:
        """Every port the service listens on that must be free before it starts."""
        return [self.port]

    def failure_line(self) -> str:
        """The most telling line of the log after the process died at start."""
        return log_tail(self.log_path, 1)

    def running_ports(self, cmdline: list[str]) -> list[int]:
        """The ports a running instance holds (it may have been started with other settings)."""
        return [self.serving_port(cmdline) or self.port]

    def endpoints_match(self, running: ServiceStatus) -> bool:
        """Whether a running instance serves where the settings say."""
        return running.address == f"{LOOPBACK}:{self.port}"

    def serving_port(self, cmdline: list[str]) -> int | None:
        """The port a running process really serves on, read from its command line."""
        return None

    # -- state ----------------------------------------------------------------------------------
    def our_pid(self) -> int | None:
        pid = read_pidfile(self.pidfile)
        if pid is None or not pid_alive(pid):
            return None
        cmd = proc_cmdline(pid)
        if cmd and not self.is_ours(cmd):
            return None  # the pid now belongs to something else: the pidfile is stale
        return pid

    def status(self) -> ServiceStatus:
        pid = self.our_pid()
        port = self.port
        if pid is not None:
            port = self.serving_port(proc_cmdline(pid)) or port
        detail = self.detail()
        if pid is None and self.pidfile.exists():
            detail += f" (stale {self.pidfile.name})"
        return ServiceStatus(self.name, pid is not None, pid, f"{LOOPBACK}:{port}", detail)

    # -- lifecycle ------------------------------------------------------------------------------
    def start(self, timeout: float = 60) -> ServiceStatus:
        """Start the service and wait until it answers. No-op (but `after_start`) if running."""
        current = self.status()
        if current.running:
            if not self.endpoints_match(current):
                raise ServiceError(
                    f"{self.name} is already running on {current.address} but settings say port "
                    f"{self.port}: run `lakehouse services stop` first"
                )
            self.after_start(timeout=15)
            return current
        self.pidfile.unlink(missing_ok=True)  # stale: not alive, or not ours
        hint = f"set {self.port_setting} to a free port" if self.port_setting else "choose another port"
        for port in self.ports():
            if port_in_use(port):
                raise ServiceError(f"port {LOOPBACK}:{port} is busy ({port_owner(port)}): stop it or {hint}")
        self.prepare()
        cmd = self.command()
        with open(self.log_path, "ab") as log:
            log.write(f"\n=== {dt.datetime.now(dt.UTC).isoformat()} starting: {' '.join(cmd)}\n".encode())
            log.flush()
            proc = subprocess.Popen(
                cmd,
                cwd=self.base,
                env=self.environment(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # outlives the CLI; stopped by pid
            )
        self.pidfile.write_text(f"{proc.pid}\n")
        self._proc: subprocess.Popen[bytes] | None = proc
        try:
            self._wait_ready(proc, timeout)
            deadline = time.monotonic() + timeout
            self.after_start(timeout=max(5.0, deadline - time.monotonic()))
        except BaseException:
            if proc.poll() is None:
                terminate(proc.pid)
            proc.wait()
            self.after_stop(clean=False)
            self.pidfile.unlink(missing_ok=True)
            raise
        finally:
            self._proc = None
        return self.status()

    def exited(self) -> None:
        """Raise ServiceError with the last log line if the process being started has died
        (for `after_start` loops, which would otherwise wait out their timeout)."""
        proc = getattr(self, "_proc", None)
        if proc is not None and proc.poll() is not None:
            raise ServiceError(
                f"{self.name} exited with code {proc.returncode} at start: {self.failure_line()} "
                f"(log: {self.log_path})"
            )

    def _wait_ready(self, proc: subprocess.Popen[bytes], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        why: str | None = "no answer"
        while time.monotonic() < deadline:
            self.exited()
            why = self.ready()
            if why is None:
                return
            time.sleep(0.1)
        raise ServiceError(
            f"{self.name} on {LOOPBACK}:{self.port} not ready after {timeout:.0f}s ({why}); log: {self.log_path}"
        )

    def stop(self, timeout: float | None = None) -> ServiceStatus:
        """SIGTERM the recorded pid (only that pid), SIGKILL if it lingers. No-op if not running."""
        pid = self.our_pid()
        if pid is not None:
            ports = self.running_ports(proc_cmdline(pid))
            clean = terminate(pid, self.stop_timeout if timeout is None else timeout)
            with contextlib.suppress(ChildProcessError):  # reap it if it is our child (tests)
                os.waitpid(pid, 0)
            # a killed multi-threaded process shows as a zombie before its sockets are closed
            for port in ports:
                wait_until(partial(_closed, port), 10)
            self.after_stop(clean=clean)
        self.pidfile.unlink(missing_ok=True)
        return self.status()

    def after_stop(self, *, clean: bool) -> None:
        """Clean-up once the process is gone; `clean` when it exited on SIGTERM."""

    def kill(self) -> None:
        """SIGKILL the service (crash tests): no graceful shutdown at all."""
        pid = self.our_pid()
        if pid is None:
            return
        os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)
        wait_until(lambda: not pid_alive(pid), 10)
        for port in self.ports():
            wait_until(partial(_closed, port), 10)
        self.after_stop(clean=False)
        self.pidfile.unlink(missing_ok=True)


def _closed(port: int) -> bool:
    return not listening(port)
