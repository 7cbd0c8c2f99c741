"""Gold end to end against real services: a small generated lake (real PostgreSQL source,
bronze, silver), `dbt build` in .venv-dbt over DuckDB/Delta, publication to a real PostgreSQL.

Checks: the KPIs equal an independent Polars computation over the silver Delta tables; the
published marts equal the build; the BI role can read gold and nothing else and write nothing;
the swap is atomic for a concurrent reader; a contract fails loudly on type drift; a failing
silver gate stops everything downstream with a non-zero exit.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import uuid
from dataclasses import replace
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb
import polars as pl
import psycopg
import pyarrow as pa
import pytest
from psycopg import sql
from typer.testing import CliRunner

from lakehouse.app import jobs
from lakehouse.app.cli.check import app as check_app
from lakehouse.app.render import report_html as report
from lakehouse.core import delta, ops_db, quality
from lakehouse.core.reconcile import new_run_id
from lakehouse.core.settings import Settings
from lakehouse.core.storage import Lake
from lakehouse.gold import build as gold_build
from lakehouse.gold import gate, kpis, publish
from lakehouse.gold.build_ledger import BuildLedger
from lakehouse.gold.dbt import DbtError, DbtProject
from lakehouse.services import LocalPostgres

if TYPE_CHECKING:  # the fixtures' types only (conftest is not imported at run time)
    from tests.conftest import SettingsFactory

pytestmark = pytest.mark.slow

DBT = Path(os.environ.get("LAKEHOUSE_DBT", Path(__file__).resolve().parents[2] / ".venv-dbt" / "bin" / "dbt"))
LAKEHOUSE_CLI = Path(sys.executable).parent / "lakehouse"


def _create_db(pg: LocalPostgres, name: str) -> None:
    with psycopg.connect(pg.dsn("postgres"), autocommit=True) as admin:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


@pytest.fixture(scope="module")
def gold(settings_factory: SettingsFactory, pg_service: LocalPostgres) -> dict[str, Any]:
    """A small lake taken through generator -> bronze -> silver (with one change batch), then
    gold built with dbt and published to its own serving database."""
    if not DBT.exists():
        pytest.skip(f"dbt not installed at {DBT}: run make setup-dbt")
    tag = uuid.uuid4().hex[:8]
    settings = settings_factory(
        {
            "postgres.source_db": f"gsrc_{tag}",
            "postgres.serving_db": f"gserve_{tag}",
            "generator.events": 6000,
            "generator.event_files": 2,
            "generator.users": 800,
            "generator.customers": 300,
            "generator.products": 40,
            "generator.orders": 1500,
            "generator.days": 2,
            "generator.change_batches": 1,
        }
    )
    _create_db(pg_service, settings.postgres.source_db)
    _create_db(pg_service, settings.postgres.serving_db)
    lake = Lake(settings)
    jobs.generate_source(settings)
    jobs.generate_events(lake, settings)
    run_id = new_run_id()
    jobs.bronze(lake, settings, run_id)
    jobs.silver(lake, settings, run_id)
    jobs.apply_changes(settings, 1)
    run_id = new_run_id()
    jobs.bronze(lake, settings, run_id, sources=("postgres",))
    jobs.silver(lake, settings, run_id)
    built = gold_build.build(DbtProject.from_settings(settings), lake)
    assert built.ok, built.run.output[-3000:]
    published = publish.publish(DbtProject.from_settings(settings))
    return {"settings": settings, "lake": lake, "build": built, "published": published}


def _serving(settings: Settings, **kw: Any) -> psycopg.Connection[Any]:
    return psycopg.connect(settings.postgres.serving_dsn, **kw)


def _gold_frame(settings: Settings, query: str) -> pl.DataFrame:
    with _serving(settings) as conn:
        cur = conn.execute(query)
        cols = [d.name for d in cur.description or []]
        return pl.DataFrame(
            [dict(zip(cols, row, strict=True)) for row in cur.fetchall()], infer_schema_length=None
        )


def _silver_events(lake: Lake) -> pl.DataFrame:
    return pl.read_delta(
        lake.table_uri("silver.events"),
        columns=["event_id", "user_id", "event_type", "ts", "event_date", "page", "source", "amount_base"],
    )


# -- build and publication ---------------------------------------------------------------------
def test_build_runs_every_kind_of_dbt_node(gold: dict[str, Any]) -> None:
    run = gold["build"].run
    kinds = {r.resource_type for r in run.results}
    assert {"model", "test", "unit_test", "seed"} <= kinds
    assert not run.failed and not run.skipped
    unit = [r for r in run.results if r.resource_type == "unit_test"]
    assert len(unit) >= 17 and all(r.status == "pass" for r in unit)
    assert any(r.name == "assert_positive_sales" and r.status == "pass" for r in run.results)
    # every mart also landed as a Delta table gold.<name>
    lake = gold["lake"]
    for name, rows in gold["build"].tables.items():
        assert lake.table(f"gold.{name}").count() == rows


def test_published_marts_equal_the_build(gold: dict[str, Any]) -> None:
    settings, published = gold["settings"], gold["published"]
    assert {
        "agg_daily_active_users",
        "agg_conversion_rate_daily",
        "agg_events_per_source_daily",
        "agg_purchases_per_page_daily",
        "agg_kpis_per_minute",
        "fct_order_items",
        "agg_sales_by_category",
        "rpt_executive_summary",
        "rpt_category_ranking",
        "rpt_revenue_daily",
    } <= set(published.tables)
    with _serving(settings) as conn:
        for name, rows in published.tables.items():
            assert (
                conn.execute(
                    sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier("gold", name))
                ).fetchone()[0]
                == rows
            )  # type: ignore[index]
        assert rows > 0
        pk = conn.execute(
            "SELECT count(*) FROM information_schema.table_constraints WHERE table_schema = 'gold' AND constraint_type = 'PRIMARY KEY'"
        ).fetchone()[0]  # type: ignore[index]
        types = dict(
            conn.execute(
                "SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = 'gold' AND table_name = 'agg_kpis_per_minute'"
            ).fetchall()
        )
    assert pk >= 10
    assert (
        types["gmv"] == "numeric"
        and types["window_start"] == "timestamp with time zone"
        and types["orders"] == "bigint"
    )


# -- KPIs against an independent computation over silver ---------------------------------------
def test_daily_kpis_match_polars_over_silver(gold: dict[str, Any]) -> None:
    settings, ev = gold["settings"], _silver_events(gold["lake"])
    expected = (
        ev.group_by("event_date")
        .agg(
            pl.col("user_id").n_unique().alias("dau_count"),
            pl.col("user_id").filter(pl.col("event_type") == "purchase").n_unique().alias("purchase_users"),
            (pl.col("event_type") == "purchase").sum().alias("total_purchases"),
        )
        .with_columns((pl.col("purchase_users") / pl.col("dau_count")).alias("conversion_rate"))
        .sort("event_date")
    )
    got = _gold_frame(
        settings,
        "SELECT event_date, conversion_rate, total_purchases, purchase_users, dau_count FROM gold.agg_conversion_rate_daily ORDER BY event_date",
    )
    assert got["event_date"].to_list() == expected["event_date"].to_list()
    assert got["dau_count"].to_list() == expected["dau_count"].to_list()
    assert got["total_purchases"].to_list() == expected["total_purchases"].to_list()
    assert got["purchase_users"].to_list() == expected["purchase_users"].to_list()
    for a, b in zip(got["conversion_rate"].to_list(), expected["conversion_rate"].to_list(), strict=True):
        assert a == pytest.approx(b, rel=1e-12)
    dau = _gold_frame(
        settings, "SELECT event_date, dau_count FROM gold.agg_daily_active_users ORDER BY event_date"
    )
    assert dau["dau_count"].to_list() == expected["dau_count"].to_list()
    assert expected["total_purchases"].sum() > 0


def test_per_source_and_per_page_match_polars(gold: dict[str, Any]) -> None:
    settings, ev = gold["settings"], _silver_events(gold["lake"])
    per_source = ev.group_by("event_date", pl.col("source").fill_null("unknown")).len("event_count")
    got = _gold_frame(
        settings, "SELECT event_date, source, event_count FROM gold.agg_events_per_source_daily"
    )
    assert _rows(got, ["event_date", "source"], "event_count") == _rows(
        per_source, ["event_date", "source"], "event_count"
    )
    per_page = (
        ev.filter(pl.col("event_type") == "purchase")
        .group_by("event_date", pl.col("page").fill_null("unknown"))
        .len("purchase_count")
    )
    got = _gold_frame(
        settings, "SELECT event_date, page, purchase_count FROM gold.agg_purchases_per_page_daily"
    )
    assert _rows(got, ["event_date", "page"], "purchase_count") == _rows(
        per_page, ["event_date", "page"], "purchase_count"
    )


def _rows(df: pl.DataFrame, keys: list[str], value: str) -> dict[tuple[Any, ...], Any]:
    return {tuple(r[k] for k in keys): r[value] for r in df.iter_rows(named=True)}


def test_kpis_per_minute_match_polars(gold: dict[str, Any]) -> None:
    settings, ev = gold["settings"], _silver_events(gold["lake"])
    ev = ev.with_columns(pl.col("ts").dt.truncate("1m").alias("window_start"))
    purchase = pl.col("event_type") == "purchase"
    expected = ev.group_by("window_start").agg(
        purchase.sum().alias("orders"),
        pl.col("amount_base").filter(purchase).sum().alias("gmv"),
        pl.col("user_id").filter(purchase).n_unique().alias("purchase_users"),
        pl.col("user_id").filter(pl.col("event_type") == "page_view").n_unique().alias("view_users"),
        pl.col("user_id").n_unique().alias("active_users"),
    )
    got = _gold_frame(settings, "SELECT * FROM gold.agg_kpis_per_minute")
    assert got.height == expected.height
    exp = {r["window_start"]: r for r in expected.iter_rows(named=True)}
    for r in got.iter_rows(named=True):
        e = exp[r["window_start"]]
        assert (r["window_end"] - r["window_start"]).total_seconds() == 60
        for col in ("orders", "purchase_users", "view_users", "active_users"):
            assert r[col] == e[col], (r["window_start"], col)
        assert Decimal(r["gmv"]) == Decimal(e["gmv"] or 0)
        assert r["conversion_rate"] == pytest.approx(e["purchase_users"] / max(e["view_users"], 1))
    assert sum(r["orders"] for r in got.iter_rows(named=True)) == ev.filter(purchase).height


def test_orders_fact_is_point_in_time_and_revenue_reconciles(gold: dict[str, Any]) -> None:
    settings, lake = gold["settings"], gold["lake"]
    fact = _gold_frame(
        settings,
        "SELECT order_id, line_no, customer_id, customer_version_key, order_ts, segment, country_code, order_status, line_amount_base FROM gold.fct_order_items",
    )
    items = pl.read_delta(lake.table_uri("silver.order_items"))
    assert fact.height == items.height
    versions = pl.read_delta(lake.table_uri("silver.dim_customer")).select(
        "version_key",
        "customer_id",
        pl.col("segment").alias("version_segment"),
        "country",
        "valid_from",
        "valid_to",
    )
    # independent point-in-time lookup: the version whose [valid_from, valid_to) holds order_ts;
    # an order older than the customer's first version (the generator keys orders to customers
    # created later) must get that first version, flagged as not at order time
    exact = fact.join(versions, on="customer_id").filter(
        (pl.col("valid_from") <= pl.col("order_ts"))
        & (pl.col("valid_to").is_null() | (pl.col("order_ts") < pl.col("valid_to")))
    )
    assert exact.height > 0
    assert (exact["version_key"] == exact["customer_version_key"]).all()
    assert (exact["segment"] == exact["version_segment"]).all()
    assert (exact["country_code"] == exact["country"]).all()
    flags = _gold_frame(
        settings,
        "SELECT order_id, line_no, customer_version_at_order_time AS at_order FROM gold.fct_order_items",
    )
    flagged = fact.join(flags, on=["order_id", "line_no"])
    assert flagged.filter(pl.col("at_order")).height == exact.height
    first = versions.sort("valid_from").group_by("customer_id").first()
    early = flagged.filter(~pl.col("at_order")).join(first, on="customer_id")
    assert (early["order_ts"] < early["valid_from"]).all()
    assert (early["customer_version_key"] == early["version_key"]).all()
    assert versions.group_by("customer_id").len().filter(pl.col("len") > 1).height > 0, (
        "the change batch made new versions"
    )
    revenue = _gold_frame(settings, "SELECT sum(revenue) AS r FROM gold.rpt_revenue_daily")["r"][0]
    expected = fact.filter(pl.col("order_status") != "cancelled")["line_amount_base"].sum()
    assert Decimal(revenue) == Decimal(expected)
    summary = kpis.headline(settings.postgres)
    assert Decimal(summary.summary["total_revenue"]) == Decimal(expected)


def test_gold_gate_passes_and_keeps_history(gold: dict[str, Any]) -> None:
    settings, lake = gold["settings"], gold["lake"]
    rep = gate.run_gate(DbtProject.from_settings(settings), "gold", lake)
    assert rep.passed, [(r.check_name, r.message) for r in rep.blocking]
    assert rep.published
    kinds = {r.kind for r in rep.results}
    assert {"dbt_test", "unit_test"} <= kinds
    stored = pl.read_delta(lake.table_uri(quality.TABLE)).filter(pl.col("run_id") == rep.run_id)
    assert stored.height == len(rep.results)
    with _serving(settings) as conn:
        n = conn.execute(
            "SELECT count(*) FROM ops.quality_results WHERE run_id = %s", [rep.run_id]
        ).fetchone()[0]  # type: ignore[index]
    assert n == len(rep.results)
    # `dbt test` replaced run_results.json; publication still follows the last build's results
    assert publish.publish(DbtProject.from_settings(settings)).tables == gold["published"].tables


def _checks(rep: gate.GateReport) -> list[tuple[str, str, str, str, int]]:
    return sorted((r.check_name, r.kind, r.target, r.status, r.failures) for r in rep.results)


def test_gold_gate_reuses_the_build_results_while_nothing_changed(
    gold: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings, lake = gold["settings"], gold["lake"]
    ledger = BuildLedger.load(DbtProject.from_settings(settings))
    assert ledger is not None and len(ledger.expected) >= 50
    rerun = gate.run_gate(DbtProject.from_settings(settings), "gold", lake, publish=False, rerun=True)
    assert rerun.notes == ["dbt tests run again (--rerun)"] and rerun.passed
    # `dbt test` wrote nothing to gold.duckdb: the build's results still stand
    with monkeypatch.context() as m:
        m.setenv("LAKEHOUSE_DBT", str(tmp_path / "no-dbt"))  # the gate must not need dbt at all
        reused = gate.run_gate(DbtProject.from_settings(settings), "gold", lake, publish=False)
    assert "not run again" in reused.notes[0], reused.notes
    assert _checks(reused) == _checks(rerun)  # the same checks, with the same outcome
    assert len(reused.results) == len(ledger.expected)


def test_gold_gate_reuses_per_model_builds(gold: dict[str, Any]) -> None:
    """One Airflow task per model: `gold build --select <model>` merges its nodes into the ledger."""
    settings, lake = gold["settings"], gold["lake"]
    project = DbtProject.from_settings(settings)
    before = BuildLedger.load(project)
    built = gold_build.build(DbtProject.from_settings(settings), lake, select=["agg_daily_active_users"])
    assert built.ok and built.tables == {}
    after = BuildLedger.load(project)
    assert before is not None and after is not None
    assert after.database != before.database and len(after.invocations) == len(before.invocations) + 1
    assert set(after.nodes) == set(before.nodes)
    rep = gate.run_gate(DbtProject.from_settings(settings), "gold", lake, publish=False)
    assert rep.passed and "not run again" in rep.notes[0], rep.notes


def test_gold_gate_fails_on_the_builds_failing_test(
    gold: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings, lake = gold["settings"], gold["lake"]
    failing = tmp_path / "dbt"
    shutil.copytree(
        DbtProject.from_settings(settings).project_dir,
        failing,
        ignore=shutil.ignore_patterns("target", "logs"),
    )
    (failing / "tests" / "assert_no_order_items.sql").write_text(
        "-- fails on purpose: every order line is an offending row\nselect * from {{ ref('fct_order_items') }}\n"
    )
    monkeypatch.setenv("LAKEHOUSE_DBT_PROJECT", str(failing))
    other = settings.model_copy(update={"state_dir": str(tmp_path / "state")})  # its own gold.duckdb
    built = gold_build.build(DbtProject.from_settings(other), lake)
    assert not built.ok and [r.name for r in built.run.failed] == ["assert_no_order_items"]
    assert built.tables == {}  # nothing exported after a failing build
    with monkeypatch.context() as m:
        m.setenv("LAKEHOUSE_DBT", str(tmp_path / "no-dbt"))  # the gate decides from the build's results
        rep = gate.run_gate(DbtProject.from_settings(other), "gold", lake, publish=False)
        assert "not run again" in rep.notes[0], rep.notes
        assert not rep.passed and [r.check_name for r in rep.blocking] == ["dbt:assert_no_order_items"]
        with pytest.raises(gate.QualityGateError, match="quality gate 'gold' failed"):
            gate.enforce(rep)
        for var, value in (
            ("LAKEHOUSE_LAKE_ROOT", other.lake_root),
            ("LAKEHOUSE_STATE_DIR", str(other.state_path)),
            ("LAKEHOUSE_PG_PORT", str(other.postgres.port)),
        ):
            m.setenv(var, value)
        res = CliRunner().invoke(
            check_app, ["gold", "--set", f"postgres.serving_db={other.postgres.serving_db}"]
        )
        assert res.exit_code == 1, res.output
        assert "FAILED" in res.output and "dbt:assert_no_order_items" in res.output
        # the project changed after the build: its results no longer stand, dbt has to run
        (failing / "tests" / "assert_no_order_items.sql").write_text("select 1 as x where false\n")
        with pytest.raises(DbtError, match="dbt not found"):
            gate.run_gate(DbtProject.from_settings(other), "gold", lake, publish=False)


def _cli_env(settings: Settings, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "LAKEHOUSE_STATE_DIR": str(settings.state_path),
        "LAKEHOUSE_LAKE_ROOT": str(settings.lake_root),
        "LAKEHOUSE_PG_PORT": str(settings.postgres.port),
        "NO_COLOR": "1",
        **extra,
    }


def _gold_build_cli(
    settings: Settings, env: dict[str, str], *select: str
) -> subprocess.CompletedProcess[str]:
    args = [a for model in select for a in ("--select", model)]
    return subprocess.run(
        [
            str(LAKEHOUSE_CLI),
            "gold",
            "build",
            *args,
            "--set",
            f"postgres.serving_db={settings.postgres.serving_db}",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=400,
        check=False,
    )


def test_cli_gold_build_gate_passes_without_tests_and_fails_on_a_failing_test(
    gold: dict[str, Any], tmp_path: Path
) -> None:
    """One task of the per-model fan-out may build a model that no test covers: its gate checks
    nothing, so it passes and says "no checks"; a selection whose test fails fails it (exit 1)."""
    settings = gold["settings"]
    project = tmp_path / "dbt"
    shutil.copytree(
        DbtProject.from_settings(settings).project_dir,
        project,
        ignore=shutil.ignore_patterns("target", "logs"),
    )
    (project / "models" / "reports" / "rpt_untested.sql").write_text(
        "{{ config(contract={'enforced': false}) }}\nselect 1 as one\n"
    )
    other = settings.model_copy(update={"state_dir": str(tmp_path / "state")})  # its own gold.duckdb
    env = _cli_env(other, LAKEHOUSE_DBT_PROJECT=str(project))
    proc = _gold_build_cli(other, env, "rpt_untested")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert "Quality gate gold: PASSED (no checks;" in out, out
    assert "1 models" in out, out

    (project / "tests" / "assert_no_order_items.sql").write_text(
        "-- fails on purpose: every order line is an offending row\nselect * from {{ ref('fct_order_items') }}\n"
    )
    proc = _gold_build_cli(other, env, "+fct_order_items")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out
    assert "Quality gate gold: FAILED" in out and "dbt:assert_no_order_items" in out, out
    assert "gold build failed" in out, out


def test_four_concurrent_model_builds_take_turns_on_the_build_database(gold: dict[str, Any]) -> None:
    """Airflow's per-model fan-out at parallelism 4: four `lakehouse gold build --select <model>`
    processes on one lake at once. DuckDB admits one writer per database file and every dbt
    command rewrites target/ and the build ledger, so the builds take turns on the project's lock:
    all four succeed, the ledger records all four, and the gate still reads a consistent ledger."""
    settings, lake = gold["settings"], gold["lake"]
    project = DbtProject.from_settings(settings)
    before = BuildLedger.load(project)
    assert before is not None
    models = [
        "agg_daily_active_users",
        "agg_sales_by_category",
        "rpt_quarantine_reasons",
        "rpt_pipeline_runs",
    ]
    env = _cli_env(settings)
    procs = [
        subprocess.Popen(
            [
                str(LAKEHOUSE_CLI),
                "gold",
                "build",
                "--select",
                model,
                "--set",
                f"postgres.serving_db={settings.postgres.serving_db}",
            ],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for model in models
    ]
    outs = [p.communicate(timeout=600)[0] for p in procs]
    for model, proc, out in zip(models, procs, outs, strict=True):
        assert proc.returncode == 0, (model, out[-3000:])
        assert "lock" not in out.lower(), (model, out[-3000:])
    after = BuildLedger.load(project)
    assert after is not None and len(after.invocations) == len(before.invocations) + 4
    rep = gate.run_gate(DbtProject.from_settings(settings), "gold", lake, publish=False)
    assert rep.passed and "not run again" in rep.notes[0], rep.notes


def test_gold_gate_runs_the_tests_again_after_gold_changed(gold: dict[str, Any]) -> None:
    settings, lake = gold["settings"], gold["lake"]
    run = DbtProject.from_settings(settings).run(lake, ["run", "--select", "agg_sales_by_category"])
    assert run.ok  # gold.duckdb written outside a gold build
    rep = gate.run_gate(DbtProject.from_settings(settings), "gold", lake, publish=False)
    assert rep.passed and rep.notes == ["dbt tests run again (gold.duckdb changed after the last gold build)"]
    assert {"dbt_test", "unit_test"} <= {r.kind for r in rep.results}


def test_silver_gate_runner_matches_plain_dbt(gold: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    """The silver gate's two dbt commands in one dbt process give what two `dbt` processes give."""
    settings, lake = gold["settings"], gold["lake"]
    one = gate.run_gate(DbtProject.from_settings(settings), "silver", lake, publish=False)
    kinds = {r.kind for r in one.results}
    assert one.passed and {"contract", "dbt_test", "freshness"} <= kinds, kinds
    monkeypatch.setenv("LAKEHOUSE_DBT_RUNNER", "off")
    plain = gate.run_gate(DbtProject.from_settings(settings), "silver", lake, publish=False)
    assert _checks(plain) == _checks(one)


