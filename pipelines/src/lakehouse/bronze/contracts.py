"""Bronze table contracts: raw rows kept whole, every row traceable to its origin."""

from __future__ import annotations

from lakehouse.core.quality import TS, Contract, Rule, reconciled

_INGEST = {"_row_hash": "string", "_extracted_at": TS, "_batch_id": "string", "_run_id": "string"}

CONTRACTS: tuple[Contract, ...] = (
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
            reconciled("bronze"),
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
)
