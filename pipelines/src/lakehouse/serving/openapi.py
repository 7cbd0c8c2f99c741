"""The API's OpenAPI 3.0 document, written from the catalog: one path per dataset with its own
filters and row schema, beside the generic `/datasets/{name}`."""

from __future__ import annotations

import re
from typing import Any

from lakehouse import __version__
from lakehouse.core.settings import ServingSettings
from lakehouse.serving.catalog import Column, Dataset
from lakehouse.serving.query import FORMATS, MAX_OFFSET, MAX_VALUE_CHARS

_KIND_SCHEMA: dict[str, dict[str, Any]] = {
    "integer": {"type": "integer", "minimum": -(2**63), "maximum": 2**63 - 1},
    "number": {"type": "number"},
    "boolean": {"type": "boolean"},
    "date": {"type": "string", "format": "date"},
    "timestamp": {"type": "string", "format": "date-time"},
    "text": {"type": "string"},
}


def _error(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }


def _column_schema(col: Column) -> dict[str, Any]:
    schema = dict(_KIND_SCHEMA[col.kind])
    if col.nullable:
        schema["nullable"] = True
    if col.description:
        schema["description"] = col.description
    return schema


_FILTER_SCHEMA = {
    **_KIND_SCHEMA,
    "text": {"type": "string", "maxLength": MAX_VALUE_CHARS, "pattern": "^[^\\x00]*$"},
}


def _names_pattern(names: list[str], desc: bool = False) -> str:
    one = ("-?" if desc else "") + "(" + "|".join(re.escape(n) for n in names) + ")"
    return f"^{one}(,{one})*$"


def _query(name: str, description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "description": description, "schema": schema}


def _read_parameters(serving: ServingSettings, ds: Dataset | None) -> list[dict[str, Any]]:
    names = [c.name for c in ds.columns] if ds is not None else []
    params = [
        _query(
            "columns",
            "comma-separated columns to return (default: all)",
            {"type": "string", "pattern": _names_pattern(names)} if names else {"type": "string"},
        ),
        _query(
            "order",
            "comma-separated columns to order by; -name for descending (the key breaks ties)",
            {"type": "string", "pattern": _names_pattern(names, desc=True)} if names else {"type": "string"},
        ),
        _query(
            "limit",
            f"rows per page (default {serving.default_limit}, at most {serving.max_rows})",
            {"type": "integer", "minimum": 1, "maximum": serving.max_rows},
        ),
        _query(
            "offset",
            "rows to skip (pages follow the Link header)",
            {"type": "integer", "minimum": 0, "maximum": MAX_OFFSET},
        ),
        _query(
            "format",
            "response format (default: from Accept, else json)",
            {"type": "string", "enum": list(FORMATS)},
        ),
    ]
    if ds is None:
        params += [
            _query("from", "earliest value of the dataset's time column (inclusive)", {"type": "string"}),
            _query("to", "latest value of the dataset's time column (inclusive)", {"type": "string"}),
        ]
        return params
    if ds.time_column:
        kind = ds.by_name[ds.time_column].kind
        fmt = {"type": "string", "format": "date" if kind == "date" else "date-time"}
        params += [
            _query("from", f"earliest {ds.time_column} (inclusive)", fmt),
            _query("to", f"latest {ds.time_column} (inclusive)", fmt),
        ]
    for name in ds.dimensions:
        col = ds.by_name[name]
        params.append(
            _query(
                name, f"rows whose {name} equals this (repeat for any of several)", _FILTER_SCHEMA[col.kind]
            )
        )
    return params


def _read_responses(row_schema: dict[str, Any]) -> dict[str, Any]:
    binary = {"schema": {"type": "string", "format": "binary"}}
    return {
        "200": {
            "description": "one page of rows; ETag names the data version and the request",
            "headers": {
                "ETag": {"schema": {"type": "string"}},
                "Cache-Control": {"schema": {"type": "string"}},
                "Link": {"description": "the next page, when there is one", "schema": {"type": "string"}},
            },
            "content": {
                "application/json": {
                    "schema": {
                        "allOf": [
                            {"$ref": "#/components/schemas/Page"},
                            {
                                "type": "object",
                                "properties": {"rows": {"type": "array", "items": row_schema}},
                            },
                        ]
                    }
                },
                "text/csv": {"schema": {"type": "string"}},
                FORMATS["arrow"]: binary,
                FORMATS["parquet"]: binary,
            },
        },
        "304": {"description": "not modified: the If-None-Match ETag is current"},
        "400": _error("a parameter is unknown or malformed, or asks for too many rows"),
        "401": _error("missing, invalid or revoked API token"),
        "404": _error("no such dataset"),
        "406": _error("none of the Accept media types is served"),
        "503": _error("the read took longer than the limit, or the database is unavailable"),
    }


