"""`lakehouse serve`: the read-only HTTP API over the gold marts, the speed layer and the snapshots.

    GET /datasets                 every dataset: schema, primary key, version, freshness, rows
    GET /datasets/{name}          rows: filters, columns, order, limit/offset; JSON, CSV, Arrow, Parquet
    GET /snapshots                the latest snapshot's manifest
    GET /snapshots/{file}         one of its Parquet files (Range requests: DuckDB reads it over HTTP)
    GET /snapshots/{id}/{file}    the same file under its snapshot's id (stable while it is kept)
    GET /openapi.json, /health, /metrics

Versions: a gold dataset's version is its publication (`ops.publications`, written in the swap
transaction), a realtime dataset's is the speed layer's commit count and time
(`realtime.stream_state`, written in the transaction of every window update). The ETag of a
response is that version plus a hash of the request, so it changes exactly when the data can
have: the version is read in the same REPEATABLE READ snapshot as the rows (one pipelined round
trip). `If-None-Match` with the current ETag answers 304 after one indexed read, or from memory for
a gold dataset: the server LISTENs on `ops_db.CHANNEL`, where a publication and a token change
NOTIFY in their own transaction, and keeps the last versions and token verdicts only while that
connection is up and no notification is waiting on it. Every connection is read-only, with the
settings' statement timeout; every error is a JSON object with one line in `error`.
"""

from __future__ import annotations

import asyncio
import logging
import os
from datetime import UTC, datetime
from typing import Any

import anyio
import psycopg
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from psycopg import sql
from psycopg_pool import AsyncConnectionPool, PoolTimeout
from starlette.requests import Request
from starlette.responses import FileResponse, Response

from lakehouse.core.metrics import LakeHealthCollector
from lakehouse.core.settings import Settings
from lakehouse.serving import catalog, formats, openapi, snapshots
from lakehouse.serving.catalog import Dataset
from lakehouse.serving.query import FORMATS, BadRequest, Limits, ReadRequest, parse, statement
from lakehouse.serving.responses import error, matches
from lakehouse.serving.tokens import digest
from lakehouse.serving.versions import STATE_SQL, State, Versions

log = logging.getLogger("lakehouse.serving")


