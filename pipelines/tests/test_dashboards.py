"""The dashboard definition and what is rendered from it (no services).

The committed Grafana JSON is exactly the rendering of dashboards/lakehouse-overview.yaml; the
Grafana dashboard and the Superset bundle carry the same panels (titles, descriptions, SQL, order,
widths, refresh); every panel of the three rows and the health row is there; a broken definition is a one-line error.
The queries themselves run against a real serving database in test_dashboards_live.py.
"""

from __future__ import annotations

import importlib.util
import json
import sys
import zipfile
from io import BytesIO
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]


def _load_render() -> ModuleType:
    spec = importlib.util.spec_from_file_location("dashboards_render", ROOT / "dashboards" / "render.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve their module by name
    spec.loader.exec_module(module)
    return module


render = _load_render()
DASHBOARD = render.load()
GRAFANA: dict[str, Any] = json.loads(render.GRAFANA_JSON.read_text())
URI = "postgresql+psycopg2://lakehouse_bi@127.0.0.1:5/serving"


def _bundle() -> dict[str, Any]:
    return {name: yaml.safe_load(text) for name, text in render.superset_bundle(DASHBOARD, URI).items()}


def _grafana_panels() -> list[dict[str, Any]]:
    return [p for p in GRAFANA["panels"] if p["type"] != "row"]


def test_committed_grafana_json_is_the_rendering_of_the_definition() -> None:
    assert render.GRAFANA_JSON.read_text() == render.grafana_text(DASHBOARD), "run make dashboards-render"
    assert render.main(["grafana", "--check"]) == 0


def test_every_panel_is_there_refreshing_every_10_seconds() -> None:
    rows = {r.title: [p.key for p in r.panels] for r in DASHBOARD.rows}
    assert list(rows.values()) == [
        ["dau", "conversion_rate", "total_purchases", "total_events"],  # top row: batch KPIs
        ["events_per_minute", "logins_per_source"],  # middle row: real time
        ["top_pages"],  # bottom row
        ["freshness", "quarantine_rate", "consumer_lag", "last_gate"],  # pipeline health
    ]
    assert GRAFANA["refresh"] == "10s" and GRAFANA["uid"] == "lakehouse-overview"
    sql = " ".join(p.sql for p in DASHBOARD.panels)
    for schema in ("gold.", "realtime.", "health."):
        assert schema in sql
    panels = _grafana_panels()
    assert {p["datasource"]["uid"] for p in panels} == {"lakehouse-serving"}
    assert [p["type"] for p in panels] == [
        "stat", "stat", "stat", "stat", "timeseries", "timeseries", "barchart", "table", "stat", "stat", "table",
    ]  # fmt: skip


def test_grafana_layout_has_no_overlap_and_rows_in_order() -> None:
    cells: set[tuple[int, int]] = set()
    for p in GRAFANA["panels"]:
        g = p["gridPos"]
        assert g["x"] + g["w"] <= 24
        mine = {(x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])}
        assert not cells & mine, p["title"]
        cells |= mine
    rows = [p for p in GRAFANA["panels"] if p["type"] == "row"]
    assert [r["title"] for r in rows] == [r.title for r in DASHBOARD.rows]
    assert [r["gridPos"]["y"] for r in rows] == sorted(r["gridPos"]["y"] for r in rows)


def test_grafana_and_superset_show_the_same_panels() -> None:
    """The two renderings agree: same titles, descriptions, SQL (Grafana's only addition is its
    time picker on time series), order and relative widths, same refresh."""
    bundle = _bundle()
    dash = bundle[f"dashboards/{DASHBOARD.uid}.yaml"]
    charts = {c["uuid"]: c for name, c in bundle.items() if name.startswith("charts/")}
    datasets = {d["uuid"]: d for name, d in bundle.items() if name.startswith("datasets/")}
    position = dash["position"]
    order = [
        cid
        for row in position["GRID_ID"]["children"]
        if row.startswith("ROW-")
        for cid in position[row]["children"]
    ]
    superset = [charts[position[cid]["meta"]["uuid"]] for cid in order]
    grafana = _grafana_panels()
    assert len(grafana) == len(superset) == len(DASHBOARD.panels) == 11
    for g, s, cid in zip(grafana, superset, order, strict=True):
        sql = datasets[s["dataset_uuid"]]["sql"]
        assert g["title"] == s["slice_name"] == position[cid]["meta"]["sliceName"]
        assert g["description"] == s["description"]
        raw = g["targets"][0]["rawSql"]
        if "$__timeFilter" in raw:  # the panel's SQL, filtered by Grafana's time picker
            assert raw == f'SELECT * FROM (\n{sql}\n) AS panel\nWHERE $__timeFilter("time")\nORDER BY 1'
            assert g["type"] == "timeseries"
        else:
            assert raw == sql
        assert position[cid]["meta"]["width"] * 2 == g["gridPos"]["w"]
    assert dash["metadata"]["refresh_frequency"] == 10 == int(GRAFANA["refresh"].rstrip("s"))
    assert dash["dashboard_title"] == GRAFANA["title"]
    # every chart reads the one database: the serving database as the BI role
    (database,) = [d for name, d in bundle.items() if name.startswith("databases/")]
    assert database["sqlalchemy_uri"] == URI and database["allow_dml"] is False
    assert {d["database_uuid"] for d in datasets.values()} == {database["uuid"]}


