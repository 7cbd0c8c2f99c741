"""API tokens: read-only by construction (the API has no write route), stored hashed.

A token is 32 random bytes (URL-safe text with a `lh_` prefix), shown once when it is created.
The serving database keeps its SHA-256 only: with 256 bits of entropy a fast hash is enough
(nothing to brute-force), and a lookup by digest needs no secret comparison in Python.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg

from lakehouse.core import ops_db
from lakehouse.core.errors import LakehouseError

PREFIX = "lh_"
DDL = """
CREATE SCHEMA IF NOT EXISTS ops;
CREATE TABLE IF NOT EXISTS ops.api_tokens (
    name         text PRIMARY KEY,
    token_sha256 bytea NOT NULL UNIQUE,
    created_at   timestamptz NOT NULL DEFAULT now(),
    revoked_at   timestamptz
);
COMMENT ON TABLE ops.api_tokens IS 'Read-only API tokens of `lakehouse serve`: SHA-256 of each token, never the token';
"""


class TokenError(LakehouseError):
    """A token cannot be created or revoked as asked."""


@dataclass(frozen=True)
class TokenInfo:
    name: str
    created_at: datetime
    revoked_at: datetime | None


def digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def ensure(conn: psycopg.Connection[Any]) -> None:
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(hashtext('lakehouse.ops.api_tokens'))")
        conn.execute(DDL)


def create(conn: psycopg.Connection[Any], name: str) -> str:
    """A new token named `name`; returns the token (the only time it is shown)."""
    if not name or len(name) > 64 or not name.replace("-", "").replace("_", "").isalnum():
        raise TokenError(f"token name: letters, digits, '-' and '_', at most 64 (got {name!r})")
    ensure(conn)
    token = PREFIX + secrets.token_urlsafe(32)
    with conn.transaction():
        taken = conn.execute("SELECT revoked_at FROM ops.api_tokens WHERE name = %s", [name]).fetchone()
        if taken is not None and taken[0] is None:
            raise TokenError(f"a token named {name!r} exists: revoke it first or pick another name")
        conn.execute(
            "INSERT INTO ops.api_tokens (name, token_sha256) VALUES (%s, %s) ON CONFLICT (name) DO UPDATE "
            "SET token_sha256 = EXCLUDED.token_sha256, created_at = now(), revoked_at = NULL",
            [name, digest(token)],
        )
        conn.execute("SELECT pg_notify(%s, 'tokens')", [ops_db.CHANNEL])
    return token


def revoke(conn: psycopg.Connection[Any], name: str) -> None:
    ensure(conn)
    with conn.transaction():
        done = conn.execute(
            "UPDATE ops.api_tokens SET revoked_at = now() WHERE name = %s AND revoked_at IS NULL", [name]
        ).rowcount
        conn.execute("SELECT pg_notify(%s, 'tokens')", [ops_db.CHANNEL])
    if not done:
        raise TokenError(f"no active token named {name!r}")


def list_tokens(conn: psycopg.Connection[Any]) -> list[TokenInfo]:
    ensure(conn)
    rows = conn.execute(
        "SELECT name, created_at, revoked_at FROM ops.api_tokens ORDER BY created_at"
    ).fetchall()
    return [TokenInfo(*r) for r in rows]
