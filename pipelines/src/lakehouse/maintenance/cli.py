"""`lakehouse maintain ...`: OPTIMIZE / VACUUM / checkpoints / restore / backfill from the shell
(and from the Airflow maintenance, restore and backfill DAGs)."""

from __future__ import annotations

import json
import sys
from datetime import date, datetime
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from lakehouse import lineage
from lakehouse.config import Settings, settings_from_cli
from lakehouse.errors import LakehouseError
from lakehouse.maintenance import ops
from lakehouse.reconcile import new_run_id
from lakehouse.storage import Lake

app = typer.Typer(
    help="Table maintenance: OPTIMIZE (compaction, Z-order), VACUUM, checkpoints, restore, backfill.",
    no_args_is_help=True,
)
console = Console(width=None if sys.stdout.isatty() else 160)
EnvOpt = Annotated[str | None, typer.Option("--env", help="environments/<env>/pipeline.yaml")]
SetOpt = Annotated[list[str] | None, typer.Option("--set", help="override a setting: --set key=value")]
TablesOpt = Annotated[
    list[str] | None,
    typer.Option("--table", help="table(s) <layer>.<name>; default: maintenance.tables or all"),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="print the results as one JSON document")]


def _settings(env: str | None, sets: list[str] | None) -> Settings:
    return settings_from_cli(env, sets)


def _human(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:,.0f} {unit}" if unit == "B" else f"{size:,.1f} {unit}"
        size /= 1024
    return f"{n} B"


def _show(results: list[ops.MaintenanceResult], as_json: bool, title: str) -> None:
    if as_json:
        payload = {
            "results": [r.as_row("") | {"finished_at": None, "metrics": r.metrics} for r in results],
            "files_compacted": sum(r.files_removed for r in results if r.operation in ("compact", "zorder")),
            "files_vacuumed": sum(r.files_removed for r in results if r.operation.startswith("vacuum")),
            "bytes_reclaimed": sum(r.bytes_reclaimed for r in results),
        }
        typer.echo(json.dumps(payload, default=str))
        return
    table = Table(title=title, title_justify="left")
    for col in (
        "table",
        "operation",
        "version",
        "files",
        "removed",
        "added",
        "size",
        "reclaimed",
        "s",
        "detail",
    ):
        table.add_column(col, justify="left" if col in ("table", "operation", "detail") else "right")
    for r in results:
        table.add_row(
            r.table,
            r.operation,
            f"{r.version_before}->{r.version_after}",
            f"{r.files_before}->{r.files_after}",
            str(r.files_removed),
            str(r.files_added),
            f"{_human(r.bytes_before)}->{_human(r.bytes_after)}",
            _human(r.bytes_reclaimed),
            f"{r.seconds:.2f}",
            r.detail,
        )
    console.print(table)
    compacted = sum(r.files_removed for r in results if r.operation in ("compact", "zorder"))
    reclaimed = sum(r.bytes_reclaimed for r in results)
    console.print(
        f"files compacted: {compacted:,}   bytes reclaimed by VACUUM: {reclaimed:,} ({_human(reclaimed)})"
    )


@app.command("run")
def run_cmd(
    env: EnvOpt = None, set_: SetOpt = None, table: TablesOpt = None, as_json: JsonOpt = False
) -> None:
    """OPTIMIZE, VACUUM (retention from maintenance.vacuum_retention_hours) and checkpoint every table."""
    settings = _settings(env, set_)
    results = ops.maintain(Lake(settings), settings, new_run_id(), table)
    _show(results, as_json, "Maintenance")


