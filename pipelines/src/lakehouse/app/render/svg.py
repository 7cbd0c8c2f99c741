"""Small inline-SVG charts (bar, horizontal bar, line, grouped bar) for the static report.

No JavaScript and no external assets: each chart is an <svg> element with a viewBox, so the
report renders offline in any browser and scales with the page.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from html import escape

PALETTE = ("#2e86c1", "#d4af37", "#27ae60", "#c0392b", "#8e44ad", "#16a085", "#e67e22")
W, H = 720, 300
PAD_L, PAD_R, PAD_T, PAD_B = 64, 16, 16, 48


def _nice_max(v: float) -> float:
    if v <= 0:
        return 1.0
    exp = 10 ** math.floor(math.log10(v))
    for step in (1, 2, 2.5, 5, 10):
        if v <= step * exp:
            return step * exp
    return 10 * exp


def _fmt(v: float) -> str:
    if abs(v) >= 1_000_000:
        return f"{v / 1_000_000:.1f}M"
    if abs(v) >= 1_000:
        return f"{v / 1_000:.1f}k"
    if abs(v) < 1 and v != 0:
        return f"{v:.2f}"
    return f"{v:.0f}"


def _frame(name: str, title: str, body: str, width: int = W, height: int = H) -> str:
    return (
        f'<svg class="chart-svg" data-chart="{escape(name)}" role="img" aria-label="{escape(title)}" '
        f'viewBox="0 0 {width} {height}" width="100%" preserveAspectRatio="xMidYMid meet" '
        f'xmlns="http://www.w3.org/2000/svg"><title>{escape(title)}</title>{body}</svg>'
    )


def _y_axis(ymax: float, fmt_pct: bool = False) -> str:
    out = []
    plot_h = H - PAD_T - PAD_B
    for i in range(5):
        v = ymax * i / 4
        y = PAD_T + plot_h - plot_h * i / 4
        label = f"{v:.0%}" if fmt_pct else _fmt(v)
        out.append(
            f'<line x1="{PAD_L}" x2="{W - PAD_R}" y1="{y:.1f}" y2="{y:.1f}" stroke="#e5e5e5"/>'
            f'<text x="{PAD_L - 6}" y="{y + 4:.1f}" text-anchor="end" font-size="11" fill="#555">{label}</text>'
        )
    return "".join(out)


def _x_labels(labels: Sequence[str], xs: Sequence[float], max_labels: int = 8) -> str:
    if not labels:
        return ""
    step = max(1, math.ceil(len(labels) / max_labels))
    return "".join(
        f'<text x="{xs[i]:.1f}" y="{H - PAD_B + 16}" text-anchor="middle" font-size="11" fill="#555">{escape(labels[i])}</text>'
        for i in range(0, len(labels), step)
    )


def empty(name: str, title: str) -> str:
    return _frame(
        name, title, f'<text x="{W / 2}" y="{H / 2}" text-anchor="middle" fill="#888">no data</text>'
    )


def bar_chart(
    name: str, title: str, labels: Sequence[str], values: Sequence[float], color: str = PALETTE[0]
) -> str:
    if not values:
        return empty(name, title)
    ymax = _nice_max(max(values))
    plot_w, plot_h = W - PAD_L - PAD_R, H - PAD_T - PAD_B
    slot = plot_w / len(values)
    bars, xs = [], []
    for i, v in enumerate(values):
        h = plot_h * v / ymax
        x = PAD_L + i * slot + slot * 0.15
        xs.append(x + slot * 0.35)
        bars.append(
            f'<rect class="bar" x="{x:.1f}" y="{PAD_T + plot_h - h:.1f}" width="{slot * 0.7:.1f}" height="{h:.1f}" fill="{color}">'
            f"<title>{escape(labels[i])}: {v:,.0f}</title></rect>"
        )
    return _frame(name, title, _y_axis(ymax) + "".join(bars) + _x_labels(labels, xs))


def line_chart(
    name: str,
    title: str,
    labels: Sequence[str],
    values: Sequence[float],
    color: str = PALETTE[0],
    pct: bool = False,
) -> str:
    if not values:
        return empty(name, title)
    ymax = _nice_max(max(values))
    plot_w, plot_h = W - PAD_L - PAD_R, H - PAD_T - PAD_B
    n = len(values)
    xs = [PAD_L + (plot_w * i / (n - 1) if n > 1 else plot_w / 2) for i in range(n)]
    pts = " ".join(f"{xs[i]:.1f},{PAD_T + plot_h - plot_h * v / ymax:.1f}" for i, v in enumerate(values))
    dots = (
        "".join(
            f'<circle cx="{xs[i]:.1f}" cy="{PAD_T + plot_h - plot_h * v / ymax:.1f}" r="3" fill="{color}">'
            f"<title>{escape(labels[i])}: {v:.2%}</title></circle>"
            if pct
            else f'<circle cx="{xs[i]:.1f}" cy="{PAD_T + plot_h - plot_h * v / ymax:.1f}" r="3" fill="{color}"/>'
            for i, v in enumerate(values)
        )
        if n <= 60
        else ""
    )
    body = (
        _y_axis(ymax, pct)
        + f'<polyline class="series" fill="none" stroke="{color}" stroke-width="{1.5 if n > 200 else 2}" points="{pts}"/>'
        + dots
        + _x_labels(labels, xs)
    )
    return _frame(name, title, body)


def hbar_chart(
    name: str, title: str, labels: Sequence[str], values: Sequence[float], color: str = PALETTE[1]
) -> str:
    if not values:
        return empty(name, title)
    row_h, left = 26, 180
    height = PAD_T + row_h * len(values) + 8
    vmax = max(values) or 1
    plot_w = W - left - 80
    rows = []
    for i, (label, v) in enumerate(zip(labels, values, strict=True)):
        y = PAD_T + i * row_h
        w = max(plot_w * v / vmax, 1)
        rows.append(
            f'<text x="{left - 8}" y="{y + 17}" text-anchor="end" font-size="12" fill="#333">{escape(label)}</text>'
            f'<rect class="bar" x="{left}" y="{y + 4}" width="{w:.1f}" height="{row_h - 8}" fill="{color}"/>'
            f'<text x="{left + w + 6:.1f}" y="{y + 17}" font-size="12" fill="#333">{v:,.0f}</text>'
        )
    return _frame(name, title, "".join(rows), W, height)


def grouped_bar_chart(
    name: str, title: str, groups: Sequence[str], series: dict[str, Sequence[float]]
) -> str:
    if not groups or not series:
        return empty(name, title)
    ymax = _nice_max(max(max(v) for v in series.values()))
    plot_w, plot_h = W - PAD_L - PAD_R, H - PAD_T - PAD_B
    slot = plot_w / len(groups)
    k = len(series)
    bar_w = slot * 0.8 / k
    bars, xs = [], []
    for g in range(len(groups)):
        xs.append(PAD_L + g * slot + slot / 2)
        for j, (label, values) in enumerate(series.items()):
            v = values[g]
            h = plot_h * v / ymax
            x = PAD_L + g * slot + slot * 0.1 + j * bar_w
            bars.append(
                f'<rect class="bar" x="{x:.1f}" y="{PAD_T + plot_h - h:.1f}" width="{bar_w:.1f}" height="{h:.1f}" '
                f'fill="{PALETTE[j % len(PALETTE)]}"><title>{escape(groups[g])} {escape(label)}: {v:,.0f}</title></rect>'
            )
    legend = "".join(
        f'<rect x="{PAD_L + j * 130}" y="{H - 18}" width="10" height="10" fill="{PALETTE[j % len(PALETTE)]}"/>'
        f'<text x="{PAD_L + j * 130 + 14}" y="{H - 9}" font-size="11" fill="#333">{escape(label)}</text>'
        for j, label in enumerate(series)
    )
    return _frame(
        name,
        title,
        _y_axis(ymax)
        + "".join(bars)
        + _x_labels(groups, xs, 6).replace(f'y="{H - PAD_B + 16}"', f'y="{H - PAD_B + 14}"')
        + legend,
    )


# -- time axes ---------------------------------------------------------------------------------------
# A point is (unix seconds, value). Points sit at their real time: a missing day or minute is an
# empty slot (a gap in the line), never squeezed out. When the data falls into periods far apart
# (a gap longer than a quarter of the whole span, e.g. last month's batch and today's stream),
# each period gets its own panel with its own time axis, side by side, with the gap written between
# them, so neither is flattened to a sliver.
SPLIT_SHARE = 0.25
PANEL_GAP = 36


def periods(times: Sequence[float], step: float) -> list[tuple[int, int]]:
    """Index ranges [start, end) of the points' periods (times sorted ascending)."""
    if not times:
        return []
    span = times[-1] - times[0]
    cuts = [i for i in range(1, len(times)) if times[i] - times[i - 1] > max(SPLIT_SHARE * span, 10 * step)]
    bounds = [0, *cuts, len(times)]
    return list(itertools.pairwise(bounds))


