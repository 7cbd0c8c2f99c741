"""The local environment's settings copied for one test: free loopback ports, its own folders.

Tests that run `lakehouse demo` or the README's commands as a user would must not meet another
test's services or a developer's own demo, so each gets every service port fresh and its own
state folder (and lake, unless the command under test chooses it).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from lakehouse.services.process import free_port

REPO = Path(__file__).resolve().parents[2]

# Every port a local service of the demo listens on.
SERVICE_PORTS = (
    ("postgres", "port"),
    ("seaweedfs", "port"),
    ("streaming", "broker_port"),
    ("streaming", "metrics_port"),
)


def write_local_config(
    base: Path,
    generator: Mapping[str, Any],
    *,
    lake: bool = True,
    extra_ports: Iterable[tuple[str, str]] = (),
    used: set[int] | None = None,
) -> tuple[Path, dict[str, Any]]:
    """`base/pipeline.yaml` from environments/local with fresh ports, `generator` sizes applied."""
    config = yaml.safe_load((REPO / "environments" / "local" / "pipeline.yaml").read_text())
    config["state_dir"] = str(base / "state")
    if lake:
        config["lake_root"] = str(base / "lake")
    used = set() if used is None else used
    for section, key in (*SERVICE_PORTS, *extra_ports):
        used.add(port := free_port(used))
        config.setdefault(section, {})[key] = port
    config["generator"].update(generator)
    path = base / "pipeline.yaml"
    path.write_text(yaml.safe_dump(config))
    return path, config


def user_env(
    config: Path, drop: tuple[str, ...] = ("LAKEHOUSE_", "AWS_"), *, root: bool = True, **extra: str
) -> dict[str, str]:
    """This shell's environment without the `drop` prefixes, pointed at the test's config.

    `root` also names the checkout (LAKEHOUSE_ROOT), as the Makefile does for the commands it runs.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    env.update(LAKEHOUSE_CONFIG=str(config), **extra)
    if root:
        env["LAKEHOUSE_ROOT"] = str(REPO)
    return env
