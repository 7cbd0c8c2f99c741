"""Embedded engine: DuckDB executes the shared SQL over Arrow data from delta-rs.

Only the JSON primitive (one object -> one VARCHAR column per field) and key discovery are
engine-specific; everything else is `silver.events_sql`.
"""

from __future__ import annotations

import json
import re

import duckdb

from lakehouse.silver.events_sql import LINEAGE, ExtraColumn

SAMPLE_ROWS = 10_000
COLUMN_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
# CASE, not AND: DuckDB evaluates both sides of AND in a projection, and JSON functions raise on
# malformed text. Valid JSON text that starts with '{' is an object.
OBJECT_TEST = (
    "CASE WHEN raw_bytes IS NULL AND json_valid(value) THEN regexp_matches(value, '^\\s*[{]') ELSE false END"
)


def parsed_sql(source: str, fields: tuple[str, ...]) -> str:
    """SELECT over `source` (bronze rows) giving the `parsed` relation of events_sql."""
    spec = json.dumps({f: "VARCHAR" for f in fields}).replace("'", "''")
    cols = ", ".join(f"j.{f} AS f_{f}" for f in fields)
    lineage = ", ".join(LINEAGE)
    return f"""
SELECT {lineage}, _utf8_ok, _json_ok, _is_object, {cols}
FROM (
  SELECT
    {lineage},
    raw_bytes IS NULL AS _utf8_ok,
    COALESCE(raw_bytes IS NULL AND json_valid(value), false) AS _json_ok,
    {OBJECT_TEST} AS _is_object,
    CASE WHEN {OBJECT_TEST} THEN json_transform(value, '{spec}') END AS j
  FROM {source}
)
"""


def _sql_type(json_types: set[str]) -> str:
    if json_types <= {"BIGINT", "UBIGINT"}:
        return "BIGINT"
    if json_types <= {"BIGINT", "UBIGINT", "DOUBLE"}:
        return "DOUBLE"
    if json_types == {"BOOLEAN"}:
        return "BOOLEAN"
    return "VARCHAR"


def discover_fields(
    con: duckdb.DuckDBPyConnection, source: str, known: set[str]
) -> tuple[list[ExtraColumn], list[str]]:
    """New top-level keys in `source`: (columns to add, keys that cannot become columns)."""
    rows = con.execute(
        f"SELECT DISTINCT k FROM (SELECT unnest(json_keys(value)) AS k FROM {source} WHERE {OBJECT_TEST})"
    ).fetchall()
    new = sorted({r[0] for r in rows} - known)
    columns, rejected = [], []
    for key in new:
        if not COLUMN_NAME.match(key):
            rejected.append(key)
            continue
        # Infer the type from a sample of the rows that carry the field (as Auto Loader does);
        # later values that do not fit become NULL with a type_mismatch warning.
        types = con.execute(
            f"""SELECT DISTINCT json_type(value, '$."{key}"') FROM (
                  SELECT value, raw_bytes FROM {source} WHERE contains(value, '"{key}"') LIMIT {SAMPLE_ROWS * 2})
                WHERE {OBJECT_TEST} AND json_exists(value, '$."{key}"')"""
        ).fetchall()
        present = {t[0] for t in types if t[0] not in (None, "NULL")}
        columns.append(ExtraColumn(key, _sql_type(present) if present else "VARCHAR"))
    return columns, rejected
