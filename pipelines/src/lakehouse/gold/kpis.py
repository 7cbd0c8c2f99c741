"""Headline KPIs and the dashboard queries, read from PostgreSQL gold.* as BI tools read them.

DASHBOARD_QUERIES are the dashboard panels (batch KPIs, channels, top pages, per-minute KPIs); the
bench times them (p95) and `lakehouse gold kpis` shows the headline ones.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg.rows import dict_row

from lakehouse.core.errors import LakehouseError, TransientError
from lakehouse.core.settings import PostgresSettings

DASHBOARD_QUERIES: dict[str, str] = {
    "dau_last_30_days": "SELECT event_date, dau_count FROM gold.agg_daily_active_users ORDER BY event_date DESC LIMIT 30",
    "conversion_last_30_days": (
        "SELECT event_date, conversion_rate, total_purchases, dau_count FROM gold.agg_conversion_rate_daily "
        "ORDER BY event_date DESC LIMIT 30"
    ),
    "total_purchases_and_events": (
        "SELECT (SELECT sum(total_purchases) FROM gold.agg_conversion_rate_daily) AS purchases, "
        "(SELECT sum(event_count) FROM gold.agg_events_per_source_daily) AS events"
    ),
    "events_per_source_last_day": (
        "SELECT source, event_count FROM gold.agg_events_per_source_daily "
        "WHERE event_date = (SELECT max(event_date) FROM gold.agg_events_per_source_daily) ORDER BY event_count DESC"
    ),
    "top_pages_by_purchases": (
        "SELECT page, sum(purchase_count) AS purchases FROM gold.agg_purchases_per_page_daily "
        "GROUP BY page ORDER BY purchases DESC LIMIT 10"
    ),
    "kpis_last_24h": (
        "SELECT window_start, orders, gmv, active_users, conversion_rate FROM gold.agg_kpis_per_minute "
        "WHERE window_start >= (SELECT max(window_start) FROM gold.agg_kpis_per_minute) - interval '24 hours' "
        "ORDER BY window_start"
    ),
    "revenue_by_segment_last_7_days": (
        "SELECT segment, sum(revenue) AS revenue FROM gold.rpt_revenue_daily "
        "WHERE order_date > (SELECT max(order_date) FROM gold.rpt_revenue_daily) - 7 GROUP BY segment ORDER BY revenue DESC"
    ),
    "category_ranking": "SELECT revenue_rank, display_name, revenue, revenue_share FROM gold.rpt_category_ranking ORDER BY revenue_rank",
    "executive_summary": "SELECT * FROM gold.rpt_executive_summary",
}


@dataclass(frozen=True)
class Kpis:
    summary: dict[str, Any]
    last_day: dict[str, Any]
    peak_minute: dict[str, Any]


def headline(serving: PostgresSettings) -> Kpis:
    """The headline KPIs from PostgreSQL gold.* (what a dashboard shows)."""
    try:
        with psycopg.connect(serving.serving_dsn, row_factory=dict_row) as conn:
            summary = conn.execute(DASHBOARD_QUERIES["executive_summary"]).fetchone()
            last_day = conn.execute(
                "SELECT event_date, dau_count, conversion_rate FROM gold.agg_conversion_rate_daily ORDER BY event_date DESC LIMIT 1"
            ).fetchone()
            peak = conn.execute(
                "SELECT window_start, gmv FROM gold.agg_kpis_per_minute ORDER BY gmv DESC, window_start LIMIT 1"
            ).fetchone()
    except psycopg.errors.UndefinedTable:
        raise LakehouseError("PostgreSQL has no gold marts yet: run `lakehouse gold publish`") from None
    except psycopg.OperationalError as exc:
        raise TransientError(f"serving database not reachable: {str(exc).strip().splitlines()[0]}") from None
    if summary is None:
        raise LakehouseError("gold.rpt_executive_summary is empty")
    return Kpis(summary, last_day or {}, peak or {})
