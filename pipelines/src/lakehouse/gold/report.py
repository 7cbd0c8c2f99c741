"""The static HTML report: headline KPIs and charts from the gold build, one self-contained file.

Charts are inline SVG generated here (lakehouse.gold.svg): no JavaScript, no CDN, so the file
opens offline. Data comes from the gold DuckDB build (the same tables PostgreSQL gold.* gets).
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from html import escape
from pathlib import Path
from typing import Any

import duckdb

from lakehouse.config import Settings
from lakehouse.errors import LakehouseError
from lakehouse.gold import svg
from lakehouse.gold.dbt import DbtProject

CHARTS = ("dau", "conversion", "gmv_per_minute", "top_pages", "quarantine_reasons", "rows_per_layer")

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;background:#f6f7f9;color:#222}
header{background:#1f2d3d;color:#fff;padding:18px 28px}header h1{margin:0;font-size:22px}
header p{margin:4px 0 0;color:#c8d1dc;font-size:13px}
main{padding:20px 28px;max-width:1560px}
.tiles{display:grid;grid-template-columns:repeat(auto-fill,minmax(190px,1fr));gap:12px;margin-bottom:20px}
.tile{background:#fff;border-radius:8px;padding:12px 14px;box-shadow:0 1px 2px rgba(0,0,0,.08)}
.tile .label{font-size:12px;color:#667}.tile .value{font-size:22px;font-weight:600;margin-top:4px}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(600px,1fr));gap:16px}
figure.chart{background:#fff;border-radius:8px;margin:0;padding:12px 14px;box-shadow:0 1px 2px rgba(0,0,0,.08)}
figure.chart figcaption{font-weight:600;margin-bottom:6px}
table{border-collapse:collapse;background:#fff;margin-top:16px;font-size:13px}
td,th{padding:6px 10px;border-bottom:1px solid #eee;text-align:left}th{background:#fafafa}
td.num{text-align:right}
"""


def _q(con: duckdb.DuckDBPyConnection, query: str) -> list[tuple[Any, ...]]:
    return con.execute(query).fetchall()


def _money(v: Any) -> str:
    return f"${Decimal(v or 0):,.2f}"


def collect(con: duckdb.DuckDBPyConnection) -> dict[str, Any]:
    """Everything the report shows, as plain Python values."""
    # timestamptz values are formatted in SQL (fetching them as Python objects needs pytz)
    summary_sql = "SELECT * EXCLUDE (updated_at) FROM reports.rpt_executive_summary"
    summary_cols = [d[0] for d in con.execute(summary_sql + " LIMIT 0").description]
    summary_row = con.execute(summary_sql).fetchone()
    return {
        "summary": dict(zip(summary_cols, summary_row, strict=True)) if summary_row else {},
        "dau": _q(con, "SELECT event_date, dau_count FROM marts.daily_active_users ORDER BY event_date"),
        "conversion": _q(
            con, "SELECT event_date, conversion_rate FROM marts.conversion_rate_daily ORDER BY event_date"
        ),
        "gmv": _q(
            con,
            "SELECT strftime(window_start, '%m-%d %H:%M'), gmv FROM marts.kpis_per_minute ORDER BY window_start",
        ),
        "pages": _q(
            con,
            "SELECT page, sum(purchase_count) AS n FROM marts.purchases_per_page_daily GROUP BY page ORDER BY n DESC, page LIMIT 10",
        ),
        "quarantine": _q(
            con, "SELECT reason, quarantined_rows FROM reports.rpt_quarantine_reasons ORDER BY 2 DESC, 1"
        ),
        "runs": _q(
            con,
            "SELECT run_id, layer, rows_in, min(epoch(started_at)) OVER (PARTITION BY run_id) AS run_start "
            "FROM reports.rpt_pipeline_runs ORDER BY run_start, run_id, layer",
        ),
        "ranking": _q(
            con,
            "SELECT revenue_rank, display_name, category_group, orders, revenue, revenue_share "
            "FROM reports.rpt_category_ranking ORDER BY revenue_rank",
        ),
    }


