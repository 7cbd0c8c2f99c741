"""The Lake on an s3:// root served by the session SeaweedFS: delta-rs writes/reads/MERGE, app
transactions, conditional-put commits under concurrency, and DuckDB reading the same tables."""

from __future__ import annotations

import threading
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs
import pytest
from deltalake import CommitProperties, DeltaTable, Transaction, write_deltalake
from tests.conftest import S3Service

from lakehouse.core import s3
from lakehouse.core.s3 import ClientError
from lakehouse.core.settings import Settings
from lakehouse.core.storage import Lake

pytestmark = [pytest.mark.s3, pytest.mark.slow]


def _rows(dt: DeltaTable) -> list[dict[str, Any]]:
    return sorted(dt.to_pyarrow_table().to_pylist(), key=lambda r: r["id"])


def _key(lake: Lake, uri: str) -> str:
    """'s3://bucket/prefix/x' -> '/bucket/prefix/x' for the raw S3 client."""
    assert uri.startswith("s3://")
    return "/" + uri.removeprefix("s3://")


def test_lake_is_on_seaweedfs(s3_settings: Settings, s3_service: S3Service) -> None:
    lake = Lake(s3_settings)
    opts = lake.storage_options
    assert opts is not None
    assert opts["AWS_ACCESS_KEY_ID"] == s3_service.credentials.access_key
    assert opts["AWS_ENDPOINT_URL"] == s3_service.service.endpoint
    assert opts["aws_conditional_put"] == "etag"
    assert lake.table_uri("bronze.events").startswith(f"s3://{s3_service.service.bucket}/t-")


def test_write_append_overwrite_read(s3_settings: Settings) -> None:
    lake = Lake(s3_settings)
    uri, opts = lake.table_uri("bronze.orders"), lake.storage_options
    assert not lake.exists("bronze.orders")
    write_deltalake(uri, pa.table({"id": [1, 2], "v": ["a", "b"]}), storage_options=opts)
    assert lake.exists("bronze.orders")
    write_deltalake(uri, pa.table({"id": [3], "v": ["c"]}), mode="append", storage_options=opts)
    dt = lake.table("bronze.orders")
    assert dt.version() == 1
    assert _rows(dt) == [{"id": 1, "v": "a"}, {"id": 2, "v": "b"}, {"id": 3, "v": "c"}]
    write_deltalake(uri, pa.table({"id": [9], "v": ["z"]}), mode="overwrite", storage_options=opts)
    assert _rows(lake.table("bronze.orders")) == [{"id": 9, "v": "z"}]
    assert _rows(lake.table("bronze.orders", version=1))[-1] == {"id": 3, "v": "c"}  # time travel


def test_merge_upsert(s3_settings: Settings) -> None:
    lake = Lake(s3_settings)
    uri = lake.table_uri("silver.customers")
    write_deltalake(
        uri, pa.table({"id": [1, 2], "name": ["ann", "bob"]}), storage_options=lake.storage_options
    )
    source = pa.table({"id": [2, 3], "name": ["bobby", "cyd"]})
    metrics = (
        lake.table("silver.customers")
        .merge(source, predicate="t.id = s.id", source_alias="s", target_alias="t")
        .when_matched_update_all()
        .when_not_matched_insert_all()
        .execute()
    )
    assert metrics["num_target_rows_updated"] == 1
    assert metrics["num_target_rows_inserted"] == 1
    assert _rows(lake.table("silver.customers")) == [
        {"id": 1, "name": "ann"},
        {"id": 2, "name": "bobby"},
        {"id": 3, "name": "cyd"},
    ]


def test_app_transaction_version_round_trip(s3_settings: Settings) -> None:
    lake = Lake(s3_settings)
    uri, opts = lake.table_uri("bronze.events"), lake.storage_options
    for batch in (41, 42):
        write_deltalake(
            uri,
            pa.table({"id": [batch]}),
            mode="append",
            storage_options=opts,
            commit_properties=CommitProperties(app_transactions=[Transaction("bronze-events", batch)]),
        )
    dt = lake.table("bronze.events")
    assert dt.transaction_version("bronze-events") == 42
    assert dt.transaction_version("someone-else") is None
    assert DeltaTable(uri, storage_options=opts).transaction_version("bronze-events") == 42  # fresh reader


def test_seaweedfs_honours_conditional_put(s3_settings: Settings, s3_service: S3Service) -> None:
    """The primitive delta-rs relies on with aws_conditional_put=etag: If-None-Match: * (create a
    commit file only if absent) and If-Match: <etag>. If this fails, concurrent commits on this S3
    server can silently overwrite each other."""
    client = s3_service.service.client()
    bucket, _, key = (
        _key(Lake(s3_settings), f"{s3_settings.lake_uri}/probe/_delta_log/00000000000000000000.json")
        .lstrip("/")
        .partition("/")
    )
    first = client.put_object(Bucket=bucket, Key=key, Body=b"writer-1", IfNoneMatch="*")
    with pytest.raises(ClientError) as second:
        client.put_object(Bucket=bucket, Key=key, Body=b"writer-2", IfNoneMatch="*")
    assert s3.status_code(second.value) == 412, "SeaweedFS ignored If-None-Match: *: no safe commits"
    assert client.get_object(Bucket=bucket, Key=key)["Body"].read() == b"writer-1"
    with pytest.raises(ClientError) as stale:
        client.put_object(Bucket=bucket, Key=key, Body=b"writer-3", IfMatch='"0123456789abcdef"')
    assert s3.status_code(stale.value) == 412, "SeaweedFS ignored a wrong If-Match"
    client.put_object(Bucket=bucket, Key=key, Body=b"writer-4", IfMatch=first["ETag"])
    assert client.get_object(Bucket=bucket, Key=key)["Body"].read() == b"writer-4"


