"""`lakehouse gold ...`: build the gold layer with dbt, publish it to PostgreSQL, show KPIs,
write the HTML report. Registered by the main CLI as `lakehouse gold`."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from lakehouse.app.cli.options import EnvOpt, JsonOpt, SetOpt, cli_settings, console, emit, existing_lake
from lakehouse.app.cli.progress import bars

if TYPE_CHECKING:
    from lakehouse.core.settings import Settings

app = typer.Typer(
    help="Gold layer: dbt build over silver, publication to PostgreSQL gold.*, KPIs, HTML report.",
    no_args_is_help=True,
)
VerboseOpt = Annotated[bool, typer.Option("--verbose", "-v", help="stream dbt's output")]


class IndirectSelection(StrEnum):
    eager = "eager"
    buildable = "buildable"
    cautious = "cautious"
    empty = "empty"


def _dbt_line(line: str) -> None:
    console.print(line, highlight=False, markup=False)


@app.command("build")
def build_cmd(
    env: EnvOpt = None,
    set_: SetOpt = None,
    select: Annotated[list[str] | None, typer.Option("--select", "-s", help="dbt node selection")] = None,
    indirect_selection: Annotated[
        IndirectSelection | None,
        typer.Option(
            "--indirect-selection",
            help="which tests of the selection run (dbt's flag); buildable: only tests whose other "
            "parents are upstream of the selection (one task per model builds its siblings later)",
        ),
    ] = None,
    verbose: VerboseOpt = False,
) -> None:
    """dbt build (seeds, models with enforced contracts, data and unit tests); marts to Delta gold.*."""
    from lakehouse.app.render.gold import gate_table
    from lakehouse.gold import build as gold_build
    from lakehouse.gold.dbt import DbtProject

    settings = cli_settings(env, set_)
    with bars(quiet=verbose) as b:
        result = gold_build.build(
            DbtProject.from_settings(settings),
            existing_lake(settings),
            select=select,
            on_line=_dbt_line if verbose else b.dbt("dbt build"),
            indirect_selection=indirect_selection.value if indirect_selection else None,
        )
    console.print(gate_table(result.report))
    built = sum(1 for r in result.run.results if r.resource_type == "model" and r.status == "success")
    console.print(
        f"dbt build: {built} models in {result.run.seconds:.1f}s; {len(result.tables)} marts exported to Delta gold.*"
    )
    if not result.ok:
        if not verbose:
            console.print("\n".join(result.run.output.splitlines()[-25:]), highlight=False, markup=False)
        # the last line names what failed: a scheduler's failure notice quotes it
        failed = [r.name for r in result.run.failed] or [r.check_name for r in result.report.blocking]
        names = ", ".join(failed[:5]) + (" ..." if len(failed) > 5 else "")
        console.print(
            f"[red]gold build failed ({names or 'dbt exit ' + str(result.run.returncode)}): "
            "nothing downstream (publish, report) may run[/]",
            soft_wrap=True,
        )
        raise typer.Exit(1)


@app.command("publish")
def publish_cmd(env: EnvOpt = None, set_: SetOpt = None, as_json: JsonOpt = False) -> None:
    """Copy the marts to PostgreSQL schema gold (atomic swap; read-only BI role)."""
    from rich.table import Table

    from lakehouse.gold import publish as gold_publish
    from lakehouse.gold.dbt import DbtProject

    settings = cli_settings(env, set_)
    result = gold_publish.publish(DbtProject.from_settings(settings))
    table = Table(
        title=f"Published to {_where(settings, result.schema)} in {result.seconds:.1f}s", title_justify="left"
    )
    table.add_column("table")
    table.add_column("rows", justify="right")
    for name, rows in result.tables.items():
        table.add_row(f"{result.schema}.{name}", f"{rows:,}")
    readers = ", ".join(result.readers)
    payload = {
        "where": _where(settings, result.schema),
        "tables": result.tables,
        "seconds": result.seconds,
        "bi_role": result.readers[0] if result.readers else None,
        "readers": list(result.readers),
    }
    emit(as_json, payload, table, f"read by: {readers} (SELECT on {result.schema}.* only)")


@app.command("run")
def run_cmd(env: EnvOpt = None, set_: SetOpt = None, verbose: VerboseOpt = False) -> None:
    """Gate silver, build gold, gate gold, publish: stops at the first failure (non-zero exit)."""
    from lakehouse.app.render.gold import gate_table, kpi_table
    from lakehouse.gold import build as gold_build
    from lakehouse.gold import gate
    from lakehouse.gold import kpis as gold_kpis
    from lakehouse.gold import publish as gold_publish
    from lakehouse.gold.dbt import DbtProject

    settings = cli_settings(env, set_)
    lake = existing_lake(settings)
    project = DbtProject.from_settings(settings)
    with bars(quiet=verbose) as b:
        b.current("gate silver", "contracts")
        silver = gate.run_gate(
            project, "silver", lake, on_line=_dbt_line if verbose else b.dbt("gate silver")
        )
    console.print(gate_table(silver))
    gate.enforce(silver)
    with bars(quiet=verbose) as b:
        result = gold_build.build(project, lake, on_line=_dbt_line if verbose else b.dbt("dbt build"))
    console.print(gate_table(result.report))
    gate.enforce(result.report)
    report = gate.run_gate(project, "gold", lake)
    console.print(gate_table(report))
    gate.enforce(report)
    published = gold_publish.publish(project)
    console.print(
        f"published {len(published.tables)} marts to {_where(settings, published.schema)} in {published.seconds:.1f}s"
    )
    console.print(kpi_table(gold_kpis.headline(settings.postgres), _where(settings, published.schema)))


def _where(settings: Settings, schema: str = "gold") -> str:
    return f"PostgreSQL {settings.postgres.serving_db}.{schema}"


@app.command("kpis")
def kpis_cmd(env: EnvOpt = None, set_: SetOpt = None, as_json: JsonOpt = False) -> None:
    """Headline KPIs, read from PostgreSQL gold.* as a dashboard reads them, each with its source."""
    from lakehouse.app.render.gold import kpi_rows, kpi_table
    from lakehouse.gold import kpis as gold_kpis

    settings = cli_settings(env, set_)
    k = gold_kpis.headline(settings.postgres)
    payload = {
        "read_from": _where(settings),
        "kpis": [{"kpi": n, "value": v, "counted_from": src} for n, v, src in kpi_rows(k)],
        "summary": k.summary,
    }
    emit(as_json, payload, kpi_table(k, _where(settings)))


@app.command("report")
def report_cmd(
    env: EnvOpt = None,
    set_: SetOpt = None,
    out: Annotated[Path | None, typer.Option("--out", help="where to write the HTML file")] = None,
) -> None:
    """Write the static HTML report (inline SVG charts, works offline)."""
    from lakehouse.app.render import report_html as gold_report

    path = gold_report.write(cli_settings(env, set_), out)
    console.print(f"report written: {path}")


@app.command("docs")
def docs_cmd(env: EnvOpt = None, set_: SetOpt = None) -> None:
    """dbt docs generate: the documentation site with lineage (target/index.html)."""
    from lakehouse.gold.dbt import DbtProject

    settings = cli_settings(env, set_)
    project = DbtProject.from_settings(settings)
    run = project.run(existing_lake(settings), ["docs", "generate"])
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
    from lakehouse.gold.dbt import DbtProject

    settings = cli_settings(env, set_)
    run = DbtProject.from_settings(settings).run(existing_lake(settings), args, _dbt_line)
    raise typer.Exit(run.returncode)
