"""Publish the gold marts from the build's DuckDB file to PostgreSQL schema `gold`.

Atomic swap: every mart is created and loaded (COPY) into a fresh schema `gold_next`, the BI
role is granted read access there, and then, in the same transaction, `gold` becomes
`gold_prev`, `gold_next` becomes `gold` and `gold_prev` is dropped. Readers see either the
previous complete set of marts or the new one, never a table half written or a mix.

Which models are published, their column types (the enforced dbt contracts) and their primary
keys come from dbt's manifest.json (models with meta.publish = true). Publication refuses to
run when the last dbt build had a failing test or model (the quality gate).
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import psycopg
from psycopg import sql

from lakehouse.core import ops_db
from lakehouse.core.errors import LakehouseError
from lakehouse.gold.dbt import DbtProject

SCHEMA = "gold"
NEXT = "gold_next"
PREV = "gold_prev"
BI_ROLE_ENV = "LAKEHOUSE_BI_ROLE"
BI_PASSWORD_ENV = "LAKEHOUSE_BI_PASSWORD"
DEFAULT_BI_ROLE = "lakehouse_bi"
LOCK_KEY = 7_244_210_001  # pg_advisory_xact_lock key: one publication at a time

_SIMPLE_TYPES = {
    "varchar": "text",
    "text": "text",
    "bigint": "bigint",
    "integer": "integer",
    "int": "integer",
    "smallint": "smallint",
    "hugeint": "numeric(38, 0)",
    "double": "double precision",
    "float": "real",
    "real": "real",
    "boolean": "boolean",
    "date": "date",
    "timestamp with time zone": "timestamptz",
    "timestamptz": "timestamptz",
    "timestamp": "timestamp",
}


class PublishError(LakehouseError):
    """Publication refused or failed (nothing was changed in PostgreSQL)."""


@dataclass(frozen=True)
class Mart:
    name: str  # table name in gold
    relation: str  # schema.table in the DuckDB build
    description: str
    columns: tuple[tuple[str, str], ...]  # (name, dbt contract type)
    primary_key: tuple[str, ...]


@dataclass(frozen=True)
class PublishResult:
    schema: str
    tables: dict[str, int]  # table -> rows
    seconds: float
    publication_id: int | None = None  # the row in ops.publications (the API's version of gold)
    readers: tuple[str, ...] = ()  # the roles granted SELECT on the published marts


def bi_role() -> str:
    role = os.environ.get(BI_ROLE_ENV, DEFAULT_BI_ROLE)
    if not re.fullmatch(r"[a-z_][a-z0-9_]*", role):
        raise PublishError(f"setting '{BI_ROLE_ENV}': not a plain role name (got {role!r})")
    return role


def pg_type(contract_type: str) -> str:
    """The PostgreSQL type for a dbt-duckdb contract data_type."""
    t = contract_type.strip().lower()
    if t in _SIMPLE_TYPES:
        return _SIMPLE_TYPES[t]
    m = re.fullmatch(r"(?:decimal|numeric)\s*\(\s*(\d+)\s*,\s*(\d+)\s*\)", t)
    if m:
        return f"numeric({m.group(1)}, {m.group(2)})"
    raise PublishError(f"no PostgreSQL type for contract type {contract_type!r}")


def marts(manifest: dict[str, Any]) -> list[Mart]:
    """Models marked meta.publish in the manifest, with their contract columns and primary key."""
    out = []
    for node in manifest["nodes"].values():
        if node["resource_type"] != "model" or not node["config"].get("meta", {}).get("publish"):
            continue
        if not node["config"].get("contract", {}).get("enforced"):
            raise PublishError(f"model {node['name']} is published but its contract is not enforced")
        columns = tuple((c["name"], c["data_type"]) for c in node["columns"].values())
        pk: tuple[str, ...] = ()
        for con in node.get("constraints", []):
            if con["type"] == "primary_key":
                pk = tuple(con["columns"])
        for name, col in node["columns"].items():
            if any(c["type"] == "primary_key" for c in col.get("constraints", [])):
                pk = (name,)
        out.append(
            Mart(
                node["alias"] or node["name"],
                f"{node['schema']}.{node['alias'] or node['name']}",
                node.get("description", ""),
                columns,
                pk,
            )
        )
    return sorted(out, key=lambda m: m.name)


def last_build_passed(project: DbtProject) -> None:
    """Raise unless the last `dbt build` finished with no failing model, test or unit test."""
    path = project.build_results_path
    if not path.exists():
        raise PublishError(f"no gold build results at {path}: run `lakehouse gold build` first")
    results = json.loads(path.read_text())
    if results.get("args", {}).get("which") != "build":
        raise PublishError(f"{path} is not from a dbt build: run `lakehouse gold build` first")
    bad = [r for r in results["results"] if r["status"] in ("fail", "error", "runtime error", "skipped")]
    if bad:
        names = ", ".join(r["unique_id"].split(".")[-1] for r in bad[:5])
        raise PublishError(
            f"quality gate: the last gold build had {len(bad)} failing or skipped node(s) ({names}); "
            "nothing was published"
        )


def ensure_bi_role(conn: psycopg.Connection[Any], db: str) -> str | None:
    """Create the read-only BI role (idempotent): login, read-only transactions, CONNECT only.
    None when it does not exist and this login may not create roles: on a cluster the platform
    makes the BI logins (and grants them gold, which makes them readers of each publication)."""
    role = bi_role()
    exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [role]).fetchone()
    ident = sql.Identifier(role)
    row = conn.execute(
        "SELECT rolsuper OR rolcreaterole FROM pg_roles WHERE rolname = current_user"
    ).fetchone()
    may_manage = bool(row and row[0])
    if not exists and not may_manage:
        return None
    # On a cluster the platform made the BI role and the pipeline's login may not alter roles:
    # there it only grants.
    if not exists or may_manage:
        if not exists:
            conn.execute(
                sql.SQL("CREATE ROLE {} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT").format(ident)
            )
        conn.execute(sql.SQL("ALTER ROLE {} SET default_transaction_read_only = on").format(ident))
        conn.execute(sql.SQL("ALTER ROLE {} SET statement_timeout = '30s'").format(ident))
        if password := os.environ.get(BI_PASSWORD_ENV):
            conn.execute(sql.SQL("ALTER ROLE {} PASSWORD {}").format(ident, sql.Literal(password)))
    conn.execute(sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(sql.Identifier(db), ident))
    # Nobody but owners creates objects in public (PostgreSQL 15's default, made explicit).
    conn.execute("REVOKE CREATE ON SCHEMA public FROM PUBLIC")
    return role


def schema_readers(conn: psycopg.Connection[Any], schema: str) -> list[str]:
    """Roles other than the owner holding USAGE on `schema` (none if it does not exist)."""
    rows = conn.execute(
        """SELECT DISTINCT r.rolname
           FROM pg_namespace n, aclexplode(n.nspacl) a JOIN pg_roles r ON r.oid = a.grantee
           WHERE n.nspname = %s AND a.privilege_type = 'USAGE' AND a.grantee <> n.nspowner
           ORDER BY 1""",
        [schema],
    ).fetchall()
    return [r[0] for r in rows]


def _load_table(conn: psycopg.Connection[Any], con: duckdb.DuckDBPyConnection, mart: Mart, tmp: Path) -> int:
    cols = sql.SQL(", ").join(
        sql.SQL("{} {}").format(sql.Identifier(n), sql.SQL(pg_type(t))) for n, t in mart.columns
    )
    table = sql.Identifier(NEXT, mart.name)
    conn.execute(sql.SQL("CREATE TABLE {} ({})").format(table, cols))
    names = ", ".join(f'"{n}"' for n, _ in mart.columns)
    csv_path = tmp / f"{mart.name}.csv"
    con.execute(
        f"COPY (SELECT {names} FROM {mart.relation}) TO '{csv_path}' (FORMAT csv, HEADER false, NULLSTR '\\N')"
    )
    with conn.cursor() as cur:
        copy_sql = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT csv, NULL '\\N')").format(
            table, sql.SQL(", ").join(sql.Identifier(n) for n, _ in mart.columns)
        )
        with cur.copy(copy_sql) as copy, open(csv_path, "rb") as fh:
            while chunk := fh.read(1 << 20):
                copy.write(chunk)
        rows = cur.rowcount
    csv_path.unlink()
    if mart.primary_key:
        conn.execute(
            sql.SQL("ALTER TABLE {} ADD PRIMARY KEY ({})").format(
                table, sql.SQL(", ").join(sql.Identifier(c) for c in mart.primary_key)
            )
        )
    if mart.description:
        conn.execute(
            sql.SQL("COMMENT ON TABLE {} IS {}").format(table, sql.Literal(mart.description.strip()))
        )
    return rows


def publish(project: DbtProject, check_gate: bool = True) -> PublishResult:
    """Copy every published mart to PostgreSQL `gold` and swap it in atomically (reading the
    build database while no dbt process writes it)."""
    with project.exclusive():
        return _publish(project, check_gate)


def _publish(project: DbtProject, check_gate: bool) -> PublishResult:
    if check_gate:
        last_build_passed(project)
    manifest = project.artifact("manifest.json")
    selected = marts(manifest)
    if not selected:
        raise PublishError("the dbt manifest has no model with meta.publish = true")
    if not project.duckdb_path.exists():
        raise PublishError(f"no gold build at {project.duckdb_path}: run `lakehouse gold build` first")
    db = project.serving.serving_db
    start = time.perf_counter()
    tables: dict[str, int] = {}
    con = duckdb.connect(str(project.duckdb_path), read_only=True)
    try:
        with (
            tempfile.TemporaryDirectory(prefix="gold-publish-") as tmp,
            psycopg.connect(project.serving.dsn(db), autocommit=False) as conn,
        ):
            conn.execute("SELECT pg_advisory_xact_lock(%s)", [LOCK_KEY])
            conn.execute("SET LOCAL lock_timeout = '60s'")
            role = ensure_bi_role(conn, db)
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(NEXT)))
            conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(NEXT)))
            for mart in selected:
                tables[mart.name] = _load_table(conn, con, mart, Path(tmp))
            conn.execute(
                sql.SQL("COMMENT ON SCHEMA {} IS {}").format(
                    sql.Identifier(NEXT),
                    sql.Literal("Gold marts published by `lakehouse gold publish` (read-only for BI)"),
                )
            )
            # every role that reads gold now reads the new gold too: the pipeline's BI role and
            # any other the platform granted (e.g. the BI tools' own login)
            readers = [*([role] if role else []), *(r for r in schema_readers(conn, SCHEMA) if r != role)]
            if not readers:
                raise PublishError(
                    f"no role would read the published gold: the BI role {bi_role()} does not exist and "
                    f"{project.serving.user} may not create roles; set {BI_ROLE_ENV} to the platform's BI login"
                )
            for reader in readers:
                conn.execute(
                    sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(
                        sql.Identifier(NEXT), sql.Identifier(reader)
                    )
                )
                conn.execute(
                    sql.SQL("GRANT SELECT ON ALL TABLES IN SCHEMA {} TO {}").format(
                        sql.Identifier(NEXT), sql.Identifier(reader)
                    )
                )
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(PREV)))
            has_gold = conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", [SCHEMA]).fetchone()
            if has_gold:
                conn.execute(
                    sql.SQL("ALTER SCHEMA {} RENAME TO {}").format(
                        sql.Identifier(SCHEMA), sql.Identifier(PREV)
                    )
                )
            conn.execute(
                sql.SQL("ALTER SCHEMA {} RENAME TO {}").format(sql.Identifier(NEXT), sql.Identifier(SCHEMA))
            )
            if has_gold:
                conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(PREV)))
            # in the swap's transaction: the publication's id changes exactly when gold does
            for reader in readers:
                ops_db.grant_bi_access(conn, reader)
            invocation = manifest.get("metadata", {}).get("invocation_id")
            publication_id = ops_db.record_publication(conn, SCHEMA, tables, invocation)
            conn.commit()
            for name in tables:  # planner statistics, outside the swap transaction
                conn.execute(sql.SQL("ANALYZE {}").format(sql.Identifier(SCHEMA, name)))
            conn.commit()
    except psycopg.Error as exc:
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise PublishError(f"publishing to PostgreSQL {db} failed (nothing changed): {msg}") from None
    finally:
        con.close()
    return PublishResult(SCHEMA, tables, time.perf_counter() - start, publication_id, tuple(readers))
