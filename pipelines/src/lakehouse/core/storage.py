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


def folder_credentials(setting: str, folder: str) -> S3Credentials:
    """A layer's credentials from the files of a mounted Secret (AWS_ACCESS_KEY_ID and
    AWS_SECRET_ACCESS_KEY; AWS_ENDPOINT_URL and AWS_REGION optional, else the environment's)."""

    def read(name: str, required: bool) -> str | None:
        path = Path(folder) / name
        try:
            return path.read_text().strip() or None
        except FileNotFoundError:
            if required:
                raise ConfigError(f"setting '{setting}' = {folder!r}: no file {name} there") from None
            return None
        except OSError as exc:
            raise ConfigError(
                f"setting '{setting}' = {folder!r}: cannot read {name} ({exc.strerror})"
            ) from None

    key, secret = read("AWS_ACCESS_KEY_ID", True), read("AWS_SECRET_ACCESS_KEY", True)
    endpoint = (
        read("AWS_ENDPOINT_URL", False)
        or os.environ.get("AWS_ENDPOINT_URL_S3")
        or os.environ.get("AWS_ENDPOINT_URL")
    )
    region = read("AWS_REGION", False) or os.environ.get("AWS_REGION") or "us-east-1"
    return S3Credentials(str(key), str(secret), endpoint, region)


def storage_options(creds: S3Credentials | None) -> dict[str, str] | None:
    """delta-rs storage options for these credentials (None: a local folder)."""
    if creds is None:
        return None
    opts = {
        "AWS_ACCESS_KEY_ID": creds.access_key,
        "AWS_SECRET_ACCESS_KEY": creds.secret_key,
        "AWS_REGION": creds.region,
        # Safe concurrent commits on S3 without a lock service: conditional put, never rename.
        "aws_conditional_put": "etag",
    }
    if creds.endpoint:
        opts["AWS_ENDPOINT_URL"] = creds.endpoint
        opts["AWS_ALLOW_HTTP"] = "true"
        opts["AWS_VIRTUAL_HOSTED_STYLE_REQUEST"] = "false"
    return opts


