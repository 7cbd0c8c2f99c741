"""What the CLI shows as tables: the lake's tables, a table's history, landing files, quarantine
by reason, reconciliation, timings (quality gates and KPIs: `render.gold`).

Each table has a `*_rows` function giving plain values (what `--json` prints) and a renderer.
Renderers keep every name whole at 120 columns: name columns never fold or truncate (long
cells wrap between words), numbers are right-aligned, and a row with nothing in it is hidden
unless asked for (the caption says how many).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from rich.console import Console, RenderableType
from rich.table import Table
from rich.text import Text

from lakehouse.bronze import landing
from lakehouse.core import delta, lineage, reconcile
from lakehouse.core.reconcile import Reconciliation
from lakehouse.core.storage import LAYERS, Lake
from lakehouse.maintenance.ops import discover_tables

# The tables a full run writes, in flow order; any other table found in the lake follows.
CORE_TABLES = (
    *lineage.STEP_DATASETS["bronze:events"][1],
    *lineage.STEP_DATASETS["bronze:postgres"][1],
    *lineage.STEP_DATASETS["silver"][1],
    reconcile.TABLE,
)


def titled(title: str, caption: str | None = None) -> Table:
    return Table(title=title, title_justify="left", caption=caption, caption_justify="left")


def name_column(table: Table, header: str, words: bool = False) -> None:
    """A column of names, kept whole: a name is one line, never shortened; `words`: cells of
    several words (labels, "source → target") wrap between words, so the other columns fit."""
    table.add_column(header, overflow="fold", no_wrap=not words)


def human_bytes(n: int | None) -> str:
    """A byte count as people read it: 512 B, 3.4 MiB."""
    if n is None:
        return "-"
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:,.0f} {unit}" if unit == "B" else f"{size:,.1f} {unit}"
        size /= 1024
    return f"{n} B"


# -- the lake's tables ---------------------------------------------------------------------------
def table_rows(lake: Lake) -> list[dict[str, Any]]:
    """Every Delta table of every layer (bronze, silver, gold, ops): rows, version, files, bytes.
    The tables a run writes are listed even before they exist (rows None)."""
    found = set(discover_tables(lake))
    names = [*CORE_TABLES, *sorted(found - set(CORE_TABLES))]
    names.sort(key=lambda n: LAYERS.index(n.split(".")[0]))  # stable: flow order within a layer
    out = []
    for name in names:
        dt = delta.open_table(lake, name) if name in found else None
        if dt is None:
            out.append({"table": name, **dict.fromkeys(("rows", "version", "files", "bytes"))})
            continue
        sizes = dt.get_add_actions(flatten=True).column("size_bytes").to_pylist()
        out.append(
            {
                "table": name,
                "rows": dt.count(),
                "version": dt.version(),
                "files": len(sizes),
                "bytes": int(sum(sizes)),
            }
        )
    return out


def table_counts(lake: Lake, rows: list[dict[str, Any]] | None = None) -> Table:
    rows = table_rows(lake) if rows is None else rows
    missing = sum(1 for r in rows if r["rows"] is None)
    out = titled(
        f"Tables in {lake.root}",
        f"{missing} not created yet (-): a run creates them" if missing else None,
    )
    name_column(out, "table")
    for col in ("rows", "version", "files", "size"):
        out.add_column(col, justify="right", no_wrap=True)
    layer = None
    for r in rows:
        this = r["table"].split(".")[0]
        if layer is not None and this != layer:
            out.add_section()
        layer = this
        if r["rows"] is None:
            out.add_row(r["table"], "-", "-", "-", "-")
        else:
            out.add_row(
                r["table"], f"{r['rows']:,}", str(r["version"]), f"{r['files']:,}", human_bytes(r["bytes"])
            )
    return out


# -- a table's history -------------------------------------------------------------------------
# Operation metrics as delta-rs (snake_case) and Delta/Spark (camelCase) name them.
_METRICS = {
    "rows_added": ("num_added_rows", "num_target_rows_inserted", "numOutputRows", "numTargetRowsInserted"),
    "rows_updated": ("num_target_rows_updated", "numTargetRowsUpdated", "numUpdatedRows"),
    "rows_removed": ("num_deleted_rows", "num_target_rows_deleted", "numDeletedRows", "numTargetRowsDeleted"),
    "files_added": (
        "num_added_files",
        "num_target_files_added",
        "numFilesAdded",
        "numRestoredFile",
        "numAddedFiles",
        "numTargetFilesAdded",
        "numFiles",
    ),
    "files_removed": (
        "num_removed_files",
        "num_target_files_removed",
        "numFilesRemoved",
        "numRemovedFile",
        "numRemovedFiles",
        "numTargetFilesRemoved",
        "numDeletedFiles",
    ),
}


def history_rows(lake: Lake, table: str, limit: int) -> list[dict[str, Any]]:
    """A table's latest commits with what each did: rows added/updated/removed, files
    added/removed (VACUUM END: files deleted from storage)."""
    out = []
    for entry in lake.table(table).history(limit):
        metrics = entry.get("operationMetrics") or {}
        row: dict[str, Any] = {
            "version": entry.get("version"),
            "timestamp": datetime.fromtimestamp(entry.get("timestamp", 0) / 1000, UTC).isoformat(
                timespec="seconds"
            ),
            "operation": str(entry.get("operation")),
        }
        for key, names in _METRICS.items():
            row[key] = next((int(metrics[n]) for n in names if n in metrics), None)
        info = entry.get("userMetadata") or entry.get("operationParameters", {}).get("mode")
        row["detail"] = str(info) if info else ""
        out.append(row)
    return out


def history_table(table: str, rows: list[dict[str, Any]]) -> Table:
    out = titled(f"History of {table} (latest {len(rows)} commits)")
    out.add_column("version", justify="right", no_wrap=True)
    out.add_column("time (UTC)", no_wrap=True)
    out.add_column("operation", no_wrap=True)
    for col in ("rows added", "rows updated", "rows removed", "files added", "files removed"):
        out.add_column(col, justify="right", no_wrap=True)

    def n(v: int | None) -> str:
        return "" if v is None else f"{v:,}"

    for r in rows:
        out.add_row(
            str(r["version"]),
            r["timestamp"].replace("T", " ").removesuffix("+00:00"),
            r["operation"],
            n(r["rows_added"]),
            n(r["rows_updated"]),
            n(r["rows_removed"]),
            n(r["files_added"]),
            n(r["files_removed"]),
        )
    return out


# -- landing files -------------------------------------------------------------------------------
def landing_rows(lake: Lake) -> list[dict[str, Any]]:
    """Every file under landing/events: state (ingested | pending | skipped), its reason, size,
    and rows per file in bronze.events, silver.events and silver.quarantine_events."""
    fs, base = lake.landing("events")
    listing = landing.list_landing(lake, fs, base)
    bronze = landing.rows_per_file(lake)
    silver = _silver_rows_per_file(lake, "silver.events", "_source_file", "_source_system")
    quarantined = _silver_rows_per_file(lake, "silver.quarantine_events", "source_file", "source_system")
    out: list[dict[str, Any]] = []
    for state, files in (
        ("ingested", listing.ingested),
        ("pending", [f for _, f in listing.todo]),
        ("skipped", listing.skipped),
    ):
        for f in files:
            out.append(
                {
                    "file": f.name,
                    "state": state,
                    "reason": f.skip or "",
                    "bytes": f.size,
                    "bronze_rows": bronze.get(f.name, 0),
                    "silver_rows": silver.get(f.name, 0),
                    "quarantined_rows": quarantined.get(f.name, 0),
                }
            )
    out.sort(key=lambda r: str(r["file"]))
    return out


def _silver_rows_per_file(lake: Lake, table: str, file_col: str, system_col: str) -> dict[str, int]:
    dt = delta.open_table(lake, table)
    if dt is None:
        return {}
    con = lake.duckdb()
    try:
        con.register("t", delta.dataset(lake, dt))
        rows = con.execute(
            f"SELECT {file_col}, count(*) FROM t WHERE {system_col} = 'landing' GROUP BY 1"
        ).fetchall()
    finally:
        con.close()
    return {str(f): int(n) for f, n in rows if f is not None}


def landing_table(rows: list[dict[str, Any]], ignored: int = 0) -> Table:
    skipped = [r for r in rows if r["state"] == "skipped"]
    notes = []
    if skipped:
        notes.append(f"{len(skipped)} file(s) skipped: bronze does not read them until they are fixed")
    if ignored:
        notes.append(f"{ignored} in-progress or marker file(s) (names starting with . or _) not listed")
    out = titled("Landing files (landing/events)", "\n".join(notes) or None)
    name_column(out, "file")
    out.add_column("state", overflow="fold")
    for col in ("size", "bronze rows", "silver rows", "quarantined"):
        out.add_column(col, justify="right", no_wrap=True)
    for r in rows:
        state = r["state"] if r["state"] != "skipped" else f"[yellow]skipped[/]: {r['reason']}"
        out.add_row(
            r["file"],
            state,
            human_bytes(r["bytes"]),
            f"{r['bronze_rows']:,}",
            f"{r['silver_rows']:,}",
            f"{r['quarantined_rows']:,}",
        )
    return out


def skipped_files(result_skipped: list[tuple[str, str]]) -> RenderableType:
    """The landing files a bronze run did not read, one line each."""
    lines = [f"[yellow]skipped landing file[/] {name}: {why}" for name, why in result_skipped]
    return Text.from_markup("\n".join(lines)) if lines else Text("")


# -- quarantine, reconciliation, timings -------------------------------------------------------
def quarantine_rows(lake: Lake, run_ids: list[str] | None = None) -> list[tuple[str, int]]:
    dt = delta.open_table(lake, "silver.quarantine_events")
    if dt is None:
        return []
    con = lake.duckdb()
    try:
        con.register("q", delta.dataset(lake, dt))
        where = "WHERE run_id IN (SELECT unnest(?))" if run_ids else ""
        rows = con.execute(
            f"SELECT r, count(*) FROM (SELECT unnest(reasons) AS r FROM q {where}) GROUP BY r ORDER BY 2 DESC, 1",
            [run_ids] if run_ids else [],
        ).fetchall()
    finally:
        con.close()
    return [(str(r), int(n)) for r, n in rows]


def quarantine_reasons(lake: Lake, run_ids: list[str] | None = None) -> Table:
    out = titled("Quarantine by reason" + (" (this run)" if run_ids else " (all runs)"))
    name_column(out, "reason")
    out.add_column("rows", justify="right", no_wrap=True)
    for reason, n in quarantine_rows(lake, run_ids):
        out.add_row(reason, f"{n:,}")
    return out


_COUNTS = ("rows_in", "inserted", "updated", "unchanged", "quarantined", "duplicates")


def _idle(row: dict[str, Any]) -> bool:
    """Nothing came in and nothing was written: a step with nothing to do."""
    return bool(row.get("balanced", True)) and not any(row[k] for k in _COUNTS)


def _reconciliation(rows: list[dict[str, Any]], title: str, all_rows: bool, runs: bool) -> RenderableType:
    """Source → target and its counts; a row whose counts do not add up is red. The step is the
    target's layer (in --json as `step`); `runs` starts a section with the run id per run."""
    shown = rows if all_rows else [r for r in rows if not _idle(r)]
    if rows and not shown:
        return Text(f"{title}: nothing new ({len(rows)} step(s) with nothing to do; --all shows them)")
    notes = []
    if len(rows) > len(shown):
        notes.append(f"{len(rows) - len(shown)} step(s) with nothing to do hidden (--all shows them)")
    unbalanced = sum(1 for r in shown if not r["balanced"])
    if unbalanced:
        notes.append(f"[red]{unbalanced} row(s) do not add up: rows in ≠ rows accounted for[/]")
    out = titled(title, "\n".join(notes) or None)
    name_column(out, "source → target", words=True)
    for col in ("rows in", "inserted", "updated", "unchanged", "quarantined", "duplicates"):
        out.add_column(col, justify="right", no_wrap=True)
    run = None
    for r in shown:
        flow = f"{r['source']} → {r['target']}"
        if runs and r["run_id"] != run:
            if run is not None:
                out.add_section()
            run = r["run_id"]
            flow = f"[dim]run {run}[/]\n{flow}"
        out.add_row(flow, *(f"{r[k]:,}" for k in _COUNTS), style=None if r["balanced"] else "red")
    return out


