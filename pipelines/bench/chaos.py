"""Fault suite: SIGKILL a stage that writes at a random moment, run it again, and compare the lake
with an uninterrupted run, read back through DuckDB's delta_scan (not the job's counters).

Stages covered (each writes Delta tables on the embedded engine, no other service):

* `landing`   landing files -> bronze.events (many small commits)
* `silver`    bronze.events -> silver.events + silver.quarantine_events (many chunks)
* `optimize`  OPTIMIZE (compaction) of bronze.events
* `vacuum`    VACUUM (retention 0) of bronze.events after a compaction

Concurrent writers (on a lake whose bronze holds more than silver has taken):

* `race-silver`    two silver runs at once
* `race-optimize`  a silver run racing OPTIMIZE of silver.events
* `race-vacuum`    a silver run racing OPTIMIZE + VACUUM (retention 0) of silver.events
* `race-landing`   two landing ingests at once, bronze.events existing, half the files to do
* `race-landing-new`  two landing ingests at once on a lake without bronze.events: both find it
                   absent and create it

A full disk: `diskfull-landing`, `diskfull-silver` run the stage with a random limit on the size
of any file it writes (RLIMIT_FSIZE, 8 KiB - 512 KiB): it stops with an error or fits; its
tables must stay readable, and a rerun without the limit must reach the uninterrupted result.

Against the suite's own PostgreSQL (started on a free port, the generator's source loaded):

* `postgres`          PostgreSQL -> bronze.customers/products/orders/order_items (SIGKILL)
* `scd2`              bronze -> silver.dim_customer, silver.dim_product (SIGKILL)
* `current-state`     bronze -> silver.orders, silver.order_items (SIGKILL)
* `restart-postgres`  the PostgreSQL server SIGKILLed during an extraction, started again

With a service of their own (bench/chaos_services.py; the suite starts Apache Kafka, SeaweedFS
and PostgreSQL on free ports):

* `kafka`               Kafka -> bronze.events (drain the topic) SIGKILLed
* `speed`               the speed layer (drain -> PostgreSQL realtime.*) SIGKILLed
* `restart-kafka`       the Kafka broker SIGKILLed while Kafka -> bronze drains, started again
* `restart-s3-landing`  the S3 server SIGKILLed while landing runs on an s3:// lake, started again
* `restart-s3-silver`   the same while silver runs

The gold layer (bench/chaos_gold.py; against the suite's PostgreSQL):

* `gold-build`    dbt build of the gold marts + their Delta export SIGKILLed (process group)
* `gold-publish`  publication to PostgreSQL gold SIGKILLed; right after the kill gold must be the
                  previous publication or the new one whole (the publisher's atomic swap)

The Spark jobs (bench/chaos_spark.py; `lakehouse spark ...` killed with its JVM, every input lake
written by Spark, the owner and the watermarks compared too): `spark-landing`, `spark-postgres`,
`spark-silver`, `spark-scd2-current`, `spark-backfill`, `spark-optimize`, `spark-vacuum`.

Not covered here yet: the local tansu broker (the
Kafka trials run against Apache Kafka; tests/test_streaming_exactly_once.py runs both brokers).

Per trial: a copy of the stage's input lake; the stage in a subprocess, killed with SIGKILL at a
uniformly random moment of its measured run time (after its imports); the stage once more to the
end; then per table the rows lost, rows duplicated (by the rows' source identity) and whether
DuckDB can read the table. Results: a table on the console and <state>/chaos/report.md.

    python -m bench.chaos [--trials 50] [--stages landing,silver,race-silver,diskfull-silver,...] [--seed 1]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

STAGES = ("landing", "silver", "optimize", "vacuum")
# concurrent writers of silver: the silver run and what races it, on the "race" input lake
RACES = {
    "race-silver": "silver",  # two silver runs at once
    "race-optimize": "optimize-silver",  # silver racing OPTIMIZE of silver.events
    "race-vacuum": "vacuum-silver",  # silver racing OPTIMIZE + VACUUM (retention 0) of silver.events
    "race-landing": "landing",  # two landing ingests at once onto an existing bronze.events
    "race-landing-new": "landing",  # ... onto a lake where bronze.events does not exist yet
}
# the stage each race reruns and compares (default silver); its input lake is inputs[scenario],
# else "race"
RACE_STAGE = {"race-landing": "landing", "race-landing-new": "landing"}
# a stage whose files may not grow past a random size (a full disk), then rerun without limit
DISK_FULL = {"diskfull-landing": "landing", "diskfull-silver": "silver"}
# stages reading the PostgreSQL source or the bronze tables extracted from it; the suite starts
# its own PostgreSQL (free port) for them. `restart-postgres` SIGKILLs the server (not the job)
# at a random moment of an extraction, starts it again and reruns the extraction.
PG_STAGES = ("postgres", "scd2", "current-state")
SERVICE_RESTARTS = ("restart-postgres",)
# stages with a service of their own (a Kafka broker, an S3 server): bench/chaos_services.py
SERVICE_STAGES = ("kafka", "speed", "restart-kafka", "restart-s3-landing", "restart-s3-silver")
# the gold layer's stages (bench/chaos_gold.py), against the suite's PostgreSQL
GOLD_STAGES = ("gold-build", "gold-publish")
# the Spark jobs (`lakehouse spark ...`) killed with their JVM: bench/chaos_spark.py
SPARK_STAGES = (
    "spark-landing",
    "spark-postgres",
    "spark-silver",
    "spark-scd2-current",
    "spark-backfill",
    "spark-optimize",
    "spark-vacuum",
)
SCENARIOS = (
    *STAGES,
    *PG_STAGES,
    *RACES,
    *DISK_FULL,
    *SERVICE_RESTARTS,
    *SERVICE_STAGES,
    *GOLD_STAGES,
    *SPARK_STAGES,
)
_PG_KEYS = {
    "customers": ("customer_id",),
    "products": ("product_id",),
    "orders": ("order_id",),
    "order_items": ("order_id", "line_no"),
}


def _concat(*exprs: str) -> str:
    return " || ':' || ".join(f"coalesce(CAST({e} AS VARCHAR), '-')" for e in exprs)


IDENTITY_PG = {
    **{f"bronze.{t}": _concat(*k, "updated_at", "_row_hash") for t, k in _PG_KEYS.items()},
    "silver.dim_customer": _concat("version_key", "valid_to", "is_current"),
    "silver.dim_product": _concat("version_key", "valid_to", "is_current"),
    "silver.orders": _concat("order_id", "updated_at"),
    "silver.order_items": _concat("order_id", "line_no", "updated_at"),
}
# Rows are told apart by where they came from, never by the job's own ids.
IDENTITY = {
    "bronze.events": "source_file || ':' || source_line",
    "silver.events": "event_id || ':' || payload_hash",
    "silver.quarantine_events": "source_file || ':' || source_line",
}
TABLES = {
    "landing": ("bronze.events",),
    "silver": ("silver.events", "silver.quarantine_events"),
    "optimize": ("bronze.events",),
    "vacuum": ("bronze.events",),
    **{r: ("silver.events", "silver.quarantine_events") for r in RACES},
    "race-landing": ("bronze.events",),
    "race-landing-new": ("bronze.events",),
    "diskfull-landing": ("bronze.events",),
    "diskfull-silver": ("silver.events", "silver.quarantine_events"),
    "postgres": tuple(f"bronze.{t}" for t in _PG_KEYS),
    "restart-postgres": tuple(f"bronze.{t}" for t in _PG_KEYS),
    "scd2": ("silver.dim_customer", "silver.dim_product"),
    "current-state": ("silver.orders", "silver.order_items"),
}
EVENTS = 6000
FILES = 12


def _settings(lake: Path | str, state: Path) -> Any:
    from bench import chaos_services
    from lakehouse.core.settings import load_settings

    return load_settings(
        "local",
        overrides={
            "lake_root": str(lake),
            "state_dir": str(state),
            "generator.events": EVENTS,
            "generator.event_files": FILES,
            "bronze.max_rows_per_commit": 500,
            "silver.chunk_rows": 700,
            "maintenance.vacuum_retention_hours": 0,
            "maintenance.enforce_retention_duration": "false",
            "generator.customers": 400,
            "generator.products": 60,
            "generator.orders": 1500,
            **({"postgres.port": int(os.environ[PG_PORT_ENV])} if PG_PORT_ENV in os.environ else {}),
            **chaos_services.overrides(),
        },
    )


PG_PORT_ENV = "LAKEHOUSE_CHAOS_PG_PORT"


def run_stage(stage: str, lake: Path | str, state: Path) -> None:
    """The stage itself, as the worker process and the rerun run it."""
    from lakehouse.bronze import landing
    from lakehouse.core.reconcile import new_run_id
    from lakehouse.core.storage import Lake
    from lakehouse.maintenance import ops
    from lakehouse.silver import events

    settings = _settings(lake, state)
    target = Lake(settings)
    if stage == "landing":
        landing.ingest(target, new_run_id(), settings.bronze.max_rows_per_commit)
    elif stage == "silver":
        events.run(target, settings.silver, new_run_id())
    elif stage == "optimize":
        ops.optimize(target, settings.maintenance, "bronze.events", zorder=False)
    elif stage == "vacuum":
        ops.vacuum(target, settings.maintenance, "bronze.events")
    elif stage in ("postgres", "restart-postgres"):
        from lakehouse.bronze import postgres_extract

        postgres_extract.extract_all(target, settings.postgres.source_dsn, new_run_id(), 120)
    elif stage == "scd2":
        from lakehouse.silver import scd2

        for dim in scd2.DIMENSIONS:
            scd2.apply(target, dim, new_run_id())
    elif stage == "current-state":
        from lakehouse.silver import current_state

        for table in current_state.TABLES:
            current_state.apply(target, table, new_run_id())
    elif stage in ("kafka", "speed"):
        from bench import chaos_services

        chaos_services.run_stage(stage, settings)
    elif stage == "optimize-silver":
        ops.optimize(target, settings.maintenance, "silver.events", zorder=False)
    elif stage == "vacuum-silver":
        ops.optimize(target, settings.maintenance, "silver.events", zorder=False)
        ops.vacuum(target, settings.maintenance, "silver.events")
    elif stage in GOLD_STAGES:
        from bench import chaos_gold

        chaos_gold.run_stage(stage, Path(lake), state)
    else:
        raise SystemExit(f"unknown stage {stage}")


def start_postgres(base: Path) -> Any:
    """The suite's own PostgreSQL on a free port, with the generator's source loaded; the port
    goes to the workers through LAKEHOUSE_CHAOS_PG_PORT."""
    from lakehouse.generator import source_db
    from lakehouse.services.postgres import LocalPostgres
    from lakehouse.services.process import free_port

    os.environ[PG_PORT_ENV] = str(free_port())
    settings = _settings(base / "pg-lake", base / "state")
    pg = LocalPostgres.from_settings(settings)
    pg.start()
    source_db.load(settings.postgres.source_dsn, settings.generator)
    return pg


def prepare_postgres(base: Path, inputs: dict[str, Path]) -> None:
    """Inputs of the PostgreSQL stages: an empty lake (extraction), bronze extracted (SCD2,
    current state)."""
    from lakehouse.bronze import postgres_extract
    from lakehouse.core.reconcile import new_run_id
    from lakehouse.core.storage import Lake

    empty = base / "input-postgres"
    empty.mkdir()
    inputs["postgres"] = inputs["restart-postgres"] = empty
    extracted = base / "input-pg-bronze"
    s = _settings(extracted, base / "state")
    postgres_extract.extract_all(Lake(s), s.postgres.source_dsn, new_run_id(), 120)
    inputs["scd2"] = inputs["current-state"] = extracted


def run_postgres_restart(
    scenario: str, trials: int, base: Path, inputs: dict[str, Path], rng: random.Random, pg: Any
) -> StageResult:
    """PostgreSQL SIGKILLed at a random moment of an extraction, started again; the extraction
    fails with an error or finishes; run again, bronze must equal an uninterrupted extraction."""
    state = base / "state"
    result = StageResult(scenario)
    reference, work_seconds = _reference("postgres", inputs[scenario], base)
    t0 = time.perf_counter()
    stops: dict[str, int] = {}
    for i in range(trials):
        lake = base / f"trial-{scenario}-{i}"
        shutil.copytree(inputs[scenario], lake)
        err = base / f"{scenario}-{i}.err"
        proc = _worker("postgres", lake, state, stderr=err)
        _wait_ready(proc)
        time.sleep(rng.uniform(0.0, work_seconds))
        pid = pg.status().pid
        if pid and proc.poll() is None:
            os.kill(pid, signal.SIGKILL)
            result.killed += 1
        if proc.wait() != 0:
            result.stopped += 1
            line = _last_line(err)
            stops[line] = stops.get(line, 0) + 1
        pg.start()
        _rerun(result, "postgres", lake, state, i)
        _check(result, lake, TABLES[scenario], reference)
        result.trials += 1
        shutil.rmtree(lake, ignore_errors=True)
    result.seconds = time.perf_counter() - t0
    result.notes.insert(0, f"PostgreSQL SIGKILLed during an extraction of {work_seconds:.2f} s, restarted")
    result.notes += [f"{n}x stopped: {line}" for line, n in stops.items()]
    return result


def prepare(base: Path) -> dict[str, Path]:
    """The input lake of every stage (landing files only; bronze; bronze in many small commits;
    bronze compacted but not vacuumed), and the reference result of each stage run whole."""
    from lakehouse.app import jobs
    from lakehouse.bronze import landing
    from lakehouse.core.reconcile import new_run_id
    from lakehouse.core.storage import Lake
    from lakehouse.maintenance import ops

    state = base / "state"
    inputs = {s: base / f"input-{s}" for s in STAGES}
    settings = _settings(inputs["landing"], state)
    jobs.generate_events(Lake(settings), settings)
    shutil.copytree(inputs["landing"], inputs["silver"])
    s = _settings(inputs["silver"], state)
    landing.ingest(Lake(s), new_run_id(), s.bronze.max_rows_per_commit)
    shutil.copytree(inputs["silver"], inputs["optimize"])
    shutil.copytree(inputs["silver"], inputs["vacuum"])
    s = _settings(inputs["vacuum"], state)
    ops.optimize(Lake(s), s.maintenance, "bronze.events", zorder=False)
    inputs["race"] = _race_input(base, state)
    inputs["race-landing"] = base / "input-race-landing"
    inputs["race-landing-new"] = inputs["landing"]
    return inputs


def _race_input(base: Path, state: Path) -> Path:
    """A lake whose silver holds the first half of the events in many commits and whose bronze
    holds all of them: a silver run has work to do while OPTIMIZE / VACUUM of silver.events run."""
    from lakehouse.bronze import landing
    from lakehouse.core.reconcile import new_run_id
    from lakehouse.core.storage import Lake
    from lakehouse.silver import events

    lake = base / "input-race"
    shutil.copytree(base / "input-landing", lake)
    s = _settings(lake, state)
    target = Lake(s)
    folder = lake / "landing" / "events"
    files = sorted(p for p in folder.iterdir() if p.suffix == ".jsonl")
    aside = lake / "aside"
    aside.mkdir()
    for f in files[len(files) // 2 :]:
        f.rename(aside / f.name)
    landing.ingest(target, new_run_id(), s.bronze.max_rows_per_commit)
    events.run(target, s.silver, new_run_id())
    for f in aside.iterdir():
        f.rename(folder / f.name)
    aside.rmdir()
    # the landing race starts here: bronze.events exists and half the files are still to do
    shutil.copytree(lake, base / "input-race-landing")
    landing.ingest(target, new_run_id(), s.bronze.max_rows_per_commit)
    return lake


def contents(lake: Path, table: str) -> dict[str, int] | None:
    """Row identity -> how many times it is in `table`, read by DuckDB; None when unreadable."""
    import duckdb

    from lakehouse.core.storage import Lake

    layer, name = table.split(".")
    con = Lake(_settings(lake, lake.parent / "state")).duckdb()
    try:
        rows = con.execute(
            f"SELECT {IDENTITY.get(table) or IDENTITY_PG[table]} AS k, count(*) "
            f"FROM delta_scan('{lake}/{layer}/{name}') GROUP BY 1"
        ).fetchall()
        return {str(k): int(n) for k, n in rows}
    except duckdb.Error:
        return None
    finally:
        con.close()


def compare(want: dict[str, int], got: dict[str, int]) -> tuple[int, int]:
    """(rows lost, rows duplicated) of `got` against the uninterrupted run's `want`."""
    lost = sum(n - got.get(k, 0) for k, n in want.items() if got.get(k, 0) < n)
    duplicated = sum(n - want.get(k, 0) for k, n in got.items() if n > want.get(k, 0))
    return lost, duplicated


