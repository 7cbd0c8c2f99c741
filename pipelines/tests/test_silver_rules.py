"""Each silver events rule, one crafted record at a time, through the real bronze and silver."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pyarrow.compute as pc
import pytest

from lakehelpers import bronze_and_silver, read, rows_by, write_landing
from lakehouse.core.storage import Lake

TS = "2026-11-02T10:00:00Z"


def uid() -> str:
    return str(uuid.uuid4())


def ev(**fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "event_id": uid(),
        "user_id": 42,
        "event_type": "page_view",
        "ts": TS,
        "page": "/home",
    }
    base.update(fields)
    return {k: v for k, v in base.items() if v is not ...}


def purchase(**fields: Any) -> dict[str, Any]:
    return ev(**{"event_type": "purchase", "product_id": 7, "price": 10.5, "quantity": 2, **fields})


# (name, record, expected reasons) — every record here must be quarantined with exactly these reasons.
BAD: list[tuple[str, Any, list[str]]] = [
    ("malformed", '{"event_id": "x", "user_id": 1', ["malformed_json"]),
    ("empty line", "", ["malformed_json"]),
    ("array", "[1, 2, 3]", ["not_an_object"]),
    ("scalar", "42", ["not_an_object"]),
    ("invalid utf8", b'{"event_id": "\xff\xfe", "user_id": 1}', ["invalid_utf8"]),
    ("missing event_id", ev(event_id=...), ["missing_event_id"]),
    ("bad event_id", ev(event_id="not-a-uuid"), ["invalid_event_id"]),
    ("numeric event_id", ev(event_id=12345), ["invalid_event_id"]),
    ("missing user_id", ev(user_id=...), ["missing_user_id"]),
    ("bad user_id", ev(user_id="user-abc"), ["invalid_user_id"]),
    ("fractional user_id", ev(user_id=4.5), ["invalid_user_id"]),
    ("missing type", ev(event_type=...), ["missing_event_type"]),
    ("unknown type", ev(event_type="share"), ["unknown_event_type"]),
    ("missing ts", ev(ts=...), ["missing_ts"]),
    ("bad ts", ev(ts="yesterday"), ["invalid_ts"]),
    ("boolean ts", ev(ts=True), ["invalid_ts"]),
    ("future ts", ev(ts="2036-01-01T00:00:00Z"), ["future_ts"]),
    ("purchase without price", purchase(price=...), ["missing_price"]),
    ("negative price", purchase(price=-5), ["negative_price"]),
    ("price not a number", purchase(price="free"), ["invalid_price"]),
    ("zero quantity", purchase(quantity=0), ["invalid_quantity"]),
    ("quantity words", purchase(quantity="two"), ["invalid_quantity"]),
    ("purchase without quantity", purchase(quantity=...), ["missing_quantity"]),
    ("cart without product", ev(event_type="add_to_cart"), ["missing_product_id"]),
    ("product id an object", ev(event_type="add_to_cart", product_id={"sku": 1}), ["invalid_product_id"]),
    ("product id with a control character", purchase(product_id="SKU\u00011"), ["invalid_product_id"]),
    ("unknown currency", purchase(currency="XYZ"), ["unsupported_currency"]),
    ("two problems", ev(user_id="x", event_type="share"), ["invalid_user_id", "unknown_event_type"]),
    # size limits (this module runs with silver.max_record_bytes=4096, max_field_chars=1000)
    ("field too long", ev(page="/" + "p" * 1500), ["field_too_long"]),
    (
        "record too large",
        ev(page="/" + "p" * 990, campaign="c" * 990, source="s" * 990, device="d" * 990, country="x" * 990),
        ["record_too_large"],
    ),
    ("too large and too long", ev(page="/" + "p" * 5000), ["record_too_large", "field_too_long"]),
]
LIMITS = {"silver.max_record_bytes": 4096, "silver.max_field_chars": 1000}


@pytest.fixture(scope="module")
def run(settings_factory: Any) -> dict[str, Any]:
    """One landing file with every case, ingested and transformed once."""
    settings = settings_factory(LIMITS)
    lake = Lake(settings)
    good = {
        "plain": ev(),
        "digits user": ev(user_id="77"),
        "spaced upper type": ev(event_type="  PAGE_VIEW "),
        "offset ts": ev(ts="2026-11-02T15:30:00+05:30"),
        "negative offset ts": ev(ts="2026-11-01T22:00:00-08:00"),
        "epoch ms": ev(ts=int(datetime(2026, 11, 2, 10, 0, tzinfo=UTC).timestamp() * 1000)),
        "country name": ev(country="Germany"),
        "country lower": ev(country="pl"),
        "country unknown": ev(country="Atlantis"),
        "channels": ev(source="Mobile_App", device="iPhone"),
        "channel unknown": ev(source="carrier pigeon"),
        "purchase eur": purchase(currency="eur", country="FR"),
        "purchase default usd": purchase(),
        "string price": purchase(price="12.30", quantity="3"),
        "sku product": purchase(product_id="SKU-88/blue"),
        "digits product": ev(event_type="add_to_cart", product_id=" 0042 "),
        "unicode product": ev(event_type="add_to_cart", product_id="Kaffeemühle-Ø52"),
        "huge numeric product": ev(event_type="add_to_cart", product_id=12345678901234567890),
    }
    lines: list[Any] = list(good.values())
    lines += [case for _, case, _ in BAD]
    dup_of = good["plain"]
    lines.append(dup_of)  # exact duplicate in the same batch
    conflict = dict(good["digits user"], page="/elsewhere")
    lines.append(conflict)  # same id, different payload
    write_landing(lake, "rules-1.jsonl", lines)
    bronze_rec, silver_rec = bronze_and_silver(lake, settings)
    return {
        "lake": lake,
        "settings": settings,
        "good": good,
        "events": rows_by(read(lake, "silver.events"), "event_id"),
        "quarantine": read(lake, "silver.quarantine_events"),
        "bronze": bronze_rec,
        "silver": silver_rec,
        "lines": len(lines),
    }


def test_counts_add_up(run: dict[str, Any]) -> None:
    s = run["silver"]
    assert s.rows_in == run["lines"] == run["bronze"].inserted
    assert s.inserted == len(run["good"])
    assert s.duplicates == 1
    assert s.quarantined == len(BAD) + 1
    assert s.balanced


@pytest.mark.parametrize(("name", "record", "reasons"), BAD, ids=[b[0] for b in BAD])
def test_bad_records_are_quarantined_with_reasons(
    run: dict[str, Any], name: str, record: Any, reasons: list[str]
) -> None:
    q = run["quarantine"].to_pylist()
    line_no = 1 + len(run["good"]) + [b[0] for b in BAD].index(name)
    matches = [r for r in q if r["source_line"] == line_no]
    assert len(matches) == 1, f"{name}: line {line_no} not quarantined exactly once"
    row = matches[0]
    assert sorted(row["reasons"]) == sorted(reasons)
    assert row["source_file"] == "rules-1.jsonl"
    assert row["run_id"]
    if isinstance(record, bytes):
        assert row["raw_bytes"] == record and row["raw_value"] is None
    else:
        expected = record if isinstance(record, str) else json.dumps(record)
        assert row["raw_value"] == expected


def test_conflicting_duplicate_is_quarantined(run: dict[str, Any]) -> None:
    q = [r for r in run["quarantine"].to_pylist() if r["reasons"] == ["conflicting_duplicate"]]
    assert len(q) == 1
    assert q[0]["event_id"] == run["good"]["digits user"]["event_id"]
    kept = run["events"][run["good"]["digits user"]["event_id"]]
    assert kept["page"] == "/home"  # first by ingestion order wins


def test_types_are_normalised(run: dict[str, Any]) -> None:
    e, g = run["events"], run["good"]
    assert e[g["digits user"]["event_id"]]["user_id"] == 77
    assert e[g["spaced upper type"]["event_id"]]["event_type"] == "page_view"
    expected = datetime(2026, 11, 2, 10, 0, tzinfo=UTC)
    for name in ("plain", "offset ts", "epoch ms"):
        assert e[g[name]["event_id"]]["ts"] == expected, name
    assert e[g["negative offset ts"]["event_id"]]["ts"] == datetime(2026, 11, 2, 6, 0, tzinfo=UTC)
    assert e[g["negative offset ts"]["event_id"]]["event_date"].isoformat() == "2026-11-02"


def test_conformed_dimensions(run: dict[str, Any]) -> None:
    e, g = run["events"], run["good"]
    assert e[g["country name"]["event_id"]]["country"] == "DE"
    assert e[g["country lower"]["event_id"]]["country"] == "PL"
    unknown = e[g["country unknown"]["event_id"]]
    assert unknown["country"] is None and "unknown_country" in unknown["dq_warnings"]
    channels = e[g["channels"]["event_id"]]
    assert (channels["source"], channels["device"]) == ("mobile", "mobile")
    other = e[g["channel unknown"]["event_id"]]
    assert other["source"] == "other" and "unknown_source" in other["dq_warnings"]


def test_money_and_currency_conversion(run: dict[str, Any]) -> None:
    e, g = run["events"], run["good"]
    eur = e[g["purchase eur"]["event_id"]]
    assert eur["currency"] == "EUR"
    assert eur["price"] == Decimal("10.50") and eur["quantity"] == 2
    assert eur["amount"] == Decimal("21.00")
    assert eur["amount_base"] == (Decimal("21.00") / Decimal("0.92")).quantize(Decimal("0.01"))
    usd = e[g["purchase default usd"]["event_id"]]
    assert usd["currency"] == "USD" and usd["amount_base"] == usd["amount"] == Decimal("21.00")
    text = e[g["string price"]["event_id"]]
    assert text["price"] == Decimal("12.30") and text["amount"] == Decimal("36.90")


def test_rerun_changes_nothing(run: dict[str, Any]) -> None:
    lake, settings = run["lake"], run["settings"]
    before = {
        t: lake.table(t).version() for t in ("bronze.events", "silver.events", "silver.quarantine_events")
    }
    b, s = bronze_and_silver(lake, settings)
    assert b.rows_in == 0 and s.rows_in == 0
    after = {t: lake.table(t).version() for t in before}
    assert after == before


def test_later_batches_deduplicate_against_history_and_evolve_the_schema(settings_factory: Any) -> None:
    settings = settings_factory()
    lake = Lake(settings)
    first = ev(score=5)
    write_landing(lake, "a.jsonl", [first, ev()])
    bronze_and_silver(lake, settings)
    v1 = lake.table("silver.events").version()
    old_columns = [f.name for f in lake.table("silver.events").schema().fields]
    assert "score" in old_columns

    late_field = ev(score="high", tier="gold")
    write_landing(lake, "b.jsonl", [first, dict(first, page="/changed"), late_field, ev(tier="silver")])
    _, s = bronze_and_silver(lake, settings)
    assert (s.rows_in, s.inserted, s.duplicates, s.quarantined) == (4, 2, 1, 1)

    events = read(lake, "silver.events")
    assert "tier" in events.column_names  # a new field became a new nullable column
    by_id = rows_by(events, "event_id")
    assert by_id[late_field["event_id"]]["score"] is None
    assert "type_mismatch:score" in by_id[late_field["event_id"]]["dq_warnings"]
    assert by_id[first["event_id"]]["tier"] is None
    # A reader pinned to the old version, or asking only for old columns, keeps working.
    assert lake.table("silver.events", version=v1).to_pyarrow_table().num_rows == 2
    assert lake.table("silver.events").to_pyarrow_table(columns=old_columns).num_rows == 4
    conflicts = read(lake, "silver.quarantine_events")
    assert pc.sum(pc.equal(conflicts["event_id"], first["event_id"])).as_py() == 1


def test_product_ids_are_text_conformed_to_the_dimension_when_integer(run: dict[str, Any]) -> None:
    e, g = run["events"], run["good"]
    expected = {
        "purchase default usd": ("7", 7),
        "sku product": ("SKU-88/blue", None),
        "digits product": ("0042", 42),
        "unicode product": ("Kaffeemühle-Ø52", None),
        "huge numeric product": ("12345678901234567890", None),
    }
    got = {
        name: (e[g[name]["event_id"]]["product_id"], e[g[name]["event_id"]]["product_key"])
        for name in expected
    }
    assert got == expected
