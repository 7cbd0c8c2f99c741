"""S3 access for the lake's store and the local S3 server: credentials, and a boto3 client.

delta-rs and pyarrow talk to the store themselves; this client is for what they do not do —
creating and probing buckets, checking a store's behaviour (conditional writes), and the local
server's readiness. Path-style addressing, so any S3-compatible endpoint works.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

__all__ = [
    "BotoCoreError",
    "ClientError",
    "S3Credentials",
    "client",
    "ensure_bucket",
    "error_code",
    "status_code",
]


@dataclass(frozen=True)
class S3Credentials:
    access_key: str
    secret_key: str
    endpoint: str | None
    region: str = "us-east-1"

    @property
    def endpoint_host(self) -> str | None:
        if not self.endpoint:
            return None
        return self.endpoint.split("://", 1)[-1].rstrip("/")

    @property
    def use_ssl(self) -> bool:
        return bool(self.endpoint) and str(self.endpoint).startswith("https://")


def client(creds: S3Credentials, *, timeout: float = 10.0, retries: int = 2) -> Any:
    """A boto3 S3 client for these credentials (path-style; no other AWS configuration is read)."""
    session = boto3.session.Session(
        aws_access_key_id=creds.access_key,
        aws_secret_access_key=creds.secret_key,
        region_name=creds.region,
    )
    return session.client(
        "s3",
        endpoint_url=creds.endpoint,
        config=Config(
            s3={"addressing_style": "path"},
            connect_timeout=timeout,
            read_timeout=timeout,
            retries={"max_attempts": retries, "mode": "standard"},
            # checksums on every request are not understood by every S3-compatible server
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        ),
    )


def error_code(exc: ClientError) -> str:
    """The S3 error code of a failed call (e.g. 'NoSuchBucket', 'PreconditionFailed')."""
    return str(exc.response.get("Error", {}).get("Code", ""))


def status_code(exc: ClientError) -> int:
    return int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))


def ensure_bucket(client: Any, bucket: str) -> None:
    """Create `bucket` unless it exists (any other answer to HEAD is raised)."""
    try:
        client.head_bucket(Bucket=bucket)
    except ClientError as exc:
        if status_code(exc) != 404:
            raise
        client.create_bucket(Bucket=bucket)
