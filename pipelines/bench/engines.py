"""The two engines on the same Delta tables: the embedded engine (delta-rs + DuckDB) against
delta-spark on `local[2]`, in one run.

Measured steps, each in a subprocess of its own (the Spark JVM is a child of it):

* silver    bronze.events -> silver.events + silver.quarantine_events: `silver.events.run`
            (embedded) against `silver.spark.writer.run` (the `lakehouse spark silver` job), over
            the same cached bronze table (hard-linked into a fresh lake for every run).
* merge     MERGE of a change batch into a 1M-row current-state table (silver.orders):
            `silver.current_state.apply` against `silver.spark.current_state.apply`, both on the
            same starting table (written once by the embedded engine, handed over to Spark).
* scd2      the SCD2 MERGE into a 1M-row dimension (silver.dim_customer), `silver.scd2.apply`:
            the embedded engine only, the package has no Spark SCD2 job.

Per run: wall time of the subprocess, the step's own seconds (Spark's start-up excluded), CPU
seconds of the whole process tree (getrusage of the waited-for children, the JVM included, or the
psutil samples of the tree when those are higher), peak RSS of the process tree (psutil, polled
every 50 ms) and its RSS when the step started, rows out, files written. The outputs of the two
engines are compared through an independent reader (DuckDB `delta_scan`): row counts and an
order-independent hash of every column but the per-run ones. Figures of a step whose outputs
differ do not count: the report says so and the command exits non-zero.

Inputs are built once per size under <state>/bench/ and reused. Results: a console table,
<state>/bench/engines.md and engines.json.

    python -m bench.engines [--events 1000000] [--merge-rows 1000000] [--skip-merge]
"""

from __future__ import annotations

import argparse
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
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench.bronze_silver import _settings, prepare_input

GIB = 1024**3
MIB = 1024**2
POLL_SECONDS = 0.05

# The Spark peer, tuned for one machine with 2 cores and 24 GiB shared with other work.
SPARK_MASTER = "local[2]"
SPARK_DRIVER_MEMORY = "4g"  # local mode: the driver is all of Spark; 1M-10M events fit with room
SPARK_SHUFFLE_PARTITIONS = 4  # two per core; AQE coalesces the small ones
SPARK_TUNING = {
    # AQE on (also set by core.spark): coalesce shuffle partitions, split skewed joins
    "spark.sql.adaptive.enabled": "true",
    "spark.sql.adaptive.coalescePartitions.enabled": "true",
    "spark.sql.adaptive.skewJoin.enabled": "true",
    "spark.sql.adaptive.advisoryPartitionSizeInBytes": "64m",
    # read splits: a 1M-event bronze (~100 MB) gives each core at least one split
    "spark.sql.files.maxPartitionBytes": "64m",
    "spark.sql.files.openCostInBytes": "4m",
    # file sizes: bin rows into ~128 MB files per partition value instead of one file per task
    # and event_date (silver.events is partitioned by day)
    "spark.databricks.delta.optimizeWrite.enabled": "true",
    "spark.databricks.delta.optimizeWrite.binSize": "128m",
    # broadcast the reference lookups and small dedup sides, never the event rows
    "spark.sql.autoBroadcastJoinThreshold": "32m",
    # a throughput collector for batch work on 2 cores (G1's concurrent threads compete with tasks)
    "spark.driver.extraJavaOptions": "-XX:+UseParallelGC",
    "spark.sql.parquet.compression.codec": "snappy",  # what delta-rs writes by default
}

# columns that differ between two runs by nature (run ids, batch ids, times of the run, the
# bronze commit version a row came from); every other column is hashed
SILVER_SKIP = ("_run_id", "_batch_id", "_ingestion_time", "_commit_version")
QUARANTINE_HASHED = (
    "reasons",
    "raw_value",
    "raw_bytes",
    "event_id",
    "source_system",
    "source_file",
    "source_line",
    "ordinal",
)
MERGE_SKIP = ("_run_id",)

