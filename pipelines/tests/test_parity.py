"""Parity: the silver events transform on DuckDB (embedded) and on plain local PySpark.

The same bronze rows go through both engines' JSON primitive and the same SQL (DuckDB dialect,
transpiled to Spark by SQLGlot); every output column must be equal row for row. No tolerance:
a difference is fixed in the shared SQL or in an engine primitive, never in this comparison.
"""

from __future__ import annotations

import importlib.util
import shutil
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
import pytest

from lakehouse.bronze import landing
from lakehouse.core import delta
from lakehouse.core.contract.events import CONTRACT_FIELDS
from lakehouse.core.storage import Lake
from lakehouse.generator.events import CORRUPTIONS, EventSpec, generate_files
from lakehouse.silver import duckdb_json as duckdb_engine
from lakehouse.silver import reference
from lakehouse.silver.events_sql import ExtraColumn, transform_sql

pytestmark = [pytest.mark.spark, pytest.mark.slow]

RUN_ID = "parity-run"
HIGH_FAULTS = {
    "exact_duplicate": 0.08,
    "conflicting_duplicate": 0.05,
    "malformed_json": 0.04,
    "not_an_object": 0.04,
    "invalid_utf8": 0.03,
    "missing_required": 0.05,
    "unknown_event_type": 0.03,
    "wrong_type": 0.04,
    "negative_price": 0.03,
    "future": 0.03,
    "out_of_order": 0.1,
    "late": 0.05,
    "other_timezone": 0.3,
    "epoch_millis": 0.2,
    "new_field_after": 0.5,
}
EVENTS = 4000


def _spark_missing() -> str | None:
    if importlib.util.find_spec("pyspark") is None:
        return "pyspark is not installed (pip install the 'dev' extra)"
    if shutil.which("java") is None:
        return "no Java runtime on PATH (PySpark needs Java 17+)"
    return None


@pytest.fixture(scope="session")
def spark() -> Iterator[Any]:
    """One local[2] SparkSession for the whole test session."""
    reason = _spark_missing()
    if reason:
        pytest.skip(reason)
    from lakehouse.silver.spark import events as spark_engine

    # A few thousand rows: compiling whole-stage code for this wide plan costs far more than
    # running it, so expressions are interpreted (same semantics; it keeps the test short).
    session = spark_engine.session(
        master="local[2]",
        shuffle_partitions=2,
        app_name="lakehouse-parity",
        conf={"spark.sql.codegen.wholeStage": "false", "spark.sql.codegen.factoryMode": "NO_CODEGEN"},
    )
    yield session
    session.stop()


@pytest.fixture(scope="module")
def bronze(settings_factory: Any) -> tuple[pa.Table, Counter[str]]:
    """Generated events with every fault kind, landed and ingested into bronze.events on a temp
    lake; returns the bronze rows as the embedded runner sees them (CDF inserts + commit_version)."""
    overrides: dict[str, Any] = {"generator.events": EVENTS, "generator.seed": 7}
    overrides.update({f"generator.faults.{k}": v for k, v in HIGH_FAULTS.items()})
    settings = settings_factory(overrides)
    lake = Lake(settings)
    fs, base = lake.landing("events")

    def write(name: str, data: bytes) -> None:
        with fs.open_output_stream(f"{base}/{name}") as out:
            out.write(data)

    manifest = generate_files(EventSpec.from_settings(settings.generator), 4, write, workers=1)
    landing.ingest(lake, "parity-bronze", max_rows_per_commit=1500)  # several commit versions
    dt = delta.open_table(lake, landing.TABLE)
    assert dt is not None
    con = lake.duckdb()
    try:
        con.register("cdf", delta.changes(dt, 0, dt.version()))
        table = con.execute(
            "SELECT * EXCLUDE (_change_type, _commit_version, _commit_timestamp), "
            "CAST(_commit_version AS BIGINT) AS commit_version FROM cdf WHERE _change_type = 'insert'"
        ).to_arrow_table()
    finally:
        con.close()
    return table, manifest


