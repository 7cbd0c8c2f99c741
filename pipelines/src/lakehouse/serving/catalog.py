"""What the API serves: the published gold marts and the speed layer's window tables, described
from PostgreSQL's own catalog (columns, types, primary keys, comments)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import psycopg
import pyarrow as pa

from lakehouse.core.ops_db import REALTIME_WINDOWS

GOLD = "gold"
REALTIME = "realtime"
# The speed layer's tables worth serving (its offsets and state row are bookkeeping).
REALTIME_TABLES = REALTIME_WINDOWS
_INTEGERS = {"smallint": pa.int16(), "integer": pa.int32(), "bigint": pa.int64()}
_TIME_TYPES = ("date", "timestamp with time zone", "timestamp without time zone")


@dataclass(frozen=True)
class Column:
    name: str
    pg_type: str  # format_type(): bigint, numeric(18,2), timestamp with time zone, ...
    nullable: bool
    description: str = ""

    @property
    def arrow(self) -> pa.DataType:
        t = self.pg_type
        if t in _INTEGERS:
            return _INTEGERS[t]
        if t.startswith("numeric(") and t.endswith(")"):
            p, s = (int(x) for x in t[len("numeric(") : -1].split(","))
            return pa.decimal128(p, s)
        return {
            "double precision": pa.float64(),
            "real": pa.float32(),
            "boolean": pa.bool_(),
            "date": pa.date32(),
            "timestamp with time zone": pa.timestamp("us", tz="UTC"),
            "timestamp without time zone": pa.timestamp("us"),
        }.get(t, pa.string())

    @property
    def kind(self) -> str:
        """How a request names a value of this column: integer | number | boolean | date | timestamp | text."""
        t = self.pg_type
        if t in _INTEGERS:
            return "integer"
        if t.startswith("numeric") or t in ("double precision", "real"):
            return "number"
        if t == "boolean":
            return "boolean"
        if t == "date":
            return "date"
        if t.startswith("timestamp"):
            return "timestamp"
        return "text"


@dataclass(frozen=True)
class Dataset:
    name: str  # schema.table, as the API names it
    schema: str
    table: str
    kind: str  # gold | realtime
    description: str
    columns: tuple[Column, ...]
    primary_key: tuple[str, ...]
    by_name: dict[str, Column] = field(compare=False, repr=False, default_factory=dict)

    def __post_init__(self) -> None:
        self.by_name.update({c.name: c for c in self.columns})

    @property
    def time_column(self) -> str | None:
        """What `from` / `to` filter: the first date or timestamp of the key, else of the table
        (never the bookkeeping `updated_at`)."""
        for names in (self.primary_key, [c.name for c in self.columns]):
            for name in names:
                col = self.by_name[name]
                if col.pg_type in _TIME_TYPES and name != "updated_at":
                    return name
        return None

    @property
    def dimensions(self) -> tuple[str, ...]:
        """Columns a request may filter by equality: the key, and every text, boolean or date column."""
        return tuple(
            c.name
            for c in self.columns
            if c.name in self.primary_key or c.kind in ("text", "boolean", "date")
        )

    @property
    def order_key(self) -> tuple[str, ...]:
        """The default order, and the tie-breaker that makes pages stable."""
        return self.primary_key or tuple(c.name for c in self.columns)

    def arrow_schema(self, names: list[str]) -> pa.Schema:
        return pa.schema([pa.field(n, self.by_name[n].arrow, self.by_name[n].nullable) for n in names])


_CATALOG_SQL = """
SELECT n.nspname, c.relname, coalesce(obj_description(c.oid, 'pg_class'), ''),
       a.attname, format_type(a.atttypid, a.atttypmod), NOT a.attnotnull,
       coalesce(col_description(c.oid, a.attnum), ''),
       coalesce(a.attnum = ANY (pk.conkey), false)
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
LEFT JOIN pg_constraint pk ON pk.conrelid = c.oid AND pk.contype = 'p'
WHERE c.relkind IN ('r', 'p', 'v', 'm')
  AND (n.nspname = %s OR (n.nspname = %s AND c.relname = ANY(%s)))
ORDER BY n.nspname, c.relname, a.attnum
"""
_PK_ORDER_SQL = """
SELECT n.nspname, c.relname, a.attname
FROM pg_constraint pk
JOIN pg_class c ON c.oid = pk.conrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN LATERAL unnest(pk.conkey) WITH ORDINALITY AS k(attnum, pos) ON true
JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.attnum
WHERE pk.contype = 'p' AND n.nspname IN (%s, %s)
ORDER BY n.nspname, c.relname, k.pos
"""


def _build(rows: list[tuple[Any, ...]], pk_rows: list[tuple[Any, ...]]) -> dict[str, Dataset]:
    pks: dict[str, list[str]] = {}
    for schema, table, col in pk_rows:
        pks.setdefault(f"{schema}.{table}", []).append(col)
    cols: dict[str, list[Column]] = {}
    comments: dict[str, str] = {}
    for schema, table, comment, name, pg_type, nullable, col_comment, _in_pk in rows:
        key = f"{schema}.{table}"
        comments[key] = comment
        cols.setdefault(key, []).append(Column(name, pg_type, bool(nullable), col_comment))
    out = {}
    for key, columns in cols.items():
        schema, table = key.split(".", 1)
        out[key] = Dataset(
            key,
            schema,
            table,
            "gold" if schema == GOLD else "realtime",
            comments[key].strip(),
            tuple(columns),
            tuple(pks.get(key, ())),
        )
    return dict(sorted(out.items()))


def load(conn: psycopg.Connection[Any]) -> dict[str, Dataset]:
    """Every dataset in the serving database, by name."""
    rows = conn.execute(_CATALOG_SQL, [GOLD, REALTIME, list(REALTIME_TABLES)]).fetchall()
    pk_rows = conn.execute(_PK_ORDER_SQL, [GOLD, REALTIME]).fetchall()
    return _build(rows, pk_rows)


async def load_async(conn: psycopg.AsyncConnection[Any]) -> dict[str, Dataset]:
    rows = await (await conn.execute(_CATALOG_SQL, [GOLD, REALTIME, list(REALTIME_TABLES)])).fetchall()
    pk_rows = await (await conn.execute(_PK_ORDER_SQL, [GOLD, REALTIME])).fetchall()
    return _build(rows, pk_rows)
