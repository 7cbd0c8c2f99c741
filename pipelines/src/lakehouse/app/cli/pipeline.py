"""The pipeline's own commands: bronze, silver, run, demo, and what the lake holds."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated

import typer

from lakehouse.app.cli import validate
from lakehouse.app.cli.options import (
    AllOpt,
    EnvOpt,
    JsonOpt,
    SetOpt,
    cli_settings,
    console,
    emit,
    existing_lake,
    writable_lake,
)
from lakehouse.app.cli.progress import bars
from lakehouse.app.cli.services import service_rows, status_table

if TYPE_CHECKING:  # pragma: no cover
    from lakehouse.core.reconcile import Reconciliation
    from lakehouse.core.settings import Settings
    from lakehouse.core.storage import Lake

BRONZE_SOURCES = ("events", "postgres")


def register(app: typer.Typer) -> None:
    """Add these commands to the root command line."""
    for name, command in COMMANDS.items():
        app.command(name)(command)


def status(env: EnvOpt = None, set_: SetOpt = None, as_json: JsonOpt = False) -> None:
    """Services, lake location and tables at a glance."""
    from lakehouse.app.render import tables
    from lakehouse.core.storage import Lake

    current = cli_settings(env, set_)
    lake = Lake(current, create=False)
    missing = lake.missing()
    rows = [] if missing else tables.table_rows(lake)
    services = service_rows(current)
    payload = {"services": services, "lake": {"root": current.lake_uri, "problem": missing}, "tables": rows}
    lake_line = f"lake: [bold]{current.lake_uri}[/]" + (f"  [yellow]{missing}[/]" if missing else "")
    shown = [] if missing else [tables.table_counts(lake, rows)]
    emit(as_json, payload, status_table(current, services), lake_line, *shown)


def show_config(env: EnvOpt = None, set_: SetOpt = None) -> None:
    """Print the effective settings as JSON."""
    console.print_json(json.dumps(cli_settings(env, set_).model_dump(mode="json")))


def _sources(values: list[str] | None) -> list[str] | None:
    if values is None:
        return None
    return validate.choices(
        values, BRONZE_SOURCES, "--source", "Kafka reaches bronze with `lakehouse stream consume`"
    )


def _bronze(
    lake: Lake, current: Settings, run_id: str, sources: tuple[str, ...], quiet: bool
) -> list[Reconciliation]:
    """The bronze step on the engine the settings give it (`engines.bronze`)."""
    if current.engines.bronze == "spark":
        from lakehouse.app import spark_jobs
        from lakehouse.app.cli.spark import run_job

        spark_jobs.check_bronze_sources(sources)
        return run_job(current, lambda spark: spark_jobs.bronze(spark, lake, current, run_id, sources))
    from lakehouse.app import jobs

    with bars(quiet=quiet) as b:
        return jobs.bronze(lake, current, run_id, b.hooks, sources)


def _silver(lake: Lake, current: Settings, run_id: str, quiet: bool) -> list[Reconciliation]:
    """The silver step on the engine the settings give it (`engines.silver`)."""
    if current.engines.silver == "spark":
        from lakehouse.app import spark_jobs
        from lakehouse.app.cli.spark import run_job

        return run_job(current, lambda spark: spark_jobs.silver(spark, lake, current, run_id))
    from lakehouse.app import jobs

    with bars(quiet=quiet) as b:
        return jobs.silver(lake, current, run_id, b.hooks)


def bronze(
    env: EnvOpt = None,
    set_: SetOpt = None,
    source: Annotated[
        list[str] | None,
        typer.Option(help="events (landing files) and/or postgres (default both)", callback=_sources),
    ] = None,
    files: Annotated[
        bool,
        typer.Option(
            "--files", help="only list the landing files: state and rows per file (ingests nothing)"
        ),
    ] = False,
    all_rows: AllOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Ingest landing files and the PostgreSQL source into bronze (exactly once)."""
    from lakehouse.app.render import tables
    from lakehouse.bronze import landing
    from lakehouse.core.reconcile import new_run_id

    current = cli_settings(env, set_)
    if files:
        lake = existing_lake(current)
        fs, base = lake.landing("events")
        rows = tables.landing_rows(lake)
        ignored = landing.list_landing(lake, fs, base).ignored
        emit(as_json, {"files": rows, "ignored": ignored}, tables.landing_table(rows, ignored))
        return
    lake = writable_lake(current)
    sources = tuple(source or BRONZE_SOURCES)
    recs = _bronze(lake, current, new_run_id(), sources, quiet=as_json)
    skipped: list[tuple[str, str]] = []
    if "events" in sources:
        fs, base = lake.landing("events")
        skipped = [(f.name, f.skip or "") for f in landing.list_landing(lake, fs, base).skipped]
    payload = {"reconciliation": tables.reconciliation_rows(recs), "skipped_files": dict(skipped)}
    emit(
        as_json,
        payload,
        tables.reconciliation_table(recs, all_rows=all_rows),
        *([tables.skipped_files(skipped)] if skipped else []),
    )


