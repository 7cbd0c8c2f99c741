"""The main job's steps as plain functions: generate, bronze, silver. The CLI, the demo and the
Airflow DAGs call these; each step records its reconciliation and returns it."""

from __future__ import annotations

import fcntl
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from lakehouse import lineage, reconcile
from lakehouse.bronze import landing, postgres_extract
from lakehouse.config import Settings
from lakehouse.errors import LakehouseError
from lakehouse.generator import events as event_gen
from lakehouse.generator import source_db
from lakehouse.reconcile import Reconciliation
from lakehouse.silver import current_state, scd2
from lakehouse.silver import events as silver_events
from lakehouse.storage import Lake

Progress = Callable[[int], None]


@dataclass
class Hooks:
    """Progress callbacks; every one is optional."""

    plan: Callable[[str, int], None] = lambda task, total: None
    advance: Callable[[str, int], None] = lambda task, n: None


@dataclass
class StepResult:
    name: str
    seconds: float = 0.0
    recs: list[Reconciliation] = field(default_factory=list)


@contextmanager
def step_lock(settings: Settings, step: str) -> Iterator[None]:
    """One run of a step at a time per lake (a second one fails fast with a clear message)."""
    path = settings.state_path / "locks" / f"{step}.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise LakehouseError(f"another '{step}' run holds {path}; wait for it to finish") from None
        yield


def postgres_dsn(settings: Settings, db: str | None = None) -> str:
    pg = settings.postgres
    return f"postgresql://{pg.user}@{pg.host}:{pg.port}/{db or pg.source_db}"


def generate_events(lake: Lake, settings: Settings, hooks: Hooks | None = None) -> Counter[str]:
    hooks = hooks or Hooks()
    g = settings.generator
    fs, base = lake.landing("events")

    started = time.monotonic()
    written = 0

    def write(name: str, data: bytes) -> None:
        nonlocal written
        tmp = f"{base}/.{name}.part"
        with fs.open_output_stream(tmp) as out:
            out.write(data)
        if g.rate:  # drip files so that events arrive at about `rate` per second
            written += data.count(b"\n")
            time.sleep(max(0.0, written / g.rate - (time.monotonic() - started)))
        fs.move(tmp, f"{base}/{name}")

    hooks.plan("generate events", g.events)
    spec = event_gen.EventSpec.from_settings(g)
    return event_gen.generate_files(
        spec, g.event_files, write, on_part=lambda lines: hooks.advance("generate events", lines)
    )


def generate_source(settings: Settings) -> source_db.LoadSummary:
    return source_db.load(postgres_dsn(settings), settings.generator)


def apply_changes(settings: Settings, batch: int) -> str | None:
    return source_db.apply_changes(postgres_dsn(settings), settings.generator, batch)


def bronze(
    lake: Lake,
    settings: Settings,
    run_id: str,
    hooks: Hooks | None = None,
    sources: tuple[str, ...] = ("events", "postgres"),
) -> list[Reconciliation]:
    hooks = hooks or Hooks()
    recs: list[Reconciliation] = []
    with lineage.step(lake, "bronze", sources), step_lock(settings, "bronze"):
        if "events" in sources:
            _, rec = landing.ingest(
                lake,
                run_id,
                settings.bronze.max_rows_per_commit,
                on_rows=lambda n: hooks.advance("bronze events", n),
                on_plan=lambda files, size: hooks.plan("bronze events", size // 230 or 1),
            )
            recs.append(rec)
        if "postgres" in sources:
            recs += postgres_extract.extract_all(
                lake, postgres_dsn(settings), run_id, settings.bronze.extract_lookback_minutes
            )
        reconcile.record(lake, recs)  # inside: an unbalanced run is a failed lineage run
    return recs


def silver(lake: Lake, settings: Settings, run_id: str, hooks: Hooks | None = None) -> list[Reconciliation]:
    hooks = hooks or Hooks()
    recs: list[Reconciliation] = []
    with lineage.step(lake, "silver"), step_lock(settings, "silver"):
        recs.append(
            silver_events.run(
                lake,
                settings,
                run_id,
                on_rows=lambda n: hooks.advance("silver events", n),
                on_plan=lambda total: hooks.plan("silver events", total),
            )
        )
        for dim in scd2.DIMENSIONS:
            recs.append(scd2.apply(lake, dim, run_id))
        for table in current_state.TABLES:
            recs.append(current_state.apply(lake, table, run_id))
        reconcile.record(lake, recs)
    return recs
