"""Fault-suite stages that need a service of their own: Kafka -> bronze and the speed layer killed
mid-run, the Kafka broker killed under Kafka -> bronze, and the S3 server killed under landing and
silver with the lake on S3. Each counts rows lost, duplicated and unreadable tables as
`bench.chaos` does, against an uninterrupted run.

* `kafka`               Kafka -> bronze.events (drain what is there) SIGKILLed, run again
* `speed`               the speed layer (drain -> PostgreSQL realtime.*) SIGKILLed, run again
* `restart-kafka`       the broker (Apache Kafka, the local default) SIGKILLed while Kafka ->
                        bronze drains, started again; the drain fails or finishes; run again
* `restart-s3-landing`  the S3 server (LocalSeaweedFS) SIGKILLed while landing -> bronze runs on an
                        `s3://` lake, started again; the stage fails or finishes; run again
* `restart-s3-silver`   the same while silver runs

The topic (3 partitions) holds the generator's events, produced once; each trial drains it into
an empty lake. Kafka rows are told apart by (partition, offset); the speed layer's by what each
one-minute window counted (on time plus late, which together do not depend on the order the
partitions are read in) and by rejection reason.
"""

from __future__ import annotations

import os
import random
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

from bench import chaos
from lakehouse.core.errors import ServiceError

KAFKA_STAGES = ("kafka", "speed")
KAFKA_RESTARTS = ("restart-kafka",)
S3_RESTARTS = {"restart-s3-landing": "landing", "restart-s3-silver": "silver"}
SCENARIOS = (*KAFKA_STAGES, *KAFKA_RESTARTS, *S3_RESTARTS)
# the worker stage each scenario runs (and reruns)
WORKER = {"kafka": "kafka", "speed": "speed", "restart-kafka": "kafka", **S3_RESTARTS}
KAFKA_PORT_ENV = "LAKEHOUSE_CHAOS_KAFKA_PORT"
S3_PORT_ENV = "LAKEHOUSE_CHAOS_S3_PORT"
TOPIC = "chaos-events"
PARTITIONS = 3
KAFKA_EVENTS = 3000
KAFKA_IDENTITY = "CAST(kafka_partition AS VARCHAR) || ':' || CAST(kafka_offset AS VARCHAR)"
# a worker still running this long after its service came back is stuck: killed and counted
WORKER_TIMEOUT = 300.0


def overrides() -> dict[str, Any]:
    """Settings for the workers: the suite's broker and S3 server, when it started them."""
    out: dict[str, Any] = {}
    if KAFKA_PORT_ENV in os.environ:
        out.update(
            {
                "streaming.broker": "apache-kafka",
                "streaming.broker_port": int(os.environ[KAFKA_PORT_ENV]),
                "streaming.topic": TOPIC,
                "streaming.partitions": PARTITIONS,
                "streaming.batch_max_rows": 200,
                "streaming.batch_max_seconds": 0.2,
                "streaming.speed_batch_max_seconds": 0.2,
            }
        )
    if S3_PORT_ENV in os.environ:
        out["seaweedfs.port"] = int(os.environ[S3_PORT_ENV])
    return out


def run_stage(stage: str, settings: Any) -> None:
    """A Kafka stage in this process: drain the topic into bronze, or into the speed layer."""
    from lakehouse.app import streaming
    from lakehouse.core.reconcile import new_run_id

    streaming.consume(
        settings,
        new_run_id(),
        bronze=stage == "kafka",
        speed=stage == "speed",
        available_now=True,
        record=False,
    )


def preflight(stages: list[str], pg: bool, gold: bool) -> None:
    """What the chosen stages need and the suite cannot make, looked for before any work: the
    Kafka jars and a Java, the S3 server's binary, PostgreSQL, dbt (each raises its one-line
    error)."""
    if set(stages) & {*KAFKA_STAGES, *KAFKA_RESTARTS}:
        from lakehouse.core.jvm import find_java, load_bundle

        load_bundle("kafka")
        find_java()
    if set(stages) & set(S3_RESTARTS):
        from lakehouse.services.seaweedfs import find_weed

        find_weed()
    if pg:
        from lakehouse.services.postgres import find_pg_bin

        find_pg_bin()
    if gold:
        from lakehouse.core.settings import load_settings
        from lakehouse.gold.dbt import DbtError, DbtProject

        exe = DbtProject.from_settings(load_settings("local")).executable
        if not exe.exists():
            raise DbtError(f"dbt not found at {exe}: run make setup-dbt")


