"""`lakehouse serve`, `lakehouse token`, `lakehouse snapshot`, `lakehouse sql`: reading the lakehouse.

lakehouse serve [--port N] [--workers N]       the read-only HTTP API (lakehouse.serving.server)
lakehouse token create NAME | list | revoke NAME
lakehouse snapshot [--table layer.name ...]     Parquet snapshots of silver and gold + manifest
lakehouse sql ["select ..."] [--format table|csv|json] [--as-of TIME] [--version table=N]
"""

from __future__ import annotations

import json
import os
import readline  # noqa: F401  (line editing and history for the interactive shell's input())
import sys
from datetime import UTC, datetime
from typing import Annotated

import psycopg
import typer
from rich.table import Table

from lakehouse.app.cli.options import EnvOpt, JsonOpt, SetOpt, cli_settings, console, err_console
from lakehouse.core.errors import ConfigError, LakehouseError
from lakehouse.core.storage import Lake
from lakehouse.services.process import port_in_use
from lakehouse.serving import database, snapshots, tokens
from lakehouse.serving.shell import OUTPUTS, LakeShell, Result, SqlError, render_csv, render_json

token_app = typer.Typer(
    help="Read-only API tokens of `lakehouse serve` (stored hashed).", no_args_is_help=True
)
TABLE_ROWS = 1000  # rows the table output shows; csv and json print every row


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
    app.add_typer(token_app, name="token")
    app.command("snapshot")(snapshot)
    app.command("sql")(sql)


def serve(
    env: EnvOpt = None,
    set_: SetOpt = None,
    port: Annotated[int | None, typer.Option(help="port (default serving.port)")] = None,
    workers: Annotated[int | None, typer.Option(help="server processes (default serving.workers)")] = None,
) -> None:
    """The read-only HTTP API over gold, the speed layer and the snapshots (OpenAPI at /openapi.json)."""
    import uvicorn

    from lakehouse.serving.server import SETTINGS_ENV

    overrides = list(set_ or [])
    overrides += [f"serving.port={port}"] if port is not None else []
    overrides += [f"serving.workers={workers}"] if workers is not None else []
    settings = cli_settings(env, overrides)
    s = settings.serving
    done = database.prepare(settings.postgres)
    if port_in_use(s.port, s.host):
        raise ConfigError(f"setting 'serving.port': {s.host}:{s.port} is busy (pick another with --port)")
    if not done["gold_published"]:
        console.print("[yellow]no gold publication yet: only the speed layer's datasets are served[/]")
    if s.auth == "token":
        with psycopg.connect(settings.postgres.serving_dsn, autocommit=True) as conn:
            active = [t for t in tokens.list_tokens(conn) if t.revoked_at is None]
        if not active:
            console.print("[yellow]no API token yet: create one with `lakehouse token create NAME`[/]")
    os.environ[SETTINGS_ENV] = settings.model_dump_json()
    console.print(
        f"serving http://{s.host}:{s.port}  (OpenAPI /openapi.json, {s.workers} worker(s), auth {s.auth})"
    )
    uvicorn.run(
        "lakehouse.serving.server:create_app",
        factory=True,
        host=s.host,
        port=s.port,
        workers=s.workers,
        loop="uvloop",
        http="httptools",
        access_log=False,
        log_level="warning",
        timeout_graceful_shutdown=5,
    )


def _token_conn(env: str | None, set_: list[str] | None) -> psycopg.Connection[object]:
    settings = cli_settings(env, set_)
    try:
        return psycopg.connect(settings.postgres.serving_dsn, autocommit=True, connect_timeout=10)
    except psycopg.OperationalError as exc:
        raise LakehouseError(
            f"serving database {settings.postgres.serving_db}: {str(exc).splitlines()[0]}"
        ) from None


@token_app.command("create")
def token_create(
    name: Annotated[str, typer.Argument(help="who uses it")], env: EnvOpt = None, set_: SetOpt = None
) -> None:
    """Create a token; it is printed once (only its SHA-256 is stored)."""
    with _token_conn(env, set_) as conn:
        token = tokens.create(conn, name)
    print(token)  # alone on stdout: TOKEN=$(lakehouse token create NAME)
    print(f"token {name!r} created; send it as 'Authorization: Bearer <token>'", file=sys.stderr)


@token_app.command("list")
def token_list(env: EnvOpt = None, set_: SetOpt = None) -> None:
    """Tokens by name, with when they were created and revoked."""
    with _token_conn(env, set_) as conn:
        rows = tokens.list_tokens(conn)
    table = Table("name", "created", "revoked")
    for t in rows:
        table.add_row(
            t.name, f"{t.created_at:%Y-%m-%d %H:%M}", f"{t.revoked_at:%Y-%m-%d %H:%M}" if t.revoked_at else ""
        )
    console.print(table)


@token_app.command("revoke")
def token_revoke(name: str, env: EnvOpt = None, set_: SetOpt = None) -> None:
    """Revoke a token: the API refuses it from its next request on."""
    with _token_conn(env, set_) as conn:
        tokens.revoke(conn, name)
    console.print(f"token {name!r} revoked")


def snapshot(
    env: EnvOpt = None,
    set_: SetOpt = None,
    table: Annotated[
        list[str] | None, typer.Option("--table", help="layer.name (default: every silver and gold table)")
    ] = None,
    json_: JsonOpt = False,
) -> None:
    """Parquet snapshots of the latest silver and gold tables with a manifest, written atomically."""
    settings = cli_settings(env, set_)
    result = snapshots.write(Lake(settings), settings, table)
    if json_:
        print(json.dumps(snapshots.current(settings), indent=1))
        return
    out = Table(
        title=f"snapshot {result.snapshot_id} in {result.seconds:.1f}s: {result.path}", title_justify="left"
    )
    for col in ("table", "Delta version", "rows", "MB", "written"):
        out.add_column(col, justify="left" if col == "table" else "right")
    for t in result.tables:
        out.add_row(
            t["table"],
            str(t["delta_version"]),
            f"{t['rows']:,}",
            f"{t['bytes'] / 1e6:.1f}",
            "reused" if t["reused"] else "yes",
        )
    console.print(out)


