"""The two engines on the same Delta tables: the embedded engine (delta-rs + DuckDB) against
delta-spark on `local[2]`, in one run.

Measured steps, each in a subprocess of its own (the Spark JVM is a child of it):

* silver    bronze.events -> silver.events + silver.quarantine_events: `silver.events.run`
            (embedded) against `silver.spark.writer.run` (the `lakehouse spark silver` job), over
            the same cached bronze table (hard-linked into a fresh lake for every run).
* merge     MERGE of a change batch into a 1M-row current-state table (silver.orders):
            `silver.current_state.apply` against `silver.spark.current_state.apply`, both on the
            same starting table (written once by the embedded engine, handed over to Spark).
* scd2      the SCD2 MERGE of a change batch into a 1M-row dimension (silver.dim_customer):
            `silver.scd2.apply` against `silver.spark.scd2.apply`, same starting table.
* kafka     one topic of `--kafka-records` records (3 partitions, on a local Apache Kafka broker
            the bench starts) drained into an empty bronze.events: the embedded consumer
            (`lakehouse stream consume --available-now`) against the Structured Streaming job
            (`lakehouse spark stream-bronze`, availableNow), the same batch size for both.
* freshness Kafka -> bronze in continuous mode while a producer writes at a fixed rate for a
            fixed time (`bench.engine_freshness`): p50/p95/max of commit time minus Kafka
            timestamp per record, from the Delta log, and the sustained events/s.

Per run: wall time of the subprocess, the step's own seconds (Spark's start-up excluded), CPU
seconds of the whole process tree (getrusage of the waited-for children, the JVM included, or the
psutil samples of the tree when those are higher), peak RSS of the process tree (psutil, polled
every 50 ms) and its RSS when the step started, rows out, files written. The outputs of the two
engines are compared through an independent reader (DuckDB `delta_scan`): row counts and an
order-independent hash of every column but the per-run ones. Figures of a step whose outputs
differ do not count: the report says so and the command exits non-zero.

Inputs are built once per size under <state>/bench/ and reused. Results: a console table,
<state>/bench/engines.md and engines.json.

    python -m bench.engines [--events 1000000] [--merge-rows 1000000] [--kafka-records 1000000]
                            [--skip-merge] [--skip-silver] [--skip-kafka] [--skip-freshness]
                            [--freshness-rate 2000] [--freshness-seconds 60]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import engine_freshness
from bench.bronze_silver import prepare_input
from bench.engine_measure import compare, measure
from bench.engine_report import library_versions, spark_settings, write_freshness, write_report
from bench.engine_steps import (
    GIB,
    NOT_MEASURED,
    OUTPUTS,
    change_batch_shape,
    child_main,
    log,
    prepare_kafka_input,
    prepare_merge_input,
)

__all__ = ["change_batch_shape", "compare", "main", "measure", "run"]


def default_state() -> Path:
    from lakehouse.core.settings import repo_root

    return repo_root() / ".state" / "bench"


def run(
    state: Path,
    events: int,
    merge_rows: int,
    *,
    silver: bool = True,
    merge: bool = True,
    kafka_records: int | None = None,
    freshness: tuple[float, float] | None = None,
) -> tuple[list[dict[str, Any]], list[str]]:
    """Every measured step on both engines (Kafka -> bronze when `kafka_records` is given, the
    freshness step when `freshness` = (events/s, seconds) is); returns the results and the
    output differences."""
    if not kafka_records and freshness is None:
        return _run(state, events, merge_rows, silver=silver, merge=merge, kafka=None)
    from lakehouse.services.apache_kafka import ApacheKafka
    from lakehouse.services.process import free_port

    broker = ApacheKafka(base=state / "kafka-broker", port=free_port(), topic="bench", partitions=3)
    shutil.rmtree(broker.base, ignore_errors=True)  # a fresh log: topics are made per run
    broker.start()
    try:
        kafka = (broker, kafka_records) if kafka_records else None
        results, problems = _run(state, events, merge_rows, silver=silver, merge=merge, kafka=kafka)
        if freshness is not None:
            rate, seconds = freshness
            fresh = engine_freshness.run(state, broker, rate, seconds, ("embedded", "spark"))
            write_freshness(fresh, state)
        return results, problems
    finally:
        broker.stop()


def _run(
    state: Path, events: int, merge_rows: int, *, silver: bool, merge: bool, kafka: tuple[Any, int] | None
) -> tuple[list[dict[str, Any]], list[str]]:
    import psutil

    state.mkdir(parents=True, exist_ok=True)
    keep = state / "engines-out"
    shutil.rmtree(keep, ignore_errors=True)
    keep.mkdir()
    load_start = [round(x, 2) for x in os.getloadavg()]
    plan: list[tuple[str, list[str], Path, int]] = []
    if silver:
        log(f"bronze.events for {events:,} events (generated once, cached under {state})")
        plan.append(("silver", ["embedded", "spark"], prepare_input(state, events, log), events))
    if merge:
        log(f"{merge_rows:,}-row MERGE tables (built once, cached under {state})")
        merge_input = prepare_merge_input(state, merge_rows)
        plan.append(("merge", ["embedded", "spark"], merge_input, merge_rows))
        plan.append(("scd2", ["embedded", "spark"], merge_input, merge_rows))
    if kafka is not None:
        broker, records = kafka
        log(f"a topic of {records:,} records on Apache Kafka at {broker.bootstrap}")
        plan.append(("kafka", ["embedded", "spark"], prepare_kafka_input(state, records, broker), records))
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
            runs["embedded"]["cpu_ratio"] = runs["embedded"]["cpu_seconds"] / runs["spark"]["cpu_seconds"]
        results += runs.values()
    meta = {
        "finished": datetime.now(UTC).isoformat(timespec="seconds"),
        "cpus": os.cpu_count(),
        "memory_gib": round(psutil.virtual_memory().total / GIB, 1),
        "python": sys.version.split()[0],
        "versions": library_versions(),
        "load_average_at_start": load_start,
        "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
        "events": events if silver else None,
        "merge_rows": merge_rows if merge else None,
        "merge_shape": change_batch_shape(merge_rows) if merge else None,
        "kafka_records": kafka[1] if kafka is not None else None,
        "spark_settings": spark_settings(),
        "digests": digests,
        "not_measured": NOT_MEASURED,
    }
    write_report(results, problems, state, meta)
    for r in results:
        if r.get("ratio") is not None:
            log(
                f"{r['step']}: embedded/spark time {r['ratio']:.2f} "
                f"(spark takes {1 / r['ratio']:.1f}x the embedded engine's time), "
                f"CPU {r['cpu_ratio']:.2f} ({1 / r['cpu_ratio']:.1f}x)"
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
    p.add_argument("--skip-merge", action="store_true", help="no MERGE steps")
    p.add_argument("--skip-silver", action="store_true", help="no silver events step")
    p.add_argument(
        "--kafka-records",
        type=int,
        default=None,
        help="records in the Kafka -> bronze step's topic (default: --events)",
    )
    p.add_argument("--skip-kafka", action="store_true", help="no Kafka -> bronze step")
    p.add_argument("--skip-freshness", action="store_true", help="no continuous-mode freshness step")
    p.add_argument(
        "--freshness-rate", type=float, default=2000.0, help="events/s the freshness producer writes"
    )
    p.add_argument(
        "--freshness-seconds", type=float, default=60.0, help="seconds the freshness producer writes"
    )
    p.add_argument("--state", type=Path, default=None, help="bench folder (default <repo>/.state/bench)")
    p.add_argument("--child", help=argparse.SUPPRESS)
    p.add_argument("--input", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--rows", type=int, help=argparse.SUPPRESS)
    p.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        step, _, engine = args.child.partition(":")
        if step == "freshness":
            engine_freshness.child(engine, args.work)
            return 0
        child_main(step, engine, args.input, args.work, args.rows, args.result)
        return 0
    if args.skip_merge and args.skip_silver and args.skip_kafka and args.skip_freshness:
        print(
            "bench-engines: --skip-merge, --skip-silver, --skip-kafka and --skip-freshness leave nothing to measure",
            file=sys.stderr,
        )
        return 2
    kafka_records = None if args.skip_kafka else (args.kafka_records or args.events)
    if args.events <= 0 or args.merge_rows <= 0 or (kafka_records is not None and kafka_records <= 0):
        print("bench-engines: --events, --merge-rows and --kafka-records must be positive", file=sys.stderr)
        return 2
    if args.freshness_rate <= 0 or args.freshness_seconds <= 0:
        print("bench-engines: --freshness-rate and --freshness-seconds must be positive", file=sys.stderr)
        return 2
    freshness = None if args.skip_freshness else (args.freshness_rate, args.freshness_seconds)
    from lakehouse.core.errors import LakehouseError

    state: Path = (args.state or default_state()).resolve()
    try:
        _, problems = run(
            state,
            args.events,
            args.merge_rows,
            silver=not args.skip_silver,
            merge=not args.skip_merge,
            kafka_records=kafka_records,
            freshness=freshness,
        )
    except (LakehouseError, RuntimeError) as exc:
        print(f"bench-engines: {exc}", file=sys.stderr)
        return 1
    if problems:
        print("bench-engines: the engines' outputs differ, the figures do not count", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