NOT_MEASURED = {
    "scd2 on spark": "the package has no Spark SCD2 job (silver/spark/ holds silver events and "
    "current state only); the embedded SCD2 MERGE is measured alone",
    "kafka -> bronze": "the package has no Spark Structured Streaming job from Kafka into "
    "bronze.events, so there is no Spark peer to run against the embedded consumer",
}


def log(msg: str) -> None:
    print(f"[bench-engines] {msg}", flush=True)


# -- the MERGE inputs: a 1M-row table and a change batch, written once ---------------------------


def _orders(first: int, count: int, updated: datetime, status: str, batch: str) -> Any:
    import pyarrow as pa

    ids = pa.array(range(first, first + count), pa.int64())
    base = datetime(2026, 1, 1, tzinfo=UTC)
    return pa.table(
        {
            "order_id": ids,
            "customer_id": pa.array([i % 50_000 + 1 for i in range(first, first + count)], pa.int64()),
            "status": pa.array([status] * count, pa.string()),
            "currency": pa.array(["EUR"] * count, pa.string()),
            "order_ts": pa.array([base] * count, pa.timestamp("us", "UTC")),
            "updated_at": pa.array([updated] * count, pa.timestamp("us", "UTC")),
            "_row_hash": pa.array([f"{i:x}-{status}" for i in range(first, first + count)], pa.string()),
            "_extracted_at": pa.array([updated] * count, pa.timestamp("us", "UTC")),
            "_batch_id": pa.array([batch] * count, pa.string()),
            "_run_id": pa.array([batch] * count, pa.string()),
        }
    )


def _customers(first: int, count: int, updated: datetime, segment: str, batch: str) -> Any:
    import pyarrow as pa

    keys = range(first, first + count)
    return pa.table(
        {
            "customer_id": pa.array(keys, pa.int64()),
            "full_name": pa.array([f"Customer {i}" for i in keys], pa.string()),
            "email": pa.array([f"c{i}@example.org" for i in keys], pa.string()),
            "country": pa.array(["DE"] * count, pa.string()),
            "segment": pa.array([segment] * count, pa.string()),
            "created_at": pa.array([datetime(2025, 1, 1, tzinfo=UTC)] * count, pa.timestamp("us", "UTC")),
            "updated_at": pa.array([updated] * count, pa.timestamp("us", "UTC")),
            "_row_hash": pa.array([f"{i:x}-{segment}" for i in keys], pa.string()),
            "_extracted_at": pa.array([updated] * count, pa.timestamp("us", "UTC")),
            "_batch_id": pa.array([batch] * count, pa.string()),
            "_run_id": pa.array([batch] * count, pa.string()),
        }
    )


