"""A local Apache Kafka broker: KRaft, one node that is broker and controller, from the `kafka`
jar bundle (`make jars-kafka`) on the machine's Java 17.

    java -cp '<cache>/kafka/*' kafka.Kafka <state>/apache-kafka/server.properties

Every listener is bound to 127.0.0.1 only:

* PLAINTEXT on `port` (settings.streaming.broker_port): local clients, the admin calls below and
  the broker's own inter-broker traffic;
* SASL_SSL on `sasl_port` when it is set: SCRAM-SHA-512 over TLS, with a throwaway CA and broker
  key made by the openssl tool on first use. Clients trust `ca_path`; `client_config(sasl=True)`
  gives confluent-kafka everything it needs.
* CONTROLLER on a port chosen once and kept in the state dir.

The storage is formatted once by Kafka's storage tool (with the SCRAM user when SASL is on), so
the topic and its records survive restarts. On start the topic settings.streaming.topic is created
with settings.streaming.partitions partitions if it does not exist.

Layout of the state dir (`<state>/apache-kafka`):

    server.properties, log4j2.properties   written at every start
    data/                                  log dirs and KRaft metadata
    broker.pid, broker.log                 the broker this project started, and its output
    controller.port                        the controller listener's port
    credentials.json                       SCRAM user and password (0600)
    tls/ca.pem, tls/broker.pem             CA certificate for clients, the broker's PEM keystore (0600)
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import os
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lakehouse.core.errors import ServiceError
from lakehouse.core.jvm import class_archive, find_java, load_bundle
from lakehouse.core.settings import Settings
from lakehouse.services import kafka_admin
from lakehouse.services.apache_kafka_files import (
    LOG4J2,
    SCRAM_MECHANISM,
    failure_line,
    properties_value,
    server_properties,
)
from lakehouse.services.base import LOOPBACK, ServiceStatus, SpawnedService
from lakehouse.services.kafka_tls import BrokerSecrets
from lakehouse.services.process import free_port, listening, port_in_use, write_private

MAIN_CLASS = "kafka.Kafka"


def new_cluster_id() -> str:
    """A random KRaft cluster id (a UUID in URL-safe base64, as Kafka writes them). One in 64 of
    those starts with "-", which Kafka's storage tool reads as an option ("--cluster-id: expected
    one argument"); Kafka's own Uuid.randomUuid draws again in that case, and so does this."""
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id


