"""Gold build: `dbt build` over silver (seeds, models, contracts, tests), results recorded as
quality results (layer gold) and in the build ledger (the gold gate reads it instead of running
the same tests again), and the marts exported as Delta tables gold.<name> in the lake."""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass

import duckdb
import psycopg

from lakehouse.core import delta, quality
from lakehouse.core.reconcile import Reconciliation, new_run_id
from lakehouse.core.storage import Lake
from lakehouse.gold import gate
from lakehouse.gold.build_ledger import BuildLedger
from lakehouse.gold.dbt import DbtProject
from lakehouse.gold.dbt_results import DbtRun
from lakehouse.gold.publish import marts


@dataclass
class BuildResult:
    run: DbtRun
    report: gate.GateReport
    tables: dict[str, int]
    seconds: float

    @property
    def ok(self) -> bool:
        return self.run.ok and self.report.passed


def export_delta(lake: Lake, project: DbtProject, run_id: str) -> dict[str, int]:
    """Overwrite gold.<mart> Delta tables with the published marts (one commit each)."""
    out: dict[str, int] = {}
    con = duckdb.connect(str(project.duckdb_path), read_only=True)
    try:
        for mart in marts(project.artifact("manifest.json")):
            table = con.execute(f"SELECT * FROM {mart.relation}").to_arrow_table()
            delta.overwrite(lake, f"gold.{mart.name}", table, run_id=run_id)
            out[mart.name] = table.num_rows
    finally:
        con.close()
    return out


def build(
    project: DbtProject,
    lake: Lake,
    select: list[str] | None = None,
    on_line: Callable[[str], None] | None = None,
    full_refresh: bool = False,
    indirect_selection: str | None = None,
) -> BuildResult:
    """Run `dbt build`; record every test as a gold quality result; export marts to Delta.

    Does not raise on failing tests (dbt skips what depends on them); check `.ok`, or call
    `gate.enforce(result.report)` to stop downstream work. Holds the build database from dbt's
    run to the ledger and the Delta export (see DbtProject.exclusive)."""
    with project.exclusive():
        return _build(project, lake, select, on_line, full_refresh, indirect_selection)


def _build(
    project: DbtProject,
    lake: Lake,
    select: list[str] | None,
    on_line: Callable[[str], None] | None,
    full_refresh: bool,
    indirect_selection: str | None,
) -> BuildResult:
    run_id = new_run_id()
    start = time.perf_counter()
    args = (
        ["build"]
        + (["--select", *select] if select else [])
        + (["--indirect-selection", indirect_selection] if indirect_selection else [])
        + (["--full-refresh"] if full_refresh else [])
    )
    run = project.run(lake, args, on_line, job="lakehouse.gold.build")
    results_file = project.target_path / "run_results.json"
    if results_file.exists():  # kept apart: later dbt commands (test, docs) overwrite run_results.json
        shutil.copyfile(results_file, project.build_results_path)
        # what the gold gate reads instead of running the same tests again (while nothing changes)
        BuildLedger.record(project, json.loads(results_file.read_text()), full=not select)
    report = gate.GateReport("gold", run_id, gate.dbt_results(run, "gold", run_id), run.seconds)
    quality.store(lake, report.results)
    try:
        quality.publish(project.serving, report.results)
        report.published = True
    except psycopg.OperationalError:
        report.published = False  # serving database down: the Delta history still has them
    tables = export_delta(lake, project, run_id) if run.ok and not select else {}
    return BuildResult(run, report, tables, time.perf_counter() - start)


def reconciliation(result: BuildResult, run_id: str) -> Reconciliation:
    """A reconciliation row for the demo: gold tables written by this build."""
    rec = Reconciliation(run_id, "gold", "silver.*", "gold.* (dbt)")
    rec.rows_in = rec.inserted = sum(result.tables.values())
    rec.detail = f"{len(result.tables)} marts; dbt {'ok' if result.run.ok else 'FAILED'}"
    return rec.finish()
