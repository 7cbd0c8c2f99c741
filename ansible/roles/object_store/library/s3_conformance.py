#!/usr/bin/python
"""S3 conformance check of the store the lakehouse writes its Delta tables to.

delta-rs commits a table version by writing `_delta_log/<version>.json` with a conditional put
(`aws_conditional_put: etag`, i.e. `If-None-Match: *`): two writers racing for the same version
must see exactly one success. Versioned buckets must keep that guarantee, and lifecycle rules
must touch only noncurrent versions, never the live files of a table. This module checks those
three properties on a scratch bucket and fails with one line naming the first one that does not
hold. It talks S3 through boto3 (signing included); the conditional header is added through
botocore's event hooks so that distribution boto3 releases without the IfNoneMatch parameter
(Ubuntu 24.04 ships 1.34) send it too.
"""

from __future__ import annotations

DOCUMENTATION = r"""
module: s3_conformance
short_description: Check that an S3 store gives Delta Lake safe commits
description:
  - Races O(writers) conditional PUTs (If-None-Match "*") for one key, without and with bucket
    versioning, and expects exactly one success each time; checks that a lifecycle rule expiring
    noncurrent versions is stored as such and leaves current objects alone.
  - Creates and removes the scratch bucket O(bucket).
options:
  endpoint_url: {type: str, required: true, description: S3 endpoint URL.}
  access_key: {type: str, required: true, no_log: true, description: Access key allowed to create buckets.}
  secret_key: {type: str, required: true, no_log: true, description: Secret key.}
  region: {type: str, default: us-east-1, description: Signing region.}
  bucket: {type: str, default: conformance-probe, description: Scratch bucket (created and removed).}
  writers: {type: int, default: 8, description: Concurrent conditional writers per race.}
  abort_multipart_rule: {type: bool, default: true, description: Include an AbortIncompleteMultipartUpload rule in the lifecycle probe.}
  validate_certs: {type: bool, default: true, description: Verify TLS certificates.}
author: Ampere Lakehouse
"""

RETURN = r"""
checks:
  description: Outcome of each check (name -> detail).
  type: dict
  returned: always
"""

import concurrent.futures
import threading
import uuid

try:
    import boto3
    from botocore.config import Config
    from botocore.exceptions import ClientError
except ImportError:  # pragma: no cover - reported by main()
    boto3 = None

from ansible.module_utils.basic import AnsibleModule

_CONDITIONAL = threading.local()


def _add_if_none_match(request, **_kwargs):
    if getattr(_CONDITIONAL, "on", False):
        request.headers["If-None-Match"] = "*"


def make_client(endpoint_url: str, access_key: str, secret_key: str, region: str = "us-east-1", verify: bool = True):
    client = boto3.client(
        "s3", endpoint_url=endpoint_url, aws_access_key_id=access_key, aws_secret_access_key=secret_key,
        region_name=region, verify=verify,
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}, max_pool_connections=64),
    )
    client.meta.events.register("before-sign.s3.PutObject", _add_if_none_match)
    return client


def conditional_put(client, bucket: str, key: str, body: bytes) -> str:
    """'ok' when the store accepted the write, 'conflict' when it refused it as a precondition
    failure (412) or a concurrent conditional write (409), anything else is an error code."""
    _CONDITIONAL.on = True
    try:
        client.put_object(Bucket=bucket, Key=key, Body=body)
        return "ok"
    except ClientError as err:
        status = err.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        return "conflict" if status in (409, 412) else f"error {status} {err.response['Error'].get('Code')}"
    finally:
        _CONDITIONAL.on = False


def race(client, bucket: str, writers: int) -> list[str]:
    key = f"_delta_log/{uuid.uuid4().hex}.json"
    barrier = threading.Barrier(writers)

    def one(index: int) -> str:
        barrier.wait()
        return conditional_put(client, bucket, key, f'{{"writer": {index}}}'.encode())

    with concurrent.futures.ThreadPoolExecutor(writers) as pool:
        return list(pool.map(one, range(writers)))


def _race_failure(outcomes: list[str], label: str) -> str | None:
    wins = outcomes.count("ok")
    errors = [o for o in outcomes if o not in ("ok", "conflict")]
    if errors:
        return f"{label}: conditional PUT answered {errors[0]}"
    if wins != 1:
        return f"{label}: {wins} of {len(outcomes)} concurrent conditional PUTs (If-None-Match: *) to one key succeeded, expected exactly 1"
    return None