def silver(
    env: EnvOpt = None, set_: SetOpt = None, all_rows: AllOpt = False, as_json: JsonOpt = False
) -> None:
    """bronze -> silver: validate, quarantine, deduplicate, conform, SCD2, upserts."""
    from lakehouse.app.render import tables
    from lakehouse.core.reconcile import new_run_id

    current = cli_settings(env, set_)
    run_id = new_run_id()
    lake = existing_lake(current)
    recs = _silver(lake, current, run_id, quiet=as_json)
    emit(
        as_json,
        {
            "reconciliation": tables.reconciliation_rows(recs),
            "quarantine": tables.quarantine_rows(lake, [run_id]),
        },
        tables.reconciliation_table(recs, all_rows=all_rows),
        tables.quarantine_reasons(lake, [run_id]),
    )


def run(env: EnvOpt = None, set_: SetOpt = None, all_rows: AllOpt = False, as_json: JsonOpt = False) -> None:
    """bronze then silver, as a scheduler would run them."""
    from lakehouse.app.render import tables
    from lakehouse.core.reconcile import new_run_id

    current = cli_settings(env, set_)
    lake = writable_lake(current)
    run_id = new_run_id()
    recs = _bronze(lake, current, run_id, BRONZE_SOURCES, quiet=as_json)
    recs += _silver(lake, current, run_id, quiet=as_json)
    emit(
        as_json,
        {"reconciliation": tables.reconciliation_rows(recs)},
        tables.reconciliation_table(recs, all_rows=all_rows),
    )


def reconcile(
    env: EnvOpt = None,
    set_: SetOpt = None,
    last: Annotated[int, typer.Option(help="records to show", min=1)] = 20,
    all_rows: AllOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Show the stored reconciliation records (rows in = rows accounted for, per run and source)."""
    from lakehouse.app.render import tables

    rows = tables.stored_reconciliation_rows(existing_lake(cli_settings(env, set_)), last)
    emit(as_json, {"records": rows}, tables.stored_reconciliation_table(rows, all_rows))


def list_tables(env: EnvOpt = None, set_: SetOpt = None, as_json: JsonOpt = False) -> None:
    """Rows, version, files and size of every table of every layer (bronze, silver, gold, ops)."""
    from lakehouse.app.render import tables

    lake = existing_lake(cli_settings(env, set_))
    rows = tables.table_rows(lake)
    emit(as_json, {"lake": lake.root, "tables": rows}, tables.table_counts(lake, rows))


def run_demo(env: EnvOpt = None, set_: SetOpt = None, all_rows: AllOpt = False) -> None:
    """The main job on the embedded default: services, generator, bronze, silver, streaming, gold.
    Run again, it keeps the source database and landing files, applies the next change batches
    and adds a new streaming burst."""
    from lakehouse.app import demo

    demo.run(cli_settings(env, set_), console, bars, all_rows=all_rows)


COMMANDS = {
    "demo": run_demo,
    "status": status,
    "config": show_config,
    "bronze": bronze,
    "silver": silver,
    "run": run,
    "reconcile": reconcile,
    "tables": list_tables,
}
