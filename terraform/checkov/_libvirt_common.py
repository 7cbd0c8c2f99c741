"""Helpers shared by the libvirt checks: checkov hands attribute values over as one-element
lists, nested blocks as lists of dicts, and leaves unresolved expressions as "${...}" or a bare reference such as "var.mode"."""

from __future__ import annotations

import re
from typing import Any

UNRESOLVED = object()

# A value checkov could not evaluate stays an expression: "${...}", "var.x", "local.y ? a : b".
_EXPRESSION = re.compile(r"\$\{|^(var|local|module|each|count|data|path|terraform|self)\.")


def first(conf: dict[str, Any], key: str, default: Any = None) -> Any:
    """The attribute's value, UNRESOLVED when it still is an expression, default when absent."""
    if key not in conf:
        return default
    value = conf[key]
    if isinstance(value, list):
        if not value:
            return default
        value = value[0]
    if isinstance(value, str) and _EXPRESSION.search(value):
        return UNRESOLVED
    return value


def blocks(conf: dict[str, Any], key: str) -> list[dict[str, Any]]:
    """Nested blocks (static or expanded dynamic) of that name."""
    value = conf.get(key) or []
    if isinstance(value, dict):
        return [value]
    return [b for b in value if isinstance(b, dict)]


def truthy(value: Any) -> bool:
    return value is True or (isinstance(value, str) and value.lower() == "true")
