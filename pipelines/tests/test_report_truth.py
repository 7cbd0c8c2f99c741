"""The report tells the truth at a glance: charts over time sit on a real time axis (a missing day
is an empty slot, a missing minute breaks the line), data far apart in time (last month's batch,
today's streaming burst) is drawn as separate periods with the gap written between them, and
headline figures are rounded as a person reads them (the exact figure in the tooltip)."""

from __future__ import annotations

import itertools
import re
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from lakehouse.app.render import report_html as report
from lakehouse.app.render import svg
from lakehouse.gold.report_data import ReportData

DAY = 86_400


def _xs(chart: str) -> list[float]:
    return [float(x) for x in re.findall(r'<rect class="bar" x="([0-9.]+)"', chart)]


def test_a_missing_day_is_an_empty_slot() -> None:
    days = [date(2026, 11, d) for d in (1, 2, 3, 5, 6)]  # the 4th has no data
    chart = svg.time_chart("dau", "DAU", [(report._epoch(d), 10.0) for d in days], DAY)
    xs = _xs(chart)
    steps = [b - a for a, b in itertools.pairwise(xs)]
    assert len(xs) == 5
    assert abs(steps[2] - 2 * steps[0]) < 0.5  # 3rd -> 5th is two slots wide
    assert all(abs(s - steps[0]) < 0.5 for s in (steps[1], steps[3]))


def test_a_missing_minute_breaks_the_line() -> None:
    t0 = datetime(2026, 11, 1, tzinfo=UTC).timestamp()
    points = [(t0 + 60 * m, 5.0) for m in range(30) if m not in (10, 11)]
    chart = svg.time_chart("gmv", "GMV", points, 60, "line")
    assert chart.count('<polyline class="series"') == 2


def test_periods_far_apart_are_drawn_apart() -> None:
    batch = [datetime(2026, 11, 1, tzinfo=UTC) + timedelta(minutes=m) for m in range(0, 7 * 1440, 7)]
    burst = [datetime(2026, 12, 7, 4, tzinfo=UTC) + timedelta(minutes=m) for m in range(9)]
    points = [(t.timestamp(), 1.0) for t in batch + burst]
    assert [len(range(a, b)) for a, b in svg.periods([p[0] for p in points], 60)] == [len(batch), len(burst)]
    chart = svg.time_chart("gmv", "GMV", points, 60, "line")
    assert chart.count('class="break"') == 1 and "29 days apart" in chart
    # inside its own panel the burst spreads over half the plot, not a sliver of it
    burst_xs = [float(x) for x in re.findall(r"([0-9.]+),[0-9.]+", chart.split('class="break"')[1])]
    assert max(burst_xs) - min(burst_xs) > (svg.W - svg.PAD_L - svg.PAD_R) * 0.4
    assert report.period_text([t.date() for t in batch + burst]) == (
        "Data in 2 periods far apart: 2026-11-01 – 2026-11-07 and 2026-12-07"
    )
    # a one-day outage inside a week is a gap in one period, not a second period
    assert len(svg.periods([report._epoch(date(2026, 11, d)) for d in (1, 2, 3, 5, 6, 7)], DAY)) == 1


def test_headline_figures_rounded_as_read() -> None:
    assert [report.human(n) for n in (0, 812.5, 9_999, 39_774, 123_456, 1_234_567, 2_000_000_000)] == [
        "0",
        "812",
        "9,999",
        "39.8k",
        "123k",
        "1.23M",
        "2B",
    ]
    assert [report.money(v) for v in (Decimal("82.30"), Decimal("123456.78"), Decimal("1500000"))] == [
        "$82.30",
        "$123k",
        "$1.5M",
    ]
    data = ReportData(
        summary={
            "total_events": 1_003_210,
            "total_gmv": Decimal("123456.78"),
            "avg_conversion_rate": 0.04719,
        },
        dau=[(date(2026, 11, 1), 800)],
        conversion=[(date(2026, 11, 1), 0.047)],
        gmv=[],
        pages=[],
        quarantine=[],
        runs=[],
        ranking=[],
    )
    html = report.render(data)
    assert (
        '<div class="tile" title="1,003,210"><div class="label">Events</div><div class="value">1M</div>'
        in html
    )
    assert '<div class="value">$123k</div>' in html and '<div class="value">4.7%</div>' in html
    assert "Period 2026-11-01 ·" in html