@app.command("optimize")
def optimize_cmd(
    env: EnvOpt = None,
    set_: SetOpt = None,
    table: TablesOpt = None,
    zorder: Annotated[
        bool | None, typer.Option("--zorder/--no-zorder", help="force or prevent Z-order (default: by size)")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Compact small files; Z-order large tables configured in maintenance.zorder."""
    settings = _settings(env, set_)
    lake = Lake(settings)
    names = table or settings.maintenance.tables or ops.discover_tables(lake)
    with lineage.job_run(settings, "lakehouse.maintenance.optimize", names, names, lake=lake):
        results = [ops.optimize(lake, settings, t, zorder=zorder) for t in names]
        ops.record(lake, results, new_run_id())
    _show(results, as_json, "OPTIMIZE")


@app.command("vacuum")
def vacuum_cmd(
    env: EnvOpt = None,
    set_: SetOpt = None,
    table: TablesOpt = None,
    retention_hours: Annotated[
        int | None, typer.Option(help="override maintenance.vacuum_retention_hours")
    ] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="list what would be deleted")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Delete unreferenced files older than the retention; report the bytes reclaimed."""
    settings = _settings(env, set_)
    lake = Lake(settings)
    names = table or settings.maintenance.tables or ops.discover_tables(lake)
    with lineage.job_run(
        settings, "lakehouse.maintenance.vacuum", names, [] if dry_run else names, lake=lake
    ):
        results = [
            ops.vacuum(lake, settings, t, retention_hours=retention_hours, dry_run=dry_run) for t in names
        ]
        if not dry_run:
            ops.record(lake, results, new_run_id())
    _show(results, as_json, "VACUUM")


@app.command("checkpoint")
def checkpoint_cmd(
    env: EnvOpt = None, set_: SetOpt = None, table: TablesOpt = None, as_json: JsonOpt = False
) -> None:
    """Write a Delta checkpoint and clean up expired log files."""
    settings = _settings(env, set_)
    lake = Lake(settings)
    names = table or settings.maintenance.tables or ops.discover_tables(lake)
    with lineage.job_run(settings, "lakehouse.maintenance.checkpoint", names, names, lake=lake):
        results = [ops.checkpoint(lake, t) for t in names]
        ops.record(lake, results, new_run_id())
    _show(results, as_json, "Checkpoints")


@app.command("restore")
def restore_cmd(
    table: Annotated[str, typer.Argument(help="<layer>.<name>")],
    version: Annotated[int | None, typer.Option(help="version to restore to")] = None,
    timestamp: Annotated[datetime | None, typer.Option(help="or: the version current at this time")] = None,
    env: EnvOpt = None,
    set_: SetOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Restore a table to an earlier version as a new commit (time travel keeps the history)."""
    if (version is None) == (timestamp is None):
        raise LakehouseError("restore needs exactly one of --version or --timestamp")
    settings = _settings(env, set_)
    lake = Lake(settings)
    target: int | datetime = version if version is not None else timestamp  # type: ignore[assignment]
    with lineage.job_run(settings, "lakehouse.maintenance.restore", [table], [table], lake=lake):
        result = ops.restore(lake, table, target)
        ops.record(lake, [result], new_run_id())
    _show([result], as_json, "Restore")


@app.command("backfill")
def backfill_cmd(
    start: Annotated[datetime, typer.Option("--from", help="first day (YYYY-MM-DD)", formats=["%Y-%m-%d"])],
    end: Annotated[datetime, typer.Option("--to", help="last day, inclusive", formats=["%Y-%m-%d"])],
    env: EnvOpt = None,
    set_: SetOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Land one day of source events per date in the range (idempotent); bronze picks them up."""
    settings = _settings(env, set_)
    lake = Lake(settings)
    with lineage.job_run(settings, "lakehouse.maintenance.backfill", [], ["landing/events"], lake=lake):
        days = ops.backfill(lake, settings, date.fromordinal(start.toordinal()), end.date())
    if as_json:
        typer.echo(json.dumps({"days": days}))
        return
    for day, parts in days.items():
        console.print(f"{day}: {'already landed' if parts == 0 else f'{parts} file(s) landed'}")


@app.command("history")
def history_cmd(
    table: Annotated[str, typer.Argument(help="<layer>.<name>")],
    limit: Annotated[int, typer.Option(help="latest N commits")] = 20,
    env: EnvOpt = None,
    set_: SetOpt = None,
) -> None:
    """A table's commit history (what `restore --version` can go back to)."""
    lake = Lake(_settings(env, set_))
    if not lake.exists(table):
        raise LakehouseError(f"table {table} does not exist in {lake.root}")
    out = Table(title=f"History of {table}", title_justify="left")
    for col in ("version", "timestamp", "operation", "metrics"):
        out.add_column(col)
    for entry in lake.table(table).history(limit):
        ts = datetime.fromtimestamp(entry.get("timestamp", 0) / 1000).isoformat(timespec="seconds")
        metrics = {k: v for k, v in (entry.get("operationMetrics") or {}).items() if "time" not in k.lower()}
        out.add_row(str(entry.get("version")), ts, str(entry.get("operation")), json.dumps(metrics)[:80])
    console.print(out)
