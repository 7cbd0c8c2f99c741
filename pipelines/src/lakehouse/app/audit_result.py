"""One row of the independent reconciliation (ops.source_audit): what a source holds, what its
target holds of it, and the difference as rows lost and rows repeated."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class AuditResult:
    check_name: str
    source: str
    target: str
    expected: int = 0
    found: int = 0
    lost: int = 0
    duplicated: int = 0
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.lost == 0 and self.duplicated == 0
