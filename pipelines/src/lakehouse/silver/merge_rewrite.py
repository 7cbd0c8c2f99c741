"""A MERGE carried out as a rewrite of the target's key range, for the silver tables that are
MERGEd whole batches at a time (current state, SCD2).

delta-rs's MERGE holds every row of every target file it touches in memory until the join has
finished (its barrier decides per file whether to rewrite it), together with the source's hash
table: a 1M-row dimension with a 1M-row change batch took 2-3.5 GiB. Here DuckDB joins the
target's rows in the batch's key range with the source under its memory limit (spilling to
disk), and the joined rows stream into one Delta commit that replaces exactly that key range
(`write_deltalake(mode="overwrite", predicate=...)`): the same rows as the MERGE, written in
batches, with the app transaction and run metadata in the same commit.

The caller's SELECT (see `select`) reads `t` (the target's rows in range) and `s` (the source),
each with a marker column (`_in_t`, `_in_s`) that is NULL on the side a row does not come from,
and yields the target's columns plus `_op`: 'i' inserted, 'u' updated, 'c' matched and left as
they were, 'k' target rows the source did not touch. Rows the MERGE would delete are left out.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from deltalake import DeltaTable, write_deltalake
from duckdb import DuckDBPyConnection

from lakehouse.core import delta, memory
from lakehouse.core.storage import Lake

OP = "_op"
BATCH_ROWS = 65_536
# table properties whose readers expect MERGE's own log actions (change data files, deletion
# vectors); such tables keep the delta-rs MERGE
NEEDS_MERGE = ("delta.enableChangeDataFeed", "delta.enableDeletionVectors")


def applicable(target: DeltaTable, source_columns: list[str]) -> bool:
    """Whether `target` can be MERGEd by rewrite: no change data feed or deletion vectors, not
    partitioned (the replaced range is a key range, not a partition), and every source column
    is one of its columns (otherwise the MERGE reports the mismatch)."""
    conf = target.metadata().configuration
    if any(conf.get(k, "false").lower() == "true" for k in NEEDS_MERGE):
        return False
    names = set(pa.schema(target.schema()).names)
    return not target.metadata().partition_columns and set(source_columns) <= names


def select(
    target_columns: list[str],
    source_columns: list[str],
    on: str,
    update_when: str,
    *,
    insert_when: str = "TRUE",
    delete_when: str = "FALSE",
) -> str:
    """The SELECT of a MERGE with (in this order) WHEN MATCHED AND `delete_when` THEN DELETE,
    WHEN MATCHED AND `update_when` THEN UPDATE SET every source column, WHEN NOT MATCHED AND
    `insert_when` THEN INSERT the source columns. A target column the source lacks keeps its
    value on update and is NULL on insert, as in the MERGE."""
    matched, t_only, s_only = "t._in_t AND s._in_s", "s._in_s IS NULL", "t._in_t IS NULL"
    # a NULL condition is not met, as in the MERGE's clauses
    updated = f"{matched} AND coalesce(({update_when}), FALSE)"
    deleted = f"{matched} AND coalesce(({delete_when}), FALSE)"
    inserted = f"{s_only} AND coalesce(({insert_when}), FALSE)"

    def column(c: str) -> str:
        if c not in source_columns:
            return f't."{c}" AS "{c}"'
        return f'CASE WHEN ({s_only}) OR ({updated}) THEN s."{c}" ELSE t."{c}" END AS "{c}"'

    cols = ", ".join(column(c) for c in target_columns)
    return f"""
SELECT {cols},
  CASE WHEN {s_only} THEN 'i' WHEN {t_only} THEN 'k' WHEN {updated} THEN 'u' ELSE 'c' END AS {OP}
FROM t FULL OUTER JOIN s ON {on}
WHERE ({t_only}) OR ({inserted}) OR ({matched} AND NOT ({deleted}))
"""


def _literal(value: Any) -> str | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    return None


def key_range(source: pa.Table, key: str) -> str | None:
    """The predicate of the target rows the source can match on `key`: its min..max (and NULL
    when the source has NULL keys, which the MERGE inserts); None for the whole table (no source
    rows with a key, or a key type without a plain literal)."""
    col = source[key]
    bounds = pc.min_max(col)
    lo, hi = bounds["min"].as_py(), bounds["max"].as_py()
    if lo is None:
        return None
    lo_s, hi_s = _literal(lo), _literal(hi)
    if lo_s is None or hi_s is None:
        return None
    within = f"{key} >= {lo_s} AND {key} <= {hi_s}"
    return f"(({within}) OR {key} IS NULL)" if col.null_count else f"({within})"


def rewrite(
    lake: Lake,
    table: str,
    target: DeltaTable,
    source: pa.Table,
    key: str,
    sql: str,
    *,
    app_id: str,
    txn_version: int,
    run_id: str,
) -> Counter[str]:
    """Replace the rows of `table` (read as `target`) in `source`'s range of `key` by the rows `sql` (a `select`) yields
    (over `t` and `s`), in one commit made against the version `target` was read at. Returns the
    rows per `_op`."""
    schema = pa.schema(target.schema())
    predicate = key_range(source, key)
    memory.cap_arenas()
    con = lake.duckdb()
    counts: Counter[str] = Counter()
    try:
        con.execute("SET preserve_insertion_order = false")  # lets the join spill and stream
        con.register("source_rows", source)
        con.register("target_rows", delta.dataset(lake, target))
        in_range = f"WHERE {predicate}" if predicate else ""
        con.execute(f"CREATE TEMP VIEW t AS SELECT *, TRUE AS _in_t FROM target_rows {in_range}")
        con.execute("CREATE TEMP VIEW s AS SELECT *, TRUE AS _in_s FROM source_rows")
        batches = _stream(con, sql, schema, counts)
        write_deltalake(
            target,
            pa.RecordBatchReader.from_batches(schema, batches),
            mode="overwrite",
            predicate=predicate,
            storage_options=lake.options(table),
            commit_properties=delta.commit_props(app_id, txn_version, run_id=run_id),
        )
    finally:
        con.close()
        memory.release()
    return counts


def _stream(
    con: DuckDBPyConnection, sql: str, schema: pa.Schema, counts: Counter[str]
) -> Iterator[pa.RecordBatch]:
    reader = con.execute(sql).to_arrow_reader(BATCH_ROWS)
    for batch in reader:
        for item in pc.value_counts(batch.column(OP)).to_pylist():
            counts[item["values"]] += item["counts"]
        yield batch.drop_columns([OP]).select(schema.names).cast(schema)
