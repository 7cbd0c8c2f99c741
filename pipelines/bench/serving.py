"""Serving benchmark: latency (p50/p95/p99) and requests/s of `lakehouse serve` reading a gold mart,
uncached (a full read: version, rows, JSON) and cached (If-None-Match with the current ETag: 304),
at 1, 8 and 32 concurrent clients.

Setup (not timed): `lakehouse demo` (--events, small by default) on its own ports and state folder
under <repo>/.state/bench/serve/ (kept: a second run reuses it), an API token, and `lakehouse serve`
on a free loopback port. Load: wrk (Debian), one connection per client, --duration seconds per
cell after a warm-up; a Lua `done` hook prints wrk's own percentiles. Every response must be a 200
(uncached) or a 304 (cached): any other status or socket error fails the bench.

The natural peer, PostgREST over the same schema, cannot be installed on this machine (see the
README): the figures are measured against the goals instead (p95 <= 50 ms uncached, <= 5 ms on a 304).

    python -m bench.serving [--events 20000] [--duration 10] [--workers 1] [--fresh]

Results: a table on the console, <repo>/.state/bench/serve.md and serve.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import yaml

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
OUT = ROOT / ".state" / "bench"
GOALS = {"uncached_p95_ms": 50.0, "cached_p95_ms": 5.0}
CLIENTS = (1, 8, 32)
MART = "gold.agg_kpis_per_minute"
QUERY = "limit=100&order=-window_start"
LUA = r"""
local etag = os.getenv("BENCH_ETAG")
local token = os.getenv("BENCH_TOKEN")
wrk.headers["Authorization"] = "Bearer " .. token
if etag and etag ~= "" then wrk.headers["If-None-Match"] = etag end
local bad = 0
local want = tonumber(os.getenv("BENCH_STATUS"))
response = function(status, headers, body)
  if status ~= want then bad = bad + 1 end
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH {"requests": %d, "seconds": %.3f, "p50_us": %d, "p95_us": %d, "p99_us": %d, "max_us": %d, '
    .. '"socket_errors": %d, "unexpected_status": %d}\n',
    summary.requests, summary.duration / 1e6, latency:percentile(50), latency:percentile(95),
    latency:percentile(99), latency.max, e.connect + e.read + e.write + e.timeout, bad))
end
"""


def _free_ports(n: int) -> list[int]:
    from lakehouse.services.process import free_port

    ports: set[int] = set()
    out = []
    for _ in range(n):
        ports.add(p := free_port(ports))
        out.append(p)
    return out


def _setup(base: Path, events: int, fresh: bool) -> tuple[dict[str, str], dict[str, Any]]:
    """A demo's lake and serving database under `base` (reused when it is already there)."""
    if fresh and base.exists():
        _lakehouse({"LAKEHOUSE_CONFIG": str(base / "pipeline.yaml")}, "services", "stop", check=False)
        shutil.rmtree(base)
    path = base / "pipeline.yaml"
    if path.exists():
        config = yaml.safe_load(path.read_text())
    else:
        base.mkdir(parents=True, exist_ok=True)
        config = yaml.safe_load((ROOT / "environments" / "local" / "pipeline.yaml").read_text())
        pg, broker, metrics, seaweed, api = _free_ports(5)
        config["postgres"]["port"], config["seaweedfs"]["port"] = pg, seaweed
        config["streaming"].update({"broker_port": broker, "metrics_port": metrics})
        config.setdefault("serving", {})["port"] = api
        config["lake_root"], config["state_dir"] = str(base / "lake"), str(base / "state")
        config["generator"].update({"events": events, "event_files": 4, "days": 7})
        path.write_text(yaml.safe_dump(config))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LAKEHOUSE_", "AWS_"))}
    env |= {"LAKEHOUSE_CONFIG": str(path), "LAKEHOUSE_ROOT": str(ROOT)}
    if not (base / "demo.done").exists():
        print(f"==> lakehouse demo ({config['generator']['events']:,} events) into {base}", flush=True)
        _lakehouse(env, "demo")
        (base / "demo.done").write_text("ok\n")
    else:
        _lakehouse(env, "services", "start")
    return env, config


def _lakehouse(env: dict[str, str], *args: str, check: bool = True) -> str:
    full = {**os.environ, **env} if "PATH" not in env else env
    proc = subprocess.run(
        [str(BIN / "lakehouse"), *args], env=full, capture_output=True, text=True, check=False
    )
    if check and proc.returncode != 0:
        sys.exit(f"bench: `lakehouse {' '.join(args)}` failed: {(proc.stdout + proc.stderr).strip()[-1500:]}")
    return proc.stdout


