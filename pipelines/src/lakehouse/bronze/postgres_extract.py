"""PostgreSQL source tables -> bronze.<table>, incrementally by updated_at.

The high-water mark is the largest updated_at already in the bronze table, so it moves in the
same Delta commit as the rows. Each run re-reads a look-back window below the mark (rows that
commit late with an older updated_at, and ties on the boundary) and keeps only rows whose
(key, updated_at, row hash) bronze does not already hold: reruns never duplicate or skip.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import duckdb
import pyarrow.compute as pc
from duckdb_extensions import import_extension

from lakehouse.bronze.row_hash import duckdb_sql
from lakehouse.core import delta
from lakehouse.core.errors import ServiceError
from lakehouse.core.reconcile import Reconciliation
from lakehouse.core.storage import Lake


@dataclass(frozen=True)
class SourceTable:
    name: str
    keys: tuple[str, ...]

    @property
    def bronze(self) -> str:
        return f"bronze.{self.name}"

    @property
    def app_id(self) -> str:
        return f"bronze.{self.name}<-postgres"


SOURCE_TABLES = (
    SourceTable("customers", ("customer_id",)),
    SourceTable("products", ("product_id",)),
    SourceTable("orders", ("order_id",)),
    SourceTable("order_items", ("order_id", "line_no")),
)
SCHEMA = "shop"


def where(dsn: str) -> str:
    """The source database as a message names it: user@host:port/db, never its password."""
    from psycopg.conninfo import conninfo_to_dict

    p = conninfo_to_dict(dsn)
    return f"{p.get('user', '')}@{p.get('host', '')}:{p.get('port', '')}/{p.get('dbname', '')}"


def check_reachable(dsn: str, timeout: int = 10) -> None:
    """Log in to the source database once, before a bronze step writes anything: an unreachable
    host or a refused login stops the step with one line, not after the landing files' commit."""
    import psycopg

    try:
        psycopg.connect(dsn, connect_timeout=timeout).close()
    except psycopg.OperationalError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ServiceError(
            f"source database {where(dsn)} is not reachable ({first.strip()}); check postgres.host, "
            "postgres.port and the source login (postgres.source_user, postgres.source_password_file)"
        ) from None


def attach(con: duckdb.DuckDBPyConnection, dsn: str) -> None:
    import_extension("postgres", con=con)
    con.execute("LOAD postgres")
    try:
        con.execute(f"ATTACH '{dsn}' AS src (TYPE postgres, READ_ONLY)")
    except duckdb.IOException as exc:
        first = str(exc).splitlines()[0].replace(dsn, where(dsn))
        raise ServiceError(
            f"source database {where(dsn)} is not reachable ({first}); start it with `lakehouse services start`"
        ) from None


def high_water_mark(lake: Lake, table: SourceTable) -> datetime | None:
    dt = delta.open_table(lake, table.bronze)
    if dt is None:
        return None
    col = delta.dataset(lake, dt).to_table(columns=["updated_at"])["updated_at"]
    value = pc.max(col).as_py() if len(col) else None
    return value


def extract_table(
    lake: Lake, con: duckdb.DuckDBPyConnection, table: SourceTable, run_id: str, lookback: timedelta
) -> Reconciliation:
    rec = Reconciliation(run_id, "bronze", f"postgres:{SCHEMA}.{table.name}", table.bronze)
    hwm = high_water_mark(lake, table)
    lower = hwm - lookback if hwm else None
    columns = [r[0] for r in con.execute(f"DESCRIBE src.{SCHEMA}.{table.name}").fetchall()]
    row_hash = duckdb_sql(columns)  # the canonical text form both engines hash (bronze.row_hash)
    where = "WHERE updated_at >= ?" if lower else ""
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE extracted AS SELECT *, {row_hash} AS _row_hash "
        f"FROM src.{SCHEMA}.{table.name} {where}",
        [lower] if lower else [],
    )
    rec.rows_in = con.execute("SELECT count(*) FROM extracted").fetchone()[0]  # type: ignore[index]
    dt = delta.open_table(lake, table.bronze)
    if dt is not None and lower is not None:
        seen = delta.dataset(lake, dt).to_table(
            columns=[*table.keys, "updated_at", "_row_hash"], filter=pc.field("updated_at") >= lower
        )
    else:
        seen = None
    key_match = " AND ".join(f"e.{k} = s.{k}" for k in (*table.keys, "updated_at", "_row_hash"))
    anti = f"WHERE NOT EXISTS (SELECT 1 FROM seen AS s WHERE {key_match})" if seen is not None else ""
    if seen is not None:
        con.register("seen", seen)
    batch_id = f"P{datetime.now(UTC):%Y%m%dT%H%M%S}-{run_id[-8:]}"
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE fresh AS
            SELECT e.*, now() AS _extracted_at, '{batch_id}' AS _batch_id, '{run_id}' AS _run_id
            FROM extracted AS e {anti}
            ORDER BY e.updated_at, {", ".join(f"e.{k}" for k in table.keys)}"""
    )
    fresh = con.execute("SELECT count(*) FROM fresh").fetchone()[0]  # type: ignore[index]
    rec.inserted = fresh
    rec.duplicates = rec.rows_in - fresh  # re-read from the look-back window, already in bronze
    if fresh:
        version = (delta.txn_version(lake, table.bronze, table.app_id) or 0) + 1
        new_hwm = con.execute("SELECT CAST(max(updated_at) AS VARCHAR) FROM fresh").fetchone()[0]  # type: ignore[index]
        delta.append(
            lake,
            table.bronze,
            con.execute("SELECT * FROM fresh").to_arrow_reader(100_000),
            app_id=table.app_id,
            txn_version=version,
            configuration=delta.CDF,
            run_id=run_id,
            batch_id=batch_id,
            high_water_mark=new_hwm,
        )
    rec.detail = f"high-water mark {hwm or 'none'}; look-back from {lower or 'the beginning'}"
    return rec.finish()


def extract_all(lake: Lake, dsn: str, run_id: str, lookback_minutes: int) -> list[Reconciliation]:
    con = lake.duckdb()
    try:
        attach(con, dsn)
        return [
            extract_table(lake, con, t, run_id, timedelta(minutes=lookback_minutes)) for t in SOURCE_TABLES
        ]
    finally:
        con.close()
