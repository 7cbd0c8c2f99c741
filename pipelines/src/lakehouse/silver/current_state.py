"""Current-state silver tables (orders, order_items): latest row per key, by MERGE upsert.

A source row replaces the silver row only when its updated_at is newer, so late or replayed
changes never move a row backwards.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pyarrow as pa
from deltalake import DeltaTable

from lakehouse.core import delta, memory
from lakehouse.core.reconcile import Reconciliation
from lakehouse.core.storage import Lake
from lakehouse.silver import merge_rewrite


@dataclass(frozen=True)
class CurrentState:
    table: str
    source: str
    keys: tuple[str, ...]

    @property
    def app_id(self) -> str:
        return "silver<-" + self.source


TABLES = (
    CurrentState("silver.orders", "bronze.orders", ("order_id",)),
    CurrentState("silver.order_items", "bronze.order_items", ("order_id", "line_no")),
)
DROPPED = ("_commit_version", "_batch_id", "_run_id")
UPDATE_WHEN = "s.updated_at > t.updated_at"  # only a newer row replaces the silver one


def apply(lake: Lake, t: CurrentState, run_id: str) -> Reconciliation:
    rec = Reconciliation(run_id, "silver", t.source, t.table)
    pending = delta.unabsorbed(lake, t.source, t.table, t.app_id)
    if isinstance(pending, str):
        rec.detail = pending
        return rec.finish()
    memory.cap_arenas()
    _, rows, last = pending
    rec.rows_in = rows.num_rows
    keys = ", ".join(t.keys)
    con = lake.duckdb()
    try:
        con.register("rows", rows)
        latest = con.execute(
            f"""SELECT * EXCLUDE ({", ".join(DROPPED)}), _batch_id AS _bronze_batch_id, '{run_id}' AS _run_id
                FROM rows
                QUALIFY row_number() OVER (PARTITION BY {keys} ORDER BY updated_at DESC, _commit_version DESC) = 1"""
        ).to_arrow_table()
    finally:
        con.close()
    del rows  # the MERGE below needs only the latest rows
    memory.release()
    rec.duplicates = rec.rows_in - latest.num_rows
    target = delta.open_table(lake, t.table)
    if target is None:
        delta.append(lake, t.table, latest, app_id=t.app_id, txn_version=last, run_id=run_id)
        rec.inserted = latest.num_rows
        return rec.finish()
    on = " AND ".join(f"t.{k} = s.{k}" for k in t.keys)
    if merge_rewrite.applicable(target, latest.column_names):
        sql = merge_rewrite.select(pa.schema(target.schema()).names, latest.column_names, on, UPDATE_WHEN)
        ops = merge_rewrite.rewrite(
            lake, t.table, target, latest, t.keys[0], sql, app_id=t.app_id, txn_version=last, run_id=run_id
        )
        rec.inserted, rec.updated = ops["i"], ops["u"]
    else:
        metrics = _merge(target, latest, on, t, last, run_id)
        rec.inserted = int(metrics.get("num_target_rows_inserted", 0))
        rec.updated = int(metrics.get("num_target_rows_updated", 0))
    rec.unchanged = latest.num_rows - rec.inserted - rec.updated
    rec.detail = f"{rec.unchanged} rows not newer than silver (late or replayed)"
    return rec.finish()


def _merge(
    target: DeltaTable, latest: pa.Table, on: str, t: CurrentState, last: int, run_id: str
) -> dict[str, Any]:
    cols = {c: f"s.{c}" for c in latest.column_names}
    return (
        target.merge(
            latest,
            predicate=on,
            source_alias="s",
            target_alias="t",
            commit_properties=delta.commit_props(t.app_id, last, run_id=run_id),
        )
        .when_matched_update(updates=cols, predicate=UPDATE_WHEN)
        .when_not_matched_insert(updates=cols)
        .execute()
    )
