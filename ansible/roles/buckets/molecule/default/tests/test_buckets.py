"""Verify the buckets role against the SeaweedFS server it converged: what the server reports
and what it enforces must match molecule/default/vars.yml."""

from __future__ import annotations

import json
import os
import time
import uuid
from pathlib import Path

import boto3
import pytest
import yaml
from botocore.config import Config
from botocore.exceptions import ClientError

SCENARIO = Path(__file__).resolve().parent.parent
DECLARED = yaml.safe_load((SCENARIO / "vars.yml").read_text())
BUCKETS = {b["name"]: b for b in DECLARED["buckets_list"]}
USERS = {u["name"]: u for u in DECLARED["buckets_users"]}
# Role defaults for values a bucket does not set (roles/buckets/defaults/main.yml).
DEFAULTS = yaml.safe_load((SCENARIO.parent.parent / "defaults" / "main.yml").read_text())


@pytest.fixture(scope="module")
def endpoint() -> dict:
    state = Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]) / "seaweedfs" / "endpoint.json"
    return json.loads(state.read_text())


def client(endpoint: dict, service: str, access_key: str, secret_key: str):
    return boto3.client(
        service,
        endpoint_url=endpoint["endpoint_url"],
        aws_access_key_id=access_key,
        aws_secret_access_key=secret_key,
        region_name=endpoint["region"],
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 2}),
    )


@pytest.fixture(scope="module")
def admin_s3(endpoint):
    return client(endpoint, "s3", endpoint["access_key"], endpoint["secret_key"])


@pytest.fixture(scope="module")
def admin_iam(endpoint):
    return client(endpoint, "iam", endpoint["access_key"], endpoint["secret_key"])


@pytest.fixture(scope="module")
def user_s3(endpoint, admin_iam):
    """An S3 client per layer user, with a temporary access key issued (and revoked) here."""
    issued: list[tuple[str, str]] = []
    clients = {}
    for name in USERS:
        key = admin_iam.create_access_key(UserName=name)["AccessKey"]
        issued.append((name, key["AccessKeyId"]))
        clients[name] = client(endpoint, "s3", key["AccessKeyId"], key["SecretAccessKey"])
    for name, s3 in clients.items():  # wait until the server has loaded the new keys
        for _ in range(40):
            try:
                s3.list_buckets()
                break
            except ClientError as err:
                if err.response["Error"]["Code"] != "InvalidAccessKeyId":
                    break
                time.sleep(0.25)
    yield clients
    for name, key_id in issued:
        admin_iam.delete_access_key(UserName=name, AccessKeyId=key_id)


def allowed(call) -> bool:
    try:
        call()
        return True
    except ClientError as err:
        if err.response["Error"]["Code"] in {"AccessDenied", "403"}:
            return False
        raise


def test_server_listens_on_loopback_only(host, endpoint):
    port = endpoint["endpoint_url"].rsplit(":", 1)[1]
    assert host.socket(f"tcp://127.0.0.1:{port}").is_listening
    assert not host.socket(f"tcp://0.0.0.0:{port}").is_listening


@pytest.mark.parametrize("bucket", sorted(BUCKETS))
def test_versioning_as_declared(admin_s3, bucket):
    status = admin_s3.get_bucket_versioning(Bucket=bucket).get("Status")
    if BUCKETS[bucket].get("versioning", True):
        assert status == "Enabled"
    else:
        assert status in (None, "Suspended")


@pytest.mark.parametrize("bucket", sorted(BUCKETS))
def test_lifecycle_rules_as_declared(admin_s3, bucket):
    spec = BUCKETS[bucket]
    rules = {r["ID"]: r for r in admin_s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]}
    expected_ids = {"abort-incomplete-multipart"}
    assert rules["abort-incomplete-multipart"]["AbortIncompleteMultipartUpload"]["DaysAfterInitiation"] == spec.get(
        "abort_multipart_days", DEFAULTS["buckets_abort_multipart_days"]
    )
    if spec.get("versioning", True):
        expected_ids.add("noncurrent-version-expiry")
        assert rules["noncurrent-version-expiry"]["NoncurrentVersionExpiration"]["NoncurrentDays"] == spec.get(
            "noncurrent_version_days", DEFAULTS["buckets_noncurrent_version_days"]
        )
    expire = spec.get("expire_days", 0)
    if expire:
        expected_ids.add("expiry")
        assert rules["expiry"]["Expiration"]["Days"] == expire
    else:
        assert all("Expiration" not in r for r in rules.values()), "current objects must never expire"
    assert set(rules) == expected_ids
    assert all(r["Status"] == "Enabled" for r in rules.values())


