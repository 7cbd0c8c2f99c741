"""bronze.events -> silver.events on the embedded engine, against its peers, in one run.

Contenders, each in its own subprocess so that peak RSS is measured per contender (the whole
process tree is polled with psutil, so Spark's JVM counts):

* embedded  `lakehouse.silver.events.run` (delta-rs + DuckDB) on a fresh silver over the cached
            bronze table (hard-linked copy, so every run starts from the same bronze).
* spark     plain PySpark local[2] running the same transpiled SQL (`engines.spark_engine`) over the
            same bronze rows (the bronze table's Parquet files, commit version from the Delta log),
            writing the classified rows as Parquet.
* floor     DuckDB reading the same NDJSON landing files into the contract's columns and writing
            Parquet, no logic: the I/O + JSON parsing cost no transform can beat.

Inputs are generated once per size (default fault rates) under <state>/bench/input-<rows>/ and
reused. Results: a table on the console, <state>/bench/results.json and results.md.

    python -m bench.bronze_silver [--sizes 1000000,10000000] [--skip-spark] [--quick]
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
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

GIB = 1024**3
CONTENDERS = ("embedded", "spark", "floor")
GOALS = {
    "speedup_vs_spark": 5.0,  # embedded at least 5x faster than PySpark local[2]
    "seconds_10m": 60.0,  # 10M rows in at most 60 s
    "ratio_vs_floor": 2.0,  # at most 2x the floor
    "peak_rss_bytes": 2 * GIB,  # whatever the input size
}


# -- inputs -------------------------------------------------------------------------------------


def _settings(root: Path, rows: int) -> Any:
    from lakehouse.core.settings import load_settings

    return load_settings(
        "local",
        overrides={
            "lake_root": str(root / "lake"),
            "state_dir": str(root / "state"),
            "generator.events": rows,
            "generator.event_files": max(4, rows // 250_000),
        },
    )


def prepare_input(state: Path, rows: int, log: Callable[[str], None]) -> Path:
    """Landing NDJSON + bronze.events for `rows` generated events, built once and reused."""
    from lakehouse.bronze import landing
    from lakehouse.core.storage import Lake
    from lakehouse.generator.events import EventSpec, generate_files

    root = state / f"input-{rows}"
    marker = root / "ready.json"
    if marker.exists():
        return root
    if root.exists():
        shutil.rmtree(root)
    settings = _settings(root, rows)
    lake = Lake(settings)
    fs, base = lake.landing("events")

    def write(name: str, data: bytes) -> None:
        with fs.open_output_stream(f"{base}/{name}.part") as out:
            out.write(data)
        fs.move(f"{base}/{name}.part", f"{base}/{name}")

    t0 = time.perf_counter()
    counts = generate_files(
        EventSpec.from_settings(settings.generator), settings.generator.event_files, write
    )
    log(f"generated {counts['lines']:,} lines for {rows:,} events in {time.perf_counter() - t0:.1f} s")
    t0 = time.perf_counter()
    result, _rec = landing.ingest(lake, "bench-bronze", settings.bronze.max_rows_per_commit)
    log(f"ingested {result.rows:,} rows into bronze.events in {time.perf_counter() - t0:.1f} s")
    marker.write_text(json.dumps({"events": rows, "bronze_rows": result.rows, "lines": counts["lines"]}))
    return root


# -- contenders (run inside the child process) ---------------------------------------------------


def run_embedded(input_root: Path, work: Path, rows: int) -> dict[str, Any]:
    from lakehouse.core.reconcile import new_run_id
    from lakehouse.core.storage import Lake
    from lakehouse.silver import events

    settings = _settings(work, rows)
    lake = Lake(settings)
    src, dst = Path(lake.table_uri("bronze.events")), input_root / "lake" / "bronze" / "events"
    src.parent.mkdir(parents=True, exist_ok=True)
    shutil.copytree(dst, src, copy_function=os.link)  # Delta files are immutable: hard links
    t0 = time.perf_counter()
    rec = events.run(lake, settings.silver, new_run_id())
    seconds = time.perf_counter() - t0
    return {
        "rows": rec.rows_in,
        "seconds": seconds,
        "detail": {"inserted": rec.inserted, "duplicates": rec.duplicates, "quarantined": rec.quarantined},
    }


def _bronze_files(table_dir: Path) -> list[tuple[str, int]]:
    """(absolute Parquet path, commit version that added it), from the Delta log's JSON commits."""
    out: dict[str, int] = {}
    log_dir = table_dir / "_delta_log"
    for commit in sorted(log_dir.glob("*.json")):
        version = int(commit.stem)
        for line in commit.read_text().splitlines():
            action = json.loads(line)
            if "add" in action:
                out[action["add"]["path"]] = version
            elif "remove" in action:
                out.pop(action["remove"]["path"], None)
    if any(log_dir.glob("*.checkpoint.parquet")):
        from deltalake import DeltaTable

        live = {Path(u).name for u in DeltaTable(str(table_dir)).file_uris()}
        missing = [p for p in live if p not in {Path(k).name for k in out}]
        if missing:
            raise RuntimeError(
                "bronze.events has a checkpoint: file versions cannot be read from the JSON log"
            )
    return [(str(table_dir / path), version) for path, version in sorted(out.items(), key=lambda kv: kv[1])]


