"""`lakehouse maintain ...`: OPTIMIZE / VACUUM / checkpoints / restore / backfill from the shell
(and from the Airflow maintenance, restore and backfill DAGs).

Every command names its tables the same way: <layer>.<name> arguments after the command
(`--table` is accepted too); optimize, vacuum, checkpoint and run default to
`maintenance.tables`, else every table. Names are checked before any work starts.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated

import typer

from lakehouse.app.cli import validate
from lakehouse.app.cli.options import EnvOpt, JsonOpt, SetOpt, cli_settings, emit, existing_lake
from lakehouse.app.cli.progress import bars
from lakehouse.app.render.tables import human_bytes
from lakehouse.core.errors import LakehouseError

if TYPE_CHECKING:
    from lakehouse.core.settings import Settings
    from lakehouse.core.storage import Lake
    from lakehouse.maintenance.ops import MaintenanceResult
    from lakehouse.silver.backfill import BackfillResult

app = typer.Typer(
    help="Table maintenance: OPTIMIZE (compaction, Z-order), VACUUM, checkpoints, restore, backfill.",
    no_args_is_help=True,
)
TablesArg = Annotated[
    list[str] | None,
    typer.Argument(
        help="tables <layer>.<name> (default: maintenance.tables, else every table)", show_default=False
    ),
]
TableArg = Annotated[
    str | None, typer.Argument(help="the table, <layer>.<name>", show_default=False, metavar="TABLE")
]
TablesOpt = Annotated[
    list[str] | None, typer.Option("--table", help="same as the TABLES arguments", hidden=True)
]
TIMESTAMP_FORMATS = ["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M"]


def _targets(settings: Settings, lake: Lake, args: list[str] | None, opts: list[str] | None) -> list[str]:
    """The tables a command covers: those named (checked), else maintenance.tables, else all."""
    from lakehouse.maintenance import ops

    named = [*(args or []), *(opts or [])]
    if named:
        return validate.table_names(lake, named)
    return ops.maintained_tables(lake, settings.maintenance, None)


def _one(lake: Lake, arg: str | None, opt: list[str] | None) -> str:
    named = [*([arg] if arg else []), *(opt or [])]
    if len(named) != 1:
        raise typer.BadParameter("name exactly one table, <layer>.<name>", param_hint="TABLE")
    return validate.table_name(lake, named[0])


def _show(
    results: list[MaintenanceResult], as_json: bool, title: str, stale: list[str] | None = None
) -> None:
    from rich.table import Table

    compacted = sum(r.files_removed for r in results if r.operation in ("compact", "zorder"))
    vacuumed = sum(r.files_removed for r in results if r.operation.startswith("vacuum"))
    reclaimed = sum(r.bytes_reclaimed for r in results)
    payload = {
        "results": [r.as_row("") | {"finished_at": None, "metrics": r.metrics} for r in results],
        "files_compacted": compacted,
        "files_vacuumed": vacuumed,
        "bytes_reclaimed": reclaimed,
    }
    if stale is not None:
        payload["stale_downstream"] = stale
    table = Table(title=title, title_justify="left")
    table.add_column("table", overflow="fold")
    table.add_column("operation", no_wrap=True)
    for col in ("version", "files", "removed", "added", "size", "reclaimed", "s"):
        table.add_column(col, justify="right", no_wrap=True)
    table.add_column("detail", overflow="fold")
    for r in results:
        table.add_row(
            r.table,
            r.operation,
            f"{r.version_before}->{r.version_after}",
            f"{r.files_before}->{r.files_after}",
            str(r.files_removed),
            str(r.files_added),
            f"{human_bytes(r.bytes_before)}->{human_bytes(r.bytes_after)}",
            human_bytes(r.bytes_reclaimed),
            f"{r.seconds:.2f}",
            r.detail,
        )
    totals = []
    ops_run = {r.operation.split(" ")[0] for r in results}
    if ops_run & {"compact", "zorder"}:
        totals.append(f"files compacted: {compacted:,}")
    if "vacuum" in ops_run:
        totals.append(f"files deleted by VACUUM: {vacuumed:,} ({human_bytes(reclaimed)} reclaimed)")
    if "restore" in ops_run:
        totals.append(f"files restored: {sum(r.files_added for r in results):,}")
    lines = ["   ".join(totals)] if totals else []
    lines += [f"{r.table}: {r.detail.split(';')[0]}" for r in results if r.operation == "restore"]
    lines += [f"not consistent yet: {line}" for line in stale or []]
    emit(as_json, payload, table, *lines)


@app.command("run")
def run_cmd(
    tables_: TablesArg = None,
    env: EnvOpt = None,
    set_: SetOpt = None,
    table: TablesOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """OPTIMIZE, VACUUM (retention from maintenance.vacuum_retention_hours) and checkpoint each table."""
    from lakehouse.app import jobs
    from lakehouse.core.reconcile import new_run_id

    settings = cli_settings(env, set_)
    lake = existing_lake(settings)
    names = _targets(settings, lake, tables_, table)
    with bars(quiet=as_json) as b:
        results = jobs.maintain(
            lake,
            settings,
            new_run_id(),
            names,
            on_table=lambda i, n, name: b.current("maintain", name, completed=i, total=n),
        )
        b.done("maintain")
    _show(results, as_json, "Maintenance")


@app.command("optimize")
def optimize_cmd(
    tables_: TablesArg = None,
    env: EnvOpt = None,
    set_: SetOpt = None,
    table: TablesOpt = None,
    zorder: Annotated[
        bool | None, typer.Option("--zorder/--no-zorder", help="force or prevent Z-order (default: by size)")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Compact small files; Z-order large tables configured in maintenance.zorder."""
    from lakehouse.core import lineage
    from lakehouse.core.reconcile import new_run_id
    from lakehouse.maintenance import ops

    settings = cli_settings(env, set_)
    lake = existing_lake(settings)
    names = _targets(settings, lake, tables_, table)
    results = []
    with (
        lineage.job_run(settings, "lakehouse.maintenance.optimize", names, names, lake=lake),
        bars(quiet=as_json) as b,
    ):
        for i, name in enumerate(names):
            b.current("optimize", name, completed=i, total=len(names))
            results.append(ops.optimize(lake, settings.maintenance, name, zorder=zorder))
        b.done("optimize")
        ops.record(lake, results, new_run_id())
    _show(results, as_json, "OPTIMIZE")


