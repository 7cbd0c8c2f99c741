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
SELECT {lineage}, _utf8_ok, _json_ok, _is_object, _record_bytes, {cols}
FROM (
  SELECT
    {lineage},
    raw_bytes IS NULL AS _utf8_ok,
    COALESCE(strlen(value), octet_length(raw_bytes), 0) AS _record_bytes,
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
    valid = [k for k in new if COLUMN_NAME.match(k)]
    rejected = [k for k in new if not COLUMN_NAME.match(k)]
    if not valid:
        return [], rejected
    # Infer each type from a sample of the rows that carry the field (as Auto Loader does); later
    # values that do not fit become NULL with a type_mismatch warning. One shared sample first;
    # a rare field that missed it gets a sample of its own.
    seen = _json_types(con, source, valid)
    for key in [k for k in valid if not seen[k]]:
        seen.update(_json_types(con, source, [key]))
    columns = []
    for key in valid:
        present = {t for t in seen[key] if t != "NULL"}
        columns.append(ExtraColumn(key, _sql_type(present) if present else "VARCHAR"))
    return columns, rejected


def _json_types(con: duckdb.DuckDBPyConnection, source: str, keys: list[str]) -> dict[str, set[str]]:
    """JSON types (json_type names, 'NULL' for JSON null) of `keys` in a sample of the rows of
    `source` that carry any of them; an empty set when no sampled row has the key."""
    carries = " OR ".join(f"contains(value, '\"{k}\"')" for k in keys)
    types = ", ".join(f"list_distinct(list(json_type(value, '$.\"{k}\"')))" for k in keys)
    row = con.execute(
        f"""SELECT {types} FROM (
              SELECT value, raw_bytes FROM {source} WHERE {carries} LIMIT {SAMPLE_ROWS * 2})
            WHERE {OBJECT_TEST}"""
    ).fetchone()
    return {k: set(found or ()) for k, found in zip(keys, row or [None] * len(keys), strict=True)}
