#!/usr/bin/env python3
"""Resolve a JVM bundle (pipelines/jvm/<bundle>/pom.xml) into .state/jvm/<bundle>/, pinned and verified.

    resolve.py BUNDLE                 fill the cache from the lock (no-op when it is complete)
    resolve.py BUNDLE --lock          resolve again and rewrite <bundle>/jars.lock.json on purpose
    resolve.py BUNDLE --provided-by DIR
                                      also refuse any jar whose artifact is already a jar in DIR
                                      (pyspark's jars/ folder for the spark bundle)

Maven does the resolution (maven-dependency-plugin: copy-dependencies for the jars, tree as JSON
for their coordinates), with the project's local repository in .state/jvm/m2 and every repository
mirrored to Maven Central (settings.xml). The lock lists every jar with its coordinate, size and
SHA-256, and the SHA-256 of the pom it came from. Without --lock, a jar that is missing from the
lock, a checksum that differs, a locked jar that did not resolve, or a pom edited since the lock
was made stops the run with one line. A verified cache holds a copy of the lock
(<cache>/jars.lock.json), which is what the runtime checks (lakehouse.core.jvm); while it matches
the lock in the repository and every jar is present with its size, nothing is run at all.

Maven first runs offline (-o) against .state/jvm/m2 and only goes to the network when something
is missing there, so a cache rebuilt from a complete local repository needs no network.

Standard library only: this runs before the project's virtualenv exists.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
LOCK_NAME = "jars.lock.json"
SCOPES = ("compile", "runtime")  # what copy-dependencies -DincludeScope=runtime copies


class ResolveError(Exception):
    """One line for the user; the Makefile shows it and stops."""


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def jar_name(node: dict[str, str]) -> str:
    """The file name copy-dependencies gives an artifact with -Dmdep.prependGroupId=true."""
    classifier = f"-{node['classifier']}" if node.get("classifier") else ""
    ext = node.get("type") or "jar"
    return f"{node['groupId']}.{node['artifactId']}-{node['version']}{classifier}.{ext}"


def coordinate(node: dict[str, str]) -> str:
    parts = [node["groupId"], node["artifactId"], node["version"]]
    if node.get("classifier"):
        parts.append(node["classifier"])
    return ":".join(parts)


def runtime_nodes(tree: dict) -> dict[str, dict[str, str]]:
    """file name -> node, for every compile/runtime artifact in Maven's JSON dependency tree.

    Maven has already mediated versions and scopes: a node marked provided (and everything under
    it that is not marked otherwise) is not copied."""
    found: dict[str, dict[str, str]] = {}

    def walk(node: dict, top: bool) -> None:
        if not top:
            if node.get("scope") not in SCOPES or node.get("optional") == "true":
                return
            found[jar_name(node)] = node
        for child in node.get("children", []):
            walk(child, False)

    walk(tree, True)
    return found


def run_maven(pom: Path, m2: Path, out: Path, tree: Path, offline: bool) -> subprocess.CompletedProcess[str]:
    mvn = shutil.which("mvn")
    if mvn is None:
        raise ResolveError("Maven (`mvn`) is not on PATH: install it (Debian package maven)")
    cmd = [
        mvn,
        "-B",
        "--strict-checksums",  # a download whose checksum does not match Central's fails
        "-s",
        str(HERE / "settings.xml"),
        f"-Dmaven.repo.local={m2}",
        "-f",
        str(pom),
        "dependency:copy-dependencies",
        "dependency:tree",
        "-DincludeScope=runtime",
        f"-DoutputDirectory={out}",
        "-Dmdep.prependGroupId=true",
        "-DoutputType=json",
        f"-DoutputFile={tree}",
    ]
    if offline:
        cmd.insert(1, "-o")
    env = dict(os.environ, MAVEN_OPTS=os.environ.get("MAVEN_OPTS", "-Xmx512m"))
    return subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)


def maven_error(proc: subprocess.CompletedProcess[str]) -> str:
    for line in (proc.stdout + proc.stderr).splitlines():
        line = re.sub(r"\x1b\[[0-9;]*m", "", line).strip()
        if line.startswith("[ERROR]") and len(line) > len("[ERROR] "):
            return line.removeprefix("[ERROR] ")
    return f"mvn exited with code {proc.returncode}"


def cache_is_current(cache: Path, lock_bytes: bytes) -> bool:
    """True when the cache was verified against exactly this lock and still holds every jar."""
    stamp = cache / LOCK_NAME
    try:
        if stamp.read_bytes() != lock_bytes:
            return False
    except OSError:
        return False
    lock = json.loads(lock_bytes)
    wanted = {j["file"]: j["size"] for j in lock["jars"]}
    present = {p.name: p.stat().st_size for p in cache.iterdir() if p.name != LOCK_NAME}
    return present == wanted


def provided_clash(nodes: dict[str, dict[str, str]], provided_dir: Path) -> list[str]:
    """Our jars whose artifactId is also a jar in provided_dir (named <artifactId>-<version>...)."""
    names = [p.name for p in provided_dir.glob("*.jar")]
    clashes = []
    for _file, node in sorted(nodes.items()):
        pattern = re.compile(re.escape(node["artifactId"]) + r"-\d")
        hit = next((n for n in names if pattern.match(n)), None)
        if hit:
            clashes.append(f"{coordinate(node)} (already {provided_dir.name}/{hit})")
    return clashes


def share_with_repository(cache: Path, m2: Path, entries: list[dict]) -> None:
    """Hard-link each cached jar to the identical file in the local Maven repository it was copied
    from, so the two folders do not hold the jars twice (the AWS SDK bundle alone is 642 MB)."""
    for entry in entries:
        group, artifact, version, *classifier = entry["coordinate"].split(":")
        name = f"{artifact}-{version}{'-' + classifier[0] if classifier else ''}.jar"
        source = m2.joinpath(*group.split("."), artifact, version, name)
        target = cache / entry["file"]
        try:
            if source.stat().st_size != entry["size"] or source.samefile(target):
                continue
            link = target.with_name(target.name + ".link")
            os.link(source, link)
            os.replace(link, target)
        except OSError:
            continue  # another filesystem, or no such file: the copy stays


def resolve(bundle: str, state: Path, write_lock: bool, provided_dir: Path | None) -> str:
    bundle_dir = HERE / bundle
    pom = bundle_dir / "pom.xml"
    lock_path = bundle_dir / LOCK_NAME
    if not pom.is_file():
        known = sorted(p.parent.name for p in HERE.glob("*/pom.xml"))
        raise ResolveError(f"unknown bundle {bundle!r}: no {pom} (bundles: {', '.join(known)})")
    cache = state / bundle
    m2 = state / "m2"
    pom_sha = sha256(pom)

    lock: dict | None = None
    if not write_lock:
        if not lock_path.is_file():
            raise ResolveError(
                f"no lock file {lock_path.relative_to(REPO)}: run `make jvm-lock` to create it"
            )
        lock_bytes = lock_path.read_bytes()
        lock = json.loads(lock_bytes)
        if lock.get("pom_sha256") != pom_sha:
            raise ResolveError(
                f"{lock_path.relative_to(REPO)} is stale: {pom.relative_to(REPO)} changed since the lock "
                "was made; run `make jvm-lock` to accept the new set"
            )
        if cache_is_current(cache, lock_bytes):
            total = sum(j["size"] for j in lock["jars"])
            return f"{bundle}: {len(lock['jars'])} jars ({total / 1e6:.0f} MB) already verified in {cache}"

    state.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{bundle}-", dir=state) as tmp_name:
        tmp = Path(tmp_name)
        out, tree_file = tmp / "jars", tmp / "tree.json"
        proc = run_maven(pom, m2, out, tree_file, offline=not write_lock)
        if proc.returncode != 0 and not write_lock:
            shutil.rmtree(out, ignore_errors=True)
            proc = run_maven(pom, m2, out, tree_file, offline=False)
        if proc.returncode != 0:
            raise ResolveError(f"Maven could not resolve bundle {bundle!r}: {maven_error(proc)}")

        nodes = runtime_nodes(json.loads(tree_file.read_text()))
        copied = {p.name for p in out.iterdir()} if out.is_dir() else set()
        if copied != set(nodes):
            odd = sorted(copied.symmetric_difference(nodes))
            raise ResolveError(
                f"bundle {bundle!r}: Maven's tree and copied jars disagree on {', '.join(odd)}"
            )
        if provided_dir is not None:
            if not provided_dir.is_dir():
                raise ResolveError(f"--provided-by {provided_dir}: no such folder")
            clashes = provided_clash(nodes, provided_dir)
            if clashes:
                raise ResolveError(
                    f"bundle {bundle!r} would duplicate jars already provided: {'; '.join(clashes)} — "
                    f"declare them provided in {pom.relative_to(REPO)}"
                )

        entries = [
            {
                "coordinate": coordinate(nodes[name]),
                "file": name,
                "size": (out / name).stat().st_size,
                "sha256": sha256(out / name),
            }
            for name in sorted(nodes)
        ]
        if write_lock:
            lock = {
                "bundle": bundle,
                "generated_by": "pipelines/jvm/resolve.py --lock (make jvm-lock); do not edit",
                "pom_sha256": pom_sha,
                "jars": entries,
            }
            lock_path.write_text(json.dumps(lock, indent=2) + "\n")
        else:
            assert lock is not None
            locked = {j["file"]: j for j in lock["jars"]}
            for entry in entries:
                pinned = locked.get(entry["file"])
                if pinned is None:
                    raise ResolveError(
                        f"{entry['coordinate']} resolved but is not in {lock_path.relative_to(REPO)}: "
                        "run `make jvm-lock` if the new jar is intended"
                    )
                if pinned["sha256"] != entry["sha256"]:
                    raise ResolveError(
                        f"checksum mismatch for {entry['file']}: got sha256 {entry['sha256']}, "
                        f"the lock has {pinned['sha256']}"
                    )
            missing = sorted(set(locked) - {e["file"] for e in entries})
            if missing:
                raise ResolveError(f"locked jars that Maven no longer resolves: {', '.join(missing)}")

        # Swap the verified folder in whole: a half-filled cache never carries a stamp.
        old = tmp / "old"
        if cache.exists():
            cache.rename(old)
        out.rename(cache)
        shutil.copyfile(lock_path, cache / LOCK_NAME)
    share_with_repository(cache, m2, entries)
    total = sum(e["size"] for e in entries)
    verb = "locked" if write_lock else "resolved and verified"
    return f"{bundle}: {len(entries)} jars ({total / 1e6:.0f} MB) {verb} into {cache}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("bundle", help="a folder beside this script holding pom.xml (spark, kafka)")
    parser.add_argument("--lock", action="store_true", help="resolve again and rewrite the lock file")
    parser.add_argument("--state", type=Path, default=REPO / ".state" / "jvm", help="cache root")
    parser.add_argument(
        "--provided-by", type=Path, help="refuse jars whose artifact is already in this folder"
    )
    args = parser.parse_args(argv)
    try:
        print(resolve(args.bundle, args.state.resolve(), args.lock, args.provided_by))
    except ResolveError as exc:
        print(f"jvm: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