@app.command("vacuum")
def vacuum_cmd(
    tables_: TablesArg = None,
    env: EnvOpt = None,
    set_: SetOpt = None,
    table: TablesOpt = None,
    retention_hours: Annotated[
        int | None, typer.Option(help="override maintenance.vacuum_retention_hours", min=0)
    ] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="list what would be deleted")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Delete unreferenced files older than the retention; report the bytes reclaimed."""
    from deltalake.exceptions import DeltaError

    from lakehouse.core import lineage
    from lakehouse.core.reconcile import new_run_id
    from lakehouse.maintenance import ops

    settings = cli_settings(env, set_)
    lake = existing_lake(settings)
    names = _targets(settings, lake, tables_, table)
    results = []
    with (
        lineage.job_run(settings, "lakehouse.maintenance.vacuum", names, [] if dry_run else names, lake=lake),
        bars(quiet=as_json) as b,
    ):
        for i, name in enumerate(names):
            b.current("vacuum", name, completed=i, total=len(names))
            try:
                results.append(
                    ops.vacuum(
                        lake, settings.maintenance, name, retention_hours=retention_hours, dry_run=dry_run
                    )
                )
            except DeltaError as exc:
                if "retention" not in str(exc).lower():
                    raise
                raise LakehouseError(
                    f"{name}: {str(exc).strip().splitlines()[0]}; a shorter retention deletes files time "
                    "travel and concurrent readers may still need: allow it with "
                    "--set maintenance.enforce_retention_duration=false"
                ) from None
        b.done("vacuum")
        if not dry_run:
            ops.record(lake, results, new_run_id())
    _show(results, as_json, "VACUUM")


@app.command("checkpoint")
def checkpoint_cmd(
    tables_: TablesArg = None,
    env: EnvOpt = None,
    set_: SetOpt = None,
    table: TablesOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Write a Delta checkpoint and clean up expired log files."""
    from lakehouse.core import lineage
    from lakehouse.core.reconcile import new_run_id
    from lakehouse.maintenance import ops

    settings = cli_settings(env, set_)
    lake = existing_lake(settings)
    names = _targets(settings, lake, tables_, table)
    with lineage.job_run(settings, "lakehouse.maintenance.checkpoint", names, names, lake=lake):
        results = [ops.checkpoint(lake, t) for t in names]
        ops.record(lake, results, new_run_id())
    _show(results, as_json, "Checkpoints")


