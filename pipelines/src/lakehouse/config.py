"""Settings: environments/<env>/pipeline.yaml, overridden by environment variables.

Every validation failure becomes a one-line ConfigError naming the setting.
"""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from lakehouse.errors import ConfigError

ENV_OVERRIDES = {
    "LAKEHOUSE_LAKE_ROOT": ("lake_root",),
    "LAKEHOUSE_STATE_DIR": ("state_dir",),
    "LAKEHOUSE_PG_PORT": ("postgres", "port"),
    "LAKEHOUSE_EVENTS": ("generator", "events"),
    "LAKEHOUSE_CUSTOMERS": ("generator", "customers"),
}


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PostgresSettings(_Model):
    host: Literal["127.0.0.1", "localhost"] = "127.0.0.1"
    port: int = Field(55432, ge=1024, le=65535)
    user: str = Field("lakehouse", pattern=r"^[a-z_][a-z0-9_]*$")
    source_db: str = Field("source", pattern=r"^[a-z_][a-z0-9_]*$")
    serving_db: str = Field("serving", pattern=r"^[a-z_][a-z0-9_]*$")


class SeaweedSettings(_Model):
    port: int = Field(58333, ge=1024, le=65535)
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
    topic: str = Field("user-events", pattern=r"^[A-Za-z0-9._-]{1,249}$")
    partitions: int = Field(3, ge=1, le=1000)
    broker_port: int = Field(59092, ge=1024, le=65535)
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
    metrics_port: int = Field(59108, ge=1024, le=65535)

    @property
    def local_bootstrap(self) -> str:
        return f"127.0.0.1:{self.broker_port}"

    @property
    def servers(self) -> str:
        return self.bootstrap or self.local_bootstrap


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
        return self.lake_root.startswith("s3://")

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


def repo_root() -> Path:
    """The repository root: LAKEHOUSE_ROOT, else the nearest parent holding environments/."""
    if env_root := os.environ.get("LAKEHOUSE_ROOT"):
        return Path(env_root).resolve()
    here = Path.cwd().resolve()
    for candidate in (here, *here.parents):
        if (candidate / "environments").is_dir():
            return candidate
    return here


def _set(tree: dict[str, Any], keys: tuple[str, ...], value: str) -> None:
    node = tree
    for key in keys[:-1]:
        node = node.setdefault(key, {})
        if not isinstance(node, dict):
            raise ConfigError(f"setting '{'.'.join(keys)}': parent is not a mapping")
    node[keys[-1]] = value


def _one_line(err: ValidationError, source: str) -> str:
    first = err.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or "(top level)"
    got = first.get("input")
    got_txt = "" if isinstance(got, dict) else f" (got {got!r})"
    more = len(err.errors()) - 1
    tail = f"; {more} more problem(s)" if more else ""
    msg = first["msg"].removeprefix("Value error, ")
    return f"setting '{where}': {msg}{got_txt} [{source}]{tail}"


def load_settings(env: str | None = None, overrides: dict[str, Any] | None = None) -> Settings:
    """Load settings for `env` (default LAKEHOUSE_ENV or 'local')."""
    env = env or os.environ.get("LAKEHOUSE_ENV", "local")
    root = repo_root()
    path = Path(os.environ.get("LAKEHOUSE_CONFIG", root / "environments" / env / "pipeline.yaml"))
    raw: dict[str, Any] = {}
    if path.exists():
        try:
            loaded = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            line = f" line {mark.line + 1}" if mark else ""
            raise ConfigError(f"{path}:{line} is not valid YAML") from None
        if not isinstance(loaded, dict):
            raise ConfigError(f"{path}: top level must be a mapping of settings")
        raw = loaded
    elif "LAKEHOUSE_CONFIG" in os.environ or env != "local":
        raise ConfigError(f"setting 'LAKEHOUSE_ENV': no pipeline config at {path}")
    for var, keys in ENV_OVERRIDES.items():
        if var in os.environ:
            _set(raw, keys, os.environ[var])
    for dotted, value in (overrides or {}).items():
        _set(raw, tuple(dotted.split(".")), value)
    raw["env"] = env
    raw["root"] = root
    try:
        return Settings.model_validate(raw)
    except ValidationError as err:
        raise ConfigError(_one_line(err, str(path))) from None


def settings_from_cli(env: str | None, sets: list[str] | None) -> Settings:
    """Settings for a CLI command: `--env NAME` and repeated `--set dotted.key=value`."""
    overrides: dict[str, Any] = {}
    for item in sets or []:
        key, sep, value = item.partition("=")
        if not sep:
            raise ConfigError(f"--set needs key=value (got {item!r})")
        overrides[key.strip()] = value.strip()
    return load_settings(env, overrides)
