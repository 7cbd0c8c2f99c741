"""`lakehouse check <layer>`: the data-quality gate of one layer (bronze | silver | gold)."""

from __future__ import annotations

import sys
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from lakehouse.config import load_settings
from lakehouse.quality.gate import LAYERS, GateReport, run_gate, summary_json

app = typer.Typer(
    help="Data-quality gate: run a layer's contracts and dbt tests; non-zero exit when any fails.",
    invoke_without_command=True,
    no_args_is_help=False,
    # a group with no sub-commands: options may follow the LAYER argument (`check silver --all`)
    context_settings={"allow_interspersed_args": True},
)
console = Console(width=None if sys.stdout.isatty() else 160)


def report_table(report: GateReport, all_rows: bool = False) -> Table:
    counts = ", ".join(f"{k} {v}" for k, v in sorted(report.counts().items()))
    verdict = "[green]PASSED[/]" if report.passed else "[red]FAILED[/]"
    table = Table(
        title=f"Quality gate {report.layer}: {verdict} ({counts}; {report.seconds:.1f}s, run {report.run_id})",
        title_justify="left",
        min_width=100,
        caption="\n".join(report.notes) or None,  # e.g. the gold build's test results were reused
        caption_justify="left",
    )
    for col in ("check", "kind", "status", "failures", "message"):
        table.add_column(col, justify="right" if col == "failures" else "left", overflow="fold")
    colour = {"pass": "green", "warn": "yellow", "fail": "red", "error": "red", "skipped": "dim"}
    rows = report.results if all_rows else [r for r in report.results if r.status != "pass"]
    for r in rows:
        table.add_row(
            r.check_name,
            r.kind,
            f"[{colour.get(r.status, 'white')}]{r.status}[/]",
            str(r.failures),
            r.message[:300],
        )
    if not all_rows and not rows:
        table.add_row(f"all {len(report.results)} checks", "", "[green]pass[/]", "0", "")
    return table


@app.callback()
def check(
    layer: Annotated[str, typer.Argument(help="bronze | silver | gold")],
    env: Annotated[str | None, typer.Option("--env", help="environments/<env>/pipeline.yaml")] = None,
    set_: Annotated[list[str] | None, typer.Option("--set", help="override a setting: key=value")] = None,
    all_rows: Annotated[bool, typer.Option("--all", help="list passing checks too")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="print the summary as JSON")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="show dbt's output")] = False,
    rerun: Annotated[
        bool,
        typer.Option("--rerun", help="gold: run the dbt tests even if the last build's results still stand"),
    ] = False,
) -> None:
    """Run the LAYER's contracts and dbt tests; store the results in ops.quality_results."""
    if layer not in LAYERS:
        raise typer.BadParameter(f"choose one of {', '.join(LAYERS)}", param_hint="LAYER")
    overrides: dict[str, Any] = {}
    for item in set_ or []:
        key, sep, value = item.partition("=")
        if not sep:
            raise typer.BadParameter(f"--set needs key=value (got {item!r})")
        overrides[key.strip()] = value.strip()
    settings = load_settings(env, overrides)
    report = run_gate(settings, layer, on_line=console.print if verbose else None, rerun=rerun)
    if as_json:
        typer.echo(summary_json(report))
    else:
        console.print(report_table(report, all_rows))
        if not report.published:
            console.print(
                "[yellow]serving database not reachable: results kept in ops.quality_results (Delta) only[/]"
            )
    if not report.passed:
        console.print(f"[red]quality gate '{layer}' failed: downstream steps must not run[/]")
        raise typer.Exit(1)
