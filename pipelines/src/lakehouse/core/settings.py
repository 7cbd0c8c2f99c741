"""Settings: environments/<env>/pipeline.yaml, overridden by environment variables.

Every validation failure becomes a one-line ConfigError naming the setting.
"""

from __future__ import annotations

import difflib
import ipaddress
import os
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

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
    broker_port: int = Field(29092, ge=1024, le=65535)
    broker_storage: Literal["memory", "s3"] = "memory"
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


class Settings(_Model):
    env: str = "local"
    root: Path = Path(".")
    lake_root: str = ".state/lake"
    state_dir: str = ".state"
    postgres: PostgresSettings = PostgresSettings()
    seaweedfs: SeaweedSettings = SeaweedSettings()
    generator: GeneratorSettings = GeneratorSettings()
    bronze: BronzeSettings = BronzeSettings()
    silver: SilverSettings = SilverSettings()
    streaming: StreamingSettings = StreamingSettings()
    maintenance: MaintenanceSettings = MaintenanceSettings()
    serving: ServingSettings = ServingSettings()
    layers: dict[Literal["bronze", "silver", "gold", "ops"], LayerLocation] = Field(
        default_factory=dict,
        description="per-layer location and credentials; a layer not named lives at <lake_root>/<layer>",
    )

    @field_validator("lake_root")
    @classmethod
    def _lake_root(cls, v: str) -> str:
        v = v.strip()
        if not v:
            raise ValueError("must be a folder or an s3:// URI")
        if "://" in v and not v.startswith("s3://"):
            raise ValueError(f"only local folders and s3:// URIs are supported (got {v!r})")
        if v.startswith("s3://") and len(v) <= len("s3://"):
            raise ValueError("s3:// URI needs a bucket, e.g. s3://lakehouse/dev")
        return v.rstrip("/")

    # -- derived -------------------------------------------------------------------------------
    @property
    def is_s3(self) -> bool:
        """Any of the lake's locations is on S3."""
        return self.lake_root.startswith("s3://") or any(
            loc.root.startswith("s3://") for loc in self.layers.values()
        )

    @property
    def lake_uri(self) -> str:
        """Absolute lake root: s3://bucket/prefix or an absolute local path."""
        if self.is_s3:
            return self.lake_root
        path = Path(self.lake_root)
        return str(path if path.is_absolute() else (self.root / path).resolve())

    @property
    def state_path(self) -> Path:
        path = Path(self.state_dir)
        return path if path.is_absolute() else (self.root / path).resolve()

    @property
    def snapshot_path(self) -> Path:
        path = Path(self.serving.snapshot_dir)
        return path if path.is_absolute() else self.state_path / path


def repo_root() -> Path:
    """The repository root: LAKEHOUSE_ROOT, else the nearest parent holding environments/."""
    if env_root := os.environ.get("LAKEHOUSE_ROOT"):
        return Path(env_root).resolve()
    here = Path.cwd().resolve()
    for candidate in (here, *here.parents):
        if (candidate / "environments").is_dir():
            return candidate
    return here


def _set(tree: dict[str, Any], keys: tuple[str, ...], value: object, origin: str) -> None:
    node = tree
    for depth, key in enumerate(keys[:-1]):
        child = node.setdefault(key, {})
        if not isinstance(child, dict):
            where = ".".join(keys[: depth + 1])
            raise ConfigError(f"setting '{'.'.join(keys)}' ({origin}): '{where}' is a value, not a section")
        node = child
    node[keys[-1]] = value


# What a pattern-constrained setting looks like, in words (instead of the regular expression).
PATTERN_HINTS = {
    r"^[a-z_][a-z0-9_]*$": "lower-case letters, digits and _ (a PostgreSQL name)",
    r"^[a-z0-9][a-z0-9.-]{2,62}$": "a bucket name: 3-63 lower-case letters, digits, '.' or '-'",
    r"^[A-Z]{3}$": "an ISO 4217 currency code in capitals, e.g. USD",
    r"^\d+(\.\d+)?\s*(KB|MB|GB|KiB|MiB|GiB)$": "a size such as 768MB or 2GB",
    r"^[A-Za-z0-9._-]{1,249}$": "a Kafka topic name: letters, digits, '.', '_' or '-'",
    r"^[A-Za-z0-9._-]+$": "letters, digits, '.', '_' or '-'",
    HOST_PATTERN: "a host name (e.g. lakehouse-pg-rw.postgres.svc) or an IP address",
}


def _model_at(loc: tuple[str | int, ...]) -> type[BaseModel] | None:
    """The settings model holding the field at `loc` (None below a non-model field)."""
    model: type[BaseModel] = Settings
    for part in loc[:-1]:
        field = model.model_fields.get(str(part))
        annotation = field.annotation if field is not None else None
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return None
        model = annotation
    return model


def _did_you_mean(loc: tuple[str | int, ...]) -> str:
    model = _model_at(loc)
    if model is None:
        return ""
    prefix = ".".join(str(p) for p in loc[:-1])
    names = [n for n in model.model_fields if n not in ("env", "root")]
    close = difflib.get_close_matches(str(loc[-1]), names, n=1, cutoff=0.6)
    if close:
        return f"; did you mean '{prefix + '.' if prefix else ''}{close[0]}'?"
    return f"; settings here: {', '.join(names)}"