@pytest.mark.parametrize("bucket", sorted(BUCKETS))
def test_bucket_policy_as_declared(admin_s3, bucket):
    declared = BUCKETS[bucket].get("policy")
    try:
        actual = json.loads(admin_s3.get_bucket_policy(Bucket=bucket)["Policy"])
    except ClientError as err:
        assert err.response["Error"]["Code"] == "NoSuchBucketPolicy"
        actual = None
    if declared is None:
        assert actual is None
    else:
        assert actual["Statement"][0]["Effect"] == declared["Statement"][0]["Effect"]
        assert set(actual["Statement"][0]["Action"] if isinstance(actual["Statement"][0]["Action"], list)
                   else [actual["Statement"][0]["Action"]]) == set(declared["Statement"][0]["Action"])


@pytest.mark.parametrize("user", sorted(USERS))
def test_one_inline_policy_per_user_as_declared(admin_iam, user):
    names = admin_iam.list_user_policies(UserName=user)["PolicyNames"]
    assert names == [f"{user}-access"]
    doc = admin_iam.get_user_policy(UserName=user, PolicyName=names[0])["PolicyDocument"]
    doc = json.loads(doc) if isinstance(doc, str) else doc
    statements = {s["Sid"]: s for s in doc["Statement"]}
    write = set(USERS[user]["write"])
    read = set(USERS[user]["read"]) | write
    readable = {r.removeprefix("arn:aws:s3:::").removesuffix("/*") for r in statements["ReadLayers"]["Resource"]}
    assert readable == read
    if write:
        writable = {r.removeprefix("arn:aws:s3:::").removesuffix("/*") for r in statements["WriteLayers"]["Resource"]}
        assert writable == write
    else:
        assert "WriteLayers" not in statements


@pytest.mark.parametrize("user", sorted(USERS))
def test_server_enforces_each_layer_policy(user_s3, admin_s3, user):
    """Every user against every bucket: write only where declared, read only where declared."""
    s3 = user_s3[user]
    write = set(USERS[user]["write"])
    read = set(USERS[user]["read"]) | write
    for bucket in sorted(BUCKETS):
        key = f"probe/{user}/{uuid.uuid4().hex}"
        can_write = allowed(lambda: s3.put_object(Bucket=bucket, Key=key, Body=b"probe"))
        assert can_write == (bucket in write), f"{user} write {bucket}"
        admin_s3.put_object(Bucket=bucket, Key=f"seed/{user}", Body=b"seed")
        can_read = allowed(lambda: s3.get_object(Bucket=bucket, Key=f"seed/{user}")["Body"].read())
        can_list = allowed(lambda: s3.list_objects_v2(Bucket=bucket, Prefix="seed/"))
        assert can_read == (bucket in read), f"{user} read {bucket}"
        assert can_list == (bucket in read), f"{user} list {bucket}"


def test_silver_writer_cannot_write_bronze(user_s3):
    with pytest.raises(ClientError) as err:
        user_s3["lakehouse-silver-writer"].put_object(Bucket="bronze", Key="forged.json", Body=b"{}")
    assert err.value.response["Error"]["Code"] == "AccessDenied"


def test_bi_reader_reads_gold_only(user_s3, admin_s3):
    admin_s3.put_object(Bucket="gold", Key="marts/kpi.parquet", Body=b"PAR1")
    bi = user_s3["lakehouse-bi-reader"]
    assert bi.get_object(Bucket="gold", Key="marts/kpi.parquet")["Body"].read() == b"PAR1"
    for bucket in ("bronze", "silver"):
        with pytest.raises(ClientError) as err:
            bi.list_objects_v2(Bucket=bucket)
        assert err.value.response["Error"]["Code"] == "AccessDenied"
    with pytest.raises(ClientError):
        bi.put_object(Bucket="gold", Key="marts/kpi.parquet", Body=b"overwrite")


def test_versioning_keeps_noncurrent_versions(user_s3, admin_s3):
    writer = user_s3["lakehouse-bronze-writer"]
    key = f"events/{uuid.uuid4().hex}.json"
    writer.put_object(Bucket="bronze", Key=key, Body=b"v1")
    writer.put_object(Bucket="bronze", Key=key, Body=b"v2")
    versions = admin_s3.list_object_versions(Bucket="bronze", Prefix=key)["Versions"]
    assert len(versions) == 2
    oldest = min(versions, key=lambda v: v["LastModified"])
    body = admin_s3.get_object(Bucket="bronze", Key=key, VersionId=oldest["VersionId"])["Body"].read()
    assert body in (b"v1", b"v2") and len({v["VersionId"] for v in versions}) == 2


def test_bucket_policy_is_enforced(admin_s3):
    """scratch's policy denies DeleteBucket to everyone, the administrator included."""
    with pytest.raises(ClientError) as err:
        admin_s3.delete_bucket(Bucket="scratch")
    assert err.value.response["Error"]["Code"] == "AccessDenied"
    assert admin_s3.head_bucket(Bucket="scratch")["ResponseMetadata"]["HTTPStatusCode"] == 200
