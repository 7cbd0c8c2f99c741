"""Fault-suite stages on the distributed engine: each Spark job (`python -m lakehouse spark ...`)
SIGKILLed at a random moment, run again to the end, its tables compared with an uninterrupted
Spark run as `bench.chaos` compares the embedded stages (rows lost, duplicated, tables DuckDB
cannot read), and two things only a Spark writer can get wrong: the table's owner
(`lakehouse.engine`) stays spark, and every app transaction (the watermarks) equals the
uninterrupted run's.

* `spark-landing`       landing files -> bronze.events (`spark bronze`)
* `spark-postgres`      PostgreSQL (the suite's own) -> bronze.<4 tables> over JDBC
                        (`spark bronze --source postgres`)
* `spark-silver`        bronze.events -> silver.events + silver.quarantine_events (`spark silver`)
* `spark-scd2-current`  `spark silver` on a lake whose silver.events is done and whose
                        PostgreSQL bronze is new: the job writes silver.dim_customer/dim_product
                        and silver.orders/order_items (the same job writes events and these)
* `spark-backfill`      `spark backfill` over every event date of silver
* `spark-optimize`      `spark optimize bronze.events` (compaction of many small commits)
* `spark-vacuum`        `spark vacuum bronze.events --retention-hours 0` after a compaction

Each job runs in its own process group (start_new_session), so the SIGKILL of the group takes
the driver's JVM with it, as losing a driver pod would. The kill moment is uniform over the
uninterrupted run's wall time, JVM start included. Every input lake is written by Spark itself
(the tables are Spark's from their first commit): the landing files of `bench.chaos`, then each
stage's uninterrupted run is the next one's input.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import chaos

# scenario -> (the CLI's arguments after `lakehouse spark`, its input lake, the tables compared)
JOBS: dict[str, tuple[tuple[str, ...], str, tuple[str, ...]]] = {
    "spark-landing": (("bronze", "--source", "events"), "landing", ("bronze.events",)),
    "spark-postgres": (
        ("bronze", "--source", "postgres"),
        "empty",
        tuple(f"bronze.{t}" for t in chaos._PG_KEYS),
    ),
    "spark-silver": (("silver",), "spark-bronze", ("silver.events", "silver.quarantine_events")),
    "spark-scd2-current": (
        ("silver",),
        "spark-silver-done",
        ("silver.dim_customer", "silver.dim_product", "silver.orders", "silver.order_items"),
    ),
    "spark-backfill": (("backfill",), "spark-silver", ("silver.events", "silver.quarantine_events")),
    "spark-optimize": (("optimize", "bronze.events", "--no-zorder"), "spark-bronze", ("bronze.events",)),
    "spark-vacuum": (
        ("vacuum", "bronze.events", "--retention-hours", "0"),
        "spark-optimized",
        ("bronze.events",),
    ),
}
SCENARIOS = tuple(JOBS)
# the stages that read the suite's PostgreSQL (it is started for them)
NEEDS_POSTGRES = ("spark-postgres", "spark-scd2-current")
# a job still running this long is stuck: killed, its rerun counted as failed (the silver job
# alone ran for more than 15 minutes on the 2-core machine under the load of other jobs)
JOB_TIMEOUT = 3600.0
TIMED_OUT = -1000  # run_job's exit code for a job killed by JOB_TIMEOUT
REPO = Path(__file__).resolve().parents[2]


@dataclass
class SparkResult(chaos.StageResult):
    killed_after_commit: int = 0  # kills that came after the job's first commit to the lake
    owner_changed: int = 0  # tables whose lakehouse.engine was not spark after the rerun
    watermarks_differ: int = 0  # tables whose app transactions differ from the uninterrupted run's
    details: list[str] = field(default_factory=list)


def sets(lake: Path, state: Path) -> list[str]:
    """`--set` arguments giving the CLI the suite's settings (`bench.chaos._settings`, but for
    silver's chunk)."""
    values: dict[str, Any] = {
        "lake_root": str(lake),
        "state_dir": str(state),
        "generator.events": chaos.EVENTS,
        "generator.event_files": chaos.FILES,
        "bronze.max_rows_per_commit": 500,
        # 3 chunks of silver, not the embedded stages' 9: each Spark chunk is a job of its own
        # (more than a minute of a loaded 2-core machine), and 3 still leave commits to die between
        "silver.chunk_rows": 2000,
        "maintenance.vacuum_retention_hours": 0,
        "maintenance.enforce_retention_duration": "false",
        "generator.customers": 400,
        "generator.products": 60,
        "generator.orders": 1500,
    }
    # the suite's PostgreSQL, else a port nothing listens on: the reconciliation a job publishes
    # must not reach a server the suite did not start
    values["postgres.port"] = int(os.environ.get(chaos.PG_PORT_ENV) or _closed_port())
    out: list[str] = []
    for key, value in values.items():
        out += ["--set", f"{key}={value}"]
    return out


