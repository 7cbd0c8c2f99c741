"""Runs killed with SIGKILL mid-write and rerun lose nothing and duplicate nothing; reruns are
no-ops; every table reads the same through independent readers."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from lakehelpers import read
from lakehouse.core.settings import Settings
from lakehouse.core.storage import Lake

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]
VOLATILE = {"_run_id", "_ingestion_time", "_batch_id", "_commit_version", "_ordinal"}


def cli(settings: Settings, *args: str) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "LAKEHOUSE_LAKE_ROOT": settings.lake_uri,
        "LAKEHOUSE_STATE_DIR": str(settings.state_path),
        "LAKEHOUSE_PG_PORT": str(settings.postgres.port),
    }
    return subprocess.Popen(
        [sys.executable, "-m", "lakehouse", *args],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def run_to_end(settings: Settings, *args: str) -> None:
    proc = cli(settings, *args)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err.decode()[-2000:]


def kill_repeatedly(settings: Settings, times: int, *args: str) -> int:
    """Start the command, SIGKILL it after a random delay, `times` times; returns kills that hit a live run."""
    rng = random.Random(1234)
    hits = 0
    # shortest delay first: a first run that outlives its kill leaves nothing for the later ones
    for delay in sorted(rng.uniform(1.0, 2.5) for _ in range(times)):
        proc = cli(settings, *args)
        time.sleep(delay)
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            hits += 1
        proc.wait(timeout=60)
    return hits


def make_settings(settings_factory: Any, **extra: Any) -> Settings:
    return settings_factory(
        {
            "generator.events": 24_000,
            "generator.event_files": 24,
            "bronze.max_rows_per_commit": 2_000,
            "silver.chunk_rows": 4_000,
            **extra,
        }
    )


def canonical(table: pa.Table, key: str) -> pa.Table:
    keep = [c for c in table.column_names if c not in VOLATILE]
    return table.select(keep).sort_by([(key, "ascending")])


def test_killed_runs_lose_and_duplicate_nothing(settings_factory: Any) -> None:
    reference = make_settings(settings_factory)
    victim = make_settings(settings_factory)
    for s in (reference, victim):
        run_to_end(s, "generate", "events")

    # Reference: one uninterrupted run of each step.
    run_to_end(reference, "bronze", "--source", "events")
    run_to_end(reference, "silver")

    # Victim: bronze and silver each killed at random points, then finished.
    assert kill_repeatedly(victim, 4, "bronze", "--source", "events") > 0
    run_to_end(victim, "bronze", "--source", "events")
    assert kill_repeatedly(victim, 4, "silver") > 0
    run_to_end(victim, "silver")

    ref_lake, lake = Lake(reference), Lake(victim)
    bronze = read(lake, "bronze.events")
    keys = pc.binary_join_element_wise(
        bronze["source_file"], pc.cast(bronze["source_line"], pa.string()), ":"
    )
    assert len(pc.unique(keys)) == bronze.num_rows == read(ref_lake, "bronze.events").num_rows

    events, ref_events = read(lake, "silver.events"), read(ref_lake, "silver.events")
    assert len(pc.unique(events["event_id"])) == events.num_rows
    assert canonical(events, "event_id").equals(canonical(ref_events, "event_id"))
    quarantine, ref_quarantine = (
        read(lake, "silver.quarantine_events"),
        read(ref_lake, "silver.quarantine_events"),
    )
    qkey = ["source_file", "source_line"]
    assert (
        quarantine.select(qkey)
        .sort_by([(k, "ascending") for k in qkey])
        .equals(ref_quarantine.select(qkey).sort_by([(k, "ascending") for k in qkey]))
    )
    # Every bronze row is accounted for exactly once in the stored reconciliation.
    recon = read(lake, "ops.reconciliation").to_pylist()
    silver_in = sum(r["rows_in"] for r in recon if r["step"] == "silver" and r["source"] == "bronze.events")
    assert silver_in == bronze.num_rows
    assert all(r["balanced"] for r in recon)


def test_tables_read_identically_through_independent_readers(settings_factory: Any) -> None:
    settings = make_settings(settings_factory, **{"generator.events": 5_000})
    run_to_end(settings, "generate", "events")
    run_to_end(settings, "bronze", "--source", "events")
    run_to_end(settings, "silver")
    lake = Lake(settings)
    con = lake.duckdb_with_delta()
    for table in ("bronze.events", "silver.events", "silver.quarantine_events", "ops.reconciliation"):
        ours = read(lake, table)
        key = {"bronze.events": "ordinal", "silver.events": "event_id"}.get(table)
        duck = con.execute(f"SELECT count(*) FROM delta_scan('{lake.table_uri(table)}')").fetchone()[0]
        polars = pl.read_delta(lake.table_uri(table))
        assert duck == polars.height == ours.num_rows, table
        if key:
            duck_keys = sorted(
                r[0]
                for r in con.execute(f"SELECT {key} FROM delta_scan('{lake.table_uri(table)}')").fetchall()
            )
            assert duck_keys == sorted(ours[key].to_pylist()) == sorted(polars[key].to_list())
    money = con.execute(
        f"SELECT sum(amount_base), count(DISTINCT event_id) FROM delta_scan('{lake.table_uri('silver.events')}')"
    ).fetchone()
    events = pl.read_delta(lake.table_uri("silver.events"))
    assert money[1] == events["event_id"].n_unique()
    assert money[0] == events["amount_base"].sum()