# -- serving: BI role and atomic swap ----------------------------------------------------------
def test_bi_role_reads_gold_only_and_cannot_write(gold: dict[str, Any], pg_service: LocalPostgres) -> None:
    settings = gold["settings"]
    role = publish.bi_role()
    with _serving(settings, autocommit=True) as owner:  # a table outside gold the BI role must not read
        owner.execute(quality.PG_DDL)  # type: ignore[arg-type]
    dsn = f"postgresql://{role}@127.0.0.1:{settings.postgres.port}/{settings.postgres.serving_db}"
    with psycopg.connect(dsn, autocommit=True) as bi:
        assert bi.execute("SELECT count(*) FROM gold.agg_daily_active_users").fetchone()[0] > 0  # type: ignore[index]
        denied = [
            "INSERT INTO gold.agg_daily_active_users (event_date, dau_count) VALUES ('1999-01-01', 1)",
            "UPDATE gold.agg_kpis_per_minute SET orders = 0",
            "DELETE FROM gold.fct_order_items",
            "CREATE TABLE gold.mine (x int)",
            "DROP TABLE gold.agg_daily_active_users",
            "SELECT count(*) FROM ops.quality_results",
        ]
        for stmt in denied:
            with pytest.raises((psycopg.errors.InsufficientPrivilege, psycopg.errors.ReadOnlySqlTransaction)):
                bi.execute(stmt)
        # even with read-only transactions switched off, the privileges say no
        bi.execute("SET default_transaction_read_only = off")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            bi.execute(
                "INSERT INTO gold.agg_daily_active_users (event_date, dau_count) VALUES ('1999-01-01', 1)"
            )
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            bi.execute("CREATE TABLE public.mine (x int)")
    source_dsn = f"postgresql://{role}@127.0.0.1:{settings.postgres.port}/{settings.postgres.source_db}"
    with (
        psycopg.connect(source_dsn, autocommit=True) as bi,
        pytest.raises(psycopg.errors.InsufficientPrivilege),
    ):
        bi.execute("SELECT count(*) FROM shop.customers")


