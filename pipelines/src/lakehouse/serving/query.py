"""One read of a dataset: the request's parameters checked against the dataset, and the SQL that
answers it. Names (columns, ordering) are checked against the catalog and quoted as identifiers;
every value (filters, dates, limit, offset) travels as a bind parameter, never as SQL text."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from psycopg import sql

from lakehouse.serving.catalog import Column, Dataset

FORMATS = {
    "json": "application/json",
    "csv": "text/csv; charset=utf-8",
    "arrow": "application/vnd.apache.arrow.stream",
    "parquet": "application/vnd.apache.parquet",
}
_BY_MEDIA = {
    "application/json": "json",
    "text/csv": "csv",
    "application/vnd.apache.arrow.stream": "arrow",
    "application/vnd.apache.parquet": "parquet",
    "application/x-parquet": "parquet",
}
RESERVED = ("columns", "order", "limit", "offset", "format", "from", "to")
MAX_OFFSET = 100_000_000
MAX_VALUE_CHARS = 1000
MAX_VALUES = 100  # values of one equality filter
_INT = re.compile(r"-?\d{1,19}")
_INT64 = (-(2**63), 2**63 - 1)


class BadRequest(Exception):
    """The request cannot be answered as asked: HTTP `status` with a one-line message."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Limits:
    default_limit: int
    max_rows: int


@dataclass(frozen=True)
class ReadRequest:
    dataset: Dataset
    columns: tuple[str, ...]
    order: tuple[tuple[str, bool], ...]  # (column, descending)
    limit: int
    offset: int
    filters: tuple[tuple[str, tuple[Any, ...]], ...]
    time_from: date | datetime | None
    time_to: date | datetime | None
    format: str

    def canonical(self) -> str:
        """The request in one stable text (same read, same text): what the ETag hashes."""
        parts = [
            self.dataset.name,
            ",".join(self.columns),
            ",".join(("-" if d else "") + c for c, d in self.order),
            str(self.limit),
            str(self.offset),
            ";".join(f"{c}={'|'.join(repr(v) for v in vs)}" for c, vs in self.filters),
            repr(self.time_from),
            repr(self.time_to),
            self.format,
        ]
        return "\x1f".join(parts)

    def fingerprint(self) -> str:
        return hashlib.blake2b(self.canonical().encode(), digest_size=10).hexdigest()


def _short(names: Sequence[str], limit: int = 25) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f", ... ({len(names)} in all)" if len(names) > limit else "")


def parse_value(col: Column, raw: str, what: str) -> Any:
    """A request's text as a value of `col`'s type, or BadRequest naming the parameter."""
    if len(raw) > MAX_VALUE_CHARS:
        raise BadRequest(f"{what}: value longer than {MAX_VALUE_CHARS} characters")
    if "\x00" in raw:
        raise BadRequest(f"{what}: value contains a NUL character")
    kind = col.kind
    try:
        if kind == "integer":
            if not _INT.fullmatch(raw) or not _INT64[0] <= int(raw) <= _INT64[1]:
                raise ValueError
            return int(raw)
        if kind == "number":
            number = Decimal(raw)
            if not number.is_finite():
                raise ValueError
            return number
        if kind == "boolean":
            if raw.lower() not in ("true", "false"):
                raise ValueError
            return raw.lower() == "true"
        if kind == "date":
            if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", raw):
                raise ValueError
            return date.fromisoformat(raw)
        if kind == "timestamp":
            if re.fullmatch(r"\d{4}-\d{2}-\d{2}", raw):
                return datetime.fromisoformat(raw).replace(tzinfo=UTC)
            if not re.fullmatch(r"\d{4}-\d{2}-\d{2}[Tt ][0-9:.]+([Zz]|[+-]\d{2}:?\d{2})?", raw):
                raise ValueError
            value = datetime.fromisoformat(raw.upper())
            # in UTC here: PostgreSQL takes offsets up to 15:59 only, RFC 3339 up to 23:59
            return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
    except (ValueError, InvalidOperation, OverflowError):
        expected = {
            "integer": "an integer",
            "number": "a number",
            "boolean": "true or false",
            "date": "a date YYYY-MM-DD",
            "timestamp": "a timestamp YYYY-MM-DDTHH:MM:SS[+HH:MM] or a date",
        }[kind]
        raise BadRequest(f"{what}: {expected} (got {raw[:40]!r})") from None
    return raw


def _names(ds: Dataset, raw: str, what: str) -> list[str]:
    names = raw.split(",")
    if any(not n for n in names):
        raise BadRequest(f"{what}: a comma-separated list of column names, no spaces")
    return list(dict.fromkeys(names))  # a name given twice counts once


def negotiate(fmt: str | None, accept: str | None) -> str:
    """The response format: `format=` wins; else the first media type of Accept we serve."""
    if fmt is not None:
        if fmt not in FORMATS:
            raise BadRequest(f"format: one of {', '.join(FORMATS)} (got {fmt[:40]!r})")
        return fmt
    if not accept:
        return "json"
    wildcard = False
    for part in accept.split(","):
        media = part.split(";", 1)[0].strip().lower()
        if media in _BY_MEDIA:
            return _BY_MEDIA[media]
        wildcard = wildcard or media in ("*/*", "application/*", "text/*")
    if wildcard:
        return "json"
    raise BadRequest(f"Accept: none of {', '.join(_BY_MEDIA)} (or use format=)", status=406)


