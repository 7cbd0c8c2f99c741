"""What a dbt command reported: one result per node, read from dbt's run_results.json."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class NodeResult:
    unique_id: str
    resource_type: str
    name: str
    status: str  # success | pass | fail | error | warn | skipped | runtime error ...
    failures: int
    message: str
    seconds: float
    relation: str = ""

    @property
    def failed(self) -> bool:
        return self.status in ("fail", "error", "runtime error")


@dataclass
class DbtRun:
    command: list[str]
    returncode: int
    seconds: float
    results: list[NodeResult] = field(default_factory=list)
    output: str = ""

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not any(r.failed for r in self.results)

    @property
    def failed(self) -> list[NodeResult]:
        return [r for r in self.results if r.failed]

    @property
    def skipped(self) -> list[NodeResult]:
        return [r for r in self.results if r.status == "skipped"]


def parse_run_results(data: dict[str, Any]) -> list[NodeResult]:
    out = []
    for r in data.get("results", []):
        uid = r["unique_id"]
        kind = uid.split(".", 1)[0]
        out.append(
            NodeResult(
                unique_id=uid,
                resource_type=kind,
                name=uid.split(".")[-1] if kind != "source" else ".".join(uid.split(".")[-2:]),
                status=str(r.get("status")),
                failures=int(r.get("failures") or 0),
                message=str(r.get("message") or r.get("error") or "")[:2000],
                seconds=float(r.get("execution_time") or 0.0),
                relation=str(r.get("relation_name") or ""),
            )
        )
    return out
