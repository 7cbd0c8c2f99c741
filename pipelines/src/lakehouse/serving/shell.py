"""`lakehouse sql`: DuckDB over the lake, read-only, every Delta table under its own name.

Each table is a view `layer.name` (bronze.events, silver.events, gold.agg_daily_active_users,
ops.reconciliation, ...) over DuckDB's `delta_scan`. Time travel pins the views: the whole lake
as of a timestamp (each table at its last commit by then; tables created later are left out), or
one table at a version. Only queries run: DuckDB's own parser classifies every statement, and
anything but SELECT (and EXPLAIN of one) is refused, so the shell cannot write to the lake.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import duckdb
from duckdb import StatementType

from lakehouse.core.errors import LakehouseError
from lakehouse.core.storage import Lake
from lakehouse.serving import formats
from lakehouse.serving.lake import lake_tables, version_at

ALLOWED = (StatementType.SELECT, StatementType.EXPLAIN)
OUTPUTS = ("table", "csv", "json")


class SqlError(LakehouseError):
    """A statement was refused or failed; the message is DuckDB's first line."""


@dataclass
class Result:
    columns: list[str]
    rows: list[tuple[Any, ...]]


@dataclass
class LakeShell:
    """A DuckDB connection with the lake's tables attached by name."""

    lake: Lake
    as_of: datetime | None = None
    versions: dict[str, int] = field(default_factory=dict)
    attached: dict[str, int | None] = field(default_factory=dict)  # table -> pinned version (None: latest)
    skipped: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.con = self.lake.duckdb_with_delta()
        self.attach()

    def attach(self) -> None:
        """(Re)create every view for the current time travel settings."""
        tables = lake_tables(self.lake)
        unknown = sorted(set(self.versions) - set(tables))
        if unknown:
            raise SqlError(f"--version: no table {unknown[0]} in the lake (tables: {', '.join(tables)})")
        self.attached, self.skipped = {}, []
        for schema in sorted({t.split(".", 1)[0] for t in tables}):
            self.con.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
        for name in tables:
            version: int | None = self.versions.get(name)
            if version is None and self.as_of is not None:
                version = version_at(self.lake, name, self.as_of)
                if version is None:
                    self.skipped.append(name)
                    self.con.execute(f"DROP VIEW IF EXISTS {_qualified(name)}")
                    continue
            uri = self.lake.table_uri(name).replace("'", "''")
            pin = f", version => {int(version)}" if version is not None else ""
            try:
                self.con.execute(
                    f"CREATE OR REPLACE VIEW {_qualified(name)} AS SELECT * FROM delta_scan('{uri}'{pin})"
                )
            except duckdb.Error as exc:
                raise SqlError(f"{name}{f' version {version}' if pin else ''}: {_first_line(exc)}") from None
            self.attached[name] = version

    def run(self, text: str) -> list[Result]:
        """Run every statement of `text`; refuses all of them if any is not a query."""
        try:
            statements = self.con.extract_statements(text)
        except duckdb.Error as exc:
            raise SqlError(_first_line(exc)) from None
        if not statements:
            raise SqlError("no SQL statement given")
        for st in statements:
            if st.type not in ALLOWED:
                kind = str(st.type).rsplit(".", 1)[-1]
                raise SqlError(f"read-only: {kind} statements are refused (only SELECT and EXPLAIN run)")
        out = []
        for st in statements:
            try:
                rel = self.con.execute(st.query)
                columns = [d[0] for d in rel.description or []]
                out.append(Result(columns, rel.fetchall()))
            except duckdb.Error as exc:
                raise SqlError(_first_line(exc)) from None
        return out

    def close(self) -> None:
        self.con.close()


def _qualified(name: str) -> str:
    schema, table = name.split(".", 1)
    return f'"{schema}"."{table}"'


def _first_line(exc: Exception) -> str:
    lines = [ln.strip() for ln in str(exc).strip().splitlines() if ln.strip()]
    return lines[0] if lines else type(exc).__name__


def render_csv(result: Result) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(result.columns)
    writer.writerows(result.rows)
    return buf.getvalue()


def render_json(result: Result) -> str:
    rows = [dict(zip(result.columns, r, strict=True)) for r in result.rows]
    return formats.dumps(rows).decode()
