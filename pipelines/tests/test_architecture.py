"""The package's import contract (pyproject.toml, [tool.importlinter]) holds, and it is not a
check that cannot fail: an upward import or a cycle planted in a copy of the package breaks it."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

PIPELINES = Path(__file__).resolve().parents[1]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def lint(package_parent: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(package_parent)}
    return subprocess.run(
        [str(LINT_IMPORTS), "--config", str(PIPELINES / "pyproject.toml"), "--no-cache"],
        cwd=package_parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture
def package_copy(tmp_path: Path) -> Path:
    shutil.copytree(PIPELINES / "src" / "lakehouse", tmp_path / "lakehouse")
    return tmp_path


def test_the_package_keeps_every_contract() -> None:
    out = lint(PIPELINES / "src")
    assert out.returncode == 0, out.stdout + out.stderr
    assert set(contract_verdicts(out.stdout).values()) == {"KEPT"}


@pytest.mark.parametrize(
    ("module", "planted", "contract"),
    [
        ("core/storage.py", "import lakehouse.silver.events", "Tiers"),
        ("bronze/landing.py", "import lakehouse.gold.publish", "Tiers"),
        ("silver/events.py", "import lakehouse.generator.events", "Data layers depend on neither"),
        ("gold/dbt.py", "import lakehouse.gold.gate", "No import cycles"),
    ],
)
def test_a_planted_violation_breaks_the_contract(
    package_copy: Path, module: str, planted: str, contract: str
) -> None:
    path = package_copy / "lakehouse" / module
    text = path.read_text()
    head, sep, rest = text.partition("from __future__ import annotations\n")
    path.write_text(head + sep + planted + "\n" + rest)
    out = lint(package_copy)
    assert out.returncode != 0, out.stdout
    verdicts = contract_verdicts(out.stdout)
    (name,) = [n for n in verdicts if n.startswith(contract)]
    assert verdicts[name] == "BROKEN", verdicts


def contract_verdicts(stdout: str) -> dict[str, str]:
    """Contract name -> KEPT | BROKEN, from lint-imports' summary (which wraps long names)."""
    flat = " ".join(stdout.split())
    names = [
        c["name"]
        for c in tomllib.loads((PIPELINES / "pyproject.toml").read_text())["tool"]["importlinter"][
            "contracts"
        ]
    ]
    out = {}
    for name in names:
        found = re.search(re.escape(" ".join(name.split())) + r" (KEPT|BROKEN)", flat)
        assert found, f"no verdict for {name!r} in: {stdout}"
        out[name] = found.group(1)
    return out
