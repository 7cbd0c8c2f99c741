"""The dashboards against the real thing: `lakehouse demo` (small) fills a throwaway serving
database, then every panel's query runs there as the read-only BI role, Grafana's queries run
with its time macro expanded, `make dashboard`'s script starts Apache Superset provisioned from
the same definition, and headless Chromium logs in and proves every chart drew the data the SQL
returns (big numbers compared to the query results, table rows counted, canvas charts drawn, no
error or "no data" state, the 10 s auto-refresh asking again). The screenshot lands in
<test state>/dashboards/ and in the repository's .state/dashboards/.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from types import ModuleType
from typing import Any

import psycopg
import pytest
import yaml

from lakehouse.services.process import free_port, port_in_use
from local_config import user_env, write_local_config

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
SUPERSET_VENV = Path(os.environ.get("LAKEHOUSE_SUPERSET_VENV", ROOT / ".venv-superset"))
DBT = ROOT / ".venv-dbt" / "bin" / "dbt"
PLAYWRIGHT = ROOT / "dashboards" / "browser" / "node_modules" / "playwright-core"
BI_ROLE = os.environ.get("LAKEHOUSE_BI_ROLE", "lakehouse_bi")
# A demo small enough for a test: a few thousand events, the streaming burst the same size.
SMALL = {
    "events": 4000,
    "event_files": 2,
    "users": 600,
    "customers": 300,
    "products": 40,
    "orders": 1200,
    "days": 2,
    "change_batches": 1,
}


def _module(name: str, path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


render = _module("dashboards_render", ROOT / "dashboards" / "render.py")
local = _module("dashboards_local", ROOT / "dashboards" / "local.py")
DASHBOARD = render.load()


def _needs(path: Path, what: str, make: str) -> None:
    if not path.exists():
        pytest.fail(f"{what} is missing at {path}: run `make {make}` (make test-pipelines does)")


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """`lakehouse demo` on its own ports and state folder, as a user runs it (LAKEHOUSE_CONFIG)."""
    _needs(DBT, "dbt", "setup-dbt")
    base = tmp_path_factory.mktemp("dashboards")
    ports: set[int] = set()
    path, config = write_local_config(base, SMALL, used=ports)
    env = user_env(path, ("LAKEHOUSE_", "AWS_", "DASHBOARD_"), DASHBOARD_PORT=str(free_port(ports)))
    mp = pytest.MonkeyPatch()
    for k in [k for k in os.environ if k.startswith(("LAKEHOUSE_", "DASHBOARD_"))]:
        mp.delenv(k)
    for k in ("LAKEHOUSE_CONFIG", "DASHBOARD_PORT", "LAKEHOUSE_ROOT"):
        mp.setenv(k, env[k])  # the in-process LocalSuperset reads the same settings
    info = {"env": env, "config": config, "state": base / "state", "port": int(env["DASHBOARD_PORT"])}
    try:
        proc = subprocess.run(
            [str(BIN / "lakehouse"), "demo"],
            env=env,
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
        )
        assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
        yield info
    finally:
        subprocess.run(
            [sys.executable, str(ROOT / "dashboards" / "local.py"), "stop"], env=env, check=False, timeout=60
        )
        subprocess.run([str(BIN / "lakehouse"), "services", "stop"], env=env, check=False, timeout=120)
        mp.undo()


def _script(info: dict[str, Any], verb: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """dashboards/local.py, as `make dashboard` / `make dashboard-stop` run it."""
    return subprocess.run(
        [sys.executable, str(ROOT / "dashboards" / "local.py"), verb],
        env=info["env"],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.fixture(scope="module")
def serving(demo: dict[str, Any]) -> dict[str, Any]:
    proc = _script(demo, "serving", timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return demo


def _dsn(info: dict[str, Any], user: str, db: str | None = None) -> str:
    pg = info["config"]["postgres"]
    return f"postgresql://{user}@127.0.0.1:{pg['port']}/{db or pg['serving_db']}"


def _bi_query(info: dict[str, Any], query: str) -> tuple[list[str], list[tuple[Any, ...]]]:
    with psycopg.connect(_dsn(info, BI_ROLE), autocommit=True) as conn:
        cur = conn.execute(query)
        return [d.name for d in cur.description or []], cur.fetchall()


_KIND = {"time": (datetime,), "number": (int, float, Decimal), "text": (str,)}


# -- the queries, as the BI role ---------------------------------------------------------------
@pytest.mark.parametrize("key", [p.key for p in DASHBOARD.panels])
def test_every_panel_query_returns_rows_as_the_bi_role(serving: dict[str, Any], key: str) -> None:
    panel = next(p for p in DASHBOARD.panels if p.key == key)
    names, rows = _bi_query(serving, panel.sql)
    assert rows, f"{panel.title}: no rows"
    assert names == list(panel.columns)
    for row in rows:
        for (name, kind), value in zip(panel.columns.items(), row, strict=True):
            assert value is None or isinstance(value, _KIND[kind]), (name, value)
    if panel.value:  # the plotted number is there
        i = names.index(panel.value)
        assert all(r[i] is not None for r in rows)
    if panel.time:
        times = [r[names.index("time")] for r in rows]
        assert all(t.tzinfo is not None for t in times) and times == sorted(times)


def test_grafana_queries_run_with_its_time_macro_expanded(serving: dict[str, Any]) -> None:
    """What Grafana sends for the dashboard's default range (now-1h .. now): $__timeFilter(col)
    becomes `col BETWEEN '<from>' AND '<to>'` (RFC 3339, UTC)."""
    assert render.load().time_range == {"from": "now-1h", "to": "now"}
    now = datetime.now(UTC)
    frm, to = (
        t.strftime("%Y-%m-%dT%H:%M:%SZ") for t in (now - timedelta(hours=1), now + timedelta(minutes=1))
    )
    grafana = json.loads(render.GRAFANA_JSON.read_text())
    ran = 0
    for panel in grafana["panels"]:
        for target in panel.get("targets", []):
            query = re.sub(r"\$__timeFilter\(([^)]+)\)", rf"\1 BETWEEN '{frm}' AND '{to}'", target["rawSql"])
            assert "$__" not in query
            _, rows = _bi_query(serving, query)
            assert rows, panel["title"]
            ran += 1
    assert ran == len(DASHBOARD.panels)


def test_bi_role_reads_what_the_dashboards_need_and_nothing_more(serving: dict[str, Any]) -> None:
    with psycopg.connect(_dsn(serving, BI_ROLE), autocommit=True) as bi:
        assert bi.execute("SELECT count(*) FROM health.last_gate_results").fetchone()[0] >= 3  # type: ignore[index]
        assert bi.execute("SELECT count(*) FROM realtime.events_per_minute").fetchone()[0] > 0  # type: ignore[index]
        for stmt in (
            "SELECT count(*) FROM ops.quality_results",
            "SELECT count(*) FROM realtime.stream_offsets",
            "DELETE FROM realtime.events_per_minute",
            "CREATE VIEW health.mine AS SELECT 1",
        ):
            with pytest.raises((psycopg.errors.InsufficientPrivilege, psycopg.errors.ReadOnlySqlTransaction)):
                bi.execute(stmt)
    again = _script(serving, "serving", timeout=120)  # idempotent
    assert again.returncode == 0, again.stderr


def test_make_dashboard_refuses_bad_input_in_one_line(demo: dict[str, Any], tmp_path: Path) -> None:
    empty = dict(demo["config"], postgres=dict(demo["config"]["postgres"], serving_db="nothing_published"))
    (tmp_path / "empty.yaml").write_text(yaml.safe_dump(empty))
    busy = demo["config"]["postgres"]["port"]
    cases = [
        (
            {"DASHBOARD_PORT": "abc"},
            "start",
            "error: setting 'DASHBOARD_PORT': a port number 1024..65535 (got 'abc')",
        ),
        ({"DASHBOARD_PORT": str(busy)}, "start", f"error: port 127.0.0.1:{busy} is busy"),
        (
            {"LAKEHOUSE_CONFIG": str(tmp_path / "empty.yaml")},
            "start",
            "error: the serving database nothing_published has no published gold marts",
        ),
        ({}, "check", "error: Superset is not running: run `make dashboard` first"),
    ]
    for extra, verb, message in cases:
        proc = subprocess.run(
            [sys.executable, str(ROOT / "dashboards" / "local.py"), verb],
            env=demo["env"] | extra,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert proc.returncode == 1 and proc.stderr.startswith(message), (extra, proc.stderr)
        assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr


# -- Superset, as `make dashboard` starts it ---------------------------------------------------
@pytest.fixture(scope="module")
def superset(serving: dict[str, Any]) -> dict[str, Any]:
    _needs(SUPERSET_VENV / "bin" / "gunicorn", "Superset", "setup-superset")
    _needs(PLAYWRIGHT, "playwright-core", "setup-dashboard-browser")
    if shutil.which("chromium") is None:
        pytest.fail("Debian chromium is missing: run `make setup-dashboard-browser`")
    proc = _script(serving, "start")
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    assert f"127.0.0.1:{serving['port']}/superset/dashboard/lakehouse-overview/" in proc.stdout
    return serving | {"start_output": proc.stdout}


def _parse_shown(text: str) -> float:
    """A big number as Superset prints it: 12.5k, 2.79k, 6.1%, 1.8."""
    m = re.fullmatch(r"(-?[\d,.]+)\s*([kMG%]?)", text.strip())
    assert m, text
    value = float(m.group(1).replace(",", ""))
    return value * {"": 1, "k": 1e3, "M": 1e6, "G": 1e9, "%": 0.01}[m.group(2)]


def test_superset_renders_every_chart_with_the_data_of_its_query(superset: dict[str, Any]) -> None:
    app = local.LocalSuperset(local._pipeline()[0](), superset["port"])
    report = app.check(watch=15)
    charts = {c["name"]: c for c in report["charts"]}
    assert set(charts) == {p.title for p in DASHBOARD.panels}, report["charts"]
    assert report["pageErrors"] == [] and report["failedRequests"] == []
    for panel in DASHBOARD.panels:
        c = charts[panel.title]
        assert not c["alerts"] and not c["noData"], c
        assert c["width"] > 100 and c["height"] > 100, c
        names, rows = _bi_query(superset, panel.sql)
        if panel.visual == "stat":  # the big number is the query's last value, as a person reads it
            expected = float(rows[-1][names.index(panel.value)])
            shown = _parse_shown(c["bigNumber"])
            tolerance = {"count": max(abs(expected) * 0.01, 0.5), "percent": 0.0006, "seconds": 0.06}[
                panel.unit
            ]
            assert abs(shown - expected) <= tolerance, (panel.title, c["bigNumber"], expected)
        elif panel.visual == "table":
            assert c["tableRows"] == len(rows), (panel.title, c)
        else:  # ECharts draws into a canvas: coloured pixels of lines and bars
            assert c["canvasPixels"] > 100, c
    assert report["refreshRequests"] > 0, "the dashboard did not refresh within 15 s"
    shot = app.screenshot
    data = shot.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 20_000
    keep = ROOT / ".state" / "dashboards" / shot.name
    keep.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(shot, keep)


def test_make_dashboard_again_changes_nothing(superset: dict[str, Any]) -> None:
    pid = int((superset["state"] / "dashboards" / "superset.pid").read_text())
    proc = _script(superset, "start")
    assert proc.returncode == 0, proc.stderr
    assert f"Superset already runs (pid {pid})" in proc.stdout
    with psycopg.connect(_dsn(superset, superset["config"]["postgres"]["user"], "superset")) as meta:
        counts = meta.execute(
            "SELECT (SELECT count(*) FROM dashboards), (SELECT count(*) FROM slices), "
            "(SELECT count(*) FROM tables), (SELECT count(*) FROM dbs), (SELECT count(*) FROM ab_user)"
        ).fetchone()
    assert counts == (1, len(DASHBOARD.panels), len(DASHBOARD.panels), 1, 1)


def test_make_dashboard_stop_stops_it_by_pid(superset: dict[str, Any]) -> None:
    proc = _script(superset, "stop", timeout=90)
    assert proc.returncode == 0 and "stopped Superset (pid" in proc.stdout, proc.stdout + proc.stderr
    assert not port_in_use(superset["port"])
    assert "Superset: stopped" in _script(superset, "status", timeout=60).stdout
    again = _script(superset, "stop", timeout=60)
    assert again.returncode == 0 and "not running" in again.stdout
