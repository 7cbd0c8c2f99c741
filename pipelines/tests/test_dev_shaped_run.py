"""One dev-shaped run against every service: environments/dev/pipeline.yaml as it is, pointed at
this module's own loopback PostgreSQL, S3 server (SeaweedFS) and Apache Kafka broker by the
variables the README lists (LAKEHOUSE_PG_HOST/PORT, LAKEHOUSE_KAFKA_BOOTSTRAP, LAKEHOUSE_STATE_DIR),
every credential a file of a Secret-like folder (LAKEHOUSE_SECRETS_DIR) as a dev pod has them
mounted. Dev's buckets, layer users and keys come from the buckets role's tasks; its databases,
schemas and BI grants from the platform role's tasks; its SCRAM user from Kafka's ConfigCommand,
used over the broker's SASL_SSL listener.

The whole flow runs as a user runs it, one `lakehouse ... --env dev` command at a time: the source
database and the landing files, a burst on Kafka, bronze (landing, PostgreSQL), Kafka -> bronze and
the speed layer, silver, gold (dbt reads silver from its bucket, gold goes to its own), two
publishes. Then: each layer's key writes only its bucket; the platform's BI login reads gold and
realtime, and every query of the Grafana dashboard the platform role loads returns rows as that
login; `lakehouse check sources` finds every Kafka offset, landing line and source row once; bad
input stops in one line before any commit. Several minutes: `make test-dev-shaped` (marker
dev_shaped); `make test` runs the README's dev command on the same set-up instead.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psycopg
import pytest
import yaml
from psycopg import sql
from tests.platform_tasks import converge_buckets, converge_postgres, issue_secret_folder

from lakehouse.core import s3
from lakehouse.core.settings import Settings, load_settings
from lakehouse.core.storage import Lake, S3Credentials, folder_credentials
from lakehouse.services.postgres import LocalPostgres
from lakehouse.services.seaweedfs import LocalSeaweedFS
from test_kafka_security import add_scram_user, broker, wait_for_login  # noqa: F401 (broker: a fixture)

if TYPE_CHECKING:
    from tests.conftest import SettingsFactory

    from lakehouse.services.apache_kafka import ApacheKafka

pytestmark = [pytest.mark.slow, pytest.mark.dev_shaped]
REPO = Path(__file__).resolve().parents[2]
LAKEHOUSE = Path(sys.executable).parent / "lakehouse"
GRAFANA_JSON = REPO / "ansible" / "roles" / "platform" / "files" / "dashboards" / "lakehouse-overview.json"
LAYERS = ("bronze", "silver", "gold")
# Generator sizes (dev's settings leave the generator's defaults: a million events).
SMALL = {"events": 3000, "event_files": 2, "users": 300, "customers": 200, "products": 30, "orders": 600}
BURST = 600


@dataclass
class DevPlatform:
    """What the platform made for dev, on this test's own loopback services."""

    env: dict[str, str]  # the shell the commands run in: the variables the README lists
    secrets: Path  # LAKEHOUSE_SECRETS_DIR: the files a pipeline pod has mounted
    admin: S3Credentials  # the S3 server's own key (reads every bucket)
    pg_port: int
    bootstrap: str  # the broker's SASL_SSL listener
    bi_login: str = "bi_readonly"  # the platform's BI login (Grafana's datasource user)


@dataclass
class DevRun:
    platform: DevPlatform
    outputs: dict[str, str]

    @property
    def env(self) -> dict[str, str]:
        return self.platform.env


