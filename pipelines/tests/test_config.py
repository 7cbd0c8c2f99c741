"""Settings: defaults, overrides, and one-line errors naming the setting."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from lakehouse.core.errors import ConfigError
from lakehouse.core.settings import load_settings
from lakehouse.core.storage import Lake

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _no_inherited_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test states its own environment: a LAKEHOUSE_* variable left by the shell or by a
    session-wide fixture elsewhere (the serving suite points LAKEHOUSE_CONFIG at its own file)
    would otherwise decide which pipeline.yaml is read."""
    for var in [v for v in os.environ if v.startswith("LAKEHOUSE_")]:
        monkeypatch.delenv(var)


def test_local_defaults_load_from_the_environment_file() -> None:
    s = load_settings("local")
    assert s.env == "local"
    assert s.postgres.host == "127.0.0.1"
    assert s.generator.events > 0
    assert not s.is_s3
    assert Path(s.lake_uri).is_absolute()


def test_environment_variable_overrides(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("LAKEHOUSE_LAKE_ROOT", str(tmp_path / "lake"))
    monkeypatch.setenv("LAKEHOUSE_PG_PORT", "56001")
    s = load_settings("local")
    assert s.lake_uri == str(tmp_path / "lake")
    assert s.postgres.port == 56001


@pytest.mark.parametrize(
    ("override", "setting"),
    [
        ({"generator.events": -5}, "generator.events"),
        ({"postgres.port": 80}, "postgres.port"),
        ({"postgres.host": "0.0.0.0"}, "postgres.host"),
        ({"lake_root": "gs://bucket/x"}, "lake_root"),
        ({"silver.base_currency": "usd"}, "silver.base_currency"),
        ({"generator.faults.malformed_json": 2}, "generator.faults.malformed_json"),
        ({"generator.no_such_setting": 1}, "generator.no_such_setting"),
    ],
)
def test_invalid_settings_are_one_line_errors_naming_the_setting(
    override: dict[str, object], setting: str
) -> None:
    with pytest.raises(ConfigError) as err:
        load_settings("local", overrides=override)
    message = str(err.value)
    assert "\n" not in message
    assert f"'{setting}'" in message


def test_unknown_environment_is_a_clear_error() -> None:
    with pytest.raises(ConfigError, match="LAKEHOUSE_ENV"):
        load_settings("no-such-env")


def test_invalid_yaml_names_the_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    bad = tmp_path / "pipeline.yaml"
    bad.write_text("lake_root: [unclosed\n")
    monkeypatch.setenv("LAKEHOUSE_CONFIG", str(bad))
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_settings("local")


def test_s3_lake_without_credentials_names_the_missing_variable(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(var, raising=False)
    s = load_settings("local", overrides={"lake_root": "s3://lakehouse/x", "state_dir": str(tmp_path)})
    with pytest.raises(ConfigError, match="'AWS_ACCESS_KEY_ID'"):
        Lake(s)


def test_cli_reports_config_errors_in_one_line_without_traceback(tmp_path: Path) -> None:
    env = {**os.environ, "LAKEHOUSE_STATE_DIR": str(tmp_path)}
    proc = subprocess.run(
        [sys.executable, "-m", "lakehouse", "tables", "--set", "generator.events=abc"],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
        timeout=120,
    )
    assert proc.returncode == 2
    out = (proc.stdout + proc.stderr).strip()
    assert "Traceback" not in out
    assert out.count("\n") == 0, out
    assert "'generator.events'" in out


def test_every_local_port_lies_below_the_ephemeral_range() -> None:
    """A port inside 32768-60999 can be taken by the local end of any client connection between
    two runs; every port this project listens on by default sits below it, and a configured port
    inside it is named."""
    from lakehouse.services import port_warnings

    s = load_settings("local")
    dashboard = REPO / "dashboards" / "dashboards.mk"
    dashboard_port = int(
        next(
            line.split("?=")[1]
            for line in dashboard.read_text().splitlines()
            if line.startswith("DASHBOARD_PORT")
        )
    )
    ports = {
        "postgres": s.postgres.port,
        "seaweedfs": s.seaweedfs.port,
        "broker": s.streaming.broker_port,
        "metrics": s.streaming.metrics_port,
        "serving": s.serving.port,
        "dashboard": dashboard_port,
    }
    assert all(port < 32768 for port in ports.values()), ports
    assert port_warnings(s) == []
    inside = load_settings("local", overrides={"serving.port": 40000, "streaming.metrics_port": 40001})
    warnings = port_warnings(inside)
    assert any(line.startswith("serving.port = 40000 lies in") for line in warnings), warnings
    assert any(line.startswith("streaming.metrics_port = 40001 lies in") for line in warnings), warnings


@pytest.mark.parametrize(
    ("how", "expect"),
    [
        (
            "set",
            "setting 'generator.events' = 'abc' (from --set generator.events=abc): must be a whole number",
        ),
        (
            "env",
            "setting 'postgres.port' = 'abc' (from environment variable LAKEHOUSE_PG_PORT): must be a whole number",
        ),
        ("file", "setting 'generator.events' = 'abc' (from {file}): must be a whole number"),
        (
            "typo",
            "setting 'generator.evnts' = 5 (from --set generator.evnts=5): unknown setting; did you mean 'generator.events'?",
        ),
    ],
)
def test_a_settings_error_names_where_the_value_came_from(tmp_path: Path, how: str, expect: str) -> None:
    env = {**os.environ, "LAKEHOUSE_STATE_DIR": str(tmp_path)}
    args = [sys.executable, "-m", "lakehouse", "tables"]
    config = tmp_path / "pipeline.yaml"
    if how == "set":
        args += ["--set", "generator.events=abc"]
    elif how == "typo":
        args += ["--set", "generator.evnts=5"]
    elif how == "env":
        env["LAKEHOUSE_PG_PORT"] = "abc"
    else:
        config.write_text("generator:\n  events: abc\n")
        env["LAKEHOUSE_CONFIG"] = str(config)
    proc = subprocess.run(args, capture_output=True, text=True, cwd=REPO, env=env, timeout=120)
    assert proc.returncode == 2
    shown = os.path.relpath(config, REPO) if config.is_relative_to(REPO) else str(config)
    assert proc.stderr.strip() == f"error: {expect.format(file=shown)}", proc.stderr
