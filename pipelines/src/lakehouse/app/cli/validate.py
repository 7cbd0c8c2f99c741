"""Arguments checked before any work starts: table names (with "did you mean"), choices, ranges.
Every failure is a click.BadParameter, which the entry point prints as one line."""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from lakehouse.core.storage import Lake


def _suggest(word: str, candidates: Iterable[str], n: int = 2, cutoff: float = 0.8) -> str:
    close = difflib.get_close_matches(word, list(candidates), n=n, cutoff=cutoff)
    return f"; did you mean {' or '.join(close)}?" if close else ""


def table_name(lake: Lake, name: str, param: str = "TABLE") -> str:
    """A table that exists in the lake, named <layer>.<name>."""
    from lakehouse.core.storage import LAYERS
    from lakehouse.maintenance.ops import discover_tables

    existing = discover_tables(lake)
    layer, dot, rest = name.partition(".")
    if not dot or not rest:
        same = [t for t in existing if t.split(".", 1)[1] == name]
        hint = (
            f": did you mean {' or '.join(same)}?" if same else _suggest(name, existing).replace("; ", ": ")
        )
        raise typer.BadParameter(
            f"table {name!r} needs its layer, as <layer>.<name> (layers: {', '.join(LAYERS)}){hint}",
            param_hint=param,
        )
    if layer not in LAYERS:
        raise typer.BadParameter(
            f"unknown layer {layer!r} in {name!r} (layers: {', '.join(LAYERS)}){_suggest(name, existing)}",
            param_hint=param,
        )
    if name not in existing:
        raise typer.BadParameter(
            f"no table {name} in {lake.root}{_suggest(name, existing) or ' (`lakehouse tables` lists them)'}",
            param_hint=param,
        )
    return name


def table_names(lake: Lake, names: Iterable[str], param: str = "TABLES") -> list[str]:
    return [table_name(lake, n, param) for n in dict.fromkeys(names)]


def choices(values: Iterable[str], allowed: tuple[str, ...], param: str, hint: str = "") -> list[str]:
    out = []
    for value in values:
        if value not in allowed:
            near = _suggest(value, allowed, 1, 0.6)
            raise typer.BadParameter(
                f"{value!r} is not one of {', '.join(allowed)}{near}{'; ' + hint if hint else ''}",
                param_hint=param,
            )
        out.append(value)
    return out