def lakehouse(env: dict[str, str], *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """One `lakehouse ... --env dev` command as a user types it; its output must hold no traceback."""
    proc = subprocess.run(
        [str(LAKEHOUSE), *args, "--env", "dev"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    out = proc.stdout + proc.stderr
    assert "Traceback" not in out, out[-4000:]
    if check:
        assert proc.returncode == 0, f"lakehouse {' '.join(args)}: {out[-4000:]}"
    return proc


def dev_names() -> dict[str, Any]:
    """environments/dev/pipeline.yaml as it is: the names the platform must make."""
    return yaml.safe_load((REPO / "environments" / "dev" / "pipeline.yaml").read_text())


@pytest.fixture(scope="module")
def dev_platform(
    tmp_path_factory: pytest.TempPathFactory,
    settings_factory: SettingsFactory,
    broker: ApacheKafka,  # noqa: F811
) -> Iterator[DevPlatform]:
    """PostgreSQL, an S3 server (SeaweedFS) and Apache Kafka on loopback, of this module alone,
    made into dev by the platform's own tasks under dev's own names; dev's settings file is used
    as it is, pointed at them by the variables the README lists."""
    dev = dev_names()
    base = tmp_path_factory.mktemp("dev-shaped")
    secrets = base / "secrets"
    local = settings_factory(fresh_state=True)
    pg, store = LocalPostgres.from_settings(local), LocalSeaweedFS.from_settings(local)
    try:
        pg.start()
        store.start()
        yield make_dev(dev, base, secrets, pg, store, broker)
    finally:
        store.stop(timeout=2)
        pg.stop()


def make_dev(
    dev: dict[str, Any],
    base: Path,
    secrets: Path,
    pg: LocalPostgres,
    store: LocalSeaweedFS,
    kafka: ApacheKafka,
) -> DevPlatform:
    creds = store.credentials()
    endpoint = str(creds.endpoint)
    mounted = "/var/run/secrets/lakehouse/"

    def secret(path: str) -> Path:
        assert path.startswith(mounted), path  # dev names only mounted files
        return secrets / path.removeprefix(mounted)

    # -- the buckets role: dev's buckets and layer users (lakehouse_buckets / lakehouse_s3_users) -
    bucket = {layer: loc["root"].removeprefix("s3://").split("/")[0] for layer, loc in dev["layers"].items()}
    ops = bucket["ops"]
    users = {
        "bronze": {"name": "lakehouse-bronze-writer", "read": [], "write": [bucket["bronze"], ops]},
        "silver": {
            "name": "lakehouse-silver-writer",
            "read": [bucket["bronze"]],
            "write": [bucket["silver"], ops],
        },
        "gold": {"name": "lakehouse-gold-writer", "read": [bucket["silver"]], "write": [bucket["gold"]]},
    }
    recap = converge_buckets(
        base / "ansible",
        endpoint=endpoint,
        access_key=creds.access_key,
        secret_key=creds.secret_key,
        buckets=[{"name": b, "noncurrent_version_days": 7} for b in sorted(set(bucket.values()))],
        users=list(users.values()),
    )
    assert recap["failed"] == 0 and recap["changed"] > 0, recap
    for layer in LAYERS:
        folder = secret(dev["layers"][layer]["credentials"])
        issue_secret_folder(endpoint, creds.access_key, creds.secret_key, users[layer]["name"], folder)

    # -- PostgreSQL: dev's logins exist first (CloudNativePG's managed roles; none may create
    # roles), then the platform role's databases, schemas and BI grants ---------------------------
    p = dev["postgres"]
    passwords = {p["user"]: uuid.uuid4().hex, p["source_user"]: uuid.uuid4().hex}
    with psycopg.connect(pg.dsn("postgres"), autocommit=True) as admin:
        for role in (p["user"], p["source_user"], "bi_readonly"):
            admin.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(role)))
        for role, password in passwords.items():
            admin.execute(
                sql.SQL("ALTER ROLE {} PASSWORD {}").format(sql.Identifier(role), sql.Literal(password))
            )
    recap = converge_postgres(
        base / "ansible",
        port=pg.port,
        login_user=pg.user,
        databases=[
            {"name": p["source_db"], "owner": p["source_user"], "schemas": ["public"]},
            {"name": p["serving_db"], "owner": p["user"], "schemas": ["gold", "realtime"]},
        ],
        bi_user="bi_readonly",
        bi_database=p["serving_db"],
    )
    assert recap["failed"] == 0 and recap["changed"] > 0, recap
    for key, user in (("password_file", p["user"]), ("source_password_file", p["source_user"])):
        secret(p[key]).parent.mkdir(parents=True, exist_ok=True)
        secret(p[key]).write_text(passwords[user] + "\n")

    # -- Kafka: dev's SCRAM user and topic on the broker's SASL_SSL listener ---------------------
    st = dev["streaming"]
    kafka_password = uuid.uuid4().hex
    add_scram_user(kafka, st["sasl_username"], kafka_password)
    secret(st["sasl_password_file"]).parent.mkdir(parents=True, exist_ok=True)
    secret(st["sasl_password_file"]).write_text(kafka_password + "\n")
    shutil.copyfile(kafka.ca_path, secret(st["ssl_ca_file"]))
    replace(kafka, topic=st["topic"], partitions=st["partitions"]).ensure_topic()

    env = {k: v for k, v in os.environ.items() if not k.startswith(("LAKEHOUSE_", "AWS_", "PG"))}
    env.update(
        LAKEHOUSE_ROOT=str(REPO),
        LAKEHOUSE_SECRETS_DIR=str(secrets),
        LAKEHOUSE_STATE_DIR=str(base / "state"),
        LAKEHOUSE_PG_HOST="127.0.0.1",
        LAKEHOUSE_PG_PORT=str(pg.port),
        LAKEHOUSE_KAFKA_BOOTSTRAP=kafka.sasl_bootstrap,
        COLUMNS="160",
    )
    platform = DevPlatform(env, secrets, creds, pg.port, kafka.sasl_bootstrap)
    wait_for_login(settings_of(env).streaming)
    return platform


def settings_of(env: dict[str, str]) -> Settings:
    """dev's settings as a command run in `env` loads them."""
    mp = pytest.MonkeyPatch()
    for key in [k for k in os.environ if k.startswith("LAKEHOUSE_")]:
        mp.delenv(key)
    for key in [k for k in env if k.startswith("LAKEHOUSE_")]:
        mp.setenv(key, env[key])
    try:
        return load_settings("dev")
    finally:
        mp.undo()


def generate(env: dict[str, str], *args: str) -> str:
    """A generator command with this test's small sizes (dev's settings leave the generator's)."""
    sets = [a for k, v in SMALL.items() for a in ("--set", f"generator.{k}={v}")]
    return lakehouse(env, "generate", *args, *sets).stdout


@pytest.fixture(scope="module")
def dev_run(dev_platform: DevPlatform) -> DevRun:
    """The whole flow, one command at a time, as a user runs it on dev."""
    run = DevRun(dev_platform, {})
    env = dev_platform.env
    run.outputs["source"] = generate(env, "source")
    run.outputs["landing"] = generate(env, "events")
    steps = [
        ("produce", ("stream", "produce", "--count", str(BURST), "--max")),
        ("run", ("run",)),
        ("consume", ("stream", "consume", "--available-now", "--no-metrics")),
        ("silver", ("silver",)),
        ("gold", ("gold", "run")),
        ("publish", ("gold", "publish")),
        ("sources", ("check", "sources", "--json")),
    ]
    for name, args in steps:
        run.outputs[name] = lakehouse(env, *args).stdout
    return run


def test_each_layers_key_writes_only_its_own_bucket(dev_run: DevRun) -> None:
    platform = dev_run.platform
    admin = s3.client(platform.admin)
    settings = settings_of(dev_run.env)
    bucket = {layer: loc.root.removeprefix("s3://").split("/")[0] for layer, loc in settings.layers.items()}

    def keys(name: str) -> set[str]:
        pages = admin.get_paginator("list_objects_v2").paginate(Bucket=name)
        return {o["Key"] for page in pages for o in page.get("Contents", [])}

    assert any(k.startswith("dev/events/_delta_log/") for k in keys(bucket["bronze"]))
    assert any(k.startswith("dev/landing/events/") for k in keys(bucket["bronze"]))
    assert any(k.startswith("dev/events/_delta_log/") for k in keys(bucket["silver"]))
    assert any(k.startswith("dev/agg_purchases_per_page_daily/_delta_log/") for k in keys(bucket["gold"]))
    assert any(k.startswith("dev/ops/reconciliation/_delta_log/") for k in keys(bucket["ops"]))
    for layer in LAYERS:
        own = s3.client(folder_credentials(layer, settings.layers[layer].credentials or ""))
        own.put_object(Bucket=bucket[layer], Key="dev/probe", Body=b"ok")
        for other in (*LAYERS, "ops"):
            if other == layer or (other == "ops" and layer != "gold"):
                continue  # bronze's and silver's users write the checkpoints bucket (ops.*)
            with pytest.raises(s3.ClientError) as denied:
                own.put_object(Bucket=bucket[other], Key="dev/probe", Body=b"no")
            assert s3.status_code(denied.value) == 403, (layer, other)


def _bi(dev_run: DevRun) -> psycopg.Connection[Any]:
    platform = dev_run.platform
    db = dev_names()["postgres"]["serving_db"]
    return psycopg.connect(
        f"postgresql://{platform.bi_login}@127.0.0.1:{platform.pg_port}/{db}", autocommit=True
    )


def test_the_platforms_bi_login_reads_gold_and_realtime_after_two_publishes(dev_run: DevRun) -> None:
    assert "published " in dev_run.outputs["gold"] and "Published to " in dev_run.outputs["publish"]
    # dev's pipeline login may not create roles: the platform's BI login is gold's reader
    assert f"read by: {dev_run.platform.bi_login} " in dev_run.outputs["publish"]
    with _bi(dev_run) as bi:
        gold = [r[0] for r in bi.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'gold'"
        )]  # fmt: skip
        assert "agg_purchases_per_page_daily" in gold, gold
        for name in gold:
            bi.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier("gold", name)))
        assert bi.execute("SELECT count(*) FROM realtime.events_per_minute").fetchone()[0] > 0  # type: ignore[index]
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            bi.execute("DELETE FROM gold.agg_purchases_per_page_daily")


