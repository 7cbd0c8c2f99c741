"""SCD type 2 dimensions from bronze change history, applied with one MERGE per run.

For every key touched by new bronze rows, the version history is recomputed from all of that
key's bronze rows (ordered by updated_at, consecutive identical states collapsed), then merged
on (key, valid_from): new versions inserted, changed ones (closed valid_to) updated, versions a
late-arriving change made obsolete deleted. Recomputing per key makes late and out-of-order
changes land in the right place, and a rerun a no-op.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from deltalake import DeltaTable

from lakehouse.core import delta, memory
from lakehouse.core.errors import ReconciliationError
from lakehouse.core.reconcile import Reconciliation
from lakehouse.core.storage import Lake
from lakehouse.silver import merge_rewrite

APP_PREFIX = "silver<-"
# the MERGE's update condition: a version whose end, currency or state changed (both engines)
UPDATE_WHEN = (
    "s._action = 'upsert' AND ((t.is_current <> s.is_current) "
    "OR (t.valid_to IS DISTINCT FROM s.valid_to) OR (t.change_hash <> s.change_hash))"
)


@dataclass(frozen=True)
class Dimension:
    table: str  # silver.dim_customer
    source: str  # bronze.customers
    key: str
    tracked: tuple[str, ...]  # a change to any of these makes a new version
    carried: tuple[str, ...] = ()  # copied from the version's row, not tracked

    @property
    def app_id(self) -> str:
        return APP_PREFIX + self.source


DIMENSIONS = (
    Dimension(
        "silver.dim_customer",
        "bronze.customers",
        "customer_id",
        ("full_name", "email", "country", "segment"),
        ("created_at",),
    ),
    Dimension(
        "silver.dim_product",
        "bronze.products",
        "product_id",
        ("name", "category", "price", "currency"),
        ("created_at",),
    ),
)


def versions_sql(d: Dimension) -> str:
    attrs = ", ".join((*d.tracked, *d.carried))
    hashed = ", ".join(f"COALESCE(CAST({c} AS VARCHAR), '∅')" for c in d.tracked)
    return f"""
WITH hist AS (
  SELECT {d.key}, {attrs}, updated_at, md5(concat_ws('|', {hashed})) AS change_hash
  FROM history
  QUALIFY row_number() OVER (PARTITION BY {d.key}, updated_at ORDER BY _extracted_at DESC, _row_hash) = 1
),
marked AS (
  SELECT *, lag(change_hash) OVER (PARTITION BY {d.key} ORDER BY updated_at) AS prev_hash FROM hist
),
starts AS (
  SELECT * FROM marked WHERE prev_hash IS NULL OR prev_hash <> change_hash
)
SELECT
  md5(CAST({d.key} AS VARCHAR) || '|' || CAST(epoch_us(updated_at) AS VARCHAR)) AS version_key,
  {d.key}, {attrs}, change_hash,
  updated_at AS valid_from,
  lead(updated_at) OVER (PARTITION BY {d.key} ORDER BY updated_at) AS valid_to,
  lead(updated_at) OVER (PARTITION BY {d.key} ORDER BY updated_at) IS NULL AS is_current
