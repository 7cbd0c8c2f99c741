"""One dashboard definition (dashboards/*.yaml) -> the Grafana dashboard JSON and a Superset bundle.

    python dashboards/render.py grafana [--check]       write (or compare) the committed Grafana JSON
    python dashboards/render.py superset OUT.zip --database-uri URI
                                                       the Superset asset bundle for that database

Both keep each panel's title, description and SQL exactly as defined; only the visual settings
are translated. Grafana gets one change to a query: a time series panel with `time_filter` is
wrapped so that Grafana's time picker also filters it ($__timeFilter on the "time" column).
Needs only PyYAML, so it runs in the pipeline's .venv and in Superset's .venv-superset alike.
"""

from __future__ import annotations

import argparse
import io
import json
import re
import sys
import uuid
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
DEFINITION = HERE / "lakehouse-overview.yaml"
GRAFANA_JSON = (
    HERE.parent / "ansible" / "roles" / "platform" / "files" / "dashboards" / "lakehouse-overview.json"
)
# The datasource the platform role provisions in Grafana (ansible/roles/platform/templates/values/grafana.yaml.j2).
GRAFANA_DATASOURCE = {"type": "grafana-postgresql-datasource", "uid": "lakehouse-serving"}
SUPERSET_DATABASE = "Lakehouse serving (BI role)"
NAMESPACE = uuid.UUID("6f1c53a4-3a52-4f0e-9c39-2a1d8b9e7d10")  # Superset UUIDs derive from it

VISUALS = ("stat", "timeseries", "bar", "table")
KINDS = ("time", "number", "text")
UNITS = {  # unit -> (Grafana unit, Grafana decimals, Superset number format)
    "count": ("short", None, "SMART_NUMBER"),
    "percent": ("percentunit", 1, ".1%"),
    "seconds": ("s", 1, ",.1f"),
}
TABLE_FORMAT = {"count": ",d", "percent": ".1%", "seconds": ",.0f"}  # Superset table cells
STYLES = ("line", "stacked-bars")
# Superset's time grain per visual: stat lines are daily marts, time series are one-minute windows.
SUPERSET_GRAIN = {"stat": "P1D", "timeseries": "PT1M"}
_IDENT = re.compile(r"[a-z_][a-z0-9_]*")


class DefinitionError(ValueError):
    """The dashboard definition is not valid (one line naming the panel and the field)."""


@dataclass(frozen=True)
class Panel:
    key: str
    title: str
    description: str
    visual: str
    sql: str
    columns: dict[str, str]  # name -> kind, in query order
    unit: str
    width: int
    height: int
    value: str | None = None
    series: str | None = None
    category: str | None = None
    style: str = "line"
    time_filter: bool = False

    @property
    def time(self) -> str | None:
        return "time" if self.columns.get("time") == "time" else None

    def numbers(self) -> list[str]:
        return [c for c, kind in self.columns.items() if kind == "number"]


@dataclass(frozen=True)
class Row:
    title: str
    panels: tuple[Panel, ...]


@dataclass(frozen=True)
class Dashboard:
    uid: str
    title: str
    description: str
    refresh_seconds: int
    time_range: dict[str, str]
    rows: tuple[Row, ...]

    @property
    def panels(self) -> list[Panel]:
        return [p for r in self.rows for p in r.panels]


# -- loading and checking ----------------------------------------------------------------------
def _req(obj: dict[str, Any], name: str, where: str, kind: type = str) -> Any:
    if name not in obj:
        raise DefinitionError(f"{where}: '{name}' is missing")
    value = obj[name]
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        raise DefinitionError(f"{where}: '{name}' must be a {kind.__name__} (got {value!r})")
    return value