def run_duckdb(
    rows: pa.Table, existing: pa.Table | None, extras: tuple[ExtraColumn, ...] | None = None
) -> tuple[pa.Table, tuple[ExtraColumn, ...]]:
    """The embedded path, as silver.events._run_chunk runs it (minus the Delta writes)."""
    import duckdb

    con = duckdb.connect()
    try:
        con.execute("SET TimeZone = 'UTC'")
        for name, table in reference.lookups("USD").items():
            con.register(name, table)
        con.register("bronze_rows", rows)
        if extras is None:
            new, _rejected = duckdb_engine.discover_fields(con, "bronze_rows", set(CONTRACT_FIELDS))
            extras = tuple(new)
        if existing is None:
            existing = pa.table(
                {"event_id": pa.array([], pa.string()), "payload_hash": pa.array([], pa.string())}
            )
        con.register("existing", existing)
        fields = CONTRACT_FIELDS + tuple(x.name for x in extras)
        con.execute(f"CREATE TEMP VIEW parsed AS {duckdb_engine.parsed_sql('bronze_rows', fields)}")
        out = con.execute(transform_sql(extras, RUN_ID, 24)).to_arrow_table()
        return out, extras
    finally:
        con.close()


def run_spark(
    spark: Any, rows: pa.Table, existing: pa.Table | None, extras: tuple[ExtraColumn, ...] | None = None
) -> tuple[pa.Table, tuple[ExtraColumn, ...]]:
    from lakehouse.silver.spark import events as spark_engine

    df, used, _rejected = spark_engine.classify(
        spark,
        rows,
        reference.lookups("USD"),
        existing=existing,
        extras=extras,
        run_id=RUN_ID,
        future_tolerance_hours=24,
    )
    return df.toArrow(), used


def _normal_type(t: pa.DataType) -> str:
    if pa.types.is_timestamp(t):
        return f"timestamp[{t.unit}, tz={'UTC' if t.tz in ('UTC', 'Etc/UTC', '+00:00') else t.tz}]"
    if pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return "string"
    if pa.types.is_large_binary(t) or pa.types.is_binary_view(t):
        return "binary"
    if pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_list_view(t):
        return f"list<{_normal_type(t.value_type)}>"
    return str(t)


def _sorted(table: pa.Table) -> pa.Table:
    """Rows in bronze order (commit version, ordinal); sorted on a key-only table, then taken."""
    names = ("commit_version", "ordinal")
    keys = pa.table({n: table[n] for n in names})
    return table.take(pa.compute.sort_indices(keys, [(n, "ascending") for n in names]))


def assert_same(duck: pa.Table, spark: pa.Table) -> None:
    """Same columns, same types, same values row for row (rows keyed by commit version + ordinal)."""
    assert duck.column_names == spark.column_names
    mismatched_types = {
        name: (_normal_type(duck.schema.field(name).type), _normal_type(spark.schema.field(name).type))
        for name in duck.column_names
        if _normal_type(duck.schema.field(name).type) != _normal_type(spark.schema.field(name).type)
    }
    assert not mismatched_types, mismatched_types
    assert duck.num_rows == spark.num_rows
    duck, spark = _sorted(duck), _sorted(spark)
    diffs: dict[str, list[tuple[Any, Any, Any]]] = {}
    for name in duck.column_names:
        left, right = duck[name].to_pylist(), spark[name].to_pylist()
        if left != right:
            where = [
                (duck["ordinal"][i].as_py(), a, b)
                for i, (a, b) in enumerate(zip(left, right, strict=True))
                if a != b
            ]
            diffs[name] = [*where[:3], ("...", f"{len(where)} rows differ", "")]
    assert not diffs, diffs


def test_generated_events_same_on_duckdb_and_spark(spark: Any, bronze: tuple[pa.Table, Counter[str]]) -> None:
    rows, manifest = bronze
    for kind in (*CORRUPTIONS, "exact_duplicate", "conflicting_duplicate"):
        assert manifest[kind] > 0, f"the input has no {kind} fault"

    duck, duck_extras = run_duckdb(rows, None)
    sp, spark_extras = run_spark(spark, rows, None)
    assert duck_extras == spark_extras  # field discovery agrees, names and types
    assert {x.name for x in duck_extras} >= {"session_id", "app_version", "discount_pct"}
    assert_same(duck, sp)

    # The input exercises every path of the transform.
    outcomes = Counter(duck["outcome"].to_pylist())
    assert set(outcomes) == {"insert", "duplicate", "quarantine"}
    reasons = Counter(r for rs in duck["reasons"].to_pylist() for r in rs)
    for reason in (
        "invalid_utf8",
        "malformed_json",
        "not_an_object",
        "missing_event_id",
        "invalid_user_id",
        "unknown_event_type",
        "invalid_ts",
        "future_ts",
        "negative_price",
        "conflicting_duplicate",
    ):
        assert reasons[reason] > 0, f"no row quarantined for {reason}"
    assert duck.filter(pa.compute.is_valid(duck["amount_base"])).num_rows > 0


