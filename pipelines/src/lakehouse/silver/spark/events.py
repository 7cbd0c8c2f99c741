"""Distributed engine seam: Apache Spark runs the same silver events SQL as the embedded engine.

What is Spark-specific is only the JSON primitive (bronze rows -> the `parsed` relation of
`silver.events_sql`) and field discovery; the classification itself is
`to_dialect(transform_sql(...), "spark")`. `classify()` returns the classified DataFrame (one
row per bronze row, `outcome` in insert/duplicate/quarantine); the Delta writers (delta-spark,
MERGE / append with app transactions) plug in after it. Nothing here writes.

pyspark is imported inside functions: the package never needs it at runtime.

Session settings (`session()`):
* `spark.sql.session.timeZone = UTC`: DuckDB runs with `TimeZone = 'UTC'`; strings without an
  offset and `CAST(ts AS DATE)` must mean the same instant / day in both engines.
* `spark.sql.ansi.enabled = true` (Spark 4's default, set explicitly): the shared SQL only casts
  after a regex guard or through TRY_CAST, so ANSI never fires on bad *input*; what ANSI changes is
  that arithmetic/decimal overflow raises instead of silently yielding NULL or wrapping. DuckDB
  raises on overflow too, so ANSI mode is the one with the embedded engine's semantics (fail
  loudly, never write a silently wrong amount).

JSON primitive, checked against DuckDB (tests/test_parity.py):
* invalid UTF-8 rows (`value` NULL, `raw_bytes` set): `_utf8_ok`/`_json_ok`/`_is_object` false.
* validity: `try_parse_json(value) IS NOT NULL` (Jackson, strict). Malformed/truncated text, empty
  and blank strings are invalid in both engines; arrays, strings, numbers and `null` are valid
  non-objects in both.
* object: valid AND `json_object_keys(value) IS NOT NULL`.
* fields: `from_json(value, '<field> STRING, ...')`; strings are unescaped, nested objects/arrays
  come back as compact JSON text, numbers as text, like DuckDB's `json_transform(..., VARCHAR)`.
Known residual differences (lenient-parser corners no producer here emits): DuckDB accepts
NaN/Infinity and trailing commas, Spark does not; Spark accepts trailing text after a complete
document (`{"a":1}xyz`), DuckDB does not; duplicate keys are valid in DuckDB (first wins) and
invalid in Spark's variant parser; doubles that need an exponent render as `1e+20` in DuckDB and
`1.0E20` in Spark (only visible in VARCHAR columns fed with such numbers).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from lakehouse.silver.events_sql import LINEAGE, ExtraColumn, to_dialect, transform_sql

if TYPE_CHECKING:  # pragma: no cover
    import pyarrow as pa
    from pyspark.sql import DataFrame, SparkSession

COLUMN_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
VALID_TEST = "(raw_bytes IS NULL AND try_parse_json(value) IS NOT NULL)"
OBJECT_TEST = f"({VALID_TEST} AND json_object_keys(value) IS NOT NULL)"
SESSION_CONF = {
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.ansi.enabled": "true",
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    "spark.sql.execution.arrow.pyspark.enabled": "true",
    # Inputs built from Arrow tables (lookups, test rows) are LocalRelations; this rule would run
    # the whole transform over them on the driver, interpreted, at planning time (10 s+ for a few
    # thousand rows). Leave execution to the executors.
    "spark.sql.optimizer.excludedRules": "org.apache.spark.sql.catalyst.optimizer.ConvertToLocalRelation",
}


def session(
    master: str = "local[2]",
    shuffle_partitions: int = 4,
    app_name: str = "lakehouse",
    conf: dict[str, str] | None = None,
) -> SparkSession:
    """A SparkSession configured for the shared SQL (UTC, ANSI on). Local by default."""
    from pyspark.sql import SparkSession

    builder = SparkSession.builder.master(master).appName(app_name)
    settings = {**SESSION_CONF, "spark.sql.shuffle.partitions": str(shuffle_partitions), **(conf or {})}
    for key, value in settings.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    return spark


# Jackson renders a JSON number read as STRING with Java's Double.toString ("1.2345678E7",
# "1.0E-4", on JDK 17 sometimes with a trailing zero); DuckDB renders it like Python's repr
# ("12345678.0", "0.0001", "1e+16"). Numbers of 1e7 or more are ordinary prices in some
# currencies, so the Spark primitive re-renders such values the DuckDB way. Only text that looks
# like Java's rendering AND is a JSON number (not a string) is touched.
JAVA_DOUBLE_RE = "^-?[0-9][.][0-9]+E-?[0-9]+$|^-?[0-9]+[.][0-9]+0$"


def _duckdb_number_text(c: str) -> str:
    """Spark SQL turning Java's rendering of a double in `c` into DuckDB's (Python repr).

    The shortest digits are found by round trip (`%.Ne` for N = 0..16, the first that reads back
    as the same double), since JDK 17's Double.toString is not always shortest.
    """
    d = f"CAST({c} AS DOUBLE)"
    shortest = (
        f"element_at(filter(transform(sequence(0, 16), n -> format_string(concat('%.', n, 'e'), {d})), "
        f"s -> CAST(s AS DOUBLE) = {d}), 1)"
    )
    plain = f"regexp_replace(CAST(CAST({shortest} AS DECIMAL(38, 21)) AS STRING), '0+$', '')"
    return f"""CASE
        WHEN {d} = 0 OR (abs({d}) >= 1e-4 AND abs({d}) < 1e16) THEN regexp_replace({plain}, '[.]$', '.0')
        ELSE {shortest}
      END"""


def _field(f: str) -> str:
    c = f"j.`{f}`"
    return f"""CASE
      WHEN {c} RLIKE '{JAVA_DOUBLE_RE}'
        AND schema_of_variant(variant_get(try_parse_json(value), '$.{f}')) <> 'STRING'
      THEN {_duckdb_number_text(c)}
      ELSE {c}
    END AS f_{f}"""


def parsed_sql(source: str, fields: tuple[str, ...]) -> str:
    """Spark SQL over `source` (bronze rows) giving the `parsed` relation of events_sql."""
    schema = ", ".join(f"`{f}` STRING" for f in fields)
    cols = ",\n  ".join(_field(f) for f in fields)
    lineage = ", ".join(LINEAGE)
    return f"""
