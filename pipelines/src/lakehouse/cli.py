"""`lakehouse` — the command line of the pipeline package."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from lakehouse import demo, jobs, memory, report
from lakehouse.config import Settings, settings_from_cli
from lakehouse.errors import LakehouseError
from lakehouse.plugins import import_optional
from lakehouse.reconcile import new_run_id
from lakehouse.services import all_services
from lakehouse.storage import Lake

app = typer.Typer(
    help="Ampere Lakehouse pipelines: generator, bronze, silver on the embedded engine.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
services_app = typer.Typer(
    help="Local services (PostgreSQL; SeaweedFS for s3:// lakes).", no_args_is_help=True
)
generate_app = typer.Typer(help="Generate events and the source database.", no_args_is_help=True)
app.add_typer(services_app, name="services")
app.add_typer(generate_app, name="generate")
# Wide enough for the summary tables when output is a pipe or a CI log.
console = Console(width=None if sys.stdout.isatty() else 160)
EnvOpt = Annotated[
    str | None, typer.Option("--env", help="environments/<env>/pipeline.yaml (default: local)")
]
SetOpt = Annotated[
    list[str] | None, typer.Option("--set", help="override a setting: --set generator.events=5000")
]

# Sub-commands that other parts of the package contribute (registered when present).
PLUGINS = {
    "gold": "lakehouse.gold.cli",
    "check": "lakehouse.quality.cli",
    "stream": "lakehouse.streaming.cli",
    "maintain": "lakehouse.maintenance.cli",
}


def _settings(env: str | None, sets: list[str] | None) -> Settings:
    return settings_from_cli(env, sets)


class Bars:
    """Rich progress bars keyed by task name, fed by jobs.Hooks."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.tasks: dict[str, Any] = {}

    def plan(self, name: str, total: int) -> None:
        if name in self.tasks:
            self.progress.update(self.tasks[name], total=total)
        else:
            self.tasks[name] = self.progress.add_task(name, total=max(total, 1))

    def advance(self, name: str, n: int) -> None:
        if name not in self.tasks:
            self.plan(name, n)
        self.progress.advance(self.tasks[name], n)

    def finish(self) -> None:
        for task in self.tasks.values():
            t = self.progress.tasks[task]
            self.progress.update(task, total=max(t.completed, 1), completed=max(t.completed, 1))

    @property
    def hooks(self) -> jobs.Hooks:
        return jobs.Hooks(plan=self.plan, advance=self.advance)