def reconciliation_rows(recs: Iterable[Reconciliation]) -> list[dict[str, Any]]:
    return [_rec_row(r) for r in recs]


def _rec_row(r: Reconciliation) -> dict[str, Any]:
    end = r.finished_at or r.started_at
    return {
        "run_id": r.run_id,
        "step": r.step,
        "source": r.source,
        "target": r.target,
        **{k: getattr(r, k) for k in _COUNTS},
        "balanced": r.balanced,
        "seconds": round((end - r.started_at).total_seconds(), 3),
        "detail": r.detail,
    }


def reconciliation_table(
    recs: Iterable[Reconciliation], title: str = "Reconciliation", all_rows: bool = False
) -> RenderableType:
    return _reconciliation([_rec_row(r) for r in recs], title, all_rows, runs=False)


def stored_reconciliation_rows(lake: Lake, last: int = 20) -> list[dict[str, Any]]:
    dt = delta.open_table(lake, reconcile.TABLE)
    if dt is None:
        return []
    table = delta.dataset(lake, dt).to_table().sort_by([("finished_at", "descending")])
    return table.slice(0, last).to_pylist()


def stored_reconciliation_table(rows: list[dict[str, Any]], all_rows: bool = False) -> RenderableType:
    return _reconciliation(rows, f"Reconciliation history (latest {len(rows)} records)", all_rows, runs=True)


def timings(steps: list[tuple[str, float]]) -> Table:
    out = titled("Timings")
    name_column(out, "step", words=True)
    out.add_column("seconds", justify="right", no_wrap=True)
    for name, seconds in steps:
        out.add_row(name, f"{seconds:.1f}")
    out.add_row("[b]total[/]", f"[b]{sum(s for _, s in steps):.1f}[/]")
    return out


def show(console: Console, *tables: RenderableType) -> None:
    for t in tables:
        console.print(t)


def counter_table(title: str, counts: dict[str, int]) -> Table:
    table = titled(title)
    name_column(table, "kind")
    table.add_column("count", justify="right", no_wrap=True)
    for key, value in sorted(counts.items(), key=lambda kv: -kv[1]):
        table.add_row(key, f"{value:,}")
    return table