def preflight() -> None:
    """A Java and the Spark jar bundle, looked for before any work (JvmError, one line)."""
    from lakehouse.core.jvm import find_java
    from lakehouse.core.spark import spark_bundle

    find_java()
    spark_bundle()


_CLOSED_PORT: list[int] = []


def _closed_port() -> int:
    if not _CLOSED_PORT:
        from lakehouse.services.process import free_port

        _CLOSED_PORT.append(free_port())
    return _CLOSED_PORT[0]


def start_job(args: tuple[str, ...], lake: Path, state: Path, err: Path) -> subprocess.Popen[bytes]:
    """`lakehouse spark <args>` in a process group of its own (the JVM is a child of it)."""
    with err.open("wb") as stderr:
        return subprocess.Popen(
            [sys.executable, "-m", "lakehouse", "spark", *args, *sets(lake, state)],
            cwd=REPO,
            env=dict(os.environ, PYTHONUNBUFFERED="1"),
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            start_new_session=True,
        )


def kill_group(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)


def run_job(args: tuple[str, ...], lake: Path, state: Path, err: Path) -> tuple[int, float]:
    """The job to the end: (exit code, seconds); a stuck job is killed (exit code -9)."""
    t0 = time.perf_counter()
    proc = start_job(args, lake, state, err)
    try:
        code = proc.wait(timeout=JOB_TIMEOUT)
    except subprocess.TimeoutExpired:
        kill_group(proc)
        proc.wait()
        code = TIMED_OUT
    finally:
        # the group's leftovers (a JVM whose driver died first) go too
        kill_group(proc)
    return code, time.perf_counter() - t0


def watermarks(lake: Path, table: str) -> dict[str, int | None]:
    """Every app transaction of `table`: app id (from the log's commits) -> its last version
    (delta-rs, which reads checkpoints too)."""
    from lakehouse.core import delta
    from lakehouse.core.storage import Lake

    log = lake / table.replace(".", "/") / "_delta_log"
    apps: set[str] = set()
    for commit in log.glob("*.json"):
        for line in commit.read_text().splitlines():
            if line.startswith('{"txn"'):
                apps.add(json.loads(line)["txn"]["appId"])
    target = Lake(chaos._settings(lake, lake.parent / "state"))
    return {app: delta.txn_version(target, table, app) for app in sorted(apps)}


def owner(lake: Path, table: str) -> str | None:
    from lakehouse.core import ownership
    from lakehouse.core.storage import Lake

    return ownership.owner(Lake(chaos._settings(lake, lake.parent / "state")), table)


def _commits(lake: Path, tables: tuple[str, ...]) -> int:
    return sum(len(list((lake / t.replace(".", "/") / "_delta_log").glob("*.json"))) for t in tables)


def _job_args(stage: str, lake: Path) -> tuple[str, ...]:
    args = JOBS[stage][0]
    if stage == "spark-backfill":
        first, last = event_dates(lake)
        args = (*args, "--from", first, "--to", last)
    return args


def event_dates(lake: Path) -> tuple[str, str]:
    """The first and last event date of silver.events (the backfill's range)."""
    from lakehouse.core.storage import Lake

    con = Lake(chaos._settings(lake, lake.parent / "state")).duckdb()
    try:
        first, last = con.execute(
            f"SELECT min(event_date), max(event_date) FROM delta_scan('{lake}/silver/events')"
        ).fetchone() or (None, None)
    finally:
        con.close()
    if first is None:
        raise RuntimeError("silver.events holds no event date: nothing to backfill")
    return str(first), str(last)


def _must(code: int, err: Path, what: str) -> None:
    if code == TIMED_OUT:
        raise RuntimeError(f"{what} did not finish in {JOB_TIMEOUT:.0f} s")
    if code != 0:
        raise RuntimeError(f"{what} failed (exit {code}): {chaos._last_line(err)}")


