"""`lakehouse services ...`: the local PostgreSQL, S3 server and Kafka broker."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import typer

from lakehouse.app.cli.options import EnvOpt, JsonOpt, SetOpt, cli_settings, console, emit, err_console

if TYPE_CHECKING:
    from rich.table import Table

    from lakehouse.core.settings import Settings

app = typer.Typer(
    help="Local services (PostgreSQL; SeaweedFS for s3:// lakes; the Kafka broker).", no_args_is_help=True
)


def service_rows(current: Settings) -> list[dict[str, Any]]:
    """Every service this state folder holds (configured or started earlier under other settings)."""
    from lakehouse.services import known_services

    return [svc.status().as_dict() for svc in known_services(current)]


def status_table(current: Settings, rows: list[dict[str, Any]] | None = None) -> Table:
    from lakehouse.app.render.tables import name_column, titled

    rows = service_rows(current) if rows is None else rows
    table = titled(f"Local services (state: {current.state_path})")
    for col in ("service", "running", "pid", "address"):
        table.add_column(col, no_wrap=True)
    name_column(table, "detail", words=True)
    for st in rows:
        table.add_row(
            st["name"],
            "[green]yes[/]" if st["running"] else "[red]no[/]",
            str(st["pid"] or "-"),
            st["address"],
            st["detail"],
        )
    return table


def warn_ports(current: Settings) -> None:
    from lakehouse.services import port_warnings

    for line in port_warnings(current):
        err_console.print(f"[yellow]warning:[/] {line}")


@app.command("start")
def start(env: EnvOpt = None, set_: SetOpt = None, as_json: JsonOpt = False) -> None:
    """Start the local services this configuration needs (idempotent); a service that dies at
    start is an error with its last log line."""
    from lakehouse.services import all_services

    current = cli_settings(env, set_)
    warn_ports(current)
    for svc in all_services(current):
        if not as_json:
            console.print(f"starting {svc.name} ...", end="\r")
        svc.start()
    rows = service_rows(current)
    emit(as_json, {"services": rows}, status_table(current, rows))


@app.command("stop")
def stop(env: EnvOpt = None, set_: SetOpt = None, as_json: JsonOpt = False) -> None:
    """Stop every local service this project started in this state folder (idempotent)."""
    from lakehouse.services import known_services

    current = cli_settings(env, set_)
    for svc in reversed(known_services(current)):
        svc.stop()
    rows = service_rows(current)
    emit(as_json, {"services": rows}, status_table(current, rows))


@app.command("status")
def status(env: EnvOpt = None, set_: SetOpt = None, as_json: JsonOpt = False) -> None:
    """Show every local service of this state folder: running or not, where, its log."""
    current = cli_settings(env, set_)
    rows = service_rows(current)
    emit(as_json, {"services": rows}, status_table(current, rows))
