"""`lakehouse stream broker ...`: the local Kafka broker on 127.0.0.1 (settings.streaming.broker:
Apache Kafka by default, or tansu)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer
from rich.table import Table

from lakehouse.app.cli.options import EnvOpt, SetOpt, cli_settings, console

if TYPE_CHECKING:
    from lakehouse.core.settings import Settings
    from lakehouse.services import Broker

app = typer.Typer(
    help="The local Kafka broker on 127.0.0.1 (Apache Kafka, or tansu: streaming.broker).",
    no_args_is_help=True,
)


def _broker(settings: Settings) -> Broker:
    from lakehouse.services import local_broker
    from lakehouse.services.seaweedfs import LocalSeaweedFS

    if settings.streaming.broker_needs_s3:
        LocalSeaweedFS.from_settings(settings).start()
    return local_broker(settings)


def _service_row(table: Table, svc: Broker) -> None:
    st = svc.status()
    table.add_row(
        st.name, "[green]yes[/]" if st.running else "[red]no[/]", str(st.pid or "-"), st.address, st.detail
    )


def service_table(svc: Broker) -> Table:
    table = Table(title="Kafka broker", title_justify="left")
    for col in ("service", "running", "pid", "address", "detail"):
        table.add_column(col)
    _service_row(table, svc)
    return table


@app.command("start")
def broker_start(env: EnvOpt = None, set_: SetOpt = None) -> None:
    """Start the local broker and create the topic (idempotent)."""
    settings = cli_settings(env, set_)
    svc = _broker(settings)
    svc.start()
    console.print(service_table(svc))


@app.command("stop")
def broker_stop(env: EnvOpt = None, set_: SetOpt = None) -> None:
    """Stop the local broker this project started (idempotent)."""
    from lakehouse.services import local_broker

    svc = local_broker(cli_settings(env, set_))
    svc.stop()
    console.print(service_table(svc))


@app.command("status")
def broker_status(env: EnvOpt = None, set_: SetOpt = None) -> None:
    """Is the local broker running, and where."""
    from lakehouse.services import local_broker

    console.print(service_table(local_broker(cli_settings(env, set_))))
