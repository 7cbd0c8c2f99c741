"""Fault-suite stages of the gold layer, against the suite's own PostgreSQL (free port):

* `gold-build`    `dbt build` of the gold marts over silver, then their export to the Delta tables
                  gold.<mart>, SIGKILLed at a random moment (the whole process group: the dbt
                  runner and its threads die with the job), built again to the end
* `gold-publish`  the publication of the built marts to PostgreSQL `gold` SIGKILLed at a random
                  moment, published again to the end

Every gold table is compared row for row with an uninterrupted run: each row's md5 over all its
columns (floating-point ones rounded to 9 digits: dbt's threads may sum in another order) counted
per table, so lost and repeated rows are both seen whatever the order. Left out are only the
columns that stamp the time of the build (TIME_COLUMNS). A table DuckDB (gold.<mart> Delta) or
psycopg (PostgreSQL gold.<mart>) cannot read counts as unreadable.

The publisher promises an atomic swap: readers see the previous complete set of marts or the new
one, never a mix (lakehouse.gold.publish). So before each `gold-publish` trial PostgreSQL `gold`
holds a previous publication (a build over a silver with fewer events); right after the kill,
once the killed publication's transaction is over (the suite waits for the publisher's advisory
lock), `gold` must equal that previous publication or the new one as a whole, every table in one
snapshot. A state equal to neither counts as mixed.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

from bench import chaos

GOLD_STAGES = ("gold-build", "gold-publish")
# columns that stamp the current time (dbt's `current_timestamp as updated_at`): they differ
# between any two builds, so the comparison leaves them out
TIME_COLUMNS = {
    "agg_purchases_per_page_daily": ("updated_at",),
    "agg_conversion_rate_daily": ("updated_at",),
    "agg_daily_active_users": ("updated_at",),
    "agg_events_per_source_daily": ("updated_at",),
    "rpt_executive_summary": ("updated_at",),
}
_FLOATS_DUCKDB = ("DOUBLE", "FLOAT", "REAL")
_FLOATS_PG = ("double precision", "real")
Contents = dict[str, dict[str, int] | None]


def run_stage(stage: str, lake: Path, state: Path) -> None:
    """The stage itself, in the worker process and the rerun."""
    from lakehouse.core.storage import Lake
    from lakehouse.gold import build, publish
    from lakehouse.gold.dbt import DbtProject

    settings = chaos._settings(lake, state)
    project = DbtProject.from_settings(settings)
    if stage == "gold-build":
        result = build.build(project, Lake(settings))
        if not result.ok:
            failed = [r.name for r in result.run.results if r.status in ("error", "fail")]
            raise RuntimeError(f"dbt build failed: {', '.join(failed[:5]) or result.run.output[-300:]}")
    elif stage == "gold-publish":
        publish.publish(project)
    else:
        raise SystemExit(f"unknown gold stage {stage}")


def prepare(base: Path, inputs: dict[str, Path]) -> None:
    """The gold stages' inputs: a lake whose silver holds the generator's events and the source's
    tables (`gold`); the same with fewer events, built (`gold-previous`: the publication a
    `gold-publish` trial replaces); and `gold` built (`gold-publish`: what is published)."""
    from lakehouse.app import jobs
    from lakehouse.core.reconcile import new_run_id
    from lakehouse.core.storage import Lake

    state = base / "state"
    lake = base / "input-gold"
    shutil.copytree(inputs["landing"], lake)
    s = chaos._settings(lake, state)
    target = Lake(s)
    run_id = new_run_id()
    jobs.bronze(target, s, run_id)
    jobs.silver(target, s, run_id)
    inputs["gold-build"] = lake
    previous = base / "input-gold-previous"
    shutil.copytree(lake, previous)
    Lake(chaos._settings(previous, state)).table("silver.events").delete("user_id % 2 = 0")
    run_stage("gold-build", previous, state)
    inputs["gold-previous"] = previous
    built = base / "input-gold-publish"
    shutil.copytree(lake, built)
    run_stage("gold-build", built, state)
    inputs["gold-publish"] = built


def _row_hash(
    columns: list[tuple[str, str]], floats: tuple[str, ...], cast: str, skip: tuple[str, ...]
) -> str:
    parts = []
    for name, typ in columns:
        if name in skip:
            continue
        col = f'"{name}"'
        if typ.lower() in (f.lower() for f in floats):
            col = f"round({col}{'::numeric' if cast == 'text' else ''}, 9)"
        parts.append(f"coalesce(CAST({col} AS {cast}), '\\N')")
    return f"md5(concat_ws('|', {', '.join(parts)}))"


def lake_contents(lake: Path) -> Contents:
    """gold.<mart> Delta tables: row md5 -> count, read by DuckDB; None when unreadable."""
    import duckdb

    from lakehouse.core.storage import Lake

    folder = lake / "gold"
    names = sorted(p.name for p in folder.iterdir() if p.is_dir()) if folder.exists() else []
    con = Lake(chaos._settings(lake, lake.parent / "state")).duckdb()
    out: Contents = {}
    try:
        for name in names:
            scan = f"delta_scan('{folder / name}')"
            try:
                cols = [
                    (str(r[0]), str(r[1])) for r in con.execute(f"DESCRIBE SELECT * FROM {scan}").fetchall()
                ]
                key = _row_hash(cols, _FLOATS_DUCKDB, "VARCHAR", TIME_COLUMNS.get(name, ()))
                rows = con.execute(f"SELECT {key}, count(*) FROM {scan} GROUP BY 1").fetchall()
                out[f"gold.{name}"] = {str(k): int(n) for k, n in rows}
            except duckdb.Error:
                out[f"gold.{name}"] = None
    finally:
        con.close()
    return out


def pg_contents(conn: Any) -> Contents:
    """PostgreSQL gold.*: row md5 -> count per table, all in the caller's transaction."""
    import psycopg

    cols: dict[str, list[tuple[str, str]]] = {}
    for table, col, typ in conn.execute(
        "SELECT table_name, column_name, data_type FROM information_schema.columns "
        "WHERE table_schema = 'gold' ORDER BY table_name, ordinal_position"
    ).fetchall():
        cols.setdefault(table, []).append((col, typ))
    out: Contents = {}
    for table, columns in cols.items():
        key = _row_hash(columns, _FLOATS_PG, "text", TIME_COLUMNS.get(table, ()))
        try:
            with conn.transaction():  # a savepoint: one unreadable table does not end the read
                rows = conn.execute(f'SELECT {key}, count(*) FROM gold."{table}" GROUP BY 1').fetchall()
            out[f"gold.{table}"] = {str(k): int(n) for k, n in rows}
        except psycopg.Error:
            out[f"gold.{table}"] = None
    return out


