"""The static HTML report renders its charts in a real headless Chromium (offline, no JS).

The test injects a measuring script into a copy of the report, lets Chromium lay the page out
and dumps the DOM: every chart's <svg> must have a non-zero on-screen size and drawn marks
(bars, lines) of non-zero size. A screenshot must be a real, non-blank PNG.
"""

from __future__ import annotations

import json
import re
import shutil
import struct
import subprocess
import zlib
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from lakehouse.app.render import report_html as report
from lakehouse.gold.report_data import ReportData

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="Debian chromium is not installed (make setup-dbt installs it)"
)

MEASURE = """
<script>
window.addEventListener('load', () => {
  const out = {};
  document.querySelectorAll('svg.chart-svg').forEach(svg => {
    const box = svg.getBoundingClientRect();
    const marks = [...svg.querySelectorAll('rect.bar, polyline.series')].map(m => m.getBoundingClientRect())
      .filter(b => b.width > 0 && b.height > 0).length;
    out[svg.dataset.chart] = {w: box.width, h: box.height, marks: marks};
  });
  const pre = document.createElement('pre');
  pre.id = 'measured';
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
});
</script>
"""


def _data() -> ReportData:
    days = [date(2026, 11, 1) + timedelta(days=i) for i in range(7)]
    return ReportData(
        summary={
            "period_start": days[0],
            "period_end": days[-1],
            "total_orders": 1200,
            "total_customers": 300,
            "total_revenue": Decimal("98765.43"),
            "avg_order_value": Decimal("82.30"),
            "total_events": 50000,
            "total_users": 4000,
            "total_purchases": 2000,
            "total_gmv": Decimal("123456.78"),
            "avg_dau": 812.5,
            "avg_conversion_rate": 0.047,
            "top_category": "Toys",
        },
        dau=[(d, 800 + 10 * i) for i, d in enumerate(days)],
        conversion=[(d, 0.04 + 0.002 * i) for i, d in enumerate(days)],
        gmv=[
            (datetime(2026, 11, 1, h, m, tzinfo=UTC).timestamp(), Decimal(str((h * 60 + m) % 97)))
            for h in range(24)
            for m in range(60)
        ],
        pages=[("/checkout", 230), ("/deals", 211), ("/", 202)],
        quarantine=[("malformed_json", 52), ("negative_price", 25)],
        runs=[
            ("20261101T000000-aaaa", "bronze", 50000, 1.0),
            ("20261101T000000-aaaa", "silver", 50000, 1.0),
            ("20261101T010000-bbbb", "bronze", 300, 2.0),
            ("20261101T010000-bbbb", "silver", 280, 2.0),
        ],
        ranking=[
            (1, "Toys", "Leisure", 500, Decimal("30000.00"), 0.3),
            (2, "Books", "Media", 300, Decimal("20000.00"), 0.2),
        ],
    )


def _chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    profile = tmp_path / "profile"
    cmd = [
        str(CHROMIUM),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        f"--user-data-dir={profile}",
        "--window-size=1400,2000",
        *args,
    ]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)


def _png_is_not_blank(path: Path) -> tuple[int, int, int]:
    """(width, height, distinct byte values in the image data): a blank page has very few."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    pos, idat = 8, b""
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8]
        if kind == b"IDAT":
            idat += data[pos + 8 : pos + 8 + length]
        pos += 12 + length
    return width, height, len(set(zlib.decompress(idat)))


def test_report_charts_render_in_headless_chromium(tmp_path: Path) -> None:
    html = report.render(_data())
    page = tmp_path / "report.html"
    page.write_text(html.replace("</body>", MEASURE + "</body>"))
    proc = _chromium(tmp_path, "--virtual-time-budget=5000", "--dump-dom", page.as_uri())
    assert proc.returncode == 0, proc.stderr[-2000:]
    found = re.search(r'<pre id="measured">(.*?)</pre>', proc.stdout, re.S)
    assert found, proc.stdout[-2000:]
    measured = json.loads(found.group(1).replace("&quot;", '"'))
    assert set(measured) == set(report.CHARTS)
    for name, box in measured.items():
        assert box["w"] > 100 and box["h"] > 50, (name, box)
        assert box["marks"] >= 1, (name, box)
    assert measured["dau"]["marks"] == 7 and measured["top_pages"]["marks"] == 3
    assert measured["rows_per_layer"]["marks"] == 4

    shot = tmp_path / "report.png"
    proc = _chromium(tmp_path, f"--screenshot={shot}", (tmp_path / "report.html").as_uri())
    assert proc.returncode == 0 and shot.exists(), proc.stderr[-2000:]
    width, height, distinct = _png_is_not_blank(shot)
    assert (width, height) == (1400, 2000)
    assert distinct > 50


def test_report_is_self_contained() -> None:
    html = report.render(_data())
    assert "<script" not in html
    assert not re.search(r'(src|href)="(https?:)?//', html)
    assert html.count("<svg") == len(report.CHARTS)
