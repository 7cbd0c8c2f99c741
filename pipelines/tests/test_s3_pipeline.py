"""The whole bronze -> silver flow on an s3:// lake served by a real SeaweedFS (auth on)."""

from __future__ import annotations

from typing import Any

import polars as pl
import pytest
from pyarrow.fs import FileSelector

from lakehelpers import read
from lakehouse.app import jobs
from lakehouse.core.reconcile import new_run_id
from lakehouse.core.storage import Lake

pytestmark = [pytest.mark.slow, pytest.mark.s3]


def test_landing_bronze_silver_on_s3(s3_settings: Any) -> None:
    settings = s3_settings.model_copy(
        update={"generator": s3_settings.generator.model_copy(update={"events": 3000, "event_files": 3})}
    )
    lake = Lake(settings)
    assert lake.root.startswith("s3://")
    counts = jobs.generate_events(lake, settings)
    fs, base = lake.landing("events")
    landed = [i.base_name for i in fs.get_file_info(FileSelector(base)) if i.is_file]
    # Three data files plus the marker that says the set is complete.
    assert set(landed) == {*(f"events-s42-{n:05d}.jsonl" for n in range(3)), "_generated-s42.json"}

    bronze = jobs.bronze(lake, settings, new_run_id(), sources=("events",))
    silver = jobs.silver(lake, settings, new_run_id())
    assert bronze[0].inserted == counts["lines"]
    assert silver[0].rows_in == counts["lines"] and silver[0].balanced
    # Rerun on S3: nothing new, nothing duplicated.
    assert jobs.bronze(lake, settings, new_run_id(), sources=("events",))[0].rows_in == 0
    assert jobs.silver(lake, settings, new_run_id())[0].rows_in == 0

    events = read(lake, "silver.events")
    assert events.num_rows == silver[0].inserted
    con = lake.duckdb_with_delta()
    duck = con.execute(
        f"SELECT count(*), count(DISTINCT event_id) FROM delta_scan('{lake.table_uri('silver.events')}')"
    ).fetchone()
    assert duck == (events.num_rows, events.num_rows)
    polars = pl.read_delta(lake.table_uri("silver.events"), storage_options=lake.storage_options)
    assert polars.height == events.num_rows
    assert sorted(polars["event_id"].to_list()) == sorted(events["event_id"].to_pylist())