def document(datasets: dict[str, Dataset], serving: ServingSettings, server: str) -> dict[str, Any]:
    secured = serving.auth == "token"
    security: list[dict[str, list[str]]] = [{"token": []}] if secured else []
    paths: dict[str, Any] = {
        "/datasets": {
            "get": {
                "operationId": "listDatasets",
                "summary": "Every dataset with its schema, version, freshness and rows",
                "security": security,
                "responses": {
                    "200": {
                        "description": "the datasets",
                        "content": {
                            "application/json": {"schema": {"$ref": "#/components/schemas/DatasetList"}}
                        },
                    },
                    "304": {"description": "not modified"},
                    "401": _error("missing, invalid or revoked API token"),
                    "503": _error("the database is unavailable"),
                },
            }
        },
        "/datasets/{name}": {
            "get": {
                "operationId": "readDataset",
                "summary": "Rows of any dataset by name (schema.table)",
                "security": security,
                "parameters": [
                    {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}},
                    *_read_parameters(serving, None),
                ],
                "responses": _read_responses({"type": "object"}),
            }
        },
    }
    for ds in datasets.values():
        row = {"type": "object", "properties": {c.name: _column_schema(c) for c in ds.columns}}
        paths[f"/datasets/{ds.name}"] = {
            "get": {
                "operationId": "read_" + ds.name.replace(".", "_"),
                "summary": ds.description or f"Rows of {ds.name}",
                "tags": [ds.kind],
                "security": security,
                "parameters": _read_parameters(serving, ds),
                "responses": _read_responses(row),
            }
        }
    snapshot_file = {
        "200": {
            "description": "the Parquet file (Range requests served)",
            "content": {FORMATS["parquet"]: {"schema": {"type": "string", "format": "binary"}}},
        },
        "304": {"description": "not modified"},
        "401": _error("missing, invalid or revoked API token"),
        "404": _error("no such snapshot or file"),
    }
    paths["/snapshots"] = {
        "get": {
            "operationId": "snapshotManifest",
            "summary": "The latest snapshot's manifest: table, Delta version, rows, ETag and URL per file",
            "security": security,
            "responses": {
                "200": {
                    "description": "the manifest",
                    "content": {"application/json": {"schema": {"type": "object"}}},
                },
                "304": {"description": "not modified"},
                "401": _error("missing, invalid or revoked API token"),
                "404": _error("no snapshot yet"),
            },
        }
    }
    paths["/snapshots/{file}"] = {
        "get": {
            "operationId": "snapshotLatestFile",
            "security": security,
            "parameters": [{"name": "file", "in": "path", "required": True, "schema": {"type": "string"}}],
            "responses": snapshot_file,
        }
    }
    paths["/snapshots/{snapshot_id}/{file}"] = {
        "get": {
            "operationId": "snapshotFile",
            "security": security,
            "parameters": [
                {"name": "snapshot_id", "in": "path", "required": True, "schema": {"type": "string"}},
                {"name": "file", "in": "path", "required": True, "schema": {"type": "string"}},
            ],
            "responses": snapshot_file,
        }
    }
    paths["/health"] = {
        "get": {
            "operationId": "health",
            "security": [],
            "responses": {
                "200": {"description": "up", "content": {"application/json": {"schema": {"type": "object"}}}},
                "503": _error("the database is unavailable"),
            },
        }
    }
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "Ampere Lakehouse serving API",
            "version": __version__,
            "description": "Read-only: the gold marts, the speed layer's windows and Parquet snapshots.",
        },
        "servers": [{"url": server}],
        "paths": paths,
        "components": {
            "securitySchemes": {"token": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "Error": {
                    "type": "object",
                    "required": ["error", "status"],
                    "properties": {"error": {"type": "string"}, "status": {"type": "integer"}},
                },
                "Page": {
                    "type": "object",
                    "required": ["dataset", "version", "columns", "offset", "limit", "count", "rows"],
                    "properties": {
                        "dataset": {"type": "string"},
                        "version": {"type": "string"},
                        "updated_at": {"type": "string", "format": "date-time", "nullable": True},
                        "columns": {"type": "array", "items": {"type": "object"}},
                        "offset": {"type": "integer"},
                        "limit": {"type": "integer"},
                        "count": {"type": "integer"},
                        "next": {"type": "string", "nullable": True},
                        "rows": {"type": "array", "items": {"type": "object"}},
                    },
                },
                "DatasetList": {
                    "type": "object",
                    "required": ["datasets"],
                    "properties": {
                        "publication_id": {"type": "integer", "nullable": True},
                        "datasets": {"type": "array", "items": {"type": "object"}},
                    },
                },
            },
        },
    }