FROM starts
"""


def count_sql(d: Dimension) -> dict[str, str]:
    """The queries that classify a run's input (DuckDB dialect; the Spark job transpiles them),
    over the relations `new_rows` (bronze rows not absorbed yet), `versions` (`versions_sql`)
    and `current_versions` (version_key, key, valid_from of the dimension's touched keys)."""
    new_row_starts = (
        f"EXISTS (SELECT 1 FROM new_rows n WHERE n.{d.key} = v.{d.key} AND n.updated_at = v.valid_from)"
    )
    return {
        "repeated_rows": f"""SELECT (SELECT count(*) FROM new_rows)
                               - (SELECT count(*) FROM (SELECT DISTINCT {d.key}, updated_at FROM new_rows))""",
        "starts": f"SELECT count(*) FROM versions v WHERE {new_row_starts}",
        "already": f"""SELECT count(*) FROM versions v JOIN current_versions c USING (version_key)
                       WHERE {new_row_starts}""",
        "obsolete": "SELECT c.* FROM current_versions c ANTI JOIN versions v USING (version_key)",
        # a late change between two old rows makes the later one a change point again: a
        # version that starts at an old row, new to the dimension (no new row to count it)
        "reopened": f"""SELECT count(*) FROM versions v ANTI JOIN current_versions c USING (version_key)
                        WHERE NOT {new_row_starts}""",
    }


def _merge(
    target: DeltaTable, source: pa.Table, columns: list[str], d: Dimension, last: int, run_id: str
) -> dict[str, Any]:
    return (
        target.merge(
            source,
            predicate="t.version_key = s.version_key",
            source_alias="s",
            target_alias="t",
            commit_properties=delta.commit_props(d.app_id, last, run_id=run_id),
        )
        .when_matched_delete(predicate="s._action = 'delete'")
        .when_matched_update(
            updates={c: f"s.{c}" for c in columns},
            predicate=UPDATE_WHEN,
        )
        .when_not_matched_insert(updates={c: f"s.{c}" for c in columns}, predicate="s._action = 'upsert'")
        .execute()
    )


def apply(lake: Lake, d: Dimension, run_id: str) -> Reconciliation:
    rec = Reconciliation(run_id, "silver", d.source, d.table)
    pending = delta.unabsorbed(lake, d.source, d.table, d.app_id)
    if isinstance(pending, str):
        rec.detail = pending
        return rec.finish()
    src, new_rows, last = pending
    rec.rows_in = new_rows.num_rows
    if rec.rows_in == 0:
        rec.detail = "no new rows"
        return rec.finish()
    memory.cap_arenas()
    keys = pc.unique(new_rows[d.key])
    # only what `versions_sql` reads: bronze rows carry ingestion columns the history never uses
    needed = [d.key, *d.tracked, *d.carried, "updated_at", "_extracted_at", "_row_hash"]
    history = delta.dataset(lake, src).to_table(columns=needed, filter=pc.field(d.key).isin(keys))
    target = delta.open_table(lake, d.table)
    current = (
        delta.dataset(lake, target).to_table(
            columns=["version_key", d.key, "valid_from"], filter=pc.field(d.key).isin(keys)
        )
        if target is not None
        else None
    )
    con = lake.duckdb()
    try:
        con.register("history", history)
        con.register("new_rows", new_rows)
        versions = con.execute(versions_sql(d)).to_arrow_table()
        con.register("versions", versions)
        # Classify each new input row: starts a version, repeats the previous state, or repeats a row.
        sql = count_sql(d)
        dup_rows = con.execute(sql["repeated_rows"]).fetchone()[0]  # type: ignore[index]
        starts = con.execute(sql["starts"]).fetchone()[0]  # type: ignore[index]
        if current is not None:
            con.register("current_versions", current)
            already = con.execute(sql["already"]).fetchone()[0]  # type: ignore[index]
            obsolete = con.execute(sql["obsolete"]).to_arrow_table()
            reopened = con.execute(sql["reopened"]).fetchone()[0]  # type: ignore[index]
        else:
            already, obsolete, reopened = 0, None, 0
        rec.duplicates = dup_rows
        rec.inserted = starts - already
        rec.unchanged = rec.rows_in - dup_rows - rec.inserted
    finally:
        con.close()
    del history, new_rows, current, keys  # the MERGE below needs only its source
    memory.release()
    source = versions.append_column("_action", pa.array(["upsert"] * versions.num_rows, pa.string()))
    if obsolete is not None and obsolete.num_rows:
        filler = {
            f.name: pa.nulls(obsolete.num_rows, f.type)
            for f in source.schema
            if f.name not in ("version_key", d.key, "valid_from", "_action")
        }
        deletes = pa.table(
            {
                "version_key": obsolete["version_key"],
                d.key: obsolete[d.key].cast(source.schema.field(d.key).type),
                "valid_from": obsolete["valid_from"].cast(source.schema.field("valid_from").type),
                **filler,
                "_action": pa.array(["delete"] * obsolete.num_rows, pa.string()),
            }
        ).select(source.column_names)
        source = pa.concat_tables([source, deletes])
    columns = versions.column_names
    if target is None:
        delta.append(lake, d.table, versions, app_id=d.app_id, txn_version=last, run_id=run_id)
        rec.detail = f"created with {versions.num_rows} versions"
        return rec.finish()
    if merge_rewrite.applicable(target, columns):
        merge_sql = merge_rewrite.select(
            pa.schema(target.schema()).names,
            columns,
            "t.version_key = s.version_key",
            UPDATE_WHEN,
            insert_when="s._action = 'upsert'",
            delete_when="s._action = 'delete'",
        )
        ops = merge_rewrite.rewrite(
            lake,
            d.table,
            target,
            source,
            d.key,
            merge_sql,
            app_id=d.app_id,
            txn_version=last,
            run_id=run_id,
        )
        # every obsolete version was read from the target, so each is matched and deleted
        deleted = 0 if obsolete is None else obsolete.num_rows
        metrics = {
            "num_target_rows_inserted": ops["i"],
            "num_target_rows_updated": ops["u"],
            "num_target_rows_deleted": deleted,
        }
    else:
        metrics = _merge(target, source, columns, d, last, run_id)
    inserted = int(metrics.get("num_target_rows_inserted", 0))
    if inserted != rec.inserted + reopened:
        raise ReconciliationError(
            f"{d.table}: MERGE inserted {inserted} versions but {rec.inserted + reopened} new versions "
            f"were expected ({rec.inserted} started by new rows, {reopened} re-opened by late ones)"
        )
    rec.updated = 0
    rec.detail = (
        f"{inserted} versions inserted ({reopened} re-opened by late changes), "
        f"{metrics.get('num_target_rows_updated', 0)} closed or corrected, "
        f"{metrics.get('num_target_rows_deleted', 0)} made obsolete by late changes"
    )
    return rec.finish()
