"""The silver events transform, written once as SQL (DuckDB dialect) and transpiled per engine.

Inputs are relations every engine registers under the same names:
  parsed          the LINEAGE columns of bronze rows, one VARCHAR column `f_<field>` per JSON field,
                  `_utf8_ok`, `_json_ok`, `_is_object` and `_record_bytes` (the record's size)
                  (built by the engine's JSON primitive)
  existing        (event_id, payload_hash) already in silver.events
  ref_country     (lookup_key, country_code)
  ref_source      (lookup_key, source)
  ref_device      (lookup_key, device)
  ref_fx          (currency, valid_from, valid_to, rate_to_base)
The result has one row per input row with `outcome` in (insert, duplicate, quarantine),
`reasons` for quarantined rows, and the normalised silver columns.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import sqlglot
from sqlglot import exp

from lakehouse.core.contract.events import (
    CONTRACT_FIELDS,
    DEFAULT_CURRENCY,
    EPOCH_MS_RE,
    EVENT_TYPES,
    MAX_FIELD_CHARS,
    MAX_RECORD_BYTES,
    PRICED_EVENT_TYPE,
    PRODUCT_EVENT_TYPES,
    PRODUCT_ID_RE,
    PRODUCT_KEY_RE,
    TS_RE,
    UUID_RE,
)

# The normalised event columns the transform outputs (silver.events' own columns, before the
# audit columns and any evolved field).
EVENT_COLUMNS = (
    "event_id",
    "user_id",
    "event_type",
    "ts",
    "event_date",
    "page",
    "source",
    "device",
    "country",
    "product_id",
    "product_key",
    "price",
    "quantity",
    "currency",
    "amount",
    "amount_base",
    "campaign",
)
# Bronze columns every relation carries through to the output: the row identity (commit
# version, ordinal) and where the record came from. The raw payload stays in the bronze rows;
# the runner joins it back for quarantined rows only.
LINEAGE = (
    "commit_version",
    "ordinal",
    "ingestion_time",
    "source_system",
    "source_file",
    "source_line",
    "topic",
    "kafka_partition",
    "kafka_offset",
    "batch_id",
)
SQL_TYPES = {"BIGINT", "DOUBLE", "BOOLEAN", "VARCHAR"}


@dataclass(frozen=True)
class ExtraColumn:
    """A field outside the contract that schema evolution turned into a nullable column."""

    name: str
    sql_type: str  # one of SQL_TYPES


def _sql_tuple(values: tuple[str, ...]) -> str:
    return "(" + ", ".join(f"'{v}'" for v in values) + ")"


def _trim(col: str) -> str:
    """TRIM(col), paid only by values that start or end with a space: the engines' TRIM walks
    the whole string, and nearly every value arrives trimmed already."""
    return f"CASE WHEN {col} LIKE ' %' OR {col} LIKE '% ' THEN TRIM({col}) ELSE {col} END"


def _extra_select(extras: tuple[ExtraColumn, ...]) -> str:
    cols = []
    for x in extras:
        src = f"NULLIF({_trim(f'f_{x.name}')}, '')"
        if x.sql_type != "VARCHAR":
            cols.append(f"{src} AS r_{x.name}")
        if x.sql_type == "VARCHAR":
            cols.append(f"{src} AS {x.name}")
        elif x.sql_type == "BOOLEAN":
            cols.append(
                f"CASE WHEN LOWER({src}) IN ('true', 'false') THEN LOWER({src}) = 'true' END AS {x.name}"
            )
        elif x.sql_type == "BIGINT":
            cols.append(
                f"CASE WHEN regexp_matches({src}, '^-?[0-9]{{1,18}}$') THEN CAST({src} AS BIGINT) END AS {x.name}"
            )
        else:
            cols.append(
                f"CASE WHEN regexp_matches({src}, '^-?[0-9]+(\\.[0-9]+)?([eE][-+]?[0-9]+)?$') "
                f"THEN CAST({src} AS DOUBLE) END AS {x.name}"
            )
    return "".join(f",\n    {c}" for c in cols)


# (code, condition): a record is quarantined with every code whose condition holds.
REASONS = (
    ("record_too_large", "_record_bytes > {max_record_bytes}"),
    ("field_too_long", "_longest_field > {max_field_chars}"),
    ("invalid_utf8", "NOT _utf8_ok"),
    ("malformed_json", "_utf8_ok AND NOT _json_ok"),
    ("not_an_object", "_json_ok AND NOT _is_object"),
    ("missing_event_id", "_is_object AND s_event_id IS NULL"),
    ("invalid_event_id", "s_event_id IS NOT NULL AND event_id IS NULL"),
    ("missing_user_id", "_is_object AND s_user_id IS NULL"),
    ("invalid_user_id", "s_user_id IS NOT NULL AND user_id IS NULL"),
    ("missing_event_type", "_is_object AND s_event_type IS NULL"),
    ("unknown_event_type", "s_event_type IS NOT NULL AND event_type IS NULL"),
    ("missing_ts", "_is_object AND s_ts IS NULL"),
    ("invalid_ts", "s_ts IS NOT NULL AND ts IS NULL"),
    ("future_ts", "ts > ingestion_time + INTERVAL '{future_hours}' HOUR"),
    ("missing_product_id", f"event_type IN {_sql_tuple(PRODUCT_EVENT_TYPES)} AND s_product_id IS NULL"),
    ("invalid_product_id", "s_product_id IS NOT NULL AND product_id IS NULL"),
    ("missing_price", f"event_type = '{PRICED_EVENT_TYPE}' AND s_price IS NULL"),
    ("invalid_price", "s_price IS NOT NULL AND price IS NULL"),
    ("negative_price", "price < 0"),
    ("missing_quantity", f"event_type = '{PRICED_EVENT_TYPE}' AND s_quantity IS NULL"),
    ("invalid_quantity", "s_quantity IS NOT NULL AND (quantity IS NULL OR quantity < 1)"),
    ("unsupported_currency", f"event_type = '{PRICED_EVENT_TYPE}' AND ts IS NOT NULL AND fx_rate IS NULL"),
)

# (code, condition): a kept record carries these codes in dq_warnings.
WARNINGS = (
    ("unknown_country", "s_country IS NOT NULL AND country IS NULL"),
    ("unknown_source", "source = 'other'"),
    ("unknown_device", "device = 'other'"),
    ("unknown_currency", f"event_type <> '{PRICED_EVENT_TYPE}' AND fx_rate IS NULL AND ts IS NOT NULL"),
)


def _flags(checks: Sequence[tuple[str, str]], name: str, **params: object) -> str:
    """The list of codes whose condition holds. The list is only built for rows where one
    holds (one cheap OR first): nearly every row is clean, and list building is not cheap."""
    conds = [cond.format(**params) for _, cond in checks]
    items = ",\n      ".join(
        f"CASE WHEN {c} THEN '{code}' END" for (code, _), c in zip(checks, conds, strict=True)
    )
    any_cond = " OR ".join(f"({c})" for c in conds)
    return (
        f"CASE WHEN {any_cond}\n    THEN list_filter([\n      {items}\n    ], x -> x IS NOT NULL)\n"
        f"    ELSE CAST([] AS VARCHAR[]) END AS {name}"
    )


def _extra_warning_checks(extras: tuple[ExtraColumn, ...]) -> tuple[tuple[str, str], ...]:
    return tuple(
        (f"type_mismatch:{x.name}", f"r_{x.name} IS NOT NULL AND {x.name} IS NULL")
        for x in extras
        if x.sql_type != "VARCHAR"
    )


def _longest_field(extras: tuple[ExtraColumn, ...], max_field_chars: int) -> str:
    """Length of the record's longest field, computed only when the record itself is longer
    than the limit (otherwise no field can be)."""
    fields = ", ".join(f"length(f_{f})" for f in (*CONTRACT_FIELDS, *(x.name for x in extras)))
    return f"CASE WHEN _record_bytes > {int(max_field_chars)} THEN greatest({fields}) ELSE 0 END"


def transform_sql(
    extras: tuple[ExtraColumn, ...] = (),
    run_id: str = "",
    future_tolerance_hours: int = 24,
    max_record_bytes: int = MAX_RECORD_BYTES,
    max_field_chars: int = MAX_FIELD_CHARS,
) -> str:
    """The whole classification, normalisation and deduplication, in DuckDB SQL."""
    lineage = ", ".join(LINEAGE)
    extra_names = "".join(f", {x.name}" for x in extras)
    # Evolved fields enter the hash only when present (concat_ws skips NULLs), so adding a
    # column later does not change the hash of records that never had that field.
    extra_hash = "".join(f", '{x.name}=' || CAST({x.name} AS VARCHAR)" for x in extras)
    types = ", ".join(f"'{t}'" for t in EVENT_TYPES)
    return f"""
