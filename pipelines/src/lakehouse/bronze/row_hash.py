"""The row hash of a PostgreSQL source row in bronze (`_row_hash`), defined once for both engines.

The hash is md5 (lower-case hex) of the row's columns, in table order, as canonical text joined
with '|'; a NULL is '∅'. The canonical text of a value is what DuckDB's CAST(... AS VARCHAR)
gives under TimeZone 'UTC', which is how the embedded extract computes it:

- integers: decimal digits; text: the string; char(n): the string without its trailing blanks
  (the Spark extract reads it as ::text); boolean: true / false;
- numeric(p, s): plain notation with exactly s digits after the point ('12.50', '-0.05');
- timestamptz: 'YYYY-MM-DD HH:MM:SS' in UTC, then '.' and the microseconds without trailing
  zeros when they are not 0, then '+00' ('2026-11-01 09:30:00.25+00'); timestamp: the same
  without '+00'; date: 'YYYY-MM-DD'.

Spark renders some of these differently by default (a timestamp's fraction, the offset), so
`spark_sql` spells each type's rendering out; a column of any other type (double, json, arrays,
...) has no rendering both engines agree on and is refused by the Spark extract in one line.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from pyspark.sql.types import StructType

NULL_TEXT = "∅"


def duckdb_sql(columns: list[str]) -> str:
    """DuckDB SQL of the hash over `columns` (run with TimeZone 'UTC')."""
    return (
        "md5(concat_ws('|', "
        + ", ".join(f"COALESCE(CAST({c} AS VARCHAR), '{NULL_TEXT}')" for c in columns)
        + "))"
    )


def _timestamp_text(c: str, offset: str) -> str:
    micros = f"pmod(unix_micros({c}), 1000000)"
    fraction = f"regexp_replace(concat('.', lpad(CAST({micros} AS STRING), 6, '0')), '0+$', '')"
    return (
        f"concat(date_format({c}, 'yyyy-MM-dd HH:mm:ss'), "
        f"CASE WHEN {micros} = 0 THEN '' ELSE {fraction} END, '{offset}')"
    )


def spark_text(column: str, type_name: str) -> str | None:
    """Spark SQL rendering one column's value as canonical text (session time zone UTC), or
    None when the type has no canonical form. `type_name` is the Spark type's simpleString."""
    c = f"`{column}`"
    if type_name in ("tinyint", "smallint", "int", "bigint", "string", "boolean", "date"):
        return f"CAST({c} AS STRING)"
    if type_name.startswith("decimal("):
        return f"CAST({c} AS STRING)"
    if type_name == "timestamp":  # an instant (PostgreSQL timestamptz)
        return _timestamp_text(c, "+00")
    if type_name == "timestamp_ntz":
        return _timestamp_text(c, "")
    return None


def unsupported(schema: StructType) -> list[str]:
    """'column (type)' for each column of `schema` without a canonical text form."""
    return [
        f"{f.name} ({f.dataType.simpleString()})"
        for f in schema.fields
        if spark_text(f.name, f.dataType.simpleString()) is None
    ]


def spark_sql(schema: StructType) -> str:
    """Spark SQL of the hash over every column of `schema` (session time zone UTC)."""
    parts = [
        f"COALESCE({spark_text(f.name, f.dataType.simpleString())}, '{NULL_TEXT}')" for f in schema.fields
    ]
    return f"md5(CAST(concat_ws('|', {', '.join(parts)}) AS BINARY))"
