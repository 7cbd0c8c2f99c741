"""The PostgreSQL source database: customers, products, orders, order_items.

`load` (re)creates schema `shop` and bulk-loads it with COPY, recording the generator settings it
used (`shop.load_info`); `apply_changes(k)` applies change batch k once: customers move country or
segment, prices change, orders advance, new orders arrive, and some updates commit late (their
updated_at is older than rows already extracted). Everything is deterministic for a seed.
`state` says what a database holds already, so a rerun can keep it and go on with the next batch.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from lakehouse.core.errors import LakehouseError
from lakehouse.core.settings import GeneratorSettings
from lakehouse.generator.catalog import (
    COUNTRIES,
    COUNTRY_CODES,
    COUNTRY_WEIGHTS,
    ORDER_FLOW,
    SEGMENTS,
    product_base_price,
    product_category,
)

SCHEMA = "shop"
DDL = f"""
DROP SCHEMA IF EXISTS {SCHEMA} CASCADE;
CREATE SCHEMA {SCHEMA};
CREATE TABLE {SCHEMA}.customers (
    customer_id bigint PRIMARY KEY,
    full_name   text NOT NULL,
    email       text NOT NULL,
    country     char(2) NOT NULL,
    segment     text NOT NULL,
    created_at  timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL
);
CREATE TABLE {SCHEMA}.products (
    product_id  bigint PRIMARY KEY,
    name        text NOT NULL,
    category    text NOT NULL,
    price       numeric(12, 2) NOT NULL CHECK (price >= 0),
    currency    char(3) NOT NULL,
    created_at  timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL
);
CREATE TABLE {SCHEMA}.orders (
    order_id    bigint PRIMARY KEY,
    customer_id bigint NOT NULL REFERENCES {SCHEMA}.customers,
    status      text NOT NULL,
    currency    char(3) NOT NULL,
    order_ts    timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL
);
CREATE TABLE {SCHEMA}.order_items (
    order_id    bigint NOT NULL REFERENCES {SCHEMA}.orders,
    line_no     int NOT NULL,
    product_id  bigint NOT NULL REFERENCES {SCHEMA}.products,
    quantity    int NOT NULL CHECK (quantity > 0),
    unit_price  numeric(12, 2) NOT NULL,
    updated_at  timestamptz NOT NULL,
    PRIMARY KEY (order_id, line_no)
);
CREATE TABLE {SCHEMA}.change_batches (
    batch       int PRIMARY KEY,
    clock       timestamptz NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT now(),
    summary     text NOT NULL
);
CREATE TABLE {SCHEMA}.load_info (
    settings    jsonb NOT NULL,
    loaded_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX ON {SCHEMA}.customers (updated_at);
CREATE INDEX ON {SCHEMA}.products (updated_at);
CREATE INDEX ON {SCHEMA}.orders (updated_at);
CREATE INDEX ON {SCHEMA}.order_items (updated_at);
"""
TABLES = ("customers", "products", "orders", "order_items")
FIRST_NAMES = ("Ada", "Alan", "Grace", "Linus", "Margaret", "Ken", "Barbara", "Dennis", "Frances", "Edsger")
LAST_NAMES = (
    "Lovelace",
    "Turing",
    "Hopper",
    "Torvalds",
    "Hamilton",
    "Thompson",
    "Liskov",
    "Ritchie",
    "Allen",
)


@dataclass(frozen=True)
class LoadSummary:
    customers: int
    products: int
    orders: int
    order_items: int

    def __str__(self) -> str:
        return (
            f"{self.customers:,} customers, {self.products:,} products, {self.orders:,} orders, "
            f"{self.order_items:,} order lines"
        )


@dataclass(frozen=True)
class SourceState:
    """What a source database holds: the generator settings it was loaded with (None: loaded
    before they were recorded), the change batches applied, and its row counts."""

    settings: dict[str, Any] | None
    batches: list[int]
    rows: dict[str, int]

    def differences(self, g: GeneratorSettings) -> list[str]:
        """Settings that differ from `g`, as 'name: loaded -> now'."""
        if self.settings is None:
            return []
        now = load_settings(g)
        return [f"{k}: {self.settings.get(k)} -> {v}" for k, v in now.items() if self.settings.get(k) != v]


def load_settings(g: GeneratorSettings) -> dict[str, Any]:
    """The generator settings a load depends on."""
    return {
        "seed": g.seed,
        "customers": g.customers,
        "products": g.products,
        "orders": g.orders,
        "start": g.start.isoformat(),
        "days": g.days,
    }


def state(dsn: str) -> SourceState | None:
    """The source database's state, or None when schema `shop` was never loaded."""
    with psycopg.connect(dsn) as conn:
        present = {
            r[0]
            for r in conn.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = %s", (SCHEMA,)
            )
        }
        if not {*TABLES, "change_batches"} <= present:
            return None
        info = None
        if "load_info" in present:
            row = conn.execute(
                f"SELECT settings FROM {SCHEMA}.load_info ORDER BY loaded_at DESC LIMIT 1"
            ).fetchone()
            info = dict(row[0]) if row else None
        batches = [
            int(r[0]) for r in conn.execute(f"SELECT batch FROM {SCHEMA}.change_batches ORDER BY batch")
        ]
        rows = {t: int(conn.execute(f"SELECT count(*) FROM {SCHEMA}.{t}").fetchone()[0]) for t in TABLES}  # type: ignore[index]
    return SourceState(info, batches, rows)


