"""What the gold report shows, read from the gold build as plain values (no rendering here)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import duckdb

from lakehouse.core.errors import LakehouseError
from lakehouse.gold.dbt import DbtProject

Rows = list[tuple[Any, ...]]


@dataclass(frozen=True)
class ReportData:
    """The gold marts behind the report: headline summary and one series per chart."""

    summary: dict[str, Any]
    dau: Rows
    conversion: Rows
    gmv: Rows  # (unix seconds of the minute, GMV)
    pages: Rows
    quarantine: Rows
    runs: Rows
    ranking: Rows


def _q(con: duckdb.DuckDBPyConnection, query: str) -> list[tuple[Any, ...]]:
    return con.execute(query).fetchall()


def collect(con: duckdb.DuckDBPyConnection) -> ReportData:
    """Everything the report shows, as plain Python values."""
    # timestamptz values are formatted in SQL (fetching them as Python objects needs pytz)
    summary_sql = "SELECT * EXCLUDE (updated_at) FROM reports.rpt_executive_summary"
    summary_cols = [d[0] for d in con.execute(summary_sql + " LIMIT 0").description]
    summary_row = con.execute(summary_sql).fetchone()
    return ReportData(
        summary=dict(zip(summary_cols, summary_row, strict=True)) if summary_row else {},
        dau=_q(con, "SELECT event_date, dau_count FROM marts.agg_daily_active_users ORDER BY event_date"),
        conversion=_q(
            con, "SELECT event_date, conversion_rate FROM marts.agg_conversion_rate_daily ORDER BY event_date"
        ),
        gmv=_q(
            con,
            "SELECT epoch(window_start), gmv FROM marts.agg_kpis_per_minute ORDER BY window_start",
        ),
        pages=_q(
            con,
            "SELECT page, sum(purchase_count) AS n FROM marts.agg_purchases_per_page_daily GROUP BY page ORDER BY n DESC, page LIMIT 10",
        ),
        quarantine=_q(
            con, "SELECT reason, quarantined_rows FROM reports.rpt_quarantine_reasons ORDER BY 2 DESC, 1"
        ),
        runs=_q(
            con,
            "SELECT run_id, layer, rows_in, min(epoch(started_at)) OVER (PARTITION BY run_id) AS run_start "
            "FROM reports.rpt_pipeline_runs ORDER BY run_start, run_id, layer",
        ),
        ranking=_q(
            con,
            "SELECT revenue_rank, display_name, category_group, orders, revenue, revenue_share "
            "FROM reports.rpt_category_ranking ORDER BY revenue_rank",
        ),
    )


def load(project: DbtProject) -> ReportData:
    """The report's data from this lake's last gold build."""
    if not project.duckdb_path.exists():
        raise LakehouseError(f"no gold build at {project.duckdb_path}: run `lakehouse gold build` first")
    con = duckdb.connect(str(project.duckdb_path), read_only=True)
    try:
        return collect(con)
    finally:
        con.close()