def _empty_bucket(client, bucket: str) -> None:
    paginator = client.get_paginator("list_object_versions")
    for page in paginator.paginate(Bucket=bucket):
        for entry in page.get("Versions", []) + page.get("DeleteMarkers", []):
            client.delete_object(Bucket=bucket, Key=entry["Key"], VersionId=entry["VersionId"])


def run_checks(client, bucket: str, writers: int = 8, abort_multipart_rule: bool = True) -> tuple[list[str], dict]:
    """Returns (failures, details); failures are one-line reasons, the first is the verdict."""
    failures: list[str] = []
    details: dict = {}
    client.create_bucket(Bucket=bucket)
    try:
        outcomes = race(client, bucket, writers)
        details["conditional_put"] = outcomes
        if reason := _race_failure(outcomes, "conditional put"):
            failures.append(reason)
        key = f"_delta_log/{uuid.uuid4().hex}.json"
        conditional_put(client, bucket, key, b"first")
        again = conditional_put(client, bucket, key, b"second")
        details["conditional_put_existing"] = again
        if again != "conflict":
            failures.append(f"conditional put: If-None-Match: * on an existing key answered {again}, expected 412")

        client.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
        outcomes = race(client, bucket, writers)
        details["conditional_put_versioned"] = outcomes
        if reason := _race_failure(outcomes, "conditional put with versioning on"):
            failures.append(reason)

        rules = [{"ID": "noncurrent", "Status": "Enabled", "Filter": {"Prefix": ""},
                  "NoncurrentVersionExpiration": {"NoncurrentDays": 1}}]
        if abort_multipart_rule:
            rules.append({"ID": "abort", "Status": "Enabled", "Filter": {"Prefix": ""},
                          "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1}})
        client.put_bucket_lifecycle_configuration(Bucket=bucket, LifecycleConfiguration={"Rules": rules})
        stored = {r.get("ID"): r for r in client.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]}
        details["lifecycle"] = sorted(stored)
        noncurrent = stored.get("noncurrent", {})
        if noncurrent.get("NoncurrentVersionExpiration", {}).get("NoncurrentDays") != 1:
            failures.append("lifecycle: the noncurrent-version expiry rule was not stored as sent")
        if any("Expiration" in rule for rule in stored.values()):
            failures.append("lifecycle: the store turned a noncurrent-version rule into an expiry of current objects")
        key = f"table/{uuid.uuid4().hex}.parquet"
        client.put_object(Bucket=bucket, Key=key, Body=b"v1")
        client.put_object(Bucket=bucket, Key=key, Body=b"v2")
        versions = client.list_object_versions(Bucket=bucket, Prefix=key).get("Versions", [])
        current = client.get_object(Bucket=bucket, Key=key)["Body"].read()
        details["versions_after_lifecycle"] = len(versions)
        if len(versions) != 2 or current != b"v2":
            failures.append(f"lifecycle: expected the current and one noncurrent version, found {len(versions)} (current {current!r})")
    finally:
        try:
            client.delete_bucket_lifecycle(Bucket=bucket)
        except ClientError:
            pass
        _empty_bucket(client, bucket)
        client.delete_bucket(Bucket=bucket)
    return failures, details


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "endpoint_url": {"type": "str", "required": True},
            "access_key": {"type": "str", "required": True, "no_log": True},
            "secret_key": {"type": "str", "required": True, "no_log": True},
            "region": {"type": "str", "default": "us-east-1"},
            "bucket": {"type": "str", "default": "conformance-probe"},
            "writers": {"type": "int", "default": 8},
            "abort_multipart_rule": {"type": "bool", "default": True},
            "validate_certs": {"type": "bool", "default": True},
        },
        supports_check_mode=True,
    )
    if boto3 is None:
        module.fail_json(msg="s3_conformance needs boto3 on the host that runs it")
    if module.check_mode:
        module.exit_json(changed=False, checks={})
    params = module.params
    client = make_client(params["endpoint_url"], params["access_key"], params["secret_key"], params["region"],
                         params["validate_certs"])
    try:
        failures, details = run_checks(client, params["bucket"], params["writers"], params["abort_multipart_rule"])
    except ClientError as err:
        module.fail_json(msg=f"S3 store at {params['endpoint_url']} refused: {err}")
    if failures:
        module.fail_json(msg=f"S3 store at {params['endpoint_url']} refused: {failures[0]}", checks=details, failures=failures)
    module.exit_json(changed=False, checks=details)


if __name__ == "__main__":
    main()
