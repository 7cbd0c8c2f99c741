"""`lakehouse gold ...`: build the gold layer with dbt, publish it to PostgreSQL, show KPIs,
write the HTML report. Registered by the main CLI as `lakehouse gold`."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from lakehouse.config import Settings, settings_from_cli
from lakehouse.gold import build as gold_build
from lakehouse.gold import kpis as gold_kpis
from lakehouse.gold import publish as gold_publish
from lakehouse.gold import report as gold_report
from lakehouse.gold.dbt import DbtProject
from lakehouse.quality import gate
from lakehouse.quality.cli import report_table
from lakehouse.storage import Lake

app = typer.Typer(
    help="Gold layer: dbt build over silver, publication to PostgreSQL gold.*, KPIs, HTML report.",
    no_args_is_help=True,
)
console = Console(width=None if sys.stdout.isatty() else 160)
EnvOpt = Annotated[
    str | None, typer.Option("--env", help="environments/<env>/pipeline.yaml (default: local)")
]
SetOpt = Annotated[
    list[str] | None, typer.Option("--set", help="override a setting: --set postgres.port=5433")
]
VerboseOpt = Annotated[bool, typer.Option("--verbose", "-v", help="stream dbt's output")]


def _settings(env: str | None, sets: list[str] | None) -> Settings:
    return settings_from_cli(env, sets)


def _dbt_line(line: str) -> None:
    console.print(line, highlight=False, markup=False)


def kpi_table(k: gold_kpis.Kpis) -> Table:
    table = Table(title="Headline KPIs (PostgreSQL gold.*)", title_justify="left")
    table.add_column("KPI")
    table.add_column("value", justify="right")
    for name, value in k.rows():
        table.add_row(name, value)
    return table


@app.command("build")
def build_cmd(
    env: EnvOpt = None,
    set_: SetOpt = None,
    select: Annotated[list[str] | None, typer.Option("--select", "-s", help="dbt node selection")] = None,
    verbose: VerboseOpt = False,
) -> None:
    """dbt build (seeds, models with enforced contracts, data and unit tests); marts to Delta gold.*."""
    settings = _settings(env, set_)
    result = gold_build.build(settings, select=select, on_line=_dbt_line if verbose else None)
    console.print(report_table(result.report))
    built = sum(1 for r in result.run.results if r.resource_type == "model" and r.status == "success")
    console.print(
        f"dbt build: {built} models in {result.run.seconds:.1f}s; {len(result.tables)} marts exported to Delta gold.*"
    )
    if not result.ok:
        console.print("[red]gold build failed: nothing downstream (publish, report) may run[/]")
        if not verbose:
            console.print("\n".join(result.run.output.splitlines()[-25:]), highlight=False, markup=False)
        raise typer.Exit(1)


@app.command("publish")
def publish_cmd(env: EnvOpt = None, set_: SetOpt = None) -> None:
    """Copy the marts to PostgreSQL schema gold (atomic swap; read-only BI role)."""
    settings = _settings(env, set_)
    result = gold_publish.publish(settings)
    table = Table(
        title=f"Published to PostgreSQL {settings.postgres.serving_db}.{result.schema} in {result.seconds:.1f}s",
        title_justify="left",
    )
    table.add_column("table")
    table.add_column("rows", justify="right")
    for name, rows in result.tables.items():
        table.add_row(f"gold.{name}", f"{rows:,}")
    console.print(table)
    console.print(f"BI role: {gold_publish.bi_role()} (SELECT on gold.* only, read-only transactions)")


@app.command("run")
def run_cmd(env: EnvOpt = None, set_: SetOpt = None, verbose: VerboseOpt = False) -> None:
    """Gate silver, build gold, gate gold, publish: stops at the first failure (non-zero exit)."""
    settings = _settings(env, set_)
    lake = Lake(settings)
    silver = gate.run_gate(settings, "silver", lake)
    console.print(report_table(silver))
    gate.enforce(silver)
    result = gold_build.build(settings, lake, on_line=_dbt_line if verbose else None)
    gate.enforce(result.report)
    report = gate.run_gate(settings, "gold", lake)
    console.print(report_table(report))
    gate.enforce(report)
    published = gold_publish.publish(settings)
    console.print(f"published {len(published.tables)} marts to PostgreSQL gold in {published.seconds:.1f}s")
    console.print(kpi_table(gold_kpis.headline(settings)))


@app.command("kpis")
def kpis_cmd(env: EnvOpt = None, set_: SetOpt = None) -> None:
    """Headline KPIs, read from PostgreSQL gold.* as a dashboard reads them."""
    console.print(kpi_table(gold_kpis.headline(_settings(env, set_))))


@app.command("report")
def report_cmd(
    env: EnvOpt = None,
    set_: SetOpt = None,
    out: Annotated[Path | None, typer.Option("--out", help="where to write the HTML file")] = None,
) -> None:
    """Write the static HTML report (inline SVG charts, works offline)."""
    path = gold_report.write(_settings(env, set_), out)
    console.print(f"report written: {path}")


@app.command("docs")
def docs_cmd(env: EnvOpt = None, set_: SetOpt = None) -> None:
    """dbt docs generate: the documentation site with lineage (target/index.html)."""
    settings = _settings(env, set_)
    project = DbtProject.from_settings(settings)
    run = project.run(Lake(settings), ["docs", "generate"])
    if run.returncode != 0:
        console.print(run.output, highlight=False, markup=False)
        raise typer.Exit(1)
    console.print(f"dbt docs: {project.target_path / 'index.html'}")


@app.command("dbt")
def dbt_cmd(
    args: Annotated[list[str], typer.Argument(help="arguments for dbt, after --: lakehouse gold dbt -- ls")],
    env: EnvOpt = None,
    set_: SetOpt = None,
) -> None:
    """Run any dbt command with this lake's environment (e.g. `lakehouse gold dbt -- ls`)."""
    settings = _settings(env, set_)
    run = DbtProject.from_settings(settings).run(Lake(settings), args, _dbt_line)
    raise typer.Exit(run.returncode)
