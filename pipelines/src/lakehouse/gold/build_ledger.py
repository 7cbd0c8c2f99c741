"""The build ledger: what the last gold builds proved, so the gold gate need not prove it again.

After each `dbt build`, the result of every node (a full build replaces them; `--select` builds,
one Airflow task per model, merge in), the tests the gold gate runs, a digest of the dbt project
and the state of gold.duckdb. While both are unchanged, `lakehouse check gold` reuses these
results instead of running `dbt test`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from lakehouse.gold.dbt import DbtProject
from lakehouse.gold.dbt_results import NodeResult, parse_run_results

_PASSED = ("success", "pass", "no-op")


@dataclass
class BuildLedger:
    """The results of the `dbt build` runs that made the current gold database.

    `lakehouse gold build` records, after each `dbt build`, every node's result (a full build
    replaces them, a `--select` build -- one Airflow task per model -- merges its nodes in), the
    tests a gate must see (`expected`: every data test and unit test of the manifest that does not
    read a source, i.e. what `dbt test --exclude source:*` runs), the digest of the project files
    and the state of gold.duckdb right after dbt finished. The gold gate reuses these results only
    when the project and the database are unchanged since and every expected test has a result;
    otherwise it runs the tests again.
    """

    project: str
    database: dict[str, Any]
    expected: list[str]
    nodes: dict[str, dict[str, Any]]
    invocations: list[str]

    @staticmethod
    def gate_tests(manifest: dict[str, Any]) -> list[str]:
        """Data tests and unit tests of the manifest that read no source (the gold gate's tests)."""
        out = []
        for uid, node in [*manifest.get("nodes", {}).items(), *manifest.get("unit_tests", {}).items()]:
            if node.get("resource_type") not in ("test", "unit_test"):
                continue
            if not node.get("config", {}).get("enabled", True):
                continue
            parents = node.get("depends_on", {}).get("nodes", [])
            if not any(p.startswith("source.") for p in parents):
                out.append(uid)
        return sorted(out)

    @classmethod
    def load(cls, project: DbtProject) -> BuildLedger | None:
        try:
            data = json.loads(project.ledger_path.read_text())
            return cls(
                data["project"], data["database"], data["expected"], data["nodes"], data["invocations"]
            )
        except (OSError, ValueError, KeyError, TypeError):
            return None

    @classmethod
    def record(cls, project: DbtProject, results: dict[str, Any], full: bool) -> BuildLedger:
        """Record a finished `dbt build` (its run_results.json); a full build starts afresh."""
        state = project.project_state()
        previous = None if full else cls.load(project)
        if previous is not None and previous.project != state:
            previous = None  # the project changed: earlier results say nothing about it now
        nodes = dict(previous.nodes) if previous else {}
        keys = ("unique_id", "status", "failures", "message", "execution_time", "relation_name")
        for r in results.get("results", []):
            nodes[r["unique_id"]] = {k: r.get(k) for k in keys}
        invocation = str(results.get("metadata", {}).get("invocation_id") or "")
        ledger = cls(
            state,
            project.database_state(),
            cls.gate_tests(project.artifact("manifest.json")),
            nodes,
            [*(previous.invocations if previous else []), invocation][-50:],
        )
        tmp = project.ledger_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(ledger.__dict__))
        tmp.replace(project.ledger_path)
        return ledger

    def stale(self, project: DbtProject) -> str | None:
        """Why these results cannot stand for the current gold database, or None."""
        if self.database != project.database_state():
            return "gold.duckdb changed after the last gold build"
        if self.project != project.project_state():
            return "the dbt project changed after the last gold build"
        missing = [t for t in self.expected if t not in self.nodes]
        if missing:
            return f"{len(missing)} test(s) have no result in the gold builds (e.g. {missing[0]})"
        skipped = [t for t in self.expected if self.nodes[t].get("status") == "skipped"]
        if skipped and not any(r.failed for r in self.gate_results()):
            # unchecked tests and nothing failed: the verdict is open, run them. (When a test or a
            # model failed, the gate fails whatever the skipped ones would say.)
            return f"{len(skipped)} test(s) were skipped by the gold build (e.g. {skipped[0]})"
        return None

    def gate_results(self) -> list[NodeResult]:
        """The expected tests' results, and every model/seed/snapshot that did not pass."""
        expected = set(self.expected)
        picked = [
            n
            for uid, n in sorted(self.nodes.items())
            if uid in expected
            or (not uid.startswith(("test.", "unit_test.")) and str(n.get("status")) not in _PASSED)
        ]
        return parse_run_results({"results": picked})