def prepare(base: Path, inputs: dict[str, Path], stages: list[str]) -> dict[str, float]:
    """The Spark stages' input lakes, each written by the uninterrupted Spark run of the stage
    before it, and every chosen stage's uninterrupted run (its reference lake, `reference-<stage>`).
    Returns the seconds of each reference run."""
    state = base / "state"
    inputs["empty"] = base / "input-spark-empty"
    inputs["empty"].mkdir(exist_ok=True)
    seconds: dict[str, float] = {}

    def reference(stage: str) -> Path:
        lake = base / f"reference-{stage}"
        if stage not in seconds:
            source = inputs[JOBS[stage][1]]
            shutil.copytree(source, lake)
            err = base / f"reference-{stage}.err"
            code, seconds[stage] = run_job(_job_args(stage, lake), lake, state, err)
            _must(code, err, f"the uninterrupted {stage} run")
        return lake

    needed = set(stages)
    chain = {
        "spark-silver": {"spark-landing"},
        "spark-optimize": {"spark-landing"},
        "spark-vacuum": {"spark-landing", "spark-optimize"},
        "spark-backfill": {"spark-landing", "spark-silver"},
        "spark-scd2-current": {"spark-landing", "spark-silver", "spark-postgres"},
    }
    for stage in list(needed):
        needed |= chain.get(stage, set())
    if "spark-landing" in needed:
        inputs["spark-bronze"] = reference("spark-landing")
    if "spark-optimize" in needed:
        inputs["spark-optimized"] = reference("spark-optimize")
    if "spark-silver" in needed:
        inputs["spark-silver"] = reference("spark-silver")
    if "spark-postgres" in needed:
        reference("spark-postgres")
    if "spark-scd2-current" in needed:
        # silver.events done, the PostgreSQL bronze tables new: the job's work is the dimensions
        # and the current-state tables
        lake = base / "input-spark-silver-done"
        shutil.copytree(inputs["spark-silver"], lake)
        for table in chaos._PG_KEYS:
            shutil.copytree(base / "reference-spark-postgres" / "bronze" / table, lake / "bronze" / table)
        for table in JOBS["spark-scd2-current"][2]:
            shutil.rmtree(lake / table.replace(".", "/"), ignore_errors=True)
        inputs["spark-silver-done"] = lake
    for stage in stages:
        reference(stage)
    return seconds


def _compare(result: SparkResult, lake: Path, reference: Path, tables: tuple[str, ...], i: int) -> None:
    for table in tables:
        want = chaos.contents(reference, table)
        got = chaos.contents(lake, table)
        assert want is not None
        if got is None:
            result.unreadable += 1
            result.details.append(f"trial {i}: {table} unreadable")
            continue
        lost, duplicated = chaos.compare(want, got)
        result.lost += lost
        result.duplicated += duplicated
        if lost or duplicated:
            result.details.append(f"trial {i}: {table} {lost} lost, {duplicated} duplicated")
        engine = owner(lake, table)
        if engine != "spark":
            result.owner_changed += 1
            result.details.append(f"trial {i}: {table} owned by {engine}")
        if watermarks(lake, table) != watermarks(reference, table):
            result.watermarks_differ += 1
            result.details.append(
                f"trial {i}: {table} watermarks {watermarks(lake, table)} != {watermarks(reference, table)}"
            )


# suite folder -> seconds of each uninterrupted Spark run prepared in it
_PREPARED: dict[Path, dict[str, float]] = {}


