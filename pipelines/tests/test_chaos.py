"""The fault suite's short version (`make chaos` runs the full one): a few SIGKILL trials per
stage, each trial's lake compared with an uninterrupted run; and the comparison itself catches
a lost and a repeated row."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from bench import chaos

from lakehouse.core import delta
from lakehouse.core.storage import Lake

pytestmark = [pytest.mark.chaos, pytest.mark.slow]


def test_short_fault_suite_loses_and_repeats_nothing(tmp_path: Path) -> None:
    """One trial of every embedded stage, concurrent writer, full disk and PostgreSQL stage (the
    server killed mid-extraction too), in one suite run (one set of input lakes, one PostgreSQL):
    whoever stops, stops with an error and writes nothing; the rerun reaches the uninterrupted
    result. (`make chaos` runs 50 trials of each.)"""
    from lakehouse.services.postgres import find_pg_bin

    find_pg_bin()
    scenarios = [*chaos.STAGES, *chaos.RACES, *chaos.DISK_FULL, *chaos.PG_STAGES, *chaos.SERVICE_RESTARTS]
    out = tmp_path / "chaos" / "report.md"
    results = chaos.suite(1, scenarios, out, seed=7)
    assert [r.stage for r in results] == scenarios
    for r in results:
        assert r.trials == 1, r
        assert (r.lost, r.duplicated, r.unreadable, r.rerun_failed, r.restart_failed) == (0, 0, 0, 0, 0), r
    race = results[scenarios.index("race-silver")]
    assert race.stopped <= 1, race  # of two silver runs at once, at most one gives way
    killed = [r for r in results if r.stage in (*chaos.STAGES, *chaos.PG_STAGES, *chaos.SERVICE_RESTARTS)]
    assert sum(r.killed for r in killed) >= 3, killed  # the kill moment is uniform over each run
    text = out.read_text()
    assert (
        "| landing | 1 |" in text
        and "| restart-postgres | 1 |" in text
        and "| race-landing-new | 1 |" in text
    )
    assert "Stages covered: " + ", ".join(scenarios) + "." in text


def test_the_comparison_sees_a_lost_and_a_repeated_row(settings_factory: Any) -> None:
    settings = settings_factory()
    lake = Lake(settings)
    rows = pa.table({"source_file": ["a", "a", "b"], "source_line": [1, 2, 1], "value": ["x", "y", "z"]})
    delta.append(lake, "bronze.events", rows)
    root = Path(settings.lake_root)
    want = chaos.contents(root, "bronze.events")
    assert want == {"a:1": 1, "a:2": 1, "b:1": 1}
    lake.table("bronze.events").delete("source_file = 'b'")
    delta.append(lake, "bronze.events", rows.slice(0, 1))
    got = chaos.contents(root, "bronze.events")
    assert got is not None and chaos.compare(want, got) == (1, 1)


def test_short_service_stages(tmp_path: Path) -> None:
    """One trial of each stage with a service of its own: Kafka -> bronze and the speed layer
    killed, the Kafka broker killed under Kafka -> bronze, the S3 server killed under landing and
    silver; every server started again, nothing lost or repeated."""
    from bench import chaos_services

    from lakehouse.core.errors import LakehouseError

    try:
        chaos_services.preflight(list(chaos.SERVICE_STAGES), pg=True, gold=False)
    except LakehouseError as exc:
        pytest.skip(f"the service stages cannot run here: {exc}")
    scenarios = list(chaos.SERVICE_STAGES)
    results = chaos.suite(1, scenarios, tmp_path / "chaos" / "report.md", seed=4)
    assert [r.stage for r in results] == scenarios
    for r in results:
        assert r.trials == 1, r
        assert (r.lost, r.duplicated, r.unreadable, r.rerun_failed, r.restart_failed) == (0, 0, 0, 0, 0), r
    assert sum(r.killed for r in results) >= 2, results


def test_a_silver_run_whose_mark_moved_on_writes_nothing(settings_factory: Any) -> None:
    """The fence under the race: a silver commit made from a mark another run has moved on stops
    with a TransientError and leaves the table as it was."""
    from lakehelpers import bronze_and_silver, write_landing
    from lakehouse.core.errors import TransientError
    from lakehouse.silver import events

    settings = settings_factory()
    lake = Lake(settings)
    write_landing(
        lake,
        "a.jsonl",
        [{"event_id": "e1", "user_id": 1, "event_type": "click", "ts": "2026-11-02T10:00:00Z"}],
    )
    bronze_and_silver(lake, settings)
    dt = lake.table(events.EVENTS)
    version, mark = dt.version(), dt.transaction_version(events.APP_ID)
    assert mark is not None
    rows = dt.to_pyarrow_table()
    with pytest.raises(TransientError, match="another silver run absorbed"):
        events._append(
            lake,
            events.EVENTS,
            rows.to_reader(),
            0,
            mark + 1,
            mark - 1,
            ["event_date"],
            "stale",
            {events.EVENTS: mark - 1},
        )
    assert lake.table(events.EVENTS).version() == version


def test_the_kafka_comparison_counts_partition_and_offset(settings_factory: Any) -> None:
    """Kafka rows are told apart by (partition, offset): a lost and a repeated offset are seen."""
    from bench import chaos_services

    settings = settings_factory()
    lake = Lake(settings)
    rows = pa.table(
        {
            "kafka_partition": pa.array([0, 0, 1], pa.int32()),
            "kafka_offset": pa.array([0, 1, 0], pa.int64()),
            "value": ["x", "y", "z"],
        }
    )
    delta.append(lake, "bronze.events", rows)
    root = str(settings.lake_root)
    want = chaos_services.kafka_contents(root)["bronze.events"]
    assert want == {"0:0": 1, "0:1": 1, "1:0": 1}
    lake.table("bronze.events").delete("kafka_partition = 1")
    delta.append(lake, "bronze.events", rows.slice(0, 1))
    got = chaos_services.kafka_contents(root)["bronze.events"]
    assert got is not None and chaos.compare(want, got) == (1, 1)


def test_a_set_up_failure_is_one_line(tmp_path: Path) -> None:
    """The suite's own set-up failing (here the Kafka jar cache is missing) stops it with one line
    naming the cause and the fix, before any work, not with a traceback."""
    import os
    import subprocess
    import sys

    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.chaos",
            "--trials",
            "1",
            "--stages",
            "kafka",
            "--out",
            str(tmp_path / "r.md"),
        ],
        cwd=Path(chaos.__file__).resolve().parents[1],
        env={**os.environ, "LAKEHOUSE_JVM_CACHE": str(tmp_path / "no-cache"), "LAKEHOUSE_DEBUG": ""},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert proc.returncode != 0 and len(lines) == 1, proc.stderr
    assert lines[0].startswith("chaos: error: no kafka jar cache at ") and "make jars-kafka" in lines[0], (
        lines
    )
    assert not (tmp_path / "r.md").exists()


def test_the_folder_of_a_server_that_did_not_restart_is_kept(tmp_path: Path) -> None:
    """A broker that does not start again leaves its folder (data/log folders, log, configuration)
    copied beside the report, since the suite's own folder is removed at its end."""
    from bench import chaos_services

    from lakehouse.services.apache_kafka import ApacheKafka

    broker = ApacheKafka(base=tmp_path / "apache-kafka", port=1, topic="t", partitions=1)
    (broker.data_dir / "t-0").mkdir(parents=True)
    (broker.data_dir / "meta.properties").write_text("node.id=1\n")
    broker.log_path.write_text("ERROR Shutdown broker because all log dirs in /x have failed\n")
    keep = tmp_path / "chaos"
    kept = chaos_services.keep_failed(broker, keep, "restart-kafka-trial-3")
    assert kept is not None and kept.parent == keep and "restart-kafka-trial-3" in kept.name
    assert (kept / "data" / "meta.properties").read_text() == "node.id=1\n"
    assert (kept / "data" / "t-0").is_dir() and "all log dirs" in (kept / "broker.log").read_text()
    assert chaos_services.keep_failed(broker, None, "x") is None