def _gmv_series(rows: list[tuple[Any, ...]], max_points: int = 2000) -> tuple[list[str], list[float]]:
    """GMV per minute; past max_points minutes, each point is the max of consecutive minutes
    (peaks stay visible), labelled by its first minute."""
    if not rows:
        return [], []
    step = max(1, -(-len(rows) // max_points))
    labels, values = [], []
    for i in range(0, len(rows), step):
        chunk = rows[i : i + step]
        labels.append(str(chunk[0][0]))
        values.append(float(max(r[1] for r in chunk)))
    return labels, values


def render(data: dict[str, Any], title: str = "Ampere Lakehouse — gold report") -> str:
    s = data["summary"]
    tiles = [
        ("Events", f"{s.get('total_events', 0):,}"),
        ("Users", f"{s.get('total_users', 0):,}"),
        ("Average DAU", f"{s.get('avg_dau', 0):,.1f}"),
        ("Conversion", f"{(s.get('avg_conversion_rate') or 0):.2%}"),
        ("Purchases", f"{s.get('total_purchases', 0):,}"),
        ("GMV (USD)", _money(s.get("total_gmv"))),
        ("Orders", f"{s.get('total_orders', 0):,}"),
        ("Revenue (USD)", _money(s.get("total_revenue"))),
        ("Avg order value", _money(s.get("avg_order_value"))),
        ("Top category", escape(str(s.get("top_category") or "-"))),
    ]
    gmv_labels, gmv_values = _gmv_series(data["gmv"])
    runs = data["runs"]
    run_ids = list(dict.fromkeys(r[0] for r in runs))
    layers = sorted({r[1] for r in runs})
    by = {(r[0], r[1]): float(r[2]) for r in runs}
    charts = {
        "dau": (
            "Daily active users",
            svg.bar_chart(
                "dau",
                "Daily active users",
                [str(r[0])[5:] for r in data["dau"]],
                [float(r[1]) for r in data["dau"]],
            ),
        ),
        "conversion": (
            "Conversion rate (purchasing users / DAU)",
            svg.line_chart(
                "conversion",
                "Conversion rate",
                [str(r[0])[5:] for r in data["conversion"]],
                [float(r[1]) for r in data["conversion"]],
                svg.PALETTE[2],
                pct=True,
            ),
        ),
        "gmv_per_minute": (
            "GMV per minute (USD)",
            svg.line_chart("gmv_per_minute", "GMV per minute", gmv_labels, gmv_values, svg.PALETTE[1]),
        ),
        "top_pages": (
            "Top pages by purchases",
            svg.hbar_chart(
                "top_pages",
                "Top pages by purchases",
                [r[0] for r in data["pages"]],
                [float(r[1]) for r in data["pages"]],
            ),
        ),
        "quarantine_reasons": (
            "Quarantined rows by reason",
            svg.hbar_chart(
                "quarantine_reasons",
                "Quarantine reasons",
                [r[0] for r in data["quarantine"]],
                [float(r[1]) for r in data["quarantine"]],
                svg.PALETTE[3],
            ),
        ),
        "rows_per_layer": (
            "Rows in per layer per run",
            svg.grouped_bar_chart(
                "rows_per_layer",
                "Rows per layer per run",
                [rid[:15] for rid in run_ids],
                {layer: [by.get((rid, layer), 0.0) for rid in run_ids] for layer in layers},
            ),
        ),
    }
    ranking_rows = "".join(
        f"<tr><td class=num>{r[0]}</td><td>{escape(str(r[1]))}</td><td>{escape(str(r[2]))}</td>"
        f"<td class=num>{r[3]:,}</td><td class=num>{_money(r[4])}</td><td class=num>{r[5]:.1%}</td></tr>"
        for r in data["ranking"]
    )
    generated = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    period = f"{s.get('period_start')} .. {s.get('period_end')}"
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escape(title)}</title><style>{CSS}</style></head>
<body><header><h1>{escape(title)}</h1><p>Period {escape(period)} · generated {generated} · source: gold marts (dbt)</p></header>
<main>
<section class="tiles">{"".join(f'<div class="tile"><div class="label">{k}</div><div class="value">{v}</div></div>' for k, v in tiles)}</section>
<section class="grid">
{"".join(f'<figure class="chart" id="chart-{name}"><figcaption>{escape(cap)}</figcaption>{body}</figure>' for name, (cap, body) in charts.items())}
</section>
<h2>Category ranking</h2>
<table><thead><tr><th>#</th><th>category</th><th>group</th><th>orders</th><th>revenue</th><th>share</th></tr></thead>
<tbody>{ranking_rows}</tbody></table>
</main></body></html>
"""


def write(settings: Settings, out: Path | None = None, project: DbtProject | None = None) -> Path:
    """Write the report for this lake's last gold build; returns its path."""
    project = project or DbtProject.from_settings(settings)
    if not project.duckdb_path.exists():
        raise LakehouseError(f"no gold build at {project.duckdb_path}: run `lakehouse gold build` first")
    con = duckdb.connect(str(project.duckdb_path), read_only=True)
    try:
        data = collect(con)
    finally:
        con.close()
    out = out or project.work_dir / "report" / "index.html"
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    tmp.write_text(render(data))
    tmp.replace(out)
    return out