class Api:
    """The application's state: settings, the connection pool, the catalog and its version."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        s = settings.serving
        self.limits = Limits(s.default_limit, s.max_rows)
        self.pool = AsyncConnectionPool(
            settings.postgres.serving_dsn,
            min_size=1,
            max_size=s.pool_size,
            open=False,
            kwargs={"autocommit": True, "application_name": "lakehouse-serve"},
            configure=self._configure,
            timeout=10,
        )
        self.datasets: dict[str, Dataset] = {}
        self.catalog_version: int | None = -1
        self._catalog_lock = asyncio.Lock()
        self.versions = Versions(settings.postgres.serving_dsn)
        self.registry = CollectorRegistry()
        self.m_requests = Counter(
            "lakehouse_api_requests", "API requests", ["route", "status"], registry=self.registry
        )
        self.m_seconds = Histogram(
            "lakehouse_api_request_seconds",
            "API request time",
            ["route"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
            registry=self.registry,
        )
        self.registry.register(LakeHealthCollector(settings.postgres))

    async def _configure(self, conn: psycopg.AsyncConnection[Any]) -> None:
        timeout = int(self.settings.serving.query_timeout_ms)
        await conn.execute("SET default_transaction_read_only = on")
        await conn.execute(f"SET statement_timeout = {timeout}")
        await conn.execute("SET TimeZone = 'UTC'")

    # -- catalog ------------------------------------------------------------------------------
    async def catalog(self, conn: psycopg.AsyncConnection[Any], state: State) -> dict[str, Dataset]:
        """The datasets as of `state`'s publication (reloaded when a publication changed gold)."""
        if self.catalog_version != state.publication_id:
            async with self._catalog_lock:
                if self.catalog_version != state.publication_id:
                    self.datasets = await catalog.load_async(conn)
                    self.catalog_version = state.publication_id
        return self.datasets

    def token(self, request: Request) -> bytes | None:
        """The request token's digest; None when the API runs without tokens. 401 when missing."""
        if self.settings.serving.auth == "none":
            return None
        header = request.headers.get("authorization", "")
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise BadRequest("missing API token: send 'Authorization: Bearer <token>'", status=401)
        return digest(value.strip())

    # -- handlers ------------------------------------------------------------------------------
    async def list_datasets(self, request: Request) -> Response:
        token = self.token(request)
        async with self.pool.connection() as conn:
            state = await self.versions.read(conn, token)
            self._auth(state)
            datasets = await self.catalog(conn, state)
            etag = f'"d{state.publication_id or 0}-{state.version(_REALTIME_PROBE)}"'
            headers = {"ETag": etag, "Cache-Control": "no-cache", "Vary": "Authorization"}
            if matches(request.headers.get("if-none-match"), etag):
                return Response(status_code=304, headers=headers)
            rows = await self._realtime_rows(conn, datasets)
        now = datetime.now(UTC)
        out = []
        for ds in datasets.values():
            fresh = state.freshness(ds)
            n_rows = state.published_rows.get(ds.table) if ds.kind == "gold" else rows.get(ds.name)
            out.append(
                {
                    "name": ds.name,
                    "kind": ds.kind,
                    "description": ds.description,
                    "version": state.version(ds),
                    "updated_at": fresh,
                    "age_seconds": round((now - fresh).total_seconds(), 1) if fresh else None,
                    "rows": n_rows,
                    "primary_key": list(ds.primary_key),
                    "time_column": ds.time_column,
                    "dimensions": list(ds.dimensions),
                    "columns": [
                        {
                            "name": c.name,
                            "type": c.pg_type,
                            "nullable": c.nullable,
                            "description": c.description,
                        }
                        for c in ds.columns
                    ],
                    "url": str(request.url_for("dataset", name=ds.name)),
                }
            )
        body = formats.dumps({"publication_id": state.publication_id, "datasets": out})
        return Response(body, media_type="application/json", headers=headers)

    async def _realtime_rows(
        self, conn: psycopg.AsyncConnection[Any], datasets: dict[str, Dataset]
    ) -> dict[str, int]:
        names = [ds for ds in datasets.values() if ds.kind == "realtime"]
        if not names:
            return {}
        query = sql.SQL(" UNION ALL ").join(
            sql.SQL("SELECT {}, count(*) FROM {}").format(
                sql.Literal(ds.name), sql.Identifier(ds.schema, ds.table)
            )
            for ds in names
        )
        cur = await conn.execute(query)
        return {name: int(n) for name, n in await cur.fetchall()}

    def _auth(self, state: State) -> None:
        if not state.token_ok:
            raise BadRequest("invalid or revoked API token", status=401)

    async def read_dataset(self, request: Request) -> Response:
        token = self.token(request)
        name = request.path_params["name"]
        params = list(request.query_params.multi_items())
        accept = request.headers.get("accept")
        if_none_match = request.headers.get("if-none-match")
        if if_none_match and (cached := self.versions.cached(token)) is not None:
            known = self.datasets.get(name)
            if known is not None and known.kind == "gold" and cached.publication_id == self.catalog_version:
                req = parse(known, params, accept, self.limits)
                if matches(if_none_match, self._etag(cached, req)):
                    return Response(status_code=304, headers=self._headers(cached, req))
        async with self.pool.connection() as conn:
            if if_none_match or name not in self.datasets or self.catalog_version == -1:
                # one indexed read: the versions (and the catalog when they moved); 304 if current
                state = await self.versions.read(conn, token)
                self._auth(state)
                await self.catalog(conn, state)
                ds, req = self._request(name, params, accept)
                if matches(if_none_match, self._etag(state, req)):
                    return Response(status_code=304, headers=self._headers(state, req))
            for attempt in (1, 2):
                ds, req = self._request(name, params, accept)
                try:
                    state, rows = await self._read(conn, token, req)
                except (psycopg.errors.UndefinedTable, psycopg.errors.UndefinedColumn):
                    if attempt == 2:
                        raise
                    state = await self.versions.read(conn, token)  # a publication changed gold: new catalog
                    self.catalog_version = -1
                    await self.catalog(conn, state)
                    continue
                self._auth(state)
                if state.publication_id == self.catalog_version:
                    break
                await self.catalog(conn, state)  # read with last publication's columns: once more
        headers = self._headers(state, req)
        more = len(rows) > req.limit
        rows = rows[: req.limit]
        next_url = str(request.url.include_query_params(offset=req.offset + req.limit)) if more else None
        if next_url:
            headers["Link"] = f'<{next_url}>; rel="next"'
        fresh = state.freshness(ds)
        meta = {
            "dataset": ds.name,
            "version": state.version(ds),
            "updated_at": fresh,
            "columns": [{"name": c, "type": ds.by_name[c].pg_type} for c in req.columns],
            "offset": req.offset,
            "limit": req.limit,
            "count": len(rows),
            "next": next_url,
        }
        body = await self._encode(req, rows, meta)
        return Response(body, media_type=formats_media(req), headers=headers)

    def _request(
        self, name: str, params: list[tuple[str, str]], accept: str | None
    ) -> tuple[Dataset, ReadRequest]:
        ds = self.datasets.get(name)
        if ds is None:
            raise BadRequest(f"unknown dataset {name[:80]!r}: GET /datasets lists them", status=404)
        return ds, parse(ds, params, accept, self.limits)

    @staticmethod
    def _etag(state: State, req: ReadRequest) -> str:
        return f'"{state.version(req.dataset)}-{req.fingerprint()}"'

    def _headers(self, state: State, req: ReadRequest) -> dict[str, str]:
        return {
            "ETag": self._etag(state, req),
            "Cache-Control": self._cache_control(req.dataset),
            "Vary": "Accept, Authorization",
        }

    async def _read(
        self, conn: psycopg.AsyncConnection[Any], token: bytes | None, req: ReadRequest
    ) -> tuple[State, list[tuple[Any, ...]]]:
        """The versions and the rows from one REPEATABLE READ snapshot (the ETag names exactly
        these rows), sent as one pipeline: one round trip to PostgreSQL."""
        query, args = statement(req)
        try:
            async with conn.pipeline() as pipe:
                await conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
                state_cur = await conn.execute(STATE_SQL, {"token": token})
                data_cur = conn.cursor(binary=True)
                await data_cur.execute(query, args)
                await conn.execute("COMMIT")
                await pipe.sync()
                row = await state_cur.fetchone()
                rows = await data_cur.fetchall()
        except psycopg.Error:
            if not conn.closed and conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
                await conn.execute("ROLLBACK")  # the connection goes back to the pool clean
            raise
        assert row is not None
        return State.from_row(row), rows

    async def _encode(self, req: ReadRequest, rows: list[tuple[Any, ...]], meta: dict[str, Any]) -> bytes:
        def run() -> bytes:
            return formats.encode(req.format, req.dataset, list(req.columns), rows, meta)

        return run() if len(rows) < 2000 else await anyio.to_thread.run_sync(run)

    def _cache_control(self, ds: Dataset) -> str:
        if ds.kind == "realtime":
            return "private, no-cache"  # changes every few seconds: revalidate (304 is cheap)
        return f"private, max-age={self.settings.serving.cache_max_age}, must-revalidate"

    async def snapshot_manifest(self, request: Request) -> Response:
        await self._check_token(request)
        manifest = snapshots.current(self.settings)
        if manifest is None:
            raise BadRequest("no snapshot yet: run `lakehouse snapshot`", status=404)
        etag = f'"s{manifest["snapshot_id"]}"'
        headers = {"ETag": etag, "Cache-Control": "private, no-cache"}
        if matches(request.headers.get("if-none-match"), etag):
            return Response(status_code=304, headers=headers)
        base = str(request.url_for("snapshot_manifest")).rstrip("/")
        doc = {
            **manifest,
            "tables": [
                {
                    **t,
                    "url": f"{base}/{manifest['snapshot_id']}/{t['file']}",
                    "latest_url": f"{base}/{t['file']}",
                }
                for t in manifest["tables"]
            ],
        }
        return Response(formats.dumps(doc), media_type="application/json", headers=headers)

    async def snapshot_file(self, request: Request) -> Response:
        await self._check_token(request)
        found = snapshots.find(
            self.settings, request.path_params.get("snapshot_id"), request.path_params["file"]
        )
        if found is None:
            raise BadRequest(f"no snapshot file {request.url.path.rsplit('/', 1)[-1][:80]!r}", status=404)
        path, entry = found
        headers = {
            "ETag": entry["etag"],
            "Cache-Control": "private, max-age=31536000, immutable"
            if "snapshot_id" in request.path_params
            else "private, no-cache",
        }
        if matches(request.headers.get("if-none-match"), entry["etag"]):
            return Response(status_code=304, headers=headers)
        return FileResponse(path, media_type=FORMATS["parquet"], headers=headers)

    async def _check_token(self, request: Request) -> None:
        token = self.token(request)
        if token is None:
            return
        async with self.pool.connection() as conn:
            self._auth(await self.versions.read(conn, token))

    async def openapi_doc(self, request: Request) -> Response:
        async with self.pool.connection() as conn:
            state = await self.versions.read(conn, None)
            datasets = await self.catalog(conn, state)
        doc = openapi.document(datasets, self.settings.serving, str(request.base_url).rstrip("/"))
        return Response(formats.dumps(doc), media_type="application/json")

    async def health(self, request: Request) -> Response:
        try:
            async with self.pool.connection(timeout=2) as conn:
                state = await self.versions.read(conn, None)
        except (PoolTimeout, psycopg.Error) as exc:
            return error(503, f"serving database unavailable: {type(exc).__name__}")
        return Response(
            formats.dumps({"status": "ok", "publication_id": state.publication_id, "pid": os.getpid()}),
            media_type="application/json",
        )

    async def metrics(self, request: Request) -> Response:
        body = await anyio.to_thread.run_sync(generate_latest, self.registry)
        return Response(body, media_type=CONTENT_TYPE_LATEST)


# a stand-in realtime dataset: the listing's ETag includes the speed layer's version
_REALTIME_PROBE = Dataset("realtime.*", "realtime", "*", "realtime", "", (), ())


def formats_media(req: ReadRequest) -> str:
    return FORMATS[req.format]
