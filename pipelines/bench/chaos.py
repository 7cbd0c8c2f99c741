"""Fault suite: SIGKILL a stage that writes at a random moment, run it again, and compare the lake
with an uninterrupted run, read back through DuckDB's delta_scan (not the job's counters).

Stages covered (each writes Delta tables on the embedded engine, no other service):

* `landing`   landing files -> bronze.events (many small commits)
* `silver`    bronze.events -> silver.events + silver.quarantine_events (many chunks)
* `optimize`  OPTIMIZE (compaction) of bronze.events
* `vacuum`    VACUUM (retention 0) of bronze.events after a compaction

Not covered here yet: PostgreSQL -> bronze, Kafka -> bronze and the speed layer (their SIGKILL
trials are in tests/test_streaming_exactly_once.py), SCD2, current state, gold build and publish,
the Spark jobs, service restarts, concurrent writers and a full disk.

Per trial: a copy of the stage's input lake; the stage in a subprocess, killed with SIGKILL at a
uniformly random moment of its measured run time (after its imports); the stage once more to the
end; then per table the rows lost, rows duplicated (by the rows' source identity) and whether
DuckDB can read the table. Results: a table on the console and <state>/chaos/report.md.

    python -m bench.chaos [--trials 50] [--stages landing,silver,optimize,vacuum] [--seed 1]
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
}
EVENTS = 6000
FILES = 12


def _settings(lake: Path, state: Path) -> Any:
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
        },
    )


def run_stage(stage: str, lake: Path, state: Path) -> None:
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
    else:
        raise SystemExit(f"unknown stage {stage}")


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
    return inputs


def contents(lake: Path, table: str) -> dict[str, int] | None:
    """Row identity -> how many times it is in `table`, read by DuckDB; None when unreadable."""
    import duckdb

    from lakehouse.core.storage import Lake

    layer, name = table.split(".")
    con = Lake(_settings(lake, lake.parent / "state")).duckdb()
    try:
        rows = con.execute(
            f"SELECT {IDENTITY[table]} AS k, count(*) FROM delta_scan('{lake}/{layer}/{name}') GROUP BY 1"
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
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)


def _worker(stage: str, lake: Path, state: Path) -> subprocess.Popen[bytes]:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    return subprocess.Popen(
        [sys.executable, "-m", "bench.chaos", "--worker", stage, "--lake", str(lake), "--state", str(state)],
        cwd=Path(__file__).resolve().parents[1],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=env,
    )


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


def report(results: list[StageResult], path: Path) -> str:
    lines = [
        "# Fault suite: SIGKILL at a random moment, rerun, compare with an uninterrupted run",
        "",
        f"Run {datetime.now(UTC):%Y-%m-%d %H:%M} UTC. Rows are compared by source identity through "
        "DuckDB's delta_scan.",
        "",
        "| stage | trials | killed mid-run | rows lost | rows duplicated | unreadable tables | rerun failed | seconds |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in results:
        lines.append(
            f"| {r.stage} | {r.trials} | {r.killed} | {r.lost} | {r.duplicated} | {r.unreadable} | "
            f"{r.rerun_failed} | {r.seconds:.0f} |"
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
    with tempfile.TemporaryDirectory(prefix="chaos-") as tmp:
        base = Path(tmp)
        inputs = prepare(base)
        results = []
        for stage in stages:
            r = run_trials(stage, trials, base, inputs, rng)
            results.append(r)
            if on_stage:
                on_stage(r)
    report(results, out)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=50)
    parser.add_argument("--stages", default=",".join(STAGES))
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", default=None)
    parser.add_argument("--worker", choices=STAGES)
    parser.add_argument("--lake")
    parser.add_argument("--state")
    args = parser.parse_args()
    if args.worker:
        import lakehouse.bronze.landing
        import lakehouse.maintenance.ops
        import lakehouse.silver.events  # noqa: F401

        print("ready", flush=True)
        run_stage(args.worker, Path(args.lake), Path(args.state))
        return
    stages = [s for s in args.stages.split(",") if s]
    unknown = sorted(set(stages) - set(STAGES))
    if unknown:
        raise SystemExit(f"unknown stage(s) {', '.join(unknown)}; choose from {', '.join(STAGES)}")
    from lakehouse.core.settings import load_settings

    out = Path(args.out) if args.out else load_settings("local").state_path / "chaos" / "report.md"
    results = suite(
        args.trials, stages, out, args.seed, on_stage=lambda r: print(json.dumps(r.__dict__), flush=True)
    )
    print(report(results, out))
    print(f"report: {out}")
    if any(r.lost or r.duplicated or r.unreadable or r.rerun_failed for r in results):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
