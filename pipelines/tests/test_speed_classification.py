"""The speed layer classifies every record exactly as silver does: the same records go through
bronze -> silver and through the speed layer's classifier, and every verdict, reason and
normalised value agrees; over a real broker, the realtime windows equal silver's aggregates."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from tests.lakehelpers import bronze_and_silver, read, write_landing

from lakehouse.bronze import landing
from lakehouse.core.settings import FaultRates
from lakehouse.core.storage import Lake
from lakehouse.generator.events import EventSpec, render
from lakehouse.silver.classify import BatchClassifier

NOW = datetime.now(UTC).replace(microsecond=0)
# Records that sit on the contract's edges, beside generated ones with every fault.
CRAFTED: list[bytes] = [
    b"\xff\xfe{}",
    b"{broken",
    b"[1, 2]",
    b'{"event_id": "5d7e3a7e-6f0a-4d55-9a55-0c5a7a9f0001", "user_id": 1, "ts": "2026-11-22T00:00:00Z"}',
    b'{"event_id": 5, "user_id": 1, "event_type": "click", "ts": "2026-11-22T00:00:00Z"}',
    b'{"event_id": "5d7e3a7e-6f0a-4d55-9a55-0c5a7a9f0002", "user_id": "u-1", "event_type": "click", "ts": "2026-11-22T00:00:00Z"}',
    b'{"event_id": "5d7e3a7e-6f0a-4d55-9a55-0c5a7a9f0003", "user_id": 1, "event_type": "share", "ts": "2026-11-22T00:00:00Z"}',
    b'{"event_id": "5d7e3a7e-6f0a-4d55-9a55-0c5a7a9f0004", "user_id": 1, "event_type": "purchase", "ts": "2026-11-22T00:00:00Z", "product_id": 3, "price": -1, "quantity": 1}',
    b'{"event_id": "5d7e3a7e-6f0a-4d55-9a55-0c5a7a9f0005", "user_id": "42", "event_type": " PURCHASE ", "ts": "2026-11-22T05:30:00+05:30", "source": "ios", "product_id": 7, "price": 39.8, "quantity": 2, "currency": "pln"}',
    b'{"event_id": "5d7e3a7e-6f0a-4d55-9a55-0c5a7a9f0006", "user_id": 9, "event_type": "purchase", "ts": 1795392000000, "product_id": 7, "price": 10, "quantity": 1, "currency": "XYZ"}',
    b'{"event_id": "5d7e3a7e-6f0a-4d55-9a55-0c5a7a9f0007", "user_id": 9, "event_type": "login", "ts": "2026-11-22T00:00:00Z", "source": "Newsletter"}',
    b'{"event_id": "5d7e3a7e-6f0a-4d55-9a55-0c5a7a9f0007", "user_id": 9, "event_type": "login", "ts": "2026-11-22T00:00:00Z", "source": "Newsletter"}',
    b'{"event_id": "5d7e3a7e-6f0a-4d55-9a55-0c5a7a9f0007", "user_id": 9, "event_type": "logout", "ts": "2026-11-22T00:00:00Z"}',
    json.dumps(
        {
            "event_id": "5d7e3a7e-6f0a-4d55-9a55-0c5a7a9f0008",
            "user_id": 3,
            "event_type": "click",
            "ts": "2099-01-01T00:00:00Z",
        }
    ).encode(),
]


def records(n: int = 4000) -> list[bytes]:
    faults = FaultRates(
        exact_duplicate=0.03,
        conflicting_duplicate=0.01,
        malformed_json=0.01,
        not_an_object=0.01,
        invalid_utf8=0.01,
        missing_required=0.01,
        unknown_event_type=0.01,
        wrong_type=0.01,
        negative_price=0.01,
        future=0.005,
    )
    spec = EventSpec(7, n, 500, 50, datetime(2026, 11, 20, tzinfo=UTC), 86400.0, faults)
    generated = [line for i in range(n) for line in render(spec, i)[0]]
    return generated + CRAFTED


def silver_verdicts(lake: Lake) -> dict[tuple[str, int], dict[str, Any]]:
    """(source_file, line) -> silver's verdict for that landing line."""
    out: dict[tuple[str, int], dict[str, Any]] = {}
    events = read(lake, "silver.events").to_pylist()
    for row in events:
        out[(row["_source_file"], row["_source_line"])] = {"outcome": "insert", **row}
    for row in read(lake, "silver.quarantine_events").to_pylist():
        out[(row["source_file"], row["source_line"])] = {"outcome": "quarantine", "reasons": row["reasons"]}
    return out


