"""Settings of a remote (cluster) environment: environments/dev and prod load, hosts may be
cluster Service names, credentials come only from mounted files or the environment, and a
missing or unreadable one is one line naming its setting."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from psycopg.conninfo import conninfo_to_dict

from lakehouse.core.errors import ConfigError
from lakehouse.core.kafka import client_config
from lakehouse.core.settings import load_settings
from lakehouse.services import LocalPostgres, all_services, port_warnings

REPO = Path(__file__).resolve().parents[2]
SECRET_WORDS = ("password:", "secret_key", "secret:", "AWS_SECRET", "sasl_password:")


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in (
        "LAKEHOUSE_CONFIG",
        "LAKEHOUSE_ENV",
        "LAKEHOUSE_LAKE_ROOT",
        "LAKEHOUSE_PG_HOST",
        "LAKEHOUSE_PG_PORT",
        "LAKEHOUSE_PG_USER",
        "LAKEHOUSE_KAFKA_BOOTSTRAP",
        "LAKEHOUSE_KAFKA_USERNAME",
        "LAKEHOUSE_KAFKA_PASSWORD",
        "PGPASSWORD",
        "LAKEHOUSE_STATE_DIR",
        "LAKEHOUSE_SECRETS_DIR",
    ):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("LAKEHOUSE_ROOT", str(REPO))


@pytest.mark.parametrize("env", ["dev", "prod"])
def test_cluster_environments_load_with_service_hosts_and_no_credentials(env: str) -> None:
    text = (REPO / "environments" / env / "pipeline.yaml").read_text()
    for line in text.splitlines():
        key = line.split("#", 1)[0].strip()
        assert not any(key.startswith(w) for w in SECRET_WORDS), f"{env}: a credential in the file: {line}"
    s = load_settings(env)
    assert s.postgres.host.endswith(".svc") and not s.postgres.is_local
    assert s.postgres.password_file and s.postgres.password_file.startswith("/var/run/secrets/")
    assert s.streaming.bootstrap and ".svc:" in s.streaming.bootstrap
    assert s.streaming.security_protocol == "SASL_SSL" and s.streaming.sasl_mechanism == "SCRAM-SHA-512"
    assert s.streaming.ssl_ca_file and s.streaming.sasl_password_file
    # nothing local to start: the cluster's services are not ours
    assert not any(isinstance(svc, LocalPostgres) for svc in all_services(s))
    assert "postgres.port" not in " ".join(port_warnings(s))
    raw = yaml.safe_load(text)
    assert raw["lake_root"].startswith("s3://")


def test_remote_postgres_reads_its_passwords_from_mounted_files(tmp_path: Path) -> None:
    serving, source = tmp_path / "password", tmp_path / "source-password"
    serving.write_text("s3rving\n")
    source.write_text("s0urce\n")
    s = load_settings(
        "dev",
        {"postgres.password_file": str(serving), "postgres.source_password_file": str(source)},
    )
    srv = conninfo_to_dict(s.postgres.serving_dsn)
    assert srv["host"] == "lakehouse-pg-rw.postgres.svc" and srv["port"] == "5432"
    assert (srv["user"], srv["password"], srv["dbname"], srv["sslmode"]) == (
        "serving_app",
        "s3rving",
        "serving",
        "require",
    )
    src = conninfo_to_dict(s.postgres.source_dsn)
    assert (src["user"], src["password"], src["dbname"]) == ("source_app", "s0urce", "source")


def test_a_missing_secret_file_is_one_line_naming_the_setting() -> None:
    s = load_settings("dev")  # /var/run/secrets/lakehouse/... does not exist here
    with pytest.raises(ConfigError) as err:
        _ = s.postgres.serving_dsn
    assert str(err.value).startswith(
        "setting 'postgres.password_file' = '/var/run/secrets/lakehouse/postgres/password'"
    )
    assert "\n" not in str(err.value)


def test_a_secrets_folder_stands_in_for_the_pods_mounted_secrets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """LAKEHOUSE_SECRETS_DIR: dev's settings read the same files from a folder outside a pod; a
    file missing there is one line naming the setting."""
    (tmp_path / "postgres").mkdir()
    (tmp_path / "postgres" / "password").write_text("s3rving\n")
    monkeypatch.setenv("LAKEHOUSE_SECRETS_DIR", f"{tmp_path}/")
    s = load_settings("dev")
    assert s.postgres.password_file == str(tmp_path / "postgres" / "password")
    assert conninfo_to_dict(s.postgres.serving_dsn)["password"] == "s3rving"
    assert s.streaming.ssl_ca_file == str(tmp_path / "kafka" / "ca.crt")
    assert s.streaming.sasl_password_file == str(tmp_path / "kafka" / "password")
    assert {k: v.credentials for k, v in s.layers.items()} == {
        "bronze": str(tmp_path / "s3-bronze"),
        "silver": str(tmp_path / "s3-silver"),
        "gold": str(tmp_path / "s3-gold"),
        "ops": str(tmp_path / "s3-silver"),
    }
    with pytest.raises(ConfigError) as err:
        _ = s.postgres.source_dsn
    assert str(err.value) == (
        f"setting 'postgres.source_password_file' = '{tmp_path / 'postgres' / 'source-password'}': "
        "cannot read it (No such file or directory)"
    )
    # a path given elsewhere stays as given; the local settings name no secret file at all
    other = load_settings("dev", {"postgres.password_file": "/elsewhere/password"})
    assert other.postgres.password_file == "/elsewhere/password"
    assert load_settings("local").postgres.password_file is None


def test_kafka_security_settings_reach_the_client(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ca = tmp_path / "ca.crt"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    s = load_settings("dev", {"streaming.ssl_ca_file": str(ca), "streaming.sasl_password_file": None})
    with pytest.raises(ConfigError) as err:
        client_config(s.streaming)
    assert str(err.value).startswith("setting 'streaming.sasl_password_file' (or LAKEHOUSE_KAFKA_PASSWORD)")
    monkeypatch.setenv("LAKEHOUSE_KAFKA_PASSWORD", "from-env")
    conf = client_config(s.streaming)
    assert conf["bootstrap.servers"] == "lakehouse-kafka-bootstrap.kafka.svc:9094"
    assert (conf["security.protocol"], conf["sasl.mechanism"]) == ("SASL_SSL", "SCRAM-SHA-512")
    assert (conf["sasl.username"], conf["sasl.password"], conf["ssl.ca.location"]) == (
        "pipelines",
        "from-env",
        str(ca),
    )
    missing_ca = load_settings("dev", {"streaming.ssl_ca_file": str(tmp_path / "nope.crt")})
    with pytest.raises(ConfigError, match=r"^setting 'streaming.ssl_ca_file' = .*nope.crt'?: no such file"):
        client_config(missing_ca.streaming)
    no_user = load_settings("dev", {"streaming.sasl_username": None, "streaming.ssl_ca_file": str(ca)})
    with pytest.raises(ConfigError, match=r"^setting 'streaming.sasl_username'"):
        client_config(no_user.streaming)


@pytest.mark.parametrize(
    ("override", "setting"),
    [
        ({"postgres.host": "not a host"}, "postgres.host"),
        ({"postgres.host": "0.0.0.0"}, "postgres.host"),
        ({"streaming.bootstrap": "kafka-0"}, "streaming.bootstrap"),
        ({"streaming.security_protocol": "SASL_PLAINTEXT"}, "streaming.security_protocol"),
    ],
)
def test_wrong_remote_settings_are_one_line(override: dict[str, object], setting: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_settings("dev", override)
    assert str(err.value).startswith(f"setting '{setting}'") and "\n" not in str(err.value)


def test_environment_variables_point_a_run_at_other_hosts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LAKEHOUSE_PG_HOST", "10.0.0.5")
    monkeypatch.setenv("LAKEHOUSE_KAFKA_BOOTSTRAP", "10.0.0.6:9094")
    monkeypatch.setenv("LAKEHOUSE_KAFKA_USERNAME", "someone")
    s = load_settings("dev")
    assert (s.postgres.host, s.streaming.servers, s.streaming.sasl_username) == (
        "10.0.0.5",
        "10.0.0.6:9094",
        "someone",
    )
