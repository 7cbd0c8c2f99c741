"""The layer-to-location map on a real SeaweedFS (auth on): bronze, silver and gold each in a
bucket of its own, each read and written with the credentials of its own layer user (issued
through the server's IAM API, as the buckets role issues them), by every reader and writer of the
flow; and the buckets' lifecycle rule, applied to the real server, expires only what no current
Delta version references."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import boto3
import polars as pl
import pytest
from tests.conftest import S3Service

from lakehelpers import read
from lakehouse.app import jobs
from lakehouse.core import s3
from lakehouse.core.errors import ConfigError
from lakehouse.core.reconcile import new_run_id
from lakehouse.core.settings import Settings
from lakehouse.core.storage import Lake

pytestmark = [pytest.mark.slow, pytest.mark.s3]
LAYERS = ("bronze", "silver", "gold")


def layer_user(service: S3Service, name: str, write: list[str], read: list[str], folder: Path) -> Path:
    """An IAM user with read/write on the named buckets only; its key pair written as the files
    of a mounted Secret (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_ENDPOINT_URL)."""
    creds = service.credentials
    iam = boto3.client(
        "iam",
        endpoint_url=creds.endpoint,
        aws_access_key_id=creds.access_key,
        aws_secret_access_key=creds.secret_key,
        region_name="us-east-1",
    )
    iam.create_user(UserName=name)
    arns = lambda buckets: [a for b in buckets for a in (f"arn:aws:s3:::{b}", f"arn:aws:s3:::{b}/*")]  # noqa: E731
    statements = [{"Effect": "Allow", "Action": ["s3:*"], "Resource": arns(write)}]
    if read:
        statements.append(
            {"Effect": "Allow", "Action": ["s3:GetObject", "s3:ListBucket"], "Resource": arns(read)}
        )
    iam.put_user_policy(
        UserName=name,
        PolicyName=f"{name}-policy",
        PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": statements}),
    )
    key = iam.create_access_key(UserName=name)["AccessKey"]
    folder.mkdir(parents=True)
    (folder / "AWS_ACCESS_KEY_ID").write_text(key["AccessKeyId"])
    (folder / "AWS_SECRET_ACCESS_KEY").write_text(key["SecretAccessKey"] + "\n")
    (folder / "AWS_ENDPOINT_URL").write_text(str(creds.endpoint))
    return folder


@pytest.fixture
def layered(s3_service: S3Service, settings_factory: Any, tmp_path: Path) -> tuple[Settings, dict[str, str]]:
    """Settings with one bucket and one user per layer (silver's user reads bronze, gold's
    reads silver), as the platform's lakehouse_buckets / lakehouse_s3_users describe them."""
    admin = s3.client(s3_service.credentials)
    tag = uuid.uuid4().hex[:8]
    buckets = {layer: f"{layer}-{tag}" for layer in LAYERS}
    for bucket in buckets.values():
        admin.create_bucket(Bucket=bucket)
        admin.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    reads = {"bronze": [], "silver": [buckets["bronze"]], "gold": [buckets["silver"]]}
    overrides: dict[str, Any] = {
        "lake_root": f"s3://{s3_service.service.bucket}/t-{tag}",
        "generator.events": 2000,
        "generator.event_files": 2,
    }
    for layer in LAYERS:
        folder = layer_user(
            s3_service, f"{layer}-writer-{tag}", [buckets[layer]], reads[layer], tmp_path / f"s3-{layer}"
        )
        overrides[f"layers.{layer}"] = {"root": f"s3://{buckets[layer]}/dev", "credentials": str(folder)}
    return settings_factory(overrides), buckets


def keys(client: Any, bucket: str) -> set[str]:
    return {
        o["Key"]
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket)
        for o in page.get("Contents", [])
    }


