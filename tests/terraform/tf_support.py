"""Shared helpers and paths for tests/terraform (a uniquely named module, so it cannot
clash with another suite's conftest when pytest collects the whole tests/ tree)."""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hcl2
from hcl2.utils import SerializationOptions

REPO_ROOT = Path(__file__).resolve().parents[2]
TF_ROOT = REPO_ROOT / "terraform"
MODULES_DIR = TF_ROOT / "modules"
TESTS_DIR = Path(__file__).resolve().parent
TFTEST_DIR = TESTS_DIR / "tftest"
STATE_DIR = REPO_ROOT / ".state" / "terraform"
PYTEST_STATE = STATE_DIR / "pytest"
TOOLS_DIR = STATE_DIR / "tools"
CLOUD_INIT_ROOT = STATE_DIR / "cloud-init" / "root"
CLOUD_INIT_PYTHONPATH = CLOUD_INIT_ROOT / "usr" / "lib" / "python3" / "dist-packages"

PROVIDER_VERSION = "0.8.3"
PROVIDER_ADDRESS = "registry.opentofu.org/dmacvicar/libvirt"

_HCL_OPTIONS = SerializationOptions(strip_string_quotes=True, explicit_blocks=False, with_comments=False)


def load_hcl(path: Path) -> dict[str, Any]:
    """Parse one .tf/.tfvars/.tftest.hcl file with python-hcl2 (quotes stripped)."""
    with path.open() as fh:
        return hcl2.load(fh, serialization_options=_HCL_OPTIONS)


def environments() -> list[str]:
    return sorted(p.parent.name for p in (REPO_ROOT / "environments").glob("*/terraform.tfvars"))


def module_dirs() -> list[Path]:
    return sorted(p for p in MODULES_DIR.iterdir() if p.is_dir())


def variables_of(directory: Path) -> dict[str, dict[str, Any]]:
    """variable blocks of a module directory, by name."""
    out: dict[str, dict[str, Any]] = {}
    for tf in sorted(directory.glob("*.tf")):
        for block in load_hcl(tf).get("variable", []):
            out.update(block)
    return out


@dataclass
class Terraform:
    """The terraform CLI with an isolated CLI config, data dir and plugin cache."""

    binary: str
    base_env: dict[str, str]

    def run(
        self,
        args: list[str],
        cwd: Path,
        data_dir: Path,
        check: bool = True,
        cli_config: Path | None = None,
        timeout: int = 300,
    ) -> subprocess.CompletedProcess:
        env = dict(self.base_env, TF_DATA_DIR=str(data_dir))
        if cli_config is not None:
            env["TF_CLI_CONFIG_FILE"] = str(cli_config)
        proc = subprocess.run(
            [self.binary, *args],
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check and proc.returncode != 0:
            raise AssertionError(
                f"terraform {' '.join(args)} (in {cwd}) exited {proc.returncode}\n"
                f"--- stdout ---\n{proc.stdout[-6000:]}\n--- stderr ---\n{proc.stderr[-6000:]}"
            )
        return proc

    def plan_outputs(self, module_dir: Path, var_files: list[Path], workdir: Path) -> dict[str, Any]:
        """Plan a provider-free module and return its output values, as terraform computed them."""
        workdir.mkdir(parents=True, exist_ok=True)
        data_dir = workdir / "tfdata"
        self.run(["init", "-backend=false", "-input=false", "-no-color"], module_dir, data_dir)
        plan = workdir / "tfplan"
        args = ["plan", "-input=false", "-no-color", "-lock=false", "-refresh=false", f"-out={plan}"]
        args += [f"-var-file={f}" for f in var_files]
        self.run(args, module_dir, data_dir)
        shown = self.run(["show", "-json", str(plan)], module_dir, data_dir)
        outputs = json.loads(shown.stdout)["planned_values"].get("outputs", {})
        return {name: o.get("value") for name, o in outputs.items()}


def tofu_tools() -> tuple[Path, Path] | None:
    """The pinned OpenTofu binary and the CLI config that serves the locally built libvirt
    provider, as `make terraform-tools` made them (TOFU / TOFU_CLI_CONFIG from make, else
    the one build in .state/terraform/tools)."""
    binary, config = os.environ.get("TOFU"), os.environ.get("TOFU_CLI_CONFIG")
    if binary and config:
        return Path(binary), Path(config)
    built = sorted((TOOLS_DIR / "bin").glob("tofu-v*"))
    if len(built) == 1 and (TOOLS_DIR / "tofurc").is_file():
        return built[0], TOOLS_DIR / "tofurc"
    return None


def provider_binaries() -> list[Path]:
    """Locally built dmacvicar/libvirt binaries in the filesystem mirror."""
    mirror = TOOLS_DIR / "providers" / PROVIDER_ADDRESS / PROVIDER_VERSION
    return sorted(mirror.glob("*/terraform-provider-libvirt_v*"))