def run_spark(input_root: Path, work: Path, rows: int) -> dict[str, Any]:
    from pyspark.sql import functions as F

    from lakehouse.silver import reference
    from lakehouse.silver.spark import events as spark_engine

    files = _bronze_files(input_root / "lake" / "bronze" / "events")
    spark = spark_engine.session(
        master="local[2]",
        shuffle_partitions=8,
        app_name="lakehouse-bench",
        conf={
            "spark.driver.memory": "2g",
            "spark.local.dir": str(work / "spark-tmp"),
            "spark.sql.files.maxPartitionBytes": str(64 * 1024 * 1024),
        },
    )
    try:
        t0 = time.perf_counter()
        versions = spark.createDataFrame(
            [(Path(p).name, v) for p, v in files], "file_name STRING, commit_version BIGINT"
        )
        bronze = (
            spark.read.parquet(*[p for p, _ in files])
            .withColumn("file_name", F.element_at(F.split(F.input_file_name(), "/"), -1))
            .join(F.broadcast(versions), "file_name")
            .drop("file_name")
        )
        classified, extras, _rejected = spark_engine.classify(
            spark, bronze, reference.lookups("USD"), run_id="bench"
        )
        out = work / "spark-out"
        classified.write.mode("overwrite").parquet(str(out))
        seconds = time.perf_counter() - t0
        counts = {
            r["outcome"]: r["count"]
            for r in spark.read.parquet(str(out)).groupBy("outcome").count().collect()
        }
    finally:
        spark.stop()
    return {
        "rows": sum(counts.values()),
        "seconds": seconds,
        "detail": {"outcomes": counts, "extras": [x.name for x in extras]},
    }


def run_floor(input_root: Path, work: Path, rows: int) -> dict[str, Any]:
    import duckdb

    from lakehouse.core.contract.events import CONTRACT_FIELDS

    landing = input_root / "lake" / "landing" / "events"
    columns = "{" + ", ".join(f"'{f}': 'VARCHAR'" for f in CONTRACT_FIELDS) + "}"
    out = work / "floor.parquet"
    con = duckdb.connect()
    con.execute("SET memory_limit = '1GB'")
    con.execute("SET threads = 2")
    con.execute(f"SET temp_directory = '{work / 'duckdb-tmp'}'")
    t0 = time.perf_counter()
    con.execute(
        f"""COPY (SELECT * FROM read_json('{landing}/*.jsonl', format = 'newline_delimited',
                   columns = {columns}, ignore_errors = true, maximum_object_size = 16777216))
            TO '{out}' (FORMAT parquet, COMPRESSION zstd)"""
    )
    seconds = time.perf_counter() - t0
    written = con.execute(f"SELECT count(*) FROM '{out}'").fetchone()[0]  # type: ignore[index]
    con.close()
    return {"rows": int(written), "seconds": seconds, "detail": {}}


RUNNERS: dict[str, Callable[[Path, Path, int], dict[str, Any]]] = {
    "embedded": run_embedded,
    "spark": run_spark,
    "floor": run_floor,
}


