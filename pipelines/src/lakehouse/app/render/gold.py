"""What the CLI shows for quality gates and the gold KPIs (see `render.tables` for the rules every
table follows: whole names at 120 columns, plain rows for `--json`)."""

from __future__ import annotations

from decimal import Decimal

from rich.console import Group, RenderableType
from rich.padding import Padding
from rich.table import Table
from rich.text import Text

from lakehouse.app.render.tables import name_column, titled
from lakehouse.gold.gate import GateReport
from lakehouse.gold.kpis import Kpis


def gate_table(report: GateReport, all_rows: bool = False) -> RenderableType:
    """A passing gate is one line; a failing one (or --all) lists its checks under that line,
    one per line with its kind and failures, its message indented below (a list, not a table:
    dbt's check names run to 80 characters and stay whole)."""
    counts = ", ".join(f"{k} {v}" for k, v in sorted(report.counts().items())) or "no checks"
    verdict = "[green]PASSED[/]" if report.passed else "[red]FAILED[/]"
    head = f"Quality gate {report.layer}: {verdict} ({counts}; {report.seconds:.1f}s, run {report.run_id})"
    notes = f" — {'; '.join(report.notes)}" if report.notes else ""
    rows = report.results if all_rows else [r for r in report.results if r.status != "pass"]
    if not rows:
        return Text.from_markup(head + notes)
    colour = {"pass": "green", "warn": "yellow", "fail": "red", "error": "red", "skipped": "dim"}
    lines: list[RenderableType] = [Text.from_markup(head + notes)]
    for r in rows:
        line = Text("  ")
        line.append(f"{r.status:<8}", style=colour.get(r.status, "white"))
        line.append(r.check_name, style="bold")
        failures = f", {r.failures:,} failing row(s)" if r.failures else ""
        line.append(f"  ({r.kind}{failures})")
        lines.append(line)
        if r.message:
            lines.append(Padding(Text(" ".join(r.message[:300].split())), (0, 0, 0, 10)))
    return Group(*lines)


def kpi_rows(k: Kpis) -> list[tuple[str, str, str]]:
    """(KPI, value, where it is counted from) for the headline KPIs."""

    def money(v: object) -> str:
        return f"${Decimal(str(v or 0)):,.2f}"

    s, d, p = k.summary, k.last_day, k.peak_minute
    day = d.get("event_date")
    return [
        ("period", f"{s['period_start']} .. {s['period_end']}", "first and last order or event date"),
        ("events", f"{s['total_events']:,}", "silver.events"),
        ("users", f"{s['total_users']:,}", "distinct user_id in silver.events"),
        ("average DAU", f"{s['avg_dau']:,.1f}", "gold.agg_daily_active_users"),
        ("conversion", f"{s['avg_conversion_rate']:.2%}", "purchasing users / DAU, all days"),
        ("purchases", f"{s['total_purchases']:,}", "purchase events in silver.events"),
        ("GMV (USD)", money(s["total_gmv"]), "amount_base of purchase events, silver.events"),
        ("orders", f"{s['total_orders']:,}", "orders not cancelled, with lines (silver.orders)"),
        ("revenue (USD)", money(s["total_revenue"]), "lines of those orders (silver.order_items)"),
        ("average order value", money(s["avg_order_value"]), "revenue / orders"),
        ("top category", str(s["top_category"]), "by revenue (gold.rpt_category_ranking)"),
        (f"DAU on {day}", f"{d.get('dau_count', 0):,}", "last day of gold.agg_conversion_rate_daily"),
        (f"conversion on {day}", f"{(d.get('conversion_rate') or 0):.2%}", "that day"),
        ("peak GMV minute", money(p.get("gmv")), f"{p.get('window_start')} (gold.agg_kpis_per_minute)"),
    ]


def kpi_table(k: Kpis, where: str = "PostgreSQL gold") -> Table:
    table = titled(f"Headline KPIs (read from {where})")
    name_column(table, "KPI", words=True)
    table.add_column("value", justify="right", no_wrap=True)
    name_column(table, "counted from", words=True)
    for name, value, source in kpi_rows(k):
        table.add_row(name, value, source)
    return table
