"""The JVM side of the package: a Java runtime and the jar bundles resolved by pipelines/jvm.

A bundle is a folder of jars, `<cache root>/<bundle>/`, holding a copy of the lock it was verified
against (`jars.lock.json`: coordinate, file, size and SHA-256 of every jar). The cache root is
`LAKEHOUSE_JVM_CACHE` if set (an image that carries the jars elsewhere), else `.state/jvm` at the
repository root, where `make jars-<bundle>` puts them. Nothing here downloads anything: a missing
or outdated cache stops with one line that names the make target to run.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from lakehouse.core.errors import LakehouseError
from lakehouse.core.settings import repo_root

LOCK_NAME = "jars.lock.json"
MIN_JAVA = 17


class JvmError(LakehouseError):
    """Java or a jar bundle is missing or does not match what the project pins."""


def cache_root() -> Path:
    override = os.environ.get("LAKEHOUSE_JVM_CACHE")
    return Path(override).resolve() if override else repo_root() / ".state" / "jvm"


@dataclass(frozen=True)
class Bundle:
    """A verified jar folder: `jars` in lock order, `versions` maps group:artifact -> version."""

    name: str
    folder: Path
    jars: tuple[Path, ...]
    versions: dict[str, str]
    digest: str  # SHA-256 of the lock the folder was verified against: the bundle's identity

    @property
    def classpath(self) -> str:
        return os.pathsep.join(str(j) for j in self.jars)

    def version(self, group_artifact: str) -> str | None:
        return self.versions.get(group_artifact)


def class_archive(bundle: Bundle, java: Java) -> Path:
    """Where a JVM running this bundle keeps its class-data sharing archive (AppCDS): one per
    bundle and exact Java build, beside the bundles, so that every state dir shares it."""
    tag = hashlib.sha256(f"{bundle.digest}:{java.runtime}:{java.home}".encode()).hexdigest()[:16]
    return cache_root() / "cds" / f"{bundle.name}-{tag}.jsa"


def load_bundle(name: str) -> Bundle:
    """The bundle's jars after checking them against the cache's lock (and the repository's lock,
    when the repository is there): every jar present with its locked size."""
    folder = cache_root() / name
    fix = f"run `make jars-{name}`"
    stamp = folder / LOCK_NAME
    if not stamp.is_file():
        raise JvmError(
            f"no {name} jar cache at {folder}: {fix} (resolves pinned jars from Maven Central once)"
        )
    try:
        lock = json.loads(stamp.read_text())
        entries = [(j["coordinate"], j["file"], int(j["size"])) for j in lock["jars"]]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise JvmError(f"unreadable {stamp} ({exc}): {fix}") from None
    source = repo_root() / "pipelines" / "jvm" / name / LOCK_NAME
    if source.is_file() and source.read_bytes() != stamp.read_bytes():
        raise JvmError(f"the {name} jar cache {folder} was made from another lock than {source}: {fix}")
    jars = []
    versions: dict[str, str] = {}
    for coordinate, file, size in entries:
        path = folder / file
        try:
            actual = path.stat().st_size
        except OSError:
            raise JvmError(f"jar {file} is missing from {folder}: {fix}") from None
        if actual != size:
            raise JvmError(f"jar {file} in {folder} has {actual} bytes, the lock says {size}: {fix}")
        jars.append(path)
        group, artifact, version = coordinate.split(":")[:3]
        versions[f"{group}:{artifact}"] = version
    return Bundle(name, folder, tuple(jars), versions, hashlib.sha256(stamp.read_bytes()).hexdigest())


@dataclass(frozen=True)
class Java:
    executable: Path
    home: Path
    major: int
    version: str  # the specification version: "17"
    runtime: str  # the exact build: "17.0.15+6-Debian-1deb12u1"


@cache
def _probe(executable: str) -> tuple[str, str, str]:
    proc = subprocess.run(
        [executable, "-XshowSettings:properties", "-version"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    props = dict(re.findall(r"^\s+([\w.]+) = (.*)$", proc.stderr, re.MULTILINE))
    return (
        props.get("java.specification.version", ""),
        props.get("java.home", ""),
        props.get("java.runtime.version", ""),
    )


def find_java(min_major: int = MIN_JAVA) -> Java:
    """`$JAVA_HOME/bin/java`, else `java` on PATH; at least Java `min_major`."""
    home = os.environ.get("JAVA_HOME")
    candidate = Path(home) / "bin" / "java" if home else None
    if candidate is None or not os.access(candidate, os.X_OK):
        found = shutil.which("java")
        if found is None:
            where = f"JAVA_HOME={home} has no bin/java and " if home else ""
            raise JvmError(
                f"{where}no `java` on PATH: install a Java {min_major} runtime "
                f"(Debian: openjdk-{min_major}-jre-headless) or set JAVA_HOME"
            )
        candidate = Path(found)
    try:
        spec, java_home, runtime = _probe(str(candidate))
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise JvmError(f"cannot run {candidate}: {exc}") from None
    major = int(spec.split(".")[-1]) if spec.replace(".", "").isdigit() else 0
    if major < min_major:
        raise JvmError(
            f"{candidate} is Java {spec or 'of an unknown version'}; Java {min_major} or newer is needed "
            "(set JAVA_HOME to one)"
        )
    return Java(candidate, Path(java_home or candidate.parent.parent), major, spec, runtime)