def _explain(err: Any) -> str:
    """A pydantic error in words a user of the settings file understands."""
    kind, ctx = err["type"], err.get("ctx") or {}
    loc = tuple(err["loc"])
    if kind == "extra_forbidden":
        return "unknown setting" + _did_you_mean(loc)
    if kind == "greater_than_equal":
        return f"must be at least {ctx.get('ge')}"
    if kind == "greater_than":
        return f"must be greater than {ctx.get('gt')}"
    if kind == "less_than_equal":
        return f"must be at most {ctx.get('le')}"
    if kind == "less_than":
        return f"must be less than {ctx.get('lt')}"
    if kind in ("int_parsing", "int_type", "int_from_float"):
        return "must be a whole number"
    if kind in ("float_parsing", "float_type"):
        return "must be a number"
    if kind in ("bool_parsing", "bool_type"):
        return "must be true or false"
    if kind == "literal_error":
        return f"must be one of {ctx.get('expected')}"
    if kind == "string_pattern_mismatch":
        pattern = str(ctx.get("pattern"))
        return "must be " + PATTERN_HINTS.get(pattern, f"text matching {pattern}")
    if kind in ("list_type", "tuple_type"):
        return "must be a list, e.g. [silver.events, silver.orders]"
    if kind in ("dict_type", "model_type", "model_attributes_type"):
        return "is a section: give its settings below it, not one value"
    if kind.startswith(("datetime", "date")):
        return "must be a date and time with a UTC offset, e.g. 2026-11-01T00:00:00Z"
    return str(err["msg"]).removeprefix("Value error, ")


def _one_line(err: ValidationError, origins: dict[tuple[str, ...], str], file_origin: str) -> str:
    """The first problem as one line: the setting, its value, where that value came from, why."""
    first = err.errors()[0]
    loc = tuple(str(p) for p in first["loc"])
    where = ".".join(loc) or "(top level)"
    origin = file_origin
    below = [o for keys, o in origins.items() if keys[: len(loc)] == loc]  # an unknown section
    for n in range(len(loc), 0, -1):
        if loc[:n] in origins:
            origin = origins[loc[:n]]
            break
    else:
        origin = below[0] if below else origin
    got = first.get("input")
    shown = repr(got) if isinstance(got, str) else str(got)
    got_txt = "" if isinstance(got, dict) or first["type"] == "missing" else f" = {shown}"
    more = len(err.errors()) - 1
    tail = f" ({more} more problem(s) after this one)" if more else ""
    return f"setting '{where}'{got_txt} ({origin}): {_explain(first)}{tail}"


def _display(path: Path, root: Path) -> str:
    try:
        return str(path.resolve().relative_to(root))
    except ValueError:
        return str(path)


def load_settings(
    env: str | None = None,
    overrides: dict[str, Any] | None = None,
    origins: dict[str, str] | None = None,
) -> Settings:
    """Load settings for `env` (default LAKEHOUSE_ENV or 'local'): the environment's
    pipeline.yaml, then LAKEHOUSE_* variables, then `overrides` (dotted keys). A validation error
    names the setting, its value and where the value came from (`origins`: dotted key -> how it
    was given, e.g. "--set"; default "override")."""
    env = env or os.environ.get("LAKEHOUSE_ENV", "local")
    root = repo_root()
    path = Path(os.environ.get("LAKEHOUSE_CONFIG", root / "environments" / env / "pipeline.yaml"))
    raw: dict[str, Any] = {}
    shown = _display(path, root)
    if path.exists():
        try:
            loaded = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            line = f" line {mark.line + 1}" if mark else ""
            raise ConfigError(f"{shown}:{line} is not valid YAML") from None
        if not isinstance(loaded, dict):
            raise ConfigError(f"{shown}: top level must be a mapping of settings")
        raw = loaded
    elif "LAKEHOUSE_CONFIG" in os.environ:
        raise ConfigError(f"LAKEHOUSE_CONFIG={path}: no such file")
    elif env != "local":
        known = sorted(p.name for p in (root / "environments").glob("*/") if (p / "pipeline.yaml").exists())
        close = difflib.get_close_matches(env, known, n=1)
        hint = f"did you mean '{close[0]}'? " if close else ""
        raise ConfigError(
            f"environment '{env}' (--env / LAKEHOUSE_ENV) has no {shown}: {hint}"
            f"environments with a pipeline.yaml: {', '.join(known) or 'none'}"
        )
    where: dict[tuple[str, ...], str] = {}
    for var, keys in ENV_OVERRIDES.items():
        if var in os.environ:
            _set(raw, keys, os.environ[var], f"from environment variable {var}")
            where[keys] = f"from environment variable {var}"
    for dotted, value in (overrides or {}).items():
        keys = tuple(dotted.split("."))
        origin = (origins or {}).get(dotted, "override")
        _set(raw, keys, value, origin)
        where[keys] = origin
    raw["env"] = env
    raw["root"] = root
    try:
        return Settings.model_validate(raw)
    except ValidationError as err:
        raise ConfigError(_one_line(err, where, f"from {shown}")) from None


def settings_from_cli(env: str | None, sets: list[str] | None) -> Settings:
    """Settings for a CLI command: `--env NAME` and repeated `--set dotted.key=value` (the value
    is read as YAML, as in the file: `--set maintenance.tables=[silver.events]`)."""
    overrides: dict[str, Any] = {}
    origins: dict[str, str] = {}
    for item in sets or []:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"--set needs key=value, e.g. --set generator.events=5000 (got {item!r})")
        try:
            value = yaml.safe_load(text.strip()) if text.strip() else ""
        except yaml.YAMLError:
            value = text.strip()
        overrides[key] = value
        origins[key] = f"from --set {key}={text.strip()}"
    return load_settings(env, overrides, origins)