class Lake:
    """Table locations and engine connections for one lake root."""

    def __init__(self, settings: Settings, *, create: bool = True) -> None:
        """`create`: make a local lake root that does not exist yet (writers); readers pass
        False and ask `missing()`."""
        self.settings = settings
        self.root = settings.lake_uri
        root_on_s3 = self.root.startswith("s3://")
        mapped = {layer: settings.layers.get(layer) for layer in LAYERS}  # type: ignore[call-overload]
        # The lake's own credentials (environment or local server) are needed only where a
        # location has none of its own: a cluster pod with every layer mapped has none.
        needs_default = any(
            (loc is None and root_on_s3)
            or (loc is not None and loc.root.startswith("s3://") and not loc.credentials)
            for loc in mapped.values()
        )
        self._creds = s3_credentials(settings) if needs_default else None
        # layer -> (its root, its credentials): settings.layers, else <root>/<layer>
        self._layers: dict[str, tuple[str, S3Credentials | None]] = {}
        for layer, loc in mapped.items():
            if loc is None:
                self._layers[layer] = (f"{self.root}/{layer}", self._creds)
            elif not loc.root.startswith("s3://"):
                path = Path(loc.root)
                self._layers[layer] = (
                    str(path if path.is_absolute() else (settings.root / path).resolve()),
                    None,
                )
            elif loc.credentials:
                self._layers[layer] = (
                    loc.root,
                    folder_credentials(f"layers.{layer}.credentials", loc.credentials),
                )
            else:
                self._layers[layer] = (loc.root, self._creds)
        if not root_on_s3 and create:
            Path(self.root).mkdir(parents=True, exist_ok=True)

    def missing(self) -> str | None:
        """Why this lake cannot be read (its folder or bucket does not exist, or the store does
        not answer), as one line with the fix; None when it is there."""
        where = "(setting lake_root or LAKEHOUSE_LAKE_ROOT)"
        if not self._s3_locations():
            if Path(self.root).is_dir():
                return None
            return (
                f"lake root {self.root} does not exist {where}: correct it, or create the lake with "
                "`lakehouse demo` or `lakehouse bronze`"
            )

        for uri, creds in self._s3_locations():
            problem = _bucket_problem(uri, creds, where)
            if problem:
                return problem
        return None

    def _s3_locations(self) -> list[tuple[str, S3Credentials]]:
        """(root URI, credentials) of every location on S3: the lake root, then each layer."""
        out: list[tuple[str, S3Credentials]] = []
        if self._creds is not None and self.root.startswith("s3://"):
            out.append((self.root, self._creds))
        for uri, creds in self._layers.values():
            if creds is not None and not any(uri.startswith(f"{u}/") for u, _ in out):
                out.append((uri, creds))
        return out

    @property
    def default_credentials(self) -> S3Credentials | None:
        """The lake's own S3 credentials (environment or local server); None when every location
        has credentials of its own, or none is on S3."""
        return self._creds

    def bucket_credentials(self) -> dict[str, S3Credentials]:
        """bucket -> the credentials of the locations in it, for clients configured per bucket
        (Spark's S3A takes one key pair per bucket). Two key pairs for one bucket are refused."""
        out: dict[str, S3Credentials] = {}
        for uri, creds in self._s3_locations():
            bucket = uri.removeprefix("s3://").split("/", 1)[0]
            if out.setdefault(bucket, creds) != creds:
                raise ConfigError(
                    f"bucket {bucket} is reached with two different key pairs (settings lake_root / "
                    "layers.*.credentials): give the locations in one bucket the same credentials"
                )
        return out

    # -- locations ----------------------------------------------------------------------------
    def layer_uri(self, layer: str) -> str:
        """Root of a layer's tables: its settings.layers location, else <root>/<layer>."""
        return self._layers[layer][0]

    def layer_credentials(self, layer: str) -> S3Credentials | None:
        return self._layers[layer][1]

    def table_uri(self, qualified: str) -> str:
        """'silver.events' -> <silver location>/events."""
        layer, _, name = qualified.partition(".")
        if layer not in LAYERS or not name:
            raise ValueError(f"table name must be <layer>.<name> with layer in {LAYERS}: {qualified!r}")
        return f"{self.layer_uri(layer)}/{name}"

    def options(self, qualified: str) -> dict[str, str] | None:
        """delta-rs storage options for a table ('layer.name') or a layer: its layer's credentials."""
        return storage_options(self.layer_credentials(qualified.partition(".")[0]))

    @property
    def storage_options(self) -> dict[str, str] | None:
        """Storage options of the lake root's credentials (tables use `options(table)`)."""
        return storage_options(self._creds)

    def exists(self, qualified: str) -> bool:
        return DeltaTable.is_deltatable(self.table_uri(qualified), storage_options=self.options(qualified))

    def table(self, qualified: str, version: int | None = None) -> DeltaTable:
        return DeltaTable(self.table_uri(qualified), version=version, storage_options=self.options(qualified))

    def filesystem(self, layer: str | None = None) -> tuple[pafs.FileSystem, str]:
        """A filesystem for the lake root (or `layer`'s location, with its credentials) and that
        location's path in it."""
        uri, c = (self.root, self._creds) if layer is None else self._layers[layer]
        if not uri.startswith("s3://"):
            return pafs.LocalFileSystem(), uri
        if c is None:
            raise ConfigError(f"no S3 credentials for {uri}: set AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY")
        return _s3_filesystem(c), uri.removeprefix("s3://")

    def table_path(self, qualified: str) -> tuple[pafs.FileSystem, str]:
        """A filesystem with the table's layer credentials and the table's path in it."""
        layer = qualified.partition(".")[0]
        fs, _ = self.filesystem(layer)
        return fs, self.table_uri(qualified).removeprefix("s3://")

    def landing(self, source: str = "events") -> tuple[pafs.FileSystem, str]:
        """Filesystem and folder where files for `source` land: <lake>/landing/<source>, or
        <bronze location>/landing/<source> when bronze has a location of its own."""
        mapped = "bronze" in self.settings.layers
        fs, root = self.filesystem("bronze" if mapped else None)
        path = f"{root}/landing/{source}"
        if isinstance(fs, pafs.LocalFileSystem):
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
        """Let `con` read this lake's files on S3 (httpfs + one secret per location, scoped to
        it, so each layer is read with its own credentials)."""
        locations = self._s3_locations()
        if not locations:
            return
        import_extension("httpfs", con=con)
        con.execute("LOAD httpfs")
        for i, (uri, c) in enumerate(locations):
            parts = [
                "TYPE s3",
                f"KEY_ID '{c.access_key}'",
                f"SECRET '{c.secret_key}'",
                f"REGION '{c.region}'",
            ]
            if c.endpoint_host:
                parts += [
                    f"ENDPOINT '{c.endpoint_host}'",
                    "URL_STYLE 'path'",
                    f"USE_SSL {str(c.use_ssl).lower()}",
                ]
            parts.append(f"SCOPE '{uri}'")
            con.execute(f"CREATE OR REPLACE SECRET {'lake' if i == 0 else f'lake_{i}'} ({', '.join(parts)})")


def _s3_filesystem(c: S3Credentials) -> pafs.S3FileSystem:
    return pafs.S3FileSystem(
        access_key=c.access_key,
        secret_key=c.secret_key,
        region=c.region,
        endpoint_override=c.endpoint_host,
        scheme="https" if c.use_ssl or not c.endpoint else "http",
    )


def _bucket_problem(uri: str, creds: S3Credentials, where: str) -> str | None:
    """Why the bucket of `uri` cannot be used with `creds`, as one line; None when it can."""
    bucket = uri.removeprefix("s3://").split("/", 1)[0]
    endpoint = creds.endpoint or "AWS S3"
    try:
        s3.client(creds, timeout=5, retries=1).head_bucket(Bucket=bucket)
    except s3.ClientError as exc:
        status = s3.status_code(exc)
        if status == 404:
            return (
                f"S3 bucket {bucket!r} of {uri} does not exist at {endpoint} {where}: "
                "create the bucket or correct the location"
            )
        if status == 403:
            return f"S3 bucket {bucket!r} at {endpoint}: access denied; check the credentials of {uri}"
        return f"S3 bucket {bucket!r} at {endpoint}: HTTP {status} {s3.error_code(exc)}"
    except (OSError, s3.BotoCoreError) as exc:
        return (
            f"S3 endpoint {endpoint} not reachable ({type(exc).__name__}); is the S3 server running? "
            "`lakehouse services status`"
        )
    return None
