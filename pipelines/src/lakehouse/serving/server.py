"""The ASGI application of `lakehouse serve`: routes, lifespan (the pool and the LISTEN task),
and the mapping of every expected failure to a one-line JSON error with its status. uvicorn
builds it in every worker process from the settings the CLI resolved (`SETTINGS_ENV`)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import psycopg
from psycopg_pool import PoolTimeout
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from lakehouse.core.settings import Settings
from lakehouse.serving.api import Api
from lakehouse.serving.query import BadRequest
from lakehouse.serving.responses import error

log = logging.getLogger("lakehouse.serving")
SETTINGS_ENV = "LAKEHOUSE_SERVE_SETTINGS"  # the CLI's effective settings, for every worker process


def create_app(settings: Settings | None = None) -> Starlette:
    """The ASGI application (uvicorn calls this in every worker process)."""
    if settings is None:
        raw = os.environ.get(SETTINGS_ENV)
        if raw:
            settings = Settings.model_validate_json(raw)
        else:
            from lakehouse.core.settings import load_settings

            settings = load_settings()
    api = Api(settings)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await api.pool.open(wait=True, timeout=15)
        listener = asyncio.create_task(api.versions.listen())
        try:
            yield
        finally:
            listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await listener
            await api.pool.close()

    def timed(name: str, handler: Any) -> Any:
        async def endpoint(request: Request) -> Response:
            start = time.perf_counter()
            try:
                response: Response = await handler(request)
            except BadRequest as exc:
                extra = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
                response = error(exc.status, str(exc), extra)
            except psycopg.errors.DataError as exc:  # a value PostgreSQL cannot hold (out of range)
                first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                response = error(400, f"a value is out of range: {first}")
            except psycopg.errors.QueryCanceled:
                limit = settings.serving.query_timeout_ms
                response = error(
                    503, f"the read took longer than the limit of {limit} ms; narrow it", {"Retry-After": "1"}
                )
            except (PoolTimeout, psycopg.OperationalError) as exc:
                log.warning("serving database unavailable: %s", exc)
                response = error(503, "serving database unavailable; try again", {"Retry-After": "5"})
            except psycopg.errors.UndefinedTable:
                api.catalog_version = -1  # a publication removed it between catalog and read
                response = error(
                    503, "the dataset changed while it was read; try again", {"Retry-After": "1"}
                )
            api.m_requests.labels(name, str(response.status_code)).inc()
            api.m_seconds.labels(name).observe(time.perf_counter() - start)
            return response

        return endpoint

    routes = [
        Route("/datasets", timed("datasets", api.list_datasets), name="datasets"),
        Route("/datasets/{name}", timed("dataset", api.read_dataset), name="dataset"),
        Route("/snapshots", timed("snapshots", api.snapshot_manifest), name="snapshot_manifest"),
        Route("/snapshots/{file}", timed("snapshot_file", api.snapshot_file), name="snapshot_latest"),
        Route(
            "/snapshots/{snapshot_id}/{file}", timed("snapshot_file", api.snapshot_file), name="snapshot_file"
        ),
        Route("/openapi.json", timed("openapi", api.openapi_doc), name="openapi"),
        Route("/health", timed("health", api.health), name="health"),
        Route("/metrics", api.metrics, name="metrics"),
    ]

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        return error(exc.status_code, str(exc.detail), dict(exc.headers or {}))

    async def server_error(request: Request, exc: Exception) -> Response:
        log.exception("unexpected error on %s", request.url.path)
        return error(500, f"internal error ({type(exc).__name__}); the server log has the details")

    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers={HTTPException: http_error, Exception: server_error},
    )
    app.state.api = api
    return app
