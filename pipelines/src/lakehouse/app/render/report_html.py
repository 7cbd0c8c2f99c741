"""The static HTML report: headline KPIs and charts from the gold build, one self-contained file.

Charts are inline SVG (app.render.svg): no JavaScript, no CDN, so the file
opens offline. Data comes from the gold DuckDB build (gold.report_data: the same tables PostgreSQL gold.* gets).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from decimal import Decimal
from html import escape
from pathlib import Path
from typing import Any

from lakehouse.app.render import svg
from lakehouse.core.settings import Settings
from lakehouse.gold import report_data
from lakehouse.gold.dbt import DbtProject
from lakehouse.gold.report_data import ReportData

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


def human(v: Any) -> str:
    """A count as a person reads it: exact below 10,000, else three significant digits (39.8k, 1.23M)."""
    n = float(v or 0)
    for unit, size in (("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= max(size, 10_000):
            return f"{n / size:.3g}{unit}"
    return f"{n:,.0f}"


def money(v: Any) -> str:
    """Dollars as a person reads them: cents below $10,000 ($82.30), else $123k, $1.23M."""
    n = float(Decimal(v or 0))
    return f"${n:,.2f}" if abs(n) < 10_000 else "$" + human(n)


def _epoch(day: Any) -> float:
    return datetime.combine(day, time(), UTC).timestamp() if isinstance(day, date) else float(day)


def _per_minute(
    rows: list[tuple[Any, ...]], max_points: int = 2000
) -> tuple[list[tuple[float, float]], float]:
    """GMV per minute at its real time; past max_points minutes, each point is the largest of a
    few consecutive minutes (peaks stay visible) and the step grows to match."""
    points = [(float(t), float(v)) for t, v in rows]
    if not points:
        return [], 60.0
    span = points[-1][0] - points[0][0]
    factor = max(1, int(-(-span // 60) // max_points) + 1) if span / 60 > max_points else 1
    step = 60.0 * factor
    buckets: dict[float, float] = {}
    for t, v in points:
        key = t - (t - points[0][0]) % step
        buckets[key] = max(buckets.get(key, v), v)
    return sorted(buckets.items()), step


def period_text(days: list[Any]) -> str:
    """The periods the data covers, each with its first and last day (apart when far apart)."""
    if not days:
        return "no data"
    times = sorted(_epoch(d) for d in days)
    spans = []
    for a, b in svg.periods(times, 86_400):
        first = datetime.fromtimestamp(times[a], UTC).date()
        last = datetime.fromtimestamp(times[b - 1], UTC).date()
        spans.append(f"{first}" if first == last else f"{first} – {last}")
    if len(spans) == 1:
        return f"Period {spans[0]}"
    return f"Data in {len(spans)} periods far apart: " + " and ".join(spans)


def render(data: ReportData, title: str = "Ampere Lakehouse — gold report") -> str:
    s = data.summary
    exact = lambda key: f"{s.get(key) or 0:,}"  # noqa: E731  (the tile's tooltip: the exact figure)
    tiles = [
        ("Events", human(s.get("total_events")), exact("total_events")),
        ("Users", human(s.get("total_users")), exact("total_users")),
        ("Average DAU", human(s.get("avg_dau")), f"{s.get('avg_dau') or 0:,.2f}"),
        (
            "Conversion",
            f"{(s.get('avg_conversion_rate') or 0):.1%}",
            f"{(s.get('avg_conversion_rate') or 0):.4%}",
        ),
        ("Purchases", human(s.get("total_purchases")), exact("total_purchases")),
        ("GMV (USD)", money(s.get("total_gmv")), f"${Decimal(s.get('total_gmv') or 0):,.2f}"),
        ("Orders", human(s.get("total_orders")), exact("total_orders")),
        ("Revenue (USD)", money(s.get("total_revenue")), f"${Decimal(s.get('total_revenue') or 0):,.2f}"),
        (
            "Avg order value",
            money(s.get("avg_order_value")),
            f"${Decimal(s.get('avg_order_value') or 0):,.2f}",
        ),
        ("Top category", escape(str(s.get("top_category") or "-")), ""),
    ]
    gmv_points, gmv_step = _per_minute(data.gmv)
    runs = data.runs
    run_ids = list(dict.fromkeys(r[0] for r in runs))
    layers = sorted({r[1] for r in runs})
    by = {(r[0], r[1]): float(r[2]) for r in runs}
    charts = {
        "dau": (
            "Daily active users",
            svg.time_chart(
                "dau", "Daily active users", [(_epoch(r[0]), float(r[1])) for r in data.dau], 86_400
            ),
        ),
        "conversion": (
            "Conversion rate (purchasing users / DAU)",
            svg.time_chart(
                "conversion",
                "Conversion rate",
                [(_epoch(r[0]), float(r[1])) for r in data.conversion],
                86_400,
                "line",
                svg.PALETTE[2],
                pct=True,
            ),
        ),
        "gmv_per_minute": (
            "GMV per minute (USD)",
            svg.time_chart("gmv_per_minute", "GMV per minute", gmv_points, gmv_step, "line", svg.PALETTE[1]),
        ),
        "top_pages": (
            "Top pages by purchases",
            svg.hbar_chart(
                "top_pages",
                "Top pages by purchases",
                [r[0] for r in data.pages],
                [float(r[1]) for r in data.pages],
            ),
        ),
        "quarantine_reasons": (
            "Quarantined rows by reason",
            svg.hbar_chart(
                "quarantine_reasons",
                "Quarantine reasons",
                [r[0] for r in data.quarantine],
                [float(r[1]) for r in data.quarantine],
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
        f"<td class=num>{r[3]:,}</td><td class=num>{money(r[4])}</td><td class=num>{r[5]:.1%}</td></tr>"
        for r in data.ranking
    )
    generated = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    period = period_text([r[0] for r in data.dau])
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escape(title)}</title><style>{CSS}</style></head>
<body><header><h1>{escape(title)}</h1><p>{escape(period)} · generated {generated} · source: gold marts (dbt)</p></header>
<main>
<section class="tiles">{"".join(f'<div class="tile" title="{t}"><div class="label">{k}</div><div class="value">{v}</div></div>' for k, v, t in tiles)}</section>
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
    data = report_data.load(project)
    out = out or project.work_dir / "report" / "index.html"
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    tmp.write_text(render(data))
    tmp.replace(out)
    return out
