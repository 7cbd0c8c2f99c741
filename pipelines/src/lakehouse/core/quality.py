"""Data quality: table contracts checked in place, and their results.

A contract is (1) the schema: required columns and their types (extra columns are allowed:
schema evolution adds them), and (2) rules: SQL over the table that counts offending rows
(0 = pass). Rules run in DuckDB over `delta_scan`, so they read what any consumer reads. Each
layer declares its own contracts; the gold layer's gate runs them.

Results: one row per check per gate run, appended to Delta ops.quality_results and to PostgreSQL
<serving>.ops.quality_results (history, never overwritten)."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

import psycopg
import pyarrow as pa
from psycopg import sql

from lakehouse.core import delta
from lakehouse.core.reconcile import now
from lakehouse.core.settings import PostgresSettings
from lakehouse.core.storage import Lake

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


def publish(serving: PostgresSettings, results: list[CheckResult]) -> None:
    """Append the results to PostgreSQL ops.quality_results (serving database)."""
    if not results:
        return
    cols = [f.name for f in SCHEMA]
    with psycopg.connect(serving.serving_dsn) as conn:
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
        delta.dataset(lake, dt).to_table().sort_by([("checked_at", "descending")]).slice(0, last).to_pylist()
    )
    return rows


TS = "timestamp[us, tz=UTC]"


@dataclass(frozen=True)
class Rule:
    name: str
    # SELECT count(*) of offending rows; `{t}` is the table, `{uri[layer.name]}` another table's
    # location (each layer may live in a bucket of its own, not under one lake root)
    sql: str
    severity: str = "error"  # error blocks the layer's gate; warn is reported only


@dataclass(frozen=True)
class Contract:
    layer: str
    table: str
    columns: dict[str, str]
    rules: tuple[Rule, ...] = field(default_factory=tuple)
    required: bool = True  # a missing table fails the gate


class TableUris:
    """`uri[layer.name]` in a rule's SQL: where that table lives in this lake."""

    def __init__(self, lake: Lake) -> None:
        self._lake = lake

    def __getitem__(self, qualified: str) -> str:
        return self._lake.table_uri(qualified)


def reconciled(step: str) -> Rule:
    """Every stored reconciliation record of `step` balances."""
    return Rule(
        f"{step}_runs_balanced",
        f"""SELECT count(*) FROM delta_scan('{{uri[ops.reconciliation]}}')
            WHERE step = '{step}' AND NOT balanced""",
    )


def _plain(t: pa.DataType) -> str:
    if pa.types.is_string_view(t) or pa.types.is_large_string(t):
        return "string"
    if pa.types.is_binary_view(t) or pa.types.is_large_binary(t):
        return "binary"
    if pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_list_view(t):
        return f"list<element: {_plain(t.value_type)}>"
    return str(t)


def schema_violations(expected: dict[str, str], actual: pa.Schema) -> list[str]:
    """Required columns missing or of another type (type drift)."""
    have = {f.name: _plain(f.type) for f in actual}
    out = []
    for name, typ in expected.items():
        if name not in have:
            out.append(f"missing column {name} ({typ})")
        elif have[name] != typ:
            out.append(f"column {name} is {have[name]}, contract says {typ}")
    return out


def check(lake: Lake, layer: str, contracts: tuple[Contract, ...], run_id: str) -> list[CheckResult]:
    """Run `contracts` (the tables of `layer`); one CheckResult per schema check and per rule."""
    out: list[CheckResult] = []
    con = None
    try:
        for c in contracts:
            start = time.perf_counter()
            dt = delta.open_table(lake, c.table)
            if dt is None:
                status = "fail" if c.required else "skipped"
                out.append(
                    CheckResult(
                        run_id,
                        layer,
                        f"{c.table}:exists",
                        "contract",
                        c.table,
                        status,
                        int(c.required),
                        "table does not exist",
                    )
                )
                continue
            problems = schema_violations(c.columns, pa.schema(dt.schema()))
            out.append(
                CheckResult(
                    run_id,
                    layer,
                    f"{c.table}:schema",
                    "contract",
                    c.table,
                    "fail" if problems else "pass",
                    len(problems),
                    "; ".join(problems),
                    seconds=round(time.perf_counter() - start, 3),
                )
            )
            if problems:
                continue  # rules assume the contract's columns
            if con is None:
                con = lake.duckdb_with_delta()
            for rule in c.rules:
                start = time.perf_counter()
                query = rule.sql.format(t=f"delta_scan('{lake.table_uri(c.table)}')", uri=TableUris(lake))
                try:
                    bad = int(con.execute(query).fetchone()[0])  # type: ignore[index]
                    status = "pass" if bad == 0 else ("warn" if rule.severity == "warn" else "fail")
                    msg = "" if bad == 0 else f"{bad} offending row(s)"
                except Exception as exc:  # a rule that cannot run is an error, not a pass
                    bad, status, msg = 1, "error", str(exc).splitlines()[0][:500]
                out.append(
                    CheckResult(
                        run_id,
                        layer,
                        f"{c.table}:{rule.name}",
                        "contract",
                        c.table,
                        status,
                        bad,
                        msg,
                        seconds=round(time.perf_counter() - start, 3),
                    )
                )
    finally:
        if con is not None:
            con.close()
    return out