def _panel(raw: Any, where: str) -> Panel:
    if not isinstance(raw, dict):
        raise DefinitionError(f"{where}: a panel must be a mapping")
    key = _req(raw, "key", where)
    where = f"{where} ({key})"
    if not _IDENT.fullmatch(key):
        raise DefinitionError(f"{where}: 'key' must be lower_snake_case")
    known = set(Panel.__dataclass_fields__) | {"size"}
    if unknown := sorted(set(raw) - known):
        raise DefinitionError(f"{where}: unknown field(s) {', '.join(unknown)}")
    visual = _req(raw, "visual", where)
    if visual not in VISUALS:
        raise DefinitionError(f"{where}: 'visual' must be one of {', '.join(VISUALS)} (got {visual!r})")
    columns = _req(raw, "columns", where, dict)
    for name, kind in columns.items():
        if not isinstance(name, str) or not _IDENT.fullmatch(name) or kind not in KINDS:
            raise DefinitionError(
                f"{where}: column {name!r}: a lower_snake_case name of kind {'|'.join(KINDS)}"
            )
    unit = _req(raw, "unit", where)
    if unit not in UNITS:
        raise DefinitionError(f"{where}: 'unit' must be one of {', '.join(UNITS)} (got {unit!r})")
    size = _req(raw, "size", where, dict)
    width, height = size.get("width"), size.get("height")
    if not isinstance(width, int) or not 1 <= width <= 24 or width % 2:
        raise DefinitionError(f"{where}: size.width must be an even number of grid columns, 2..24")
    if not isinstance(height, int) or not 2 <= height <= 30:
        raise DefinitionError(f"{where}: size.height must be 2..30 grid rows")
    panel = Panel(
        key=key,
        title=_req(raw, "title", where).strip(),
        description=" ".join(_req(raw, "description", where).split()),
        visual=visual,
        sql=_req(raw, "sql", where).strip(),
        columns=dict(columns),
        unit=unit,
        width=width,
        height=height,
        value=raw.get("value"),
        series=raw.get("series"),
        category=raw.get("category"),
        style=raw.get("style", "line"),
        time_filter=bool(raw.get("time_filter", False)),
    )
    _check_roles(panel, where)
    return panel


def _check_roles(p: Panel, where: str) -> None:
    def kind_of(field: str, name: str | None, kind: str) -> None:
        if name is None:
            raise DefinitionError(f"{where}: a {p.visual} panel needs '{field}'")
        if p.columns.get(name) != kind:
            raise DefinitionError(f"{where}: '{field}' {name!r} must be a {kind} column of 'columns'")

    if p.visual in ("stat", "timeseries", "bar"):
        kind_of("value", p.value, "number")
    if p.visual == "timeseries":
        if p.time is None:
            raise DefinitionError(f"{where}: a timeseries panel needs a time column named 'time'")
        kind_of("series", p.series, "text")
    if p.visual == "bar":
        kind_of("category", p.category, "text")
    if p.style not in STYLES or (p.style != "line" and p.visual != "timeseries"):
        raise DefinitionError(f"{where}: 'style' is for timeseries panels: {' | '.join(STYLES)}")
    if p.time_filter and p.visual != "timeseries":
        raise DefinitionError(f"{where}: 'time_filter' is for timeseries panels")
    if p.sql.rstrip().endswith(";") or "$__" in p.sql:
        raise DefinitionError(f"{where}: 'sql' must be one plain statement (no ';', no Grafana macros)")


def load(path: Path = DEFINITION) -> Dashboard:
    try:
        raw = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise DefinitionError(f"{path}: cannot read the definition ({type(exc).__name__})") from None
    where = path.name
    if not isinstance(raw, dict):
        raise DefinitionError(f"{where}: the top level must be a mapping")
    rows = []
    for i, row in enumerate(_req(raw, "rows", where, list)):
        rw = f"{where}: rows[{i}]"
        if not isinstance(row, dict):
            raise DefinitionError(f"{rw}: a row must be a mapping")
        panels = tuple(_panel(p, f"{rw}.panels[{j}]") for j, p in enumerate(_req(row, "panels", rw, list)))
        if sum(p.width for p in panels) > 24:
            raise DefinitionError(f"{rw}: the panels' widths add up to more than 24 grid columns")
        rows.append(Row(_req(row, "title", rw), panels))
    keys = [p.key for r in rows for p in r.panels]
    if dup := sorted({k for k in keys if keys.count(k) > 1}):
        raise DefinitionError(f"{where}: duplicate panel key(s) {', '.join(dup)}")
    refresh = _req(raw, "refresh_seconds", where, int)
    if refresh < 5:
        raise DefinitionError(f"{where}: 'refresh_seconds' must be at least 5")
    return Dashboard(
        uid=_req(raw, "uid", where),
        title=_req(raw, "title", where),
        description=" ".join(_req(raw, "description", where).split()),
        refresh_seconds=refresh,
        time_range=dict(_req(raw, "grafana_time_range", where, dict)),
        rows=tuple(rows),
    )