def change_batch_shape(rows: int) -> dict[str, int]:
    """The change batch MERGEd into a `rows`-row table: half the keys changed (newer), a quarter
    replayed with an older updated_at (must not win), a quarter of new keys."""
    return {"updated": rows // 2, "stale": rows // 4, "new": rows // 4}


def prepare_merge_input(state: Path, rows: int) -> Path:
    """bronze.orders/customers with two versions (the full table, then a change batch) and
    silver.orders/dim_customer holding the first one (embedded engine), built once."""
    import pyarrow as pa

    from lakehouse.core import delta
    from lakehouse.core.reconcile import new_run_id
    from lakehouse.core.storage import Lake
    from lakehouse.silver import current_state, scd2

    root = state / f"merge-{rows}"
    marker = root / "ready.json"
    if marker.exists():
        return root
    if root.exists():
        shutil.rmtree(root)
    lake = Lake(_settings(root, rows))
    t1 = datetime(2026, 1, 1, tzinfo=UTC)
    t2, t0 = t1 + timedelta(days=1), t1 - timedelta(days=1)
    shape = change_batch_shape(rows)
    t_start = time.perf_counter()
    orders = current_state.TABLES[0]
    customers = scd2.DIMENSIONS[0]
    builders: list[tuple[str, Callable[..., Any]]] = [
        (orders.source, _orders),
        (customers.source, _customers),
    ]
    for table, make in builders:
        delta.append(
            lake,
            table,
            make(1, rows, t1, "open" if make is _orders else "retail", "B1"),
            app_id="bench<-" + table,
            txn_version=1,
            configuration=delta.CDF,
        )
    current_state.apply(lake, orders, new_run_id())
    scd2.apply(lake, customers, new_run_id())
    for table, make in builders:
        changed = "shipped" if make is _orders else "business"
        batch = pa.concat_tables(
            [
                make(1, shape["updated"], t2, changed, "B2"),
                make(shape["updated"] + 1, shape["stale"], t0, changed, "B2"),
                make(rows + 1, shape["new"], t2, changed, "B2"),
            ]
        )
        delta.append(lake, table, batch, app_id="bench<-" + table, txn_version=2)
    marker.write_text(json.dumps({"rows": rows, **shape}))
    log(
        f"MERGE input: {rows:,}-row tables and a {sum(shape.values()):,}-row change batch in "
        f"{time.perf_counter() - t_start:.1f} s"
    )
    return root


# -- the runs (inside the child process) ----------------------------------------------------------


def _link_copy(source: Path, target: Path) -> None:
    """A lake copy made of hard links: Delta files are never modified in place, every run writes
    new ones, so each run starts from the same tables at no disk cost."""
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copytree(source, target, copy_function=os.link, dirs_exist_ok=True)


def _started(work: Path) -> None:
    (work / "started").touch()


def _spark(settings: Any) -> Any:
    from lakehouse.core.spark import SparkOptions, build_session

    return build_session(
        settings,
        SparkOptions(
            master=SPARK_MASTER,
            app_name="lakehouse-bench-engines",
            driver_memory=SPARK_DRIVER_MEMORY,
            shuffle_partitions=SPARK_SHUFFLE_PARTITIONS,
            conf=dict(SPARK_TUNING),
        ),
    )


def _silver(engine: str, input_root: Path, work: Path, rows: int) -> dict[str, Any]:
    from lakehouse.core.reconcile import new_run_id
    from lakehouse.core.storage import Lake

    settings = _settings(work, rows)
    lake = Lake(settings)
    _link_copy(input_root / "lake" / "bronze" / "events", Path(lake.table_uri("bronze.events")))
    if engine == "embedded":
        from lakehouse.silver import events

        _started(work)
        t0 = time.perf_counter()
        rec = events.run(lake, settings.silver, new_run_id())
        seconds = time.perf_counter() - t0
    else:
        from lakehouse.core.spark import stop_session
        from lakehouse.silver.spark import writer

        spark = _spark(settings)
        try:
            _started(work)
            t0 = time.perf_counter()
            rec = writer.run(spark, lake, settings.silver, new_run_id())
            seconds = time.perf_counter() - t0
        finally:
            stop_session(spark)
    return {
        "seconds": seconds,
        "lake": str(settings.lake_root),
        "rows_in": rec.rows_in,
        "detail": {"inserted": rec.inserted, "duplicates": rec.duplicates, "quarantined": rec.quarantined},
    }


def _merge(engine: str, input_root: Path, work: Path, rows: int) -> dict[str, Any]:
    from lakehouse.core import ownership
    from lakehouse.core.reconcile import new_run_id
    from lakehouse.core.storage import Lake
    from lakehouse.silver import current_state

    settings = _settings(work, rows)
    lake = Lake(settings)
    _link_copy(input_root / "lake", Path(str(settings.lake_root)))
    table = current_state.TABLES[0]
    if engine == "embedded":
        _started(work)
        t0 = time.perf_counter()
        rec = current_state.apply(lake, table, new_run_id())
        seconds = time.perf_counter() - t0
    else:
        from lakehouse.core.spark import stop_session
        from lakehouse.silver.spark import current_state as spark_current_state

        ownership.hand_over(lake, table.table, ownership.SPARK)
        spark = _spark(settings)
        try:
            _started(work)
            t0 = time.perf_counter()
            rec = spark_current_state.apply(spark, lake, table, new_run_id())
            seconds = time.perf_counter() - t0
        finally:
            stop_session(spark)
    return {
        "seconds": seconds,
        "lake": str(settings.lake_root),
        "rows_in": rec.rows_in,
        "detail": {"inserted": rec.inserted, "updated": rec.updated, "unchanged": rec.unchanged},
    }


def _scd2(engine: str, input_root: Path, work: Path, rows: int) -> dict[str, Any]:
    from lakehouse.core.reconcile import new_run_id
    from lakehouse.core.storage import Lake
    from lakehouse.silver import scd2

    if engine != "embedded":
        raise SystemExit(f"scd2: {NOT_MEASURED['scd2 on spark']}")
    settings = _settings(work, rows)
    lake = Lake(settings)
    _link_copy(input_root / "lake", Path(str(settings.lake_root)))
    _started(work)
    t0 = time.perf_counter()
    rec = scd2.apply(lake, scd2.DIMENSIONS[0], new_run_id())
    seconds = time.perf_counter() - t0
    return {
        "seconds": seconds,
        "lake": str(settings.lake_root),
        "rows_in": rec.rows_in,
        "detail": {"inserted": rec.inserted, "unchanged": rec.unchanged, "duplicates": rec.duplicates},
    }


STEPS: dict[str, Callable[[str, Path, Path, int], dict[str, Any]]] = {
    "silver": _silver,
    "merge": _merge,
    "scd2": _scd2,
}
# the tables each step writes, compared across engines
OUTPUTS = {
    "silver": ("silver.events", "silver.quarantine_events"),
    "merge": ("silver.orders",),
    "scd2": ("silver.dim_customer",),
}


def child_main(step: str, engine: str, input_root: Path, work: Path, rows: int, result: Path) -> None:
    out = STEPS[step](engine, input_root, work, rows)
    out["self_maxrss_bytes"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    result.write_text(json.dumps(out))


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


# -- report ----------------------------------------------------------------------------------------


def _fmt(r: dict[str, Any]) -> list[str]:
    ratio = r.get("ratio")
    start = r.get("rss_at_start_bytes")
    return [
        r["step"],
        r["engine"],
        f"{r['size']:,}",
        f"{r['rows_in']:,}",
        f"{r['rows_out']:,}",
        f"{r['seconds']:.1f}",
        f"{r['wall_seconds']:.1f}",
        f"{r['cpu_seconds']:.1f}",
        f"{r['peak_rss_bytes'] / GIB:.2f} GiB",
        f"{start / GIB:.2f} GiB" if start else "-",
        str(r["files_out"]),
        f"{ratio:.3f}" if ratio is not None else "-",
        {True: "yes", False: "NO", None: "- (one engine)"}[r.get("verified")],
    ]


HEADERS = [
    "step",
    "engine",
    "size",
    "rows in",
    "rows out",
    "step s",
    "wall s",
    "CPU s",
    "peak RSS",
    "RSS at step start",
    "files",
    "embedded/spark time",
    "same output",
]


def spark_settings() -> dict[str, str]:
    return {
        "master": SPARK_MASTER,
        "spark.driver.memory": SPARK_DRIVER_MEMORY,
        "spark.sql.shuffle.partitions": str(SPARK_SHUFFLE_PARTITIONS),
        "spark.default.parallelism": str(SPARK_SHUFFLE_PARTITIONS),
        **SPARK_TUNING,
    }


def write_report(
    results: list[dict[str, Any]], problems: list[str], state: Path, meta: dict[str, Any]
) -> Path:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=max(Console().width, 160))
    table = Table(title="embedded engine vs delta-spark local[2]")
    for h in HEADERS:
        table.add_column(h, justify="left" if h in ("step", "engine") else "right")
    for r in results:
        table.add_row(*_fmt(r))
    console.print(table)
    for p in problems:
        console.print(f"[red]outputs differ: {p}[/red]")

    (state / "engines.json").write_text(
        json.dumps({**meta, "results": results, "problems": problems}, indent=2)
    )
    md = [
        f"# Embedded engine vs delta-spark local[2] ({meta['finished']})",
        "",
        f"Host: {meta['cpus']} CPUs, {meta['memory_gib']} GiB RAM; load average at the start "
        f"{meta['load_average_at_start']}, at the end {meta['load_average_at_end']}. "
        f"Python {meta['python']}, {meta['versions']}.",
        "",
        "`step s` is the step alone (Spark's JVM start-up excluded); `wall s` the whole subprocess; "
        "`CPU s` user + system seconds of the process tree (the JVM included); `peak RSS` the "
        "highest summed RSS of the process tree (sampled every 50 ms), `RSS at step start` the "
        "tree's RSS when the step began (after imports and Spark's start-up). `same output`: row "
        "counts and content hash of the outputs equal across the engines (DuckDB `delta_scan`).",
        "",
        "| " + " | ".join(HEADERS) + " |",
        "|" + "---|" * len(HEADERS),
        *("| " + " | ".join(_fmt(r)) + " |" for r in results),
        "",
    ]
    if problems:
        md += ["**The outputs differ; the figures of these steps do not count:**", ""]
        md += [f"- {p}" for p in problems] + [""]
    md += [
        "## Outputs compared",
        "",
        "| step | table | engine | rows | files | hash |",
        "|---|---|---|---|---|---|",
    ]
    for step, tables in meta["digests"].items():
        for name, per in tables.items():
            for engine, d in per.items():
                md.append(f"| {step} | {name} | {engine} | {d['rows']:,} | {d['files']} | `{d['hash']}` |")
    md += ["", "## Spark settings", "", "| setting | value |", "|---|---|"]
    md += [f"| `{k}` | `{v}` |" for k, v in spark_settings().items()]
    md += [
        "",
        "The session also carries the package's own defaults (`lakehouse.core.spark.local_defaults`): "
        "UTC session time zone, ANSI mode, Arrow transfers, Delta's snapshot partitions equal to the "
        "shuffle partitions.",
        "",
    ]
    if meta.get("merge_shape"):
        s = meta["merge_shape"]
        md += [
            "## MERGE input",
            "",
            f"A {meta['merge_rows']:,}-row table, then a change batch of {sum(s.values()):,} rows: "
            f"{s['updated']:,} keys with a newer row, {s['stale']:,} replayed with an older one (must "
            f"not win), {s['new']:,} new keys. Both engines MERGE into the same starting table.",
            "",
        ]
    md += ["## Not measured", ""] + [f"- {k}: {v}." for k, v in meta["not_measured"].items()] + [""]
    path = state / "engines.md"
    path.write_text("\n".join(md))
    console.print(f"report: {path}")
    return path


def _versions() -> str:
    from importlib.metadata import version

    names = ("deltalake", "duckdb", "pyspark")
    out = [f"{n} {version(n)}" for n in names]
    with contextlib.suppress(Exception):
        from lakehouse.core.spark import spark_bundle

        delta = next(
            (f"{ga.split(':')[1]} {v}" for ga, v in spark_bundle().versions.items() if "delta-spark" in ga),
            None,
        )
        if delta:
            out.append(delta)
    return ", ".join(out)


def default_state() -> Path:
    from lakehouse.core.settings import repo_root

    return repo_root() / ".state" / "bench"


def run(
    state: Path, events: int, merge_rows: int, *, merge: bool = True
) -> tuple[list[dict[str, Any]], list[str]]:
    """Every measured step on both engines; returns the results and the output differences."""
    import psutil

    state.mkdir(parents=True, exist_ok=True)
    keep = state / "engines-out"
    shutil.rmtree(keep, ignore_errors=True)
    keep.mkdir()
    load_start = [round(x, 2) for x in os.getloadavg()]
    plan: list[tuple[str, list[str], Path, int]] = []
    log(f"bronze.events for {events:,} events (generated once, cached under {state})")
    plan.append(("silver", ["embedded", "spark"], prepare_input(state, events, log), events))
    if merge:
        log(f"{merge_rows:,}-row MERGE tables (built once, cached under {state})")
        merge_input = prepare_merge_input(state, merge_rows)
        plan.append(("merge", ["embedded", "spark"], merge_input, merge_rows))
        plan.append(("scd2", ["embedded"], merge_input, merge_rows))
    results: list[dict[str, Any]] = []
    problems: list[str] = []
    digests: dict[str, Any] = {}
    for step, engines, input_root, size in plan:
        runs: dict[str, dict[str, Any]] = {}
        for engine in engines:
            log(f"{step} on {engine} ({size:,}) ...")
            r = measure(step, engine, input_root, size, state, keep)
            log(f"{step} on {engine}: {r['seconds']:.1f} s, peak RSS {r['peak_rss_bytes'] / GIB:.2f} GiB")
            runs[engine] = r
        d, p = compare(step, {e: Path(r["lake"]) for e, r in runs.items()})
        digests[step] = d
        problems += p
        first = OUTPUTS[step][0]
        for engine, r in runs.items():
            r["rows_out"] = sum(d[t][engine]["rows"] for t in OUTPUTS[step])
            r["files_out"] = sum(d[t][engine]["files"] for t in OUTPUTS[step])
            r["verified"] = None if len(runs) < 2 else not p
            r["output_hash"] = d[first][engine]["hash"]
        if "spark" in runs and not p:
            runs["embedded"]["ratio"] = runs["embedded"]["seconds"] / runs["spark"]["seconds"]
        results += runs.values()
    meta = {
        "finished": datetime.now(UTC).isoformat(timespec="seconds"),
        "cpus": os.cpu_count(),
        "memory_gib": round(psutil.virtual_memory().total / GIB, 1),
        "python": sys.version.split()[0],
        "versions": _versions(),
        "load_average_at_start": load_start,
        "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
        "events": events,
        "merge_rows": merge_rows if merge else None,
        "merge_shape": change_batch_shape(merge_rows) if merge else None,
        "spark_settings": spark_settings(),
        "digests": digests,
        "not_measured": NOT_MEASURED,
    }
    write_report(results, problems, state, meta)
    for r in results:
        if r.get("ratio") is not None:
            log(
                f"{r['step']}: embedded/spark time {r['ratio']:.2f} "
                f"(spark takes {1 / r['ratio']:.1f}x the embedded engine's time)"
            )
    return results, problems


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.engines", description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--events",
        type=int,
        default=int(os.environ.get("BENCH_EVENTS") or 1_000_000),
        help="events in bronze (default $BENCH_EVENTS, else 1000000)",
    )
    p.add_argument("--merge-rows", type=int, default=1_000_000, help="rows of the MERGE target tables")
    p.add_argument("--skip-merge", action="store_true", help="silver events only")
    p.add_argument("--state", type=Path, default=None, help="bench folder (default <repo>/.state/bench)")
    p.add_argument("--child", help=argparse.SUPPRESS)
    p.add_argument("--input", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--rows", type=int, help=argparse.SUPPRESS)
    p.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        step, _, engine = args.child.partition(":")
        child_main(step, engine, args.input, args.work, args.rows, args.result)
        return 0
    if args.events <= 0 or args.merge_rows <= 0:
        print("bench-engines: --events and --merge-rows must be positive", file=sys.stderr)
        return 2
    from lakehouse.core.errors import LakehouseError

    state: Path = (args.state or default_state()).resolve()
    try:
        _, problems = run(state, args.events, args.merge_rows, merge=not args.skip_merge)
    except (LakehouseError, RuntimeError) as exc:
        print(f"bench-engines: {exc}", file=sys.stderr)
        return 1
    if problems:
        print("bench-engines: the engines' outputs differ, the figures do not count", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
