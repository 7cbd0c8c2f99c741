"""Reference data of the event contract: countries, source and device channels, currencies, FX.

Countries come from ISO 3166 via pycountry. Channels, devices and dated FX rates ship as CSV in
`data/`: each spelling users send (`lookup_key`, compared lower-case and trimmed) maps to one
conformed value. Silver joins these tables, the speed layer runs silver's SQL over them, and the
generator draws its spellings and prices from them, so all three agree by construction.
"""

from __future__ import annotations

import bisect
import csv
from datetime import date
from decimal import Decimal
from functools import cache
from importlib import resources

import pyarrow as pa
import pycountry

FAR_FUTURE = date(9999, 12, 31)
EXTRA_COUNTRY_NAMES = {"usa": "US", "uk": "GB", "great britain": "GB", "england": "GB", "holland": "NL"}
# The local currency (ISO 4217) of each country the project prices events in.
LOCAL_CURRENCY = {
    "US": "USD",
    "GB": "GBP",
    "DE": "EUR",
    "FR": "EUR",
    "PL": "PLN",
    "NL": "EUR",
    "ES": "EUR",
    "IT": "EUR",
    "SE": "SEK",
    "CA": "CAD",
    "JP": "JPY",
    "BR": "BRL",
    "IN": "INR",
    "AU": "AUD",
}


def _csv(name: str) -> list[dict[str, str]]:
    text = resources.files("lakehouse.core.contract").joinpath("data", name).read_text()
    return list(csv.DictReader(text.splitlines()))


# -- countries -------------------------------------------------------------------------------------
@cache
def _country_keys() -> dict[str, str]:
    keys: dict[str, str] = {}
    for c in pycountry.countries:
        for label in (
            c.alpha_2,
            c.alpha_3,
            c.name,
            getattr(c, "common_name", None),
            getattr(c, "official_name", None),
        ):
            if label:
                keys.setdefault(label.lower(), c.alpha_2)
    keys.update(EXTRA_COUNTRY_NAMES)
    return keys


def country_lookup() -> pa.Table:
    """lower-case alpha-2, alpha-3, name, common and official name -> alpha-2."""
    keys = _country_keys()
    return pa.table({"lookup_key": list(keys), "country_code": list(keys.values())})


def country_names(code: str) -> tuple[str, ...]:
    """The English names of a country as users type them (pycountry's name and common name)."""
    c = pycountry.countries.get(alpha_2=code)
    if c is None:
        raise ValueError(f"unknown ISO 3166 alpha-2 code {code!r}")
    return tuple(dict.fromkeys(n for n in (getattr(c, "common_name", None), c.name) if n))


def countries() -> pa.Table:
    rows = [(c.alpha_2, c.alpha_3, getattr(c, "common_name", None) or c.name) for c in pycountry.countries]
    return pa.table(
        {"country_code": [r[0] for r in rows], "alpha_3": [r[1] for r in rows], "name": [r[2] for r in rows]}
    )


# -- channels and devices --------------------------------------------------------------------------
def sources() -> pa.Table:
    rows = _csv("sources.csv")
    return pa.table({"lookup_key": [r["lookup_key"] for r in rows], "source": [r["source"] for r in rows]})


def devices() -> pa.Table:
    rows = _csv("devices.csv")
    return pa.table({"lookup_key": [r["lookup_key"] for r in rows], "device": [r["device"] for r in rows]})


@cache
def spellings(kind: str) -> dict[str, tuple[str, ...]]:
    """Conformed value -> every spelling that maps to it, for kind 'source' or 'device'."""
    if kind not in ("source", "device"):
        raise ValueError(f"spellings exist for 'source' and 'device', not {kind!r}")
    out: dict[str, list[str]] = {}
    for row in _csv(f"{kind}s.csv"):
        out.setdefault(row[kind], []).append(row["lookup_key"])
    return {value: tuple(keys) for value, keys in out.items()}


# -- currencies and FX -----------------------------------------------------------------------------
@cache
def _rates_per_currency() -> dict[str, tuple[list[date], list[Decimal]]]:
    out: dict[str, tuple[list[date], list[Decimal]]] = {}
    for r in sorted(_csv("fx_rates.csv"), key=lambda r: (r["currency"], r["valid_from"])):
        days, rates = out.setdefault(r["currency"], ([], []))
        days.append(date.fromisoformat(r["valid_from"]))
        rates.append(Decimal(r["units_per_usd"]))
    return out


def currencies() -> tuple[str, ...]:
    return tuple(sorted(_rates_per_currency()))


def units_per_usd(currency: str, day: date) -> Decimal:
    """Units of `currency` one US dollar buys on `day` (the rate valid then)."""
    try:
        days, rates = _rates_per_currency()[currency]
    except KeyError:
        raise ValueError(f"no FX rate for {currency!r} in fx_rates.csv") from None
    i = bisect.bisect_right(days, day) - 1
    if i < 0:
        raise ValueError(f"no FX rate for {currency} valid on {day}")
    return rates[i]


def fx_rates(base_currency: str) -> pa.Table:
    """Rate to the base currency per currency and validity range [valid_from, valid_to)."""
    per = _rates_per_currency()
    if base_currency not in per:
        raise ValueError(f"base currency {base_currency} has no rate in fx_rates.csv")
    base_units = per[base_currency][1][-1]
    out: dict[str, list[object]] = {"currency": [], "valid_from": [], "valid_to": [], "rate_to_base": []}
    for currency, (days, rates) in sorted(per.items()):
        for i, (valid_from, units) in enumerate(zip(days, rates, strict=True)):
            out["currency"].append(currency)
            out["valid_from"].append(valid_from)
            out["valid_to"].append(days[i + 1] if i + 1 < len(days) else FAR_FUTURE)
            out["rate_to_base"].append((base_units / units).quantize(Decimal("0.0000000001")))
    return pa.table(
        out,
        schema=pa.schema(
            [
                ("currency", pa.string()),
                ("valid_from", pa.date32()),
                ("valid_to", pa.date32()),
                ("rate_to_base", pa.decimal128(20, 10)),
            ]
        ),
    )
