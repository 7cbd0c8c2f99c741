"""What every stage of `lakehouse demo` shares: settings, lake, console, timings, reconciliations."""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, Protocol

from rich.console import Console

from lakehouse.app.audit_result import AuditResult
from lakehouse.core.reconcile import Reconciliation
from lakehouse.core.settings import Settings
from lakehouse.core.storage import Lake


class Bars(Protocol):
    """The progress display the demo is given (the CLI's rich bars)."""

    @property
    def hooks(self) -> Any: ...

    def current(
        self, name: str, what: str, completed: int | None = None, total: int | None = None
    ) -> None: ...

    def dbt(self, name: str) -> Callable[[str], None]: ...


@dataclass
class DemoContext:
    settings: Settings
    lake: Lake
    console: Console
    bars: Callable[[], AbstractContextManager[Bars]]
    steps: list[tuple[str, float]] = field(default_factory=list)
    recs: list[Reconciliation] = field(default_factory=list)
    run_ids: list[str] = field(default_factory=list)
    audits: list[tuple[str, list[AuditResult]]] = field(default_factory=list)

    def timed(self, name: str, fn: Callable[[], Any]) -> Any:
        start = time.perf_counter()
        try:
            return fn()
        finally:
            self.steps.append((name, time.perf_counter() - start))

    def audit(self, after: str, *, kafka: bool = False) -> None:
        """The independent reconciliation after a job (stored in ops.source_audit), one line:
        the counts come from the sources themselves, not from the job's own counters."""
        from lakehouse.app import source_audit

        results = self.timed(
            f"check sources after {after}",
            lambda: source_audit.audit(
                self.lake,
                self.run_ids[-1],
                streaming=self.settings.streaming if kafka else None,
                source_dsn=self.settings.postgres.source_dsn,
            ),
        )
        self.audits.append((after, results))
        lost = sum(r.lost for r in results)
        repeated = sum(r.duplicated for r in results)
        checked = ", ".join(f"{r.check_name} {r.found:,}/{r.expected:,}" for r in results)
        colour = "green" if lost == repeated == 0 else "red"
        self.console.print(
            f"[{colour}]check sources after {after}: {lost} lost, {repeated} repeated[/] ({checked})"
        )
