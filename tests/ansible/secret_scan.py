#!/usr/bin/env python3
"""Secret scan for the Ansible part of the repository, against the committed baseline.

    secret_scan.py check      # exit 1 and list findings that are not in .secrets.baseline
    secret_scan.py baseline   # rewrite .secrets.baseline from a fresh scan (then audit it)

Scanned: the paths below, every file (tracked or not), with detect-secrets' default plugins
plus an age private-key detector. Encrypted SOPS values (ENC[...]) and the armored age blocks of
SOPS metadata are excluded line by line, so a plaintext value in a secrets file is still caught;
tests/ansible/test_secrets.py also proves every value under secrets/ is encrypted.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PATHS = ["ansible", "secrets", "environments/dev/inventory", "environments/prod/inventory", "tests/ansible", ".sops.yaml"]
PLUGIN = ROOT / "tests/ansible/detect_secrets_plugins/age_key.py"
BASELINE = ROOT / ".secrets.baseline"
EXCLUDE_FILES = r"(^|/)(\.venv-ansible|\.state|__pycache__|\.pytest_cache|\.cache)/"
EXCLUDE_LINES = [r"ENC\[AES256_GCM,data:", r"^\s*[A-Za-z0-9+/]{64}$", r"^\s*[A-Za-z0-9+/]{1,63}={0,2}$"]


def scan(paths: list[str] | None = None, root: Path = ROOT) -> dict:
    exe = Path(sys.executable).with_name("detect-secrets")
    cmd = [str(exe), "scan", "--all-files", "--plugin", str(PLUGIN), "--exclude-files", EXCLUDE_FILES]
    for pattern in EXCLUDE_LINES:
        cmd += ["--exclude-lines", pattern]
    cmd += [p for p in (paths or PATHS) if (root / p).exists()]
    out = subprocess.run(cmd, cwd=root, check=True, capture_output=True, text=True).stdout
    return json.loads(out)


def findings(result: dict) -> set[tuple[str, str, str]]:
    return {(name, item["type"], item["hashed_secret"]) for name, items in result["results"].items() for item in items}


def main() -> int:
    mode = sys.argv[1] if len(sys.argv) > 1 else "check"
    result = scan()
    if mode == "baseline":
        old = json.loads(BASELINE.read_text()) if BASELINE.exists() else {"results": {}}
        audited = {(n, i["hashed_secret"]): i.get("is_secret") for n, items in old["results"].items() for i in items}
        for name, items in result["results"].items():
            for item in items:
                if (name, item["hashed_secret"]) in audited and audited[(name, item["hashed_secret"])] is not None:
                    item["is_secret"] = audited[(name, item["hashed_secret"])]
        result.pop("generated_at", None)
        BASELINE.write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
        print(f"wrote {BASELINE} with {len(findings(result))} known findings; audit new ones")
        return 0
    known = findings(json.loads(BASELINE.read_text()))
    new = sorted(findings(result) - known)
    for name, kind, _ in new:
        print(f"NEW SECRET? {name}: {kind}")
    print(f"secret scan: {len(findings(result))} findings, {len(new)} not in the baseline")
    return 1 if new else 0


if __name__ == "__main__":
    sys.exit(main())
