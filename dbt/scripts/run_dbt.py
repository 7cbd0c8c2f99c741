"""Run one or more dbt commands in one process of dbt's own virtualenv; emit OpenLineage for them.

`lakehouse gold ...` and `lakehouse check ...` (pipelines/src/lakehouse/gold/dbt.py) start this
script with .venv-dbt's python instead of the `dbt` executable:

    python dbt/scripts/run_dbt.py SPEC.json

SPEC.json (written by the caller):

    {"commands": [{"args": ["test", "--select", "source:silver"], "results": "run_results.json"},
                  {"args": ["source", "freshness"], "results": "sources.json"}],
     "common": ["--project-dir", "<dbt project>", "--target-path", "<target dir>", ...],
     "target_path": "<target dir>", "project_dir": "<dbt project>", "summary": "<out.json>",
     "lineage": {"job": "lakehouse.check.silver", "namespace": "lakehouse-local",
                 "file": "<events.jsonl>" | null}}     # "lineage": null: no events

Why one process: importing dbt and parsing the project cost seconds per `dbt` process; commands
after the first reuse the parsed manifest (dbt's programmatic API, dbtRunner(manifest=...)).
Each command's exit code follows the `dbt` CLI (0 ok, 1 failing nodes, 2 dbt could not run) and
its artifact (run_results.json / sources.json) is copied into the summary file.

Lineage (OpenLineage, library `openlineage-dbt`): a START event of the job `lineage.job` before
the first command (a child of the Airflow task run when OPENLINEAGE_PARENT_ID is set), then per
command that builds or tests nodes the library's events from manifest.json + run_results.json
(START and COMPLETE/FAIL per model and snapshot, with input and output datasets; the tests'
data-quality assertions per tested dataset), children of that job run, then the
job's COMPLETE (or FAIL). dbt reads the silver tables in place (sources are `delta_scan(...)`), so
a source dataset is named like the pipeline names the Delta table it reads (file:<path> or
s3://<bucket>/<key>, see lakehouse.core.lineage.dataset) with dbt's own name kept as a symlink; that
joins the pipeline's silver outputs to the dbt models' inputs. Events go to `lineage.file` (file
transport, JSON lines) or, without one, wherever the OpenLineage client's own configuration says
(OPENLINEAGE_URL / OPENLINEAGE_CONFIG: Marquez on the cluster). Lineage never fails the run.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
import time
import traceback
from pathlib import Path
from typing import Any

LINEAGE_COMMANDS = ("build", "run", "test", "seed", "snapshot")
log = logging.getLogger("lakehouse.dbt")


def _exit_code(result: Any) -> int:
    """The `dbt` CLI's exit code for a dbtRunnerResult."""
    if result.exception is not None:
        return 2
    return 0 if result.success else 1


def _lake_dataset(location: str) -> tuple[str, str]:
    """OpenLineage (namespace, name) of a lake path, as lakehouse.core.lineage.dataset names it."""
    if location.startswith("s3://"):
        bucket, _, key = location.removeprefix("s3://").partition("/")
        return f"s3://{bucket}", key
    return "file", location


