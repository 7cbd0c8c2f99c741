"""The contract's reference data as silver sees it: the relations the events SQL joins, and the
silver.ref_* Delta tables downstream models read."""

from __future__ import annotations

import pyarrow as pa

from lakehouse.core import delta, ownership
from lakehouse.core.contract import reference
from lakehouse.core.storage import Lake


def lookups(base_currency: str) -> dict[str, pa.Table]:
    """The relations the silver events SQL joins, by the names it uses."""
    return {
        "ref_country": reference.country_lookup(),
        "ref_source": reference.sources(),
        "ref_device": reference.devices(),
        "ref_fx": reference.fx_rates(base_currency),
    }


def tables(base_currency: str) -> dict[str, pa.Table]:
    """The silver.ref_* tables by name, as every engine publishes them."""
    return {
        "silver.ref_country": reference.countries(),
        "silver.ref_source": reference.sources(),
        "silver.ref_device": reference.devices(),
        "silver.ref_fx_rate": reference.fx_rates(base_currency),
    }


def publish(lake: Lake, base_currency: str) -> None:
    """Write the reference tables as silver.ref_* (overwritten only when their content changed)."""
    for name, table in tables(base_currency).items():
        ownership.check(lake, name, ownership.EMBEDDED)
        current = delta.open_table(lake, name)
        if current is not None and delta.dataset(lake, current).to_table().sort_by(
            table.column_names[0]
        ).equals(table.sort_by(table.column_names[0])):
            continue
        delta.overwrite(lake, name, table)