WITH cleaned AS (
  SELECT
    {lineage}, _utf8_ok, _json_ok, _is_object, _record_bytes,
    {_longest_field(extras, max_field_chars)} AS _longest_field,
    NULLIF({_trim("f_event_id")}, '') AS s_event_id,
    NULLIF({_trim("f_user_id")}, '') AS s_user_id,
    NULLIF(LOWER({_trim("f_event_type")}), '') AS s_event_type,
    NULLIF({_trim("f_ts")}, '') AS s_ts,
    NULLIF({_trim("f_page")}, '') AS page,
    NULLIF(LOWER({_trim("f_source")}), '') AS s_source,
    NULLIF(LOWER({_trim("f_device")}), '') AS s_device,
    NULLIF(LOWER({_trim("f_country")}), '') AS s_country,
    NULLIF({_trim("f_product_id")}, '') AS s_product_id,
    NULLIF({_trim("f_price")}, '') AS s_price,
    NULLIF({_trim("f_quantity")}, '') AS s_quantity,
    UPPER(COALESCE(NULLIF({_trim("f_currency")}, ''), '{DEFAULT_CURRENCY}')) AS currency,
    NULLIF({_trim("f_campaign")}, '') AS campaign{_extra_select(extras)}
  FROM parsed
),
typed AS (
  SELECT
    c.*,
    CASE WHEN regexp_matches(LOWER(s_event_id), '{UUID_RE}') THEN LOWER(s_event_id) END AS event_id,
    CASE WHEN regexp_matches(s_user_id, '^[0-9]{{1,18}}$') THEN CAST(s_user_id AS BIGINT) END AS user_id,
    CASE WHEN s_event_type IN ({types}) THEN s_event_type END AS event_type,
    CASE
      WHEN regexp_matches(s_ts, '{EPOCH_MS_RE}') THEN CAST(epoch_ms(CAST(s_ts AS BIGINT)) AS TIMESTAMPTZ)
      WHEN regexp_matches(s_ts, '{TS_RE}') THEN TRY_CAST(s_ts AS TIMESTAMPTZ)
    END AS ts,
    CASE WHEN regexp_matches(s_product_id, '{PRODUCT_ID_RE}') THEN s_product_id END AS product_id,
    CASE WHEN regexp_matches(s_product_id, '{PRODUCT_KEY_RE}') THEN CAST(s_product_id AS BIGINT) END AS product_key,
    CASE WHEN regexp_matches(s_price, '^-?[0-9]{{1,15}}(\\.[0-9]+)?$') THEN CAST(s_price AS DECIMAL(18, 2)) END AS price,
    CASE WHEN regexp_matches(s_quantity, '^[0-9]{{1,9}}$') THEN CAST(s_quantity AS INT) END AS quantity
  FROM cleaned AS c
),
dated AS (
  -- the UTC day, once: a time-zone-aware cast is not cheap, and the rate join and the output both need it
  SELECT t.*, CAST(ts AS DATE) AS event_date FROM typed AS t
),
conformed AS (
  SELECT
    t.*,
    rc.country_code AS country,
    COALESCE(rs.source, CASE WHEN t.s_source IS NOT NULL THEN 'other' END) AS source,
    COALESCE(rd.device, CASE WHEN t.s_device IS NOT NULL THEN 'other' END) AS device,
    fx.rate_to_base AS fx_rate
  FROM dated AS t
  LEFT JOIN ref_country AS rc ON rc.lookup_key = t.s_country
  LEFT JOIN ref_source AS rs ON rs.lookup_key = t.s_source
  LEFT JOIN ref_device AS rd ON rd.lookup_key = t.s_device
  LEFT JOIN ref_fx AS fx
    ON fx.currency = t.currency AND t.event_date >= fx.valid_from AND t.event_date < fx.valid_to
),
checked AS (
  SELECT
    -- only what later steps need: the raw s_* strings stay behind (narrow rows materialise faster)
    {lineage}, commit_version * 4294967296 + ordinal AS seq,
    event_id, user_id, event_type, ts, event_date, page, source, device, country, product_id,
    product_key, price, quantity, currency, campaign{extra_names}, fx_rate,
    {_flags(REASONS, "reasons", future_hours=int(future_tolerance_hours), max_record_bytes=int(max_record_bytes), max_field_chars=int(max_field_chars))},
    {_flags(WARNINGS + _extra_warning_checks(extras), "dq_warnings")},
    md5(concat_ws('|',
      COALESCE(event_id, ''), COALESCE(CAST(user_id AS VARCHAR), ''), COALESCE(event_type, ''),
      COALESCE(CAST(epoch_us(ts) AS VARCHAR), ''), COALESCE(page, ''), COALESCE(source, ''),
      COALESCE(device, ''), COALESCE(country, ''), COALESCE(product_id, ''),
      COALESCE(CAST(price AS VARCHAR), ''), COALESCE(CAST(quantity AS VARCHAR), ''), currency,
      COALESCE(campaign, ''){extra_hash})) AS payload_hash
  FROM conformed AS c
),
repeated AS (
  -- ids that occur more than once among this input's valid rows, with the first occurrence
  -- (ingestion order) and its payload; nearly every id occurs once, so this stays small
  SELECT event_id, min(seq) AS first_seq, arg_min(payload_hash, seq) AS first_hash
  FROM checked
  WHERE array_length(reasons) = 0
  GROUP BY event_id
  HAVING count(*) > 1
),
seen AS (
  -- the history of just this input's ids: a narrow semi-join streams the history past the
  -- chunk's ids, instead of a hash table over the chunk's wide rows
  SELECT e.event_id, e.payload_hash
  FROM existing AS e
  WHERE e.event_id IN (SELECT event_id FROM checked WHERE array_length(reasons) = 0)
),
decided AS (
  SELECT
    c.*,
    CASE
      WHEN array_length(c.reasons) > 0 THEN 'invalid'
      WHEN e.event_id IS NOT NULL AND e.payload_hash = c.payload_hash THEN 'duplicate'
      WHEN e.event_id IS NOT NULL THEN 'conflict'
      WHEN r.event_id IS NULL OR c.seq = r.first_seq THEN 'insert'
      WHEN c.payload_hash = r.first_hash THEN 'duplicate'
      ELSE 'conflict'
    END AS verdict
  FROM checked AS c
  LEFT JOIN repeated AS r ON r.event_id = c.event_id
  LEFT JOIN seen AS e ON e.event_id = c.event_id
)
SELECT
  {lineage},
  CASE WHEN verdict IN ('invalid', 'conflict') THEN 'quarantine' ELSE verdict END AS outcome,
  CASE WHEN verdict = 'conflict' THEN ['conflicting_duplicate'] ELSE reasons END AS reasons,
  event_id, user_id, event_type, ts, event_date, page, source, device, country,
  product_id, product_key, price, quantity, currency,
  CAST(price * quantity AS DECIMAL(18, 2)) AS amount,
  CAST(price * quantity * fx_rate AS DECIMAL(18, 2)) AS amount_base,
  campaign{extra_names}, dq_warnings, payload_hash,
  '{run_id}' AS run_id
FROM decided
"""


def _portable(node: exp.Expression) -> exp.Expression:
    """DuckDB functions SQLGlot keeps as anonymous calls, mapped to typed expressions."""
    if isinstance(node, exp.Anonymous) and node.name.lower() == "epoch_us" and len(node.expressions) == 1:
        return exp.UnixMicros(this=node.expressions[0])
    return node


def to_dialect(sql: str, dialect: str) -> str:
    """Transpile the DuckDB SQL to another engine's dialect (e.g. 'spark')."""
    if dialect == "duckdb":
        return sql
    tree = sqlglot.parse_one(sql, read="duckdb").transform(_portable)
    return tree.sql(dialect=dialect, pretty=True)
