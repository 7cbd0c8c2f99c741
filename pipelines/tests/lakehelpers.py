"""Helpers for tests that drive the pipeline on a temporary lake."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import pyarrow as pa

from lakehouse.bronze import landing
from lakehouse.core import delta
from lakehouse.core.reconcile import Reconciliation, new_run_id
from lakehouse.core.settings import Settings
from lakehouse.core.storage import Lake
from lakehouse.silver import events as silver_events


def write_landing(lake: Lake, name: str, lines: Iterable[bytes | str | dict[str, Any]]) -> None:
    """Drop one NDJSON file into the landing folder."""
    fs, base = lake.landing("events")
    payload = []
    for line in lines:
        if isinstance(line, dict):
            line = json.dumps(line)
        payload.append(line if isinstance(line, bytes) else line.encode())
    with fs.open_output_stream(f"{base}/{name}") as out:
        out.write(b"\n".join(payload) + b"\n")


def bronze_and_silver(lake: Lake, settings: Settings) -> tuple[Reconciliation, Reconciliation]:
    _, b = landing.ingest(lake, new_run_id(), settings.bronze.max_rows_per_commit)
    s = silver_events.run(lake, settings.silver, new_run_id())
    return b, s


def read(lake: Lake, table: str) -> pa.Table:
    dt = delta.open_table(lake, table)
    assert dt is not None, f"{table} does not exist"
    return dt.to_pyarrow_table()


def rows_by(table: pa.Table, key: str) -> dict[Any, dict[str, Any]]:
    return {row[key]: row for row in table.to_pylist()}