def published(dsn: str) -> Contents:
    """PostgreSQL gold as one snapshot, read once no publication is under way (the publisher's
    advisory lock, which a killed publisher's transaction holds until PostgreSQL ends it)."""
    import psycopg

    from lakehouse.gold.publish import LOCK_KEY

    with psycopg.connect(dsn) as conn:
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        conn.execute("SELECT pg_advisory_xact_lock(%s)", [LOCK_KEY])
        return pg_contents(conn)


def _worker(stage: str, lake: Path, state: Path, err: Path) -> subprocess.Popen[bytes]:
    """The stage in a process group of its own, so one SIGKILL reaches dbt's runner too."""
    return chaos._worker(stage, lake, state, stderr=err, own_group=True)


def _timed(stage: str, lake: Path, state: Path, err: Path) -> float:
    proc = _worker(stage, lake, state, err)
    started = chaos._wait_ready(proc)
    if proc.wait() != 0:
        raise RuntimeError(f"{stage}: the uninterrupted run failed: {chaos._last_line(err)}")
    return max(0.05, time.perf_counter() - started)


def _add(result: chaos.StageResult, got: Contents, want: Contents) -> None:
    for table in sorted(set(want) | set(got)):
        rows, expected = got.get(table, {}), want.get(table) or {}
        if rows is None:
            result.unreadable += 1
            continue
        lost, duplicated = chaos.compare(expected, rows)
        result.lost += lost
        result.duplicated += duplicated


def _kill_group(proc: subprocess.Popen[bytes], result: chaos.StageResult) -> None:
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
            result.killed += 1
        except ProcessLookupError:
            pass
    proc.wait()


def _gold_work_dir(lake: Path, state: Path) -> Path:
    from lakehouse.gold.dbt import DbtProject

    return DbtProject.from_settings(chaos._settings(lake, state)).work_dir


def run(
    scenario: str, trials: int, base: Path, inputs: dict[str, Path], rng: random.Random
) -> chaos.StageResult:
    if scenario == "gold-build":
        return _run_build(trials, base, inputs, rng)
    return _run_publish(trials, base, inputs, rng)


