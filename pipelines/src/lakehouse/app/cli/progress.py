"""Progress bars for long steps, fed by the jobs' hooks, by dbt's output (the model or test running
now) and by per-table loops (OPTIMIZE)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)

from lakehouse.app.cli.options import console

if TYPE_CHECKING:
    from lakehouse.app import jobs

# dbt's console line for a node: "12:00:01  3 of 57 START sql table model marts.agg_x ..... [RUN]"
_DBT_NODE = re.compile(r"\b(\d+) of (\d+) (START|OK|PASS|FAIL|ERROR|WARN|SKIP|NO-OP)\b\s*(.*)")


class Bars:
    """Rich progress bars keyed by task name, fed by jobs.Hooks; `current` shows what runs now."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.tasks: dict[str, Any] = {}

    def plan(self, name: str, total: int) -> None:
        if name in self.tasks:
            self.progress.update(self.tasks[name], total=total)
        else:
            self.tasks[name] = self.progress.add_task(name, total=max(total, 1), current="")

    def advance(self, name: str, n: int) -> None:
        if name not in self.tasks:
            self.plan(name, n)
        self.progress.advance(self.tasks[name], n)

    def current(self, name: str, what: str, completed: int | None = None, total: int | None = None) -> None:
        """Show what `name` is working on now (a model, a check, a table)."""
        if name not in self.tasks:
            self.plan(name, total or 1)
        update: dict[str, Any] = {"current": what}
        if total is not None:
            update["total"] = max(total, 1)
        if completed is not None:
            update["completed"] = completed
        self.progress.update(self.tasks[name], **update)

    def done(self, name: str, what: str = "") -> None:
        if name in self.tasks:
            task = self.progress.tasks[self.tasks[name]]
            total = max(task.completed, 1) if task.total is None else task.total
            self.progress.update(self.tasks[name], total=total, completed=total, current=what)

    def finish(self) -> None:
        for task in self.tasks.values():
            t = self.progress.tasks[task]
            self.progress.update(task, total=max(t.completed, 1), completed=max(t.completed, 1))

    @property
    def hooks(self) -> jobs.Hooks:
        from lakehouse.app import jobs

        return jobs.Hooks(plan=self.plan, advance=self.advance)

    def dbt(self, name: str) -> DbtProgress:
        """An `on_line` for dbt runs that moves the bar `name` node by node."""
        self.plan(name, 1)
        return DbtProgress(self, name)


class DbtProgress:
    """Reads dbt's console lines as they come: each START names the node now running (shown),
    each result line moves the bar to that node's index."""

    def __init__(self, bars: Bars, name: str) -> None:
        self.bars, self.name = bars, name
        self.finished = 0

    def __call__(self, line: str) -> None:
        m = _DBT_NODE.search(line)
        if not m:
            return
        index, total, status, rest = int(m.group(1)), int(m.group(2)), m.group(3), m.group(4)
        node = re.sub(r"\s*\.{2,}.*$", "", rest).strip()
        node = node.split()[-1] if node else ""
        if status == "START":
            self.bars.current(self.name, node, completed=index - 1, total=total)
        else:
            self.bars.current(self.name, node, completed=index, total=total)


@contextmanager
def bars(quiet: bool = False) -> Iterator[Bars]:
    """Progress bars on the console; `quiet` (e.g. with --json) shows none."""
    progress = Progress(
        SpinnerColumn(finished_text="[green]✓"),
        TextColumn("[bold blue]{task.description:<16}"),
        BarColumn(bar_width=30),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("[dim]{task.fields[current]}"),
        console=console,
        transient=False,
        disable=quiet,
    )
    with progress:
        b = Bars(progress)
        try:
            yield b
        except BaseException:
            progress.live.transient = True  # a failed step leaves no half-drawn bar behind
            raise
        b.finish()