# -- Grafana -----------------------------------------------------------------------------------
def grafana_sql(p: Panel) -> str:
    """The query Grafana runs for a panel: the panel's SQL, filtered by the time picker if asked."""
    if not p.time_filter:
        return p.sql
    return f'SELECT * FROM (\n{p.sql}\n) AS panel\nWHERE $__timeFilter("time")\nORDER BY 1'


def _grafana_panel(p: Panel, pid: int, x: int, y: int) -> dict[str, Any]:
    unit, decimals, _ = UNITS[p.unit]
    time_series = p.time is not None and p.visual in ("stat", "timeseries")
    defaults: dict[str, Any] = {"unit": unit}
    if decimals is not None:
        defaults["decimals"] = decimals
    overrides: list[dict[str, Any]] = []
    options: dict[str, Any]
    if p.visual == "stat":
        defaults["color"] = {"mode": "fixed", "fixedColor": "blue"}
        options = {
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": f"/^{p.value}$/", "values": False},
            "graphMode": "area" if p.time else "none",
            "colorMode": "value",
            "textMode": "value",
            "justifyMode": "auto",
            "orientation": "auto",
        }
    elif p.visual == "timeseries":
        bars = p.style == "stacked-bars"
        defaults["displayName"] = f"${{__field.labels.{p.series}}}"
        defaults["custom"] = {
            "drawStyle": "bars" if bars else "line",
            "fillOpacity": 80 if bars else 10,
            "lineWidth": 1,
            "showPoints": "never",
            "spanNulls": False,
            "insertNulls": 60_000,  # a missing minute is a gap, not a line to the next window
            "stacking": {"mode": "normal" if bars else "none", "group": "A"},
        }
        options = {
            "legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
            "tooltip": {"mode": "multi", "sort": "desc"},
        }
    elif p.visual == "bar":
        defaults["color"] = {"mode": "fixed", "fixedColor": "blue"}
        defaults["custom"] = {"fillOpacity": 80, "lineWidth": 1}
        options = {
            "orientation": "horizontal",
            "xField": p.category,
            "showValue": "auto",
            "barWidth": 0.8,
            "groupWidth": 0.7,
            "legend": {"displayMode": "list", "placement": "bottom", "showLegend": False},
            "tooltip": {"mode": "single", "sort": "none"},
        }
    else:  # table: the unit applies to its number columns only
        defaults = {"custom": {"align": "auto"}}
        overrides = [
            {"matcher": {"id": "byName", "options": c}, "properties": [{"id": "unit", "value": unit}]}
            for c in p.numbers()
        ]
        options = {"showHeader": True, "cellHeight": "sm"}
    return {
        "id": pid,
        "type": p.visual if p.visual in ("stat", "timeseries", "table") else "barchart",
        "title": p.title,
        "description": p.description,
        "gridPos": {"h": p.height, "w": p.width, "x": x, "y": y},
        "datasource": GRAFANA_DATASOURCE,
        "targets": [
            {
                "refId": "A",
                "datasource": GRAFANA_DATASOURCE,
                "editorMode": "code",
                "format": "time_series" if time_series else "table",
                "rawQuery": True,
                "rawSql": grafana_sql(p),
            }
        ],
        "fieldConfig": {"defaults": defaults, "overrides": overrides},
        "options": options,
    }


