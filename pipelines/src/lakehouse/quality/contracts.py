"""Table contracts per layer, checked in place on the Delta tables.

A contract is (1) the schema: required columns and their types (extra columns are allowed:
schema evolution adds them), and (2) rules: SQL over the table that counts offending rows
(0 = pass). Rules run in DuckDB over `delta_scan`, so they read what any consumer reads.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import pyarrow as pa

from lakehouse import delta
from lakehouse.quality.results import CheckResult
from lakehouse.storage import Lake

TS = "timestamp[us, tz=UTC]"


@dataclass(frozen=True)
class Rule:
    name: str
    sql: str  # SELECT count(*) of offending rows; `{t}` is the table, `{lake}` the lake root
    severity: str = "error"  # error blocks the layer's gate; warn is reported only


@dataclass(frozen=True)
class Contract:
    layer: str
    table: str
    columns: dict[str, str]
    rules: tuple[Rule, ...] = field(default_factory=tuple)
    required: bool = True  # a missing table fails the gate


_INGEST = {"_row_hash": "string", "_extracted_at": TS, "_batch_id": "string", "_run_id": "string"}


def _reconciled(step: str) -> Rule:
    return Rule(
        f"{step}_runs_balanced",
        f"""SELECT count(*) FROM delta_scan('{{lake}}/ops/reconciliation')
            WHERE step = '{step}' AND NOT balanced""",
    )


CONTRACTS: tuple[Contract, ...] = (
    # -- bronze: raw, append-only, every row traceable to its origin ----------------------------
    Contract(
        "bronze",
        "bronze.events",
        {
            "value": "string",
            "raw_bytes": "binary",
            "source_system": "string",
            "ingestion_time": TS,
            "batch_id": "string",
            "ordinal": "int64",
        },
        (
            Rule(
                "lineage_not_null",
                "SELECT count(*) FROM {t} WHERE ingestion_time IS NULL OR batch_id IS NULL OR source_system IS NULL",
            ),
            Rule("raw_payload_kept", "SELECT count(*) FROM {t} WHERE value IS NULL AND raw_bytes IS NULL"),
            Rule("batch_ordinal_unique", "SELECT count(*) - count(DISTINCT (batch_id, ordinal)) FROM {t}"),
            _reconciled("bronze"),
        ),
    ),
    *(
        Contract(
            "bronze",
            f"bronze.{name}",
            {key: "int64", "updated_at": TS, **_INGEST},
            (Rule("keys_not_null", f"SELECT count(*) FROM {{t}} WHERE {key} IS NULL OR updated_at IS NULL"),),
        )
        for name, key in (
            ("customers", "customer_id"),
            ("products", "product_id"),
            ("orders", "order_id"),
            ("order_items", "order_id"),
        )
    ),
    # -- silver: validated, deduplicated, conformed ---------------------------------------------
    Contract(
        "silver",
        "silver.events",
        {
            "event_id": "string",
            "user_id": "int64",
            "event_type": "string",
            "ts": TS,
            "event_date": "date32[day]",
            "page": "string",
            "source": "string",
            "device": "string",
            "country": "string",
            "product_id": "int64",
            "price": "decimal128(18, 2)",
            "quantity": "int32",
            "currency": "string",
            "amount": "decimal128(18, 2)",
            "amount_base": "decimal128(18, 2)",
            "payload_hash": "string",
        },
        (
            Rule("event_id_unique", "SELECT count(*) - count(DISTINCT event_id) FROM {t}"),
            Rule(
                "required_not_null",
                "SELECT count(*) FROM {t} WHERE event_id IS NULL OR user_id IS NULL OR event_type IS NULL OR ts IS NULL",
            ),
            Rule(
                "event_type_accepted",
                "SELECT count(*) FROM {t} WHERE event_type NOT IN ('page_view','click','add_to_cart','login','logout','purchase')",
            ),
            Rule("event_date_matches_ts", "SELECT count(*) FROM {t} WHERE event_date <> CAST(ts AS DATE)"),
            Rule("amount_base_non_negative", "SELECT count(*) FROM {t} WHERE amount_base < 0"),
            Rule(
                "purchases_priced",
                "SELECT count(*) FROM {t} WHERE event_type = 'purchase' AND (amount_base IS NULL OR quantity IS NULL OR quantity <= 0)",
            ),
            _reconciled("silver"),
        ),
    ),
    Contract(
        "silver",
        "silver.quarantine_events",
        {"run_id": "string", "reasons": "list<element: string>", "raw_value": "string"},
        (
            Rule(
                "every_row_has_a_reason", "SELECT count(*) FROM {t} WHERE reasons IS NULL OR len(reasons) = 0"
            ),
        ),
        required=False,
    ),
    *(
        Contract(
            "silver",
            f"silver.{name}",
            {
                "version_key": "string",
                key: "int64",
                "valid_from": TS,
                "valid_to": TS,
                "is_current": "bool",
                "change_hash": "string",
            },
            (
                Rule("version_key_unique", "SELECT count(*) - count(DISTINCT version_key) FROM {t}"),
                Rule(
                    "one_current_version",
                    f"SELECT count(*) FROM (SELECT {key} FROM {{t}} GROUP BY 1 HAVING count(*) FILTER (WHERE is_current) <> 1)",
                ),
                Rule(
                    "valid_range_ordered",
                    "SELECT count(*) FROM {t} WHERE valid_to IS NOT NULL AND valid_to <= valid_from",
                ),
                Rule("current_is_open", "SELECT count(*) FROM {t} WHERE is_current <> (valid_to IS NULL)"),
                Rule(
                    "no_overlapping_versions",
                    f"""SELECT count(*) FROM (
                          SELECT valid_to, lead(valid_from) OVER (PARTITION BY {key} ORDER BY valid_from) AS next_from FROM {{t}})
                        WHERE next_from IS NOT NULL AND valid_to IS DISTINCT FROM next_from""",
                ),
            ),
        )
        for name, key in (("dim_customer", "customer_id"), ("dim_product", "product_id"))
    ),
    Contract(
        "silver",
        "silver.orders",
        {"order_id": "int64", "customer_id": "int64", "status": "string", "order_ts": TS, "updated_at": TS},
        (Rule("order_id_unique", "SELECT count(*) - count(DISTINCT order_id) FROM {t}"),),
    ),
    Contract(
        "silver",
        "silver.order_items",
        {
            "order_id": "int64",
            "line_no": "int32",
            "product_id": "int64",
            "quantity": "int32",
            "unit_price": "decimal128(12, 2)",
        },
        (
            Rule("line_unique", "SELECT count(*) - count(DISTINCT (order_id, line_no)) FROM {t}"),
            Rule("quantity_positive", "SELECT count(*) FROM {t} WHERE quantity <= 0"),
            Rule(
                "order_exists",
                "SELECT count(*) FROM {t} i WHERE NOT EXISTS (SELECT 1 FROM delta_scan('{lake}/silver/orders') o WHERE o.order_id = i.order_id)",
            ),
        ),
    ),
)


def _plain(t: pa.DataType) -> str:
    if pa.types.is_string_view(t) or pa.types.is_large_string(t):
        return "string"
    if pa.types.is_binary_view(t) or pa.types.is_large_binary(t):
        return "binary"
    if pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_list_view(t):
        return f"list<element: {_plain(t.value_type)}>"
    return str(t)


def schema_violations(expected: dict[str, str], actual: pa.Schema) -> list[str]:
    """Required columns missing or of another type (type drift)."""
    have = {f.name: _plain(f.type) for f in actual}
    out = []
    for name, typ in expected.items():
        if name not in have:
            out.append(f"missing column {name} ({typ})")
        elif have[name] != typ:
            out.append(f"column {name} is {have[name]}, contract says {typ}")
    return out


def check_layer(lake: Lake, layer: str, run_id: str) -> list[CheckResult]:
    """Run every contract of `layer`; one CheckResult per schema check and per rule."""
    out: list[CheckResult] = []
    con = None
    try:
        for c in (c for c in CONTRACTS if c.layer == layer):
            start = time.perf_counter()
            dt = delta.open_table(lake, c.table)
            if dt is None:
                status = "fail" if c.required else "skipped"
                out.append(
                    CheckResult(
                        run_id,
                        layer,
                        f"{c.table}:exists",
                        "contract",
                        c.table,
                        status,
                        int(c.required),
                        "table does not exist",
                    )
                )
                continue
            problems = schema_violations(c.columns, pa.schema(dt.schema()))
            out.append(
                CheckResult(
                    run_id,
                    layer,
                    f"{c.table}:schema",
                    "contract",
                    c.table,
                    "fail" if problems else "pass",
                    len(problems),
                    "; ".join(problems),
                    seconds=round(time.perf_counter() - start, 3),
                )
            )
            if problems:
                continue  # rules assume the contract's columns
            if con is None:
                con = lake.duckdb_with_delta()
            for rule in c.rules:
                start = time.perf_counter()
                query = rule.sql.format(t=f"delta_scan('{lake.table_uri(c.table)}')", lake=lake.root)
                try:
                    bad = int(con.execute(query).fetchone()[0])  # type: ignore[index]
                    status = "pass" if bad == 0 else ("warn" if rule.severity == "warn" else "fail")
                    msg = "" if bad == 0 else f"{bad} offending row(s)"
                except Exception as exc:  # a rule that cannot run is an error, not a pass
                    bad, status, msg = 1, "error", str(exc).splitlines()[0][:500]
                out.append(
                    CheckResult(
                        run_id,
                        layer,
                        f"{c.table}:{rule.name}",
                        "contract",
                        c.table,
                        status,
                        bad,
                        msg,
                        seconds=round(time.perf_counter() - start, 3),
                    )
                )
    finally:
        if con is not None:
            con.close()
    return out
