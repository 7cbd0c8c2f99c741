"""A page of rows as JSON, CSV, Arrow IPC (stream) or Parquet."""

from __future__ import annotations

import csv
import io
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from lakehouse.serving.catalog import Dataset


def _default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).hex()
    return str(value)  # intervals, times, ... as their text


def dumps(doc: Any) -> bytes:
    return orjson.dumps(doc, default=_default, option=orjson.OPT_UTC_Z)


def arrow_table(ds: Dataset, columns: list[str], rows: list[tuple[Any, ...]]) -> pa.Table:
    schema = ds.arrow_schema(columns)
    arrays = [pa.array([r[i] for r in rows], type=f.type) for i, f in enumerate(schema)]
    return pa.Table.from_arrays(arrays, schema=schema)


def _csv_cell(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, bool):
        return "true" if value else "false"
    return value


def encode(
    fmt: str, ds: Dataset, columns: list[str], rows: list[tuple[Any, ...]], meta: dict[str, Any]
) -> bytes:
    """The response body: JSON carries `meta` (dataset, version, page) beside the rows; the other
    formats carry the rows only (the page is in the headers)."""
    if fmt == "json":
        return dumps({**meta, "rows": [dict(zip(columns, r, strict=True)) for r in rows]})
    if fmt == "csv":
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows([_csv_cell(v) for v in r] for r in rows)
        return buf.getvalue().encode()
    table = arrow_table(ds, columns, rows)
    sink = pa.BufferOutputStream()
    if fmt == "arrow":
        with pa.ipc.new_stream(sink, table.schema) as writer:
            writer.write_table(table)
    else:
        pq.write_table(table, sink, compression="zstd")
    return bytes(sink.getvalue())