def grafana(d: Dashboard) -> dict[str, Any]:
    panels: list[dict[str, Any]] = []
    y, pid = 0, 0
    for row in d.rows:
        pid += 1
        panels.append(
            {
                "id": pid,
                "type": "row",
                "title": row.title,
                "collapsed": False,
                "gridPos": {"h": 1, "w": 24, "x": 0, "y": y},
                "panels": [],
            }
        )
        y += 1
        x = 0
        for p in row.panels:
            pid += 1
            panels.append(_grafana_panel(p, pid, x, y))
            x += p.width
        y += max(p.height for p in row.panels)
    return {
        "uid": d.uid,
        "title": d.title,
        "description": d.description,
        "tags": ["lakehouse", "gold", "realtime", "health"],
        "timezone": "utc",
        "editable": False,
        "graphTooltip": 1,
        "schemaVersion": 39,
        "version": 1,
        "refresh": f"{d.refresh_seconds}s",
        "time": d.time_range,
        "timepicker": {"refresh_intervals": [f"{d.refresh_seconds}s", "30s", "1m", "5m", "15m"]},
        "templating": {"list": []},
        "annotations": {"list": []},
        "panels": panels,
    }


def grafana_text(d: Dashboard) -> str:
    return json.dumps(grafana(d), indent=2, ensure_ascii=False) + "\n"


# -- Superset ----------------------------------------------------------------------------------
def asset_uuid(d: Dashboard, kind: str, key: str = "") -> str:
    return str(uuid.uuid5(NAMESPACE, f"{d.uid}/{kind}/{key}"))


_PG_TYPE = {"time": "TIMESTAMP WITH TIME ZONE", "number": "DOUBLE PRECISION", "text": "TEXT"}


def _aggregate(p: Panel) -> str:
    # A stat shows one row (or one row per day); time series and bars add up windows and pages.
    return "MAX" if p.visual == "stat" else "SUM"


def _dataset(d: Dashboard, p: Panel, database_uuid: str) -> dict[str, Any]:
    _, _, number_format = UNITS[p.unit]
    return {
        "table_name": f"{d.uid.replace('-', '_')}__{p.key}",
        "description": p.description,
        "main_dttm_col": p.time,
        "schema": None,
        "sql": p.sql,
        "params": None,
        "template_params": None,
        "filter_select_enabled": False,
        "fetch_values_predicate": None,
        "extra": None,
        "cache_timeout": None,
        "offset": 0,
        "normalize_columns": False,
        "always_filter_main_dttm": False,
        "uuid": asset_uuid(d, "dataset", p.key),
        "database_uuid": database_uuid,
        "version": "1.0.0",
        "columns": [
            {
                "column_name": name,
                "verbose_name": None,
                "is_dttm": kind == "time",
                "is_active": True,
                "type": _PG_TYPE[kind],
                "groupby": kind != "number",
                "filterable": True,
                "expression": None,
                "description": None,
                "extra": None,
            }
            for name, kind in p.columns.items()
        ],
        "metrics": [
            {
                "metric_name": name,
                "verbose_name": name.replace("_", " "),
                "metric_type": None,
                "expression": f'{_aggregate(p)}("{name}")',
                "description": None,
                "d3format": number_format,
                "extra": None,
                "warning_text": None,
            }
            for name in p.numbers()
        ],
    }


