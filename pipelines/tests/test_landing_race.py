"""Two landing ingests at once (two scheduler pods, no shared step lock): the second one to
commit stops with an error and commits nothing, so no landing file's rows land twice.

The rival ingest runs to the end inside the first one's hooks, between its read of
bronze.events and its commit: the interleaving a real race hits only now and then."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from deltalake.exceptions import CommitFailedError

from lakehelpers import write_landing
from lakehouse.app.cli import failures
from lakehouse.bronze import landing
from lakehouse.core import delta
from lakehouse.core.errors import TransientError
from lakehouse.core.storage import Lake


def _files(lake: Lake, names: list[str]) -> None:
    for name in names:
        write_landing(lake, name, [{"event_id": f"{name}-{i}", "n": i} for i in range(3)])


@pytest.mark.parametrize("existing", [True, False], ids=["table-exists", "table-new"])
def test_a_rival_commit_between_read_and_commit_fails_the_run(settings_factory: Any, existing: bool) -> None:
    lake = Lake(settings_factory())
    if existing:
        _files(lake, ["a.jsonl"])
        landing.ingest(lake, "first", 1000)
    todo = ["b.jsonl", "c.jsonl", "d.jsonl"]
    _files(lake, todo)

    def rival(_files: int, _bytes: int) -> None:
        result, _ = landing.ingest(lake, "rival", 1000)
        assert result.files == todo

    with pytest.raises((CommitFailedError, TransientError)) as lost:
        landing.ingest(lake, "loser", 1000, on_plan=rival)
    # the CLI reports it as one line and exits 75, so a scheduler retries the run
    assert failures.transient(lost.value) and "\n" not in failures.describe(lost.value)
    want = {name: 3 for name in (["a.jsonl"] if existing else []) + todo}
    assert landing.rows_per_file(lake) == want
    again, _ = landing.ingest(lake, "rerun", 1000)
    assert again.files == [] and landing.rows_per_file(lake) == want


def test_a_rival_between_two_commits_of_one_run_fails_its_next_commit(settings_factory: Any) -> None:
    """One run commits file by file; a rival that read the table after its first commit takes
    the rest, and the run's next commit fails instead of repeating them."""
    lake = Lake(settings_factory())
    _files(lake, ["a.jsonl"])
    landing.ingest(lake, "first", 1000)
    todo = ["b.jsonl", "c.jsonl", "d.jsonl"]
    _files(lake, todo)
    seen: list[int] = []

    def rows(n: int) -> None:
        seen.append(n)
        if len(seen) == 2:  # b.jsonl is committed, c.jsonl read but not yet
            result, _ = landing.ingest(lake, "rival", 1000)
            assert result.files == ["c.jsonl", "d.jsonl"]

    with pytest.raises((CommitFailedError, TransientError)):
        landing.ingest(lake, "loser", 3, on_rows=rows)
    assert landing.rows_per_file(lake) == {name: 3 for name in ["a.jsonl", *todo]}


def test_two_runs_that_both_found_the_table_absent_land_each_file_once(
    settings_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """bronze.events absent for both: the rival runs whole just before the loser's first commit,
    after the loser decided what to do. The loser's commit fails; nothing lands twice."""
    lake = Lake(settings_factory())
    todo = ["a.jsonl", "b.jsonl"]
    _files(lake, todo)
    real_append = delta.append

    def rival_first(*args: Any, **kwargs: Any) -> None:
        monkeypatch.setattr(delta, "append", real_append)
        result, _ = landing.ingest(lake, "rival", 1000)
        assert result.files == todo
        real_append(*args, **kwargs)

    monkeypatch.setattr(delta, "append", rival_first)
    with pytest.raises((CommitFailedError, TransientError)) as lost:
        landing.ingest(lake, "loser", 1000)
    assert failures.transient(lost.value)
    want = {name: 3 for name in todo}
    assert landing.rows_per_file(lake) == want
    again, _ = landing.ingest(lake, "rerun", 1000)
    assert again.files == [] and landing.rows_per_file(lake) == want


def test_two_creators_at_once_make_one_empty_version(settings_factory: Any) -> None:
    """Both find the table absent and create it at the same moment: one writes version 0, the
    other takes "already exists" as done; no second creation follows as version 1."""
    lake = Lake(settings_factory())
    start = threading.Barrier(2)
    made: list[int] = []

    def create() -> None:
        start.wait()
        made.append(
            delta.create_empty(lake, landing.TABLE, landing.SCHEMA, configuration=delta.CDF).version()
        )

    threads = [threading.Thread(target=create) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert made == [0, 0]
    dt = lake.table(landing.TABLE)
    assert dt.version() == 0 and dt.schema().to_arrow() == landing.SCHEMA
    assert dt.metadata().configuration == delta.CDF
