"""Backfill on Spark against the embedded backfill: one input in two lakes, silver by the embedded
engine in both; lake b's silver is then handed over to Spark. The same rule change backfilled by
`silver.backfill` in lake a and by `silver.spark.backfill` in lake b gives the same tables
(read through DuckDB's delta_scan), the same reconciliation, one commit per table and no moved
watermark; a rerun changes nothing; each engine refuses the other's tables."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from lakehelpers import bronze_and_silver, write_landing
from lakehouse.core import delta, ownership
from lakehouse.core.ownership import OwnershipError
from lakehouse.core.reconcile import new_run_id
from lakehouse.core.storage import Lake
from lakehouse.silver import backfill
from lakehouse.silver import events as silver_events
from lakehouse.silver.spark import backfill as spark_backfill
from sparkhelpers import spark_session
from test_restore_consistency import contents

pytestmark = [pytest.mark.spark, pytest.mark.slow]

DAYS = ("2026-11-01", "2026-11-02", "2026-11-03")
TABLES = (silver_events.EVENTS, silver_events.QUARANTINE)
REPO = Path(__file__).resolve().parents[2]
DAY2 = date(2026, 11, 2)


@pytest.fixture(scope="module")
def spark(settings_factory: Any) -> Iterator[Any]:
    yield from spark_session(settings_factory, "lakehouse-spark-backfill")


def _event(day: str, hour: int, **fields: Any) -> dict[str, Any]:
    return {
        "event_id": str(uuid.uuid4()),
        "user_id": 7,
        "event_type": "page_view",
        "ts": f"{day}T{hour:02d}:00:00Z",
        "page": "/home",
        **fields,
    }


def _lines() -> list[Any]:
    """Three days of events, two per day with a 1,500-character page (quarantined while
    silver.max_field_chars is 1,000), an exact duplicate and a malformed line."""
    lines: list[Any] = []
    for day in DAYS:
        lines += [_event(day, hour) for hour in range(20)]
        lines += [_event(day, hour, page="/" + "p" * 1500) for hour in (21, 22)]
    return [*lines, lines[0], "{not json"]


@pytest.fixture
def lakes(settings_factory: Any) -> tuple[Lake, Lake]:
    lines = _lines()
    pair = []
    for _ in range(2):
        settings = settings_factory({"silver.max_field_chars": 1000})
        lake = Lake(settings)
        write_landing(lake, "days.jsonl", lines)
        _, silver = bronze_and_silver(lake, settings)
        assert (silver.inserted, silver.quarantined, silver.duplicates) == (60, 7, 1)
        pair.append(lake)
    return pair[0], pair[1]


def _relaxed(lake: Lake) -> Any:
    return lake.settings.silver.model_copy(update={"max_field_chars": 32_768})


def _facts(result: backfill.BackfillResult) -> tuple[Any, ...]:
    rec = result.reconciliation
    return (
        result.events_before,
        result.events_after,
        result.quarantined_before,
        result.quarantined_after,
        rec.rows_in,
        rec.inserted,
        rec.duplicates,
        rec.quarantined,
        rec.balanced,
        rec.source,
        rec.target,
        rec.detail,
    )


@pytest.mark.spark_long
def test_spark_backfill_equals_embedded_in_one_commit_and_is_idempotent(
    spark: Any, lakes: tuple[Lake, Lake]
) -> None:
    a, b = lakes
    # silver is the embedded engine's: Spark refuses before reading anything
    with pytest.raises(OwnershipError, match=r"silver\.events is written by the embedded engine"):
        spark_backfill.reprocess(spark, b, _relaxed(b), new_run_id(), DAY2, DAY2)
    for table in TABLES:
        ownership.hand_over(b, table, ownership.SPARK)
    versions = {t: b.table(t).version() for t in TABLES}
    marks = {t: delta.txn_version(b, t, silver_events.APP_ID) for t in TABLES}

    embedded = backfill.reprocess(a, _relaxed(a), new_run_id(), DAY2, DAY2)
    by_spark = spark_backfill.reprocess(spark, b, _relaxed(b), new_run_id(), DAY2, DAY2)
    assert _facts(by_spark) == _facts(embedded)
    assert by_spark.reconciliation.balanced and by_spark.moved_to_quarantine == -2
    assert (by_spark.events_before, by_spark.events_after) == (20, 22)
    for table in TABLES:
        assert contents(b, table) == contents(a, table), table
        assert b.table(table).version() == versions[table] + 1, table  # one commit per table
        assert delta.txn_version(b, table, silver_events.APP_ID) == marks[table], table
        assert ownership.owner(b, table) == ownership.SPARK
        meta = json.loads(b.table(table).history(1)[0]["userMetadata"])
        assert (meta["lakehouse.operation"], meta["lakehouse.event_dates"]) == ("backfill", f"{DAY2}..{DAY2}")

    after = {t: contents(b, t) for t in TABLES}
    again = spark_backfill.reprocess(spark, b, _relaxed(b), new_run_id(), DAY2, DAY2)
    assert again.moved_to_quarantine == 0 and again.reconciliation.balanced
    assert {t: contents(b, t) for t in TABLES} == after  # idempotent
    # the overwrite commits again; a MERGE that changes nothing commits nothing
    assert b.table(silver_events.EVENTS).version() == versions[silver_events.EVENTS] + 2
    assert b.table(silver_events.QUARANTINE).version() == versions[silver_events.QUARANTINE] + 1

    # and the embedded backfill refuses Spark's silver
    with pytest.raises(OwnershipError, match=r"silver\.events is written by the spark engine"):
        backfill.reprocess(b, _relaxed(b), new_run_id(), DAY2, DAY2)


def _cli(lake: Lake, *args: str) -> subprocess.CompletedProcess[str]:
    settings = lake.settings
    env = {
        **os.environ,
        "LAKEHOUSE_LAKE_ROOT": settings.lake_uri,
        "LAKEHOUSE_STATE_DIR": str(settings.state_path),
        "LAKEHOUSE_PG_PORT": str(settings.postgres.port),
    }
    return subprocess.run(
        [sys.executable, "-m", "lakehouse", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_cli_spark_backfill_refuses_embedded_silver_before_spark_starts(lakes: tuple[Lake, Lake]) -> None:
    _, b = lakes
    refused = _cli(b, "spark", "backfill", "--from", "2026-11-01", "--to", "2026-11-03")
    assert refused.returncode == 2
    lines = refused.stderr.strip().splitlines()
    assert len(lines) == 1 and "silver.events is written by the embedded engine" in lines[0], refused.stderr
    assert "Spark" not in refused.stderr.replace("lakehouse spark", "")  # no session was started
    # Spark's silver: the embedded command names the Spark one
    for table in TABLES:
        ownership.hand_over(b, table, ownership.SPARK)
    refused = _cli(b, "maintain", "backfill", "--from", "2026-11-01", "--to", "2026-11-03")
    lines = refused.stderr.strip().splitlines()
    assert refused.returncode == 2 and len(lines) == 1, refused.stderr
    assert "`lakehouse spark backfill --from 2026-11-01 --to 2026-11-03`" in lines[0]


@pytest.mark.spark_long
def test_cli_spark_backfill_replaces_the_range(lakes: tuple[Lake, Lake]) -> None:
    _, b = lakes
    for table in TABLES:
        ownership.hand_over(b, table, ownership.SPARK)
    args = ["spark", "backfill", "--from", "2026-11-01", "--to", "2026-11-03", "--json"]
    done = _cli(b, *args, "--set", "silver.max_field_chars=32768")
    assert done.returncode == 0, done.stderr[-2000:]
    payload = json.loads(done.stdout)
    assert payload["balanced"] and payload["moved_to_quarantine"] == -6
    assert (payload["events_before"], payload["events_after"]) == (60, 66)