def test_each_layer_lives_in_its_own_bucket_with_its_own_credentials(
    layered: tuple[Settings, dict[str, str]], s3_service: S3Service
) -> None:
    settings, buckets = layered
    lake = Lake(settings)
    assert lake.missing() is None
    counts = jobs.generate_events(lake, settings)
    bronze = jobs.bronze(lake, settings, new_run_id(), sources=("events",))
    silver = jobs.silver(lake, settings, new_run_id())
    assert bronze[0].inserted == counts["lines"] and silver[0].balanced

    admin = s3.client(s3_service.credentials)
    assert any(k.startswith("dev/landing/events/") for k in keys(admin, buckets["bronze"]))
    assert any(k.startswith("dev/events/_delta_log/") for k in keys(admin, buckets["bronze"]))
    assert any(k.startswith("dev/events/_delta_log/") for k in keys(admin, buckets["silver"]))
    assert not keys(admin, buckets["gold"])
    # every reader finds the tables where the map says: delta-rs, DuckDB, Polars
    events = read(lake, "silver.events")
    assert events.num_rows == silver[0].inserted
    con = lake.duckdb_with_delta()
    for table in ("bronze.events", "silver.events"):
        got = con.execute(f"SELECT count(*) FROM delta_scan('{lake.table_uri(table)}')").fetchone()
        assert got == (lake.table(table).count(),)
    assert (
        pl.read_delta(lake.table_uri("silver.events"), storage_options=lake.options("silver")).height
        == events.num_rows
    )

    # each layer's credentials write only their own bucket
    for layer in LAYERS:
        own = s3.client(lake.layer_credentials(layer))  # type: ignore[arg-type]
        own.put_object(Bucket=buckets[layer], Key="dev/probe", Body=b"ok")
        for other in LAYERS:
            if other != layer:
                with pytest.raises(s3.ClientError) as denied:
                    own.put_object(Bucket=buckets[other], Key="dev/probe", Body=b"no")
                assert s3.status_code(denied.value) == 403


def test_a_missing_credentials_file_is_one_line(layered: tuple[Settings, dict[str, str]]) -> None:
    settings, _ = layered
    folder = Path(settings.layers["gold"].credentials or "")
    (folder / "AWS_SECRET_ACCESS_KEY").unlink()
    with pytest.raises(ConfigError) as err:
        Lake(settings)
    assert (
        str(err.value)
        == f"setting 'layers.gold.credentials' = '{folder}': no file AWS_SECRET_ACCESS_KEY there"
    )


def test_the_lifecycle_rules_expire_only_what_no_current_delta_version_references(
    layered: tuple[Settings, dict[str, str]], s3_service: S3Service
) -> None:
    """The rules the buckets role puts on a bucket that holds Delta tables (noncurrent versions,
    incomplete uploads; no expiry of current objects), on the real server: every file the current
    Delta version references is a current object version, out of their reach; what VACUUM
    removed is a noncurrent version, the only thing they expire."""
    import pyarrow as pa

    from lakehouse.core import delta

    settings, buckets = layered
    lake = Lake(settings)
    bucket = buckets["silver"]
    admin = s3.client(s3_service.credentials)
    rules = [
        {"ID": "noncurrent-version-expiry", "Filter": {"Prefix": ""}, "Status": "Enabled",
         "NoncurrentVersionExpiration": {"NoncurrentDays": 14}},
        {"ID": "abort-incomplete-multipart", "Filter": {"Prefix": ""}, "Status": "Enabled",
         "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 7}},
    ]  # fmt: skip
    admin.put_bucket_lifecycle_configuration(Bucket=bucket, LifecycleConfiguration={"Rules": rules})
    stored = admin.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]
    assert {r["ID"] for r in stored} == {r["ID"] for r in rules}
    assert not [r for r in stored if "Expiration" in r], "a rule expires current objects"

    table = "silver.lifecycle_probe"
    for i in range(3):
        delta.append(lake, table, pa.table({"id": [i], "v": [f"row {i}"]}))
    delta.overwrite(lake, table, pa.table({"id": [9], "v": ["current"]}))
    dt = lake.table(table)
    dt.vacuum(retention_hours=0, dry_run=False, enforce_retention_duration=False)
    prefix = lake.table_uri(table).removeprefix(f"s3://{bucket}/") + "/"
    referenced = {uri.removeprefix(f"s3://{bucket}/") for uri in dt.file_uris()}
    versions = admin.list_object_versions(Bucket=bucket, Prefix=prefix)
    current = {v["Key"] for v in versions.get("Versions", []) if v["IsLatest"]}
    deleted = {m["Key"] for m in versions.get("DeleteMarkers", []) if m["IsLatest"]}
    noncurrent = {v["Key"] for v in versions.get("Versions", []) if not v["IsLatest"]}
    assert referenced and referenced <= current  # current objects: no rule above applies to them
    assert not referenced & deleted
    vacuumed = {k for k in noncurrent | deleted if k.endswith(".parquet")}
    assert len(vacuumed) == 3 and not vacuumed & referenced  # VACUUM's leftovers: noncurrent only
    assert read(lake, table).to_pylist() == [{"id": 9, "v": "current"}]