def child_main(contender: str, input_root: Path, work: Path, rows: int, result: Path) -> None:
    out = RUNNERS[contender](input_root, work, rows)
    out["self_maxrss_bytes"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    result.write_text(json.dumps(out))


# -- parent: subprocess per contender, RSS polling, report ----------------------------------------


def _tree_rss(proc: Any) -> int:
    import psutil

    total = 0
    try:
        procs = [proc, *proc.children(recursive=True)]
    except psutil.Error:
        return 0
    for p in procs:
        with contextlib.suppress(psutil.Error):
            total += p.memory_info().rss
    return total


def measure(contender: str, input_root: Path, rows: int, state: Path) -> dict[str, Any]:
    """Run one contender in a subprocess; wall time and peak RSS of its whole process tree."""
    import psutil

    work = Path(tempfile.mkdtemp(prefix=f"{contender}-", dir=state))
    result = work / "result.json"
    cmd = [
        sys.executable,
        "-m",
        "bench.bronze_silver",
        "--child",
        contender,
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
    t0 = time.perf_counter()
    proc = psutil.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    peak = 0
    log_lines: list[str] = []
    import threading

    def drain() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            log_lines.append(line)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    while proc.poll() is None:
        peak = max(peak, _tree_rss(proc))
        time.sleep(0.05)
    reader.join(timeout=5)
    wall = time.perf_counter() - t0
    try:
        if proc.returncode != 0 or not result.exists():
            tail = "".join(log_lines[-30:])
            raise RuntimeError(f"{contender} failed (exit {proc.returncode}):\n{tail}")
        out = json.loads(result.read_text())
    finally:
        shutil.rmtree(work, ignore_errors=True)
    out.update(
        contender=contender,
        size=rows,
        wall_seconds=wall,
        peak_rss_bytes=max(peak, out.pop("self_maxrss_bytes", 0)),
    )
    out["rows_per_s"] = out["rows"] / out["seconds"] if out["seconds"] > 0 else None
    return out


def merge_previous(path: Path, results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """This run's results plus earlier ones for sizes/contenders not measured now (so a 10M run
    and a 1M run made separately end up in one table); each row keeps its `measured_at`, and
    rows from earlier runs are marked `earlier_run`: no ratio or goal compares them with rows
    of this run (peers are compared only within one run, on one machine state)."""
    now = datetime.now(UTC).isoformat(timespec="seconds")
    for r in results:
        r.setdefault("measured_at", now)
    if not path.exists():
        return results
    try:
        payload = json.loads(path.read_text())
        previous = payload.get("results", [])
    except (json.JSONDecodeError, AttributeError):
        return results
    fresh = {(r["size"], r["contender"]) for r in results}
    kept = [r for r in previous if (r.get("size"), r.get("contender")) not in fresh]
    for r in kept:
        r.setdefault("measured_at", payload.get("finished"))
        r["earlier_run"] = True
    return sorted(kept + results, key=lambda r: (r["size"], CONTENDERS.index(r["contender"])))


def _ratios(results: list[dict[str, Any]]) -> None:
    by_size: dict[int, dict[str, dict[str, Any]]] = {}
    for r in results:
        by_size.setdefault(r["size"], {})[r["contender"]] = r
    for runs in by_size.values():
        base = runs.get("embedded")
        for r in runs.values():
            compared = base is not None and _same_run(base, r)
            r["ratio_vs_embedded"] = r["seconds"] / base["seconds"] if base and compared else None


def _same_run(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Every row of one run carries that run's `measured_at` (set in `merge_previous`)."""
    return a.get("measured_at") == b.get("measured_at")


def goals(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each goal per size: target, measured value, met or not (None when not measured)."""
    out = []
    by_size: dict[int, dict[str, dict[str, Any]]] = {}
    for r in results:
        by_size.setdefault(r["size"], {})[r["contender"]] = r
    for size, runs in sorted(by_size.items()):
        emb = runs.get("embedded")
        if not emb:
            continue
        if "spark" in runs and _same_run(emb, runs["spark"]):
            v = runs["spark"]["seconds"] / emb["seconds"]
            out.append(
                {
                    "size": size,
                    "goal": ">= 5x faster than PySpark local[2]",
                    "value": f"{v:.1f}x",
                    "met": v >= 5,
                }
            )
        if "floor" in runs and _same_run(emb, runs["floor"]):
            v = emb["seconds"] / runs["floor"]["seconds"]
            out.append({"size": size, "goal": "<= 2x the floor", "value": f"{v:.2f}x", "met": v <= 2})
        if size >= 10_000_000:
            v = emb["seconds"] * 10_000_000 / size
            out.append({"size": size, "goal": "10M rows <= 60 s", "value": f"{v:.1f} s", "met": v <= 60})
        v = emb["peak_rss_bytes"] / GIB
        out.append({"size": size, "goal": "peak RSS <= 2 GiB", "value": f"{v:.2f} GiB", "met": v <= 2})
    return out


def _fmt_row(r: dict[str, Any]) -> list[str]:
    ratio = r.get("ratio_vs_embedded")
    return [
        f"{r['size']:,}",
        r["contender"] + (f" (earlier run, {r.get('measured_at')})" if r.get("earlier_run") else ""),
        f"{r['rows']:,}",
        f"{r['seconds']:.1f}",
        f"{r['wall_seconds']:.1f}",
        f"{r['rows_per_s']:,.0f}" if r.get("rows_per_s") else "-",
        f"{r['peak_rss_bytes'] / GIB:.2f} GiB",
        f"{ratio:.2f}x" if ratio is not None else "-",
    ]


HEADERS = ["events", "contender", "rows", "seconds", "wall s", "rows/s", "peak RSS", "time vs embedded"]


def report(
    results: list[dict[str, Any]], goal_rows: list[dict[str, Any]], state: Path, meta: dict[str, Any]
) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="bronze -> silver events")
    for h in HEADERS:
        table.add_column(h, justify="left" if h == "contender" else "right")
    for r in results:
        table.add_row(*_fmt_row(r))
    console = Console(width=max(Console().width, 120))
    console.print(table)
    gt = Table(title="goals (embedded)")
    for h in ("events", "goal", "measured", "met"):
        gt.add_column(h)
    for g in goal_rows:
        gt.add_row(f"{g['size']:,}", g["goal"], g["value"], "yes" if g["met"] else "NO")
    console.print(gt)

    payload = {**meta, "results": results, "goals": goal_rows}
    (state / "results.json").write_text(json.dumps(payload, indent=2))
    md = [
        f"# bronze -> silver benchmark ({meta['finished']})",
        "",
        "`seconds` is the contender's own work time (excludes interpreter / JVM start-up); `wall s` is",
        "the subprocess wall time; peak RSS covers the whole process tree. Host: "
        f"{meta['cpus']} CPUs (load average at the end {meta['load_average_at_end']}), Python {meta['python']}.",
        "",
        "| " + " | ".join(HEADERS) + " |",
        "|" + "---|" * len(HEADERS),
        *("| " + " | ".join(_fmt_row(r)) + " |" for r in results),
        "",
        "| events | goal | measured | met |",
        "|---|---|---|---|",
        *(
            f"| {g['size']:,} | {g['goal']} | {g['value']} | {'yes' if g['met'] else 'NO'} |"
            for g in goal_rows
        ),
        "",
    ]
    (state / "results.md").write_text("\n".join(md))
    console.print(f"results: {state / 'results.json'}, {state / 'results.md'}")


def default_state() -> Path:
    from lakehouse.core.settings import repo_root

    return repo_root() / ".state" / "bench"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.bronze_silver", description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", default="1000000,10000000", help="comma-separated event counts")
    p.add_argument("--skip-spark", action="store_true", help="leave out the PySpark peer")
    p.add_argument("--quick", action="store_true", help="100k events only (smoke test)")
    p.add_argument("--state", type=Path, default=None, help="bench folder (default <repo>/.state/bench)")
    p.add_argument("--child", choices=CONTENDERS, help=argparse.SUPPRESS)
    p.add_argument("--input", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--rows", type=int, help=argparse.SUPPRESS)
    p.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        child_main(args.child, args.input, args.work, args.rows, args.result)
        return 0

    state: Path = (args.state or default_state()).resolve()
    state.mkdir(parents=True, exist_ok=True)
    sizes = [100_000] if args.quick else [int(s.replace("_", "")) for s in args.sizes.split(",") if s.strip()]
    contenders = [c for c in CONTENDERS if not (c == "spark" and args.skip_spark)]
    results: list[dict[str, Any]] = []

    def log(msg: str) -> None:
        print(f"[bench] {msg}", flush=True)

    for size in sizes:
        input_root = prepare_input(state, size, log)
        for contender in contenders:
            log(f"{size:,} events: {contender} ...")
            r = measure(contender, input_root, size, state)
            log(f"{size:,} events: {contender}: {r['rows']:,} rows in {r['seconds']:.1f} s")
            results.append(r)
    results = merge_previous(state / "results.json", results)
    _ratios(results)
    meta = {
        "finished": datetime.now(UTC).isoformat(timespec="seconds"),
        "cpus": os.cpu_count(),
        "python": sys.version.split()[0],
        "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
        "sizes": sizes,
        "contenders": contenders,
        "targets": GOALS,
    }
    report(results, goals(results), state, meta)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
