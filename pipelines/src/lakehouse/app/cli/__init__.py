"""`lakehouse` — the command line. One module per command group; shared options in `options`.

`main` is the one place failures are handled: every error is one line on stderr naming the cause
and the fix (`failures.describe`), with a non-zero exit; `--debug` (anywhere on the command line,
or LAKEHOUSE_DEBUG=1) adds the traceback and the client libraries' logs.
"""

from __future__ import annotations

import os
import sys
import traceback
from typing import Annotated

import typer
from rich.markup import escape
from typer._click import exceptions as click  # typer vendors click: its exceptions live here

from lakehouse.app.cli import check, generate, gold, maintain, pipeline, serve, services, spark, stream
from lakehouse.app.cli.failures import describe, transient
from lakehouse.app.cli.logs import configure
from lakehouse.app.cli.options import console, err_console
from lakehouse.core import memory
from lakehouse.core.errors import CheckFailedError

app = typer.Typer(
    help="Ampere Lakehouse: generator, bronze, silver, gold, streaming and maintenance of the lake.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
pipeline.register(app)
app.add_typer(services.app, name="services")
app.add_typer(generate.app, name="generate")
app.add_typer(gold.app, name="gold")
app.add_typer(check.app, name="check")
app.add_typer(stream.app, name="stream")
app.add_typer(maintain.app, name="maintain")
app.add_typer(spark.app, name="spark")
serve.register(app)


@app.callback()
def root(
    debug: Annotated[
        bool, typer.Option("--debug", help="on failure show the traceback; show client-library logs")
    ] = False,
) -> None:
    """Ampere Lakehouse: generator, bronze, silver, gold, streaming and maintenance of the lake."""


# Exit codes: 1 a check failed (a quality gate, a dbt test), 2 the command could not do its work,
# 75 (EX_TEMPFAIL) it could not do it now (a lock, a connection): only 75 is worth a retry.
CHECK_FAILED = 1
FAILED = 2
TRANSIENT = 75
INTERRUPTED = 130


def exit_code(exc: BaseException) -> int:
    if isinstance(exc, click.UsageError):
        return exc.exit_code
    if isinstance(exc, CheckFailedError):
        return CHECK_FAILED
    try:
        return TRANSIENT if transient(exc) else FAILED
    except Exception:  # telling the kind must not fail the report of the failure
        return FAILED


def _split_debug(args: list[str]) -> tuple[list[str], bool]:
    """Take --debug out wherever it stands (before a `--`, after which arguments belong to dbt)."""
    cut = args.index("--") if "--" in args else len(args)
    head = [a for a in args[:cut] if a != "--debug"]
    debug = len(head) != cut or os.environ.get("LAKEHOUSE_DEBUG", "").strip() not in ("", "0", "false")
    return head + args[cut:], debug


def main(argv: list[str] | None = None) -> None:
    args, debug = _split_debug(list(sys.argv[1:] if argv is None else argv))
    configure(debug)
    memory.cap_arenas()
    try:
        code = app(args=args, prog_name="lakehouse", standalone_mode=False)
    except click.NoArgsIsHelpError as exc:
        if exc.format_message().strip():  # rich help is printed while the error is made
            typer.echo(exc.format_message())
        code = 0
    except KeyboardInterrupt:
        err_console.print("[yellow]interrupted[/]")
        code = INTERRUPTED
    except typer.Abort:
        err_console.print("[yellow]aborted[/]")
        code = INTERRUPTED
    except BrokenPipeError:
        sys.stderr.close()  # the reader went away (`| head`): nothing left to say
        code = 0
    except Exception as exc:
        if debug:
            traceback.print_exc()
        try:
            line = describe(exc)
        except Exception:  # describing must not fail the report of the failure
            line = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"
        console.file.flush()  # what the command printed comes first; the error line is the last
        err_console.print(f"[red]error:[/] {escape(line)}")
        code = exit_code(exc)
    console.file.flush()
    sys.exit(code if isinstance(code, int) else 0)