def test_the_gold_comparison_sees_a_lost_and_a_repeated_row_but_not_the_build_time(
    settings_factory: Any,
) -> None:
    """gold.<mart> Delta tables compared by each row's hash over all columns but the build's
    time stamp (TIME_COLUMNS): a new build time is no difference, a lost and a repeated row are;
    floating-point sums in another order are no difference either."""
    from datetime import UTC, datetime, timedelta

    from bench import chaos_gold

    settings = settings_factory()
    lake = Lake(settings)
    when = datetime(2026, 12, 1, tzinfo=UTC)
    name = "agg_daily_active_users"
    assert "updated_at" in chaos_gold.TIME_COLUMNS[name]

    def mart(stamp: datetime, share: list[float]) -> pa.Table:
        return pa.table(
            {
                "activity_date": ["2026-11-01", "2026-11-02", "2026-11-03"],
                "users": [3, 4, 5],
                "share": share,
                "updated_at": pa.array([stamp] * 3, pa.timestamp("us", tz="UTC")),
            }
        )

    delta.overwrite(lake, f"gold.{name}", mart(when, [0.1 + 0.2, 0.5, 0.25]))
    root = Path(settings.lake_root)
    want = chaos_gold.lake_contents(root)
    assert list(want) == [f"gold.{name}"] and sum((want[f"gold.{name}"] or {}).values()) == 3
    delta.overwrite(lake, f"gold.{name}", mart(when + timedelta(hours=1), [0.3, 0.5, 0.25]))
    assert chaos_gold.lake_contents(root) == want
    lost_and_repeated = mart(when, [0.3, 0.5, 0.25]).take([0, 1, 1])
    delta.overwrite(lake, f"gold.{name}", lost_and_repeated)
    got = chaos_gold.lake_contents(root)[f"gold.{name}"]
    assert got is not None and chaos.compare(want[f"gold.{name}"] or {}, got) == (1, 1)
    # a gold table that is no longer a readable Delta table counts as unreadable
    for f in (root / "gold" / name).glob("*.parquet"):
        f.unlink()
    assert chaos_gold.lake_contents(root) == {f"gold.{name}": None}


