"""Settings: environments/<env>/pipeline.yaml, overridden by environment variables.

Every validation failure becomes a one-line ConfigError naming the setting.
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, Field, ValidationError, field_validator

from lakehouse.core.errors import ConfigError
from lakehouse.core.settings_sections import (
    ENV_OVERRIDES,
    HOST_PATTERN,
    KAFKA_PASSWORD_ENV,
    LOOPBACK,
    LOOPBACK_NAMES,
    MOUNTED_SECRETS,
    PG_PASSWORD_ENV,
    SECRET_PATH_SETTINGS,
    SECRETS_DIR_ENV,
    BronzeSettings,
    EngineSettings,
    FaultRates,
    GeneratorSettings,
    LayerLocation,
    MaintenanceSettings,
    PostgresSettings,
    SeaweedSettings,
    ServingSettings,
    SilverSettings,
    StreamingSettings,
    _Model,
    read_secret,
)

__all__ = [
    "ENV_OVERRIDES",
    "HOST_PATTERN",
    "KAFKA_PASSWORD_ENV",
    "LOOPBACK",
    "LOOPBACK_NAMES",
    "PG_PASSWORD_ENV",
    "BronzeSettings",
    "EngineSettings",
    "FaultRates",
    "GeneratorSettings",
    "LayerLocation",
    "MaintenanceSettings",
    "PostgresSettings",
    "SeaweedSettings",
    "ServingSettings",
    "Settings",
    "SilverSettings",
    "StreamingSettings",
    "load_settings",
    "read_secret",
    "repo_root",
    "settings_from_cli",
]


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
    engines: EngineSettings = EngineSettings()
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


def _get(tree: dict[str, Any], keys: tuple[str, ...]) -> Any:
    node: Any = tree
    for key in keys:
        node = node.get(key) if isinstance(node, dict) else None
    return node


def _mounted_secret_paths(raw: dict[str, Any]) -> list[tuple[str, ...]]:
    """The settings whose value is a file or folder under MOUNTED_SECRETS."""
    layers = raw.get("layers")
    candidates: list[tuple[str, ...]] = [*SECRET_PATH_SETTINGS]
    if isinstance(layers, dict):
        candidates += [("layers", str(name), "credentials") for name in layers]
    return [
        keys
        for keys in candidates
        if isinstance(value := _get(raw, keys), str)
        and (value == MOUNTED_SECRETS or value.startswith(MOUNTED_SECRETS + "/"))
    ]


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
    if secrets_dir := os.environ.get(SECRETS_DIR_ENV, "").strip():
        for keys in _mounted_secret_paths(raw):
            _set(raw, keys, _get(raw, keys).replace(MOUNTED_SECRETS, secrets_dir.rstrip("/"), 1), "")
            where[keys] = f"from {shown}, under environment variable {SECRETS_DIR_ENV}"
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
