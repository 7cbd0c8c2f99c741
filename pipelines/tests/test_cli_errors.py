"""Bad invocations of the real `lakehouse` executable: each one is a single line on stderr that
names the cause, a non-zero exit, and no traceback (only `--debug` shows one).

The invocations run in parallel against one small lake (a few Delta tables), a state folder of
their own, and ports where nothing listens (a stopped broker, a stopped PostgreSQL)."""

from __future__ import annotations

import os
import random
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, NamedTuple

import pyarrow as pa
import pytest
import yaml

from lakehouse.core import delta
from lakehouse.core.kafka import BrokerUnavailable, check_broker
from lakehouse.core.settings import StreamingSettings
from lakehouse.core.storage import Lake

REPO = Path(__file__).resolve().parents[2]
LAKEHOUSE = Path(sys.executable).parent / "lakehouse"


class Case(NamedTuple):
    args: list[str]
    expect: str  # a part of the error line
    env: dict[str, str | None] | None = None  # None as a value: unset that variable
    code: int = 2  # 2: could not do its work; 75: not now (a service down, a lock): worth a retry


def _port_below_ephemeral() -> int:
    """A free port below 32768 (outside the ephemeral range, so no warning is printed for it)."""
    for _ in range(200):
        port = random.randint(20000, 32000)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port
    raise RuntimeError("no free port below 32768")


CASES: list[Case] = [
    # table names: layer, did you mean, existence
    Case(["maintain", "history", "events"], "did you mean bronze.events or silver.events?"),
    Case(["maintain", "history", "silver.evnts"], "did you mean silver.events"),
    Case(["maintain", "history", "sliver.events"], "unknown layer 'sliver'"),
    Case(["maintain", "history"], "name exactly one table"),
    Case(["maintain", "history", "silver.events", "--limit", "0"], "'--limit'"),
    Case(["maintain", "optimize", "orders"], "did you mean silver.orders?"),
    Case(["maintain", "checkpoint", "--table", "gold.nope"], "no table gold.nope"),
    Case(["maintain", "vacuum", "--retention-hours", "-1"], "'--retention-hours'"),
    Case(
        ["maintain", "vacuum", "silver.events", "--retention-hours", "0"], "enforce_retention_duration=false"
    ),
    Case(["maintain", "restore", "silver.events"], "exactly one of --version or --timestamp"),
    Case(["maintain", "restore", "silver.events", "--version", "99"], "has versions 0..1"),
    Case(["maintain", "restore", "silver.events", "--version", "-1"], "'--version'"),
    Case(
        ["maintain", "restore", "silver.events", "--timestamp", "2001-01-01"], "did not exist at 2001-01-01"
    ),
    Case(["maintain", "restore", "silver.events", "--timestamp", "yesterday"], "'--timestamp'"),
    Case(["maintain", "backfill", "--from", "2026-01-02", "--to", "2026-01-01"], "backfill range is empty"),
    Case(["maintain", "backfill", "--from", "01/02/2026", "--to", "2026-01-03"], "'--from'"),
    # other arguments
    Case(["generate", "changes", "--batch", "0"], "'--batch'"),
    Case(["generate", "changes", "--batch", "two"], "'--batch'"),
    Case(["generate", "changes"], "Missing option '--batch'"),
    Case(["bronze", "--source", "kafka"], "`lakehouse stream consume`"),
    Case(["check", "platinum"], "'platinum' is not one of bronze, silver, gold"),
    Case(["reconcile", "--last", "0"], "'--last'"),
    Case(["tabels"], "No such command 'tabels'"),
    Case(["tables", "--nope"], "No such option: --nope"),
    Case(["--set", "generator.events=5", "tables"], "options follow the command"),
    # settings: where the value came from, did you mean
    Case(["tables", "--set", "generator.evnts=5"], "did you mean 'generator.events'?"),
    Case(["tables", "--set", "postgres.port=80"], "(from --set postgres.port=80): must be at least 1024"),
    Case(["tables", "--set", "novalue"], "--set needs key=value"),
    Case(["tables"], "from environment variable LAKEHOUSE_PG_PORT", {"LAKEHOUSE_PG_PORT": "80"}),
    Case(
        ["tables"],
        "from environment variable LAKEHOUSE_EVENTS): must be a whole number",
        {"LAKEHOUSE_EVENTS": "many"},
    ),
    Case(["tables", "--env", "prdo"], "environment 'prdo'", {"LAKEHOUSE_CONFIG": None}),
    # the lake
    Case(
        ["tables"],
        "lake root /nonexistent/dir/lake does not exist",
        {"LAKEHOUSE_LAKE_ROOT": "/nonexistent/dir/lake"},
    ),
    Case(["bronze", "--files"], "does not exist", {"LAKEHOUSE_LAKE_ROOT": "/nonexistent/dir/lake"}),
    Case(["tables"], "only local folders and s3:// URIs", {"LAKEHOUSE_LAKE_ROOT": "gs://bucket/x"}),
    # services that are not running
    Case(["stream", "consume", "--available-now"], "broker not running at 127.0.0.1:", code=75),
    Case(["stream", "produce", "--count", "5"], "broker not running at 127.0.0.1:", code=75),
    Case(["gold", "kpis"], "not reachable", code=75),
    Case(["generate", "changes", "--batch", "1"], "PostgreSQL not reachable", code=75),
]


