"""User events as newline-delimited JSON, deterministic for a seed, with injected faults.

Each event is a pure function of (seed, index), so a file can be regenerated alone and a
duplicate of an event in another file is rebuilt byte for byte. Faults are drawn per event
from its own random stream; a manifest counts what was injected so tests can prove totals.
"""

from __future__ import annotations

import bisect
import hashlib
import itertools
import json
import random
import struct
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import TypeVar

from lakehouse.core.contract import reference
from lakehouse.core.settings import FaultRates, GeneratorSettings
from lakehouse.generator.catalog import (
    CAMPAIGNS,
    COUNTRIES,
    COUNTRY_CODES,
    COUNTRY_WEIGHTS,
    DEVICE_SPELLINGS,
    EVENT_TYPES,
    EVENT_WEIGHTS,
    PAGES,
    SOURCE_SPELLINGS,
    SOURCES,
    product_base_price,
)

T = TypeVar("T")
OFFSETS = (timedelta(hours=5, minutes=30), timedelta(hours=-8), timedelta(hours=1), timedelta(hours=9))
# Corruptions that make a record invalid (each event gets at most one).
CORRUPTIONS = (
    "malformed_json",
    "not_an_object",
    "invalid_utf8",
    "missing_required",
    "unknown_event_type",
    "wrong_type",
    "negative_price",
    "future",
)


@dataclass
class FileResult:
    """What one generated file holds (counts are summed into the manifest)."""

    path: str
    lines: int
    faults: Counter[str] = field(default_factory=Counter)


@dataclass(frozen=True)
class EventSpec:
    seed: int
    total: int
    users: int
    products: int
    start: datetime
    span_seconds: float
    faults: FaultRates

    @classmethod
    def from_settings(cls, g: GeneratorSettings) -> EventSpec:
        return cls(g.seed, g.events, g.users, g.products, g.start, g.days * 86400.0, g.faults)


class Draws:
    """Sixteen 32-bit random draws for one (seed, index, salt), from one BLAKE2b digest.

    Ten times cheaper than seeding a `random.Random` per event, and still a pure function.
    """

    __slots__ = ("words",)

    def __init__(self, seed: int, index: int, salt: int = 0) -> None:
        digest = hashlib.blake2b(struct.pack("<qqq", seed, index, salt), digest_size=64).digest()
        self.words = struct.unpack("<16I", digest)

    def unit(self, slot: int) -> float:
        return self.words[slot] / 4294967296.0

    def below(self, slot: int, n: int) -> int:
        return self.words[slot] % n

    def pick(self, slot: int, seq: Sequence[T]) -> T:
        return seq[self.words[slot] % len(seq)]

    def weighted(self, slot: int, seq: Sequence[T], cum: Sequence[float]) -> T:
        return seq[bisect.bisect_right(cum, self.unit(slot) * cum[-1])]

    def uuid4(self) -> str:
        w = self.words
        return str(uuid.UUID(int=(w[0] << 96) | (w[1] << 64) | (w[2] << 32) | w[3], version=4))


EVENT_CUM = tuple(itertools.accumulate(EVENT_WEIGHTS))
COUNTRY_CUM = tuple(itertools.accumulate(COUNTRY_WEIGHTS))
QTY_CUM = tuple(itertools.accumulate((70, 20, 7, 3)))
DEVICE_FOR_WEB = ("desktop", "desktop", "mobile", "tablet")


def clean_event(spec: EventSpec, index: int) -> dict[str, object]:
    """The valid event number `index`, in one of its permitted spellings."""
    d = Draws(spec.seed, index)
    f = spec.faults
    event_type = d.weighted(4, EVENT_TYPES, EVENT_CUM)
    seconds = spec.span_seconds * index / max(spec.total, 1) + d.unit(5)
    if d.unit(6) < f.out_of_order:
        seconds -= 1 + 599 * d.unit(7)
    if d.unit(8) < f.late:
        seconds -= 3600 * (1 + 47 * d.unit(7))
    ts = spec.start + timedelta(seconds=seconds)
    country = d.weighted(9, COUNTRY_CODES, COUNTRY_CUM)
    names, currency = COUNTRIES[country]
    source = d.pick(11, SOURCES)
    device_kind = "mobile" if source == "mobile" else d.pick(12, DEVICE_FOR_WEB)
    misc = d.words[15]
    event: dict[str, object] = {
        "event_id": d.uuid4(),
        "user_id": 1 + d.below(12, spec.users),
        "event_type": event_type,
        "ts": _render_ts(d, ts, f),
        "page": PAGES[misc % len(PAGES)],
        "source": d.pick(13, SOURCE_SPELLINGS[source]),
        "device": d.pick(14, DEVICE_SPELLINGS[device_kind]),
        "country": d.pick(10, (country, country, country.lower(), *names)),
    }
    if (misc >> 8) % 5 == 0:  # a string of digits is a valid user_id too
        event["user_id"] = str(event["user_id"])
    if (misc >> 12) % 10 == 0:  # any case, surrounding spaces allowed
        event["event_type"] = (event_type.upper(), f" {event_type} ", event_type.title())[(misc >> 16) % 3]
    if event_type in ("add_to_cart", "purchase"):
        product_id = 1 + d.below(14, spec.products)
        event["product_id"] = product_id
        if event_type == "purchase":
            local = product_base_price(spec.seed, product_id) * reference.units_per_usd(currency, ts.date())
            event["price"] = float(local.quantize(Decimal("0.01")))
            event["quantity"] = d.weighted(13, (1, 2, 3, 4), QTY_CUM)
            if currency != "USD" or (misc >> 20) % 2:
                event["currency"] = currency if (misc >> 21) % 10 else currency.lower()
    campaign = CAMPAIGNS[(misc >> 24) % len(CAMPAIGNS)]
    if campaign:
        event["campaign"] = campaign
    if index >= f.new_field_after * spec.total:
        event["session_id"] = f"s-{d.words[1]:08x}{d.words[2] & 0xFFFF:04x}"
        event["app_version"] = ("2.3.1", "2.4.0", "3.0.0-beta")[d.words[3] % 3]
        if event_type == "purchase":
            event["discount_pct"] = (0, 5, 10, 15, 20)[(misc >> 28) % 5]
    return event


