"""Local services for a laptop run: PostgreSQL 15, a SeaweedFS S3 server (for s3:// lakes or
tansu's s3 storage) and a Kafka broker: Apache Kafka (KRaft, the default) or tansu
(settings.streaming.broker).

Each keeps all its state (data, logs, pidfiles, generated credentials) under
settings.state_path/<service>, listens only on 127.0.0.1, and is started, stopped and inspected
through the same three idempotent methods: start(), stop(), status() -> ServiceStatus.

`all_services` are the ones this configuration needs (what `services start` starts);
`known_services` adds every other service this state folder has held, so that `status` shows
and `services stop` stops a server started under another configuration (e.g. an s3:// lake).
"""

from __future__ import annotations

from lakehouse.core.settings import Settings
from lakehouse.services.apache_kafka import ApacheKafka
from lakehouse.services.base import ServiceStatus
from lakehouse.services.kafka import LocalKafka
from lakehouse.services.postgres import LocalPostgres
from lakehouse.services.process import ephemeral_ports
from lakehouse.services.seaweedfs import LocalSeaweedFS

Service = LocalPostgres | LocalSeaweedFS | LocalKafka | ApacheKafka
Broker = ApacheKafka | LocalKafka

__all__ = [
    "ApacheKafka",
    "Broker",
    "LocalKafka",
    "LocalPostgres",
    "LocalSeaweedFS",
    "Service",
    "ServiceStatus",
    "all_services",
    "known_services",
    "local_broker",
    "port_warnings",
]


def local_broker(settings: Settings) -> Broker:
    """The local broker settings.streaming.broker names, on streaming.broker_port."""
    if settings.streaming.broker == "tansu":
        return LocalKafka.from_settings(settings)
    return ApacheKafka.from_settings(settings)


def all_services(settings: Settings) -> list[Service]:
    """The services this configuration needs, in start order: PostgreSQL when postgres.host is
    loopback; SeaweedFS when the
    lake (or tansu's storage) is s3://; the local Kafka broker unless an external
    `streaming.bootstrap` is configured."""
    services: list[Service] = []
    if settings.postgres.is_local:  # a remote server (a cluster Service) is not ours to start
        services.append(LocalPostgres.from_settings(settings))
    if settings.is_s3 or settings.streaming.broker_needs_s3:
        services.append(LocalSeaweedFS.from_settings(settings))
    if not settings.streaming.bootstrap:
        services.append(local_broker(settings))
    return services


def known_services(settings: Settings) -> list[Service]:
    """`all_services` plus every other local service whose state folder exists in this state dir
    (it may still run: started with another lake root or broker setting), in start order."""
    configured = all_services(settings)
    kinds = {type(s) for s in configured}
    out: list[Service] = []
    for kind in (LocalPostgres, LocalSeaweedFS, ApacheKafka, LocalKafka):
        if kind in kinds:
            out += [s for s in configured if isinstance(s, kind)]
            continue
        other = kind.from_settings(settings)
        if other.base.exists():
            out.append(other)
    return out


def port_warnings(settings: Settings) -> list[str]:
    """One line per configured local port inside this machine's ephemeral range, where the local
    end of any client connection can take it between two runs."""
    ephemeral = ephemeral_ports()
    if ephemeral is None:
        return []
    ports = {"postgres.port": settings.postgres.port} if settings.postgres.is_local else {}
    if settings.is_s3 or settings.streaming.broker_needs_s3:
        ports["seaweedfs.port"] = settings.seaweedfs.port
    if not settings.streaming.bootstrap:
        ports["streaming.broker_port"] = settings.streaming.broker_port
    # The endpoints this project serves on loopback are taken the same way.
    ports["streaming.metrics_port"] = settings.streaming.metrics_port
    ports["serving.port"] = settings.serving.port
    return [
        f"{name} = {port} lies in this machine's ephemeral port range {ephemeral.start}-{ephemeral.stop - 1}: "
        f"any client connection may take it; choose a port below {ephemeral.start}"
        for name, port in ports.items()
        if port in ephemeral
    ]
