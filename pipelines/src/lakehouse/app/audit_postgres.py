"""PostgreSQL source rows per updated_at window against bronze.<table>.

Bronze keeps every version of a source row it extracted, by (key, updated_at); the source holds
each row's current version. Every source row at or below bronze's high-water mark (the largest
updated_at it holds) must therefore be in bronze under the same key and updated_at: one missing
is lost. A (key, updated_at, row hash) bronze holds more than once is repeated. Rows above the
mark are what the next extraction takes (reported, not counted). Counts are per day of
updated_at, so a difference points at its window.
"""

from __future__ import annotations

import pyarrow as pa

from lakehouse.app.audit_result import AuditResult
from lakehouse.bronze.postgres_extract import SCHEMA, SOURCE_TABLES, SourceTable, attach
from lakehouse.core import delta
from lakehouse.core.errors import ServiceError
from lakehouse.core.storage import Lake

CHECK = "postgres_rows"


def postgres_vs_bronze(lake: Lake, dsn: str) -> list[AuditResult]:
    """One result per source table bronze has extracted ([] when it has extracted none)."""
    tables = [t for t in SOURCE_TABLES if lake.exists(t.bronze)]
    if not tables:
        return []
    con = lake.duckdb()
    try:
        try:
            attach(con, dsn)
        except ServiceError as exc:
            return [
                AuditResult(CHECK, f"postgres:{SCHEMA}.{t.name}", t.bronze, detail=f"{exc}: not checked")
                for t in tables
            ]
        return [_table(lake, con, t) for t in tables]
    finally:
        con.close()


def _table(lake: Lake, con: object, table: SourceTable) -> AuditResult:
    import duckdb

    assert isinstance(con, duckdb.DuckDBPyConnection)
    result = AuditResult(CHECK, f"postgres:{SCHEMA}.{table.name}", table.bronze)
    dt = delta.open_table(lake, table.bronze)
    assert dt is not None
    keys = list(table.keys)
    bronze: pa.Table = delta.dataset(lake, dt).to_table(columns=[*keys, "updated_at", "_row_hash"])
    con.register("bronze", bronze)
    key_cols = ", ".join(keys)
    match = " AND ".join(f"b.{k} = s.{k}" for k in [*keys, "updated_at"])
    windows = con.execute(
        f"""WITH mark AS (SELECT max(updated_at) AS hwm FROM bronze),
            source AS (
              SELECT {key_cols}, updated_at FROM src.{SCHEMA}.{table.name}
              WHERE updated_at <= (SELECT hwm FROM mark)
            ),
            versions AS (SELECT DISTINCT {key_cols}, updated_at FROM bronze)
            SELECT strftime(timezone('UTC', s.updated_at), '%Y-%m-%d') AS w, count(*) AS expected,
                   count(*) FILTER (WHERE EXISTS (SELECT 1 FROM versions AS b WHERE {match})) AS found
            FROM source AS s GROUP BY w ORDER BY w"""
    ).fetchall()
    repeated, pending, hwm = con.execute(
        f"""SELECT
              (SELECT coalesce(sum(n - 1), 0) FROM (
                 SELECT count(*) AS n FROM bronze GROUP BY {key_cols}, updated_at, _row_hash HAVING n > 1)),
              (SELECT count(*) FROM src.{SCHEMA}.{table.name}
               WHERE updated_at > (SELECT max(updated_at) FROM bronze)),
              (SELECT CAST(max(updated_at) AS VARCHAR) FROM bronze)"""
    ).fetchone() or (0, 0, None)
    con.unregister("bronze")
    differing = []
    for window, expected, found in windows:
        result.expected += int(expected)
        result.found += int(found)
        if expected != found:
            differing.append(f"{window}: {expected} source rows, {found} in bronze")
    result.lost = result.expected - result.found
    result.duplicated = int(repeated)
    result.detail = (
        f"{len(windows)} days (UTC) up to {hwm}"
        + (f"; {pending} newer source rows not extracted yet" if pending else "")
        + ("; " + "; ".join(differing[:5]) if differing else "")
    )
    return result