class Lineage:
    """The job run wrapping this process's dbt commands, and the library's per-node events."""

    def __init__(self, spec: dict[str, Any], target_path: str, project_dir: str) -> None:
        from openlineage.client import OpenLineageClient
        from openlineage.common.provider.dbt.utils import get_parent_run_metadata

        self.spec, self.target_path, self.project_dir = spec, target_path, project_dir
        self.namespace = spec.get("namespace") or os.environ.get("OPENLINEAGE_NAMESPACE", "dbt")
        if spec.get("file"):
            from openlineage.client.transport.file import FileConfig, FileTransport

            Path(spec["file"]).parent.mkdir(parents=True, exist_ok=True)
            transport = FileTransport(FileConfig(log_file_path=spec["file"], append=True))
            self.client = OpenLineageClient(transport=transport)
        else:
            self.client = OpenLineageClient()
        self.parent = get_parent_run_metadata()  # the Airflow task run, if any
        self.start_event: Any = None
        self.emitted = 0

    def start(self) -> None:
        from openlineage.dbt import dbt_run_event_start

        self.start_event = dbt_run_event_start(self.spec["job"], self.namespace, self.parent)
        self._emit(self.start_event)

    def nodes(self) -> None:
        """Events of every model, snapshot and test of the command that just ran."""
        from openlineage.common.provider.dbt import DbtLocalArtifactProcessor, ParentRunMetadata
        from openlineage.common.provider.dbt.utils import PRODUCER

        processor = DbtLocalArtifactProcessor(
            producer=PRODUCER,
            project_dir=self.project_dir,
            target_path=self.target_path,
            job_namespace=self.namespace,
            logger=log,
            skip_errors=True,
        )
        start, parent = self.start_event, self.parent
        # the root of the run tree: the parent's root, else the parent, else this job run
        if parent and parent.root_parent_run_id and parent.root_parent_job_name:
            root = (parent.root_parent_run_id, parent.root_parent_job_name, parent.root_parent_job_namespace)
        elif parent:
            root = (parent.run_id, parent.job_name, parent.job_namespace)
        else:
            root = (start.run.runId, start.job.name, start.job.namespace)
        processor.dbt_run_metadata = ParentRunMetadata(
            run_id=start.run.runId,
            job_name=start.job.name,
            job_namespace=start.job.namespace,
            root_parent_run_id=root[0],
            root_parent_job_name=root[1],
            root_parent_job_namespace=root[2],
        )
        events = processor.parse().events()
        lake = self._lake_sources(processor)
        for event in events:
            for ds in [*(event.inputs or []), *(event.outputs or [])]:
                self._relocate(ds, lake)
            self._emit(event)

    def finish(self, code: int) -> None:
        from openlineage.dbt import dbt_run_event_end, dbt_run_event_failed

        end = dbt_run_event_end if code == 0 else dbt_run_event_failed
        self._emit(end(self.start_event.run.runId, self.namespace, self.spec["job"], self.parent))
        self.client.close(timeout=30)

    def _lake_sources(self, processor: Any) -> dict[tuple[str, str], tuple[str, str]]:
        """(namespace, dbt name) of every delta_scan source -> its lake dataset."""
        out = {}
        for source in processor.manifest.get("sources", {}).values():
            match = re.fullmatch(r"\s*delta_scan\('([^']+)'\)\s*", source.get("relation_name") or "")
            if match:
                name = processor._format_dataset_name(source["database"], source["schema"], source["name"])
                out[(processor.dataset_namespace, name)] = _lake_dataset(match.group(1))
        return out

    @staticmethod
    def _relocate(ds: Any, lake: dict[tuple[str, str], tuple[str, str]]) -> None:
        target = lake.get((ds.namespace, ds.name))
        if target is None:
            return
        from openlineage.client.facet_v2 import symlinks_dataset

        alias = symlinks_dataset.Identifier(namespace=ds.namespace, name=ds.name, type="TABLE")
        ds.namespace, ds.name = target
        ds.facets = {**(ds.facets or {}), "symlinks": symlinks_dataset.SymlinksDatasetFacet([alias])}

    def _emit(self, event: Any) -> None:
        try:
            self.client.emit(event)
            self.emitted += 1
        except Exception as exc:  # lineage must never fail the data run
            print(f"OpenLineage event for {event.job.name} not sent: {exc}", flush=True)


def run(spec: dict[str, Any]) -> list[dict[str, Any]]:
    from dbt.cli.main import dbtRunner

    target = Path(spec["target_path"])
    commands: list[dict[str, Any]] = spec["commands"]
    lineage = None
    if spec.get("lineage") and any(c["args"][0] in LINEAGE_COMMANDS for c in commands):
        try:
            lineage = Lineage(spec["lineage"], str(target), spec["project_dir"])
            lineage.start()
        except Exception as exc:
            print(f"OpenLineage not available ({exc}): no lineage events for this dbt run", flush=True)
            lineage = None
    runner = dbtRunner()
    common: list[str] = spec.get("common", [])
    if len(commands) > 1:
        # parse once: the later commands run on this manifest instead of parsing again
        parsed = runner.invoke(["parse", *common])
        if parsed.exception is None and parsed.success and parsed.result is not None:
            runner = dbtRunner(manifest=parsed.result)
    out = []
    for i, command in enumerate(commands, 1):
        args = command["args"]
        print(f"@@lakehouse-dbt {i}/{len(commands)}: dbt {' '.join(args)}", flush=True)
        artifact = target / command.get("results", "run_results.json")
        artifact.unlink(missing_ok=True)
        started = time.time()
        result = runner.invoke([*args, *common])
        code = _exit_code(result)
        if result.exception is not None:
            print(f"dbt {args[0]}: {type(result.exception).__name__}: {result.exception}", flush=True)
        data = json.loads(artifact.read_text()) if artifact.exists() else None
        out.append({"args": args, "returncode": code, "results": data, "seconds": time.time() - started})
        if lineage is not None and data is not None and args[0] in LINEAGE_COMMANDS:
            try:
                lineage.nodes()
            except Exception:
                print("OpenLineage events of dbt's nodes not sent:", flush=True)
                traceback.print_exc(file=sys.stdout)
    if lineage is not None:
        try:
            lineage.finish(max(r["returncode"] for r in out))
            print(f"OpenLineage: {lineage.emitted} events", flush=True)
        except Exception as exc:
            print(f"OpenLineage end event not sent: {exc}", flush=True)
    return out


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    spec = json.loads(Path(argv[0]).read_text())
    logging.basicConfig(level=logging.WARNING, stream=sys.stdout, format="%(name)s: %(message)s")
    results = run(spec)
    Path(spec["summary"]).write_text(json.dumps(results))
    return max(r["returncode"] for r in results)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
