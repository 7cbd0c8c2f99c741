"""Every failure the command line can meet, said in one line: what went wrong and what to do.

`describe(exc)` turns an exception into that line. Errors of the package (LakehouseError) say it
themselves; failures of the libraries underneath (Delta, S3, PostgreSQL, Kafka, DuckDB, Arrow,
bad arguments) are recognised here, so no command needs a try/except of its own. Anything else
is a bug: it is named as one, and `--debug` shows its traceback.

`transient(exc)` tells the failures worth trying again (a lock another run holds, a service not
reachable, a concurrent Delta commit) from those that would fail the same way again.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

from typer._click import exceptions as click  # typer vendors click: its exceptions live here

from lakehouse.core.errors import LakehouseError, TransientError

DEBUG_HINT = "run again with --debug for the traceback"


def _first_line(text: str) -> str:
    lines = [ln.strip() for ln in str(text).strip().splitlines() if ln.strip()]
    return lines[0] if lines else ""


def _package_error(exc: LakehouseError) -> str:
    """A package error is one line already; a multi-line one (a dbt failure with dbt's output
    after it) keeps its first line and the last line of what follows, which names the cause."""
    lines = [ln.strip() for ln in str(exc).strip().splitlines() if ln.strip()]
    if len(lines) <= 1:
        return lines[0] if lines else type(exc).__name__
    return f"{lines[0].rstrip(':')}: {lines[-1]}"


def _s3_xml(text: str) -> str | None:
    """'S3 <Code>: <Message> (bucket <name>)' from the XML error body an S3 server returned,
    which delta-rs and arrow pass on inside their message."""
    start = text.find("<Error>")
    end = text.find("</Error>", start)
    if start < 0 or end < 0:
        return None
    try:
        root = ET.fromstring(text[start : end + len("</Error>")])
    except ET.ParseError:
        return None
    code = root.findtext("Code") or "error"
    message = root.findtext("Message") or ""
    bucket = root.findtext("BucketName")
    fix = {
        "NoSuchBucket": ": create the bucket or correct lake_root / LAKEHOUSE_LAKE_ROOT",
        "AccessDenied": ": check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY",
        "InvalidAccessKeyId": ": check AWS_ACCESS_KEY_ID",
        "SignatureDoesNotMatch": ": check AWS_SECRET_ACCESS_KEY",
    }.get(code, "")
    return f"S3 {code}: {message}{f' (bucket {bucket})' if bucket else ''}{fix}"


def _os_error(exc: OSError) -> str:
    text = str(exc)
    parsed = _s3_xml(text)
    if parsed:
        return parsed
    if "error sending request" in text or "Connection refused" in text or "connection refused" in text:
        return f"S3 endpoint not reachable ({_first_line(text)[:200]}): is the S3 server running? `lakehouse services status`"
    if exc.strerror and exc.filename:
        return f"{exc.strerror}: {exc.filename}"
    return _first_line(text)[:300] or type(exc).__name__


def _usage(exc: click.UsageError) -> str:
    path = exc.ctx.command_path if exc.ctx is not None else "lakehouse"
    message = " ".join(exc.format_message().split())
    if (
        isinstance(exc, click.NoSuchOption)
        and exc.ctx is not None
        and exc.ctx.parent is None
        and exc.option_name in ("--set", "--env", "--json", "--all")
    ):
        return f"{message}: options follow the command, e.g. `lakehouse tables {exc.option_name} ...`"
    return f"{message} (see `{path} --help`)"


def describe(exc: BaseException) -> str:
    """One line for any failure: the cause and, where there is one, the fix."""
    if isinstance(exc, LakehouseError):
        return _package_error(exc)
    if isinstance(exc, click.UsageError):
        return _usage(exc)
    if isinstance(exc, click.ClickException):
        return " ".join(exc.format_message().split())
    # libraries, imported here only once something failed
    from deltalake.exceptions import CommitFailedError, DeltaError, TableNotFoundError

    if isinstance(exc, TableNotFoundError):
        return f"not a Delta table: {_first_line(str(exc))[:300]}"
    if isinstance(exc, CommitFailedError):
        return f"Delta commit failed (another writer committed first?): {_first_line(str(exc))[:300]}"
    if isinstance(exc, DeltaError):
        text = str(exc)
        return _s3_xml(text) or f"Delta: {_first_line(text)[:300]}"

    import psycopg

    if isinstance(exc, psycopg.OperationalError):
        return (
            f"PostgreSQL not reachable: {_first_line(str(exc))[:300]} "
            "(is it running? `lakehouse services start`)"
        )
    if isinstance(exc, psycopg.Error):
        return f"PostgreSQL: {_first_line(str(exc))[:300]}"

    from confluent_kafka import KafkaException

    if isinstance(exc, KafkaException):
        err = exc.args[0] if exc.args else exc
        text = err.str() if hasattr(err, "str") else str(err)
        return f"Kafka: {_first_line(text)[:300]}"

    from botocore.exceptions import BotoCoreError, ClientError

    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        return f"S3 {error.get('Code', 'error')}: {error.get('Message') or _first_line(str(exc))}"
    if isinstance(exc, BotoCoreError):
        return f"S3: {_first_line(str(exc))[:300]}"

    import duckdb

    if isinstance(exc, duckdb.Error):
        return f"DuckDB: {_first_line(str(exc))[:300]}"

    if isinstance(exc, OSError):
        return _os_error(exc)

    import pyarrow as pa

    if isinstance(exc, pa.ArrowException):
        return f"Arrow: {_first_line(str(exc))[:300]}"
    if isinstance(exc, MemoryError):
        return "out of memory: lower silver.chunk_rows or silver.duckdb_memory_limit"
    detail = _first_line(str(exc))[:300]
    name = re.sub(r"^builtins\.", "", f"{type(exc).__module__}.{type(exc).__qualname__}")
    return (
        f"unexpected {name}{': ' + detail if detail else ''} ({DEBUG_HINT}; this is a bug, please report it)"
    )


# What a service that is down or busy says, in the messages of the libraries that reach it.
_UNREACHABLE = (
    "connection refused",
    "error sending request",
    "could not connect",
    "connection reset",
    "timed out",
    "temporarily unavailable",
    "could not set lock on file",  # DuckDB: another process has the database open
    "conflicting lock is held",
)


def transient(exc: BaseException) -> bool:
    """True when the same command may succeed later unchanged: a lock, a connection, a race."""
    if isinstance(exc, TransientError):
        return True
    from lakehouse.core.kafka import BrokerUnavailable

    if isinstance(exc, BrokerUnavailable):
        return "not running" in str(exc)  # down or not answering; a refused login is not transient
    if isinstance(exc, LakehouseError | click.ClickException):
        return False  # the package's own verdicts and bad arguments do not change by waiting
    from deltalake.exceptions import CommitFailedError

    if isinstance(exc, CommitFailedError):
        return True  # another writer committed first: a new attempt reads its version
    import psycopg

    if isinstance(exc, psycopg.OperationalError | psycopg.errors.LockNotAvailable):
        return True
    if isinstance(exc, psycopg.errors.SerializationFailure | psycopg.errors.DeadlockDetected):
        return True
    from confluent_kafka import KafkaException

    if isinstance(exc, KafkaException):
        err = exc.args[0] if exc.args else None
        return bool(getattr(err, "retriable", lambda: False)())
    if isinstance(exc, ConnectionError | TimeoutError):
        return True
    return isinstance(exc, OSError) and any(m in str(exc).lower() for m in _UNREACHABLE)