class Services:
    """The broker, PostgreSQL and S3 server the suite started for these stages (each None when no
    chosen stage needs it)."""

    def __init__(self, keep: Path | None = None) -> None:
        self.kafka: Any = None
        self.s3: Any = None
        self.bucket = ""
        # where the folder of a server that did not start again is copied (the suite's run
        # folder is removed at its end)
        self.keep = keep

    def start(self, stages: list[str], base: Path) -> None:
        from lakehouse.services.process import free_port

        if set(stages) & {*KAFKA_STAGES, *KAFKA_RESTARTS}:
            from lakehouse.generator import kafka_producer
            from lakehouse.services.apache_kafka import ApacheKafka

            os.environ[KAFKA_PORT_ENV] = str(free_port())
            settings = chaos._settings(base / "kafka-lake", base / "state")
            self.kafka = ApacheKafka(
                base=base / "state" / "apache-kafka",
                port=settings.streaming.broker_port,
                topic=TOPIC,
                partitions=PARTITIONS,
            )
            self.kafka.start()
            self.kafka.ensure_topic()
            stats = kafka_producer.produce(settings.generator, settings.streaming, KAFKA_EVENTS, None, seed=5)
            if stats.failed:
                raise RuntimeError(f"producing the chaos topic failed: {stats.last_error}")
        if set(stages) & set(S3_RESTARTS):
            from lakehouse.services.seaweedfs import LocalSeaweedFS

            os.environ[S3_PORT_ENV] = str(free_port())
            self.s3 = LocalSeaweedFS.from_settings(chaos._settings(base / "s3-lake", base / "state"))
            self.s3.start()
            self.bucket = self.s3.bucket

    def stop(self) -> None:
        for svc, env in ((self.kafka, KAFKA_PORT_ENV), (self.s3, S3_PORT_ENV)):
            if svc is not None:
                svc.stop()
            os.environ.pop(env, None)


# -- what a trial left, read independently ---------------------------------------------------


def kafka_contents(lake: str) -> dict[str, dict[str, int] | None]:
    """bronze.events by (partition, offset), read by DuckDB; None when unreadable."""
    import duckdb

    from lakehouse.core.storage import Lake

    con = Lake(chaos._settings(lake, Path(lake).parent / "state")).duckdb()
    try:
        rows = con.execute(
            f"SELECT {KAFKA_IDENTITY}, count(*) FROM delta_scan('{lake}/bronze/events') GROUP BY 1"
        ).fetchall()
        return {"bronze.events": {str(k): int(n) for k, n in rows}}
    except duckdb.Error:
        return {"bronze.events": None}
    finally:
        con.close()


def speed_contents(dsn: str) -> dict[str, dict[str, int] | None]:
    """The speed layer's counts: per window (on time + late) and per rejection reason."""
    import psycopg

    with psycopg.connect(dsn) as conn:
        windows = conn.execute(
            "SELECT CAST(w AS text), sum(n) FROM ("
            "  SELECT window_start AS w, event_count AS n FROM realtime.events_per_minute"
            "  UNION ALL SELECT window_start, late_count FROM realtime.late_events) AS t GROUP BY w"
        ).fetchall()
        rejected = conn.execute("SELECT reason, rejected_count FROM realtime.rejected_events").fetchall()
    return {
        "realtime.windows": {str(k): int(n) for k, n in windows},
        "realtime.rejected_events": {str(k): int(n) for k, n in rejected},
    }


def reset_speed(dsn: str) -> None:
    """Empty the speed layer's tables (and its stored offsets) for the next trial."""
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        names = conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'realtime'").fetchall()
        if names:
            conn.execute("TRUNCATE " + ", ".join(f"realtime.{n}" for (n,) in names))


