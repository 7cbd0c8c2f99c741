"""The report of `make bench-engines`: a console table, <state>/bench/engines.md and engines.json."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

from bench.engine_steps import GIB, SPARK_DRIVER_MEMORY, SPARK_MASTER, SPARK_SHUFFLE_PARTITIONS, SPARK_TUNING

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
        f"{r['cpu_ratio']:.3f}" if r.get("cpu_ratio") is not None else "-",
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
    "embedded/spark CPU",
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
        "counts and content hash of the outputs equal across the engines (DuckDB `delta_scan`). "
        "On a machine loaded by other work, wall time includes waiting for a core; CPU seconds are "
        "the steadier comparison.",
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
    if meta.get("kafka_records"):
        md += [
            "## Kafka input",
            "",
            f"One topic of {meta['kafka_records']:,} event records (3 partitions) on a local Apache Kafka "
            "broker, drained by each engine into an empty bronze.events (availableNow, "
            "`streaming.batch_max_rows` records per batch for both). Compared without the per-run "
            "columns `ingestion_time`, `batch_id` and `ordinal`.",
            "",
        ]
    if meta["not_measured"]:
        md += ["## Not measured", ""] + [f"- {k}: {v}." for k, v in meta["not_measured"].items()] + [""]
    path = state / "engines.md"
    path.write_text("\n".join(md))
    console.print(f"report: {path}")
    return path


def library_versions() -> str:
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


FRESHNESS_HEADERS = ("engine", "records", "rate asked /s", "commits", "p50 s", "p95 s", "max s", "events/s")


def write_freshness(results: list[dict[str, Any]], state: Path) -> Path:
    """The freshness step's table: <state>/freshness.json, and a section appended to engines.md."""
    (state / "freshness.json").write_text(json.dumps(results, indent=2))
    rows = [
        (
            r["engine"],
            f"{r['records']:,}",
            f"{r['rate']:,.0f}",
            str(r["commits"]),
            f"{r['p50_s']:.2f}",
            f"{r['p95_s']:.2f}",
            f"{r['max_s']:.2f}",
            f"{r['events_per_s']:,.0f}",
        )
        for r in results
    ]
    md = [
        "",
        "## Freshness, Kafka -> bronze in continuous mode",
        "",
        "Per engine a producer writes at a fixed rate for a fixed time while the consumer runs "
        "continuously (embedded: `lakehouse stream consume`; Spark: `lakehouse spark stream-bronze "
        f"--continuous --interval {engine_freshness_interval()}`); freshness of a record = the "
        "timestamp of the Delta commit that added it (commitInfo in the log) minus its Kafka "
        "CreateTime; events/s = records / (last commit - first record).",
        "",
        "| " + " | ".join(FRESHNESS_HEADERS) + " |",
        "|" + "---|" * len(FRESHNESS_HEADERS),
        *("| " + " | ".join(r) + " |" for r in rows),
        "",
    ]
    path = state / "engines.md"
    with path.open("a") as f:
        f.write("\n".join(md))
    return path


def engine_freshness_interval() -> float:
    from bench.engine_freshness import SPARK_INTERVAL_SECONDS

    return SPARK_INTERVAL_SECONDS
