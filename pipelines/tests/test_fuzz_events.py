"""Property-based fuzzing of bronze and silver (Hypothesis): valid, malformed and adversarial
records, more than 10,000 per run.

Every generated batch goes through bronze's line handling (`split_lines`, `file_batch`: bytes
kept exactly, UTF-8 or raw) and silver's own SQL (`BatchClassifier`, the transform silver and
the speed layer run): every record ends inserted, a duplicate, or quarantined with a reason;
nothing raises; every *valid* record is inserted with its meaning intact (id, user, type,
instant, product id). Then all the records of the run go through the real pipeline once (landing
files -> bronze.events -> silver.events + quarantine, Delta on disk) and must add up there too.
"""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pyarrow.compute as pc
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lakehelpers import bronze_and_silver, read, write_landing
from lakehouse.bronze.landing import file_batch, split_lines
from lakehouse.core.contract.events import (
    CONTRACT_FIELDS,
    EVENT_TYPES,
    PRICED_EVENT_TYPE,
    PRODUCT_EVENT_TYPES,
)
from lakehouse.core.storage import Lake
from lakehouse.silver.classify import BatchClassifier

RECORDS_PER_RUN = 10_000
EXAMPLES = 110
MIN_BATCH = 100
AT = datetime(2026, 12, 1, tzinfo=UTC)  # ingestion time: generated event times lie before it

# -- valid records --------------------------------------------------------------------------
SKU = st.text(alphabet="ABCDEFGHXYZabcxyz0123456789-_/.#:ÄØ漢 ", min_size=1, max_size=60).filter(
    lambda s: s.strip(" ") != "" and not s.startswith(("{", "["))
)
TIMES = st.datetimes(min_value=datetime(1990, 1, 1), max_value=datetime(2026, 11, 30), timezones=st.just(UTC))


@st.composite
def ts_text(draw: st.DrawFn) -> tuple[Any, datetime]:
    """An event time in one of the contract's formats, and the instant it means."""
    at = draw(TIMES).replace(microsecond=draw(st.integers(0, 999)) * 1000)
    form = draw(st.sampled_from(["z", "offset", "epoch", "space"]))
    if form == "epoch":
        return int(at.timestamp()) * 1000 + at.microsecond // 1000, at
    if form == "offset":
        zone = timezone(timedelta(minutes=draw(st.integers(-12 * 60, 14 * 60))))
        return at.astimezone(zone).isoformat(timespec="milliseconds"), at
    text = at.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    return (text.replace("T", " ") if form == "space" else text), at


@st.composite
def valid_event(draw: st.DrawFn) -> tuple[dict[str, Any], dict[str, Any]]:
    """(record, what silver must make of it)."""
    event_id = draw(st.uuids(version=4))
    user = draw(st.integers(0, 10**18 - 1))
    kind = draw(st.sampled_from(EVENT_TYPES))
    ts, at = draw(ts_text())
    record: dict[str, Any] = {
        "event_id": str(event_id).upper() if draw(st.booleans()) else str(event_id),
        "user_id": str(user) if draw(st.booleans()) else user,
        "event_type": draw(st.sampled_from([kind, kind.upper(), f"  {kind} "])),
        "ts": ts,
    }
    expected: dict[str, Any] = {"event_id": str(event_id), "user_id": user, "event_type": kind, "ts": at}
    for name in ("page", "source", "device", "country", "campaign"):
        if draw(st.booleans()):
            record[name] = draw(st.text(max_size=30).filter(lambda s: "\x00" not in s))
    if kind in PRODUCT_EVENT_TYPES:
        product = draw(st.one_of(st.integers(0, 10**18 - 1), SKU))
        record["product_id"] = product
        expected["product_id"] = str(product).strip(" ")
    if kind == PRICED_EVENT_TYPE:
        cents = draw(st.integers(0, 10**9))
        record["price"] = f"{cents // 100}.{cents % 100:02d}" if draw(st.booleans()) else cents // 100
        record["quantity"] = draw(st.integers(1, 10**6))
        if draw(st.booleans()):
            record["currency"] = draw(st.sampled_from(["USD", "eur", "GBP"]))
    return record, expected


# -- malformed and adversarial records --------------------------------------------------------
ANY_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
)


def _line(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False).encode()


@st.composite
def adversarial(draw: st.DrawFn) -> bytes:
    """One line (no newline in it) that is malformed, hostile, or merely odd."""
    base = draw(valid_event())[0]
    kind = draw(st.integers(0, 11))
    if kind == 0:  # any bytes at all
        return draw(st.binary(max_size=120)).replace(b"\n", b"")
    if kind == 1:  # invalid UTF-8 inside a string
        return _line(base).replace(b'"event_type"', b'"event_\xff\xfetype"', 1)
    if kind == 2:  # truncated JSON
        text = _line(base)
        return text[: draw(st.integers(0, max(0, len(text) - 1)))]
    if kind == 3:  # JSON that is not an object
        return _line(draw(st.one_of(st.lists(ANY_JSON, max_size=3), st.integers(), st.text(), st.none())))
    if kind == 4:  # a byte order mark before the object
        return b"\xef\xbb\xbf" + _line(base)
    if kind == 5:  # deep nesting in a contract field and in an unknown one
        depth = draw(st.integers(1, 3000))
        nested = "[" * depth + "1" + "]" * depth
        return _line(base)[:-1] + f', "nested": {nested}, "page": {nested}}}'.encode()
    if kind == 6:  # huge numbers
        digits = "9" * draw(st.integers(19, 400))
        field = draw(st.sampled_from(["user_id", "price", "quantity", "product_id", "ts"]))
        return _line({k: v for k, v in base.items() if k != field})[:-1] + f', "{field}": {digits}}}'.encode()
    if kind == 7:  # a huge string (past silver.max_field_chars)
        return _line(dict(base, page="p" * draw(st.integers(32_769, 40_000))))
    if kind == 8:  # NUL and control characters, escaped and raw
        field = draw(st.sampled_from(list(CONTRACT_FIELDS)))
        if draw(st.booleans()):
            return _line(dict(base, **{field: "a\x00b\x01\x1f"}))
        return _line(dict(base, **{field: "x"})).replace(b'"x"', b'"a\x00b\x07c"', 1)
    if kind == 9:  # a key given twice
        return (
            _line(base)[:-1]
            + b', "event_id": "'
            + str(uuid.UUID(int=draw(st.integers(0, 2**128 - 1)))).encode()
            + b'"}'
        )
    if kind == 10:  # every type in every field
        return _line({f: draw(ANY_JSON) for f in CONTRACT_FIELDS if draw(st.booleans())})
    # a valid record with a CRLF line end, or padded with whitespace
    return draw(st.sampled_from([b"", b"  ", b"\t"])) + _line(base) + draw(st.sampled_from([b"\r", b" "]))


