"""The freshness step of `make bench-engines` (bench/engine_freshness.py) on a tiny stream.

The embedded consumer runs continuously on a real Apache Kafka broker while records are produced
at a fixed rate; the figures must be those of the real commits: the test reads the table's Delta
log and files itself (DuckDB for the rows, the JSON commit entries for the times) and recomputes
the largest freshness, the record count and the number of commits.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest
from bench import engine_freshness

from lakehouse.services.apache_kafka import ApacheKafka
from lakehouse.services.process import free_port

pytestmark = pytest.mark.slow

RATE, SECONDS = 200.0, 4.0


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[ApacheKafka]:
    svc = ApacheKafka(base=tmp_path / "kafka", port=free_port(), topic="bench", partitions=3)
    svc.start()
    try:
        yield svc
    finally:
        svc.stop()


def _commit_times(table: Path) -> dict[int, int]:
    out = {}
    for entry in sorted((table / "_delta_log").glob("*.json")):
        for line in entry.read_text().splitlines():
            action = json.loads(line)
            if "commitInfo" in action:
                out[int(entry.stem)] = int(action["commitInfo"]["timestamp"])
    return out


def test_freshness_is_read_from_the_commits(tmp_path: Path, broker: ApacheKafka) -> None:
    (r,) = engine_freshness.run(tmp_path, broker, RATE, SECONDS, ("embedded",))
    produced = int(RATE * SECONDS)
    assert r["records"] == r["produced"] == produced
    assert r["commits"] >= 2  # one-second batches over four seconds
    assert 0 < r["min_s"] <= r["p50_s"] <= r["p95_s"] <= r["max_s"] < 60
    table = Path(r["lake"]) / "lake" / "bronze" / "events"
    times = _commit_times(table)
    con = duckdb.connect()
    rows = con.execute(
        f"SELECT filename, epoch_ms(kafka_timestamp) AS ms FROM read_parquet('{table}/*.parquet', filename = true)"
    ).fetchall()
    version_of = {}
    for entry in sorted((table / "_delta_log").glob("*.json")):
        for line in entry.read_text().splitlines():
            add = json.loads(line).get("add")
            if add:
                version_of[str(table / add["path"])] = int(entry.stem)
    assert len(rows) == produced + 1  # the warm-up record too
    timed = sorted(rows, key=lambda x: x[1])[1:]  # the warm-up record was produced first
    worst = max(times[version_of[f]] - ms for f, ms in timed) / 1000
    assert r["max_s"] == pytest.approx(worst, abs=0.002)
    assert r["commits"] == len({version_of[f] for f, _ in timed})
    # events/s: the records over the span from the first record to the last commit
    span = max(times[version_of[f]] for f, _ in timed) / 1000 - timed[0][1] / 1000
    assert r["events_per_s"] == pytest.approx(produced / span, rel=0.01)


def test_commit_times_of_spark_files_are_read_in_microseconds(tmp_path: Path) -> None:
    """delta-spark writes INT96 timestamps, which pyarrow reads back in nanoseconds: taken as
    microseconds, every record looked produced after the timed run began."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    from bench.engine_freshness import micros

    at = pa.array([1_796_695_015_490_123, None], pa.timestamp("us"))
    for int96 in (False, True):
        path = tmp_path / f"int96-{int96}.parquet"
        pq.write_table(pa.table({"kafka_timestamp": at}), path, use_deprecated_int96_timestamps=int96)
        col = pq.read_table(path)["kafka_timestamp"]
        assert col.type.unit == ("ns" if int96 else "us")
        assert micros(col) == [1_796_695_015_490_123, None]