@dataclass
class ApacheKafka(SpawnedService):
    """Start/stop/status of the project's own Apache Kafka broker. All methods are idempotent."""

    base: Path
    port: int
    topic: str
    partitions: int
    sasl_port: int | None = None
    user: str = "lakehouse"
    heap_mb: int = 512
    extra_properties: dict[str, str] = field(default_factory=dict)
    name: str = "apache-kafka"
    port_setting: str = "streaming.broker_port"
    stop_timeout: float = 30  # Kafka's controlled shutdown

    @classmethod
    def from_settings(cls, settings: Settings, *, sasl_port: int | None = None) -> ApacheKafka:
        s = settings.streaming
        return cls(
            base=settings.state_path / "apache-kafka",
            port=s.broker_port,
            topic=s.topic,
            partitions=s.partitions,
            sasl_port=sasl_port,
        )

    # -- paths and client settings -------------------------------------------------------------
    @property
    def bootstrap(self) -> str:
        return f"{LOOPBACK}:{self.port}"

    @property
    def sasl_bootstrap(self) -> str:
        if self.sasl_port is None:
            raise ServiceError("this Apache Kafka broker has no SASL_SSL listener (sasl_port is not set)")
        return f"{LOOPBACK}:{self.sasl_port}"

    @property
    def pidfile(self) -> Path:
        return self.base / "broker.pid"

    @property
    def log_path(self) -> Path:
        return self.base / "broker.log"

    @property
    def config_path(self) -> Path:
        return self.base / "server.properties"

    @property
    def data_dir(self) -> Path:
        return self.base / "data"

    @property
    def secrets(self) -> BrokerSecrets:
        return BrokerSecrets(self.base, self.user)

    @property
    def ca_path(self) -> Path:
        return self.secrets.ca_path

    def credentials(self) -> dict[str, str]:
        """{"username", "password"} of the SCRAM user (made on the first SASL start)."""
        return self.secrets.credentials()

    def client_config(self, *, sasl: bool = False) -> dict[str, Any]:
        """confluent-kafka settings for this broker: PLAINTEXT, or SCRAM-SHA-512 over TLS."""
        if not sasl:
            return {"bootstrap.servers": self.bootstrap}
        creds = self.credentials()
        return {
            "bootstrap.servers": self.sasl_bootstrap,
            "security.protocol": "SASL_SSL",
            "sasl.mechanism": SCRAM_MECHANISM,
            "sasl.username": creds["username"],
            "sasl.password": creds["password"],
            "ssl.ca.location": str(self.ca_path),
        }

    def java_client_properties(self, *, sasl: bool = False) -> str:
        """The same settings for a Java client (Kafka's command-line tools: --command-config)."""
        if not sasl:
            return ""
        creds = self.credentials()
        jaas = (
            "org.apache.kafka.common.security.scram.ScramLoginModule required "
            f'username="{creds["username"]}" password="{creds["password"]}";'
        )
        return (
            "security.protocol=SASL_SSL\n"
            f"sasl.mechanism={SCRAM_MECHANISM}\n"
            f"sasl.jaas.config={properties_value(jaas)}\n"
            "ssl.truststore.type=PEM\n"
            f"ssl.truststore.location={properties_value(str(self.ca_path))}\n"
        )

    def tool(self, main_class: str, *args: str) -> list[str]:
        """The command line of one of Kafka's tools from the bundle, e.g.
        tool("org.apache.kafka.tools.TopicCommand", "--bootstrap-server", b, "--list")."""
        java = find_java()
        bundle = load_bundle("kafka")
        # short-lived: the C1 compiler alone and the serial GC halve a tool's start on two cores
        quick = ["-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC", "-Xmx256m"]
        return [str(java.executable), *quick, "-cp", str(bundle.folder / "*"), main_class, *args]

    # -- the process ------------------------------------------------------------------------
    def is_ours(self, cmdline: list[str]) -> bool:
        return MAIN_CLASS in cmdline and str(self.config_path) in cmdline

    def _running_ports(self) -> tuple[int | None, int | None]:
        ports: dict[str, int] = {}
        with contextlib.suppress(OSError):
            for line in self.config_path.read_text().splitlines():
                if line.startswith("listeners="):
                    for item in line.split("=", 1)[1].split(","):
                        name, _, rest = item.partition("://")
                        ports[name] = int(rest.rsplit(":", 1)[1])
        return ports.get("PLAINTEXT"), ports.get("SASL_SSL")

    def serving_port(self, cmdline: list[str]) -> int | None:
        return self._running_ports()[0]

    def endpoints_match(self, running: ServiceStatus) -> bool:
        return self._running_ports() == (self.port, self.sasl_port)

    def ports(self) -> list[int]:
        return [p for p in (self.port, self.sasl_port) if p is not None]

    def running_ports(self, cmdline: list[str]) -> list[int]:
        return [p for p in self._running_ports() if p is not None]

    def detail(self) -> str:
        sasl = self._running_ports()[1] if self.our_pid() else self.sasl_port
        text = f"Apache Kafka (KRaft), topic {self.topic} x{self.partitions}"
        if sasl:
            text += f", SASL_SSL {SCRAM_MECHANISM} on {LOOPBACK}:{sasl} (CA {self.ca_path})"
        return text + f", log {self.log_path}"

    def failure_line(self) -> str:
        return failure_line(self.log_path)

    def prepare(self) -> None:
        """The TLS material and SCRAM user, the configuration, and the storage formatted once."""
        self.base.mkdir(parents=True, exist_ok=True)
        if self.sasl_port is not None:
            self.secrets.ensure_tls()
        self._write_config(self._controller_port())
        if not (self.data_dir / "meta.properties").exists():
            self._format()

    def command(self) -> list[str]:
        java = find_java()
        bundle = load_bundle("kafka")
        return [
            str(java.executable),
            *self._class_sharing(class_archive(bundle, java)),
            f"-Xmx{self.heap_mb}m",
            f"-Xms{min(self.heap_mb, 128)}m",
            "-XX:+UseG1GC",
            "-XX:MaxGCPauseMillis=20",
            "-XX:+ExitOnOutOfMemoryError",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={self.base / 'log4j2.properties'}",
            f"-Dkafka.logs.dir={self.base / 'logs'}",
            "-cp",
            str(bundle.folder / "*"),
            MAIN_CLASS,
            str(self.config_path),
        ]

    def ready(self) -> str | None:
        down = [p for p in self.ports() if not listening(p)]
        return f"not listening on {', '.join(f'{LOOPBACK}:{p}' for p in down)}" if down else None

    def after_start(self, timeout: float) -> None:
        self._ensure_scram_user()
        self.ensure_topic(timeout=max(10.0, timeout))

    def after_stop(self, *, clean: bool) -> None:
        self._finish_class_sharing(keep=clean)

    def start(self, timeout: float = 90) -> ServiceStatus:
        """Format the storage if new, start the broker, wait for its listeners, create the topic.
        No-op (topic still ensured) if it is already running on the same ports."""
        return super().start(timeout)

    # -- class-data sharing --------------------------------------------------------------------
    # Most of a broker's start is loading and verifying some 9,000 classes. The first broker that
    # stops cleanly leaves an AppCDS archive of them (written by the JVM at exit, to a name of its
    # own, moved into place only after a clean exit); every later start maps it instead. A stale
    # or damaged archive is refused by the JVM with a warning, and the broker starts without it.
    @property
    def _pending_archive(self) -> Path:
        return self.base / "cds.pending"

    def _class_sharing(self, archive: Path) -> list[str]:
        if archive.is_file():
            return [f"-XX:SharedArchiveFile={archive}", "-Xshare:auto"]
        archive.parent.mkdir(parents=True, exist_ok=True)
        partial = archive.with_name(f"{archive.name}.{uuid.uuid4().hex[:8]}.partial")
        self._pending_archive.write_text(f"{partial}\n{archive}\n")
        return [f"-XX:ArchiveClassesAtExit={partial}"]

    def _finish_class_sharing(self, *, keep: bool) -> None:
        try:
            partial, archive = (Path(p) for p in self._pending_archive.read_text().split())
        except (OSError, ValueError):
            return
        self._pending_archive.unlink(missing_ok=True)
        if keep and partial.is_file() and partial.stat().st_size > 0 and not archive.exists():
            os.replace(partial, archive)
        partial.unlink(missing_ok=True)

    # -- topic and users -----------------------------------------------------------------------
    def ensure_topic(self, timeout: float = 30) -> None:
        """Create the topic unless it exists (any partition count kept)."""
        kafka_admin.ensure_topic(
            self.bootstrap, self.topic, self.partitions, self.log_path, timeout, check=self.exited
        )

    def _ensure_scram_user(self) -> None:
        """Make the stored SCRAM credential the broker's (a store formatted without SASL gets it now)."""
        if self.sasl_port is None:
            return
        from confluent_kafka.admin import (
            AdminClient,
            ScramCredentialInfo,
            ScramMechanism,
            UserScramCredentialUpsertion,
        )

        creds = self.credentials()
        admin = AdminClient({"bootstrap.servers": self.bootstrap, "socket.timeout.ms": 5000})
        upsert = UserScramCredentialUpsertion(
            creds["username"],
            ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 8192),
            creds["password"].encode(),
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                admin.alter_user_scram_credentials([upsert])[creds["username"]].result(timeout=15)
                return
            except Exception as exc:  # KafkaException while the controller settles
                if time.monotonic() > deadline:
                    raise ServiceError(
                        f"cannot set the SCRAM credential of {creds['username']!r} on {self.bootstrap}: {exc}"
                    ) from None
                time.sleep(0.3)

    def _controller_port(self) -> int:
        path = self.base / "controller.port"
        with contextlib.suppress(OSError, ValueError):
            port = int(path.read_text().strip())
            if not port_in_use(port):
                return port
        port = free_port({self.port, *([self.sasl_port] if self.sasl_port else [])})
        path.write_text(f"{port}\n")
        return port

    def _write_config(self, controller_port: int) -> None:
        keystore = None
        if self.sasl_port is not None:
            self.secrets.scram(create=True)
            keystore = self.secrets.keystore_path
        text = server_properties(
            port=self.port,
            controller_port=controller_port,
            sasl_port=self.sasl_port,
            data_dir=self.data_dir,
            partitions=self.partitions,
            keystore=keystore,
            extra=self.extra_properties,
        )
        write_private(self.config_path, text)
        (self.base / "log4j2.properties").write_text(LOG4J2)

    def _format(self) -> None:
        cluster_id = new_cluster_id()
        cmd = [
            str(find_java().executable),
            "-Xmx256m",
            f"-Dlog4j2.configurationFile={self.base / 'log4j2.properties'}",
            "-cp",
            str(load_bundle("kafka").folder / "*"),
            "kafka.tools.StorageTool",
            "format",
            "--config",
            str(self.config_path),
            "--cluster-id",
            cluster_id,
        ]
        if self.sasl_port is not None:
            creds = self.credentials()
            cmd += [
                "--add-scram",
                f"{SCRAM_MECHANISM}=[name={creds['username']},password={creds['password']}]",
            ]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=180, check=False)
        with open(self.log_path, "a") as log:
            log.write(f"\n=== {dt.datetime.now(dt.UTC).isoformat()} storage format (cluster {cluster_id})\n")
            log.write(proc.stdout + proc.stderr)
        if proc.returncode != 0:
            raise ServiceError(
                f"Kafka's storage tool could not format {self.data_dir}: {failure_line(self.log_path)} "
                f"(log: {self.log_path})"
            )