def test_superset_datasets_declare_the_panel_columns_and_charts_use_them() -> None:
    bundle = _bundle()
    datasets = {d["uuid"]: d for name, d in bundle.items() if name.startswith("datasets/")}
    for name, chart in bundle.items():
        if not name.startswith("charts/"):
            continue
        panel = next(p for p in DASHBOARD.panels if p.title == chart["slice_name"])
        ds = datasets[chart["dataset_uuid"]]
        assert [c["column_name"] for c in ds["columns"]] == list(panel.columns)
        assert {m["metric_name"] for m in ds["metrics"]} == set(panel.numbers())
        params = chart["params"]
        used = [
            params.get("metric"),
            *params.get("metrics", []),
            params.get("x_axis"),
            *params.get("groupby", []),
        ]
        used += params.get("all_columns", [])
        assert {u for u in used if u} <= set(panel.columns), chart["slice_name"]


def test_superset_zip_is_one_folder() -> None:
    data = render.superset_zip(render.superset_bundle(DASHBOARD, URI))
    with zipfile.ZipFile(BytesIO(data)) as zf:
        names = zf.namelist()
    assert {n.split("/", 1)[0] for n in names} == {"lakehouse_bundle"}
    assert "lakehouse_bundle/metadata.yaml" in names and len(names) == 2 + 2 * 11 + 1


def _broken(tmp_path: Path, edit: Any) -> Path:
    raw = yaml.safe_load(render.DEFINITION.read_text())
    edit(raw)
    path = tmp_path / "broken.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def _panel(raw: dict[str, Any], key: str) -> dict[str, Any]:
    return next(p for r in raw["rows"] for p in r["panels"] if p["key"] == key)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            lambda r: _panel(r, "dau").update(visual="pie"),
            r"rows\[0\]\.panels\[0\] \(dau\): 'visual' must be one of",
        ),
        (lambda r: _panel(r, "dau").update(colour="red"), r"\(dau\): unknown field\(s\) colour"),
        (lambda r: _panel(r, "dau").pop("sql"), r"\(dau\): 'sql' is missing"),
        (lambda r: _panel(r, "dau").update(value="nope"), r"\(dau\): 'value' 'nope' must be a number column"),
        (
            lambda r: _panel(r, "top_pages").update(sql="SELECT 1;"),
            r"\(top_pages\): 'sql' must be one plain statement",
        ),
        (lambda r: _panel(r, "events_per_minute").pop("series"), r"a timeseries panel needs 'series'"),
        (
            lambda r: _panel(r, "dau").update(unit="furlongs"),
            r"'unit' must be one of count, percent, seconds",
        ),
        (
            lambda r: _panel(r, "dau").update(size={"width": 30, "height": 5}),
            r"size.width must be an even number",
        ),
        (lambda r: _panel(r, "total_events").update(key="dau"), r"duplicate panel key\(s\) dau"),
        (lambda r: r.update(refresh_seconds=1), r"'refresh_seconds' must be at least 5"),
    ],
)
def test_a_broken_definition_is_a_one_line_error(tmp_path: Path, edit: Any, message: str) -> None:
    path = _broken(tmp_path, edit)
    with pytest.raises(render.DefinitionError, match=message) as err:
        render.load(path)
    assert "\n" not in str(err.value)


def test_render_cli_reports_a_broken_definition_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _broken(tmp_path, lambda r: _panel(r, "dau").update(visual="pie"))
    assert render.main(["--definition", str(path), "grafana", "--out", str(tmp_path / "x.json")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: broken.yaml: rows[0].panels[0] (dau): 'visual'") and err.count("\n") == 1
    assert not (tmp_path / "x.json").exists()
    drifted = tmp_path / "drifted.json"
    drifted.write_text(render.GRAFANA_JSON.read_text().replace('"10s"', '"1m"', 1))
    assert render.main(["grafana", "--check", "--out", str(drifted)]) == 1
    assert "differs from lakehouse-overview.yaml" in capsys.readouterr().err
