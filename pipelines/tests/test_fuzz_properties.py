"""Properties of silver's deduplication and SCD2, on generated histories (Hypothesis).

Dedup: whatever records arrive and however the stream is cut into runs, each event id keeps its
first valid occurrence (ingestion order); a later one with the same payload is a duplicate, with
another payload a quarantined conflict; invalid rows never count as an occurrence.

SCD2: for generated change histories of customers (repeated and late rows, ties on updated_at,
no-op changes), extracted in generated batches: every key has exactly one current version,
versions never overlap and leave no gap, they are exactly the history's change points, and
applying the batches one by one gives the same dimension as applying them at once.
"""

from __future__ import annotations

import hashlib
import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

import pyarrow as pa
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from lakehouse.bronze.landing import file_batch
from lakehouse.core import delta
from lakehouse.core.storage import Lake
from lakehouse.silver import scd2
from lakehouse.silver.classify import BatchClassifier

IDS = [f"00000000-0000-4000-8000-00000000000{i}" for i in range(5)]
AT = datetime(2026, 12, 1, tzinfo=UTC)


def _record(event_id: str, page: str, valid: bool) -> bytes:
    user = "1" if valid else "not-a-user"
    return (
        f'{{"event_id":"{event_id}","user_id":"{user}","event_type":"click",'
        f'"ts":"2026-11-02T10:00:00Z","page":"{page}"}}'
    ).encode()


RECORDS = st.lists(
    st.tuples(st.sampled_from(IDS), st.sampled_from(["/a", "/b", "/c"]), st.booleans() | st.just(True)),
    min_size=1,
    max_size=40,
)


def _model(records: list[tuple[str, str, bool]]) -> list[str]:
    first: dict[str, str] = {}
    out = []
    for event_id, page, valid in records:
        if not valid:
            out.append("quarantine")
        elif event_id not in first:
            first[event_id] = page
            out.append("insert")
        else:
            out.append("duplicate" if first[event_id] == page else "quarantine")
    return out


def _classify(classifier: BatchClassifier, lines: list[bytes], start: int, history: pa.Table) -> pa.Table:
    classifier.con.register("history_rows", history)
    classifier.con.execute(
        "CREATE OR REPLACE TEMP VIEW existing AS SELECT event_id, payload_hash FROM history_rows"
    )
    rows = file_batch("dedup.jsonl", lines, "B-dedup", start, AT)
    out = classifier.classify(rows)
    classifier.con.execute(
        "CREATE OR REPLACE TEMP VIEW existing AS "
        "SELECT NULL::VARCHAR AS event_id, NULL::VARCHAR AS payload_hash WHERE false"
    )
    return out


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None)
@given(RECORDS, st.integers(0, 40))
def test_dedup_keeps_the_first_valid_occurrence_however_the_stream_is_cut(
    records: list[tuple[str, str, bool]], cut: int
) -> None:
    lines = [_record(*r) for r in records]
    expected = _model(records)
    classifier = BatchClassifier()
    try:
        empty = pa.table({"event_id": pa.array([], pa.string()), "payload_hash": pa.array([], pa.string())})
        whole = _classify(classifier, lines, 0, empty)
        assert whole["outcome"].to_pylist() == expected
        cut = min(cut, len(lines))
        first = _classify(classifier, lines[:cut], 0, empty) if cut else None
        history = empty
        if first is not None:
            kept = first.filter(pa.compute.equal(first["outcome"], "insert"))
            history = _with_hashes(classifier, lines[:cut], kept)
        rest = _classify(classifier, lines[cut:], cut, history) if cut < len(lines) else None
        outcomes = (first["outcome"].to_pylist() if first is not None else []) + (
            rest["outcome"].to_pylist() if rest is not None else []
        )
        assert outcomes == expected
    finally:
        classifier.close()


def _with_hashes(classifier: BatchClassifier, lines: list[bytes], kept: pa.Table) -> pa.Table:
    """The (event_id, payload_hash) silver stores for the inserted rows of `lines`."""
    rows = file_batch("dedup.jsonl", lines, "B-dedup", 0, AT).append_column(
        "commit_version", pa.repeat(pa.scalar(0, pa.int64()), len(lines))
    )
    classifier.con.register("bronze_rows", rows)
    try:
        from lakehouse.core.contract.events import CONTRACT_FIELDS
        from lakehouse.silver import duckdb_json
        from lakehouse.silver.events_sql import transform_sql

        classifier.con.execute(
            f"CREATE OR REPLACE TEMP VIEW parsed AS {duckdb_json.parsed_sql('bronze_rows', CONTRACT_FIELDS)}"
        )
        table = classifier.con.execute(
            f"SELECT event_id, payload_hash FROM ({transform_sql((), '', 24)}) WHERE outcome = 'insert'"
        ).to_arrow_table()
    finally:
        classifier.con.unregister("bronze_rows")
    assert table.num_rows == kept.num_rows
    return table


# -- SCD2 ---------------------------------------------------------------------------------------
T0 = datetime(2026, 1, 1, tzinfo=UTC)
CHANGE = st.tuples(
    st.integers(1, 4),  # customer_id
    st.integers(0, 6),  # updated_at: hour offset (ties and late rows happen)
    st.sampled_from(["consumer", "vip", "enterprise"]),  # segment
    st.sampled_from(["PL", "DE"]),  # country
)
HISTORY = st.lists(st.lists(CHANGE, min_size=1, max_size=8), min_size=1, max_size=4)  # batches