def run(
    stage: str, trials: int, base: Path, inputs: dict[str, Path], rng: random.Random, stages: list[str]
) -> SparkResult:
    """`trials` kills of `stage` at a uniformly random moment of its uninterrupted run, each
    followed by a rerun to the end and the comparison with the uninterrupted run. The first
    Spark stage of a suite prepares the inputs of all chosen ones (`stages`)."""
    if base not in _PREPARED:
        _PREPARED[base] = prepare(base, inputs, [s for s in stages if s in JOBS])
    args, source_key, tables = JOBS[stage]
    state = base / "state"
    reference = base / f"reference-{stage}"
    work = _PREPARED[base][stage]
    result = SparkResult(stage)
    t0 = time.perf_counter()
    for i in range(trials):
        lake = base / f"trial-{stage}-{i}"
        shutil.copytree(inputs[source_key], lake)
        before = _commits(lake, tables)
        err = base / f"{stage}-{i}.err"
        args = _job_args(stage, lake)
        proc = start_job(args, lake, state, err)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=rng.uniform(0.0, work))
        if proc.poll() is None:
            kill_group(proc)
            result.killed += 1
            if _commits(lake, tables) > before:
                result.killed_after_commit += 1
        else:
            kill_group(proc)
        proc.wait()
        code, _ = run_job(args, lake, state, err)
        if code != 0:
            result.rerun_failed += 1
            why = f"not done in {JOB_TIMEOUT:.0f} s" if code == TIMED_OUT else f"exit {code}"
            result.notes.append(f"trial {i}: rerun failed ({why}): {chaos._last_line(err)}")
        else:
            _compare(result, lake, reference, tables, i)
        result.trials += 1
        shutil.rmtree(lake, ignore_errors=True)
        # one line per trial: a long run's counts so far can be read before it ends
        print(json.dumps({"trial": i, **{k: v for k, v in vars(result).items() if k != "notes"}}), flush=True)
    result.seconds = time.perf_counter() - t0
    result.notes.insert(
        0,
        f"`lakehouse spark {' '.join(JOBS[stage][0])}`: uninterrupted run {work:.0f} s (JVM start included), "
        f"kill moment uniform over it; {result.killed_after_commit} of {result.killed} kills after "
        f"the job's first commit; owner not spark {result.owner_changed}x, watermarks differing "
        f"{result.watermarks_differ}x",
    )
    result.notes += result.details[:20]
    return result


def _add(total: SparkResult, one: SparkResult) -> None:
    for name in (
        "trials",
        "killed",
        "lost",
        "duplicated",
        "unreadable",
        "rerun_failed",
        "killed_after_commit",
        "owner_changed",
        "watermarks_differ",
    ):
        setattr(total, name, getattr(total, name) + getattr(one, name))
    total.seconds += one.seconds


def rounds(stages: list[str], until: float, out: Path, seed: int = 1) -> list[SparkResult]:
    """One trial of each stage in turn, round after round, until the clock passes `until` (a
    time.time()); a long run whose stages all get trials however early it must stop. The report
    is `bench.chaos`'s."""
    rng = random.Random(seed)
    import tempfile

    totals = {s: SparkResult(s) for s in stages}
    with tempfile.TemporaryDirectory(prefix="chaos-spark-") as tmp:
        base = Path(tmp)
        inputs = chaos.prepare(base)
        pg = None
        try:
            if set(stages) & set(NEEDS_POSTGRES):
                pg = chaos.start_postgres(base)
            while time.time() < until:
                for stage in stages:
                    if time.time() >= until:
                        break
                    one = run(stage, 1, base, inputs, rng, stages)
                    _add(totals[stage], one)
                    # the first note describes the stage; the others are this trial's findings
                    total = totals[stage]
                    total.notes = [one.notes[0], *total.notes[1:], *one.notes[1:]][:30]
        finally:
            if pg is not None:
                pg.stop()
                os.environ.pop(chaos.PG_PORT_ENV, None)
    results = list(totals.values())
    for r in results:
        head = r.notes[0].split("; ")[0] if r.notes else f"{r.stage}: no trial"
        r.notes[:1] = [
            head,
            f"{r.killed_after_commit} of {r.killed} kills after the job's first commit; owner not "
            f"spark {r.owner_changed}x, watermarks differing {r.watermarks_differ}x",
        ]
    chaos.report(results, out)
    return results


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser(description="The Spark stages of the fault suite, round after round")
    parser.add_argument("--stages", default=",".join(SCENARIOS))
    parser.add_argument("--minutes", type=float, required=True, help="start no trial after this")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    stages = [s for s in args.stages.split(",") if s]
    unknown = sorted(set(stages) - set(SCENARIOS))
    if unknown:
        raise SystemExit(f"unknown stage(s) {', '.join(unknown)}; choose from {', '.join(SCENARIOS)}")
    results = rounds(stages, time.time() + 60 * args.minutes, Path(args.out), args.seed)
    print(chaos.report(results, Path(args.out)))
    if any(r.lost or r.duplicated or r.unreadable or r.rerun_failed or r.owner_changed for r in results):
        raise SystemExit(1)
    if any(r.watermarks_differ for r in results):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
