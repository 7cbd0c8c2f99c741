"""Silver table contracts: validated, deduplicated, conformed; SCD2 history without gaps."""

from __future__ import annotations

from lakehouse.core.contract.events import EVENT_TYPES
from lakehouse.core.quality import TS, Contract, Rule, reconciled

CONTRACTS: tuple[Contract, ...] = (
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
            "product_id": "string",
            "product_key": "int64",
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
                "SELECT count(*) FROM {t} WHERE event_type NOT IN ("
                + ", ".join(f"'{t}'" for t in EVENT_TYPES)
                + ")",
            ),
            Rule("event_date_matches_ts", "SELECT count(*) FROM {t} WHERE event_date <> CAST(ts AS DATE)"),
            Rule("amount_base_non_negative", "SELECT count(*) FROM {t} WHERE amount_base < 0"),
            Rule(
                "purchases_priced",
                "SELECT count(*) FROM {t} WHERE event_type = 'purchase' AND (amount_base IS NULL OR quantity IS NULL OR quantity <= 0)",
            ),
            reconciled("silver"),
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
                "SELECT count(*) FROM {t} i WHERE NOT EXISTS (SELECT 1 FROM delta_scan('{uri[silver.orders]}') o WHERE o.order_id = i.order_id)",
            ),
        ),
    ),
)
