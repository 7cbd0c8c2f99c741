"""One writer per table: which engine writes a Delta table is a property of the table.

`lakehouse.engine` in the table's properties names the engine that writes it: `embedded`
(delta-rs + DuckDB) or `spark` (delta-spark). A table without the property was made by the
embedded engine (the default, and the only writer before Spark could write) and belongs to it.
Every writer checks the property before it commits (`check`) and refuses a table owned by the
other engine with one line; `hand_over` moves a table to the other engine, as a commit of its own
after the owner's last one, so the new owner continues from the shared app-transaction
watermarks and nothing is reprocessed, lost or repeated.

Why the rule, and not a lock: on S3, delta-rs commits with a conditional put (the log entry is
written only if absent), while delta-spark's S3 log store has no conditional write (it is safe with
one driver per table, or with the DynamoDB log store). The two engines do not coordinate their
commits, so two engines writing one table at once could overwrite each other's log entry; one
owning engine per table, handed over explicitly, is what makes mixing them safe.
"""

from __future__ import annotations

from lakehouse.core.errors import LakehouseError
from lakehouse.core.storage import Lake

PROPERTY = "lakehouse.engine"
EMBEDDED = "embedded"
SPARK = "spark"
ENGINES = (EMBEDDED, SPARK)


class OwnershipError(LakehouseError):
    """A job tried to write a table another engine owns."""


def properties(engine: str) -> dict[str, str]:
    """The table property a new table gets from the engine that creates it."""
    return {PROPERTY: engine}


def owner(lake: Lake, table: str) -> str | None:
    """The engine that writes `table`; None when the table does not exist yet."""
    from lakehouse.core import delta

    dt = delta.open_table(lake, table)
    if dt is None:
        return None
    return dt.metadata().configuration.get(PROPERTY) or EMBEDDED


def check(lake: Lake, table: str, engine: str) -> None:
    """Refuse (one line) when `table` exists and is owned by an engine other than `engine`."""
    current = owner(lake, table)
    if current is not None and current != engine:
        raise OwnershipError(
            f"{table} is written by the {current} engine (table property {PROPERTY}={current}), "
            f"not {engine}: run `lakehouse spark handover {table} --to {engine}` once its last "
            f"{current} job has finished"
        )


def hand_over(lake: Lake, table: str, to: str) -> str:
    """Make `to` the engine that writes `table` (a commit that changes only the property).
    Returns the previous owner."""
    if to not in ENGINES:
        raise OwnershipError(f"unknown engine {to!r}: choose one of {', '.join(ENGINES)}")
    from lakehouse.core import delta

    dt = delta.open_table(lake, table)
    if dt is None:
        raise OwnershipError(f"{table} does not exist at {lake.table_uri(table)}: nothing to hand over")
    before = dt.metadata().configuration.get(PROPERTY) or EMBEDDED
    if before != to:
        dt.alter.set_table_properties({PROPERTY: to}, raise_if_not_exists=False)
    return before
