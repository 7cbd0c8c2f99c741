"""The embedded current-state and SCD2 MERGEs carried out as a key-range rewrite give the same
table as delta-rs's MERGE: on a local lake and on the S3 server, with target rows below, inside
and above the batch's key range, late (older) rows that must not win, new keys, and a rerun."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pyarrow as pa
import pytest
from bench.engine_steps import _customers, _orders

from lakehouse.core import delta
from lakehouse.core.storage import Lake
from lakehouse.silver import current_state, merge_rewrite, scd2

T1 = datetime(2026, 1, 1, tzinfo=UTC)


def _lake(kind: str, request: pytest.FixtureRequest, settings_factory: Any) -> Lake:
    if kind == "s3":
        return Lake(request.getfixturevalue("s3_settings"))
    return Lake(settings_factory())


def _rows(lake: Lake, table: str, key: str) -> list[dict[str, Any]]:
    dt = delta.open_table(lake, table)
    assert dt is not None
    rows = delta.dataset(lake, dt).to_table().to_pylist()
    return sorted(rows, key=lambda r: (r[key], str(r.get("valid_from"))))


def _batches(make: Any, changed: str) -> list[pa.Table]:
    first = make(1, 100, T1, "open" if make is _orders else "retail", "B1")
    t2, t0 = T1 + timedelta(days=1), T1 - timedelta(days=1)
    second = pa.concat_tables(
        [
            make(40, 10, t2, changed, "B2"),  # newer: replace / new version
            make(50, 10, t0, changed, "B2"),  # older: must not win / slots in before
            make(101, 5, t2, changed, "B2"),  # new keys
        ]
    )
    return [first, second]


def _operations(lake: Lake, table: str) -> set[str]:
    dt = delta.open_table(lake, table)
    assert dt is not None
    return {h["operation"] for h in dt.history() if h["version"] > 0}


def _run_both(
    lake: Lake, monkeypatch: pytest.MonkeyPatch, apply: Any, source: str, batches: list[pa.Table]
) -> None:
    """Apply each batch to `<table>_rw` by rewrite and to `<table>_merge` by delta-rs's MERGE."""
    for version, batch in enumerate(batches, 1):
        delta.append(lake, source, batch, app_id="test", txn_version=version, configuration=delta.CDF)
        for how in ("rw", "merge"):
            with monkeypatch.context() as m:
                if how == "merge":
                    m.setattr(merge_rewrite, "applicable", lambda *_a: False)
                rec = apply(how, f"run-{version}")
                assert rec.balanced


@pytest.mark.parametrize("kind", ["local", "s3"])
def test_current_state_rewrite_equals_merge(
    kind: str, request: pytest.FixtureRequest, settings_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    lake = _lake(kind, request, settings_factory)
    tag = uuid.uuid4().hex[:8]
    source = f"bronze.orders_{tag}"
    tables = {
        how: current_state.CurrentState(f"silver.orders_{how}_{tag}", source, ("order_id",))
        for how in ("rw", "merge")
    }

    def apply(how: str, run_id: str) -> Any:
        return current_state.apply(lake, tables[how], run_id)

    _run_both(lake, monkeypatch, apply, source, _batches(_orders, "shipped"))
    rw, merged = (_rows(lake, tables[h].table, "order_id") for h in ("rw", "merge"))
    assert rw == merged
    # the two paths really differ: one replaceWhere write, one MERGE
    assert _operations(lake, tables["rw"].table) == {"WRITE"}
    assert _operations(lake, tables["merge"].table) == {"MERGE"}
    assert len(rw) == 105
    by_id = {r["order_id"]: r for r in rw}
    assert (
        by_id[45]["status"] == "shipped"
        and by_id[55]["status"] == "open"
        and by_id[103]["status"] == "shipped"
    )
    assert by_id[1]["status"] == by_id[99]["status"] == "open"  # below and inside the range, untouched
    # a rerun absorbs nothing and writes nothing
    before = delta.open_table(lake, tables["rw"].table).version()  # type: ignore[union-attr]
    assert current_state.apply(lake, tables["rw"], "again").detail == "up to date"
    assert delta.open_table(lake, tables["rw"].table).version() == before  # type: ignore[union-attr]


@pytest.mark.parametrize("kind", ["local", "s3"])
def test_scd2_rewrite_equals_merge(
    kind: str, request: pytest.FixtureRequest, settings_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    lake = _lake(kind, request, settings_factory)
    tag = uuid.uuid4().hex[:8]
    source = f"bronze.customers_{tag}"
    base = scd2.DIMENSIONS[0]
    dims = {
        how: scd2.Dimension(f"silver.dim_customer_{how}_{tag}", source, base.key, base.tracked, base.carried)
        for how in ("rw", "merge")
    }

    def apply(how: str, run_id: str) -> Any:
        return scd2.apply(lake, dims[how], run_id)

    _run_both(lake, monkeypatch, apply, source, _batches(_customers, "business"))
    rw, merged = (_rows(lake, dims[h].table, "customer_id") for h in ("rw", "merge"))
    assert rw == merged
    assert _operations(lake, dims["rw"].table) == {"WRITE"}
    assert _operations(lake, dims["merge"].table) == {"MERGE"}
    # 100 first versions, 10 new ones (newer), 10 slotted in before (older), 5 new keys
    assert len(rw) == 125
    assert sum(r["is_current"] for r in rw) == 105