def _chart_params(p: Panel) -> dict[str, Any]:
    _, _, number_format = UNITS[p.unit]
    params: dict[str, Any] = {"adhoc_filters": [], "time_range": "No filter", "row_limit": 10_000}
    if p.visual == "stat" and p.time:
        params |= {
            "viz_type": "big_number",
            "x_axis": "time",
            "time_grain_sqla": SUPERSET_GRAIN["stat"],
            "metric": p.value,
            "show_trend_line": True,
            "start_y_axis_at_zero": True,
            "y_axis_format": number_format,
            "header_font_size": 0.4,
            "subheader_font_size": 0.15,
            "time_format": "smart_date",
            "rolling_type": "None",
        }
    elif p.visual == "stat":
        params |= {
            "viz_type": "big_number_total",
            "metric": p.value,
            "y_axis_format": number_format,
            "header_font_size": 0.4,
            "subheader_font_size": 0.15,
        }
    elif p.visual == "timeseries":
        bars = p.style == "stacked-bars"
        params |= {
            "viz_type": "echarts_timeseries_bar" if bars else "echarts_timeseries_line",
            "x_axis": "time",
            "time_grain_sqla": SUPERSET_GRAIN["timeseries"],
            "metrics": [p.value],
            "groupby": [p.series],
            "stack": "Stack" if bars else None,
            "y_axis_format": number_format,
            "x_axis_time_format": "%H:%M",  # one-minute windows (6.1's smart_date draws no x labels here)
            "show_legend": True,
            "legendOrientation": "bottom",
            "rich_tooltip": True,
            "truncate_metric": True,
            "order_desc": True,
        }
    elif p.visual == "bar":
        params |= {
            "viz_type": "echarts_timeseries_bar",
            "x_axis": p.category,
            "metrics": [p.value],
            "groupby": [],
            "orientation": "horizontal",
            "x_axis_sort": p.value,
            "x_axis_sort_asc": True,  # horizontal bars grow upwards: ascending puts the largest on top
            "y_axis_format": number_format,
            "show_legend": False,
            "show_value": True,
            "order_desc": True,
        }
    else:
        params |= {
            "viz_type": "table",
            "query_mode": "raw",
            "all_columns": list(p.columns),
            "order_by_cols": [],
            "server_pagination": False,
            "table_timestamp_format": "%Y-%m-%d %H:%M:%S",
            "column_config": {c: {"d3NumberFormat": TABLE_FORMAT[p.unit]} for c in p.numbers()},
            "show_cell_bars": False,
            "row_limit": 100,
        }
    return params


def _chart(d: Dashboard, p: Panel) -> dict[str, Any]:
    params = _chart_params(p)
    return {
        "slice_name": p.title,
        "description": p.description,
        "certified_by": None,
        "certification_details": None,
        "viz_type": params["viz_type"],
        "params": params,
        "query_context": None,
        "cache_timeout": None,
        "uuid": asset_uuid(d, "chart", p.key),
        "dataset_uuid": asset_uuid(d, "dataset", p.key),
        "version": "1.0.0",
    }


def _superset_height(grafana_rows: int) -> int:
    # Superset's grid unit is 8 px; a Grafana grid row is about 36 px with its margin.
    return round(grafana_rows * 4.5)


def _position(d: Dashboard) -> dict[str, Any]:
    pos: dict[str, Any] = {
        "DASHBOARD_VERSION_KEY": "v2",
        "ROOT_ID": {"type": "ROOT", "id": "ROOT_ID", "children": ["GRID_ID"]},
        "GRID_ID": {"type": "GRID", "id": "GRID_ID", "children": [], "parents": ["ROOT_ID"]},
        "HEADER_ID": {"type": "HEADER", "id": "HEADER_ID", "meta": {"text": d.title}},
    }
    chart_id = 0
    for i, row in enumerate(d.rows, start=1):
        header, row_id = f"HEADER-row{i}", f"ROW-row{i}"
        pos["GRID_ID"]["children"] += [header, row_id]
        pos[header] = {
            "type": "HEADER",
            "id": header,
            "children": [],
            "parents": ["ROOT_ID", "GRID_ID"],
            "meta": {"text": row.title, "headerSize": "SMALL_HEADER", "background": "BACKGROUND_TRANSPARENT"},
        }
        pos[row_id] = {
            "type": "ROW",
            "id": row_id,
            "children": [],
            "parents": ["ROOT_ID", "GRID_ID"],
            "meta": {"background": "BACKGROUND_TRANSPARENT"},
        }
        for p in row.panels:
            chart_id += 1
            cid = f"CHART-{p.key}"
            pos[row_id]["children"].append(cid)
            pos[cid] = {
                "type": "CHART",
                "id": cid,
                "children": [],
                "parents": ["ROOT_ID", "GRID_ID", row_id],
                "meta": {
                    "chartId": chart_id,
                    "uuid": asset_uuid(d, "chart", p.key),
                    "sliceName": p.title,
                    "width": p.width // 2,
                    "height": _superset_height(p.height),
                },
            }
    return pos


