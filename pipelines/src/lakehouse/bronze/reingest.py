"""Re-ingest landing files bronze already holds: after a file in the landing folder was
replaced (a corrected export), its rows in bronze.events are replaced by the file's lines as
they are now.

The files are chosen by name (the path under landing/events), a range first..last inclusive,
where `last` also takes every name it is a prefix of (`--to 2026-11-03` takes the folder
`2026-11-03/`). Every chosen file is read before anything is written; then ONE Delta commit
removes their rows and adds the new ones (an overwrite whose predicate is exactly those files),
with bronze's landing app transaction moved on in the same commit. Rerun, it replaces them again
with the same lines: idempotent. Afterwards bronze holds as many rows of each file as the file
has lines, which is checked before returning.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

import pyarrow as pa
from deltalake import write_deltalake

from lakehouse.bronze import landing
from lakehouse.core import delta, ownership
from lakehouse.core.errors import LakehouseError
from lakehouse.core.reconcile import Reconciliation
from lakehouse.core.storage import Lake


@dataclass
class ReingestResult:
    files: list[str] = field(default_factory=list)
    rows_before: int = 0
    rows_after: int = 0
    reconciliation: Reconciliation | None = None


def in_range(name: str, first: str, last: str) -> bool:
    return name >= first and (name <= last or name.startswith(last))


def _quote(name: str) -> str:
    return "'" + name.replace("'", "''") + "'"


def reingest(lake: Lake, run_id: str, first: str, last: str) -> ReingestResult:
    """Replace bronze's rows of the ingested landing files named first..last (see the module)."""
    if first > last and not first.startswith(last):
        raise LakehouseError(f"re-ingest range is empty: {first!r} sorts after {last!r}")
    ownership.check(lake, landing.TABLE, ownership.EMBEDDED)
    fs, base = lake.landing("events")
    # one snapshot for which files are ingested, their rows, the watermark and the commit, as a
    # landing ingest does: a landing ingest or another re-ingest committing after this read
    # fails this commit (delta-rs: same app id) instead of slipping in between unseen
    snapshot = delta.open_table(lake, landing.TABLE)
    listing = landing.list_landing(lake, fs, base, snapshot)
    chosen = [f for f in listing.ingested if in_range(f.name, first, last)]
    if not chosen:
        pending = [f.name for _, f in listing.todo if in_range(f.name, first, last)]
        hint = f" ({len(pending)} not ingested yet: `lakehouse bronze` takes them)" if pending else ""
        raise LakehouseError(f"no ingested landing file named {first!r}..{last!r}{hint}")
    assert snapshot is not None, "files are ingested, so bronze.events exists"
    held = landing.rows_per_file(lake, snapshot)
    batch_id = landing.new_batch_id()
    at = datetime.now(UTC)
    parts: list[pa.Table] = []
    rows = 0
    for f in chosen:
        try:
            lines = landing.split_lines(landing._read(fs, f"{base}/{f.name}", f.codec))
        except (OSError, pa.ArrowInvalid) as exc:
            raise LakehouseError(
                f"cannot read landing file {f.name} ({exc}): nothing re-ingested; replace the file and rerun"
            ) from None
        parts.append(landing.file_batch(f.name, lines, batch_id, rows, at))
        rows += len(lines)
    names = [f.name for f in chosen]
    result = ReingestResult(files=names, rows_before=sum(held.get(n, 0) for n in names))
    rec = Reconciliation(run_id, "bronze", "landing/events (re-ingest)", landing.TABLE)
    rec.rows_in = rows
    version = (snapshot.transaction_version(landing.APP_ID) or 0) + 1
    write_deltalake(
        snapshot,
        pa.concat_tables(parts) if parts else landing.SCHEMA.empty_table(),
        mode="overwrite",
        predicate=f"source_system = 'landing' AND source_file IN ({', '.join(map(_quote, names))})",
        storage_options=lake.options(landing.TABLE),
        commit_properties=delta.commit_props(
            landing.APP_ID,
            version,
            files=names,
            batch_id=batch_id,
            run_id=run_id,
            reingested=True,
        ),
    )
    after = landing.rows_per_file(lake)
    result.rows_after = sum(after.get(n, 0) for n in names)
    rec.inserted = result.rows_after
    rec.detail = f"{len(names)} files re-read; {result.rows_before} rows replaced by {result.rows_after}"
    result.reconciliation = rec.finish()
    if result.rows_after != rows:
        raise LakehouseError(
            f"re-ingest of {len(names)} files: {rows} lines read but bronze holds {result.rows_after} rows of them"
        )
    return result
