"""`lakehouse check <layer>`: the data-quality gate of one layer (bronze | silver | gold), and
`lakehouse check sources`: the independent reconciliation (counts from the sources themselves)."""

from __future__ import annotations

from typing import Annotated

import typer

from lakehouse.app.cli import validate
from lakehouse.app.cli.options import EnvOpt, JsonOpt, SetOpt, cli_settings, console, existing_lake
from lakehouse.app.cli.progress import bars

LAYERS = ("bronze", "silver", "gold")  # the gates of lakehouse.gold.gate

app = typer.Typer(
    help="Data-quality gate: run a layer's contracts and dbt tests; non-zero exit when any fails.",
    invoke_without_command=True,
    no_args_is_help=False,
    # a group with no sub-commands: options may follow the LAYER argument (`check silver --all`)
    context_settings={"allow_interspersed_args": True},
)


@app.callback()
def check(
    layer: Annotated[str, typer.Argument(help="bronze | silver | gold | sources")],
    env: EnvOpt = None,
    set_: SetOpt = None,
    all_rows: Annotated[bool, typer.Option("--all", help="list passing checks too")] = False,
    as_json: JsonOpt = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="show dbt's output")] = False,
    rerun: Annotated[
        bool,
        typer.Option("--rerun", help="gold: run the dbt tests even if the last build's results still stand"),
    ] = False,
) -> None:
    """Run the LAYER's contracts and dbt tests; store the results in ops.quality_results."""
    validate.choices([layer], (*LAYERS, "sources"), "LAYER")
    if layer == "sources":
        _sources(env, set_, as_json)
        return
    from lakehouse.app.render.gold import gate_table
    from lakehouse.gold.dbt import DbtProject
    from lakehouse.gold.gate import run_gate, summary_json

    current = cli_settings(env, set_)
    lake = existing_lake(current)
    with bars(quiet=verbose or as_json) as b:
        b.current(f"gate {layer}", "contracts")
        report = run_gate(
            DbtProject.from_settings(current),
            layer,
            lake,
            on_line=(lambda line: console.print(line, highlight=False, markup=False))
            if verbose
            else b.dbt(f"gate {layer}"),
            rerun=rerun,
        )
    if as_json:
        typer.echo(summary_json(report))
    else:
        console.print(gate_table(report, all_rows))
        if not report.published:
            console.print(
                "[yellow]serving database not reachable: results kept in ops.quality_results (Delta) only[/]"
            )
    if not report.passed:
        bad = [r.check_name for r in report.blocking]
        names = ", ".join(bad[:5]) + (" ..." if len(bad) > 5 else "")
        console.print(
            f"[red]quality gate '{layer}' failed ({names}): downstream steps must not run[/]", soft_wrap=True
        )
        raise typer.Exit(1)


def _sources(env: str | None, set_: list[str] | None, as_json: bool) -> None:
    """Landing lines per file, Kafka offsets per partition and PostgreSQL rows per updated_at
    window against bronze, bronze rows against silver + quarantine +
    duplicates, counted from the files and tables; stored in ops.source_audit."""
    import dataclasses
    import json

    from rich.table import Table

    from lakehouse.app import source_audit
    from lakehouse.core.reconcile import new_run_id

    current = cli_settings(env, set_)
    lake = existing_lake(current)
    results = source_audit.audit(
        lake, new_run_id(), streaming=current.streaming, source_dsn=current.postgres.source_dsn
    )
    if as_json:
        typer.echo(json.dumps([dataclasses.asdict(r) | {"ok": r.ok} for r in results]))
    else:
        table = Table(title="Independent reconciliation", title_justify="left")
        for col in ("check", "source", "target", "expected", "found", "lost", "duplicated", "detail"):
            table.add_column(
                col,
                overflow="fold",
                justify="right" if col in ("expected", "found", "lost", "duplicated") else "left",
            )
        for r in results:
            table.add_row(
                r.check_name,
                r.source,
                r.target,
                f"{r.expected:,}",
                f"{r.found:,}",
                str(r.lost),
                str(r.duplicated),
                r.detail,
            )
        console.print(table)
    if not all(r.ok for r in results):
        console.print("[red]independent reconciliation failed: rows lost or repeated[/]")
        raise typer.Exit(1)