def test_the_published_gold_comparison_sees_loss_repeats_and_a_mix(pg_conn: Any) -> None:
    """PostgreSQL gold compared the same way (psycopg); and a gold whose tables come from two
    publications is a mix, told from either publication whole."""
    from bench import chaos_gold

    conn = pg_conn
    conn.execute("CREATE SCHEMA gold")
    for t in ("rpt_executive_summary", "fct_order_items"):
        conn.execute(
            f"CREATE TABLE gold.{t} (k integer, v double precision, note text, updated_at timestamptz)"
        )
        conn.execute(f"INSERT INTO gold.{t} VALUES (1, 0.1 + 0.2, 'a', now()), (2, 2.5, NULL, now())")
    conn.commit()
    previous = chaos_gold.pg_contents(conn)
    assert set(previous) == {"gold.rpt_executive_summary", "gold.fct_order_items"}
    conn.execute(
        "UPDATE gold.rpt_executive_summary SET updated_at = now() + interval '1 hour', v = 0.3 WHERE k = 1"
    )
    conn.commit()
    assert chaos_gold.pg_contents(conn) == previous  # the build time left out, the sum's last bit too
    conn.execute("UPDATE gold.fct_order_items SET updated_at = now() + interval '1 hour'")
    conn.commit()
    assert chaos_gold.pg_contents(conn) != previous  # fct_order_items' updated_at is data
    conn.execute("UPDATE gold.fct_order_items SET note = 'b' WHERE k = 2")
    conn.execute("UPDATE gold.rpt_executive_summary SET note = 'c' WHERE k = 2")
    conn.commit()
    new = chaos_gold.pg_contents(conn)  # the next publication: both tables differ
    conn.execute("DELETE FROM gold.rpt_executive_summary WHERE k = 2")
    conn.execute("INSERT INTO gold.rpt_executive_summary VALUES (1, 0.3, 'a', now())")
    conn.commit()
    got = chaos_gold.pg_contents(conn)
    assert chaos.compare(
        new["gold.rpt_executive_summary"] or {}, got["gold.rpt_executive_summary"] or {}
    ) == (1, 1)
    mix = {**previous, "gold.fct_order_items": new["gold.fct_order_items"]}
    assert chaos_gold.classify(previous, previous, new) == "previous"
    assert chaos_gold.classify(new, previous, new) == "new"
    assert chaos_gold.classify(mix, previous, new) == "mixed"
    assert (
        chaos_gold.classify({"gold.fct_order_items": new["gold.fct_order_items"]}, previous, new) == "mixed"
    )