def test_swap_is_atomic_for_a_concurrent_reader(gold: dict[str, Any]) -> None:
    settings = gold["settings"]
    full = gold["published"].tables["agg_kpis_per_minute"]
    with _serving(settings, autocommit=True) as conn:  # make the served copy differ from the build
        conn.execute(
            "DELETE FROM gold.agg_kpis_per_minute WHERE window_start IN (SELECT window_start FROM gold.agg_kpis_per_minute ORDER BY 1 LIMIT 100)"
        )
    seen: list[int] = []
    errors: list[BaseException] = []
    stop = threading.Event()

    def reader() -> None:
        try:
            with _serving(settings, autocommit=True) as conn:
                while not stop.is_set():
                    seen.append(conn.execute("SELECT count(*) FROM gold.agg_kpis_per_minute").fetchone()[0])  # type: ignore[index]
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for _ in range(2):
            publish.publish(DbtProject.from_settings(settings))
    finally:
        stop.set()
        thread.join(30)
    assert not errors, errors
    assert set(seen) <= {full - 100, full}, sorted(set(seen))
    assert seen and seen[-1] == full


def test_a_platform_bi_login_keeps_reading_gold_and_realtime_across_publishes(
    gold: dict[str, Any], pg_service: LocalPostgres, tmp_path: Path
) -> None:
    """The cluster's BI login (bi_readonly, Grafana's datasource) is made and granted by the
    platform role, not by the pipeline: the role's own community.postgresql tasks converge on this
    server (twice: the second run changes nothing), and two publishes later the login still reads
    every gold table and the realtime tables."""
    from tests.platform_tasks import converge_postgres

    from lakehouse.speed import sink as speed_sink

    settings = gold["settings"]
    login = "bi_readonly"
    with _serving(settings, autocommit=True) as owner:
        speed_sink.ensure_schema(owner)
        # a CloudNativePG managed role on the cluster, made before the role's tasks run
        if not owner.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [login]).fetchone():
            owner.execute(f"CREATE ROLE {login} LOGIN")
    db = settings.postgres.serving_db
    converge = dict(
        port=settings.postgres.port,
        login_user=settings.postgres.user,
        databases=[{"name": db, "owner": settings.postgres.user, "schemas": ["gold", "realtime"]}],
        bi_user=login,
        bi_database=db,
    )
    first = converge_postgres(tmp_path / "ansible", **converge)  # type: ignore[arg-type]
    assert first["failed"] == 0 and first["changed"] > 0, first
    again = converge_postgres(tmp_path / "ansible", **converge)  # type: ignore[arg-type]
    assert again["failed"] == 0 and again["changed"] == 0, again
    for _ in range(2):
        publish.publish(DbtProject.from_settings(settings))
    with _serving(settings) as owner:
        tables = [r[0] for r in owner.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'gold'"
        )]  # fmt: skip
        realtime = [r[0] for r in owner.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'realtime'"
        )]  # fmt: skip
    assert set(gold["published"].tables) <= set(tables) and realtime
    dsn = f"postgresql://{login}@127.0.0.1:{settings.postgres.port}/{settings.postgres.serving_db}"
    with psycopg.connect(dsn, autocommit=True) as bi:
        for name in tables:
            bi.execute(f'SELECT count(*) FROM gold."{name}"')
        readable = [n for n in realtime if n in ops_db.REALTIME_READABLE]
        assert readable
        for name in readable:
            bi.execute(f'SELECT count(*) FROM realtime."{name}"')
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            bi.execute("DELETE FROM gold.fct_order_items")


