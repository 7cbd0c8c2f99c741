"""What every command shares: the consoles, `--env` / `--set` / `--json`, the settings they
select, and the lake those settings name.

The command modules import the engines (Delta, DuckDB, Arrow, PostgreSQL, Kafka, S3) inside
their commands, not at the top: `--help`, a bad argument or a bad setting is then answered in a
fraction of a second, without loading what the command would have used."""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console, RenderableType

from lakehouse.core.errors import ConfigError
from lakehouse.core.settings import Settings, settings_from_cli

if TYPE_CHECKING:
    from lakehouse.core.storage import Lake

# Width for output that reaches no terminal and has no COLUMNS (a CI log, a file).
PIPED_WIDTH = 120


def _width() -> int | None:
    """None lets rich measure: the terminal's width (of stdout, stdin or stderr, so `| tee` keeps
    it) or COLUMNS; only output that reaches no terminal and has no COLUMNS gets PIPED_WIDTH."""
    if os.environ.get("COLUMNS", "").strip().isdigit():
        return None
    for fd in (1, 0, 2):
        try:
            if os.get_terminal_size(fd).columns > 0:
                return None
        except OSError:
            continue
    return PIPED_WIDTH


console = Console(width=_width())
# errors and warnings: one line each, never wrapped
err_console = Console(stderr=True, width=_width(), soft_wrap=True, highlight=False)

EnvOpt = Annotated[
    str | None, typer.Option("--env", help="environments/<env>/pipeline.yaml (default: local)")
]
SetOpt = Annotated[
    list[str] | None, typer.Option("--set", help="override a setting: --set generator.events=5000")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="print the result as one JSON document (for scripts)")]
AllOpt = Annotated[bool, typer.Option("--all", help="also show rows with nothing in them")]


def cli_settings(env: str | None, sets: list[str] | None) -> Settings:
    """The settings a command runs with: `--env NAME` plus repeated `--set dotted.key=value`."""
    return settings_from_cli(env, sets)


def existing_lake(settings: Settings) -> Lake:
    """The lake of a command that reads it: a lake root that does not exist is an error, not an
    empty lake (commands that write create it)."""
    from lakehouse.core.storage import Lake

    lake = Lake(settings, create=False)
    problem = lake.missing()
    if problem:
        raise ConfigError(problem)
    return lake


def writable_lake(settings: Settings) -> Lake:
    """The lake of a command that writes it: a local root is created; an S3 bucket must exist."""
    from lakehouse.core.storage import Lake

    lake = Lake(settings)
    problem = lake.missing() if settings.is_s3 else None
    if problem:
        raise ConfigError(problem)
    return lake


def emit(as_json: bool, payload: Any, *renderables: RenderableType) -> None:
    """`--json`: the payload as one JSON document on stdout; otherwise the renderables."""
    if as_json:
        typer.echo(json.dumps(payload, default=str))
        return
    for item in renderables:
        console.print(item)
