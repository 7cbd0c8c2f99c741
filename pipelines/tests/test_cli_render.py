"""What the CLI prints stays readable in a 120-column terminal: no name is cut, no line is wider
than the terminal; idle rows are hidden; a passing gate is one line; the width follows COLUMNS."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from rich.console import Console, RenderableType

from lakehouse.app.render import gold as gold_render
from lakehouse.app.render import tables
from lakehouse.core import delta
from lakehouse.core.quality import CheckResult
from lakehouse.core.reconcile import Reconciliation
from lakehouse.core.storage import Lake
from lakehouse.gold.gate import GateReport
from lakehouse.gold.kpis import Kpis

WIDTH = 120
REPO = Path(__file__).resolve().parents[2]
LAKEHOUSE = Path(sys.executable).parent / "lakehouse"


def render(*items: RenderableType, width: int = WIDTH) -> str:
    console = Console(width=width, file=io.StringIO(), record=True, color_system=None)
    for item in items:
        console.print(item)
    return console.export_text()


def assert_whole(text: str, names: list[str], width: int = WIDTH) -> None:
    """Every name appears whole, nothing is truncated, no line is wider than the terminal."""
    assert "…" not in text
    widest = max(text.splitlines(), key=len)
    assert len(widest) <= width, widest
    for name in names:
        assert name in text, f"{name!r} is cut:\n{text}"


def rec(source: str, target: str, n: int, **counts: int) -> Reconciliation:
    r = Reconciliation("20261207T034645-c04d9995", target.split(".")[0], source, target)
    r.rows_in = n
    r.inserted = counts.get("inserted", n - sum(counts.values()))
    for key, value in counts.items():
        setattr(r, key, value)
    return r.finish()


# what a demo's reconciliation holds, at 10M events
DEMO = [
    rec("landing/events", "bronze.events", 10_112_000),
    rec("postgres:shop.customers", "bronze.customers", 10_000),
    rec("postgres:shop.order_items", "bronze.order_items", 1_101_320),
    rec(
        "bronze.events",
        "silver.events + silver.quarantine_events",
        10_112_000,
        quarantined=21_300,
        duplicates=100_001,
    ),
    rec("bronze.customers", "silver.dim_customer", 321, unchanged=17),
    rec("bronze.order_items", "silver.order_items", 0),
    rec("bronze.orders", "silver.orders", 0),
    rec("kafka/user-events", "realtime.*", 20_253, quarantined=680),
    rec("silver.*", "gold.* (dbt)", 128_650),
]
NAMES = [
    "landing/events",
    "postgres:shop.order_items",
    "bronze.order_items",
    "silver.quarantine_events",
    "silver.dim_customer",
    "kafka/user-events",
    "realtime.*",
]


def test_reconciliation_at_120_columns_hides_idle_rows() -> None:
    text = render(tables.reconciliation_table(DEMO, "Reconciliation (this demo)"))
    assert_whole(text, NAMES)
    assert "10,112,000" in text and "100,001" in text
    assert "silver.orders" not in text  # nothing came in: hidden
    assert "2 step(s) with nothing to do hidden (--all shows them)" in text
    everything = render(tables.reconciliation_table(DEMO, all_rows=True))
    assert "silver.orders" in everything and "hidden" not in everything
    idle = render(tables.reconciliation_table([rec("bronze.orders", "silver.orders", 0)]))
    assert idle.strip() == "Reconciliation: nothing new (1 step(s) with nothing to do; --all shows them)"


def test_an_unbalanced_row_is_flagged() -> None:
    bad = rec("bronze.orders", "silver.orders", 10)
    bad.inserted = 9
    text = render(tables.reconciliation_table([*DEMO, bad]))
    assert "1 row(s) do not add up" in text


def test_stored_reconciliation_groups_by_run() -> None:
    rows = tables.reconciliation_rows(DEMO)
    rows[-1]["run_id"] = "20261207T040000-00000000"
    text = render(tables.stored_reconciliation_table(rows))
    assert_whole(text, [*NAMES, "run 20261207T034645-c04d9995", "run 20261207T040000-00000000"])


def test_tables_list_every_layer_with_whole_names(settings_factory: Any) -> None:
    lake = Lake(settings_factory())
    names = [
        "bronze.events",
        "silver.quarantine_events",
        "gold.agg_purchases_per_page_daily",
        "gold.rpt_executive_summary",
        "ops.reconciliation",
        "ops.quality_results",
    ]
    for name in names:
        delta.append(lake, name, pa.table({"k": list(range(5))}))
    rows = tables.table_rows(lake)
    listed = [r["table"] for r in rows]
    assert set(names) <= set(listed)
    layers = [n.split(".")[0] for n in listed]
    assert layers == sorted(layers, key=["bronze", "silver", "gold", "ops"].index)
    missing = next(r for r in rows if r["table"] == "silver.orders")
    assert missing["rows"] is None  # part of every run, not created yet
    text = render(tables.table_counts(lake, rows))
    assert_whole(text, names)
    assert "not created yet" in text


def test_history_shows_what_each_commit_did(settings_factory: Any) -> None:
    lake = Lake(settings_factory())
    delta.append(lake, "silver.t", pa.table({"k": [1, 2, 3]}))
    delta.append(lake, "silver.t", pa.table({"k": [4]}))
    dt = lake.table("silver.t")
    dt.delete("k = 2")
    dt.optimize.compact()
    rows = tables.history_rows(lake, "silver.t", 10)
    by_op = {r["operation"]: r for r in rows}
    assert [r["version"] for r in rows] == [3, 2, 1, 0]
    assert rows[-1]["rows_added"] == 3 and rows[-1]["files_added"] == 1
    assert by_op["DELETE"]["rows_removed"] == 1
    assert by_op["OPTIMIZE"]["files_removed"] == 2 and by_op["OPTIMIZE"]["files_added"] == 1
    text = render(tables.history_table("silver.t", rows))
    for header in ("rows added", "rows removed", "files added", "files removed"):
        assert header in text
    assert_whole(text, ["OPTIMIZE", "DELETE", "WRITE"])


def _check(name: str, status: str, message: str = "") -> CheckResult:
    return CheckResult(
        "run", "gold", name, "dbt_test", "gold.x", status, 0 if status == "pass" else 3, message
    )


def test_a_passing_gate_is_one_line_and_a_failing_one_names_its_checks() -> None:
    passed = GateReport("silver", "20261207T034648-efa9d5df", [_check("dbt:not_null_x", "pass")] * 57, 9.7)
    text = render(gold_render.gate_table(passed))
    assert text.strip().count("\n") == 0 and "PASSED (pass 57" in text
    long_name = "dbt:dbt_utils_unique_combination_of_columns_fct_order_items_order_id__line_no"
    failed = GateReport(
        "gold",
        "r",
        [
            _check("dbt:not_null_x", "pass"),
            _check(long_name, "fail", "Got 3 results, configured to fail if != 0 " * 4),
        ],
        20.6,
    )
    text = render(gold_render.gate_table(failed))
    assert "FAILED" in text
    assert_whole(text, [long_name])


def test_kpis_name_their_source_and_where_they_were_read() -> None:
    k = Kpis(
        {
            "period_start": "2026-11-01",
            "period_end": "2026-12-07",
            "total_events": 1_019_840,
            "total_users": 20_000,
            "avg_dau": 2604.3,
            "avg_conversion_rate": 0.0506,
            "total_purchases": 30_112,
            "total_gmv": 1_234_567.89,
            "total_orders": 50_348,
            "total_revenue": 7_874_365.18,
            "avg_order_value": 156.4,
            "top_category": "Toys",
        },
        {"event_date": "2026-12-07", "dau_count": 12_563, "conversion_rate": 0.0611},
        {"window_start": datetime(2026, 12, 7, 3, 46, tzinfo=UTC), "gmv": 47_001.99},
    )
    text = render(gold_render.kpi_table(k, "PostgreSQL serving.gold"))
    assert "read from PostgreSQL serving.gold" in text
    assert_whole(text, ["silver.events", "silver.orders", "silver.order_items", "gold.agg_kpis_per_minute"])
    assert all(source for _, _, source in gold_render.kpi_rows(k))


def test_timings_and_landing_files_keep_names_whole() -> None:
    steps = [(f"bronze+silver after batch {i}", 1.5) for i in range(1, 4)] + [
        ("gold: dbt build + tests", 20.6)
    ]
    rows = [
        {
            "file": "backfill/2026-11-01/events-s1000045-00003.jsonl.gz",
            "state": "skipped",
            "reason": "extension .csv is not NDJSON (landing/events takes .jsonl/.ndjson/.json, optionally .gz/.zst/.bz2)",
            "bytes": 123_456,
            "bronze_rows": 0,
            "silver_rows": 0,
            "quarantined_rows": 0,
        }
    ]
    text = render(tables.timings(steps), tables.landing_table(rows, ignored=2))
    assert_whole(text, ["backfill/2026-11-01/events-s1000045-00003.jsonl.gz", "gold:", "1 file(s) skipped"])


def _widest_line(env: dict[str, str]) -> int:
    proc = subprocess.run(
        [str(LAKEHOUSE), "services", "status"],
        env=env,
        cwd=REPO,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    return max(len(line) for line in proc.stdout.splitlines())


@pytest.mark.parametrize(("columns", "limit"), [("90", 90), (None, WIDTH)])
def test_piped_output_follows_columns(settings_factory: Any, columns: str | None, limit: int) -> None:
    """Piped: COLUMNS when set, else 120 (the services table is wider than both: it fills them)."""
    settings = settings_factory({"state_dir": str(Path(settings_factory().lake_uri) / ("x" * 80))})
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LAKEHOUSE_", "COLUMNS"))}
    env.update(LAKEHOUSE_STATE_DIR=str(settings.state_path), LAKEHOUSE_ROOT=str(REPO))
    if columns:
        env["COLUMNS"] = columns
    assert _widest_line(env) == limit