@st.composite
def batch(draw: st.DrawFn) -> tuple[list[tuple[dict[str, Any], dict[str, Any]]], list[bytes]]:
    valid = draw(
        st.lists(
            valid_event(),
            min_size=MIN_BATCH // 2,
            max_size=MIN_BATCH // 2 + 10,
            unique_by=lambda v: v[1]["event_id"],
        )
    )
    bad = draw(st.lists(adversarial(), min_size=MIN_BATCH // 2, max_size=MIN_BATCH // 2 + 10))
    return valid, bad


SEEN: dict[str, list[Any]] = {"valid": [], "bad": []}
CLASSIFIER: list[BatchClassifier] = []  # one DuckDB connection for every example of the run


def _check_batch(classifier: BatchClassifier, valid: list[Any], bad: list[bytes]) -> None:
    lines = [_line(record) for record, _ in valid] + bad
    data = b"\n".join(lines) + b"\n"
    split = split_lines(data)
    assert len(split) == len(lines)
    rows = file_batch("fuzz.jsonl", split, "B-fuzz", 0, AT)
    for i, line in enumerate(lines):  # bronze keeps every record's bytes exactly (less a CR)
        kept = rows["raw_bytes"][i].as_py()
        text = rows["value"][i].as_py()
        assert (kept if kept is not None else text.encode()) == (line[:-1] if line.endswith(b"\r") else line)
    out = classifier.classify(rows)
    assert out.num_rows == len(lines)
    outcomes = out["outcome"].to_pylist()
    assert set(outcomes) <= {"insert", "duplicate", "quarantine"}
    for outcome, reasons in zip(outcomes, out["reasons"].to_pylist(), strict=True):
        assert (outcome == "quarantine") == bool(reasons)
    for i, (_, expected) in enumerate(valid):  # valid rows come first: nothing can precede them
        row = {c: out[c][i].as_py() for c in ("outcome", "reasons", *expected)}
        assert row["outcome"] == "insert", (row, lines[i])
        assert {k: row[k] for k in expected} == expected, lines[i]


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
    database=None,
)
@given(batch())
def _fuzz_classification(generated: tuple[list[Any], list[bytes]]) -> None:
    valid, bad = generated
    _check_batch(CLASSIFIER[0], valid, bad)
    SEEN["valid"].append([record for record, _ in valid])
    SEEN["bad"].append(bad)


def test_fuzzed_records_through_bronze_and_silver(settings_factory: Any) -> None:
    SEEN["valid"].clear()
    SEEN["bad"].clear()
    CLASSIFIER.append(BatchClassifier())
    started = time.perf_counter()
    try:
        _fuzz_classification()
    finally:
        CLASSIFIER.pop().close()
    fuzz_seconds = time.perf_counter() - started
    valid = [r for group in SEEN["valid"] for r in group]
    bad = [line for group in SEEN["bad"] for line in group]
    assert len(valid) + len(bad) >= RECORDS_PER_RUN, f"only {len(valid) + len(bad)} records generated"

    # the whole run once more through the real pipeline: landing files, Delta bronze and silver
    config = settings_factory()
    lake = Lake(config)
    ids = []
    for record in valid:  # ids made unique across the run (Hypothesis repeats values between examples)
        record["event_id"] = str(uuid.uuid4())
        ids.append(record["event_id"])
    lines = [_line(r) for r in valid] + bad
    for start in range(0, len(lines), 4000):
        write_landing(lake, f"fuzz-{start:06d}.jsonl", lines[start : start + 4000])
    b, s = bronze_and_silver(lake, config)
    assert b.rows_in == s.rows_in == len(lines)
    assert s.balanced and s.inserted + s.duplicates + s.quarantined == len(lines)
    events = read(lake, "silver.events")
    quarantine = read(lake, "silver.quarantine_events")
    assert events.num_rows == s.inserted and quarantine.num_rows == s.quarantined
    assert pc.all(pc.greater(pc.list_value_length(quarantine["reasons"]), 0)).as_py()
    assert set(ids) <= set(events["event_id"].to_pylist())  # every valid record reached silver
    print(
        f"fuzz: {len(lines):,} records ({len(valid):,} valid): {s.inserted:,} inserted, "
        f"{s.quarantined:,} quarantined, {s.duplicates:,} duplicates; "
        f"{EXAMPLES} Hypothesis examples in {fuzz_seconds:.0f} s"
    )
