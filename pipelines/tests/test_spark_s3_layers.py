"""The Spark jobs on a lake laid out as the cluster's (environments/dev/pipeline.yaml): each layer in
a bucket of its own with a user of its own, operational tables and the Spark event log in a
checkpoints bucket, no lake-wide key anywhere (no AWS_* variable, no local server's key file).
`lakehouse spark bronze` and `lakehouse spark silver` run as the SparkApplication runs them (the
CLI in a process of its own) on the real SeaweedFS with those users' policies: S3A must take each
bucket's key pair from the settings, and each job leaves its event log where the settings say."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.fs as pafs
import pytest
import yaml
from tests.conftest import S3Service
from tests.test_lake_layers import layer_user

from lakehouse.core import ownership, s3
from lakehouse.core.jvm import JvmError, find_java
from lakehouse.core.spark import spark_bundle
from lakehouse.core.storage import Lake
from lakehouse.generator import landing as landing_files

pytestmark = [pytest.mark.spark, pytest.mark.slow, pytest.mark.s3]
REPO = Path(__file__).resolve().parents[2]
AWS_VARS = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_S3",
    "AWS_PROFILE",
)


def _event_logs(client: Any, bucket: str, prefix: str) -> dict[str, str]:
    """application -> text of its event log under the prefix. Spark 4 writes each application's
    log as a folder (`eventlog_v2_<app id>/`, rolling `events_<n>_<app id>` files, zstd-compressed)."""
    out: dict[str, str] = {}
    keys = [o["Key"] for o in client.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])]
    for key in sorted(keys):
        app, _, name = key.removeprefix(prefix).partition("/")
        if not name.startswith("events_"):
            continue  # the folders' markers, the status files
        body = client.get_object(Bucket=bucket, Key=key)["Body"].read()
        if name.endswith(".zstd"):
            body = pa.CompressedInputStream(pa.BufferReader(body), "zstd").read()
        out[app] = out.get(app, "") + body.decode()
    return out


@pytest.mark.spark_long
@pytest.mark.timeout(2700)  # two Spark jobs, each with its JVM start
def test_spark_jobs_use_each_buckets_key_and_keep_their_event_log(
    s3_service: S3Service, settings_factory: Any, tmp_path: Path
) -> None:
    try:
        find_java()
        spark_bundle()
    except JvmError as exc:
        pytest.skip(f"Spark cannot run here: {exc}")
    admin = s3.client(s3_service.credentials)
    tag = uuid.uuid4().hex[:8]
    buckets = {name: f"{name}-{tag}" for name in ("bronze", "silver", "gold", "checkpoints")}
    for bucket in buckets.values():
        admin.create_bucket(Bucket=bucket)
    b, sv, g, ck = (buckets[n] for n in ("bronze", "silver", "gold", "checkpoints"))
    # the platform's users: bronze and silver write the checkpoints bucket, silver reads bronze,
    # gold reads silver; none may touch another layer's bucket otherwise
    users = {
        "bronze": layer_user(s3_service, f"bronze-{tag}", [b, ck], [], tmp_path / "s3-bronze"),
        "silver": layer_user(s3_service, f"silver-{tag}", [sv, ck], [b], tmp_path / "s3-silver"),
        "gold": layer_user(s3_service, f"gold-{tag}", [g], [sv], tmp_path / "s3-gold"),
    }
    events_log = f"s3://{ck}/dev/spark-events"
    config = {
        "lake_root": f"s3://{ck}/dev",
        "layers": {
            **{
                layer: {"root": f"s3://{buckets[layer]}/dev", "credentials": str(users[layer])}
                for layer in users
            },
            "ops": {"root": f"s3://{ck}/dev/ops", "credentials": str(users["silver"])},
        },
        # a state folder of its own: no local server's key file to fall back on
        "state_dir": str(tmp_path / "state"),
        "generator": {"events": 1500, "event_files": 2},
        "engines": {"spark_event_log": events_log},
    }
    path = tmp_path / "pipeline.yaml"
    path.write_text(yaml.safe_dump(config))
    env = {k: v for k, v in os.environ.items() if k not in AWS_VARS and not k.startswith("LAKEHOUSE_")}
    env["LAKEHOUSE_CONFIG"] = str(path)
    settings = settings_factory(
        {
            "lake_root": config["lake_root"],
            "state_dir": config["state_dir"],
            **{f"layers.{layer}": loc for layer, loc in config["layers"].items()},
            "generator.events": 1500,
            "generator.event_files": 2,
        }
    )
    lake = Lake(settings)
    assert lake.default_credentials is None  # every location has its own key, as on the cluster
    landing_files.write_events(lake, settings.generator)
    fs, folder = lake.landing("events")
    files = [f for f in fs.get_file_info(pafs.FileSelector(folder)) if f.path.endswith(".jsonl")]
    lines = sum(fs.open_input_stream(f.path).read().count(b"\n") for f in files)
    assert len(files) == 2 and lines >= 1500

    for job in ("bronze", "silver"):
        log = tmp_path / f"spark-{job}.log"
        with log.open("w") as out:
            done = subprocess.run(
                [sys.executable, "-m", "lakehouse", "spark", job],
                cwd=REPO,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                timeout=1200,
            )
        assert done.returncode == 0, log.read_text()[-3000:]

    assert lake.table("bronze.events").count() == lines
    silver, quarantine = lake.table("silver.events").count(), lake.table("silver.quarantine_events").count()
    assert silver > 0 and quarantine > 0 and silver + quarantine <= lines
    for table in ("bronze.events", "silver.events", "silver.quarantine_events"):
        assert ownership.owner(lake, table) == ownership.SPARK
    # each table lives in its layer's bucket, written with that layer's key
    own = s3.client(lake.layer_credentials("silver"))  # type: ignore[arg-type]
    assert own.list_objects_v2(Bucket=sv, Prefix="dev/events/_delta_log/").get("KeyCount", 0) > 0
    assert admin.list_objects_v2(Bucket=b, Prefix="dev/events/_delta_log/").get("KeyCount", 0) > 0

    logs = _event_logs(admin, ck, "dev/spark-events/")
    assert len(logs) == 2, sorted(logs)  # one per job
    for name, text in logs.items():
        assert '"Event":"SparkListenerApplicationStart"' in text, name
        assert '"Event":"SparkListenerApplicationEnd"' in text, name  # stopped cleanly, not cut off
        assert '"App Name":"lakehouse-spark"' in text, name
        # the key pairs stay in Hadoop's configuration, out of the log
        for folder in users.values():
            assert (folder / "AWS_SECRET_ACCESS_KEY").read_text().strip() not in text, name


def test_an_event_log_outside_the_lakes_buckets_is_one_line(settings_factory: Any) -> None:
    from lakehouse.core.spark import _event_log_folder

    with pytest.raises(JvmError, match=r"engines.spark_event_log = 'gs://x/y': an s3:// location"):
        _event_log_folder("gs://x/y", None, {})
    with pytest.raises(JvmError, match=r"engines.spark_event_log = 's3://nowhere/y': an s3:// location"):
        _event_log_folder("s3://nowhere/y", None, {})
