"""Generator events written as landing files, as an upstream system would drop them.

Each file appears atomically (written aside, then moved into place), so bronze never reads half
a file. `write_events` lands the configured stream; `land_days` lands whole extra days of history.

A finished set of files leaves a marker, `_generated-s<seed>.json` (the settings it was made
with, its files and counts): `landed` finds a set that is there already, so a rerun reuses it
instead of writing the same bytes again.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from datetime import time as clock

import pyarrow.fs as pafs

from lakehouse.core.errors import LakehouseError
from lakehouse.core.settings import GeneratorSettings
from lakehouse.core.storage import Lake
from lakehouse.generator.events import EventSpec, file_name, generate_files


def marker_name(seed: int) -> str:
    return f"_generated-s{seed}.json"


def spec_record(g: GeneratorSettings) -> dict[str, object]:
    """What the landing files of `g` depend on (two equal records give identical files)."""
    spec = EventSpec.from_settings(g)
    return {
        "seed": spec.seed,
        "events": spec.total,
        "files": g.event_files,
        "users": spec.users,
        "products": spec.products,
        "start": spec.start.isoformat(),
        "span_seconds": spec.span_seconds,
        "faults": spec.faults.model_dump(),
    }


def file_names(g: GeneratorSettings) -> list[str]:
    return [file_name(g.seed, part) for part in range(g.event_files)]


def marker(lake: Lake, g: GeneratorSettings) -> dict[str, object] | None:
    """The marker of seed `g.seed`'s file set in landing/events, or None."""
    fs, base = lake.landing("events")
    path = f"{base}/{marker_name(g.seed)}"
    if fs.get_file_info(path).type != pafs.FileType.File:
        return None
    with fs.open_input_stream(path) as stream:
        try:
            data = json.loads(stream.read())
        except ValueError:
            return None
    return data if isinstance(data, dict) else None


def landed(lake: Lake, g: GeneratorSettings) -> Counter[str] | None:
    """The counts of the file set `g` would write when it is already complete in landing/events
    (same settings, every file present); None when it has to be written."""
    found = marker(lake, g)
    if not found or found.get("spec") != spec_record(g):
        return None
    fs, base = lake.landing("events")
    infos = fs.get_file_info([f"{base}/{name}" for name in file_names(g)])
    if any(i.type != pafs.FileType.File for i in infos):
        return None
    counts = found.get("counts")
    return Counter({str(k): int(v) for k, v in counts.items()}) if isinstance(counts, dict) else Counter()


def write_events(
    lake: Lake,
    g: GeneratorSettings,
    on_plan: Callable[[int], None] | None = None,
    on_lines: Callable[[int], None] | None = None,
) -> Counter[str]:
    """Write the configured events as NDJSON files into <lake>/landing/events/ (at `g.rate` events/s
    when set); returns the faults injected."""
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

    if on_plan:
        on_plan(g.events)
    counts = generate_files(EventSpec.from_settings(g), g.event_files, write, on_part=on_lines)
    record = {"spec": spec_record(g), "files": file_names(g), "counts": dict(counts)}
    with fs.open_output_stream(f"{base}/{marker_name(g.seed)}") as out:
        out.write(json.dumps(record, indent=1).encode())
    return counts


BACKFILL_FOLDER = "backfill"


def _days(first: date, last: date) -> list[date]:
    if last < first:
        raise LakehouseError(f"backfill range is empty: {first} > {last}")
    if (last - first).days > 366:
        raise LakehouseError("backfill ranges are limited to one year per run")
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


def land_days(
    lake: Lake, g: GeneratorSettings, events_per_day: int, first: date, last: date
) -> dict[str, int]:
    """Land one day of source events per date in [first, last] under
    landing/events/backfill/<date>/, for bronze to pick up on its next run.

    Idempotent: a day whose folder already holds its files is left alone (bronze ingests each
    file exactly once, so rerunning a backfill never duplicates rows). Each day's events have
    their own seed, so days never share event ids. Returns {date: files written (0 = present)}.
    """
    fs, base = lake.landing("events")
    parts = max(1, min(g.event_files, 4))
    out: dict[str, int] = {}
    for day in _days(first, last):
        folder = f"{base}/{BACKFILL_FOLDER}/{day.isoformat()}"
        marker = f"{folder}/_SUCCESS"
        if fs.get_file_info(marker).type == pafs.FileType.File:
            out[day.isoformat()] = 0
            continue
        fs.create_dir(folder, recursive=True)
        spec = EventSpec(
            seed=g.seed * 1_000_003 + day.toordinal(),
            total=events_per_day,
            users=g.users,
            products=g.products,
            start=datetime.combine(day, clock(0, 0), tzinfo=UTC),
            span_seconds=86400.0,
            faults=g.faults,
        )

        def write(name: str, data: bytes, folder: str = folder) -> None:
            tmp = f"{folder}/.{name}.part"
            with fs.open_output_stream(tmp) as stream:
                stream.write(data)
            fs.move(tmp, f"{folder}/{name}")

        generate_files(spec, parts, write, workers=1)
        with fs.open_output_stream(marker) as stream:
            stream.write(json.dumps({"day": day.isoformat(), "parts": parts}).encode())
        out[day.isoformat()] = parts
    return out
