"""OpenLineage events of the pipeline's own jobs (lakehouse.core.lineage), through the real
openlineage-python client and its file transport."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pyarrow as pa
import pytest

from lakehouse.app import jobs
from lakehouse.core import delta, lineage
from lakehouse.core.reconcile import new_run_id
from lakehouse.core.storage import Lake
from lakehouse.maintenance import ops


def _events(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@pytest.fixture
def lineage_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "lineage.jsonl"
    monkeypatch.setenv("LAKEHOUSE_LINEAGE_FILE", str(path))
    for var in (
        "OPENLINEAGE_PARENT_ID",
        "OPENLINEAGE_ROOT_PARENT_ID",
        "OPENLINEAGE_URL",
        "LAKEHOUSE_LINEAGE",
    ):
        monkeypatch.delenv(var, raising=False)
    return path


def test_start_and_complete_with_datasets_stats_and_parent(
    settings_factory, lineage_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = settings_factory()
    lake = Lake(settings)
    parent_run = str(uuid.uuid4())
    monkeypatch.setenv("OPENLINEAGE_PARENT_ID", f"airflow-local/lakehouse_pipeline.silver/{parent_run}")
    with lineage.job_run(settings, "lakehouse.test", ["bronze.events"], ["gold.t"], lake=lake) as run:
        delta.append(lake, "gold.t", pa.table({"x": [1, 2, 3]}))
        delta.append(lake, "gold.t", pa.table({"x": [4]}))
    start, complete = _events(lineage_file)
    assert (start["eventType"], complete["eventType"]) == ("START", "COMPLETE")
    assert start["run"]["runId"] == complete["run"]["runId"] == run.run_id
    assert complete["job"] == {
        "namespace": "lakehouse-local",
        "name": "lakehouse.test",
        "facets": complete["job"]["facets"],
    }
    assert complete["job"]["facets"]["jobType"]["integration"] == "LAKEHOUSE"
    source = complete["inputs"][0]
    assert (source["namespace"], source["name"]) == ("file", lake.table_uri("bronze.events"))
    out = complete["outputs"][0]
    assert (out["namespace"], out["name"]) == ("file", lake.table_uri("gold.t"))
    stats = out["outputFacets"]["outputStatistics"]
    assert (stats["rowCount"], stats["fileCount"]) == (4, 2) and stats["size"] > 0
    parent = complete["run"]["facets"]["parent"]
    assert parent["run"]["runId"] == parent_run
    assert (parent["job"]["namespace"], parent["job"]["name"]) == (
        "airflow-local",
        "lakehouse_pipeline.silver",
    )
    assert parent["root"]["run"]["runId"] == parent_run  # no root given: the parent is the root


def test_fail_event_carries_the_error_and_reraises(settings_factory, lineage_file: Path) -> None:
    settings = settings_factory()
    with (
        pytest.raises(ValueError, match="bad input"),
        lineage.job_run(settings, "lakehouse.broken", ["silver.x"]),
    ):
        raise ValueError("bad input")
    start, fail = _events(lineage_file)
    assert (start["eventType"], fail["eventType"]) == ("START", "FAIL")
    err = fail["run"]["facets"]["errorMessage"]
    assert err["message"] == "bad input" and "ValueError" in err["stackTrace"]


def test_step_names_source_and_lake_datasets(settings_factory, lineage_file: Path) -> None:
    settings = settings_factory({"generator.events": 500, "generator.event_files": 1})
    lake = Lake(settings)
    jobs.generate_events(lake, settings)
    with lineage.step(lake, "bronze", ("events", "postgres")):
        jobs.bronze(lake, settings, new_run_id(), sources=("events",))
    complete = _events(lineage_file)[-1]
    names = {(d["namespace"], d["name"]) for d in complete["inputs"]}
    pg = settings.postgres
    assert ("file", f"{lake.root}/landing/events") in names
    assert (f"postgres://127.0.0.1:{pg.port}", "source.shop.orders") in names
    outputs = {d["name"]: d for d in complete["outputs"]}
    assert outputs[lake.table_uri("bronze.events")]["outputFacets"]["outputStatistics"]["rowCount"] >= 500


def test_maintenance_emits_lineage(settings_factory, lineage_file: Path) -> None:
    settings = settings_factory()
    lake = Lake(settings)
    delta.append(lake, "silver.m", pa.table({"x": [1]}))
    jobs.maintain(lake, settings, new_run_id())
    events = _events(lineage_file)
    assert [e["eventType"] for e in events] == ["START", "COMPLETE"]
    assert events[-1]["job"]["name"] == "lakehouse.maintenance"
    assert {o["name"] for o in events[-1]["outputs"]} == {
        lake.table_uri("silver.m"),
        lake.table_uri(ops.REPORT_TABLE),
    }


def test_off_switch_and_broken_transport_never_fail_the_job(
    settings_factory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    settings = settings_factory()
    monkeypatch.setenv("LAKEHOUSE_LINEAGE", "off")
    target = tmp_path / "off.jsonl"
    monkeypatch.setenv("LAKEHOUSE_LINEAGE_FILE", str(target))
    with lineage.job_run(settings, "lakehouse.quiet"):
        pass
    assert not target.exists()
    monkeypatch.delenv("LAKEHOUSE_LINEAGE")
    monkeypatch.setenv("LAKEHOUSE_LINEAGE_FILE", str(tmp_path))  # a directory: every write fails
    ran = False
    with lineage.job_run(settings, "lakehouse.unlucky"):
        ran = True
    assert ran
    assert "not sent" in caplog.text


def test_default_file_is_in_the_state_dir(settings_factory, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LAKEHOUSE_LINEAGE_FILE", raising=False)
    settings = settings_factory()
    assert lineage.events_file(settings) == settings.state_path / "lineage" / "events.jsonl"


def test_dbt_runs_use_the_pipelines_transport(
    settings_factory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What `lakehouse gold`/`check` hand dbt's runner (dbt/scripts/run_dbt.py): the same file,
    or nothing (the OpenLineage client's own configuration), or no lineage at all."""
    for var in ("LAKEHOUSE_LINEAGE", "LAKEHOUSE_LINEAGE_FILE", "OPENLINEAGE_URL", "OPENLINEAGE_CONFIG"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("OPENLINEAGE_NAMESPACE", "lakehouse-test")
    settings = settings_factory()
    default = lineage.dbt_spec(
        lineage.namespace(settings), lineage.events_file(settings), "lakehouse.gold.build"
    )
    assert default == {
        "job": "lakehouse.gold.build",
        "namespace": "lakehouse-test",
        "file": str(lineage.events_file(settings)),
    }
    monkeypatch.setenv("OPENLINEAGE_URL", "http://127.0.0.1:5000")
    spec = lineage.dbt_spec(
        lineage.namespace(settings), lineage.events_file(settings), "lakehouse.gold.build"
    )
    assert spec is not None and spec["file"] is None  # Marquez: the client's own configuration
    monkeypatch.setenv("LAKEHOUSE_LINEAGE_FILE", str(tmp_path / "x.jsonl"))
    spec = lineage.dbt_spec(
        lineage.namespace(settings), lineage.events_file(settings), "lakehouse.gold.build"
    )
    assert spec is not None and spec["file"] == str(tmp_path / "x.jsonl")  # an explicit file wins
    monkeypatch.setenv("LAKEHOUSE_LINEAGE", "off")
    assert (
        lineage.dbt_spec(lineage.namespace(settings), lineage.events_file(settings), "lakehouse.gold.build")
        is None
    )
