"""Growth of the embedded engine's batch path with the input: landing -> bronze -> silver at
increasing sizes, so the cost per layer is measured at each size rather than assumed.

Per size, in a fresh folder: the generator writes the landing NDJSON files; then each layer runs
in a subprocess of its own (`landing.ingest` into bronze.events, then `silver.events.run`), its
process tree sampled for peak RSS and CPU. Reported per size and layer: seconds, CPU seconds,
peak RSS, rows, and the disk the layer's data takes (landing files, the bronze table, the silver
tables). A size whose inputs would leave less than `--keep-free-gib` free on the disk (estimated
from the largest size measured so far) is skipped and said so; each size's folder is deleted
after it is measured.

    python -m bench.growth [--sizes 1000000,10000000,30000000,100000000] [--keep-free-gib 12]

Report: <state>/growth.md and growth.json (<state> = <repo>/.state/bench).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.bronze_silver import _settings
from bench.engine_measure import TreeSampler

GIB = 1024**3
LAYERS = ("landing", "bronze", "silver")
DEFAULT_SIZES = (1_000_000, 10_000_000, 30_000_000, 100_000_000)


def log(msg: str) -> None:
    print(f"[bench-growth] {msg}", flush=True)


def du(path: Path) -> int:
    """Bytes of the files under `path` (hard links counted once)."""
    seen: set[tuple[int, int]] = set()
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            st = os.lstat(os.path.join(root, name))
            if (st.st_dev, st.st_ino) not in seen:
                seen.add((st.st_dev, st.st_ino))
                total += st.st_size
    return total


# -- the layers (inside the child process) --------------------------------------------------------


def child(layer: str, work: Path, rows: int) -> dict[str, Any]:
    from lakehouse.core.reconcile import new_run_id
    from lakehouse.core.storage import Lake

    settings = _settings(work, rows)
    lake = Lake(settings)
    t0 = time.perf_counter()
    if layer == "landing":
        from lakehouse.generator.events import EventSpec, generate_files

        fs, base = lake.landing("events")

        def write(name: str, data: bytes) -> None:
            with fs.open_output_stream(f"{base}/{name}.part") as out:
                out.write(data)
            fs.move(f"{base}/{name}.part", f"{base}/{name}")

        counts = generate_files(
            EventSpec.from_settings(settings.generator), settings.generator.event_files, write
        )
        return {"rows": counts["lines"], "seconds": time.perf_counter() - t0}
    if layer == "bronze":
        from lakehouse.bronze import landing

        result, _rec = landing.ingest(lake, "bench-growth", settings.bronze.max_rows_per_commit)
        return {"rows": result.rows, "seconds": time.perf_counter() - t0}
    from lakehouse.silver import events

    rec = events.run(lake, settings.silver, new_run_id())
    return {"rows": rec.inserted + rec.quarantined, "seconds": time.perf_counter() - t0}


# -- the parent ------------------------------------------------------------------------------------


def _layer_path(work: Path, layer: str) -> Path:
    lake = work / "lake"
    if layer == "landing":
        settings = _settings(work, 1)
        from lakehouse.core.storage import Lake

        return Path(Lake(settings).landing("events")[1])
    return lake / layer


def measure(layer: str, work: Path, rows: int) -> dict[str, Any]:
    import psutil

    result = work / f"{layer}.json"
    cmd = [sys.executable, "-m", "bench.growth", "--child", layer, "--work", str(work), "--rows", str(rows)]
    cmd += ["--result", str(result)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parents[1]), *sys.path])}
    t0 = time.perf_counter()
    proc = psutil.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    sampler = TreeSampler(proc)
    peak = 0
    while proc.poll() is None:
        peak = max(peak, sampler.sample().rss)
        time.sleep(0.05)
    out_text = proc.stdout.read() if proc.stdout else ""
    if proc.returncode != 0 or not result.exists():
        raise RuntimeError(f"{layer} at {rows:,} events failed (exit {proc.returncode}):\n{out_text[-3000:]}")
    out = json.loads(result.read_text())
    out.update(
        layer=layer,
        size=rows,
        wall_seconds=time.perf_counter() - t0,
        cpu_seconds=sum(sampler.cpu_by_pid.values()),
        peak_rss_bytes=max(peak, out.pop("self_maxrss_bytes", 0)),
        disk_bytes=du(_layer_path(work, layer)),
    )
    return out


def run(state: Path, sizes: list[int], keep_free_gib: float) -> tuple[list[dict[str, Any]], list[str]]:
    results: list[dict[str, Any]] = []
    skipped: list[str] = []
    bytes_per_event = 0.0
    for rows in sizes:
        free = shutil.disk_usage(state).free
        need = bytes_per_event * rows
        if bytes_per_event and free - need < keep_free_gib * GIB:
            skipped.append(
                f"{rows:,} events: about {need / GIB:.1f} GiB needed (from the largest size measured), "
                f"{free / GIB:.1f} GiB free, {keep_free_gib:g} GiB to keep free"
            )
            log(skipped[-1])
            continue
        work = state / f"growth-{rows}"
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        load = [round(x, 2) for x in os.getloadavg()]
        try:
            for layer in LAYERS:
                log(f"{layer} at {rows:,} events ...")
                r = measure(layer, work, rows)
                r["load_average_at_start"] = load
                log(
                    f"{layer} at {rows:,}: {r['seconds']:.1f} s, peak RSS {r['peak_rss_bytes'] / GIB:.2f} GiB, "
                    f"disk {r['disk_bytes'] / GIB:.2f} GiB"
                )
                results.append(r)
            bytes_per_event = max(bytes_per_event, du(work) / rows)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        write_report(state, results, skipped)
    write_report(state, results, skipped)
    return results, skipped


def write_report(state: Path, results: list[dict[str, Any]], skipped: list[str]) -> Path:
    meta = {"finished": datetime.now(UTC).isoformat(timespec="seconds"), "cpus": os.cpu_count()}
    (state / "growth.json").write_text(json.dumps({**meta, "results": results, "skipped": skipped}, indent=2))
    lines = [
        f"# Growth of the embedded engine, landing -> bronze -> silver ({meta['finished']})",
        "",
        f"{meta['cpus']} CPUs. Each layer in a subprocess of its own; `s` its own seconds, `CPU s` user + "
        "system of its process tree, `peak RSS` of the tree (sampled every 50 ms), `disk` the layer's "
        "files (landing NDJSON, the bronze table, the silver tables). `load` = load average when the "
        "size started (other work shares the cores).",
        "",
        "| events | layer | rows | s | CPU s | peak RSS GiB | disk GiB | s per 1M events | load |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r['size']:,} | {r['layer']} | {r['rows']:,} | {r['seconds']:.1f} | {r['cpu_seconds']:.1f} | "
            f"{r['peak_rss_bytes'] / GIB:.2f} | {r['disk_bytes'] / GIB:.2f} | "
            f"{r['seconds'] / (r['size'] / 1e6):.1f} | {r['load_average_at_start'][0]} |"
        )
    if skipped:
        lines += ["", "Not measured (disk):", "", *(f"- {s}" for s in skipped)]
    path = state / "growth.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.growth", description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--sizes", default=",".join(str(s) for s in DEFAULT_SIZES), help="comma-separated event counts"
    )
    p.add_argument("--keep-free-gib", type=float, default=12.0, help="disk to leave free (GiB)")
    p.add_argument("--state", type=Path, default=None, help="bench folder (default <repo>/.state/bench)")
    p.add_argument("--child", help=argparse.SUPPRESS)
    p.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--rows", type=int, help=argparse.SUPPRESS)
    p.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        import resource

        out = child(args.child, args.work, args.rows)
        out["self_maxrss_bytes"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        args.result.write_text(json.dumps(out))
        return 0
    try:
        sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    except ValueError:
        print(f"bench-growth: --sizes must be comma-separated integers, not {args.sizes!r}", file=sys.stderr)
        return 2
    if not sizes or min(sizes) <= 0:
        print("bench-growth: --sizes must be positive", file=sys.stderr)
        return 2
    from lakehouse.core.settings import repo_root

    state: Path = (args.state or repo_root() / ".state" / "bench").resolve()
    state.mkdir(parents=True, exist_ok=True)
    run(state, sorted(sizes), args.keep_free_gib)
    log(f"report: {state / 'growth.md'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
