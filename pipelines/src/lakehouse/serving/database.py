"""Readies the serving database for readers: the speed layer's tables, the ops records (the API's
versions, its tokens) and the BI role's access (health views, realtime grants)."""

from __future__ import annotations

from typing import Any

import psycopg

from lakehouse.core import ops_db
from lakehouse.core.errors import LakehouseError
from lakehouse.core.settings import PostgresSettings
from lakehouse.gold.publish import bi_role
from lakehouse.serving import tokens
from lakehouse.speed.sink import ensure_schema as ensure_realtime_schema


class ServingDatabaseError(LakehouseError):
    """The serving database cannot be reached or readied."""


def prepare(serving: PostgresSettings) -> dict[str, Any]:
    """Create what readers need (idempotent). The BI role's grants are applied when the role
    exists (the first gold publication creates it). Returns what was done, for the CLI."""
    db = serving.serving_db
    try:
        with psycopg.connect(serving.serving_dsn, autocommit=True, connect_timeout=10) as conn:
            ensure_realtime_schema(conn)
            ops_db.ensure(conn)
            tokens.ensure(conn)
            role = bi_role()
            has_role = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [role]).fetchone()
            granted = ops_db.grant_bi_access(conn, role) if has_role else []
            published = conn.execute(
                "SELECT to_regclass('gold.rpt_executive_summary') IS NOT NULL"
            ).fetchone()
    except psycopg.Error as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ServingDatabaseError(f"serving database {db}: {first}") from None
    return {
        "bi_role": role if has_role else None,
        "realtime_granted": granted,
        "gold_published": bool(published and published[0]),
    }