def test_every_grafana_panel_query_returns_rows_as_the_bi_login(dev_run: DevRun) -> None:
    """The queries of the dashboard JSON the platform role loads into Grafana, with Grafana's time
    macro expanded for the dashboard's default range (now-1h .. now)."""
    dashboard = json.loads(GRAFANA_JSON.read_text())
    assert dashboard["time"] == {"from": "now-1h", "to": "now"}
    now = datetime.now(UTC)
    frm, to = (
        t.strftime("%Y-%m-%dT%H:%M:%SZ") for t in (now - timedelta(hours=1), now + timedelta(minutes=1))
    )
    ran: list[str] = []
    with _bi(dev_run) as bi:
        for panel in dashboard["panels"]:
            for target in panel.get("targets", []):
                query = re.sub(
                    r"\$__timeFilter\(([^)]+)\)", rf"\1 BETWEEN '{frm}' AND '{to}'", target["rawSql"]
                )
                assert "$__" not in query, panel["title"]
                rows = bi.execute(query).fetchall()
                assert rows, f"{panel['title']}: no rows as {dev_run.platform.bi_login}"
                ran.append(panel["title"])
    assert len(ran) == sum(1 for p in dashboard["panels"] if p.get("targets")) >= 10, ran


def test_the_stream_consumed_every_offset_exactly_once(dev_run: DevRun) -> None:
    results = json.loads(dev_run.outputs["sources"])
    assert results and all(r["ok"] for r in results), results
    kafka = [r for r in results if r["source"].startswith("kafka")]
    assert kafka and sum(r["expected"] for r in kafka) >= BURST, results
    assert all(r["lost"] == 0 and r["duplicated"] == 0 for r in kafka), kafka
    checks = {r["check_name"] for r in results}
    assert len(checks) >= 3, checks  # landing, Kafka and the PostgreSQL source, each counted again


