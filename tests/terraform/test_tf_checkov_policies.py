"""checkov with the custom libvirt policies (terraform/checkov): each policy fails on the
resource built to break it, passes on compliant ones, and terraform/ has zero failures
for every environment's tfvars."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from tf_support import REPO_ROOT, TF_ROOT, environments

FIXTURES = Path(__file__).with_name("checkov_fixtures")
POLICY_IDS = [f"CKV_AMPERE_LIBVIRT_{i}" for i in range(1, 9)]
EXPECTED_FAILURES = {
    "CKV_AMPERE_LIBVIRT_1": {"libvirt_domain.no_agent"},
    "CKV_AMPERE_LIBVIRT_2": {"libvirt_domain.no_autostart"},
    "CKV_AMPERE_LIBVIRT_3": {"libvirt_domain.open_console"},
    "CKV_AMPERE_LIBVIRT_4": {"libvirt_domain.tiny"},
    "CKV_AMPERE_LIBVIRT_5": {"libvirt_volume.http_image"},
    "CKV_AMPERE_LIBVIRT_6": {"libvirt_network.open"},
    "CKV_AMPERE_LIBVIRT_7": {"libvirt_pool.old_path"},
    "CKV_AMPERE_LIBVIRT_8": {"libvirt_cloudinit_disk.no_network"},
}


def _checkov_bin() -> Path:
    candidates = [Path(sys.prefix) / "checkov" / "bin" / "checkov", Path(sys.executable).with_name("checkov")]
    for c in candidates:
        if c.exists():
            return c
    pytest.skip("checkov not installed (make setup-terraform puts it in .venv-terraform/checkov)")


def _scan(directory: Path, *extra: str) -> dict:
    proc = subprocess.run(
        [
            str(_checkov_bin()), "--config-file", str(TF_ROOT / ".checkov.yaml"), "--directory", str(directory),
            "--external-checks-dir", str(TF_ROOT / "checkov"), "--output", "json", *extra,
        ],
        capture_output=True, text=True, timeout=600, cwd=REPO_ROOT,
    )  # fmt: skip
    assert proc.returncode in (0, 1), proc.stderr[-4000:]
    report = json.loads(proc.stdout)
    return report[0] if isinstance(report, list) else report


def _by_check(report: dict, key: str) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for r in report.get("results", {}).get(key, []):
        out.setdefault(r["check_id"], set()).add(
            r["resource"].split(".", 2)[-1] if r["resource"].startswith("module.") else r["resource"]
        )
    return out


def test_each_policy_fails_its_fixture() -> None:
    failed = _by_check(_scan(FIXTURES / "failing"), "failed_checks")
    custom = {k: v for k, v in failed.items() if k.startswith("CKV_AMPERE_")}
    assert custom == EXPECTED_FAILURES


def test_compliant_fixture_passes_every_policy() -> None:
    report = _scan(FIXTURES / "passing")
    assert not [r for r in report["results"]["failed_checks"] if r["check_id"].startswith("CKV_AMPERE_")]
    passed = _by_check(report, "passed_checks")
    assert set(POLICY_IDS) <= set(passed), f"policies that never ran: {set(POLICY_IDS) - set(passed)}"


@pytest.mark.parametrize("env", environments())
def test_terraform_tree_has_no_failures(env: str) -> None:
    report = _scan(TF_ROOT, "--var-file", str(REPO_ROOT / "environments" / env / "terraform.tfvars"))
    failed = report["results"]["failed_checks"]
    assert not failed, [(r["check_id"], r["resource"]) for r in failed]
    passed = _by_check(report, "passed_checks")
    assert set(POLICY_IDS) <= set(passed), (
        f"policies that did not evaluate terraform/: {set(POLICY_IDS) - set(passed)}"
    )
