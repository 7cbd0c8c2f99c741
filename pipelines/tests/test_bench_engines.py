"""`make bench-engines` (bench/engines.py): its measuring and comparing code path on a tiny input.

The short test (in `make test`) runs the silver step twice on the embedded engine through the
bench's own subprocess measurement and checks that the output comparison accepts equal outputs
and catches a missing row and a changed value. The long one (`make test-spark`; the Spark JVM
alone takes over a minute to run the tiny job here) runs the whole bench on both engines and
then breaks the Spark output.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from bench import engines
from bench.bronze_silver import prepare_input
from deltalake import DeltaTable

pytestmark = pytest.mark.slow

PIPELINES = Path(__file__).resolve().parents[1]
EVENTS = 2000


def _table(lake: Path, name: str) -> DeltaTable:
    layer, table = name.split(".")
    return DeltaTable(str(lake / layer / table))


def _drop_one_event(lake: Path) -> str:
    dt = _table(lake, "silver.events")
    event_id = dt.to_pyarrow_table(columns=["event_id"])["event_id"][0].as_py()
    dt.delete(f"event_id = '{event_id}'")
    return event_id


def _check_figures(r: dict[str, object], rows: int) -> None:
    assert r["rows_in"] == rows
    assert 0 < r["seconds"] <= r["wall_seconds"]  # type: ignore[operator]
    assert r["cpu_seconds"] > 0  # type: ignore[operator]
    assert 0 < r["rss_at_start_bytes"] <= r["peak_rss_bytes"] < 64 * 1024**3  # type: ignore[operator]


def test_comparison_accepts_equal_outputs_and_catches_differences(tmp_path: Path) -> None:
    input_root = prepare_input(tmp_path, EVENTS, lambda _msg: None)
    lines = json.loads((input_root / "ready.json").read_text())["lines"]
    keep = tmp_path / "out"
    keep.mkdir()
    first = engines.measure("silver", "embedded", input_root, EVENTS, tmp_path, keep)
    shutil.move(keep / "silver-embedded", keep / "first")
    second = engines.measure("silver", "embedded", input_root, EVENTS, tmp_path, keep)
    for r in (first, second):
        _check_figures(r, lines)
    lakes = {"first": keep / "first" / "lake", "second": Path(second["lake"])}

    digests, problems = engines.compare("silver", lakes)
    assert problems == []
    events = digests["silver.events"]
    assert events["first"]["rows"] > 0 and events["first"]["hash"] == events["second"]["hash"]
    assert events["first"]["rows"] + digests["silver.quarantine_events"]["first"]["rows"] <= lines
    assert "_run_id" not in events["first"]["columns"] and "event_id" in events["first"]["columns"]

    # one value of one row changed, the row count kept: the hash must tell
    dt = _table(lakes["first"], "silver.events")
    event_id = dt.to_pyarrow_table(columns=["event_id"])["event_id"][0].as_py()
    dt.update(predicate=f"event_id = '{event_id}'", updates={"payload_hash": "'changed'"})
    _, problems = engines.compare("silver", lakes)
    assert problems == ["silver.events: same row count, different content hash (first vs second)"]

    dropped = _drop_one_event(lakes["second"])
    _, problems = engines.compare("silver", lakes)
    n = events["first"]["rows"]
    assert f"silver.events: {n:,} rows (first) != {n - 1:,} rows (second)" in problems, (dropped, problems)


@pytest.mark.spark
@pytest.mark.spark_long
@pytest.mark.timeout(1800)  # eight measured runs (four Spark JVMs) and a Kafka broker
def test_bench_runs_both_engines_and_a_broken_spark_output_fails_it(tmp_path: Path) -> None:
    from lakehouse.core.jvm import JvmError, find_java
    from lakehouse.core.spark import spark_bundle

    try:
        find_java()
        spark_bundle()
    except JvmError as exc:
        pytest.skip(f"Spark cannot run here: {exc}")
    env = {**os.environ, "PYTHONPATH": str(PIPELINES)}
    cmd = [sys.executable, "-m", "bench.engines", "--events", "1500", "--merge-rows", "1000"]
    proc = subprocess.run(
        [*cmd, "--state", str(tmp_path)], cwd=PIPELINES, env=env, capture_output=True, text=True, timeout=1500
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    payload = json.loads((tmp_path / "engines.json").read_text())
    assert payload["problems"] == []
    runs = {(r["step"], r["engine"]): r for r in payload["results"]}
    assert set(runs) == {
        ("silver", "embedded"),
        ("silver", "spark"),
        ("merge", "embedded"),
        ("merge", "spark"),
        ("scd2", "embedded"),
        ("scd2", "spark"),
        ("kafka", "embedded"),
        ("kafka", "spark"),
    }
    for step in ("silver", "merge", "scd2", "kafka"):
        emb, spark = runs[(step, "embedded")], runs[(step, "spark")]
        assert emb["verified"] is True and spark["verified"] is True
        assert emb["rows_out"] == spark["rows_out"] > 0 and emb["output_hash"] == spark["output_hash"]
        assert emb["ratio"] == pytest.approx(emb["seconds"] / spark["seconds"])
        # the JVM is in the process tree: Spark's RSS at the step's start is above the embedded one's
        assert spark["rss_at_start_bytes"] > emb["rss_at_start_bytes"]
    shape = engines.change_batch_shape(1000)
    assert runs[("merge", "spark")]["detail"] == {
        "inserted": shape["new"],
        "updated": shape["updated"],
        "unchanged": shape["stale"],
    }
    md = (tmp_path / "engines.md").read_text()
    assert "| `spark.sql.shuffle.partitions` | `4` |" in md
    assert "## Kafka input" in md and "## Not measured" not in md
    assert runs[("kafka", "spark")]["rows_in"] == runs[("kafka", "embedded")]["rows_in"] == 1500

    spark_lake = tmp_path / "engines-out" / "silver-spark" / "lake"
    _drop_one_event(spark_lake)
    _, problems = engines.compare(
        "silver", {"embedded": tmp_path / "engines-out" / "silver-embedded" / "lake", "spark": spark_lake}
    )
    assert len(problems) == 1 and problems[0].startswith("silver.events: ")