# -- bad input on the dev path: one line naming the setting or host, nothing committed -----------
def versions(env: dict[str, str]) -> dict[str, int]:
    """The Delta version of every table a bronze step or the stream writes."""
    lake = Lake(settings_of(env))
    names = ("bronze.events", "bronze.customers", "bronze.orders", "ops.reconciliation")
    return {name: lake.table(name).version() for name in names}


def one_line(proc: subprocess.CompletedProcess[str]) -> str:
    out = (proc.stdout + proc.stderr).strip()
    assert proc.returncode != 0, out
    assert len(out.splitlines()) == 1, out
    return out


def test_a_missing_secret_or_an_unreachable_database_stops_bronze_before_any_commit(
    dev_run: DevRun, tmp_path: Path
) -> None:
    """New landing files wait; the step that would also read PostgreSQL stops in one line (naming
    the unreadable Secret file, or the host) without ingesting them; then a good run takes them."""
    env = dev_run.env
    lakehouse(env, "generate", "events", "--from", "2026-11-20", "--to", "2026-11-20",
              "--set", "maintenance.backfill_events_per_day=300")  # fmt: skip
    before = versions(env)
    p = dev_names()["postgres"]

    for setting, name in (
        ("postgres.source_password_file", "source-password"),
        ("postgres.password_file", "password"),
    ):
        empty = tmp_path / name  # a Secret not mounted: its folder lacks the file
        shutil.copytree(dev_run.platform.secrets, empty)
        (empty / "postgres" / name).unlink()
        line = one_line(lakehouse(env | {"LAKEHOUSE_SECRETS_DIR": str(empty)}, "run", check=False))
        assert line == (
            f"error: setting '{setting}' = '{empty / 'postgres' / name}': cannot read it (No such file or directory)"
        )
        assert versions(env) == before

    host = p["host"]  # dev's own host: no such name outside the cluster
    line = one_line(lakehouse(env | {"LAKEHOUSE_PG_HOST": host}, "run", check=False))
    where = f"{p['source_user']}@{host}:{dev_run.platform.pg_port}/{p['source_db']}"
    assert f"source database {where} is not reachable" in line, line
    assert "password=" not in line
    assert versions(env) == before

    lakehouse(env, "run")
    assert versions(env)["bronze.events"] > before["bronze.events"]  # they were waiting