SELECT {lineage}, _utf8_ok, _json_ok, _is_object, _record_bytes, {cols}
FROM (
  SELECT
    {lineage}, value,
    raw_bytes IS NULL AS _utf8_ok,
    COALESCE(octet_length(value), octet_length(raw_bytes), 0) AS _record_bytes,
    COALESCE({VALID_TEST}, false) AS _json_ok,
    COALESCE({OBJECT_TEST}, false) AS _is_object,
    CASE WHEN {OBJECT_TEST} THEN from_json(value, '{schema}') END AS j
  FROM {source}
)
"""


def _sql_type(variant_types: set[str]) -> str:
    """DuckDB-equivalent column type for the JSON types Spark's variant reports for one key."""
    kinds = set()
    for t in variant_types:
        m = re.match(r"^DECIMAL\((\d+),\s*(\d+)\)$", t)
        if t in ("BIGINT", "INT", "SMALLINT", "TINYINT") or (
            m and m.group(2) == "0" and int(m.group(1)) <= 20
        ):
            kinds.add("BIGINT")  # DuckDB: BIGINT / UBIGINT
        elif t in ("DOUBLE", "FLOAT") or m:
            kinds.add("DOUBLE")
        elif t == "BOOLEAN":
            kinds.add("BOOLEAN")
        else:
            kinds.add("VARCHAR")
    if kinds <= {"BIGINT"}:
        return "BIGINT"
    if kinds <= {"BIGINT", "DOUBLE"}:
        return "DOUBLE"
    if kinds == {"BOOLEAN"}:
        return "BOOLEAN"
    return "VARCHAR"


