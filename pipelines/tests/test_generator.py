"""The generator: deterministic for a seed, every fault kind present, counts that add up."""

from __future__ import annotations

import json
from collections import Counter

from lakehouse.core.settings import FaultRates, load_settings
from lakehouse.generator.events import CORRUPTIONS, EventSpec, clean_event, generate_files, generate_part


def _spec(events: int = 4000, seed: int = 7, **faults: float) -> EventSpec:
    s = load_settings("local", overrides={"generator.events": events, "generator.seed": seed})
    spec = EventSpec.from_settings(s.generator)
    if faults:
        spec = EventSpec(
            spec.seed,
            spec.total,
            spec.users,
            spec.products,
            spec.start,
            spec.span_seconds,
            FaultRates(**{**spec.faults.model_dump(), **faults}),
        )
    return spec


def test_same_seed_same_bytes_other_seed_other_bytes() -> None:
    a = generate_part(_spec(), 0, 1)[1]
    b = generate_part(_spec(), 0, 1)[1]
    c = generate_part(_spec(seed=8), 0, 1)[1]
    assert a == b
    assert a != c


def test_parts_are_independent_of_how_the_work_is_split() -> None:
    spec = _spec(events=3000)
    whole = generate_part(spec, 0, 1)[1]
    split = b"".join(generate_part(spec, p, 3)[1] for p in range(3))
    assert whole == split


def test_every_fault_kind_is_injected_and_counted() -> None:
    rates = {k: 0.02 for k in CORRUPTIONS}
    spec = _spec(events=5000, exact_duplicate=0.02, conflicting_duplicate=0.02, **rates)
    files: dict[str, bytes] = {}
    counts = generate_files(spec, 2, files.__setitem__, workers=1)
    lines = [ln for data in files.values() for ln in data.split(b"\n") if ln]
    assert counts["lines"] == len(lines)
    for kind in (*CORRUPTIONS, "exact_duplicate", "conflicting_duplicate", "valid"):
        assert counts[kind] > 0, kind
    # one line per event, plus one per injected duplicate
    assert counts["lines"] == spec.total + counts["exact_duplicate"] + counts["conflicting_duplicate"]
    assert sum(1 for ln in lines if b"\xff\xfe" in ln) == counts["invalid_utf8"]


def test_representation_variety_and_schema_drift() -> None:
    spec = _spec(events=4000, epoch_millis=0.2, other_timezone=0.3, new_field_after=0.5)
    events = [clean_event(spec, i) for i in range(spec.total)]
    ts_kinds = Counter(type(e["ts"]).__name__ for e in events)
    assert ts_kinds["int"] > 0 and ts_kinds["str"] > 0
    assert any(isinstance(e["ts"], str) and e["ts"].endswith(("+05:30", "-08:00")) for e in events)
    assert any(isinstance(e["user_id"], str) for e in events)
    first_half = events[: spec.total // 2]
    second_half = events[spec.total // 2 :]
    assert not any("session_id" in e for e in first_half)
    assert all("session_id" in e for e in second_half)
    assert json.loads(json.dumps(events[0])) == events[0]


def test_exact_duplicates_are_byte_identical_to_their_original() -> None:
    spec = _spec(events=3000, exact_duplicate=0.05)
    data = generate_part(spec, 0, 1)[1]
    lines = [ln for ln in data.split(b"\n") if ln]
    by_id: dict[str, list[bytes]] = {}
    for ln in lines:
        try:
            obj = json.loads(ln)
        except (ValueError, UnicodeDecodeError):
            continue
        if isinstance(obj, dict) and isinstance(obj.get("event_id"), str):
            by_id.setdefault(obj["event_id"], []).append(ln)
    repeated = [v for v in by_id.values() if len(v) > 1]
    assert repeated
    assert any(len(set(v)) == 1 for v in repeated)
