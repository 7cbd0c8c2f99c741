"""What the package publishes to the serving database for dashboards, after a real demo:
reconciliation records (as many as the Delta table holds), consumer lag in records, the health
views, and the BI role's reach (what it may and may not read)."""

from __future__ import annotations

import psycopg
import pytest
from tests.serving.conftest import Served

from lakehouse.core import ops_db
from lakehouse.core.storage import Lake
from lakehouse.gold.publish import bi_role

pytestmark = pytest.mark.slow


def test_reconciliation_reaches_postgres(served: Served) -> None:
    delta_rows = Lake(served.settings).table("ops.reconciliation").to_pyarrow_dataset().count_rows()
    with served.pg() as conn:
        (pg_rows,) = conn.execute("SELECT count(*) FROM ops.reconciliation").fetchone()  # type: ignore[misc]
        steps = {s for (s,) in conn.execute("SELECT DISTINCT step FROM ops.reconciliation")}
    assert pg_rows == delta_rows > 0
    assert {"bronze", "silver", "stream-bronze", "stream-speed"} <= steps
    # a run that could not reach PostgreSQL is caught up by the next one; nothing is copied twice
    with served.pg() as conn:
        conn.execute("DELETE FROM ops.reconciliation WHERE step = 'silver'")
    assert ops_db.publish_reconciliation(Lake(served.settings), served.settings.postgres) > 0
    with served.pg() as conn:
        assert conn.execute("SELECT count(*) FROM ops.reconciliation").fetchone() == (delta_rows,)
    assert ops_db.publish_reconciliation(Lake(served.settings), served.settings.postgres) == 0


def test_consumer_lag_in_records(served: Served) -> None:
    with served.pg() as conn:
        rows = conn.execute(
            "SELECT consumer_group, sink, kafka_partition, lag_records, committed_offset FROM realtime.consumer_lag"
        ).fetchall()
    sinks = {r[1] for r in rows}
    assert {"bronze", "speed"} <= sinks
    partitions = served.settings.streaming.partitions
    assert len({(r[1], r[2]) for r in rows}) == 2 * partitions
    assert all(r[3] == 0 for r in rows), rows  # the demo drains the topic
    assert all(r[4] is not None and r[4] > 0 for r in rows if r[1] == "bronze")


def test_bi_role_reads_health_and_windows_but_not_ops(served: Served) -> None:
    pg = served.settings.postgres
    dsn = psycopg.conninfo.make_conninfo(host=pg.host, port=pg.port, user=bi_role(), dbname=pg.serving_db)
    with psycopg.connect(dsn, autocommit=True) as conn:
        for view in (
            "health.last_gate_results",
            "health.reconciliation",
            "health.layer_freshness",
            "health.quarantine_rate",
        ):
            assert conn.execute(f"SELECT count(*) FROM {view}").fetchone()[0] > 0, view  # type: ignore[index]
        for table in ("realtime.events_per_minute", "realtime.consumer_lag", "realtime.stream_state"):
            conn.execute(f"SELECT count(*) FROM {table}")
        layers = {r[0] for r in conn.execute("SELECT layer FROM health.layer_freshness")}
        assert {"bronze", "silver", "gold (published)"} <= layers
        rate = conn.execute("SELECT last_run_rate, overall_rate FROM health.quarantine_rate").fetchone()
        assert rate is not None and 0 < rate[1] < 0.2
        for forbidden in (
            "ops.reconciliation",
            "ops.api_tokens",
            "ops.publications",
            "realtime.stream_offsets",
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(f"SELECT 1 FROM {forbidden} LIMIT 1")