def test_stale_writer_commits_after_a_rejected_put(s3_settings: Settings) -> None:
    """Deterministic race: two writers hold the table at version 0; both want to commit version 1.
    The second one's put of 00..01.json must be refused (conditional put) and retried as version 2."""
    lake = Lake(s3_settings)
    uri, opts = lake.table_uri("bronze.race"), lake.storage_options
    write_deltalake(uri, pa.table({"id": [0]}), storage_options=opts)
    writer_a, writer_b = DeltaTable(uri, storage_options=opts), DeltaTable(uri, storage_options=opts)
    write_deltalake(writer_a, pa.table({"id": [1]}), mode="append")
    write_deltalake(writer_b, pa.table({"id": [2]}), mode="append")  # snapshot still at version 0
    dt = lake.table("bronze.race")
    assert dt.version() == 2
    assert sorted(dt.to_pyarrow_table()["id"].to_pylist()) == [0, 1, 2]


def test_concurrent_writers_lose_no_commit(s3_settings: Settings) -> None:
    lake = Lake(s3_settings)
    uri, opts = lake.table_uri("bronze.concurrent"), lake.storage_options
    write_deltalake(
        uri,
        pa.table({"writer": pa.array([], pa.int64()), "i": pa.array([], pa.int64())}),
        storage_options=opts,
    )
    writers, commits_each = 4, 3
    barrier = threading.Barrier(writers)
    errors: list[BaseException] = []

    def run(writer: int) -> None:
        try:
            barrier.wait(timeout=30)
            for i in range(commits_each):
                write_deltalake(
                    uri, pa.table({"writer": [writer], "i": [i]}), mode="append", storage_options=opts
                )
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(w,)) for w in range(writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    dt = lake.table("bronze.concurrent")
    total = writers * commits_each
    assert dt.version() == total, "a commit was lost or a version was skipped"
    got = sorted((r["writer"], r["i"]) for r in dt.to_pyarrow_table().to_pylist())
    assert got == sorted((w, i) for w in range(writers) for i in range(commits_each))
    assert len(dt.history()) == total + 1


def test_duckdb_delta_scan_reads_the_same_rows(s3_settings: Settings) -> None:
    lake = Lake(s3_settings)
    uri, opts = lake.table_uri("silver.events"), lake.storage_options
    data = pa.table({"id": list(range(1000)), "amount": [i * 0.5 for i in range(1000)]})
    write_deltalake(uri, data.slice(0, 600), storage_options=opts)
    write_deltalake(uri, data.slice(600), mode="append", storage_options=opts)
    expected = lake.table("silver.events").to_pyarrow_table()
    con = lake.duckdb_with_delta()
    try:
        count, total = con.execute(f"SELECT count(*), sum(amount) FROM delta_scan('{uri}')").fetchone() or (
            0,
            0,
        )
        ids = [row[0] for row in con.execute(f"SELECT id FROM delta_scan('{uri}') ORDER BY id").fetchall()]
    finally:
        con.close()
    assert count == expected.num_rows == 1000
    assert total == pytest.approx(pc.sum(expected["amount"]).as_py())
    assert ids == list(range(1000))


def test_arrow_datasets_read_through_pyarrow_filesystems(
    s3_settings: Settings, settings_factory: Any
) -> None:
    """delta.dataset reads a table's files through pyarrow's own S3 or local filesystem, never
    through a Python file handler (whose buffers, released by Arrow's I/O threads at interpreter
    exit, aborted CLI runs that had succeeded), and sees the same rows as delta-rs."""
    from lakehouse.core import delta

    for settings in (s3_settings, settings_factory(fresh_state=True)):
        lake = Lake(settings)
        uri = lake.table_uri("bronze.orders")
        write_deltalake(
            uri,
            pa.table({"id": [1, 2, 3], "v": ["a", "b", "c"]}),
            storage_options=lake.options("bronze.orders"),
        )
        write_deltalake(
            uri,
            pa.table({"id": [4], "v": ["d"]}),
            mode="append",
            storage_options=lake.options("bronze.orders"),
        )
        dt = lake.table("bronze.orders")
        ds = delta.dataset(lake, dt)
        assert isinstance(ds.filesystem, pafs.SubTreeFileSystem), type(ds.filesystem)
        assert not isinstance(ds.filesystem.base_fs, pafs.PyFileSystem)
        assert ds.to_table().sort_by("id").to_pylist() == _rows(dt)