def s3_contents(lake: str, tables: tuple[str, ...], state: Path) -> dict[str, dict[str, int] | None]:
    import duckdb

    from lakehouse.core.storage import Lake

    target = Lake(chaos._settings(lake, state))
    con = target.duckdb_with_delta()
    out: dict[str, dict[str, int] | None] = {}
    try:
        for table in tables:
            try:
                rows = con.execute(
                    f"SELECT {chaos.IDENTITY[table]}, count(*) FROM delta_scan('{target.table_uri(table)}') "
                    "GROUP BY 1"
                ).fetchall()
                out[table] = {str(k): int(n) for k, n in rows}
            except duckdb.Error:
                out[table] = None
    finally:
        con.close()
    return out


# -- the trials ------------------------------------------------------------------------------


def _add(result: chaos.StageResult, got: dict[str, dict[str, int] | None], want: dict[str, Any]) -> None:
    for table, rows in got.items():
        if rows is None:
            result.unreadable += 1
            continue
        lost, duplicated = chaos.compare(want[table], rows)
        result.lost += lost
        result.duplicated += duplicated


def _finish(
    proc: subprocess.Popen[bytes], result: chaos.StageResult, err: Path, stops: dict[str, int]
) -> None:
    """Wait for a worker whose service was killed and restarted; one that hangs is killed."""
    try:
        code = proc.wait(timeout=WORKER_TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        code, line = -9, f"still running {WORKER_TIMEOUT:.0f} s after the restart: killed"
        stops[line] = stops.get(line, 0) + 1
        result.stopped += 1
        return
    if code != 0:
        result.stopped += 1
        line = re.sub(r"\x1b\[[0-9;]*m", "", chaos._last_line(err)).strip()
        stops[line] = stops.get(line, 0) + 1


def _s3_copy(source: Path, lake: str, state: Path) -> None:
    """A local input lake copied under an `s3://` prefix (Delta logs hold relative paths)."""
    import pyarrow.fs as pafs

    from lakehouse.core.storage import Lake

    fs, root = Lake(chaos._settings(lake, state)).filesystem()
    pafs.copy_files(str(source), root, source_filesystem=pafs.LocalFileSystem(), destination_filesystem=fs)


def _s3_drop(lake: str, state: Path) -> None:
    from lakehouse.core.storage import Lake

    fs, root = Lake(chaos._settings(lake, state)).filesystem()
    fs.delete_dir_contents(root, missing_dir_ok=True)


def run(
    scenario: str,
    trials: int,
    base: Path,
    inputs: dict[str, Path],
    rng: random.Random,
    services: Services,
) -> chaos.StageResult:
    """`scenario`'s trials: kill (the stage or its service) at a uniformly random moment of an
    uninterrupted run, rerun the stage, compare."""
    state = base / "state"
    stage = WORKER[scenario]
    result = chaos.StageResult(scenario)
    dsn = chaos._settings(base / "kafka-lake", state).postgres.serving_dsn

    def lake_for(name: str) -> str:
        if scenario in S3_RESTARTS:
            lake = f"s3://{services.bucket}/{name}"
            _s3_copy(inputs[stage], lake, state)
            return lake
        path = base / name
        path.mkdir()
        return str(path)

    def contents(lake: str) -> dict[str, dict[str, int] | None]:
        if scenario in S3_RESTARTS:
            return s3_contents(lake, chaos.TABLES[stage], state)
        return speed_contents(dsn) if stage == "speed" else kafka_contents(lake)

    if stage == "speed" and _speed_exists(dsn):
        reset_speed(dsn)
    reference_lake = lake_for(f"reference-{scenario}")
    proc = chaos._worker(stage, reference_lake, state)
    started = chaos._wait_ready(proc)
    if proc.wait() != 0:
        raise RuntimeError(f"{scenario}: the uninterrupted run failed")
    work_seconds = max(0.05, time.perf_counter() - started)
    reference = contents(reference_lake)
    if any(v is None for v in reference.values()):
        raise RuntimeError(f"{scenario}: the uninterrupted run left an unreadable table")
    t0 = time.perf_counter()
    stops: dict[str, int] = {}
    for i in range(trials):
        if stage == "speed":
            reset_speed(dsn)
        lake = lake_for(f"trial-{scenario}-{i}")
        err = base / f"{scenario}-{i}.err"
        proc = chaos._worker(stage, lake, state, stderr=err)
        chaos._wait_ready(proc)
        time.sleep(rng.uniform(0.0, work_seconds))
        if scenario in (*KAFKA_RESTARTS, *S3_RESTARTS):
            svc = services.kafka if scenario in KAFKA_RESTARTS else services.s3
            pid = svc.status().pid
            if pid and proc.poll() is None:
                os.kill(pid, signal.SIGKILL)
                result.killed += 1
                _wait_gone(pid)
            try:
                svc.start()
            except ServiceError as exc:
                # the server itself does not come back: recorded with its log's last error, and
                # the stage ends here (no trial can run without it)
                proc.kill()
                proc.wait()
                kept = keep_failed(svc, services.keep, f"{scenario}-trial-{i}")
                result.notes.append(
                    f"trial {i}: {svc.name} did not start again: {_log_error(svc, exc)}"
                    + (f" (its folder kept in {kept})" if kept else "")
                )
                result.restart_failed += 1
                break
            _finish(proc, result, err, stops)
        else:
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                result.killed += 1
            proc.wait()
        try:
            chaos.run_stage(stage, lake, state)
        except Exception as exc:  # the rerun must complete: record, do not stop the suite
            result.rerun_failed += 1
            result.notes.append(f"trial {i}: rerun failed: {type(exc).__name__}: {str(exc)[:200]}")
        _add(result, contents(lake), reference)
        result.trials += 1
        if scenario in S3_RESTARTS:
            _s3_drop(lake, state)
        else:
            shutil.rmtree(lake, ignore_errors=True)
        err.unlink(missing_ok=True)
    result.seconds = time.perf_counter() - t0
    what = {
        "kafka": f"Kafka -> bronze draining {KAFKA_EVENTS} events SIGKILLed",
        "speed": f"the speed layer draining {KAFKA_EVENTS} events SIGKILLed",
        "restart-kafka": "Apache Kafka SIGKILLed while Kafka -> bronze drains, restarted",
        "restart-s3-landing": "SeaweedFS SIGKILLed while landing -> bronze runs on s3://, restarted",
        "restart-s3-silver": "SeaweedFS SIGKILLed while silver runs on s3://, restarted",
    }[scenario]
    held = ", ".join(f"{t} {sum(v.values())}" for t, v in reference.items() if v is not None)
    result.notes.insert(
        0, f"{what}; uninterrupted run {work_seconds:.2f} s ({held}), kill moment uniform over it"
    )
    result.notes += [f"{n}x stopped: {line}" for line, n in stops.items()]
    return result


def keep_failed(svc: Any, keep: Path | None, name: str) -> Path | None:
    """A copy of the folder of a server that did not start again (its data and log folders, its
    log, its configuration), to be read after the suite; None when there is nowhere to keep it."""
    if keep is None:
        return None
    target = keep / f"failed-{svc.name}-{name}-{time.strftime('%Y%m%dT%H%M%S')}"
    try:
        shutil.copytree(svc.base, target, ignore=shutil.ignore_patterns("*.jsa", "*.partial"), symlinks=True)
    except (OSError, shutil.Error) as exc:  # keep what could be copied; the failure is in the note
        return Path(f"{target} (copy incomplete: {str(exc)[:100]})")
    return target


def _log_error(svc: Any, exc: Exception) -> str:
    """The last ERROR line of the server's log, else the start error itself."""
    try:
        lines = [ln for ln in Path(svc.log_path).read_text(errors="replace").splitlines() if "ERROR" in ln]
    except OSError:
        lines = []
    return (lines[-1] if lines else str(exc))[:300]


def _speed_exists(dsn: str) -> bool:
    import psycopg

    with psycopg.connect(dsn) as conn:
        row = conn.execute("SELECT to_regclass('realtime.stream_state') IS NOT NULL").fetchone()
    return bool(row and row[0])


def _wait_gone(pid: int, timeout: float = 30) -> None:
    """Until the killed server is gone, reaped when it is this process's child (its ports are
    free again for the restart)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if os.waitpid(pid, os.WNOHANG)[0]:
                return
        except ChildProcessError:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
        time.sleep(0.05)
