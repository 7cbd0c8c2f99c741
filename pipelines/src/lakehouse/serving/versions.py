"""What the serving database holds right now: the gold publication, the speed layer's progress
and a token's validity, read in one round trip — and kept in memory while nothing can change it.

A publication and a token change NOTIFY on `ops_db.CHANNEL` in their own transaction. While a
connection LISTENs there, the last state read stays valid until the next notification, so a
gold 304 needs no database round trip; while that connection is down, nothing is served from
memory.
"""

from __future__ import annotations

import asyncio
import logging
import select
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg import sql

from lakehouse.core import ops_db
from lakehouse.serving.catalog import Dataset

log = logging.getLogger("lakehouse.serving")

STATE_SQL = """
SELECT p.publication_id, p.published_at, p.tables,
       (SELECT coalesce(sum(records + late + rejected), 0) FROM realtime.stream_state),
       (SELECT max(updated_at) FROM realtime.stream_state),
       %(token)s::bytea IS NULL
         OR EXISTS (SELECT 1 FROM ops.api_tokens WHERE token_sha256 = %(token)s AND revoked_at IS NULL)
FROM (SELECT 1) AS one
LEFT JOIN LATERAL (
    SELECT publication_id, published_at, tables FROM ops.publications ORDER BY publication_id DESC LIMIT 1
) AS p ON true
"""

# Token verdicts kept at most; past it the memory starts again (a flood of random tokens
# must not grow the process).
_MAX_TOKENS = 10_000


@dataclass(frozen=True)
class State:
    """The serving database's versions at one moment (and whether the request's token is valid)."""

    publication_id: int | None
    published_at: datetime | None
    published_rows: dict[str, int]
    speed_records: int
    speed_updated_at: datetime | None
    token_ok: bool

    @classmethod
    def from_row(cls, row: tuple[Any, ...]) -> State:
        """From one row of STATE_SQL."""
        return cls(row[0], row[1], dict(row[2] or {}), int(row[3]), row[4], bool(row[5]))

    def version(self, ds: Dataset) -> str:
        if ds.kind == "gold":
            return f"g{self.publication_id or 0}"
        stamp = int(self.speed_updated_at.timestamp() * 1e6) if self.speed_updated_at else 0
        return f"r{self.speed_records}.{stamp}"

    def freshness(self, ds: Dataset) -> datetime | None:
        return self.published_at if ds.kind == "gold" else self.speed_updated_at


class Versions:
    """Reads `State` and remembers the last one while LISTEN guarantees it is still current."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self.listening = False
        # moves on every notification: a read that started before one is not remembered
        self.generation = 0
        self.cached_state: State | None = None
        self.cached_tokens: dict[bytes | None, bool] = {}
        self._listen_fd = -1

    async def listen(self) -> None:
        """Run for the server's life: LISTEN, forget on every notification, reconnect on loss."""
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(
                    self.dsn, autocommit=True, connect_timeout=5
                ) as conn:
                    await conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(ops_db.CHANNEL)))
                    self.invalidate()
                    self._listen_fd = conn.pgconn.socket
                    self.listening = True
                    async for _ in conn.notifies():
                        self.invalidate()
            except psycopg.Error as exc:
                log.warning("LISTEN %s: %s (serving without cache)", ops_db.CHANNEL, exc)
            finally:
                self.listening = False
                self.invalidate()
            await asyncio.sleep(1)

    def invalidate(self) -> None:
        self.generation += 1
        self.cached_state = None
        self.cached_tokens.clear()

    def cached(self, token: bytes | None) -> State | None:
        """The last state read, when nothing changed since (gold versions and this token only)."""
        state = self.cached_state
        if not self.listening or state is None or self.cached_tokens.get(token) is not True:
            return None
        # a notification already on the socket but not yet handled: ask the database instead
        if select.select([self._listen_fd], [], [], 0)[0]:
            return None
        return state

    async def read(self, conn: psycopg.AsyncConnection[Any], token: bytes | None) -> State:
        generation = self.generation
        cur = await conn.execute(STATE_SQL, {"token": token})
        row = await cur.fetchone()
        assert row is not None
        state = State.from_row(row)
        if self.listening and generation == self.generation:
            self.cached_state = state
            if len(self.cached_tokens) > _MAX_TOKENS:
                self.cached_tokens.clear()
            self.cached_tokens[token] = state.token_ok
        return state
