"""What every stage of `lakehouse demo` shares: settings, lake, console, timings, reconciliations."""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, Protocol

from rich.console import Console

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

    def timed(self, name: str, fn: Callable[[], Any]) -> Any:
        start = time.perf_counter()
        try:
            return fn()
        finally:
            self.steps.append((name, time.perf_counter() - start))