def test_the_buckets_roles_users_and_policies_confine_each_layer(
    s3_service: S3Service, settings_factory: Any, tmp_path: Path
) -> None:
    """The buckets role's own tasks (amazon.aws: buckets with versioning, lifecycle rules, one IAM
    user and policy per layer) converge on this SeaweedFS, a second run changing nothing. With a
    key pair issued for each of the role's users (on the cluster the role hands it to a Secret;
    here the test asks the same IAM API), bronze and silver run, and each layer's key writes its
    own bucket only."""
    from tests.platform_tasks import converge_buckets, issue_secret_folder

    creds = s3_service.credentials
    tag = uuid.uuid4().hex[:8]
    buckets = {layer: f"{layer}-{tag}" for layer in LAYERS}
    users = {layer: f"lakehouse-{layer}-writer-{tag}" for layer in LAYERS}
    reads = {"bronze": [], "silver": [buckets["bronze"]], "gold": [buckets["silver"]]}
    converge = dict(
        endpoint=str(creds.endpoint),
        access_key=creds.access_key,
        secret_key=creds.secret_key,
        buckets=[{"name": buckets[layer], "noncurrent_version_days": 7} for layer in LAYERS],
        users=[{"name": users[layer], "read": reads[layer], "write": [buckets[layer]]} for layer in LAYERS],
    )
    first = converge_buckets(tmp_path / "ansible", **converge)  # type: ignore[arg-type]
    assert first["failed"] == 0 and first["changed"] > 0, first
    again = converge_buckets(tmp_path / "ansible", **converge)  # type: ignore[arg-type]
    assert again["failed"] == 0 and again["changed"] == 0, again

    overrides: dict[str, Any] = {
        "lake_root": f"s3://{s3_service.service.bucket}/t-{tag}",
        "generator.events": 2000,
        "generator.event_files": 2,
    }
    for layer in LAYERS:
        folder = issue_secret_folder(
            str(creds.endpoint), creds.access_key, creds.secret_key, users[layer], tmp_path / f"s3-{layer}"
        )
        overrides[f"layers.{layer}"] = {"root": f"s3://{buckets[layer]}/dev", "credentials": str(folder)}
    settings = settings_factory(overrides)
    lake = Lake(settings)
    assert lake.missing() is None
    counts = jobs.generate_events(lake, settings)
    bronze = jobs.bronze(lake, settings, new_run_id(), sources=("events",))
    silver = jobs.silver(lake, settings, new_run_id())
    assert bronze[0].inserted == counts["lines"] and silver[0].balanced
    admin = s3.client(creds)
    assert any(k.startswith("dev/events/_delta_log/") for k in keys(admin, buckets["silver"]))
    for layer in LAYERS:
        own = s3.client(lake.layer_credentials(layer))  # type: ignore[arg-type]
        own.put_object(Bucket=buckets[layer], Key="dev/probe", Body=b"ok")
        for other in LAYERS:
            if other != layer:
                with pytest.raises(s3.ClientError) as denied:
                    own.put_object(Bucket=buckets[other], Key="dev/probe", Body=b"no")
                assert s3.status_code(denied.value) == 403