@dataclass
class StageResult:
    stage: str
    trials: int = 0
    killed: int = 0  # trials whose worker was still running when the signal came
    lost: int = 0
    duplicated: int = 0
    unreadable: int = 0
    rerun_failed: int = 0
    stopped: int = 0  # writers that stopped with an error (a lost race, a full disk)
    restart_failed: int = 0  # a killed server that did not start again (ends the stage)
    mixed: int = 0  # published data seen as neither the previous nor the new publication whole
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)


def _worker(
    stage: str,
    lake: Path | str,
    state: Path,
    *,
    max_file_bytes: int | None = None,
    stderr: Path | None = None,
    own_group: bool = False,
) -> subprocess.Popen[bytes]:
    """The stage in a child process. `max_file_bytes`: no file the child writes may grow past it
    (RLIMIT_FSIZE: the write fails with EFBIG, as on a full disk; SIGXFSZ is ignored so the
    error reaches the writer instead of killing the child). `own_group`: in a process group of
    its own, so one SIGKILL of the group reaches the children it starts (dbt's runner)."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")

    def limit() -> None:
        if max_file_bytes is not None:
            import resource

            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
            resource.setrlimit(resource.RLIMIT_FSIZE, (max_file_bytes, max_file_bytes))

    err = stderr.open("wb") if stderr is not None else subprocess.DEVNULL
    try:
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bench.chaos",
                "--worker",
                stage,
                "--lake",
                str(lake),
                "--state",
                str(state),
            ],
            cwd=Path(__file__).resolve().parents[1],
            stdout=subprocess.PIPE,
            stderr=err,
            env=env,
            preexec_fn=limit if max_file_bytes is not None else None,
            start_new_session=own_group,
        )
    finally:
        if stderr is not None and not isinstance(err, int):
            err.close()


def _last_line(path: Path) -> str:
    lines = [ln for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
    return lines[-1][:200] if lines else "(nothing on stderr)"


def _wait_ready(proc: subprocess.Popen[bytes]) -> float:
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if line.strip() != b"ready":
        raise RuntimeError(f"worker did not start: {line!r}")
    return time.perf_counter()


def run_trials(
    stage: str, trials: int, base: Path, inputs: dict[str, Path], rng: random.Random
) -> StageResult:
    state = base / "state"
    result = StageResult(stage)
    reference_lake = base / f"reference-{stage}"
    shutil.copytree(inputs[stage], reference_lake)
    proc = _worker(stage, reference_lake, state)
    started = _wait_ready(proc)
    proc.wait()
    work_seconds = max(0.05, time.perf_counter() - started)
    reference = {t: contents(reference_lake, t) for t in TABLES[stage]}
    if any(v is None for v in reference.values()):
        raise RuntimeError(f"{stage}: the uninterrupted run left an unreadable table")
    t0 = time.perf_counter()
    for i in range(trials):
        lake = base / f"trial-{stage}-{i}"
        shutil.copytree(inputs[stage], lake)
        proc = _worker(stage, lake, state)
        _wait_ready(proc)
        time.sleep(rng.uniform(0.0, work_seconds))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            result.killed += 1
        proc.wait()
        try:
            run_stage(stage, lake, state)
        except Exception as exc:  # the rerun must complete: record, do not stop the suite
            result.rerun_failed += 1
            result.notes.append(f"trial {i}: rerun failed: {type(exc).__name__}: {str(exc)[:200]}")
        for table in TABLES[stage]:
            got = contents(lake, table)
            want = reference[table]
            assert want is not None
            if got is None:
                result.unreadable += 1
                continue
            lost, duplicated = compare(want, got)
            result.lost += lost
            result.duplicated += duplicated
        result.trials += 1
        shutil.rmtree(lake, ignore_errors=True)
    result.seconds = time.perf_counter() - t0
    result.notes.insert(0, f"uninterrupted run {work_seconds:.2f} s; kill moment uniform over it")
    return result


def _reference(stage: str, source: Path, base: Path) -> tuple[dict[str, dict[str, int] | None], float]:
    """The tables of `stage` run whole on a copy of `source`, and how long it ran."""
    lake = base / f"reference-{stage}-{source.name}"
    if not lake.exists():
        shutil.copytree(source, lake)
    state = base / "state"
    proc = _worker(stage, lake, state)
    started = _wait_ready(proc)
    proc.wait()
    seconds = max(0.05, time.perf_counter() - started)
    return {t: contents(lake, t) for t in TABLES[stage]}, seconds


def _check(result: StageResult, lake: Path, tables: tuple[str, ...], reference: dict[str, Any]) -> None:
    for table in tables:
        got = contents(lake, table)
        want = reference[table]
        if got is None:
            result.unreadable += 1
            continue
        lost, duplicated = compare(want, got)
        result.lost += lost
        result.duplicated += duplicated


def _rerun(result: StageResult, stage: str, lake: Path, state: Path, i: int) -> None:
    try:
        run_stage(stage, lake, state)
    except Exception as exc:  # the rerun must complete: record, do not stop the suite
        result.rerun_failed += 1
        result.notes.append(f"trial {i}: rerun failed: {type(exc).__name__}: {str(exc)[:200]}")


def run_race(scenario: str, trials: int, base: Path, inputs: dict[str, Path]) -> StageResult:
    """Two writers at once: silver (or RACE_STAGE's) and RACES[scenario]; then it once more. Each
    writer either commits or stops with an error (counted, its last line kept); no commit may be
    lost and the tables must equal a lone silver run's."""
    state = base / "state"
    result = StageResult(scenario)
    main = RACE_STAGE.get(scenario, "silver")
    source = inputs.get(scenario, inputs["race"])
    reference, _ = _reference(main, source, base)
    t0 = time.perf_counter()
    stops: dict[str, int] = {}
    for i in range(trials):
        lake = base / f"trial-{scenario}-{i}"
        shutil.copytree(source, lake)
        errs = [base / f"{scenario}-{i}-{n}.err" for n in range(2)]
        procs = [
            _worker(stage, lake, state, stderr=err)
            for stage, err in zip((main, RACES[scenario]), errs, strict=True)
        ]
        for proc in procs:
            _wait_ready(proc)
        for proc, err in zip(procs, errs, strict=True):
            if proc.wait() != 0:
                result.stopped += 1
                line = _last_line(err)
                stops[line] = stops.get(line, 0) + 1
        _rerun(result, main, lake, state, i)
        _check(result, lake, TABLES[scenario], reference)
        result.trials += 1
        shutil.rmtree(lake, ignore_errors=True)
    result.seconds = time.perf_counter() - t0
    result.notes.insert(0, f"{main} against {RACES[scenario]}, started together")
    result.notes += [f"{n}x stopped: {line}" for line, n in stops.items()]
    return result


def run_disk_full(
    scenario: str, trials: int, base: Path, inputs: dict[str, Path], rng: random.Random
) -> StageResult:
    """The stage with a random file-size limit (8 KiB - 512 KiB): it stops with an error (or fits);
    the tables must stay readable; the rerun without limit must reach the uninterrupted result."""
    state = base / "state"
    stage = DISK_FULL[scenario]
    result = StageResult(scenario)
    reference, _ = _reference(stage, inputs[stage], base)
    t0 = time.perf_counter()
    stops: dict[str, int] = {}
    for i in range(trials):
        lake = base / f"trial-{scenario}-{i}"
        shutil.copytree(inputs[stage], lake)
        err = base / f"{scenario}-{i}.err"
        proc = _worker(stage, lake, state, max_file_bytes=rng.randint(8 << 10, 512 << 10), stderr=err)
        _wait_ready(proc)
        if proc.wait() != 0:
            result.stopped += 1
            line = _last_line(err)
            stops[line] = stops.get(line, 0) + 1
        for table in TABLES[scenario]:
            log = lake / table.replace(".", "/") / "_delta_log"
            created = log.exists() and any(log.glob("*.json"))
            if created and contents(lake, table) is None:
                result.unreadable += 1
                result.notes.append(f"trial {i}: {table} unreadable after the full disk")
        _rerun(result, stage, lake, state, i)
        _check(result, lake, TABLES[scenario], reference)
        result.trials += 1
        shutil.rmtree(lake, ignore_errors=True)
    result.seconds = time.perf_counter() - t0
    result.notes.insert(0, f"{stage} with RLIMIT_FSIZE between 8 KiB and 512 KiB")
    result.notes += [f"{n}x stopped: {line}" for line, n in stops.items()]
    return result


def report(results: list[StageResult], path: Path) -> str:
    lines = [
        "# Fault suite: SIGKILL at a random moment, rerun, compare with an uninterrupted run",
        "",
        f"Run {datetime.now(UTC):%Y-%m-%d %H:%M} UTC. Rows are compared by source identity through "
        "DuckDB's delta_scan.",
        "",
        "| stage | trials | killed mid-run | rows lost | rows duplicated | unreadable tables | rerun failed "
        "| writers stopped | seconds |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in results:
        lines.append(
            f"| {r.stage} | {r.trials} | {r.killed} | {r.lost} | {r.duplicated} | {r.unreadable} | "
            f"{r.rerun_failed} | {r.stopped} | {r.seconds:.0f} |"
        )
    lines += ["", "Stages covered: " + ", ".join(r.stage for r in results) + ".", ""]
    lines += [
        "Not covered: " + __doc__.split("Not covered here yet: ")[1].split("\n\n")[0].replace("\n", " "),
        "",
    ]
    for r in results:
        lines += [f"- {r.stage}: " + "; ".join(r.notes)]
    text = "\n".join(lines) + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return text


def suite(
    trials: int,
    stages: list[str],
    out: Path,
    seed: int = 1,
    on_stage: Callable[[StageResult], None] | None = None,
) -> list[StageResult]:
    rng = random.Random(seed)
    from bench import chaos_services

    pg_stages = {*PG_STAGES, *SERVICE_RESTARTS, "kafka", "speed", "restart-kafka", *GOLD_STAGES}
    pg_stages |= {"spark-postgres", "spark-scd2-current"}
    chaos_services.preflight(stages, bool(set(stages) & pg_stages), bool(set(stages) & set(GOLD_STAGES)))
    if set(stages) & set(SPARK_STAGES):
        from bench import chaos_spark

        chaos_spark.preflight()
    with tempfile.TemporaryDirectory(prefix="chaos-") as tmp:
        base = Path(tmp)
        inputs = prepare(base)

        pg = None
        services = chaos_services.Services(keep=out.parent)
        results = []
        try:
            # the speed layer writes to PostgreSQL, and Kafka -> bronze records its lag there
            if set(stages) & pg_stages:
                pg = start_postgres(base)
                prepare_postgres(base, inputs)
            if set(stages) & set(GOLD_STAGES):
                from bench import chaos_gold

                chaos_gold.prepare(base, inputs)
            services.start(stages, base)
            results = _run_all(stages, trials, base, inputs, rng, pg, on_stage, services)
        finally:
            services.stop()
            if pg is not None:
                pg.stop()
                os.environ.pop(PG_PORT_ENV, None)
    report(results, out)
    return results


def _run_all(
    stages: list[str],
    trials: int,
    base: Path,
    inputs: dict[str, Path],
    rng: random.Random,
    pg: Any,
    on_stage: Callable[[StageResult], None] | None,
    services: Any = None,
) -> list[StageResult]:
    from bench import chaos_services, chaos_spark

    results = []
    for stage in stages:
        if stage in SPARK_STAGES:
            r = chaos_spark.run(stage, trials, base, inputs, rng, stages)
        elif stage in SERVICE_STAGES:
            r = chaos_services.run(stage, trials, base, inputs, rng, services)
        elif stage in GOLD_STAGES:
            from bench import chaos_gold

            r = chaos_gold.run(stage, trials, base, inputs, rng)
        elif stage in SERVICE_RESTARTS:
            r = run_postgres_restart(stage, trials, base, inputs, rng, pg)
        elif stage in RACES:
            r = run_race(stage, trials, base, inputs)
        elif stage in DISK_FULL:
            r = run_disk_full(stage, trials, base, inputs, rng)
        else:
            r = run_trials(stage, trials, base, inputs, rng)
        results.append(r)
        if on_stage:
            on_stage(r)
    return results


def one_line(exc: BaseException) -> str:
    """The suite's own errors (RuntimeError) say what failed themselves; anything else is told
    as the command line tells it."""
    if type(exc) is RuntimeError:
        lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
        return lines[0] if lines else "RuntimeError"
    from lakehouse.app.cli.failures import describe

    return describe(exc)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=50)
    # the Spark stages start a JVM twice a trial: `make chaos-spark` runs them on their own
    default = [s for s in SCENARIOS if s not in SPARK_STAGES]
    parser.add_argument("--stages", default=",".join(default))
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", default=None)
    parser.add_argument(
        "--worker", choices=(*STAGES, *PG_STAGES, *RACES.values(), "kafka", "speed", *GOLD_STAGES)
    )
    parser.add_argument("--lake")
    parser.add_argument("--state")
    args = parser.parse_args()
    if args.worker:
        import lakehouse.bronze.landing
        import lakehouse.maintenance.ops
        import lakehouse.silver.events

        if args.worker in ("kafka", "speed"):
            import lakehouse.app.streaming
        if args.worker in GOLD_STAGES:
            import lakehouse.gold.build  # noqa: F401  (imported before "ready": the kill moment is over the work alone)

        print("ready", flush=True)
        # the lake as given: an s3:// URI is no local path
        run_stage(args.worker, args.lake if "://" in args.lake else Path(args.lake), Path(args.state))
        return
    stages = [s for s in args.stages.split(",") if s]
    unknown = sorted(set(stages) - set(SCENARIOS))
    if unknown:
        raise SystemExit(f"unknown stage(s) {', '.join(unknown)}; choose from {', '.join(SCENARIOS)}")
    from lakehouse.core.settings import load_settings

    out = Path(args.out) if args.out else load_settings("local").state_path / "chaos" / "report.md"
    try:
        results = suite(
            args.trials, stages, out, args.seed, on_stage=lambda r: print(json.dumps(r.__dict__), flush=True)
        )
    except Exception as exc:  # a set-up failure (a missing jar cache, a service that did not start)
        if os.environ.get("LAKEHOUSE_DEBUG", "").strip() not in ("", "0", "false"):
            raise
        raise SystemExit(f"chaos: error: {one_line(exc)} (LAKEHOUSE_DEBUG=1 shows the traceback)") from None
    print(report(results, out))
    print(f"report: {out}")
    if any(
        r.lost or r.duplicated or r.unreadable or r.rerun_failed or r.restart_failed or r.mixed
        for r in results
    ):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
