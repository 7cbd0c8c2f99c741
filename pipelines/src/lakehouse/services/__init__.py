"""Local services for a laptop run: PostgreSQL 15 and, for s3:// lakes, a SeaweedFS S3 server.

Both keep all their state (data, logs, pidfiles, generated credentials) under
settings.state_path/<service>, listen only on 127.0.0.1, and are started, stopped and inspected
through the same three idempotent methods: start(), stop(), status() -> ServiceStatus.
"""

from __future__ import annotations

from lakehouse.config import Settings
from lakehouse.services.base import ServiceStatus
from lakehouse.services.kafka import LocalKafka
from lakehouse.services.postgres import LocalPostgres
from lakehouse.services.seaweedfs import LocalSeaweedFS

Service = LocalPostgres | LocalSeaweedFS | LocalKafka

__all__ = ["LocalKafka", "LocalPostgres", "LocalSeaweedFS", "Service", "ServiceStatus", "all_services"]


def all_services(settings: Settings) -> list[Service]:
    """The services this configuration needs, in start order: PostgreSQL; SeaweedFS when the
    lake (or the broker's storage) is s3://; the Kafka-protocol broker unless an external
    `streaming.bootstrap` is configured."""
    services: list[Service] = [LocalPostgres.from_settings(settings)]
    if settings.is_s3 or settings.streaming.broker_storage == "s3":
        services.append(LocalSeaweedFS.from_settings(settings))
    if not settings.streaming.bootstrap:
        services.append(LocalKafka.from_settings(settings))
    return services