def _as_of(raw: str) -> datetime:
    try:
        when = datetime.fromisoformat(raw)
    except ValueError:
        raise ConfigError(f"--as-of: an ISO-8601 time such as 2026-11-02T10:00:00Z (got {raw!r})") from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _versions(items: list[str] | None) -> dict[str, int]:
    out = {}
    for item in items or []:
        name, sep, version = item.partition("=")
        if not sep or not version.strip().isdigit():
            raise ConfigError(f"--version: layer.name=VERSION, e.g. silver.events=3 (got {item!r})")
        out[name.strip()] = int(version)
    return out


def _print(result: Result, fmt: str) -> None:
    if fmt == "csv":
        sys.stdout.write(render_csv(result))
    elif fmt == "json":
        sys.stdout.write(render_json(result) + "\n")
    else:
        table = Table(*result.columns, show_lines=False)
        for row in result.rows[:TABLE_ROWS]:
            table.add_row(*("NULL" if v is None else str(v) for v in row))
        console.print(table)
        more = len(result.rows) - TABLE_ROWS
        console.print(
            f"[dim]{len(result.rows):,} row(s)"
            + (f", the first {TABLE_ROWS} shown (--format csv for all)" if more > 0 else "")
            + "[/]"
        )


def sql(
    query: Annotated[
        str | None, typer.Argument(help="SQL to run; none: interactive (or read from stdin)")
    ] = None,
    env: EnvOpt = None,
    set_: SetOpt = None,
    fmt: Annotated[str, typer.Option("--format", "-f", help="table | csv | json")] = "table",
    as_of: Annotated[str | None, typer.Option("--as-of", help="the lake as of this time (ISO-8601)")] = None,
    version: Annotated[
        list[str] | None, typer.Option("--version", help="pin a table: silver.events=3")
    ] = None,
) -> None:
    """DuckDB over the lake, read-only: every table by name (bronze.events, silver.events, gold.*)."""
    if fmt not in OUTPUTS:
        raise ConfigError(f"--format: one of {', '.join(OUTPUTS)} (got {fmt!r})")
    settings = cli_settings(env, set_)
    shell = LakeShell(Lake(settings), _as_of(as_of) if as_of else None, _versions(version))
    try:
        if query is None and sys.stdin.isatty():
            _interactive(shell, fmt)
            return
        text = query if query is not None else sys.stdin.read()
        for result in shell.run(text):
            _print(result, fmt)
    finally:
        shell.close()


HELP = """.tables                 the lake's tables (and their pinned versions)
.format table|csv|json  the output format
.asof TIME|latest       the lake as of a time (ISO-8601), or its latest versions
.version TABLE N|latest pin one table to a version
.quit                   leave (or Ctrl-D)
SQL ends with ';'. Only SELECT (and EXPLAIN) run: the lake is read-only here."""


def _dot(shell: LakeShell, line: str, fmt: str) -> str:
    cmd, *args = line.split()
    if cmd == ".tables":
        for name, v in shell.attached.items():
            console.print(f"{name}" + (f"  (version {v})" if v is not None else ""), highlight=False)
        for name in shell.skipped:
            console.print(f"[dim]{name}  (not yet created at {shell.as_of})[/]", highlight=False)
    elif cmd == ".format" and len(args) == 1 and args[0] in OUTPUTS:
        return args[0]
    elif cmd == ".asof" and len(args) == 1:
        shell.as_of = None if args[0] == "latest" else _as_of(args[0])
        shell.attach()
        console.print(f"{len(shell.attached)} tables as of {shell.as_of or 'latest'}")
    elif cmd == ".version" and len(args) == 2:
        if args[1] == "latest":
            shell.versions.pop(args[0], None)
        else:
            shell.versions.update(_versions([f"{args[0]}={args[1]}"]))
        shell.attach()
        console.print(f"{args[0]}: version {shell.attached.get(args[0], 'latest')}")
    elif cmd in (".help", ".h"):
        console.print(HELP, highlight=False, markup=False)
    else:
        err_console.print(f"[red]error:[/] unknown command {line!r} (.help lists them)", highlight=False)
    return fmt


def _interactive(shell: LakeShell, fmt: str) -> None:
    console.print(
        f"lakehouse sql: {len(shell.attached)} tables of {shell.lake.root}, read-only. .help for help."
    )
    buffer: list[str] = []
    while True:
        try:
            line = input("lakehouse> " if not buffer else "      ...> ")
        except EOFError:
            print()
            return
        except KeyboardInterrupt:
            print()
            buffer = []
            continue
        stripped = line.strip()
        if not buffer and stripped.startswith("."):
            if stripped in (".quit", ".exit", ".q"):
                return
            try:
                fmt = _dot(shell, stripped, fmt)
            except LakehouseError as exc:
                err_console.print(f"[red]error:[/] {exc}", highlight=False)
            continue
        if stripped:
            buffer.append(line)
        if not stripped.endswith(";"):
            continue
        text, buffer = "\n".join(buffer), []
        try:
            for result in shell.run(text):
                _print(result, fmt)
        except SqlError as exc:
            err_console.print(f"[red]error:[/] {exc}", highlight=False)