def superset_bundle(d: Dashboard, database_uri: str) -> dict[str, str]:
    """The asset bundle (path -> YAML) Superset's ImportAssetsCommand takes: the database
    (the BI role), one virtual dataset per panel (the panel's SQL), one chart per panel, the
    dashboard. UUIDs derive from the definition, so a second import replaces the first."""
    database_uuid = asset_uuid(d, "database")
    files: dict[str, Any] = {
        "metadata.yaml": {"version": "1.0.0", "type": "assets", "timestamp": "2026-01-01T00:00:00+00:00"},
        "databases/lakehouse_serving.yaml": {
            "database_name": SUPERSET_DATABASE,
            "sqlalchemy_uri": database_uri,
            "cache_timeout": None,
            "expose_in_sqllab": True,
            "allow_run_async": False,
            "allow_ctas": False,
            "allow_cvas": False,
            "allow_dml": False,
            "allow_csv_upload": False,
            "extra": {"allows_virtual_table_explore": True},
            "uuid": database_uuid,
            "version": "1.0.0",
        },
    }
    for p in d.panels:
        files[f"datasets/lakehouse_serving/{p.key}.yaml"] = _dataset(d, p, database_uuid)
        files[f"charts/{p.key}.yaml"] = _chart(d, p)
    files[f"dashboards/{d.uid}.yaml"] = {
        "dashboard_title": d.title,
        "description": d.description,
        "css": "",
        "slug": d.uid,
        "uuid": asset_uuid(d, "dashboard"),
        "published": True,
        "position": _position(d),
        "metadata": {
            "refresh_frequency": d.refresh_seconds,
            "timed_refresh_immune_slices": [],
            "expanded_slices": {},
            "color_scheme": "supersetColors",
            "label_colors": {},
            "shared_label_colors": [],
            "cross_filters_enabled": False,
            "native_filter_configuration": [],
            "default_filters": "{}",
        },
        "version": "1.0.0",
    }
    return {name: yaml.safe_dump(body, sort_keys=False) for name, body in files.items()}


def superset_zip(bundle: dict[str, str], root: str = "lakehouse_bundle") -> bytes:
    """The bundle as the zip Superset's import (UI, API, CLI) takes: every file under one folder."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, text in bundle.items():
            zf.writestr(f"{root}/{name}", text)
    return buf.getvalue()


# -- command line ------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    g = sub.add_parser("grafana", help="write the Grafana dashboard JSON")
    g.add_argument("--check", action="store_true", help="fail if the committed JSON differs")
    g.add_argument("--out", type=Path, default=GRAFANA_JSON)
    s = sub.add_parser("superset", help="write the Superset asset bundle (zip)")
    s.add_argument("out", type=Path)
    s.add_argument("--database-uri", required=True)
    ap.add_argument("--definition", type=Path, default=DEFINITION)
    args = ap.parse_args(argv)
    try:
        d = load(args.definition)
    except DefinitionError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.cmd == "grafana":
        text = grafana_text(d)
        if args.check:
            current = args.out.read_text() if args.out.exists() else ""
            if current != text:
                print(
                    f"error: {args.out} differs from {args.definition.name}: run make dashboards-render",
                    file=sys.stderr,
                )
                return 1
            print(f"{args.out.name} matches {args.definition.name} ({len(d.panels)} panels)")
            return 0
        args.out.write_text(text)
        print(f"wrote {args.out} ({len(d.panels)} panels)")
        return 0
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_bytes(superset_zip(superset_bundle(d, args.database_uri)))
    print(f"wrote {args.out} ({len(d.panels)} charts)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
