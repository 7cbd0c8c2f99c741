"""`lakehouse demo`: the whole data flow on the embedded default, with progress and a summary.

Later layers join the demo by adding a stage to STAGES ("module:function"); a stage receives
the DemoContext and records its timings and reconciliations there. Stages whose module is
not installed are skipped.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from rich.console import Console

from lakehouse import jobs, report
from lakehouse.config import Settings
from lakehouse.plugins import import_optional
from lakehouse.reconcile import Reconciliation, new_run_id
from lakehouse.services import all_services
from lakehouse.storage import Lake

# Stages after bronze -> silver, in order. Each is "module:function" taking a DemoContext.
STAGES: tuple[str, ...] = (
    "lakehouse.streaming.demo:stage",
    "lakehouse.gold.demo:stage",
)


@dataclass
class DemoContext:
    settings: Settings
    lake: Lake
    console: Console
    bars: Callable[[], AbstractContextManager[Any]]
    steps: list[tuple[str, float]] = field(default_factory=list)
    recs: list[Reconciliation] = field(default_factory=list)
    run_ids: list[str] = field(default_factory=list)

    def timed(self, name: str, fn: Callable[[], Any]) -> Any:
        start = time.perf_counter()
        try:
            return fn()
        finally:
            self.steps.append((name, time.perf_counter() - start))


def _stages() -> Iterator[Callable[[DemoContext], None]]:
    for spec in STAGES:
        module, _, func = spec.partition(":")
        mod = import_optional(module)
        if mod is not None:
            yield getattr(mod, func)


def run(settings: Settings, console: Console, bars: Callable[[], AbstractContextManager[Any]]) -> DemoContext:
    console.rule("[bold]Ampere Lakehouse demo")
    g = settings.generator
    console.print(
        f"lake: [bold]{settings.lake_uri}[/]   events: {g.events:,}   customers: {g.customers:,}   seed: {g.seed}"
    )
    ctx = DemoContext(settings, Lake(settings), console, bars)
    ctx.timed("start services", lambda: [s.start() for s in all_services(settings)])
    ctx.lake = Lake(settings)  # after services: an s3:// lake reads the local server's credentials
    source = ctx.timed("load source database", lambda: jobs.generate_source(settings))
    console.print(f"source database loaded: {source}")
    with bars() as b:
        ctx.timed("generate events", lambda: jobs.generate_events(ctx.lake, settings, b.hooks))
        ctx.run_ids.append(new_run_id())
        ctx.recs += ctx.timed("bronze", lambda: jobs.bronze(ctx.lake, settings, ctx.run_ids[-1], b.hooks))
        ctx.recs += ctx.timed("silver", lambda: jobs.silver(ctx.lake, settings, ctx.run_ids[-1], b.hooks))
    for batch in range(1, g.change_batches + 1):
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
    for stage in _stages():
        stage(ctx)
    console.rule("[bold]Summary")
    report.show(
        console,
        report.table_counts(ctx.lake),
        report.quarantine_reasons(ctx.lake, ctx.run_ids),
        report.reconciliation_table(ctx.recs, "Reconciliation (this demo)"),
        report.timings(ctx.steps),
    )
    unbalanced = [r for r in ctx.recs if not r.balanced]
    console.print(
        "[green]every run's counts add up[/]"
        if not unbalanced
        else f"[red]{len(unbalanced)} runs do not balance[/]"
    )
    return ctx