def parse(ds: Dataset, params: Sequence[tuple[str, str]], accept: str | None, limits: Limits) -> ReadRequest:
    """Check a request's query parameters against the dataset; BadRequest on the first problem."""
    single: dict[str, str] = {}
    equal: dict[str, list[str]] = {}
    dims = ds.dimensions
    for key, value in params:
        if key in RESERVED:
            if key in single:
                raise BadRequest(f"{key}: given more than once")
            single[key] = value
        elif key in dims:
            equal.setdefault(key, []).append(value)
        elif key in ds.by_name:
            raise BadRequest(f"{key}: not a dimension of {ds.name}; filter by one of {_short(list(dims))}")
        else:
            raise BadRequest(
                f"unknown parameter {key[:60]!r}: {ds.name} takes {', '.join(RESERVED)} "
                f"and filters on {_short(list(dims)) or 'nothing'}"
            )
    fmt = negotiate(single.get("format"), accept)
    columns = tuple(c.name for c in ds.columns)
    if "columns" in single:
        asked = _names(ds, single["columns"], "columns")
        for n in asked:
            if n not in ds.by_name:
                raise BadRequest(f"columns: unknown column {n[:60]!r} (has {_short(list(columns))})")
        columns = tuple(asked)
    order: list[tuple[str, bool]] = []
    if "order" in single:
        for item in _names(ds, single["order"], "order"):
            name, desc = (item[1:], True) if item.startswith("-") else (item, False)
            if name not in ds.by_name:
                raise BadRequest(f"order: unknown column {name[:60]!r} (has {_short(list(ds.by_name))})")
            if not any(n == name for n, _ in order):  # the first mention of a column decides
                order.append((name, desc))
    for name in ds.order_key:  # the tie-breaker: the same page for the same request
        if not any(n == name for n, _ in order):
            order.append((name, False))
    limit = _int(single.get("limit"), "limit", limits.default_limit, 1)
    if limit > limits.max_rows:
        raise BadRequest(
            f"limit: at most {limits.max_rows} rows per response (got {limit}); page with offset"
        )
    offset = _int(single.get("offset"), "offset", 0, 0)
    if offset > MAX_OFFSET:
        raise BadRequest(f"offset: at most {MAX_OFFSET} (got {offset})")
    filters = []
    for name, raws in equal.items():
        if len(raws) > MAX_VALUES:
            raise BadRequest(f"{name}: at most {MAX_VALUES} values")
        col = ds.by_name[name]
        filters.append((name, tuple(dict.fromkeys(parse_value(col, r, name) for r in raws))))
    bounds: dict[str, date | datetime | None] = {"from": None, "to": None}
    for key in ("from", "to"):
        if key in single:
            if ds.time_column is None:
                raise BadRequest(f"{key}: {ds.name} has no date or time column")
            bounds[key] = parse_value(ds.by_name[ds.time_column], single[key], key)
    lo, hi = bounds["from"], bounds["to"]  # from after to: a valid range with no rows
    return ReadRequest(ds, columns, tuple(order), limit, offset, tuple(filters), lo, hi, fmt)


def _int(raw: str | None, what: str, default: int, low: int) -> int:
    if raw is None:
        return default
    if not re.fullmatch(r"\d{1,12}", raw.strip()):
        raise BadRequest(f"{what}: a whole number >= {low} (got {raw[:40]!r})")
    value = int(raw)
    if value < low:
        raise BadRequest(f"{what}: a whole number >= {low} (got {value})")
    return value


def statement(req: ReadRequest, extra_row: bool = True) -> tuple[sql.Composed, list[Any]]:
    """The SELECT for `req` and its parameters (one more row than asked: is there a next page)."""
    ds = req.dataset
    where: list[sql.Composable] = []
    params: list[Any] = []
    for name, values in req.filters:
        where.append(sql.SQL("{} = ANY(%s)").format(sql.Identifier(name)))
        params.append(list(values))
    if req.time_from is not None:
        where.append(sql.SQL("{} >= %s").format(sql.Identifier(ds.time_column or "")))
        params.append(req.time_from)
    if req.time_to is not None:
        where.append(sql.SQL("{} <= %s").format(sql.Identifier(ds.time_column or "")))
        params.append(req.time_to)

    def column(name: str) -> sql.Composable:
        # JSON writes numbers as doubles anyway: let PostgreSQL convert numeric (cheaper than Python)
        if req.format == "json" and ds.by_name[name].pg_type.startswith("numeric"):
            return sql.SQL("{}::double precision AS {}").format(sql.Identifier(name), sql.Identifier(name))
        return sql.Identifier(name)

    query = sql.SQL("SELECT {cols} FROM {table}{where} ORDER BY {order} LIMIT %s OFFSET %s").format(
        cols=sql.SQL(", ").join(column(c) for c in req.columns),
        table=sql.Identifier(ds.schema, ds.table),
        where=sql.SQL(" WHERE ") + sql.SQL(" AND ").join(where) if where else sql.SQL(""),
        order=sql.SQL(", ").join(
            sql.SQL("{} {}").format(sql.Identifier(c), sql.SQL("DESC" if d else "ASC")) for c, d in req.order
        ),
    )
    params += [req.limit + (1 if extra_row else 0), req.offset]
    return query, params
