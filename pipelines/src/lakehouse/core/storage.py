"""Where tables live: a local folder or any S3-compatible store, behind one interface.

delta-rs gets `storage_options`; DuckDB gets a configured connection. Nothing else in the
package needs to know whether the lake is local or on S3.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import duckdb
import pyarrow.fs as pafs
from deltalake import DeltaTable
from duckdb import DuckDBPyConnection
from duckdb_extensions import import_extension

from lakehouse.core import s3
from lakehouse.core.errors import ConfigError
from lakehouse.core.s3 import S3Credentials
from lakehouse.core.settings import Settings

LAYERS = ("bronze", "silver", "gold", "ops")


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

    def __init__(self, settings: Settings, *, create: bool = True) -> None:
        """`create`: make a local lake root that does not exist yet (writers); readers pass
        False and ask `missing()`."""
        self.settings = settings
        self.root = settings.lake_uri
        self._creds = s3_credentials(settings) if settings.is_s3 else None
        if not settings.is_s3 and create:
            Path(self.root).mkdir(parents=True, exist_ok=True)

    def missing(self) -> str | None:
        """Why this lake cannot be read (its folder or bucket does not exist, or the store does
        not answer), as one line with the fix; None when it is there."""
        where = "(setting lake_root or LAKEHOUSE_LAKE_ROOT)"
        if self._creds is None:
            if Path(self.root).is_dir():
                return None
            return (
                f"lake root {self.root} does not exist {where}: correct it, or create the lake with "
                "`lakehouse demo` or `lakehouse bronze`"
            )

        bucket = self.root.removeprefix("s3://").split("/", 1)[0]
        endpoint = self._creds.endpoint or "AWS S3"
        try:
            s3.client(self._creds, timeout=5, retries=1).head_bucket(Bucket=bucket)
        except s3.ClientError as exc:
            status = s3.status_code(exc)
            if status == 404:
                return (
                    f"S3 bucket {bucket!r} of lake root {self.root} does not exist at {endpoint} {where}: "
                    "create the bucket or correct the lake root"
                )
            if status == 403:
                return f"S3 bucket {bucket!r} at {endpoint}: access denied; check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY"
            return f"S3 bucket {bucket!r} at {endpoint}: HTTP {status} {s3.error_code(exc)}"
        except (OSError, s3.BotoCoreError) as exc:
            return (
                f"S3 endpoint {endpoint} not reachable ({type(exc).__name__}); is the S3 server running? "
                "`lakehouse services status`"
            )
        return None

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
            # Safe concurrent commits on S3 without a lock service: conditional put, never rename.
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