def test_publish_refuses_a_failed_build(gold: dict[str, Any], tmp_path: Path) -> None:
    project = DbtProject.from_settings(gold["settings"])
    fake = replace(project, work_dir=tmp_path)
    (tmp_path / "target").mkdir()
    shutil.copy(project.target_path / "manifest.json", tmp_path / "target" / "manifest.json")
    with pytest.raises(publish.PublishError, match="run `lakehouse gold build` first"):
        publish.publish(fake)
    data = project.build_results_path.read_text()
    assert '"status": "pass"' in data
    fake.build_results_path.write_text(data.replace('"status": "pass"', '"status": "fail"', 1))
    with pytest.raises(publish.PublishError, match="quality gate"):
        publish.publish(fake)


# -- contracts and gates -------------------------------------------------------------------------
def test_contract_fails_loudly_on_type_drift(gold: dict[str, Any], tmp_path: Path) -> None:
    project = DbtProject.from_settings(gold["settings"])
    drifted = tmp_path / "dbt"
    shutil.copytree(project.project_dir, drifted, ignore=shutil.ignore_patterns("target", "logs"))
    model = drifted / "models" / "marts" / "events" / "agg_daily_active_users.sql"
    model.write_text(
        model.read_text().replace("count(*) as dau_count", "cast(count(*) as varchar) as dau_count")
    )
    work = tmp_path / "work"
    work.mkdir()
    shutil.copy(project.duckdb_path, work / "gold.duckdb")
    trial = replace(project, project_dir=drifted, work_dir=work)
    run = trial.run(gold["lake"], ["run", "--select", "agg_daily_active_users"])
    assert run.returncode == 1 and not run.ok
    assert "contract" in run.output.lower() and "dau_count" in run.output
    assert "varchar" in run.output.lower() and "bigint" in run.output.lower()