def _second(ts: datetime) -> datetime:
    return ts.replace(microsecond=0)


def _copy(cur: psycopg.Cursor, table: str, columns: Sequence[str], rows: Iterable[Sequence[object]]) -> int:
    n = 0
    with cur.copy(f"COPY {SCHEMA}.{table} ({', '.join(columns)}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)
            n += 1
    return n


def _end(g: GeneratorSettings) -> datetime:
    return g.start + timedelta(days=g.days)


def load(dsn: str, g: GeneratorSettings) -> LoadSummary:
    """Drop and bulk-load the source schema (idempotent: the same seed gives the same rows)."""
    rng = random.Random(g.seed)
    end = _end(g)
    span = (end - g.start).total_seconds()
    customers = []
    for cid in range(1, g.customers + 1):
        country = rng.choices(COUNTRY_CODES, COUNTRY_WEIGHTS)[0]
        created = _second(g.start + timedelta(seconds=rng.uniform(0, span)))
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        customers.append(
            (
                cid,
                f"{first} {last}",
                f"{first}.{last}.{cid}@example.com".lower(),
                country,
                rng.choice(SEGMENTS),
                created,
                created,
            )
        )
    products = []
    for pid in range(1, g.products + 1):
        created = g.start
        products.append(
            (
                pid,
                f"Product {pid}",
                product_category(g.seed, pid),
                product_base_price(g.seed, pid),
                "USD",
                created,
                created,
            )
        )
    orders, items = [], []
    for oid in range(1, g.orders + 1):
        cust = customers[rng.randrange(len(customers))]
        order_ts = _second(g.start + timedelta(seconds=rng.uniform(0, span)))
        steps = min(len(ORDER_FLOW) - 1, int((end - order_ts).total_seconds() // 43200))
        status = "cancelled" if rng.random() < 0.03 else ORDER_FLOW[steps]
        updated = _second(min(end, order_ts + timedelta(hours=12 * steps)))
        currency = COUNTRIES[cust[3]][1]
        orders.append((oid, cust[0], status, currency, order_ts, updated))
        for line in range(1, rng.choice((1, 1, 2, 3, 4)) + 1):
            pid = rng.randint(1, g.products)
            items.append((oid, line, pid, rng.choice((1, 1, 2, 3)), products[pid - 1][3], order_ts))
    with psycopg.connect(dsn, autocommit=False) as conn, conn.cursor() as cur:
        cur.execute(DDL)
        cols = ("customer_id", "full_name", "email", "country", "segment", "created_at", "updated_at")
        _copy(cur, "customers", cols, customers)
        _copy(
            cur,
            "products",
            ("product_id", "name", "category", "price", "currency", "created_at", "updated_at"),
            products,
        )
        _copy(
            cur, "orders", ("order_id", "customer_id", "status", "currency", "order_ts", "updated_at"), orders
        )
        _copy(
            cur,
            "order_items",
            ("order_id", "line_no", "product_id", "quantity", "unit_price", "updated_at"),
            items,
        )
        cur.execute(f"ANALYZE {SCHEMA}.customers, {SCHEMA}.products, {SCHEMA}.orders, {SCHEMA}.order_items")
        cur.execute(f"INSERT INTO {SCHEMA}.load_info (settings) VALUES (%s)", (Jsonb(load_settings(g)),))
    return LoadSummary(len(customers), len(products), len(orders), len(items))


def batch_clock(g: GeneratorSettings, batch: int) -> datetime:
    """Simulated time of change batch `batch` (1-based): one hour apart after the load window."""
    return _end(g) + timedelta(hours=batch)


def apply_changes(dsn: str, g: GeneratorSettings, batch: int) -> str | None:
    """Apply change batch `batch` once; returns a summary, or None if it was applied before."""
    if batch < 1:
        raise LakehouseError(f"change batches are numbered from 1 (got {batch})")
    if state(dsn) is None:
        raise LakehouseError(
            "the source database has no shop schema yet: run `lakehouse generate source` (or `lakehouse demo`)"
        )
    rng = random.Random(g.seed * 10_007 + batch)
    clock = batch_clock(g, batch)
    late_clock = clock - timedelta(minutes=90)  # older than the previous batch: commits "late"

    def when() -> datetime:
        if rng.random() < 0.05:
            return late_clock
        # Whole minutes so that several rows share one updated_at (ties on the watermark).
        return clock - timedelta(minutes=rng.randint(0, 50))

    with psycopg.connect(dsn, autocommit=False) as conn, conn.cursor() as cur:
        cur.execute(f"SELECT 1 FROM {SCHEMA}.change_batches WHERE batch = %s", (batch,))
        if cur.fetchone():
            return None
        cur.execute(f"SELECT count(*) FROM {SCHEMA}.customers")
        n_customers = int(cur.fetchone()[0])  # type: ignore[index]
        cur.execute(f"SELECT product_id, price FROM {SCHEMA}.products ORDER BY product_id")
        prices = cur.fetchall()
        cur.execute(f"SELECT max(order_id) FROM {SCHEMA}.orders")
        max_order = int(cur.fetchone()[0] or 0)  # type: ignore[index]

        moved = rng.sample(range(1, n_customers + 1), k=max(1, n_customers * 3 // 100))
        for cid in moved:
            if rng.random() < 0.5:
                cur.execute(
                    f"UPDATE {SCHEMA}.customers SET country = %s, updated_at = %s WHERE customer_id = %s",
                    (rng.choice(COUNTRY_CODES), when(), cid),
                )
            else:
                cur.execute(
                    f"UPDATE {SCHEMA}.customers SET segment = %s, updated_at = %s WHERE customer_id = %s",
                    (rng.choice(SEGMENTS), when(), cid),
                )
        repriced = rng.sample(prices, k=max(1, len(prices) * 5 // 100))
        for pid, price in repriced:
            factor = Decimal(str(round(rng.uniform(0.8, 1.2), 3)))
            cur.execute(
                f"UPDATE {SCHEMA}.products SET price = %s, updated_at = %s WHERE product_id = %s",
                ((Decimal(price) * factor).quantize(Decimal("0.01")), when(), pid),
            )
        cur.execute(
            f"""SELECT order_id, status FROM {SCHEMA}.orders
                WHERE status NOT IN ('delivered', 'cancelled') ORDER BY order_id"""
        )
        open_orders = cur.fetchall()
        advanced = rng.sample(open_orders, k=min(len(open_orders), max(1, len(open_orders) // 10)))
        for oid, status in advanced:
            nxt = "cancelled" if rng.random() < 0.05 else ORDER_FLOW[ORDER_FLOW.index(status) + 1]
            cur.execute(
                f"UPDATE {SCHEMA}.orders SET status = %s, updated_at = %s WHERE order_id = %s",
                (nxt, when(), oid),
            )
        new_orders = max(1, max_order // 50)
        price_of = {int(p): Decimal(v) for p, v in prices}
        cur.execute(f"SELECT customer_id, country FROM {SCHEMA}.customers ORDER BY customer_id")
        countries: dict[int, str] = dict(cur.fetchall())
        order_rows, item_rows = [], []
        for oid in range(max_order + 1, max_order + 1 + new_orders):
            cid = rng.randint(1, n_customers)
            ts = when()
            order_rows.append((oid, cid, "placed", COUNTRIES[countries[cid]][1], ts, ts))
            for line in range(1, rng.choice((1, 2, 3)) + 1):
                pid = rng.choice(list(price_of))
                item_rows.append((oid, line, pid, rng.choice((1, 2)), price_of[pid], ts))
        _copy(
            cur,
            "orders",
            ("order_id", "customer_id", "status", "currency", "order_ts", "updated_at"),
            order_rows,
        )
        _copy(
            cur,
            "order_items",
            ("order_id", "line_no", "product_id", "quantity", "unit_price", "updated_at"),
            item_rows,
        )
        summary = (
            f"{len(moved)} customers changed, {len(repriced)} prices changed, "
            f"{len(advanced)} orders advanced, {new_orders} new orders"
        )
        cur.execute(
            f"INSERT INTO {SCHEMA}.change_batches (batch, clock, summary) VALUES (%s, %s, %s)",
            (batch, clock, summary),
        )
    return summary
