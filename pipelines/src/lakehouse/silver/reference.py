"""Reference (conformed dimension) tables: countries, channels, devices, FX rates.

Countries come from ISO 3166 via pycountry; the small channel/device/FX lists ship as CSV in
lakehouse/reference/. They are registered in the engine for the transform and published as
silver.ref_* Delta tables for downstream models.
"""

from __future__ import annotations

import csv
from datetime import date
from decimal import Decimal
from importlib import resources

import pyarrow as pa
import pycountry

from lakehouse import delta
from lakehouse.storage import Lake

FAR_FUTURE = date(9999, 12, 31)
EXTRA_COUNTRY_NAMES = {"usa": "US", "uk": "GB", "great britain": "GB", "england": "GB", "holland": "NL"}


def _csv(name: str) -> list[dict[str, str]]:
    text = resources.files("lakehouse.reference").joinpath(name).read_text()
    return list(csv.DictReader(text.splitlines()))


def country_lookup() -> pa.Table:
    """lower-case alpha-2, alpha-3, name, common and official name -> alpha-2."""
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
    return pa.table({"lookup_key": list(keys), "country_code": list(keys.values())})


def countries() -> pa.Table:
    rows = [(c.alpha_2, c.alpha_3, getattr(c, "common_name", None) or c.name) for c in pycountry.countries]
    return pa.table(
        {"country_code": [r[0] for r in rows], "alpha_3": [r[1] for r in rows], "name": [r[2] for r in rows]}
    )


def sources() -> pa.Table:
    rows = _csv("sources.csv")
    return pa.table({"lookup_key": [r["lookup_key"] for r in rows], "source": [r["source"] for r in rows]})


def devices() -> pa.Table:
    rows = _csv("devices.csv")
    return pa.table({"lookup_key": [r["lookup_key"] for r in rows], "device": [r["device"] for r in rows]})


def fx_rates(base_currency: str) -> pa.Table:
    """Rate to the base currency per currency and validity range [valid_from, valid_to)."""
    rows = sorted(_csv("fx_rates.csv"), key=lambda r: (r["currency"], r["valid_from"]))
    base = [r for r in rows if r["currency"] == base_currency]
    if not base:
        raise ValueError(f"base currency {base_currency} has no rate in fx_rates.csv")
    base_units = Decimal(base[-1]["units_per_usd"])
    out: dict[str, list[object]] = {"currency": [], "valid_from": [], "valid_to": [], "rate_to_base": []}
    for i, r in enumerate(rows):
        nxt = rows[i + 1] if i + 1 < len(rows) and rows[i + 1]["currency"] == r["currency"] else None
        out["currency"].append(r["currency"])
        out["valid_from"].append(date.fromisoformat(r["valid_from"]))
        out["valid_to"].append(date.fromisoformat(nxt["valid_from"]) if nxt else FAR_FUTURE)
        out["rate_to_base"].append(
            (base_units / Decimal(r["units_per_usd"])).quantize(Decimal("0.0000000001"))
        )
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


def lookups(base_currency: str) -> dict[str, pa.Table]:
    """The relations the silver events SQL joins, by the names it uses."""
    return {
        "ref_country": country_lookup(),
        "ref_source": sources(),
        "ref_device": devices(),
        "ref_fx": fx_rates(base_currency),
    }


def publish(lake: Lake, base_currency: str) -> None:
    """Write the reference tables as silver.ref_* (overwritten only when their content changed)."""
    tables = {
        "silver.ref_country": countries(),
        "silver.ref_source": sources(),
        "silver.ref_device": devices(),
        "silver.ref_fx_rate": fx_rates(base_currency),
    }
    for name, table in tables.items():
        current = delta.open_table(lake, name)
        if current is not None and current.to_pyarrow_table().sort_by(table.column_names[0]).equals(
            table.sort_by(table.column_names[0])
        ):
            continue
        delta.overwrite(lake, name, table)
