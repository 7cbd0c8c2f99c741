"""`lakehouse check <layer>`: run a layer's contracts and dbt tests, keep the results, decide.

    bronze  contracts of the bronze tables (schema, lineage columns, reconciliation)
    silver  contracts of the silver tables + dbt tests and freshness of the dbt sources (silver, ops),
            both dbt commands in one dbt process
    gold    dbt tests of the gold models (data tests, singular tests, unit tests): the results the
            gold build's `dbt build` recorded for them when the build database and the dbt project
            are unchanged since that build (nothing changed, so running them again would repeat
            the same queries on the same tables), else `dbt test` runs them again (or: --rerun)

Every result is appended to ops.quality_results (Delta) and to PostgreSQL ops.quality_results
when the serving database is reachable. Any blocking result (fail/error) makes the gate fail:
callers stop everything downstream (QualityGateError, non-zero exit).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import psycopg

from lakehouse.bronze import contracts as bronze_contracts
from lakehouse.core import quality
from lakehouse.core.errors import CheckFailedError, LakehouseError
from lakehouse.core.quality import CheckResult
from lakehouse.core.reconcile import new_run_id
from lakehouse.core.storage import Lake
from lakehouse.gold.build_ledger import BuildLedger
from lakehouse.gold.dbt import DbtProject
from lakehouse.gold.dbt_results import DbtRun, NodeResult
from lakehouse.silver import contracts as silver_contracts

LAYERS = ("bronze", "silver", "gold")
# Each layer declares its tables' contracts; gold's checks are its dbt tests.
LAYER_CONTRACTS = {"bronze": bronze_contracts.CONTRACTS, "silver": silver_contracts.CONTRACTS}
_STATUS = {
    "success": "pass",
    "pass": "pass",
    "warn": "warn",
    "fail": "fail",
    "error": "error",
    "runtime error": "error",
    "skipped": "skipped",
    "runtime_error": "error",
}


class QualityGateError(CheckFailedError):
    """A layer's gate failed: downstream steps must not run."""

    def __init__(self, report: GateReport) -> None:
        self.report = report
        bad = report.blocking
        names = ", ".join(r.check_name for r in bad[:5]) + (" ..." if len(bad) > 5 else "")
        super().__init__(
            f"quality gate '{report.layer}' failed: {len(bad)} of {len(report.results)} checks "
            f"failed ({names}); downstream steps were not run. Details: lakehouse check {report.layer}"
        )


@dataclass
class GateReport:
    layer: str
    run_id: str
    results: list[CheckResult] = field(default_factory=list)
    seconds: float = 0.0
    published: bool = False
    notes: list[str] = field(default_factory=list)  # how the checks were run (e.g. results reused)

    @property
    def blocking(self) -> list[CheckResult]:
        return [r for r in self.results if r.blocking]

    @property
    def passed(self) -> bool:
        # A selection without tests (a report model, one `--select` of the per-model fan-out)
        # checks nothing and so blocks nothing: it passes and says "no checks". A gate that needs
        # its checks to exist adds a failing row itself (gold's "gold:built").
        return not self.blocking

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for r in self.results:
            out[r.status] = out.get(r.status, 0) + 1
        return out


def dbt_results(run: DbtRun | list[NodeResult], layer: str, run_id: str) -> list[CheckResult]:
    """CheckResults from a dbt run's per-node results (tests, unit tests, freshness, models)."""
    out = []
    for node in run.results if isinstance(run, DbtRun) else run:
        if (
            node.resource_type in ("exposure", "semantic_model", "metric", "saved_query")
            or node.status == "no-op"
        ):
            continue  # nothing was checked
        kind = {"test": "dbt_test", "unit_test": "unit_test", "source": "freshness"}.get(
            node.resource_type, node.resource_type
        )
        status = _STATUS.get(node.status, "error")
        if kind in ("model", "seed") and status == "pass":
            continue  # built fine: not a check
        out.append(
            CheckResult(
                run_id,
                layer,
                f"dbt:{node.name}",
                kind,
                node.relation or node.unique_id,
                status,
                node.failures if status != "error" else max(node.failures, 1),
                node.message if status != "pass" else "",
                seconds=round(node.seconds, 3),
            )
        )
    return out


def _dbt_checks(
    project: DbtProject,
    lake: Lake,
    report: GateReport,
    on_line: Callable[[str], None] | None,
    rerun: bool = False,
) -> list[CheckResult]:
    layer, run_id = report.layer, report.run_id
    out: list[CheckResult] = []
    if layer == "silver":
        # source tests and freshness in one dbt process (dbt is imported and the project parsed once)
        tests, fresh = project.run_many(
            lake,
            [
                (["test", "--select", "source:silver", "source:ops"], "run_results.json"),
                (["source", "freshness"], "sources.json"),
            ],
            on_line,
            job="lakehouse.check.silver",
        )
        out += dbt_results(tests, layer, run_id) + dbt_results(fresh, layer, run_id)
    elif layer == "gold":
        if not project.duckdb_path.exists():
            out.append(
                CheckResult(
                    run_id,
                    layer,
                    "gold:built",
                    "model",
                    str(project.duckdb_path),
                    "fail",
                    1,
                    "no gold build: run `lakehouse gold build` first",
                )
            )
            return out
        ledger = None if rerun else BuildLedger.load(project)
        why = "--rerun" if rerun else ("no build ledger" if ledger is None else ledger.stale(project))
        if ledger is not None and why is None:
            report.notes.append(
                f"dbt tests: the results of gold build {ledger.invocations[-1] or '?'} "
                f"({len(ledger.expected)} tests; gold.duckdb and the dbt project unchanged since), not run again"
            )
            return dbt_results(ledger.gate_results(), layer, run_id)
        report.notes.append(f"dbt tests run again ({why})")
        run = project.run(lake, ["test", "--exclude", "source:*"], on_line, job="lakehouse.check.gold")
        out += dbt_results(run, layer, run_id)
    return out


def run_gate(
    project: DbtProject,
    layer: str,
    lake: Lake,
    on_line: Callable[[str], None] | None = None,
    publish: bool = True,
    rerun: bool = False,
) -> GateReport:
    """Run the gate for `layer` and record the results; never raises for failing checks.
    rerun=True: the gold gate runs its dbt tests even when the build's results still stand."""
    if layer not in LAYERS:
        raise LakehouseError(f"unknown layer {layer!r}: choose one of {', '.join(LAYERS)}")
    report = GateReport(layer, new_run_id())
    start = time.perf_counter()
    report.results += quality.check(lake, layer, LAYER_CONTRACTS.get(layer, ()), report.run_id)
    if layer in ("silver", "gold"):
        with project.exclusive():  # the ledger and the build database stay as they were read
            report.results += _dbt_checks(project, lake, report, on_line, rerun)
    report.seconds = time.perf_counter() - start
    quality.store(lake, report.results)
    if publish:
        try:
            quality.publish(project.serving, report.results)
            report.published = True
        except psycopg.OperationalError:
            report.published = False  # serving database down: the Delta history still has them
    return report


def enforce(report: GateReport) -> GateReport:
    if not report.passed:
        raise QualityGateError(report)
    return report


def summary_json(report: GateReport) -> str:
    return json.dumps(
        {
            "layer": report.layer,
            "run_id": report.run_id,
            "passed": report.passed,
            "checks": len(report.results),
            "counts": report.counts(),
            "notes": report.notes,
            "failed": [
                {"check": r.check_name, "status": r.status, "failures": r.failures, "message": r.message}
                for r in report.blocking
            ],
        },
        indent=2,
    )