def _serve(env: dict[str, str], port: int, workers: int, log: Path) -> subprocess.Popen[bytes]:
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [str(BIN / "lakehouse"), "serve", "--port", str(port), "--workers", str(workers)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"bench: lakehouse serve exited: {log.read_text()[-1500:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    os.killpg(proc.pid, signal.SIGTERM)
    sys.exit("bench: lakehouse serve did not answer within 60 s")


def _cpu_seconds(pids: list[int]) -> float:
    """User + system CPU seconds of these processes and their children (psutil)."""
    import psutil

    total = 0.0
    for pid in pids:
        try:
            root = psutil.Process(pid)
            procs = [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            continue
        for proc in procs:
            try:
                t = proc.cpu_times()
                total += t.user + t.system
            except psutil.NoSuchProcess:
                pass
    return total


def _postmaster(config: dict[str, Any]) -> int:
    pid_file = Path(config["state_dir"]) / "postgres" / "data" / "postmaster.pid"
    return int(pid_file.read_text().split()[0])


def _wrk(url: str, clients: int, seconds: int, token: str, etag: str | None, script: Path) -> dict[str, Any]:
    env = {
        **os.environ,
        "BENCH_TOKEN": token,
        "BENCH_ETAG": etag or "",
        "BENCH_STATUS": "304" if etag else "200",
    }
    threads = min(clients, 2)
    cmd = [
        "wrk",
        "-t",
        str(threads),
        "-c",
        str(clients),
        "-d",
        f"{seconds}s",
        "--timeout",
        "10s",
        "-s",
        str(script),
        url,
    ]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False, timeout=seconds + 60)
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("BENCH ")), None)
    if proc.returncode != 0 or line is None:
        sys.exit(f"bench: wrk failed: {(proc.stdout + proc.stderr).strip()[-1500:]}")
    r: dict[str, Any] = json.loads(line[len("BENCH ") :])
    if r["socket_errors"] or r["unexpected_status"]:
        sys.exit(
            f"bench: {r['socket_errors']} socket errors, {r['unexpected_status']} unexpected statuses: {r}"
        )
    r["rps"] = r["requests"] / r["seconds"]
    return r


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--events", type=int, default=20_000)
    ap.add_argument("--duration", type=int, default=10, help="seconds per cell")
    ap.add_argument("--workers", type=int, default=1, help="API server processes")
    ap.add_argument("--fresh", action="store_true", help="run the demo again from scratch")
    args = ap.parse_args(argv)
    if shutil.which("wrk") is None:
        sys.exit("bench: wrk is not installed (make bench-serve installs it from Debian)")
    base = OUT / "serve"
    env, config = _setup(base, args.events, args.fresh)
    token = _lakehouse(env, "token", "create", f"bench-{int(time.time())}").strip()
    port = int(config["serving"]["port"])
    script = base / "wrk.lua"
    script.write_text(LUA)
    server = _serve(env, port, args.workers, base / "serve.log")
    postmaster = _postmaster(config)
    results: list[dict[str, Any]] = []
    try:
        url = f"http://127.0.0.1:{port}/datasets/{MART}?{QUERY}"
        first = httpx.get(url, headers={"Authorization": f"Bearer {token}"}, timeout=30)
        first.raise_for_status()
        etag, rows = first.headers["etag"], first.json()["count"]
        for cached in (False, True):
            _wrk(url, 8, 2, token, etag if cached else None, script)  # warm-up: pool, prepared statements
            for clients in CLIENTS:
                api0, pg0 = _cpu_seconds([server.pid]), _cpu_seconds([postmaster])
                r = _wrk(url, clients, args.duration, token, etag if cached else None, script)
                api_cpu, pg_cpu = _cpu_seconds([server.pid]) - api0, _cpu_seconds([postmaster]) - pg0
                r |= {
                    "case": "cached (304)" if cached else "uncached (200)",
                    "clients": clients,
                    "api_cpu_ms_per_request": api_cpu * 1000 / r["requests"],
                    "postgres_cpu_ms_per_request": pg_cpu * 1000 / r["requests"],
                }
                results.append(r)
                print(
                    f"  {r['case']:<15} {clients:>3} clients  p50 {r['p50_us'] / 1000:7.2f} ms  "
                    f"p95 {r['p95_us'] / 1000:7.2f} ms  p99 {r['p99_us'] / 1000:7.2f} ms  {r['rps']:8.0f} req/s  "
                    f"CPU/request: API {r['api_cpu_ms_per_request']:.2f} ms, PostgreSQL {r['postgres_cpu_ms_per_request']:.2f} ms",
                    flush=True,
                )
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
        _lakehouse(env, "services", "stop", check=False)  # the lake and database stay for the next run
    _report(results, args, rows, config)
    return 0


def _report(
    results: list[dict[str, Any]], args: argparse.Namespace, rows: int, config: dict[str, Any]
) -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    meta = {
        "mart": MART,
        "query": QUERY,
        "rows_per_response": rows,
        "events": config["generator"]["events"],
        "workers": args.workers,
        "duration_s": args.duration,
        "cpus": os.cpu_count(),
        "load_average": os.getloadavg(),
        "peer": "none: PostgREST cannot be installed here (see README)",
        "goals": GOALS,
    }
    (OUT / "serve.json").write_text(json.dumps({"meta": meta, "results": results}, indent=1))
    lines = [
        f"# lakehouse serve: {MART}?{QUERY} ({rows} rows, JSON), {args.workers} worker(s), wrk {args.duration} s per cell",
        "",
        f"Machine: {os.cpu_count()} cores, load average at the end {os.getloadavg()[0]:.1f} (shared with other work).",
        "",
        "CPU per request is the time the API process and the PostgreSQL server spent (psutil), which the",
        "machine's load does not change; latency and requests/s are what the clients saw on this machine.",
        "",
        "| case | clients | p50 ms | p95 ms | p99 ms | requests/s | API CPU ms/req | PostgreSQL CPU ms/req | goal p95 |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for r in results:
        goal = GOALS["cached_p95_ms" if r["case"].startswith("cached") else "uncached_p95_ms"]
        ok = "met" if r["p95_us"] / 1000 <= goal else "missed"
        lines.append(
            f"| {r['case']} | {r['clients']} | {r['p50_us'] / 1000:.2f} | {r['p95_us'] / 1000:.2f} | "
            f"{r['p99_us'] / 1000:.2f} | {r['rps']:,.0f} | {r['api_cpu_ms_per_request']:.2f} | "
            f"{r['postgres_cpu_ms_per_request']:.2f} | <= {goal:.0f} ms: {ok} |"
        )
    (OUT / "serve.md").write_text("\n".join(lines) + "\n")
    print(f"results: {OUT / 'serve.md'}")


if __name__ == "__main__":
    raise SystemExit(main())
