"""Two silver runs at once on a lake where silver.events and silver.quarantine_events do not
exist yet: the rival runs to the end just before the other's first commit, after that run read
its marks. The other run's commit fails (it retries later from the new marks); no row lands
twice, in either table."""

from __future__ import annotations

import uuid
from typing import Any

import pyarrow.compute as pc
import pytest
from deltalake.exceptions import CommitFailedError

from lakehelpers import read, write_landing
from lakehouse.app.cli import failures
from lakehouse.bronze import landing
from lakehouse.core import delta
from lakehouse.core.errors import TransientError
from lakehouse.core.reconcile import new_run_id
from lakehouse.core.storage import Lake
from lakehouse.silver import events


def _id(i: int) -> str:
    return str(uuid.UUID(int=i + 1))


def _counts(lake: Lake) -> tuple[dict[str, int], dict[int, int]]:
    ev = read(lake, events.EVENTS)
    q = read(lake, events.QUARANTINE)
    by_event = {str(c["values"]): int(c["counts"]) for c in pc.value_counts(ev["event_id"]).to_pylist()}
    by_line = {int(c["values"]): int(c["counts"]) for c in pc.value_counts(q["source_line"]).to_pylist()}
    return by_event, by_line


def test_two_runs_that_both_found_silver_absent_write_each_row_once(
    settings_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = settings_factory()
    lake = Lake(settings)
    good = [
        {
            "event_id": _id(i),
            "user_id": 7,
            "event_type": "page_view",
            "ts": "2026-11-02T10:00:00Z",
            "page": "/",
        }
        for i in range(4)
    ]
    write_landing(lake, "a.jsonl", [*good, "not json"])
    landing.ingest(lake, new_run_id(), 1000)
    real_append = delta.append

    def rival_first(*args: Any, **kwargs: Any) -> None:
        monkeypatch.setattr(delta, "append", real_append)
        events.run(lake, settings.silver, "rival")
        real_append(*args, **kwargs)

    monkeypatch.setattr(delta, "append", rival_first)
    with pytest.raises((CommitFailedError, TransientError)) as lost:
        events.run(lake, settings.silver, "loser")
    assert failures.transient(lost.value)
    want = ({_id(i): 1 for i in range(4)}, {5: 1})
    assert _counts(lake) == want
    events.run(lake, settings.silver, "rerun")
    assert _counts(lake) == want
