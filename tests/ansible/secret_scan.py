#!/usr/bin/env python3
"""Secret scan for the Ansible part of the repository, against the committed baseline.

    secret_scan.py check      # exit 1 and list findings that are not in .secrets.baseline
    secret_scan.py baseline   # rewrite .secrets.baseline from a fresh scan (then audit it)
    secret_scan.py state      # exit 1 if a decrypted dev/CI secret value sits in any file under .state/

Scanned: the paths below, every file (tracked or not), with detect-secrets' default plugins
plus an age private-key detector. Encrypted SOPS values (ENC[...]) and the armored age blocks of
SOPS metadata are excluded line by line, so a plaintext value in a secrets file is still caught;
tests/ansible/test_secrets.py also proves every value under secrets/ is encrypted.
"""

from __future__ import annotations

import json
import os
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


def decrypted_values() -> dict[str, str]:
    """Every leaf of the dev/CI SOPS files, decrypted with the committed dev/CI key: dotted path -> value."""
    sops = Path(sys.executable).with_name("sops")
    env = dict(os.environ, SOPS_AGE_KEY_FILE=str(ROOT / "tests/ansible/fixtures/dev-ci.agekey"))
    values: dict[str, str] = {}

    def walk(node, path):
        if isinstance(node, dict):
            for key, value in node.items():
                walk(value, path + [str(key)])
        elif isinstance(node, str) and len(node) >= 8:
            values[".".join(path)] = node

    for path in sorted((ROOT / "secrets").glob("*/*.sops.y*ml")):
        if path.parent.name not in ("dev", "ci"):
            continue
        out = subprocess.run([str(sops), "--disable-version-check", "decrypt", "--output-type", "json", str(path)],
                             env=env, check=True, capture_output=True, text=True).stdout
        walk(json.loads(out), [str(path.relative_to(ROOT))])
    return values


def scan_state(state: Path = ROOT / ".state") -> list[tuple[str, str]]:
    """(file, secret path) for every decrypted value found in a file under state (bytes, any encoding
    of the value as written: plain and JSON-escaped)."""
    values = decrypted_values()
    needles = {key: {value.encode(), json.dumps(value)[1:-1].encode()} for key, value in values.items()}
    found = []
    for file in state.rglob("*"):
        if not file.is_file() or file.is_symlink() or "/.venv" in str(file) or "/bootstrap/" in str(file):
            continue
        try:
            data = file.read_bytes()
        except OSError:
            continue
        for key, options in needles.items():
            if any(needle in data for needle in options):
                found.append((str(file.relative_to(ROOT) if file.is_relative_to(ROOT) else file), key))
    return found


def main() -> int:
    mode = sys.argv[1] if len(sys.argv) > 1 else "check"
    if mode == "state":
        found = scan_state()
        for name, key in found:
            print(f"DECRYPTED SECRET on disk: {name} holds {key}")
        print(f"state scan: {len(found)} decrypted values found under .state/")
        return 1 if found else 0
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
