"""dbt-duckdb plugin: make the lake readable with `delta_scan` on every connection.

DuckDB extensions cannot be downloaded here, so the delta (and, for s3:// lakes, httpfs)
extension is installed from its PyPI package (duckdb-extension-*) and loaded. For an s3:// lake
an S3 secret is created from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_REGION /
AWS_ENDPOINT_URL, which `lakehouse gold` passes in.
"""

from __future__ import annotations

import contextlib
import os
from typing import Any

from dbt.adapters.duckdb.plugins import BasePlugin
from duckdb_extensions import import_extension


def _quote(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


class Plugin(BasePlugin):
    def initialize(self, plugin_config: dict[str, Any]) -> None:
        self.lake_uri = os.environ.get("LAKEHOUSE_LAKE_URI", "")
        self.locations = [
            os.environ.get(var, "")
            for var in ("LAKEHOUSE_LAKE_URI", "LAKEHOUSE_SILVER_URI", "LAKEHOUSE_OPS_URI")
        ]

    def configure_connection(self, conn: Any) -> None:
        s3 = any(uri.startswith("s3://") for uri in self.locations)
        for ext in ("delta", "httpfs") if s3 else ("delta",):
            # from the duckdb-extension-<ext> package; if it is not installed, LOAD below uses an
            # extension installed before (and fails with DuckDB's own message when there is none)
            with contextlib.suppress(ModuleNotFoundError):
                import_extension(ext, con=conn)
            conn.execute(f"LOAD {ext}")
        if s3 and os.environ.get("AWS_ACCESS_KEY_ID"):
            parts = [
                "TYPE s3",
                f"KEY_ID {_quote(os.environ['AWS_ACCESS_KEY_ID'])}",
                f"SECRET {_quote(os.environ.get('AWS_SECRET_ACCESS_KEY', ''))}",
                f"REGION {_quote(os.environ.get('AWS_REGION', 'us-east-1'))}",
            ]
            endpoint = os.environ.get("AWS_ENDPOINT_URL", "")
            if endpoint:
                host = endpoint.split("://", 1)[-1].rstrip("/")
                parts += [
                    f"ENDPOINT {_quote(host)}",
                    "URL_STYLE 'path'",
                    f"USE_SSL {str(endpoint.startswith('https')).lower()}",
                ]
            conn.execute(f"CREATE OR REPLACE SECRET lake ({', '.join(parts)})")