def test_existing_rows_same_on_duckdb_and_spark(spark: Any, bronze: tuple[pa.Table, Counter[str]]) -> None:
    """With silver.events already holding some ids: same payload -> duplicate, other -> quarantine."""
    rows, _manifest = bronze
    first, extras = run_duckdb(rows, None)
    inserted = first.filter(pa.compute.equal(first["outcome"], "insert"))
    same = inserted.slice(0, 100).select(["event_id", "payload_hash"])
    other = inserted.slice(100, 100).select(["event_id"])
    other = other.append_column("payload_hash", pa.array(["0" * 32] * other.num_rows, pa.string()))
    existing = pa.concat_tables([same, other])

    duck, _ = run_duckdb(rows, existing, extras)
    sp, _ = run_spark(spark, rows, existing, extras)
    assert_same(duck, sp)
    outcomes = Counter(duck["outcome"].to_pylist())
    assert outcomes["duplicate"] >= 100 and outcomes["quarantine"] >= 100


EDGE_VALUES: list[bytes] = [
    # timestamps: every accepted spelling, and near misses
    b'{"event_id":"0b6f1a52-4f7c-4c3e-9a0b-1a2b3c4d5e6f","user_id":1,"event_type":"login","ts":"2026-11-01T05:30:00.123Z"}',
    b'{"event_id":"1b6f1a52-4f7c-4c3e-9a0b-1a2b3c4d5e6f","user_id":"2","event_type":"LOGIN","ts":"2026-11-01T11:00:00+05:30"}',
    b'{"event_id":"2B6F1A52-4F7C-4C3E-9A0B-1A2B3C4D5E6F","user_id":3,"event_type":" click ","ts":"2026-11-01"}',
    b'{"event_id":"3b6f1a52-4f7c-4c3e-9a0b-1a2b3c4d5e6f","user_id":4,"event_type":"click","ts":"2026-11-01 10:00"}',
    b'{"event_id":"4b6f1a52-4f7c-4c3e-9a0b-1a2b3c4d5e6f","user_id":5,"event_type":"click","ts":"2026-11-01T10:00:00+0530"}',
    b'{"event_id":"5b6f1a52-4f7c-4c3e-9a0b-1a2b3c4d5e6f","user_id":6,"event_type":"click","ts":"2026-11-01T24:00:00Z"}',
    b'{"event_id":"6b6f1a52-4f7c-4c3e-9a0b-1a2b3c4d5e6f","user_id":7,"event_type":"click","ts":"2026-11-01T10:00:00 UTC"}',
    b'{"event_id":"7b6f1a52-4f7c-4c3e-9a0b-1a2b3c4d5e6f","user_id":8,"event_type":"click","ts":"2026-11-01T10:00:00Europe/Paris"}',
    b'{"event_id":"8b6f1a52-4f7c-4c3e-9a0b-1a2b3c4d5e6f","user_id":9,"event_type":"click","ts":"2026-02-30T10:00:00Z"}',
    b'{"event_id":"9b6f1a52-4f7c-4c3e-9a0b-1a2b3c4d5e6f","user_id":10,"event_type":"click","ts":1793511000123}',
    b'{"event_id":"ab6f1a52-4f7c-4c3e-9a0b-1a2b3c4d5e6f","user_id":11,"event_type":"click","ts":"2026-11-01T10:00:00.1234567Z"}',
    b'{"event_id":"bb6f1a52-4f7c-4c3e-9a0b-1a2b3c4d5e6f","user_id":12,"event_type":"click","ts":true}',
    # purchases: decimals, rounding, currencies, quantities
    b'{"event_id":"cb6f1a52-4f7c-4c3e-9a0b-1a2b3c4d5e6f","user_id":13,"event_type":"purchase","ts":"2026-11-02T00:00:00Z",'
    b'"product_id":5,"price":19.999,"quantity":3,"currency":"eur"}',
    b'{"event_id":"db6f1a52-4f7c-4c3e-9a0b-1a2b3c4d5e6f","user_id":14,"event_type":"purchase","ts":"2026-11-02T00:00:00Z",'
    b'"product_id":"6","price":"0.005","quantity":"2","currency":"XXX"}',
    b'{"event_id":"eb6f1a52-4f7c-4c3e-9a0b-1a2b3c4d5e6f","user_id":15,"event_type":"purchase","ts":"2026-11-02T00:00:00Z",'
    b'"product_id":7,"price":1e5,"quantity":0}',
    b'{"event_id":"fb6f1a52-4f7c-4c3e-9a0b-1a2b3c4d5e6f","user_id":16,"event_type":"purchase","ts":"2026-11-02T00:00:00Z",'
    b'"product_id":8,"price":123456789012345.675,"quantity":1,"currency":"JPY"}',
    # strings: nested values, escapes, unicode, blanks, odd field types
    b'{"event_id":"0c6f1a52-4f7c-4c3e-9a0b-1a2b3c4d5e6f","user_id":17,"event_type":"page_view","ts":"2026-11-02T00:00:00Z",'
    b'"page":{"path":"/a","q":[1,2]},"campaign":"  ","country":"Germany","source":"WEB","device":"toaster"}',
    b'{"event_id":"1c6f1a52-4f7c-4c3e-9a0b-1a2b3c4d5e6f","user_id":18,"event_type":"page_view","ts":"2026-11-02T00:00:00Z",'
    b'"page":"/caf\\u00e9 \\"x\\"","campaign":null,"country":"Atlantis","source":12}',
    b'{"event_id":"2c6f1a52-4f7c-4c3e-9a0b-1a2b3c4d5e6f","user_id":123456789012345678901,"event_type":"click","ts":"2026-11-02T00:00:00Z"}',
    b'{"event_id":"3c6f1a52-4f7c-4c3e-9a0b-1a2b3c4d5e6f","user_id":-5,"event_type":"click","ts":"2026-11-02T00:00:00Z","page":12.50}',
    b'{"Event_ID":"4c6f1a52-4f7c-4c3e-9a0b-1a2b3c4d5e6f","user_id":1,"event_type":"click","ts":"2026-11-02T00:00:00Z"}',
    # not objects, not JSON, not UTF-8
    b"[1,2,3]",
    b'[{"event_id":"5c6f1a52-4f7c-4c3e-9a0b-1a2b3c4d5e6f"}]',
    b'"just a string"',
    b"42",
    b"null",
    b"{}",
    b"",
    b"   ",
    b'{"event_id":"6c6f1a52',
    b'{"event_id":"7c6f1a52-4f7c-4c3e-9a0b-1a2b3c4d5e6f","user_id":1,',
    b'{"event_id":"8c6f1a52-4f7c-4c3e-9a0b-1a2b3c4d5e6f","user_id":1,"event_type":"cl\xff\xfeick"}',
    b"\xff\xfe",
    # numbers read as text: DuckDB renders doubles like Python's repr, Jackson like Java
    b'{"event_id":"006f1a52-4f7c-4c3e-9a0b-1a2b3c4d5e6f","user_id":1,"event_type":"purchase","ts":"2026-11-02T00:00:00Z","product_id":1,'
    b'"quantity":1,"price":12345678.9,"page":12345678.9,"campaign":"12345678.9"}',
    b'{"event_id":"016f1a52-4f7c-4c3e-9a0b-1a2b3c4d5e6f","user_id":1,"event_type":"purchase","ts":"2026-11-02T00:00:00Z","product_id":1,'
    b'"quantity":1,"price":1e16,"page":1e16,"campaign":"1e16"}',
    b'{"event_id":"026f1a52-4f7c-4c3e-9a0b-1a2b3c4d5e6f","user_id":1,"event_type":"purchase","ts":"2026-11-02T00:00:00Z","product_id":1,'
    b'"quantity":1,"price":1.5e-7,"page":1.5e-7,"campaign":"1.5e-7"}',
    b'{"event_id":"036f1a52-4f7c-4c3e-9a0b-1a2b3c4d5e6f","user_id":1,"event_type":"purchase","ts":"2026-11-02T00:00:00Z","product_id":1,'
    b'"quantity":1,"price":0.0001,"page":0.0001,"campaign":"0.0001"}',
    b'{"event_id":"046f1a52-4f7c-4c3e-9a0b-1a2b3c4d5e6f","user_id":1,"event_type":"purchase","ts":"2026-11-02T00:00:00Z","product_id":1,'
    b'"quantity":1,"price":0.00012345,"page":0.00012345,"campaign":"0.00012345"}',
    b'{"event_id":"056f1a52-4f7c-4c3e-9a0b-1a2b3c4d5e6f","user_id":1,"event_type":"purchase","ts":"2026-11-02T00:00:00Z","product_id":1,'
    b'"quantity":1,"price":0.002,"page":0.002,"campaign":"0.002"}',
    b'{"event_id":"066f1a52-4f7c-4c3e-9a0b-1a2b3c4d5e6f","user_id":1,"event_type":"purchase","ts":"2026-11-02T00:00:00Z","product_id":1,'
    b'"quantity":1,"price":2.82879384806159e17,"page":2.82879384806159e17,"campaign":"2.82879384806159e17"}',
    b'{"event_id":"076f1a52-4f7c-4c3e-9a0b-1a2b3c4d5e6f","user_id":1,"event_type":"purchase","ts":"2026-11-02T00:00:00Z","product_id":1,'
    b'"quantity":1,"price":123456789012345.67,"page":123456789012345.67,"campaign":"123456789012345.67"}',
    b'{"event_id":"086f1a52-4f7c-4c3e-9a0b-1a2b3c4d5e6f","user_id":1,"event_type":"purchase","ts":"2026-11-02T00:00:00Z","product_id":1,'
    b'"quantity":1,"price":-0.0,"page":-0.0,"campaign":"-0.0"}',
    b'{"event_id":"096f1a52-4f7c-4c3e-9a0b-1a2b3c4d5e6f","user_id":1,"event_type":"purchase","ts":"2026-11-02T00:00:00Z","product_id":1,'
    b'"quantity":1,"price":100000.0,"page":100000.0,"campaign":"100000.0"}',
    b'{"event_id":"0a6f1a52-4f7c-4c3e-9a0b-1a2b3c4d5e6f","user_id":1,"event_type":"purchase","ts":"2026-11-02T00:00:00Z","product_id":1,'
    b'"quantity":1,"price":1E5,"page":1E5,"campaign":"1E5"}',
    b'{"event_id":"0b6f1a52-4f7c-4c3e-9a0b-1a2b3c4d5e6f","user_id":1,"event_type":"purchase","ts":"2026-11-02T00:00:00Z","product_id":1,'
    b'"quantity":1,"price":12.30,"page":12.30,"campaign":"12.30"}',
    b'{"event_id":"0c6f1a52-4f7c-4c3e-9a0b-1a2b3c4d5e6f","user_id":1,"event_type":"purchase","ts":"2026-11-02T00:00:00Z","product_id":1,'
    b'"quantity":1,"price":9999999999999998.0,"page":9999999999999998.0,"campaign":"9999999999999998.0"}',
    b'{"event_id":"0d6f1a52-4f7c-4c3e-9a0b-1a2b3c4d5e6f","user_id":1,"event_type":"purchase","ts":"2026-11-02T00:00:00Z","product_id":1,'
    b'"quantity":1,"price":1e-05,"page":1e-05,"campaign":"1e-05"}',
]