def discover_fields(spark: SparkSession, source: str, known: set[str]) -> tuple[list[ExtraColumn], list[str]]:
    """New top-level keys in view `source`: (columns to add, keys that cannot become columns).

    Same rules as `duckdb_engine.discover_fields`: JSON null does not count as a type, mixed
    integer/float is DOUBLE, anything else mixed is VARCHAR.
    """
    rows = spark.sql(
        f"SELECT DISTINCT k FROM (SELECT explode(json_object_keys(value)) AS k FROM {source} WHERE {OBJECT_TEST})"
    ).collect()
    new = sorted({r[0] for r in rows} - known)
    columns: list[ExtraColumn] = []
    valid = [k for k in new if COLUMN_NAME.match(k)]
    rejected = [k for k in new if not COLUMN_NAME.match(k)]
    if valid:
        stack = ", ".join(f"'{k}', schema_of_variant(variant_get(v, '$.{k}'))" for k in valid)
        types = spark.sql(
            f"""SELECT DISTINCT k, t FROM (
                  SELECT stack({len(valid)}, {stack}) AS (k, t)
                  FROM (SELECT try_parse_json(value) AS v FROM {source} WHERE {OBJECT_TEST}))
                WHERE t IS NOT NULL AND t <> 'VOID'"""
        ).collect()
        present: dict[str, set[str]] = {k: set() for k in valid}
        for k, t in types:
            present[k].add(t)
        columns = [ExtraColumn(k, _sql_type(present[k]) if present[k] else "VARCHAR") for k in valid]
    return columns, rejected


def _frame(spark: SparkSession, data: Any) -> DataFrame:
    """A DataFrame from a DataFrame (as is) or a pyarrow Table."""
    from pyspark.sql import DataFrame

    if isinstance(data, DataFrame):
        return data
    return spark.createDataFrame(data)


def register_inputs(
    spark: SparkSession,
    bronze: DataFrame | pa.Table,
    existing: DataFrame | pa.Table | None,
    lookups: dict[str, pa.Table],
) -> None:
    """Temp views `bronze_rows`, `existing` and the reference lookups (ref_country, ...).

    `bronze` holds bronze.events columns plus `commit_version` (BIGINT), as the embedded runner
    builds it from the Change Data Feed; `existing` holds (event_id, payload_hash) of silver.events.
    """
    _frame(spark, bronze).createOrReplaceTempView("bronze_rows")
    if existing is None:
        empty = "SELECT CAST(NULL AS STRING) AS event_id, CAST(NULL AS STRING) AS payload_hash WHERE false"
        spark.sql(empty).createOrReplaceTempView("existing")
    else:
        _frame(spark, existing).createOrReplaceTempView("existing")
    for name, table in lookups.items():
        _frame(spark, table).createOrReplaceTempView(name)


def classify(
    spark: SparkSession,
    bronze: DataFrame | pa.Table,
    lookups: dict[str, pa.Table],
    *,
    existing: DataFrame | pa.Table | None = None,
    extras: tuple[ExtraColumn, ...] | None = None,
    known_extras: tuple[ExtraColumn, ...] = (),
    contract_fields: tuple[str, ...] | None = None,
    run_id: str = "",
    future_tolerance_hours: int = 24,
) -> tuple[DataFrame, tuple[ExtraColumn, ...], list[str]]:
    """The classified rows of the silver events transform as a (lazy) DataFrame.

    `extras`: the evolved columns to use; None discovers them (known_extras + new keys in these
    bronze rows), as the embedded runner does. Returns (classified, extras, rejected keys).
    A Spark writer writes `classified` filtered by outcome to silver.events /
    silver.quarantine_events with the same column lists as `silver.events`.
    """
    from lakehouse.core.contract.events import CONTRACT_FIELDS

    contract = contract_fields or CONTRACT_FIELDS
    register_inputs(spark, bronze, existing, lookups)
    rejected: list[str] = []
    if extras is None:
        new, rejected = discover_fields(spark, "bronze_rows", set(contract) | {x.name for x in known_extras})
        extras = (*known_extras, *new)
    fields = tuple(contract) + tuple(x.name for x in extras)
    spark.sql(parsed_sql("bronze_rows", fields)).createOrReplaceTempView("parsed")
    sql = to_dialect(transform_sql(tuple(extras), run_id, future_tolerance_hours), "spark")
    return spark.sql(sql), tuple(extras), rejected
