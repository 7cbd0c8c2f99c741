"""What the CLI shows: rows per table, quarantine by reason, reconciliation, timings."""

from __future__ import annotations

from collections.abc import Iterable

import pyarrow as pa
from rich.console import Console
from rich.table import Table

from lakehouse import delta, reconcile
from lakehouse.reconcile import Reconciliation
from lakehouse.storage import Lake

TABLES = (
    "bronze.events",
    "bronze.customers",
    "bronze.products",
    "bronze.orders",
    "bronze.order_items",
    "silver.events",
    "silver.quarantine_events",
    "silver.dim_customer",
    "silver.dim_product",
    "silver.orders",
    "silver.order_items",
    "ops.reconciliation",
)


def table_counts(lake: Lake, names: Iterable[str] = TABLES) -> Table:
    out = Table(title="Tables", title_justify="left")
    out.add_column("table")
    out.add_column("rows", justify="right")
    out.add_column("version", justify="right")
    out.add_column("files", justify="right")
    for name in names:
        dt = delta.open_table(lake, name)
        if dt is None:
            out.add_row(name, "-", "-", "-")
            continue
        out.add_row(name, f"{dt.count():,}", str(dt.version()), str(len(dt.file_uris())))
    return out


def quarantine_reasons(lake: Lake, run_ids: list[str] | None = None) -> Table:
    out = Table(
        title="Quarantine by reason" + (" (this run)" if run_ids else " (all runs)"), title_justify="left"
    )
    out.add_column("reason")
    out.add_column("rows", justify="right")
    dt = delta.open_table(lake, "silver.quarantine_events")
    if dt is None:
        return out
    con = lake.duckdb()
    try:
        con.register("q", dt.to_pyarrow_dataset())
        where = "WHERE run_id IN (SELECT unnest(?))" if run_ids else ""
        rows = con.execute(
            f"SELECT r, count(*) FROM (SELECT unnest(reasons) AS r FROM q {where}) GROUP BY r ORDER BY 2 DESC, 1",
            [run_ids] if run_ids else [],
        ).fetchall()
    finally:
        con.close()
    for reason, n in rows:
        out.add_row(reason, f"{n:,}")
    return out


def reconciliation_table(recs: Iterable[Reconciliation], title: str = "Reconciliation") -> Table:
    out = Table(title=title, title_justify="left")
    for col in ("step", "source", "target"):
        out.add_column(col)
    for col in ("rows in", "inserted", "updated", "unchanged", "quarantined", "duplicates", "ok", "seconds"):
        out.add_column(col, justify="right")
    for r in recs:
        end = r.finished_at or r.started_at
        out.add_row(
            r.step,
            r.source,
            r.target,
            f"{r.rows_in:,}",
            f"{r.inserted:,}",
            f"{r.updated:,}",
            f"{r.unchanged:,}",
            f"{r.quarantined:,}",
            f"{r.duplicates:,}",
            "[green]yes[/]" if r.balanced else "[red]NO[/]",
            f"{(end - r.started_at).total_seconds():.2f}",
        )
    return out


def stored_reconciliation(lake: Lake, last: int = 20) -> pa.Table | None:
    dt = delta.open_table(lake, reconcile.TABLE)
    if dt is None:
        return None
    table = dt.to_pyarrow_table().sort_by([("finished_at", "descending")])
    return table.slice(0, last)


def stored_reconciliation_table(lake: Lake, last: int = 20) -> Table:
    table = stored_reconciliation(lake, last)
    out = Table(title=f"Reconciliation history (last {last})", title_justify="left")
    for col in ("run", "step", "source", "target", "rows in", "accounted", "ok"):
        out.add_column(col, justify="right" if col in ("rows in", "accounted") else "left")
    if table is None:
        return out
    for row in table.to_pylist():
        accounted = sum(row[k] for k in ("inserted", "updated", "unchanged", "quarantined", "duplicates"))
        out.add_row(
            row["run_id"],
            row["step"],
            row["source"],
            row["target"],
            f"{row['rows_in']:,}",
            f"{accounted:,}",
            "[green]yes[/]" if row["balanced"] else "[red]NO[/]",
        )
    return out


def timings(steps: list[tuple[str, float]]) -> Table:
    out = Table(title="Timings", title_justify="left")
    out.add_column("step")
    out.add_column("seconds", justify="right")
    for name, seconds in steps:
        out.add_row(name, f"{seconds:.1f}")
    out.add_row("[b]total[/]", f"[b]{sum(s for _, s in steps):.1f}[/]")
    return out


def show(console: Console, *tables: Table) -> None:
    for t in tables:
        console.print(t)