def _render_ts(d: Draws, ts: datetime, f: FaultRates) -> object:
    roll = (d.words[9] ^ d.words[10]) / 4294967296.0
    if roll < f.epoch_millis:
        return int(ts.timestamp() * 1000)
    if roll < f.epoch_millis + f.other_timezone:
        tz = timezone(d.pick(7, OFFSETS))
        return ts.astimezone(tz).isoformat(timespec="milliseconds")
    return ts.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _dumps(event: dict[str, object]) -> bytes:
    return json.dumps(event, separators=(",", ":")).encode()


def _corrupt(rng: random.Random, kind: str, event: dict[str, object], spec: EventSpec) -> bytes:
    if kind == "malformed_json":
        line = _dumps(event)
        return line[: rng.randint(5, len(line) - 2)]
    if kind == "not_an_object":
        return rng.choice((b"[1,2,3]", b'"just a string"', b"42", b"null"))
    if kind == "invalid_utf8":
        line = _dumps(event)
        cut = rng.randint(1, len(line) - 1)
        return line[:cut] + b"\xff\xfe" + line[cut:]
    if kind == "missing_required":
        event.pop(rng.choice(("event_id", "user_id", "event_type", "ts")))
    elif kind == "unknown_event_type":
        event["event_type"] = rng.choice(("share", "wishlist", "scroll"))
    elif kind == "wrong_type":
        target = rng.choice(("user_id", "ts", "event_id"))
        event[target] = {"user_id": "user-abc", "ts": True, "event_id": 12345}[target]
    elif kind == "negative_price":
        event.update(event_type="purchase", product_id=event.get("product_id", 1), quantity=1)
        event["price"] = -round(rng.uniform(1, 100), 2)
    elif kind == "future":
        event["ts"] = (spec.start + timedelta(days=3650)).isoformat().replace("+00:00", "Z")
    return _dumps(event)


def render(spec: EventSpec, index: int) -> tuple[list[bytes], Counter[str]]:
    """The line(s) event `index` contributes: itself, maybe corrupted, plus injected duplicates."""
    f = spec.faults
    d = Draws(spec.seed, index, salt=1)
    counts: Counter[str] = Counter()
    event = clean_event(spec, index)
    roll, acc, kind = d.unit(0), 0.0, None
    for name in CORRUPTIONS:
        acc += getattr(f, name)
        if roll < acc:
            kind = name
            break
    if kind:
        counts[kind] += 1
        lines = [_corrupt(random.Random(d.words[1]), kind, event, spec)]
    else:
        counts["valid"] += 1
        lines = [_dumps(event)]
    if index > 0 and d.unit(2) < f.exact_duplicate:
        # Same bytes as an earlier event (possibly in an earlier file).
        earlier = max(0, index - 1 - d.below(3, 50_000))
        lines.append(_dumps(clean_event(spec, earlier)))
        counts["exact_duplicate"] += 1
    if index > 0 and d.unit(4) < f.conflicting_duplicate:
        earlier = max(0, index - 1 - d.below(5, 50_000))
        twin = clean_event(spec, earlier)
        twin["page"] = f"/conflict{d.below(6, 10)}"
        lines.append(_dumps(twin))
        counts["conflicting_duplicate"] += 1
    return lines, counts


def file_name(seed: int, part: int) -> str:
    return f"events-s{seed}-{part:05d}.jsonl"


def generate_part(spec: EventSpec, part: int, parts: int) -> tuple[str, bytes, Counter[str]]:
    lo, hi = spec.total * part // parts, spec.total * (part + 1) // parts
    out: list[bytes] = []
    counts: Counter[str] = Counter()
    for i in range(lo, hi):
        lines, c = render(spec, i)
        out.extend(lines)
        counts.update(c)
    counts["lines"] = len(out)
    return file_name(spec.seed, part), b"\n".join(out) + (b"\n" if out else b""), counts


def _generate_part_args(args: tuple[EventSpec, int, int]) -> tuple[str, bytes, Counter[str]]:
    return generate_part(*args)


def generate_files(
    spec: EventSpec,
    parts: int,
    write: Callable[[str, bytes], None],
    workers: int = 2,
    on_part: Callable[[int], None] | None = None,
) -> Counter[str]:
    """Generate `parts` files in parallel; `write(name, data)` stores each one atomically."""
    totals: Counter[str] = Counter()
    jobs = [(spec, p, parts) for p in range(parts)]
    results: Iterator[tuple[str, bytes, Counter[str]]]
    if workers > 1 and parts > 1:
        pool = ProcessPoolExecutor(max_workers=workers)
        results = pool.map(_generate_part_args, jobs)
    else:
        pool = None
        results = map(_generate_part_args, jobs)
    try:
        for name, data, counts in results:
            write(name, data)
            totals.update(counts)
            if on_part:
                on_part(counts["lines"])
    finally:
        if pool:
            pool.shutdown()
    return totals
