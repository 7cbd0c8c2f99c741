"""A silver run that another writer overtakes stops with one line saying so, as a transient
failure (the exit code a scheduler retries), having written nothing of its chunk; the next run
reaches the result of a lone run. The other writer is real (a whole silver run, an OPTIMIZE +
VACUUM at retention 0); only its moment is chosen: between this run's read of the table and
its commit."""

from __future__ import annotations

import uuid
from typing import Any

import pyarrow.compute as pc
import pytest

from lakehelpers import read, write_landing
from lakehouse.app.cli import TRANSIENT, exit_code, failures
from lakehouse.bronze import landing
from lakehouse.core import delta
from lakehouse.core.errors import TransientError
from lakehouse.core.reconcile import new_run_id
from lakehouse.core.storage import Lake
from lakehouse.maintenance import ops
from lakehouse.silver import events


def _event(i: int) -> dict[str, Any]:
    return {
        "event_id": str(uuid.UUID(int=i + 1)),
        "user_id": i % 5,
        "event_type": "page_view",
        "ts": "2026-11-02T10:00:00Z",
        "page": f"/p{i % 3}",
    }


def _lake_with_half_absorbed(settings: Any, files: int = 4) -> Lake:
    """bronze.events holding `files` landing files, silver having absorbed the first half of
    them in one commit per file (several Parquet files: OPTIMIZE has work to do)."""
    lake = Lake(settings)
    for f in range(files // 2):
        write_landing(lake, f"a{f}.jsonl", [_event(f * 10 + i) for i in range(10)])
        landing.ingest(lake, new_run_id(), 1000)
        events.run(lake, settings.silver, new_run_id())
    for f in range(files // 2, files):
        write_landing(lake, f"b{f}.jsonl", [*(_event(f * 10 + i) for i in range(10)), "not json"])
    landing.ingest(lake, new_run_id(), 1000)
    return lake


def _events_by_id(lake: Lake) -> dict[str, int]:
    ev = read(lake, events.EVENTS)
    return {str(c["values"]): int(c["counts"]) for c in pc.value_counts(ev["event_id"]).to_pylist()}


def _says_another_writer(exc: BaseException) -> str:
    line = failures.describe(exc)
    assert "\n" not in line
    assert line.startswith("another writer changed "), line
    assert line.endswith("run silver again to continue"), line
    assert exit_code(exc) == TRANSIENT
    return line


def test_a_run_overtaken_by_another_silver_run_stops_in_one_line(
    settings_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = settings_factory()
    lake = _lake_with_half_absorbed(settings)
    real_append = delta.append

    def rival_first(*args: Any, **kwargs: Any) -> None:
        monkeypatch.setattr(delta, "append", real_append)
        events.run(lake, settings.silver, "rival")  # a whole other silver run commits first
        real_append(*args, **kwargs)

    monkeypatch.setattr(delta, "append", rival_first)
    with pytest.raises(TransientError) as lost:
        events.run(lake, settings.silver, "loser")
    assert "silver.events" in _says_another_writer(lost.value)
    want = {str(uuid.UUID(int=i + 1)): 1 for i in range(40)}
    assert _events_by_id(lake) == want
    events.run(lake, settings.silver, "rerun")
    assert _events_by_id(lake) == want
    assert read(lake, events.QUARANTINE).num_rows == 2


def test_a_run_whose_files_a_vacuum_removed_stops_in_one_line(
    settings_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = settings_factory(
        {"maintenance.vacuum_retention_hours": 0, "maintenance.enforce_retention_duration": "false"}
    )
    lake = _lake_with_half_absorbed(settings)
    real_register = events._register_existing

    def compacted_and_vacuumed(*args: Any, **kwargs: Any) -> None:
        real_register(*args, **kwargs)  # the files of the snapshot this run scans are listed
        ops.optimize(lake, settings.maintenance, events.EVENTS, zorder=False)
        ops.vacuum(lake, settings.maintenance, events.EVENTS)  # ... and removed

    monkeypatch.setattr(events, "_register_existing", compacted_and_vacuumed)
    with pytest.raises(TransientError) as lost:
        events.run(lake, settings.silver, "loser")
    assert "a file of the snapshot it read was removed" in _says_another_writer(lost.value)
    assert _events_by_id(lake) == {str(uuid.UUID(int=i + 1)): 1 for i in range(20)}
    monkeypatch.setattr(events, "_register_existing", real_register)
    events.run(lake, settings.silver, "rerun")
    assert _events_by_id(lake) == {str(uuid.UUID(int=i + 1)): 1 for i in range(40)}
    assert read(lake, events.QUARANTINE).num_rows == 2
