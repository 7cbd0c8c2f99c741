"""Quality results: one row per check per gate run, appended to Delta ops.quality_results and
to PostgreSQL <serving>.ops.quality_results (history, never overwritten)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

import psycopg
import pyarrow as pa
from psycopg import sql

from lakehouse import delta
from lakehouse.config import Settings
from lakehouse.reconcile import now
from lakehouse.storage import Lake

TABLE = "ops.quality_results"
PG_SCHEMA = "ops"
PG_TABLE = "quality_results"

SCHEMA = pa.schema(
    [
        ("run_id", pa.string()),
        ("layer", pa.string()),
        ("check_name", pa.string()),
        ("kind", pa.string()),  # contract | dbt_test | unit_test | freshness | model | publication
        ("target", pa.string()),
        ("status", pa.string()),  # pass | warn | fail | error | skipped
        ("failures", pa.int64()),
        ("message", pa.string()),
        ("checked_at", pa.timestamp("us", tz="UTC")),
        ("seconds", pa.float64()),
    ]
)
PG_DDL = """
CREATE SCHEMA IF NOT EXISTS ops;
CREATE TABLE IF NOT EXISTS ops.quality_results (
    run_id      text NOT NULL,
    layer       text NOT NULL,
    check_name  text NOT NULL,
    kind        text NOT NULL,
    target      text NOT NULL,
    status      text NOT NULL,
    failures    bigint NOT NULL,
    message     text NOT NULL,
    checked_at  timestamptz NOT NULL,
    seconds     double precision NOT NULL,
    PRIMARY KEY (run_id, layer, check_name)
);
CREATE INDEX IF NOT EXISTS quality_results_checked_at ON ops.quality_results (checked_at);
"""
BLOCKING = ("fail", "error")


@dataclass
class CheckResult:
    run_id: str
    layer: str
    check_name: str
    kind: str
    target: str
    status: str
    failures: int = 0
    message: str = ""
    checked_at: datetime = field(default_factory=now)
    seconds: float = 0.0

    @property
    def blocking(self) -> bool:
        return self.status in BLOCKING


def store(lake: Lake, results: list[CheckResult]) -> None:
    if not results:
        return
    table = pa.Table.from_pylist([asdict(r) for r in results], schema=SCHEMA)
    delta.append(lake, TABLE, table)


def publish(settings: Settings, results: list[CheckResult]) -> None:
    """Append the results to PostgreSQL ops.quality_results (serving database)."""
    if not results:
        return
    from lakehouse.jobs import postgres_dsn

    cols = [f.name for f in SCHEMA]
    with psycopg.connect(postgres_dsn(settings, settings.postgres.serving_db)) as conn:
        conn.execute(PG_DDL)
        with conn.cursor() as cur:
            cur.executemany(
                sql.SQL("INSERT INTO {} ({}) VALUES ({}) ON CONFLICT DO NOTHING").format(
                    sql.Identifier(PG_SCHEMA, PG_TABLE),
                    sql.SQL(", ").join(sql.Identifier(c) for c in cols),
                    sql.SQL(", ").join(sql.Placeholder() for _ in cols),
                ),
                [tuple(asdict(r)[c] for c in cols) for r in results],
            )


def history(lake: Lake, last: int = 50) -> list[dict[str, Any]]:
    dt = delta.open_table(lake, TABLE)
    if dt is None:
        return []
    rows: list[dict[str, Any]] = (
        dt.to_pyarrow_table().sort_by([("checked_at", "descending")]).slice(0, last).to_pylist()
    )
    return rows