def test_edge_cases_same_on_duckdb_and_spark(spark: Any) -> None:
    """Hand-written corner cases of the JSON primitive and the typed columns."""
    at = datetime(2026, 11, 3, tzinfo=UTC)
    rows = landing.file_batch("edge.jsonl", EDGE_VALUES, "B-edge", 0, at)
    rows = rows.append_column("commit_version", pa.array([1] * rows.num_rows, pa.int64()))
    duck, duck_extras = run_duckdb(rows, None)
    sp, spark_extras = run_spark(spark, rows, None)
    assert duck_extras == spark_extras == ()  # "Event_ID" is not a valid column name
    assert_same(duck, sp)
    by_line = {r["ordinal"] + 1: r for r in duck.to_pylist()}
    assert by_line[6]["reasons"] == ["invalid_ts"]  # hour 24 is outside the contract
    assert by_line[7]["reasons"] == ["invalid_ts"]  # so are zone names
    assert by_line[1]["outcome"] == "insert" and by_line[2]["ts"] == by_line[1]["ts"].replace(microsecond=0)
    cases = [(22, "not_an_object"), (26, "not_an_object"), (28, "malformed_json"), (29, "malformed_json")]
    cases += [(30, "malformed_json"), (32, "invalid_utf8"), (33, "invalid_utf8")]
    for line, reason in cases:
        assert by_line[line]["reasons"] == [reason], (line, by_line[line]["reasons"])
    assert by_line[34]["page"] == "12345678.9" and by_line[34]["price"] is not None
    assert by_line[35]["page"] == "1e+16" and by_line[35]["reasons"] == ["invalid_price"]
