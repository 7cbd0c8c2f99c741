"""`lakehouse demo`: the whole data flow on the embedded default, with progress and a summary.

The batch part (source database, landing files, bronze, silver, change batches) runs here; the
streaming and gold stages follow in `streaming.py` and `gold.py`.

Run again, the demo goes on from where the lake and the source are: it keeps the source database
(and every change batch applied to it, by the demo or by hand), reuses the landing files that are
complete, applies the next `generator.change_batches` batches not applied yet, and produces a new
streaming burst; bronze and silver then take in exactly what is new.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from functools import partial

from rich.console import Console

from lakehouse.app import jobs
from lakehouse.app.demo import gold, streaming
from lakehouse.app.demo.context import Bars, DemoContext
from lakehouse.app.render import tables as report
from lakehouse.core.errors import ConfigError
from lakehouse.core.reconcile import new_run_id
from lakehouse.core.settings import Settings
from lakehouse.core.storage import Lake
from lakehouse.generator import source_db
from lakehouse.services import all_services, port_warnings

__all__ = ["DemoContext", "run"]


def run(
    settings: Settings,
    console: Console,
    bars: Callable[[], AbstractContextManager[Bars]],
    all_rows: bool = False,
) -> DemoContext:
    console.rule("[bold]Ampere Lakehouse demo")
    g = settings.generator
    console.print(
        f"lake: [bold]{settings.lake_uri}[/]   events: {g.events:,}   customers: {g.customers:,}   seed: {g.seed}"
    )
    for line in port_warnings(settings):
        console.print(f"[yellow]warning:[/] {line}")
    # Services first: an s3:// lake on a fresh state folder has no credentials until the local
    # S3 server has started and written them.
    started = time.perf_counter()
    for service in all_services(settings):
        service.start()
    ctx = DemoContext(settings, Lake(settings), console, bars)
    ctx.steps.append(("start services", time.perf_counter() - started))
    problem = ctx.lake.missing() if settings.is_s3 else None
    if problem:
        raise ConfigError(problem)
    ctx.timed("source database", lambda: _source_database(ctx))
    with bars() as b:
        _, reused = ctx.timed("landing files", lambda: jobs.land_events(ctx.lake, settings, b.hooks))
        if reused:
            console.print(
                f"landing files of seed {g.seed} ({g.event_files} files, {g.events:,} events) exist: reused"
            )
        ctx.run_ids.append(new_run_id())
        ctx.recs += ctx.timed("bronze", lambda: jobs.bronze(ctx.lake, settings, ctx.run_ids[-1], b.hooks))
        ctx.recs += ctx.timed("silver", lambda: jobs.silver(ctx.lake, settings, ctx.run_ids[-1], b.hooks))
    ctx.audit("bronze and silver")
    for batch in next_batches(settings):
        summary = ctx.timed(f"change batch {batch}", partial(jobs.apply_changes, settings, batch))
        console.print(f"change batch {batch}: {summary or 'applied before'}")
        ctx.run_ids.append(new_run_id())
        ctx.recs += ctx.timed(
            f"bronze+silver after batch {batch}",
            lambda: (
                jobs.bronze(ctx.lake, settings, ctx.run_ids[-1], sources=("postgres",))
                + jobs.silver(ctx.lake, settings, ctx.run_ids[-1])
            ),
        )
        ctx.audit(f"change batch {batch}")
    streaming.stage(ctx)
    gold.stage(ctx)
    console.rule("[bold]Summary")
    report.show(
        console,
        report.table_counts(ctx.lake),
        report.quarantine_reasons(ctx.lake, ctx.run_ids),
        report.reconciliation_table(ctx.recs, "Reconciliation (this demo)", all_rows=all_rows),
        report.timings(ctx.steps),
    )
    unbalanced = [r for r in ctx.recs if not r.balanced]
    console.print(
        "[green]every run's counts add up[/]"
        if not unbalanced
        else f"[red]{len(unbalanced)} runs do not balance[/]"
    )
    failed = [after for after, results in ctx.audits if not all(r.ok for r in results)]
    console.print(
        f"[green]independent reconciliation: nothing lost or repeated after {len(ctx.audits)} jobs[/]"
        if not failed
        else f"[red]independent reconciliation: rows lost or repeated after {', '.join(failed)}[/]"
    )
    return ctx


def _source_database(ctx: DemoContext) -> None:
    """Load the source database the first time; afterwards keep it as it is (with every change
    batch applied to it, by the demo or by hand)."""
    settings, console = ctx.settings, ctx.console
    state = source_db.state(settings.postgres.source_dsn)
    if state is None:
        console.print(f"source database loaded: {jobs.generate_source(settings)}")
        return
    rows = ", ".join(f"{t} {n:,}" for t, n in state.rows.items())
    applied = _ranges(state.batches) or "none"
    console.print(f"source database kept ({rows}; change batches applied: {applied})")
    diff = state.differences(settings.generator)
    if diff:
        console.print(
            f"[yellow]it was loaded with other generator settings ({'; '.join(diff)}): kept as it is; "
            "`lakehouse generate source` reloads it (then start a fresh lake too)[/]"
        )


def next_batches(settings: Settings) -> list[int]:
    """The `generator.change_batches` batches after the last one applied to the source."""
    state = source_db.state(settings.postgres.source_dsn)
    last = max(state.batches, default=0) if state else 0
    return list(range(last + 1, last + 1 + settings.generator.change_batches))


def _ranges(numbers: list[int]) -> str:
    """[1, 2, 3, 5] -> '1-3, 5'."""
    out: list[str] = []
    for n in sorted(numbers):
        if out and out[-1].split("-")[-1] == str(n - 1):
            out[-1] = f"{out[-1].split('-')[0]}-{n}"
        else:
            out.append(str(n))
    return ", ".join(out)
