"""Where tables live: a local folder or any S3-compatible store, behind one interface.

delta-rs gets `storage_options`; DuckDB gets a configured connection. Nothing else in the
package needs to know whether the lake is local or on S3.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pyarrow.fs as pafs
from deltalake import DeltaTable
from duckdb import DuckDBPyConnection
from duckdb_extensions import import_extension

from lakehouse.config import Settings
from lakehouse.errors import ConfigError

LAYERS = ("bronze", "silver", "gold", "ops")


@dataclass(frozen=True)
class S3Credentials:
    access_key: str
    secret_key: str
    endpoint: str | None
    region: str = "us-east-1"

    @property
    def endpoint_host(self) -> str | None:
        if not self.endpoint:
            return None
        return self.endpoint.split("://", 1)[-1].rstrip("/")

    @property
    def use_ssl(self) -> bool:
        return bool(self.endpoint) and str(self.endpoint).startswith("https://")


def local_service_credentials_file(settings: Settings) -> Path:
    return settings.state_path / "seaweedfs" / "credentials.json"


def s3_credentials(settings: Settings) -> S3Credentials:
    """Credentials from the environment, else from the local SeaweedFS this project started."""
    key, secret = os.environ.get("AWS_ACCESS_KEY_ID"), os.environ.get("AWS_SECRET_ACCESS_KEY")
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    if key and secret:
        return S3Credentials(key, secret, endpoint, region)
    local = local_service_credentials_file(settings)
    if local.exists():
        data = json.loads(local.read_text())
        return S3Credentials(data["access_key"], data["secret_key"], endpoint or data["endpoint"], region)
    missing = "AWS_ACCESS_KEY_ID" if not key else "AWS_SECRET_ACCESS_KEY"
    raise ConfigError(
        f"setting '{missing}': lake_root is {settings.lake_root} but no S3 credentials are set "
        "(export them, or run `lakehouse services start` for the local SeaweedFS)"
    )


class Lake:
    """Table locations and engine connections for one lake root."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.root = settings.lake_uri
        self._creds = s3_credentials(settings) if settings.is_s3 else None
        if not settings.is_s3:
            Path(self.root).mkdir(parents=True, exist_ok=True)

    # -- locations ----------------------------------------------------------------------------
    def table_uri(self, qualified: str) -> str:
        """'silver.events' -> <root>/silver/events."""
        layer, _, name = qualified.partition(".")
        if layer not in LAYERS or not name:
            raise ValueError(f"table name must be <layer>.<name> with layer in {LAYERS}: {qualified!r}")
        return f"{self.root}/{layer}/{name}"

    @property
    def storage_options(self) -> dict[str, str] | None:
        c = self._creds
        if c is None:
            return None
        opts = {
            "AWS_ACCESS_KEY_ID": c.access_key,
            "AWS_SECRET_ACCESS_KEY": c.secret_key,
            "AWS_REGION": c.region,
            # Safe concurrent commits on S3 without a lock service (DESIGN.md: never unsafe rename).
            "aws_conditional_put": "etag",
        }
        if c.endpoint:
            opts["AWS_ENDPOINT_URL"] = c.endpoint
            opts["AWS_ALLOW_HTTP"] = "true"
            opts["AWS_VIRTUAL_HOSTED_STYLE_REQUEST"] = "false"
        return opts

    def exists(self, qualified: str) -> bool:
        return DeltaTable.is_deltatable(self.table_uri(qualified), storage_options=self.storage_options)

    def table(self, qualified: str, version: int | None = None) -> DeltaTable:
        return DeltaTable(self.table_uri(qualified), version=version, storage_options=self.storage_options)

    def filesystem(self) -> tuple[pafs.FileSystem, str]:
        """A filesystem for the lake and the lake root's path in it."""
        c = self._creds
        if c is None:
            return pafs.LocalFileSystem(), self.root
        fs = pafs.S3FileSystem(
            access_key=c.access_key,
            secret_key=c.secret_key,
            region=c.region,
            endpoint_override=c.endpoint_host,
            scheme="https" if c.use_ssl or not c.endpoint else "http",
        )
        return fs, self.root.removeprefix("s3://")

    def landing(self, source: str = "events") -> tuple[pafs.FileSystem, str]:
        """Filesystem and folder where files for `source` land (<lake>/landing/<source>)."""
        fs, root = self.filesystem()
        path = f"{root}/landing/{source}"
        if self._creds is None:
            Path(path).mkdir(parents=True, exist_ok=True)
        return fs, path

    # -- engines ------------------------------------------------------------------------------
    def duckdb(self, memory_limit: str | None = None, threads: int | None = None) -> DuckDBPyConnection:
        """A DuckDB connection in UTC, with the delta/httpfs extensions and S3 secret when needed."""
        con = duckdb.connect()
        con.execute("SET TimeZone = 'UTC'")
        con.execute(f"SET memory_limit = '{memory_limit or self.settings.silver.duckdb_memory_limit}'")
        spill = self.settings.state_path / "duckdb_tmp"
        spill.mkdir(parents=True, exist_ok=True)
        con.execute(f"SET temp_directory = '{spill}'")
        if threads:
            con.execute(f"SET threads = {int(threads)}")
        return con

    def duckdb_with_delta(self, **kwargs: object) -> DuckDBPyConnection:
        """DuckDB able to `delta_scan` this lake (used as an independent reader)."""
        con = self.duckdb(**kwargs)  # type: ignore[arg-type]
        import_extension("delta", con=con)
        con.execute("LOAD delta")
        self.duckdb_s3(con)
        return con

    def duckdb_s3(self, con: DuckDBPyConnection) -> None:
        """Let `con` read this lake's files when the lake is on S3 (httpfs + a secret)."""
        c = self._creds
        if c is None:
            return
        import_extension("httpfs", con=con)
        con.execute("LOAD httpfs")
        parts = ["TYPE s3", f"KEY_ID '{c.access_key}'", f"SECRET '{c.secret_key}'", f"REGION '{c.region}'"]
        if c.endpoint_host:
            parts += [
                f"ENDPOINT '{c.endpoint_host}'",
                "URL_STYLE 'path'",
                f"USE_SSL {str(c.use_ssl).lower()}",
            ]
        con.execute(f"CREATE OR REPLACE SECRET lake ({', '.join(parts)})")
