"""How `make bench-engines` measures a step and checks the engines agree: one subprocess per run
with its whole process tree sampled (RSS, CPU; the Spark JVM is a descendant), and the outputs
of two runs compared through an independent reader (DuckDB `delta_scan`)."""

from __future__ import annotations

import contextlib
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.bronze_silver import _settings
from bench.engine_steps import KAFKA_SKIP, MERGE_SKIP, MIB, OUTPUTS, QUARANTINE_HASHED, SILVER_SKIP, log

POLL_SECONDS = 0.05


# -- the parent: one subprocess per run, its process tree sampled ---------------------------------


@dataclass
class TreeSample:
    rss: int
    cpu: float


class TreeSampler:
    """RSS and CPU of a process and all its descendants; CPU per pid is kept after a pid exits."""

    def __init__(self, proc: Any) -> None:
        self.proc = proc
        self.cpu_by_pid: dict[int, float] = {}

    def sample(self) -> TreeSample:
        import psutil

        try:
            procs = [self.proc, *self.proc.children(recursive=True)]
        except psutil.Error:
            return TreeSample(0, sum(self.cpu_by_pid.values()))
        rss = 0
        for p in procs:
            with contextlib.suppress(psutil.Error), p.oneshot():
                rss += p.memory_info().rss
                t = p.cpu_times()
                self.cpu_by_pid[p.pid] = t.user + t.system
        return TreeSample(rss, sum(self.cpu_by_pid.values()))


def _children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def measure(step: str, engine: str, input_root: Path, rows: int, state: Path, keep: Path) -> dict[str, Any]:
    """Run one step on one engine in a subprocess: wall time, CPU seconds and peak RSS of its whole
    process tree. The lake it wrote is moved to `keep` for the comparison."""
    import psutil

    work = Path(tempfile.mkdtemp(prefix=f"{step}-{engine}-", dir=state))
    result = work / "result.json"
    cmd = [
        sys.executable,
        "-m",
        "bench.engines",
        "--child",
        f"{step}:{engine}",
        "--input",
        str(input_root),
        "--work",
        str(work),
        "--rows",
        str(rows),
        "--result",
        str(result),
    ]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parents[1]), *sys.path])}
    cpu_before = _children_cpu()
    t0 = time.perf_counter()
    proc = psutil.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    sampler = TreeSampler(proc)
    lines: list[str] = []

    def drain() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    peak, at_start, cpu_at_start, last = 0, None, 0.0, TreeSample(0, 0.0)
    next_progress = time.perf_counter() + 15
    while proc.poll() is None:
        last = sampler.sample()
        peak = max(peak, last.rss)
        if at_start is None and (work / "started").exists():
            at_start, cpu_at_start = last.rss, last.cpu
        if time.perf_counter() >= next_progress:
            log(f"  {step}/{engine}: {time.perf_counter() - t0:.0f} s, RSS {last.rss / MIB:,.0f} MiB")
            next_progress += 15
        time.sleep(POLL_SECONDS)
    reader.join(timeout=5)
    wall = time.perf_counter() - t0
    # getrusage counts the children the subprocess waited for (the JVM); the samples also count
    # a descendant that was never waited for, up to its last sample
    cpu = max(_children_cpu() - cpu_before, sum(sampler.cpu_by_pid.values()))
    try:
        if proc.returncode != 0 or not result.exists():
            tail = "".join(lines[-30:])
            raise RuntimeError(f"{step} on {engine} failed (exit {proc.returncode}):\n{tail}")
        out = json.loads(result.read_text())
        target = keep / f"{step}-{engine}" / "lake"  # a lake root is <state>/lake (`_settings`)
        shutil.rmtree(target.parent, ignore_errors=True)
        target.parent.mkdir(parents=True)
        shutil.move(out["lake"], target)
        out["lake"] = str(target)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    out.update(
        step=step,
        engine=engine,
        size=rows,
        wall_seconds=wall,
        cpu_seconds=cpu,
        step_cpu_seconds=max(cpu - cpu_at_start, 0.0),
        peak_rss_bytes=max(peak, out.pop("self_maxrss_bytes", 0)),
        rss_at_start_bytes=at_start,
    )
    return out


# -- the comparison: an independent reader over both engines' tables -----------------------------


def table_digest(
    lake_root: Path, table: str, skip: tuple[str, ...] = (), only: tuple[str, ...] = ()
) -> dict[str, Any]:
    """Row count, data file count and an order-independent hash of `table`'s rows (every column
    but `skip`, or only `only`), read with DuckDB's delta extension."""
    from lakehouse.core import delta
    from lakehouse.core.storage import Lake

    lake = Lake(_settings(lake_root.parent, 1), create=False)
    dt = delta.open_table(lake, table)
    if dt is None:
        return {"rows": 0, "files": 0, "hash": None, "columns": []}
    import pyarrow as pa

    schema = pa.schema(dt.schema())
    columns = sorted(f.name for f in schema if f.name not in skip and (not only or f.name in only))
    con = lake.duckdb_with_delta()
    try:
        quoted = ", ".join(f'"{c}"' for c in columns)
        rows, digest = con.execute(
            f"SELECT count(*), CAST(coalesce(sum(hash({quoted})::HUGEINT), 0) AS VARCHAR) "
            f"FROM delta_scan('{lake.table_uri(table)}')"
        ).fetchone()  # type: ignore[misc]
    finally:
        con.close()
    return {"rows": int(rows), "files": len(dt.file_uris()), "hash": digest, "columns": columns}


def _hashed(table: str) -> dict[str, tuple[str, ...]]:
    if table == "silver.quarantine_events":
        return {"only": QUARANTINE_HASHED}
    if table == "silver.events":
        return {"skip": SILVER_SKIP}
    if table == "bronze.events":
        return {"skip": KAFKA_SKIP}
    return {"skip": MERGE_SKIP}


def compare(step: str, lakes: dict[str, Path]) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """Digests of the step's output tables per engine, and the differences (empty when equal)."""
    digests: dict[str, dict[str, Any]] = {}
    problems: list[str] = []
    for table in OUTPUTS[step]:
        per = {engine: table_digest(lake, table, **_hashed(table)) for engine, lake in lakes.items()}
        digests[table] = per
        if len(per) < 2:
            continue
        (ea, a), (eb, b) = list(per.items())[:2]
        if a["rows"] != b["rows"]:
            problems.append(f"{table}: {a['rows']:,} rows ({ea}) != {b['rows']:,} rows ({eb})")
        elif a["columns"] != b["columns"]:
            problems.append(f"{table}: columns differ: {ea} {a['columns']} vs {eb} {b['columns']}")
        elif a["hash"] != b["hash"]:
            problems.append(f"{table}: same row count, different content hash ({ea} vs {eb})")
    return digests, problems