def _run_build(trials: int, base: Path, inputs: dict[str, Path], rng: random.Random) -> chaos.StageResult:
    state = base / "state"
    result = chaos.StageResult("gold-build")
    reference_lake = base / "reference-gold-build"
    shutil.copytree(inputs["gold-build"], reference_lake)
    work_seconds = _timed("gold-build", reference_lake, state, base / "gold-build-reference.err")
    reference = lake_contents(reference_lake)
    if not reference or any(v is None for v in reference.values()):
        raise RuntimeError("gold-build: the uninterrupted build left no or an unreadable gold table")
    t0 = time.perf_counter()
    for i in range(trials):
        lake = base / f"trial-gold-build-{i}"
        shutil.copytree(inputs["gold-build"], lake)
        proc = _worker("gold-build", lake, state, base / f"gold-build-{i}.err")
        chaos._wait_ready(proc)
        time.sleep(rng.uniform(0.0, work_seconds))
        _kill_group(proc, result)
        _rerun(result, "gold-build", lake, state, i)
        _add(result, lake_contents(lake), reference)
        result.trials += 1
        shutil.rmtree(_gold_work_dir(lake, state), ignore_errors=True)
        shutil.rmtree(lake, ignore_errors=True)
    result.seconds = time.perf_counter() - t0
    held = ", ".join(f"{t} {sum(v.values())}" for t, v in reference.items() if v is not None)
    result.notes.insert(
        0,
        f"dbt build + Delta export SIGKILLed (process group); uninterrupted run {work_seconds:.1f} s "
        f"({len(reference)} gold tables: {held}), kill moment uniform over it",
    )
    return result


def _run_publish(trials: int, base: Path, inputs: dict[str, Path], rng: random.Random) -> chaos.StageResult:
    state = base / "state"
    result = chaos.StageResult("gold-publish")
    dsn = chaos._settings(inputs["gold-publish"], state).postgres.serving_dsn
    run_stage("gold-publish", inputs["gold-previous"], state)
    previous = published(dsn)
    work_seconds = _timed("gold-publish", inputs["gold-publish"], state, base / "gold-publish-reference.err")
    new = published(dsn)
    if not new or any(v is None for v in new.values()) or new == previous:
        raise RuntimeError(
            "gold-publish: the uninterrupted publication is unreadable or equals the previous one"
        )
    seen = {"previous": 0, "new": 0, "mixed": 0}
    t0 = time.perf_counter()
    for i in range(trials):
        run_stage("gold-publish", inputs["gold-previous"], state)
        proc = _worker("gold-publish", inputs["gold-publish"], state, base / f"gold-publish-{i}.err")
        chaos._wait_ready(proc)
        time.sleep(rng.uniform(0.0, work_seconds))
        _kill_group(proc, result)
        after_kill = published(dsn)
        kind = classify(after_kill, previous, new)
        seen[kind] += 1
        if kind == "mixed":
            result.mixed += 1
            result.notes.append(
                f"trial {i}: gold after the kill is neither publication: {_diff(after_kill, previous, new)}"
            )
        _rerun(result, "gold-publish", inputs["gold-publish"], state, i)
        _add(result, published(dsn), new)
        result.trials += 1
    result.seconds = time.perf_counter() - t0
    held = ", ".join(f"{t} {sum(v.values())}" for t, v in new.items() if v is not None)
    result.notes.insert(
        0,
        f"publication to PostgreSQL SIGKILLed, uninterrupted run {work_seconds:.2f} s ({len(new)} tables: {held}); "
        f"gold right after the kill: {seen['previous']}x the previous publication whole, {seen['new']}x the new "
        f"one whole, {seen['mixed']}x a mix",
    )
    return result


def classify(got: Contents, previous: Contents, new: Contents) -> str:
    """ "previous" or "new" when `got` is that publication whole (every table, nothing more), else
    "mixed"."""
    return "previous" if got == previous else "new" if got == new else "mixed"


def _diff(got: Contents, previous: Contents, new: Contents) -> str:
    tables = sorted(
        t for t in set(got) | set(previous) | set(new) if got.get(t) not in (previous.get(t), new.get(t))
    )
    return ", ".join(tables[:5]) or "tables differ in number"


def _rerun(result: chaos.StageResult, stage: str, lake: Path, state: Path, i: int) -> None:
    try:
        run_stage(stage, lake, state)
    except Exception as exc:  # the rerun must complete: record, do not stop the suite
        result.rerun_failed += 1
        result.notes.append(f"trial {i}: rerun failed: {type(exc).__name__}: {str(exc)[:200]}")
