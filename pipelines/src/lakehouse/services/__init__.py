"""Local services for a laptop run: PostgreSQL 15 and, for s3:// lakes, a SeaweedFS S3 server.

Both keep all their state (data, logs, pidfiles, generated credentials) under
settings.state_path/<service>, listen only on 127.0.0.1, and are started, stopped and inspected
through the same three idempotent methods: start(), stop(), status() -> ServiceStatus.
"""

from __future__ import annotations

from lakehouse.config import Settings
from lakehouse.services.base import ServiceStatus
from lakehouse.services.postgres import LocalPostgres
from lakehouse.services.seaweedfs import LocalSeaweedFS

Service = LocalPostgres | LocalSeaweedFS

__all__ = ["LocalPostgres", "LocalSeaweedFS", "Service", "ServiceStatus", "all_services"]


def all_services(settings: Settings) -> list[Service]:
    """The services this configuration needs, in start order: PostgreSQL, plus SeaweedFS when
    lake_root is s3:// (a folder lake needs no object store, so it is not listed at all)."""
    services: list[Service] = [LocalPostgres.from_settings(settings)]
    if settings.is_s3:
        services.append(LocalSeaweedFS.from_settings(settings))
    return services