def _restore_target(version: int | None, timestamp: datetime | None) -> int | datetime:
    if (version is None) == (timestamp is None):
        raise typer.BadParameter(
            "give exactly one of --version or --timestamp", param_hint="--version/--timestamp"
        )
    return int(version) if timestamp is None else timestamp  # type: ignore[arg-type]


@app.command("restore")
def restore_cmd(
    table_: TableArg = None,
    version: Annotated[int | None, typer.Option(help="version to restore to", min=0)] = None,
    timestamp: Annotated[
        datetime | None,
        typer.Option(
            help="or: the version current at this time (UTC unless an offset is given)",
            formats=TIMESTAMP_FORMATS,
        ),
    ] = None,
    cascade: Annotated[
        bool,
        typer.Option(help="also restore every downstream table that has read past that version"),
    ] = False,
    env: EnvOpt = None,
    set_: SetOpt = None,
    table: TablesOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Restore a table to an earlier version as a new commit (time travel keeps the history), its
    watermarks with it; names the downstream tables that read past that version (--cascade
    restores them too)."""
    from lakehouse.core import lineage
    from lakehouse.core.reconcile import new_run_id
    from lakehouse.maintenance import consistent_restore, ops

    settings = cli_settings(env, set_)
    lake = existing_lake(settings)
    name = _one(lake, table_, table)
    target = _restore_target(version, timestamp)
    with lineage.job_run(settings, "lakehouse.maintenance.restore", [name], [name], lake=lake):
        results, stale = consistent_restore.restore(lake, name, target, cascade=cascade)
        ops.record(lake, results, new_run_id())
    _show(results, as_json, "Restore", stale=[s.line() for s in stale])


@app.command("backfill")
def backfill_cmd(
    start: Annotated[
        datetime, typer.Option("--from", help="first event date (YYYY-MM-DD)", formats=["%Y-%m-%d"])
    ],
    end: Annotated[datetime, typer.Option("--to", help="last event date, inclusive", formats=["%Y-%m-%d"])],
    gold: Annotated[
        bool, typer.Option(help="rebuild gold afterwards (its models read the whole of silver)")
    ] = False,
    env: EnvOpt = None,
    set_: SetOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Classify the events of a date range again from bronze (after a rule change) and replace
    that range in silver.events and the quarantine, one commit per table; idempotent."""
    from lakehouse.core import lineage, ownership
    from lakehouse.core.reconcile import new_run_id
    from lakehouse.silver import backfill

    first, last = start.date(), end.date()
    if first > last:
        raise LakehouseError(f"backfill range is empty: {first} > {last}")
    settings = cli_settings(env, set_)
    lake = existing_lake(settings)
    spark_owned = [t for t in BACKFILLED if ownership.owner(lake, t) == ownership.SPARK]
    if spark_owned:
        raise LakehouseError(
            f"{spark_owned[0]} is written by the spark engine: backfill it with "
            f"`lakehouse spark backfill --from {first} --to {last}`"
        )
    with lineage.job_run(
        settings, "lakehouse.maintenance.backfill", ["bronze.events"], BACKFILLED, lake=lake
    ):
        result = backfill.reprocess(lake, settings.silver, new_run_id(), first, last)
    show_backfill(settings, lake, result, gold, as_json)


BACKFILLED = ["silver.events", "silver.quarantine_events"]


def show_backfill(settings: Settings, lake: Lake, result: BackfillResult, gold: bool, as_json: bool) -> None:
    """A backfill's outcome as `lakehouse maintain backfill` and `lakehouse spark backfill` show
    it, after the gold rebuild when asked; exit 1 when unbalanced or gold failed."""
    built = None
    if gold:
        from lakehouse.gold import build as gold_build
        from lakehouse.gold.dbt import DbtProject

        built = gold_build.build(DbtProject.from_settings(settings), lake).ok
    first, last = result.first, result.last
    rec = result.reconciliation
    payload = {
        "from": str(first),
        "to": str(last),
        "events_before": result.events_before,
        "events_after": result.events_after,
        "quarantined_before": result.quarantined_before,
        "quarantined_after": result.quarantined_after,
        "moved_to_quarantine": result.moved_to_quarantine,
        "rows_in": rec.rows_in,
        "duplicates": rec.duplicates,
        "balanced": rec.balanced,
        "gold_built": built,
    }
    emit(
        as_json,
        payload,
        f"{first}..{last}: silver.events {result.events_before:,} -> {result.events_after:,}, "
        f"quarantine {result.quarantined_before:,} -> {result.quarantined_after:,} "
        f"({rec.rows_in:,} bronze rows in the range, {rec.duplicates:,} duplicates; "
        f"{'balanced' if rec.balanced else 'NOT balanced'})",
    )
    if not rec.balanced or built is False:
        raise typer.Exit(1)


@app.command("reingest")
def reingest_cmd(
    first: Annotated[str, typer.Option("--from", help="first landing file name (path under landing/events)")],
    last: Annotated[
        str, typer.Option("--to", help="last file name, inclusive; a prefix takes every name it starts")
    ],
    env: EnvOpt = None,
    set_: SetOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Read landing files bronze already holds again (a corrected file replaced in landing) and
    replace exactly their rows in bronze.events, in one commit; idempotent. Silver takes the new
    rows on its next run."""
    from lakehouse.bronze import reingest
    from lakehouse.core import lineage
    from lakehouse.core.reconcile import new_run_id

    settings = cli_settings(env, set_)
    lake = existing_lake(settings)
    with lineage.job_run(
        settings, "lakehouse.maintenance.reingest", ["landing/events"], ["bronze.events"], lake=lake
    ):
        result = reingest.reingest(lake, new_run_id(), first, last)
    rec = result.reconciliation
    payload = {
        "files": result.files,
        "rows_before": result.rows_before,
        "rows_after": result.rows_after,
        "balanced": rec is not None and rec.balanced,
    }
    emit(
        as_json,
        payload,
        f"{len(result.files)} landing files re-ingested ({result.files[0]} .. {result.files[-1]}): "
        f"bronze.events rows of them {result.rows_before:,} -> {result.rows_after:,}, one commit",
    )


@app.command("history")
def history_cmd(
    table_: TableArg = None,
    limit: Annotated[int, typer.Option(help="latest N commits", min=1)] = 20,
    env: EnvOpt = None,
    set_: SetOpt = None,
    table: TablesOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """A table's commits: what each added and removed (what `restore --version` can go back to)."""
    from lakehouse.app.render import tables

    lake = existing_lake(cli_settings(env, set_))
    name = _one(lake, table_, table)
    rows = tables.history_rows(lake, name, limit)
    emit(as_json, {"table": name, "history": rows}, tables.history_table(name, rows))
