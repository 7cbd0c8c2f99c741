"""Reconciliation: every run proves, per source, that rows in = rows accounted for."""

from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime

import pyarrow as pa

from lakehouse.core import delta
from lakehouse.core.errors import ReconciliationError
from lakehouse.core.storage import Lake

TABLE = "ops.reconciliation"

SCHEMA = pa.schema(
    [
        ("run_id", pa.string()),
        ("step", pa.string()),
        ("source", pa.string()),
        ("target", pa.string()),
        ("rows_in", pa.int64()),
        ("inserted", pa.int64()),
        ("updated", pa.int64()),
        ("unchanged", pa.int64()),
        ("quarantined", pa.int64()),
        ("duplicates", pa.int64()),
        ("balanced", pa.bool_()),
        ("started_at", pa.timestamp("us", tz="UTC")),
        ("finished_at", pa.timestamp("us", tz="UTC")),
        ("seconds", pa.float64()),
        ("detail", pa.string()),
    ]
)


def new_run_id() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:8]


def now() -> datetime:
    return datetime.now(UTC)


@dataclass
class Reconciliation:
    run_id: str
    step: str
    source: str
    target: str
    rows_in: int = 0
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    quarantined: int = 0
    duplicates: int = 0
    started_at: datetime = field(default_factory=now)
    finished_at: datetime | None = None
    detail: str = ""

    @property
    def accounted(self) -> int:
        return self.inserted + self.updated + self.unchanged + self.quarantined + self.duplicates

    @property
    def balanced(self) -> bool:
        return self.rows_in == self.accounted

    def add(self, other: Reconciliation) -> None:
        for name in ("rows_in", "inserted", "updated", "unchanged", "quarantined", "duplicates"):
            setattr(self, name, getattr(self, name) + getattr(other, name))

    def finish(self) -> Reconciliation:
        self.finished_at = now()
        return self

    def as_row(self) -> dict[str, object]:
        row = asdict(self)
        row["balanced"] = self.balanced
        end = self.finished_at or now()
        row["finished_at"] = end
        row["seconds"] = round((end - self.started_at).total_seconds(), 3)
        return row


def record(lake: Lake, recs: list[Reconciliation], strict: bool = True) -> None:
    """Store reconciliation rows; raise if any run does not balance (after storing it)."""
    if not recs:
        return
    table = pa.Table.from_pylist([r.as_row() for r in recs], schema=SCHEMA)
    delta.append(lake, TABLE, table, partition_by=None)
    bad = [r for r in recs if not r.balanced]
    if strict and bad:
        r = bad[0]
        raise ReconciliationError(
            f"{r.step} {r.source} -> {r.target}: rows in {r.rows_in} != accounted {r.accounted} (run {r.run_id})"
        )