def test_failing_silver_gate_stops_everything_downstream(gold: dict[str, Any], tmp_path: Path) -> None:
    settings: Settings = gold["settings"]
    broken_root = tmp_path / "lake"
    shutil.copytree(settings.lake_uri, broken_root)
    shutil.rmtree(broken_root / "gold")  # the copy starts without a gold layer
    broken = Lake(settings.model_copy(update={"lake_root": str(broken_root)}))
    one = broken.table("silver.events").to_pyarrow_dataset().head(1)
    bad = one.set_column(
        one.schema.get_field_index("amount_base"),
        "amount_base",
        pa.array([Decimal("-5.00")], one.schema.field("amount_base").type),
    )
    delta.append(broken, "silver.events", bad)  # a duplicate event_id with a negative amount
    env = {
        **os.environ,
        "LAKEHOUSE_STATE_DIR": str(settings.state_path),
        "LAKEHOUSE_LAKE_ROOT": str(broken_root),
        "LAKEHOUSE_PG_PORT": str(settings.postgres.port),
    }
    sets = [
        "--set",
        f"postgres.serving_db={settings.postgres.serving_db}",
        "--set",
        f"postgres.source_db={settings.postgres.source_db}",
    ]
    proc = subprocess.run(
        [str(LAKEHOUSE_CLI), "gold", "run", *sets],
        env=env,
        capture_output=True,
        text=True,
        timeout=400,
        check=False,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out
    assert "quality gate 'silver' failed" in out
    assert "silver.events:event_id_unique" in out and "silver.events:amount_base_non_negative" in out
    broken_settings = settings.model_copy(update={"lake_root": str(broken_root)})
    assert not (broken_root / "gold").exists(), "gold Delta tables were written after a failed gate"
    build_db = DbtProject.from_settings(broken_settings).duckdb_path
    if build_db.exists():  # the gate's dbt tests open the build database, but nothing was built in it
        with duckdb.connect(str(build_db), read_only=True) as con:
            built = con.execute(
                "SELECT count(*) FROM duckdb_tables() WHERE schema_name IN ('marts', 'reports')"
            ).fetchone()
        assert built == (0,), "gold marts were built after a failed gate"
    history = pl.read_delta(str(broken_root / "ops" / "quality_results"))
    assert history.filter((pl.col("layer") == "silver") & (pl.col("status") == "fail")).height >= 2


def test_html_report_from_the_build(gold: dict[str, Any], tmp_path: Path) -> None:
    path = report.write(gold["settings"], tmp_path / "report.html")
    html = path.read_text()
    for chart in report.CHARTS:
        assert f'data-chart="{chart}"' in html
    assert "<script" not in html and "http://" not in html.replace('xmlns="http://www.w3.org/2000/svg"', "")
