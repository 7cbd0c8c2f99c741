"""The main job's steps as plain functions: generate, bronze, silver. The CLI, the demo and the
Airflow DAGs call these; each step records its reconciliation and returns it."""

from __future__ import annotations

import fcntl
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from lakehouse.bronze import landing, postgres_extract
from lakehouse.core import lineage, ops_db, ownership
from lakehouse.core.errors import LakehouseError, StepLockedError
from lakehouse.core.reconcile import Reconciliation
from lakehouse.core.settings import Settings
from lakehouse.core.storage import Lake
from lakehouse.generator import landing as landing_files
from lakehouse.generator import source_db
from lakehouse.maintenance import ops
from lakehouse.maintenance.ops import MaintenanceResult
from lakehouse.silver import current_state, reference, scd2
from lakehouse.silver import events as silver_events

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
            raise StepLockedError(f"another '{step}' run holds {path}; wait for it to finish") from None
        yield


def generate_events(lake: Lake, settings: Settings, hooks: Hooks | None = None) -> Counter[str]:
    hooks = hooks or Hooks()
    return landing_files.write_events(
        lake,
        settings.generator,
        on_plan=lambda total: hooks.plan("generate events", total),
        on_lines=lambda lines: hooks.advance("generate events", lines),
    )


def land_events(lake: Lake, settings: Settings, hooks: Hooks | None = None) -> tuple[Counter[str], bool]:
    """The configured generator's landing files: reused when the same set is complete in
    landing/events already, else written. Returns (faults injected, reused). A different set
    under the same file names that bronze has ingested is an error (its files would be skipped)."""
    g = settings.generator
    counts = landing_files.landed(lake, g)
    if counts is not None:
        return counts, True
    clash = sorted(set(landing_files.file_names(g)) & landing.ingested_files(lake))
    if clash:
        found = landing_files.marker(lake, g)
        made = found.get("spec") if found else None
        now = landing_files.spec_record(g)
        diff = (
            [f"{k} {made.get(k)} -> {v}" for k, v in now.items() if made.get(k) != v]
            if isinstance(made, dict)
            else []
        )
        raise LakehouseError(
            f"bronze has ingested {clash[0]} ... ({len(clash)} files) made with other generator settings"
            f"{' (' + ', '.join(diff) + ')' if diff else ''}: new files under those names would never be "
            "read; use another generator.seed or a fresh lake (LAKEHOUSE_LAKE_ROOT)"
        )
    return generate_events(lake, settings, hooks), False


def generate_source(settings: Settings) -> source_db.LoadSummary:
    return source_db.load(settings.postgres.source_dsn, settings.generator)


def apply_changes(settings: Settings, batch: int) -> str | None:
    return source_db.apply_changes(settings.postgres.source_dsn, settings.generator, batch)


def bronze(
    lake: Lake,
    settings: Settings,
    run_id: str,
    hooks: Hooks | None = None,
    sources: tuple[str, ...] = ("events", "postgres"),
) -> list[Reconciliation]:
    hooks = hooks or Hooks()
    recs: list[Reconciliation] = []
    targets = [landing.TABLE] if "events" in sources else []
    targets += [t.bronze for t in postgres_extract.SOURCE_TABLES] if "postgres" in sources else []
    _check_embedded(lake, targets)
    _secrets_first(settings)
    if "postgres" in sources:  # before the landing files' commit: all of the step or none of it
        postgres_extract.check_reachable(settings.postgres.source_dsn)
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
                lake, settings.postgres.source_dsn, run_id, settings.bronze.extract_lookback_minutes
            )
        # inside: an unbalanced run is a failed lineage run; PostgreSQL ops.reconciliation gets it too
        ops_db.record_reconciliation(lake, settings.postgres, recs)
    return recs


def _secrets_first(settings: Settings) -> None:
    """Read the serving database's Secret before a step's first write (its reconciliation goes
    there after the step's commits): a Secret not mounted stops the step whole, in one line."""
    settings.postgres.dsn(settings.postgres.serving_db)


def _check_embedded(lake: Lake, tables: list[str]) -> None:
    """Refuse the step before its first write when any table it writes belongs to Spark, so a
    mixed lake never gets half a step from each engine."""
    for table in tables:
        ownership.check(lake, table, ownership.EMBEDDED)


def silver(lake: Lake, settings: Settings, run_id: str, hooks: Hooks | None = None) -> list[Reconciliation]:
    hooks = hooks or Hooks()
    recs: list[Reconciliation] = []
    _secrets_first(settings)
    _check_embedded(
        lake,
        [
            silver_events.EVENTS,
            silver_events.QUARANTINE,
            *reference.tables(settings.silver.base_currency),
            *(d.table for d in scd2.DIMENSIONS),
            *(t.table for t in current_state.TABLES),
        ],
    )
    with lineage.step(lake, "silver"), step_lock(settings, "silver"):
        recs.append(
            silver_events.run(
                lake,
                settings.silver,
                run_id,
                on_rows=lambda n: hooks.advance("silver events", n),
                on_plan=lambda total: hooks.plan("silver events", total),
            )
        )
        for dim in scd2.DIMENSIONS:
            recs.append(scd2.apply(lake, dim, run_id))
        for table in current_state.TABLES:
            recs.append(current_state.apply(lake, table, run_id))
        ops_db.record_reconciliation(lake, settings.postgres, recs)
    return recs


def maintain(
    lake: Lake,
    settings: Settings,
    run_id: str,
    tables: list[str] | None = None,
    on_table: Callable[[int, int, str], None] | None = None,
) -> list[MaintenanceResult]:
    """OPTIMIZE, VACUUM and checkpoint the tables (those named, `maintenance.tables`, or all), as
    one lineage job run; the results go to ops.maintenance. `on_table(i, n, name)` is told
    before each table (progress)."""
    names = ops.maintained_tables(lake, settings.maintenance, tables)
    with lineage.job_run(settings, "lakehouse.maintenance", names, [*names, ops.REPORT_TABLE], lake=lake):
        if on_table is None:
            return ops.maintain(lake, settings.maintenance, run_id, names)
        results: list[MaintenanceResult] = []
        for i, name in enumerate(names):
            on_table(i, len(names), name)
            results += ops.maintain(lake, settings.maintenance, run_id, [name])
        return results
