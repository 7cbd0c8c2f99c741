"""`lakehouse spark ...`: the pipeline's writes on Apache Spark with delta-spark, and the
hand-over of a table between the engines.

`bronze` and `silver` write the same tables as `lakehouse bronze --source events` and
`lakehouse silver`, on a local Spark (`--master local[2]`, the default) or a
cluster's master. `handover` moves a table to the other engine after its last commit; a job of
the engine that does not own a table refuses to write it.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer

from lakehouse.app.cli.options import (
    AllOpt,
    EnvOpt,
    JsonOpt,
    SetOpt,
    cli_settings,
    emit,
    existing_lake,
    writable_lake,
)

if TYPE_CHECKING:  # pragma: no cover
    from pyspark.sql import SparkSession

    from lakehouse.core.reconcile import Reconciliation
    from lakehouse.core.settings import Settings
    from lakehouse.core.storage import Lake
    from lakehouse.maintenance.ops import MaintenanceResult

T = TypeVar("T")
app = typer.Typer(
    help="The distributed engine: bronze and silver on Spark (delta-spark), its maintenance; table hand-over.",
    no_args_is_help=True,
)
MasterOpt = Annotated[
    str | None,
    typer.Option(
        "--master", help="Spark master: local[N] or the cluster's URL (default: engines.spark_master)"
    ),
]
MemoryOpt = Annotated[
    str | None,
    typer.Option(
        "--driver-memory", help="driver heap, all of Spark when local (default: engines.spark_driver_memory)"
    ),
]


def _session(settings: Settings, master: str | None, memory: str | None) -> SparkSession:
    from lakehouse.core.spark import SparkOptions, build_session

    options = SparkOptions(
        master=master or settings.engines.spark_master,
        driver_memory=memory or settings.engines.spark_driver_memory,
        app_name="lakehouse-spark",
        event_log_dir=settings.engines.spark_event_log,
    )
    return build_session(settings, options)


def _run(job: Callable[[], T]) -> T:
    """Run a Spark job and stop the session. A failure inside Spark becomes one line while the
    JVM still runs (a pyspark error's text is fetched from it), never a JVM stack trace."""
    from lakehouse.core.errors import LakehouseError
    from lakehouse.core.spark import stop_session

    try:
        return job()
    except Exception as exc:
        if not type(exc).__module__.startswith(("pyspark", "py4j")):
            raise
        try:
            text = str(exc).strip()
        except Exception:
            text = ""
        first = text.splitlines()[0][:300] if text else type(exc).__name__
        raise LakehouseError(f"the Spark job failed: {first}") from None
    finally:
        stop_session()


def run_job(
    settings: Settings,
    job: Callable[[SparkSession], list[Reconciliation]],
    master: str | None = None,
    memory: str | None = None,
) -> list[Reconciliation]:
    """`job` on a Spark session built from the settings (`engines.spark_*`), stopped afterwards;
    how `lakehouse bronze|silver|run` run a step the settings give to Spark."""
    spark = _session(settings, master, memory)
    return _run(lambda: job(spark))


def _step(
    settings: Settings,
    lake: Lake,
    job: Callable[[SparkSession, Lake, Settings, str], list[Reconciliation]],
    master: str | None,
    memory: str | None,
    all_rows: bool,
    as_json: bool,
) -> None:
    """A pipeline step on Spark, its reconciliation shown as the embedded commands show theirs."""
    from lakehouse.app.render import tables
    from lakehouse.core.reconcile import new_run_id

    recs = run_job(settings, lambda spark: job(spark, lake, settings, new_run_id()), master, memory)
    emit(
        as_json,
        {"reconciliation": tables.reconciliation_rows(recs)},
        tables.reconciliation_table(recs, all_rows=all_rows),
    )


@app.command()
def bronze(
    env: EnvOpt = None,
    set_: SetOpt = None,
    master: MasterOpt = None,
    driver_memory: MemoryOpt = None,
    source: Annotated[
        list[str] | None,
        typer.Option(
            help="events (landing files, the default) and/or postgres (the source tables over JDBC)"
        ),
    ] = None,
    all_rows: AllOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Landing files -> bronze.events on Spark, each file exactly once; with --source postgres the
    PostgreSQL source tables -> bronze.<table> over JDBC, incrementally by updated_at."""
    from lakehouse.app import spark_jobs
    from lakehouse.app.cli import validate

    sources = tuple(validate.choices(source or ["events"], spark_jobs.BRONZE_SOURCES, "--source"))
    current = cli_settings(env, set_)
    _step(
        current,
        writable_lake(current),
        lambda spark, lake, settings, run_id: spark_jobs.bronze(spark, lake, settings, run_id, sources),
        master,
        driver_memory,
        all_rows,
        as_json,
    )


@app.command()
def silver(
    env: EnvOpt = None,
    set_: SetOpt = None,
    master: MasterOpt = None,
    driver_memory: MemoryOpt = None,
    all_rows: AllOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """bronze -> silver on Spark: events + quarantine (the shared SQL), SCD2 dimensions and
    current-state orders / order_items (Delta MERGE INTO)."""
    from lakehouse.app import spark_jobs

    current = cli_settings(env, set_)
    _step(current, existing_lake(current), spark_jobs.silver, master, driver_memory, all_rows, as_json)


@app.command("stream-bronze")
def stream_bronze(
    env: EnvOpt = None,
    set_: SetOpt = None,
    continuous: Annotated[
        bool,
        typer.Option(
            "--continuous",
            help="keep reading (a micro-batch every --interval seconds) until SIGTERM / Ctrl-C; "
            "default: drain what the topic holds, then stop (availableNow)",
        ),
    ] = False,
    interval: Annotated[
        float, typer.Option("--interval", help="seconds between micro-batches with --continuous", min=0.1)
    ] = 10.0,
    master: MasterOpt = None,
    driver_memory: MemoryOpt = None,
    all_rows: AllOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Kafka (streaming.topic) -> bronze.events on Spark Structured Streaming, exactly once, with
    the embedded consumer's rows and per-partition watermarks (either engine continues the other)."""
    import signal
    import threading

    from lakehouse.app import spark_jobs
    from lakehouse.app.cli.options import console
    from lakehouse.app.render import tables
    from lakehouse.core.reconcile import new_run_id

    current = cli_settings(env, set_)
    lake = writable_lake(current)
    spark_jobs.check_stream_bronze(lake, current)
    stop = threading.Event()
    if continuous:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())

    def on_reset(reason: str) -> None:
        if not as_json:
            console.print(f"checkpoint not continued ({reason}): starting at bronze.events' watermarks")

    recs = run_job(
        current,
        lambda spark: spark_jobs.stream_bronze(
            spark,
            lake,
            current,
            new_run_id(),
            available_now=not continuous,
            interval_seconds=interval,
            stop=stop,
            on_reset=on_reset,
        ),
        master,
        driver_memory,
    )
    emit(
        as_json,
        {"reconciliation": tables.reconciliation_rows(recs)},
        tables.reconciliation_table(recs, all_rows=all_rows),
    )


@app.command()
def handover(
    table: Annotated[str, typer.Argument(help="the table, <layer>.<name>", metavar="TABLE")],
    to: Annotated[
        str, typer.Option("--to", help="the engine that writes the table from now on: embedded or spark")
    ],
    env: EnvOpt = None,
    set_: SetOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Make another engine the writer of TABLE (run it after the current owner's last job)."""
    from lakehouse.app.cli import validate
    from lakehouse.core import ownership

    validate.choices([to], ownership.ENGINES, "--to")
    current = cli_settings(env, set_)
    lake = existing_lake(current)
    name = validate.table_name(lake, table, "TABLE")
    before = ownership.hand_over(lake, name, to)
    message = f"{name}: written by {to}" + (f" (was {before})" if before != to else " (already)")
    emit(as_json, {"table": name, "engine": to, "previous": before}, message)


TableArg = Annotated[str, typer.Argument(help="the table, <layer>.<name>", metavar="TABLE")]
TablesArg = Annotated[
    str | None,
    typer.Argument(
        help="the table, <layer>.<name>; default: every table Spark writes (or of maintenance.tables)",
        metavar="[TABLE]",
        show_default=False,
    ),
]


def _maintain(
    env: str | None,
    set_: list[str] | None,
    table: str | None,
    master: str | None,
    memory: str | None,
    as_json: bool,
    title: str,
    job: Callable[[SparkSession, Settings, Lake, str], MaintenanceResult],
    check: Callable[[Lake, str], None] | None = None,
) -> None:
    """One maintenance operation on Spark for TABLE, or for every table Spark writes (one
    session): refused before Spark starts when a named table is not Spark's (`check`), recorded
    in ops.maintenance and shown as `lakehouse maintain` does. No Spark table: no session."""
    from lakehouse.app.cli import validate
    from lakehouse.app.cli.maintain import _show
    from lakehouse.core.reconcile import new_run_id
    from lakehouse.maintenance import ops, spark_ops

    current = cli_settings(env, set_)
    lake = existing_lake(current)
    if table is None:
        names = spark_ops.spark_tables(lake, current.maintenance)
    else:
        names = [validate.table_name(lake, table, "TABLE")]
        (check or spark_ops.check_owner)(lake, names[0])
    if not names:
        _show([], as_json, f"{title}: no table is written by Spark")
        return
    spark = _session(current, master, memory)
    results = _run(lambda: [job(spark, current, lake, name) for name in names])
    ops.record(lake, results, new_run_id())
    _show(results, as_json, title)


@app.command()
def optimize(
    table: TablesArg = None,
    env: EnvOpt = None,
    set_: SetOpt = None,
    zorder: Annotated[
        bool | None, typer.Option("--zorder/--no-zorder", help="force or prevent Z-order (default: by size)")
    ] = None,
    master: MasterOpt = None,
    driver_memory: MemoryOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """OPTIMIZE a Spark-owned TABLE (default: every one) with delta-spark: compaction, or ZORDER BY
    maintenance.zorder."""
    from lakehouse.maintenance import spark_ops

    _maintain(
        env,
        set_,
        table,
        master,
        driver_memory,
        as_json,
        "OPTIMIZE (spark)",
        lambda s, settings, lake, name: spark_ops.optimize(
            s, lake, settings.maintenance, name, zorder=zorder
        ),
    )


@app.command()
def vacuum(
    table: TablesArg = None,
    env: EnvOpt = None,
    set_: SetOpt = None,
    retention_hours: Annotated[
        int | None, typer.Option(help="override maintenance.vacuum_retention_hours", min=0)
    ] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="list what would be deleted")] = False,
    master: MasterOpt = None,
    driver_memory: MemoryOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """VACUUM a Spark-owned TABLE (default: every one) with delta-spark, by the retention rule of
    `lakehouse maintain vacuum`."""
    from lakehouse.maintenance import spark_ops

    _maintain(
        env,
        set_,
        table,
        master,
        driver_memory,
        as_json,
        "VACUUM (spark)",
        lambda s, settings, lake, name: spark_ops.vacuum(
            s, lake, settings.maintenance, name, retention_hours=retention_hours, dry_run=dry_run
        ),
    )


@app.command()
def restore(
    table: TableArg,
    version: Annotated[int, typer.Option(help="version to restore to", min=0)],
    env: EnvOpt = None,
    set_: SetOpt = None,
    master: MasterOpt = None,
    driver_memory: MemoryOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """RESTORE a Spark-owned TABLE with delta-spark; refused in one line when its watermarks
    would have to be rewound (delta-spark cannot record them in the restore's commit)."""
    from lakehouse.maintenance import spark_ops

    _maintain(
        env,
        set_,
        table,
        master,
        driver_memory,
        as_json,
        "RESTORE (spark)",
        lambda s, _settings, lake, name: spark_ops.restore(s, lake, name, version),
        check=lambda lake, name: spark_ops.check_restore(lake, name, version),
    )


@app.command()
def backfill(
    start: Annotated[
        datetime, typer.Option("--from", help="first event date (YYYY-MM-DD)", formats=["%Y-%m-%d"])
    ],
    end: Annotated[datetime, typer.Option("--to", help="last event date, inclusive", formats=["%Y-%m-%d"])],
    gold: Annotated[
        bool, typer.Option(help="rebuild gold afterwards (its models read the whole of silver)")
    ] = False,
    env: EnvOpt = None,
    set_: SetOpt = None,
    master: MasterOpt = None,
    driver_memory: MemoryOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """`lakehouse maintain backfill` for Spark-owned silver: the events of a date range classified
    again from bronze, replaced in silver.events (one replaceWhere commit) and the quarantine (one
    MERGE); idempotent. Refused before Spark starts when silver is the embedded engine's."""
    from lakehouse.app.cli.maintain import BACKFILLED, show_backfill
    from lakehouse.core import lineage, ownership
    from lakehouse.core.errors import LakehouseError
    from lakehouse.core.reconcile import new_run_id
    from lakehouse.silver import backfill as embedded_backfill
    from lakehouse.silver.spark import backfill as spark_backfill

    first, last = start.date(), end.date()
    if first > last:
        raise LakehouseError(f"backfill range is empty: {first} > {last}")
    current = cli_settings(env, set_)
    lake = existing_lake(current)
    embedded_backfill.prepare(lake, first, last, ownership.SPARK)
    spark = _session(current, master, driver_memory)
    with lineage.job_run(current, "lakehouse.maintenance.backfill", ["bronze.events"], BACKFILLED, lake=lake):
        result = _run(
            lambda: spark_backfill.reprocess(spark, lake, current.silver, new_run_id(), first, last)
        )
    show_backfill(current, lake, result, gold, as_json)