@pytest.fixture(scope="module")
def cli_env(settings_factory: Any, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Environment of every invocation: its own config (free ports nothing listens on) and a lake
    with bronze.events, silver.events (two versions) and silver.orders."""
    settings = settings_factory(fresh_state=True)
    lake = Lake(settings)
    for name in ("bronze.events", "silver.events", "silver.events", "silver.orders"):
        delta.append(lake, name, pa.table({"k": [1, 2, 3]}))
    config = yaml.safe_load((REPO / "environments" / "local" / "pipeline.yaml").read_text())
    config["postgres"]["port"] = _port_below_ephemeral()
    config["streaming"]["broker_port"] = _port_below_ephemeral()
    config["seaweedfs"]["port"] = _port_below_ephemeral()
    config["lake_root"] = settings.lake_uri
    config["state_dir"] = str(settings.state_path)
    path = tmp_path_factory.mktemp("cli") / "pipeline.yaml"
    path.write_text(yaml.safe_dump(config))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LAKEHOUSE_", "AWS_", "COLUMNS"))}
    env.update(LAKEHOUSE_CONFIG=str(path), LAKEHOUSE_ROOT=str(REPO))
    return env


class Outcome(NamedTuple):
    code: int
    stdout: str
    stderr: str
    seconds: float


def _run(args: list[str], env: dict[str, str]) -> Outcome:
    start = time.monotonic()
    proc = subprocess.run(
        [str(LAKEHOUSE), *args], env=env, cwd=REPO, capture_output=True, text=True, timeout=120
    )
    return Outcome(proc.returncode, proc.stdout, proc.stderr, time.monotonic() - start)


def _env(base: dict[str, str], extra: dict[str, str | None] | None) -> dict[str, str]:
    env = dict(base)
    for key, value in (extra or {}).items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env


@pytest.fixture(scope="module")
def outcomes(cli_env: dict[str, str]) -> Iterator[list[Outcome]]:
    with ThreadPoolExecutor(max_workers=4) as pool:
        yield list(pool.map(lambda c: _run(c.args, _env(cli_env, c.env)), CASES))


def test_there_are_at_least_30_bad_invocations() -> None:
    assert len(CASES) >= 30


@pytest.mark.parametrize(
    "index", range(len(CASES)), ids=[" ".join(c.args) + (" [env]" if c.env else "") for c in CASES]
)
def test_a_bad_invocation_is_one_line(outcomes: list[Outcome], index: int) -> None:
    case, out = CASES[index], outcomes[index]
    lines = [ln for ln in out.stderr.splitlines() if ln.strip()]
    assert out.code == case.code, f"exit {out.code} for {case.args}: {out.stdout}{out.stderr}"
    assert "Traceback" not in out.stdout + out.stderr
    assert len(lines) == 1, f"expected one line on stderr, got:\n{out.stderr}"
    assert lines[0].startswith("error: "), lines[0]
    assert case.expect in lines[0], lines[0]
    assert not out.stdout.strip(), f"stdout should be empty, got:\n{out.stdout}"


def test_a_step_another_run_holds_exits_75_in_one_line(cli_env: dict[str, str]) -> None:
    """A second run of a step while the first holds its lock: a transient failure (exit 75, which
    the DAGs retry with backoff), said in one line; once the lock is free the lock is no obstacle."""
    import fcntl

    config = yaml.safe_load(Path(cli_env["LAKEHOUSE_CONFIG"]).read_text())
    lock = Path(config["state_dir"]) / "locks" / "silver.lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    with lock.open("w") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        out = _run(["silver"], cli_env)
    lines = [ln for ln in out.stderr.splitlines() if ln.strip()]
    assert out.code == 75, out
    assert len(lines) == 1 and "another 'silver' run holds" in lines[0], out.stderr
    free = _run(["silver"], cli_env)
    assert "another 'silver' run holds" not in free.stderr, free.stderr


def test_a_stopped_broker_is_detected_within_5_seconds() -> None:
    """The check every Kafka command makes first: refused at once for a stopped local broker,
    at most CHECK_SECONDS for a host that does not answer at all."""
    port = _port_below_ephemeral()
    for servers in (f"127.0.0.1:{port}", f"127.0.0.1:{port},127.0.0.1:{port + 1}"):
        streaming = StreamingSettings(bootstrap=servers)
        with pytest.raises(BrokerUnavailable, match=f"broker not running at {servers}"):
            check_broker(streaming)
    local = StreamingSettings(broker_port=port)
    with pytest.raises(BrokerUnavailable, match="lakehouse stream broker start"):
        check_broker(local)
    # a socket that accepts: the check passes
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))
        sock.listen()
        check_broker(local)


def test_a_broker_that_never_answers_is_given_up_on_after_the_check_timeout() -> None:
    """A host that drops the connection attempt (no refusal) is given up on after the check's
    timeout, not after librdkafka's minutes of retries. A listener whose accept queue is full
    drops further SYNs, which is what an unreachable host looks like to the client."""
    from lakehouse.core.kafka import CHECK_SECONDS

    assert CHECK_SECONDS <= 5
    port = _port_below_ephemeral()
    with socket.socket() as server:
        server.bind(("127.0.0.1", port))
        server.listen(0)
        queued = []
        try:
            for _ in range(4):  # fill the accept queue; connect_ex never blocks on a non-blocking socket
                client = socket.socket()
                client.setblocking(False)
                client.connect_ex(("127.0.0.1", port))
                queued.append(client)
            time.sleep(0.2)
            with pytest.raises(
                BrokerUnavailable, match=f"broker not running at 127.0.0.1:{port} \\(timed out\\)"
            ):
                check_broker(StreamingSettings(bootstrap=f"127.0.0.1:{port}"), timeout=1.0)
        finally:
            for client in queued:
                client.close()


def test_debug_shows_the_traceback(cli_env: dict[str, str]) -> None:
    out = _run(["--debug", "maintain", "history", "silver.evnts"], cli_env)
    assert out.code == 2
    assert "Traceback" in out.stderr
    assert out.stderr.strip().splitlines()[-1].startswith("error: ")


def test_a_busy_port_at_services_start_is_one_line(cli_env: dict[str, str]) -> None:
    port = _port_below_ephemeral()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))
        sock.listen()
        out = _run(["services", "start", "--set", f"postgres.port={port}"], cli_env)
    assert out.code == 2
    lines = [ln for ln in out.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and f"port 127.0.0.1:{port} is busy" in lines[0], out.stderr
    assert "Traceback" not in out.stdout + out.stderr


@pytest.mark.slow
@pytest.mark.s3
def test_an_s3_bucket_that_does_not_exist_is_one_line(cli_env: dict[str, str], s3_service: Any) -> None:
    _, creds = s3_service
    env = _env(
        cli_env,
        {
            "LAKEHOUSE_LAKE_ROOT": "s3://nosuchbucket/dev",
            "AWS_ACCESS_KEY_ID": creds.access_key,
            "AWS_SECRET_ACCESS_KEY": creds.secret_key,
            "AWS_ENDPOINT_URL": creds.endpoint,
        },
    )
    for args in (["tables"], ["bronze", "--source", "events"]):
        out = _run(args, env)
        lines = [ln for ln in out.stderr.splitlines() if ln.strip()]
        assert out.code == 2 and len(lines) == 1, out.stderr
        assert "S3 bucket 'nosuchbucket'" in lines[0] and "does not exist" in lines[0], lines[0]
        assert "Traceback" not in out.stdout + out.stderr
