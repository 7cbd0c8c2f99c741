"""Layer contracts on small Delta tables: schema drift and rule violations are reported, and the
gate's results are stored with history."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

import pyarrow as pa
import pytest
from typer.testing import CliRunner

from lakehouse.app.cli.check import app
from lakehouse.core import delta, quality
from lakehouse.core.storage import Lake
from lakehouse.gold import gate
from lakehouse.gold.dbt import DbtProject
from lakehouse.silver.contracts import CONTRACTS as SILVER

if TYPE_CHECKING:  # the fixtures' types only (conftest is not imported at run time)
    from tests.conftest import SettingsFactory

TS = pa.timestamp("us", tz="UTC")


def _dim(valid: list[tuple[int, str, str | None, bool]]) -> pa.Table:
    def t(s: str | None) -> datetime | None:
        return None if s is None else datetime.fromisoformat(s).replace(tzinfo=UTC)

    return pa.table(
        {
            "version_key": [f"v{i}" for i in range(len(valid))],
            "customer_id": [v[0] for v in valid],
            "valid_from": pa.array([t(v[1]) for v in valid], TS),
            "valid_to": pa.array([t(v[2]) for v in valid], TS),
            "is_current": [v[3] for v in valid],
            "change_hash": ["h"] * len(valid),
        }
    )


def test_schema_violations_name_missing_and_drifted_columns() -> None:
    schema = pa.schema([("event_id", pa.string_view()), ("user_id", pa.string()), ("ts", TS)])
    problems = quality.schema_violations(
        {"event_id": "string", "user_id": "int64", "ts": quality.TS, "page": "string"}, schema
    )
    assert problems == ["column user_id is string, contract says int64", "missing column page (string)"]


def test_scd2_rules_catch_overlaps_and_two_current_versions(settings_factory: SettingsFactory) -> None:
    settings = settings_factory()
    lake = Lake(settings)
    delta.append(
        lake,
        "silver.dim_customer",
        _dim(
            [
                (1, "2026-11-01", "2026-11-03", False),
                (1, "2026-11-02", None, True),  # overlaps the first version
                (2, "2026-11-01", None, True),
                (2, "2026-11-04", None, True),  # a second open version
                (3, "2026-11-01", None, True),
            ]
        ),
    )
    out = {r.check_name: r for r in quality.check(lake, "silver", SILVER, "r1")}
    assert out["silver.dim_customer:schema"].status == "pass"
    assert out["silver.dim_customer:no_overlapping_versions"].status == "fail"
    assert out["silver.dim_customer:one_current_version"].failures == 1
    assert out["silver.dim_customer:version_key_unique"].status == "pass"
    assert out["silver.events:exists"].status == "fail"  # required table missing


def test_type_drift_in_silver_fails_the_contract(settings_factory: SettingsFactory) -> None:
    lake = Lake(settings_factory())
    drifted = _dim([(1, "2026-11-01", None, True)])
    drifted = drifted.set_column(1, "customer_id", pa.array(["1"]))  # key became a string
    delta.append(
        lake,
        "silver.dim_product",
        drifted.rename_columns(["version_key", "product_id", *drifted.column_names[2:]]),
    )
    out = {r.check_name: r for r in quality.check(lake, "silver", SILVER, "r2")}
    bad = out["silver.dim_product:schema"]
    assert bad.status == "fail" and "product_id is string, contract says int64" in bad.message
    assert not any(
        name.startswith("silver.dim_product:") and name != "silver.dim_product:schema" for name in out
    )


def test_bronze_gate_cli_exits_non_zero_and_stores_history(
    settings_factory: SettingsFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = settings_factory({"postgres.port": 1024})  # nothing listens: results stay in Delta
    monkeypatch.setenv("LAKEHOUSE_LAKE_ROOT", settings.lake_root)
    monkeypatch.setenv("LAKEHOUSE_STATE_DIR", str(settings.state_path))
    monkeypatch.setenv("LAKEHOUSE_PG_PORT", "1024")
    res = CliRunner().invoke(app, ["bronze"])
    assert res.exit_code == 1, res.output
    assert "FAILED" in res.output and "bronze.events:exists" in res.output
    res = CliRunner().invoke(app, ["bronze", "--json"])
    assert res.exit_code == 1 and '"passed": false' in res.output
    stored = quality.history(Lake(settings))
    assert len({r["run_id"] for r in stored}) == 2 and all(r["layer"] == "bronze" for r in stored)
    with pytest.raises(gate.QualityGateError, match="quality gate 'bronze' failed"):
        gate.enforce(
            gate.run_gate(DbtProject.from_settings(settings), "bronze", Lake(settings), publish=False)
        )


def test_unknown_layer_is_refused() -> None:
    res = CliRunner().invoke(app, ["platinum"])
    assert res.exit_code == 2 and "bronze, silver, gold" in res.output
