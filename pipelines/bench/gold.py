"""Gold benchmark: dbt build time over N silver events, publication time, and the latency of the
dashboard queries on the PostgreSQL marts (p50/p95/max as the read-only BI role).

Setup (not timed): a private PostgreSQL on a free loopback port; the source database from the
generator, extracted to bronze and applied to silver (SCD2 dimensions, orders) by the real jobs;
silver.events synthesised in DuckDB with the generator's shapes (event-type weights, users,
pages, channels, prices, 7 days), written as the real partitioned Delta table. Synthesising keeps
the bench about the gold layer: bronze -> silver has its own bench (bench/bronze_silver.py).

Timed: `dbt build` (seed, 23 models with enforced contracts, 110 data tests, unit tests) on
DuckDB over delta_scan; `lakehouse gold publish` (atomic swap into PostgreSQL gold.*); each
dashboard query (lakehouse.gold.kpis.DASHBOARD_QUERIES) --iterations times after a warm-up.

    python -m bench.gold [--events 10000000] [--iterations 200] [--keep]

Results: a table on the console and <state>/bench/gold-<events>/results.json.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

GOALS = {"dashboard_p95_ms": 50.0, "seed_dashboard_ms": 100.0}
EVENT_TYPES = ("page_view", "click", "add_to_cart", "login", "logout", "purchase")
EVENT_WEIGHTS = (50, 25, 9, 7, 5, 4)


def _settings(root: Path, events: int, port: int) -> Any:
    from lakehouse.core.settings import load_settings

    return load_settings(
        "local",
        overrides={
            "lake_root": str(root / "lake"),
            "state_dir": str(root / "state"),
            "postgres.port": port,
            "generator.events": events,
        },
    )


def _synthesise_events(lake: Any, events: int, users: int, start: datetime, days: int) -> float:
    """silver.events with `events` rows, written in partitioned Delta commits; returns seconds."""
    from lakehouse.core import delta

    cum, acc = [], 0
    for w in EVENT_WEIGHTS:
        acc += w
        cum.append(acc)
    case = " ".join(f"WHEN r < {c / acc} THEN '{t}'" for c, t in zip(cum[:-1], EVENT_TYPES[:-1], strict=True))
    span = days * 86_400
    t0 = time.perf_counter()
    con = lake.duckdb(memory_limit="2GB")
    try:
        chunk = 2_000_000
        for first in range(0, events, chunk):
            n = min(chunk, events - first)
            reader = con.execute(
                f"""
                WITH base AS (
                  SELECT i, CAST(hash(i) >> 1 AS BIGINT) AS h, (hash(i * 7 + 1) % 1000000) / 1000000.0 AS r
                  FROM range({first}, {first + n}) t(i)
                ), typed AS (
                  SELECT *, CASE {case} ELSE 'purchase' END AS event_type,
                         TIMESTAMPTZ '{start.isoformat()}' + to_microseconds(CAST((h % {span * 1_000_000}) AS BIGINT)) AS ts
                  FROM base
                )
                SELECT
                  'e' || CAST(i AS VARCHAR) AS event_id,
                  CAST(1 + (h >> 8) % {users} AS BIGINT) AS user_id,
                  event_type, ts, CAST(ts AS DATE) AS event_date,
                  (['/', '/home', '/search', '/deals', '/product', '/cart', '/checkout', '/account', '/help', '/blog'])[1 + (h >> 16) % 10] AS page,
                  (['web', 'mobile', 'email', 'ads', 'partner'])[1 + (h >> 20) % 5] AS source,
                  (['desktop', 'mobile', 'tablet'])[1 + (h >> 24) % 3] AS device,
                  (['US', 'GB', 'DE', 'FR', 'PL', 'NL'])[1 + (h >> 28) % 6] AS country,
                  CASE WHEN event_type IN ('add_to_cart', 'purchase') THEN CAST(1 + (h >> 32) % 500 AS BIGINT) END AS product_id,
                  CASE WHEN event_type IN ('add_to_cart', 'purchase') THEN CAST(5 + (h >> 36) % 20000 / 100.0 AS DECIMAL(18, 2)) END AS price,
                  CASE WHEN event_type IN ('add_to_cart', 'purchase') THEN CAST(1 + (h >> 40) % 3 AS INTEGER) END AS quantity,
                  CASE WHEN event_type IN ('add_to_cart', 'purchase') THEN 'USD' END AS currency,
                  CASE WHEN event_type IN ('add_to_cart', 'purchase') THEN CAST((5 + (h >> 36) % 20000 / 100.0) * (1 + (h >> 40) % 3) AS DECIMAL(18, 2)) END AS amount,
                  CASE WHEN event_type IN ('add_to_cart', 'purchase') THEN CAST((5 + (h >> 36) % 20000 / 100.0) * (1 + (h >> 40) % 3) AS DECIMAL(18, 2)) END AS amount_base,
                  CAST(NULL AS VARCHAR) AS campaign,
                  md5(CAST(i AS VARCHAR)) AS payload_hash,
                  now() AS _ingestion_time,
                  'bench' AS _run_id
                FROM typed
                """
            ).to_arrow_reader(250_000)
            delta.append(lake, "silver.events", reader, partition_by=["event_date"])
    finally:
        con.close()
    return time.perf_counter() - t0


def _quarantine(lake: Any) -> None:
    import pyarrow as pa

    from lakehouse.core import delta

    now = datetime.now(UTC)
    delta.append(
        lake,
        "silver.quarantine_events",
        pa.table(
            {
                "run_id": ["bench"] * 3,
                "quarantined_at": pa.array([now] * 3, pa.timestamp("us", tz="UTC")),
                "reasons": [["malformed_json"], ["negative_price"], ["missing_ts", "invalid_user_id"]],
                "raw_value": ["{", '{"price": -1}', "{}"],
                "source_system": ["bench"] * 3,
                "source_file": ["bench"] * 3,
                "source_line": pa.array([1, 2, 3], pa.int64()),
                "ingestion_time": pa.array([now] * 3, pa.timestamp("us", tz="UTC")),
            }
        ),
    )


def _percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1))))
    return ordered[k]


def _time_queries(dsn: str, iterations: int) -> dict[str, dict[str, float]]:
    import psycopg

    from lakehouse.gold.kpis import DASHBOARD_QUERIES

    out: dict[str, dict[str, float]] = {}
    with psycopg.connect(dsn, autocommit=True) as conn:
        for name, query in DASHBOARD_QUERIES.items():
            for _ in range(5):  # warm-up: plan cache, buffers
                conn.execute(query).fetchall()
            samples = []
            for _ in range(iterations):
                t = time.perf_counter()
                conn.execute(query).fetchall()
                samples.append((time.perf_counter() - t) * 1000)
            out[name] = {
                "p50_ms": round(statistics.median(samples), 3),
                "p95_ms": round(_percentile(samples, 95), 3),
                "max_ms": round(max(samples), 3),
            }
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--iterations", type=int, default=200, help="timed runs of each dashboard query")
    parser.add_argument("--keep", action="store_true", help="keep the lake and PostgreSQL data afterwards")
    args = parser.parse_args(argv)

    from rich.console import Console
    from rich.table import Table

    from lakehouse.app import jobs
    from lakehouse.core.reconcile import new_run_id
    from lakehouse.core.settings import repo_root
    from lakehouse.core.storage import Lake
    from lakehouse.gold import build as gold_build
    from lakehouse.gold import publish
    from lakehouse.gold.dbt import DbtProject
    from lakehouse.services.postgres import LocalPostgres
    from lakehouse.services.process import free_port
    from lakehouse.silver import reference

    console = Console(width=160)
    root = repo_root() / ".state" / "bench" / f"gold-{args.events}"
    if root.exists():
        shutil.rmtree(root)
    settings = _settings(root, args.events, free_port())
    pg = LocalPostgres.from_settings(settings)
    result: dict[str, Any] = {"events": args.events, "started_at": datetime.now(UTC).isoformat()}
    try:
        t = time.perf_counter()
        pg.start()
        lake = Lake(settings)
        jobs.generate_source(settings)
        run_id = new_run_id()
        jobs.bronze(lake, settings, run_id, sources=("postgres",))
        jobs.silver(lake, settings, run_id)
        reference.publish(lake, settings.silver.base_currency)
        _quarantine(lake)
        g = settings.generator
        result["synthesise_events_s"] = round(
            _synthesise_events(lake, args.events, g.users, g.start, g.days), 1
        )
        result["setup_s"] = round(time.perf_counter() - t, 1)
        console.print(
            f"setup: {result['setup_s']}s (silver.events: {lake.table('silver.events').count():,} rows)"
        )

        built = gold_build.build(DbtProject.from_settings(settings), lake)
        if not built.ok:
            console.print(built.run.output[-4000:], markup=False, highlight=False)
            return 1
        result["dbt_build_s"] = round(built.run.seconds, 1)
        result["gold_build_total_s"] = round(built.seconds, 1)  # + results and Delta export
        models = sorted(
            (r for r in built.run.results if r.resource_type == "model"), key=lambda r: -r.seconds
        )
        result["slowest_models"] = {r.name: round(r.seconds, 2) for r in models[:5]}
        result["tests"] = sum(1 for r in built.run.results if r.resource_type in ("test", "unit_test"))
        pub = publish.publish(DbtProject.from_settings(settings))
        result["publish_s"] = round(pub.seconds, 1)
        result["published_rows"] = pub.tables
        bi_dsn = f"postgresql://{publish.bi_role()}@127.0.0.1:{settings.postgres.port}/{settings.postgres.serving_db}"
        result["queries"] = _time_queries(bi_dsn, args.iterations)
        result["dashboard_p95_ms_worst"] = max(q["p95_ms"] for q in result["queries"].values())
        result["goals"] = GOALS
    finally:
        pg.stop()
        if not args.keep:
            for sub in ("lake", "state/gold", "state/postgres"):
                shutil.rmtree(root / sub, ignore_errors=True)

    table = Table(title=f"Gold bench: {args.events:,} silver events", title_justify="left")
    table.add_column("measure")
    table.add_column("value", justify="right")
    for key in ("setup_s", "dbt_build_s", "gold_build_total_s", "publish_s", "tests"):
        table.add_row(key, str(result[key]))
    for name, secs in result["slowest_models"].items():
        table.add_row(f"  model {name} (s)", str(secs))
    for name, q in result["queries"].items():
        table.add_row(
            f"query {name}", f"p50 {q['p50_ms']:.2f} ms  p95 {q['p95_ms']:.2f} ms  max {q['max_ms']:.2f} ms"
        )
    worst = result["dashboard_p95_ms_worst"]
    verdict = "[green]meets[/]" if worst <= GOALS["dashboard_p95_ms"] else "[red]misses[/]"
    table.add_row("worst dashboard p95", f"{worst:.2f} ms ({verdict} the 50 ms goal)")
    console.print(table)
    root.mkdir(parents=True, exist_ok=True)
    (root / "results.json").write_text(json.dumps(result, indent=2, default=str))
    console.print(f"results: {root / 'results.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