def test_speed_classifier_agrees_with_silver_record_by_record(settings_factory: Any) -> None:
    settings = settings_factory({"silver.base_currency": "USD"})
    lake = Lake(settings)
    lines = records()
    write_landing(lake, "speed.jsonl", lines)
    bronze_and_silver(lake, settings)
    kept = silver_verdicts(lake)

    rows = landing.file_batch("speed.jsonl", lines, "B1", 0, NOW)
    classifier = BatchClassifier("USD", settings.silver.future_tolerance_hours)
    try:
        verdicts = classifier.classify(rows).to_pylist()
    finally:
        classifier.close()
    assert len(verdicts) == len(lines)

    outcomes: Counter[str] = Counter()
    for v in verdicts:
        line = v["ordinal"] + 1
        silver = kept.get(("speed.jsonl", line))
        outcomes[v["outcome"]] += 1
        if v["outcome"] == "duplicate":
            assert silver is None, f"line {line}: an exact repeat is counted once, by silver too"
            continue
        assert silver is not None, f"line {line} is neither in silver nor in quarantine"
        assert v["outcome"] == silver["outcome"], (line, v, silver)
        if v["outcome"] == "quarantine":
            assert v["reasons"] == silver["reasons"], line
            continue
        for col in ("event_id", "user_id", "event_type", "ts", "source", "device", "country", "amount_base"):
            assert v[col] == silver[col], (line, col, v[col], silver[col])
    # the crafted and generated faults reach every verdict
    assert outcomes["insert"] > 3000 and outcomes["quarantine"] > 10 and outcomes["duplicate"] > 10


@pytest.mark.slow
def test_speed_layer_windows_equal_silver_aggregates(settings_factory: Any, pg_conn: Any) -> None:
    """Over a real broker: what the speed layer writes to realtime.* is what silver computes."""
    from tests.test_streaming_speed import send, topic_settings

    from lakehouse.app import jobs as lake_jobs
    from lakehouse.app import streaming as jobs
    from lakehouse.core.reconcile import new_run_id
    from lakehouse.services import local_broker
    from lakehouse.services.process import free_port

    broker = local_broker(settings_factory({"streaming.broker_port": free_port()}))
    broker.start()
    try:
        settings = topic_settings(
            settings_factory,
            broker,
            pg_conn.info.dbname,
            **{
                "streaming.allowed_lateness_seconds": 7 * 86400,  # nothing late: every event counts
                "streaming.speed_batch_max_rows": 100_000,
                "streaming.speed_batch_max_seconds": 120,
            },
        )
        send(settings, records(3000))
        jobs.consume(settings, new_run_id(), available_now=True)
        lake = Lake(settings)
        lake_jobs.silver(lake, settings, new_run_id())
    finally:
        broker.stop()

    con = lake.duckdb()
    con.register("events", read(lake, "silver.events"))
    con.register("quarantine", read(lake, "silver.quarantine_events"))
    want_types = dict(
        ((w, t), n)
        for w, t, n in con.execute(
            "SELECT epoch(time_bucket(INTERVAL 1 minute, ts))::BIGINT, event_type, count(*) FROM events GROUP BY ALL"
        ).fetchall()
    )
    want_gmv = {
        w: Decimal(g)
        for w, g in con.execute(
            "SELECT epoch(time_bucket(INTERVAL 1 minute, ts))::BIGINT, sum(amount_base) FROM events "
            "WHERE event_type = 'purchase' GROUP BY ALL"
        ).fetchall()
    }
    want_rejected = dict(con.execute("SELECT reasons[1], count(*) FROM quarantine GROUP BY ALL").fetchall())
    got_types = {
        (w, t): n
        for w, t, n in pg_conn.execute(
            "SELECT extract(epoch FROM window_start)::bigint, event_type, event_count FROM realtime.events_per_minute"
        ).fetchall()
    }
    got_gmv = dict(
        pg_conn.execute(
            "SELECT extract(epoch FROM window_start)::bigint, gmv_usd FROM realtime.orders_per_minute"
        ).fetchall()
    )
    got_rejected = dict(
        pg_conn.execute(
            "SELECT reason, rejected_count FROM realtime.rejected_events WHERE reason <> 'duplicate'"
        ).fetchall()
    )
    assert got_types == want_types
    assert got_gmv == want_gmv
    assert got_rejected == want_rejected
    assert sum(got_types.values()) == read(lake, "silver.events").num_rows > 2000