def _time_label(t: float, step: float, span: float) -> str:
    from datetime import UTC, datetime

    d = datetime.fromtimestamp(t, UTC)
    if step >= 86_400:
        return d.strftime("%m-%d")
    return d.strftime("%H:%M") if span < 86_400 else d.strftime("%m-%d %H:%M")


def _duration(seconds: float) -> str:
    days = seconds / 86_400
    if days >= 2:
        return f"{days:.0f} days"
    hours = seconds / 3600
    return f"{hours:.0f} h" if hours >= 2 else f"{seconds / 60:.0f} min"


def time_chart(
    name: str,
    title: str,
    points: Sequence[tuple[float, float]],
    step: float,
    kind: str = "bar",
    color: str = PALETTE[0],
    pct: bool = False,
) -> str:
    """Bars (one per `step`) or a line over real time; see the notes above this function."""
    if not points:
        return empty(name, title)
    points = sorted(points)
    times = [t for t, _ in points]
    ymax = _nice_max(max(v for _, v in points))
    plot_h = H - PAD_T - PAD_B
    parts = periods(times, step)
    plot_w = W - PAD_L - PAD_R - PANEL_GAP * (len(parts) - 1)
    panel_w = plot_w / len(parts)
    body = [_y_axis(ymax, pct)]
    for k, (a, b) in enumerate(parts):
        x0 = PAD_L + k * (panel_w + PANEL_GAP)
        if k:
            gap = times[a] - times[parts[k - 1][1] - 1]
            gx = x0 - PANEL_GAP / 2
            body.append(
                f'<line class="break" x1="{gx:.1f}" x2="{gx:.1f}" y1="{PAD_T}" y2="{PAD_T + plot_h}" '
                f'stroke="#999" stroke-dasharray="4 3"/>'
                f'<text x="{gx:.1f}" y="{H - PAD_B + 32}" text-anchor="middle" font-size="11" fill="#a33">'
                f"{escape(_duration(gap))} apart</text>"
            )
        t0, t1 = times[a], times[b - 1] + (step if kind == "bar" else 0)
        width_t = max(t1 - t0, step)

        def x(t: float, x0: float = x0, t0: float = t0, width_t: float = width_t) -> float:
            return x0 + panel_w * (t - t0) / width_t

        def y(v: float) -> float:
            return PAD_T + plot_h - plot_h * v / ymax

        seg = points[a:b]
        if kind == "bar":
            slot = panel_w * step / width_t
            for t, v in seg:
                label = (
                    f"{_time_label(t, step, width_t)}: {v:.2%}"
                    if pct
                    else f"{_time_label(t, step, width_t)}: {v:,.0f}"
                )
                body.append(
                    f'<rect class="bar" x="{x(t) + slot * 0.1:.1f}" y="{y(v):.1f}" width="{max(slot * 0.8, 1):.1f}" '
                    f'height="{plot_h * v / ymax:.1f}" fill="{color}"><title>{escape(label)}</title></rect>'
                )
        else:
            run: list[str] = []
            lines: list[list[str]] = [run]
            for i, (t, v) in enumerate(seg):
                if i and t - seg[i - 1][0] > 1.5 * step:  # a missing step: the line breaks
                    run = []
                    lines.append(run)
                run.append(f"{x(t):.1f},{y(v):.1f}")
            for pts in lines:
                if len(pts) == 1:
                    cx, cy = pts[0].split(",")
                    body.append(f'<circle cx="{cx}" cy="{cy}" r="2" fill="{color}"/>')
                else:
                    body.append(
                        f'<polyline class="series" fill="none" stroke="{color}" stroke-width="1.5" points="{" ".join(pts)}"/>'
                    )
        ticks = 4 if len(parts) == 1 else 2
        for j in range(ticks + 1):
            t = t0 + width_t * j / ticks
            anchor = "start" if j == 0 else ("end" if j == ticks else "middle")
            body.append(
                f'<text x="{x(t):.1f}" y="{H - PAD_B + 16}" text-anchor="{anchor}" font-size="11" fill="#555">'
                f"{escape(_time_label(t, step, width_t))}</text>"
            )
    return _frame(name, title, "".join(body))