def test_kafka_bad_input_is_one_line_and_consumes_nothing(dev_run: DevRun, tmp_path: Path) -> None:
    env, st = dev_run.env, dev_names()["streaming"]
    lakehouse(env, "stream", "produce", "--count", "50", "--max")
    before = versions(env)
    consume = ("stream", "consume", "--available-now", "--no-metrics")

    wrong = tmp_path / "secrets"
    shutil.copytree(dev_run.platform.secrets, wrong)
    (wrong / "kafka" / "password").write_text("not-the-password\n")
    line = one_line(lakehouse(env | {"LAKEHOUSE_SECRETS_DIR": str(wrong)}, *consume, check=False))
    assert f"Kafka at {dev_run.platform.bootstrap}: SCRAM login of '{st['sasl_username']}' refused" in line
    assert "streaming.sasl_password_file" in line

    unset = {k: v for k, v in env.items() if k != "LAKEHOUSE_SECRETS_DIR"}  # the files are not there
    assert one_line(lakehouse(unset, *consume, check=False)) == (
        f"error: setting 'streaming.ssl_ca_file' = '{st['ssl_ca_file']}': no such file "
        "(the CA certificate of the brokers' TLS)"
    )

    line = one_line(lakehouse(env | {"LAKEHOUSE_KAFKA_BOOTSTRAP": st["bootstrap"]}, *consume, check=False))
    assert st["bootstrap"] in line, line  # dev's own bootstrap: no such host outside the cluster
    assert versions(env) == before

    lakehouse(env, *consume)
    assert versions(env)["bronze.events"] > before["bronze.events"]