def _bronze_batch(rows: list[tuple[int, int, str, str]], batch: int) -> pa.Table:
    extracted = T0 + timedelta(days=1, minutes=batch)
    cols: dict[str, list[Any]] = {
        "customer_id": [],
        "full_name": [],
        "email": [],
        "country": [],
        "segment": [],
        "created_at": [],
        "updated_at": [],
        "_row_hash": [],
        "_extracted_at": [],
    }
    for key, hour, segment, country in rows:
        cols["customer_id"].append(key)
        cols["full_name"].append(f"Customer {key}")
        cols["email"].append(f"c{key}@example.com")
        cols["country"].append(country)
        cols["segment"].append(segment)
        cols["created_at"].append(T0)
        cols["updated_at"].append(T0 + timedelta(hours=hour))
        cols["_row_hash"].append(hashlib.md5(f"{key}|{hour}|{segment}|{country}".encode()).hexdigest())
        cols["_extracted_at"].append(extracted)
    ts = pa.timestamp("us", tz="UTC")
    return pa.table(
        {
            "customer_id": pa.array(cols["customer_id"], pa.int64()),
            "full_name": pa.array(cols["full_name"], pa.string()),
            "email": pa.array(cols["email"], pa.string()),
            "country": pa.array(cols["country"], pa.string()),
            "segment": pa.array(cols["segment"], pa.string()),
            "created_at": pa.array(cols["created_at"], ts),
            "updated_at": pa.array(cols["updated_at"], ts),
            "_row_hash": pa.array(cols["_row_hash"], pa.string()),
            "_extracted_at": pa.array(cols["_extracted_at"], ts),
        }
    )


def _expected_versions(batches: list[list[tuple[int, int, str, str]]]) -> set[tuple[Any, ...]]:
    """The change points of the history, by hand: per (key, updated_at) the row of the latest
    extraction (ties: the smallest row hash); a version starts where the tracked state changes."""
    chosen: dict[tuple[int, int], tuple[int, str, str, str]] = {}
    for batch, rows in enumerate(batches):
        for key, hour, segment, country in rows:
            row_hash = hashlib.md5(f"{key}|{hour}|{segment}|{country}".encode()).hexdigest()
            candidate = (batch, row_hash, segment, country)
            old = chosen.get((key, hour))
            if old is None or (candidate[0], -int(candidate[1], 16)) > (old[0], -int(old[1], 16)):
                chosen[(key, hour)] = candidate
    out = set()
    for key in {k for k, _ in chosen}:
        hours = sorted(h for k, h in chosen if k == key)
        starts = []
        previous = None
        for hour in hours:
            state = chosen[(key, hour)][2:]
            if state != previous:
                starts.append((hour, state))
            previous = state
        for i, (hour, (segment, country)) in enumerate(starts):
            until = starts[i + 1][0] if i + 1 < len(starts) else None
            out.add((key, hour, until, segment, country))
    return out


def _dimension(lake: Lake) -> set[tuple[Any, ...]]:
    table = lake.table("silver.dim_customer").to_pyarrow_table()
    out = set()
    for row in table.to_pylist():
        until = None if row["valid_to"] is None else int((row["valid_to"] - T0).total_seconds() // 3600)
        out.add(
            (
                row["customer_id"],
                int((row["valid_from"] - T0).total_seconds() // 3600),
                until,
                row["segment"],
                row["country"],
            )
        )
        assert row["is_current"] == (row["valid_to"] is None)
    return out


@settings(
    max_examples=8,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    database=None,
)
@given(HISTORY)
# a late change between two rows of the same state: the later row starts a version again
@example(batches=[[(1, 0, "vip", "PL"), (1, 2, "vip", "PL")], [(1, 1, "consumer", "PL")]])
def test_scd2_versions_are_the_change_points_incrementally_and_at_once(
    settings_factory: Any, batches: list[list[tuple[int, int, str, str]]]
) -> None:
    dim = scd2.DIMENSIONS[0]
    step_lake = Lake(settings_factory())
    for i, rows in enumerate(batches):
        delta.append(step_lake, dim.source, _bronze_batch(rows, i), configuration=delta.CDF)
        assert scd2.apply(step_lake, dim, f"run-{i}").balanced
    once_lake = Lake(settings_factory())
    for i, rows in enumerate(batches):
        delta.append(once_lake, dim.source, _bronze_batch(rows, i), configuration=delta.CDF)
    assert scd2.apply(once_lake, dim, "once").balanced

    expected = _expected_versions(batches)
    stepwise = _dimension(step_lake)
    assert stepwise == expected
    assert _dimension(once_lake) == expected
    current = [v for v in stepwise if v[2] is None]
    assert sorted(v[0] for v in current) == sorted({v[0] for v in stepwise})  # one current per key
    for key in {v[0] for v in stepwise}:  # contiguous, no overlap
        spans = sorted((v[1], v[2]) for v in stepwise if v[0] == key)
        for (_, until), (start, _) in itertools.pairwise(spans):
            assert until == start