@contextmanager
def bars() -> Iterator[Bars]:
    progress = Progress(
        TextColumn("[bold blue]{task.description:<16}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    )
    with progress:
        b = Bars(progress)
        yield b
        b.finish()


# -- services -------------------------------------------------------------------------------------
def _status_table(settings: Settings) -> Table:
    table = Table(title=f"Local services (state: {settings.state_path})", title_justify="left")
    for col in ("service", "running", "pid", "address", "detail"):
        table.add_column(col)
    for svc in all_services(settings):
        st = svc.status()
        table.add_row(
            st.name,
            "[green]yes[/]" if st.running else "[red]no[/]",
            str(st.pid or "-"),
            st.address,
            st.detail,
        )
    return table


@services_app.command("start")
def services_start(env: EnvOpt = None, set_: SetOpt = None) -> None:
    """Start the local services (idempotent)."""
    settings = _settings(env, set_)
    for svc in all_services(settings):
        svc.start()
    console.print(_status_table(settings))


@services_app.command("stop")
def services_stop(env: EnvOpt = None, set_: SetOpt = None) -> None:
    """Stop the local services this project started (idempotent)."""
    settings = _settings(env, set_)
    for svc in reversed(all_services(settings)):
        svc.stop()
    console.print(_status_table(settings))


@services_app.command("status")
def services_status(env: EnvOpt = None, set_: SetOpt = None) -> None:
    """Show which local services run where."""
    console.print(_status_table(_settings(env, set_)))


@app.command("status")
def status(env: EnvOpt = None, set_: SetOpt = None) -> None:
    """Services, lake location and tables at a glance."""
    settings = _settings(env, set_)
    console.print(_status_table(settings))
    console.print(f"lake: [bold]{settings.lake_uri}[/]")
    console.print(report.table_counts(Lake(settings)))


@app.command("config")
def show_config(env: EnvOpt = None, set_: SetOpt = None) -> None:
    """Print the effective settings as JSON."""
    settings = _settings(env, set_)
    console.print_json(json.dumps(settings.model_dump(mode="json")))


# -- generator ------------------------------------------------------------------------------------
@generate_app.command("events")
def generate_events(env: EnvOpt = None, set_: SetOpt = None) -> None:
    """Write generator events as NDJSON files into <lake>/landing/events/."""
    settings = _settings(env, set_)
    with bars() as b:
        counts = jobs.generate_events(Lake(settings), settings, b.hooks)
    console.print(_counter_table("Generated lines", counts))


@generate_app.command("source")
def generate_source(env: EnvOpt = None, set_: SetOpt = None) -> None:
    """(Re)create and bulk-load the PostgreSQL source database with COPY."""
    settings = _settings(env, set_)
    summary = jobs.generate_source(settings)
    console.print(f"loaded {summary}")


@generate_app.command("changes")
def generate_changes(
    batch: Annotated[int, typer.Option(help="change batch number (1, 2, ...)")],
    env: EnvOpt = None,
    set_: SetOpt = None,
) -> None:
    """Apply change batch N to the source database (once; reapplying is a no-op)."""
    settings = _settings(env, set_)
    summary = jobs.apply_changes(settings, batch)
    console.print(summary or f"change batch {batch} was applied before; nothing to do")


def _counter_table(title: str, counts: dict[str, int]) -> Table:
    table = Table(title=title, title_justify="left")
    table.add_column("kind")
    table.add_column("count", justify="right")
    for key, value in sorted(counts.items(), key=lambda kv: -kv[1]):
        table.add_row(key, f"{value:,}")
    return table


# -- layers ---------------------------------------------------------------------------------------
@app.command("bronze")
def bronze_cmd(
    env: EnvOpt = None,
    set_: SetOpt = None,
    source: Annotated[list[str] | None, typer.Option(help="events and/or postgres (default both)")] = None,
) -> None:
    """Ingest landing files and the PostgreSQL source into bronze (exactly once)."""
    settings = _settings(env, set_)
    sources = tuple(source or ("events", "postgres"))
    with bars() as b:
        recs = jobs.bronze(Lake(settings), settings, new_run_id(), b.hooks, sources)
    console.print(report.reconciliation_table(recs))


@app.command("silver")
def silver_cmd(env: EnvOpt = None, set_: SetOpt = None) -> None:
    """bronze -> silver: validate, quarantine, deduplicate, conform, SCD2, upserts."""
    settings = _settings(env, set_)
    run_id = new_run_id()
    lake = Lake(settings)
    with bars() as b:
        recs = jobs.silver(lake, settings, run_id, b.hooks)
    console.print(report.reconciliation_table(recs))
    console.print(report.quarantine_reasons(lake, [run_id]))


@app.command("run")
def run_cmd(env: EnvOpt = None, set_: SetOpt = None) -> None:
    """bronze then silver, as a scheduler would run them."""
    settings = _settings(env, set_)
    lake = Lake(settings)
    run_id = new_run_id()
    with bars() as b:
        recs = jobs.bronze(lake, settings, run_id, b.hooks) + jobs.silver(lake, settings, run_id, b.hooks)
    console.print(report.reconciliation_table(recs))


@app.command("reconcile")
def reconcile_cmd(
    env: EnvOpt = None, set_: SetOpt = None, last: Annotated[int, typer.Option(help="rows to show")] = 20
) -> None:
    """Show the stored reconciliation records (rows in = rows accounted for, per run and source)."""
    console.print(report.stored_reconciliation_table(Lake(_settings(env, set_)), last))


@app.command("tables")
def tables_cmd(env: EnvOpt = None, set_: SetOpt = None) -> None:
    """Rows, version and files of every table."""
    console.print(report.table_counts(Lake(_settings(env, set_))))


@app.command("demo")
def demo_cmd(env: EnvOpt = None, set_: SetOpt = None) -> None:
    """The main job on the embedded default: services, generator, bronze, silver, summary."""
    demo.run(_settings(env, set_), console, bars)


def _register_plugins() -> None:
    for name, module in PLUGINS.items():
        mod = import_optional(module)
        if mod is not None:
            app.add_typer(mod.app, name=name)


def main() -> None:
    memory.cap_arenas()
    _register_plugins()
    try:
        app()
    except LakehouseError as exc:
        console.print(f"[red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        sys.exit(2)
    except KeyboardInterrupt:
        console.print("[yellow]interrupted[/]")
        sys.exit(130)


if __name__ == "__main__":
    main()
