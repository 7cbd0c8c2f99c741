"""Classify a batch of bronze rows in memory with silver's own SQL, without writing anything.

What the speed layer counts must be what silver keeps: the same contract, normalisation and
reference data decide each record here, on the embedded engine. There is no history, so
duplicates are found only within the batch (silver also deduplicates against everything
before it).
"""

from __future__ import annotations

import duckdb
import pyarrow as pa

from lakehouse.core.contract.events import CONTRACT_FIELDS
from lakehouse.silver import duckdb_json, reference
from lakehouse.silver.events_sql import EVENT_COLUMNS, transform_sql

# Output columns of `classify`, besides the bronze row's ordinal.
COLUMNS = ("outcome", "reasons", *EVENT_COLUMNS, "dq_warnings")


class BatchClassifier:
    """One DuckDB connection and the reference relations, reused for every batch."""

    def __init__(self, base_currency: str = "USD", future_tolerance_hours: int = 24) -> None:
        self.con = duckdb.connect()
        self.con.execute("SET TimeZone = 'UTC'")
        for name, table in reference.lookups(base_currency).items():
            self.con.register(name, table)
        self.con.execute(
            "CREATE TEMP VIEW existing AS "
            "SELECT NULL::VARCHAR AS event_id, NULL::VARCHAR AS payload_hash WHERE false"
        )
        self.sql = (
            f"SELECT ordinal, {', '.join(COLUMNS)} FROM ("
            f"{transform_sql((), '', future_tolerance_hours)}) ORDER BY ordinal"
        )

    def classify(self, rows: pa.Table) -> pa.Table:
        """One output row per bronze row (ordered by `ordinal`): `outcome` insert | duplicate |
        quarantine, `reasons` for quarantined rows (in the contract's order), normalised columns."""
        bronze = rows.append_column("commit_version", pa.repeat(pa.scalar(0, pa.int64()), rows.num_rows))
        self.con.register("bronze_rows", bronze)
        try:
            self.con.execute(
                f"CREATE OR REPLACE TEMP VIEW parsed AS {duckdb_json.parsed_sql('bronze_rows', CONTRACT_FIELDS)}"
            )
            return self.con.execute(self.sql).to_arrow_table()
        finally:
            self.con.unregister("bronze_rows")

    def close(self) -> None:
        self.con.close()
