"""`lakehouse generate ...`: generator events as landing files, the source database, change batches."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated

import typer

from lakehouse.app.cli.options import EnvOpt, JsonOpt, SetOpt, cli_settings, console, emit, writable_lake
from lakehouse.app.cli.progress import bars

if TYPE_CHECKING:
    from lakehouse.core.settings import Settings

app = typer.Typer(help="Generate events and the source database.", no_args_is_help=True)


@app.command("events")
def events(
    env: EnvOpt = None,
    set_: SetOpt = None,
    as_json: JsonOpt = False,
    start: Annotated[
        datetime | None,
        typer.Option(
            "--from", help="instead: one day of events per date from this day", formats=["%Y-%m-%d"]
        ),
    ] = None,
    end: Annotated[
        datetime | None, typer.Option("--to", help="... to this day, inclusive", formats=["%Y-%m-%d"])
    ] = None,
) -> None:
    """Write generator events as NDJSON files into <lake>/landing/events/ (a complete set made
    with the same settings is reused, not written again). With --from/--to: one day of events
    (maintenance.backfill_events_per_day) per date under landing/events/backfill/<date>/,
    a day already landed left alone; bronze picks them up on its next run."""
    from lakehouse.app import jobs
    from lakehouse.app.render.tables import counter_table

    current = cli_settings(env, set_)
    if start is not None or end is not None:
        _land_days(current, start, end, as_json)
        return
    with bars(quiet=as_json) as b:
        counts, reused = jobs.land_events(writable_lake(current), current, b.hooks)
    g = current.generator
    note = f"landing files of seed {g.seed} ({g.event_files} files, {g.events:,} events) exist: reused"
    emit(
        as_json,
        {"reused": reused, "counts": dict(counts)},
        *([note] if reused else []),
        counter_table("Generated lines" + (" (when they were written)" if reused else ""), counts),
    )


@app.command("source")
def source(env: EnvOpt = None, set_: SetOpt = None) -> None:
    """(Re)create and bulk-load the PostgreSQL source database with COPY. This drops what is there,
    change batches included (a lake built from the old data no longer matches it)."""
    from lakehouse.app import jobs
    from lakehouse.generator import source_db

    current = cli_settings(env, set_)
    before = source_db.state(current.postgres.source_dsn)
    summary = jobs.generate_source(current)
    console.print(f"loaded {summary}")
    if before is not None and before.batches:
        console.print(
            f"[yellow]replaced a source with change batches {', '.join(map(str, before.batches))} applied: "
            "bronze and silver still hold those changes[/]"
        )


@app.command("changes")
def changes(
    batch: Annotated[int, typer.Option(help="change batch number (1, 2, ...)", min=1)],
    env: EnvOpt = None,
    set_: SetOpt = None,
) -> None:
    """Apply change batch N to the source database (once; reapplying is a no-op)."""
    from lakehouse.app import jobs

    summary = jobs.apply_changes(cli_settings(env, set_), batch)
    console.print(summary or f"change batch {batch} was applied before; nothing to do")


def _land_days(settings: Settings, start: datetime | None, end: datetime | None, as_json: bool) -> None:
    from lakehouse.core import lineage
    from lakehouse.generator import landing

    if start is None or end is None:
        raise typer.BadParameter("give both --from and --to", param_hint="--from/--to")
    lake = writable_lake(settings)
    with lineage.job_run(settings, "lakehouse.generate.days", [], ["landing/events"], lake=lake):
        days = landing.land_days(
            lake, settings.generator, settings.maintenance.backfill_events_per_day, start.date(), end.date()
        )
    lines = [
        f"{day}: {'already landed' if parts == 0 else f'{parts} file(s) landed'}"
        for day, parts in days.items()
    ]
    emit(as_json, {"days": days}, *lines)
