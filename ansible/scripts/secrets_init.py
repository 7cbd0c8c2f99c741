#!/usr/bin/env python3
"""Create an environment's secrets file with fresh random values, encrypted by SOPS.

    secrets_init.py ENV [--like secrets/dev/platform.sops.yaml] [--force] [-- extra sops args]

The keys come from an existing environment's file (SOPS leaves keys in plaintext), so the new
file carries every value the roles read; the values are generated here and never touch the disk
unencrypted: the plaintext goes to `sops encrypt` on its standard input, and .sops.yaml's rule for
secrets/<ENV>/ picks the recipients (Azure Key Vault for prod). Extra arguments after `--` go to
sops (e.g. --age <recipient> to encrypt for a test key instead of the configured one).
"""

from __future__ import annotations

import argparse
import base64
import os
import secrets
import string
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def value_for(path: tuple[str, ...]) -> str:
    name = path[-1].lower()
    if "fernet" in name:
        return base64.urlsafe_b64encode(os.urandom(32)).decode()
    if name.endswith("access_key") or name.endswith("access_key_id"):
        return "".join(secrets.choice(string.ascii_uppercase + string.digits) for _ in range(20))
    return secrets.token_urlsafe(32)


def fresh(node, path=()):
    if isinstance(node, dict):
        return {key: fresh(value, path + (str(key),)) for key, value in node.items()}
    if isinstance(node, list):
        return [fresh(value, path + (str(i),)) for i, value in enumerate(node)]
    return value_for(path)


def main(argv: list[str]) -> int:
    sops_args: list[str] = []
    if "--" in argv:
        sops_args = argv[argv.index("--") + 1:]
        argv = argv[:argv.index("--")]
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("env")
    parser.add_argument("--like", default="secrets/dev/platform.sops.yaml")
    parser.add_argument("--output", help="write here instead of secrets/<env>/platform.sops.yaml")
    parser.add_argument("--force", action="store_true")
    args = parser.parse_args(argv)
    target = Path(args.output) if args.output else ROOT / "secrets" / args.env / "platform.sops.yaml"
    if target.exists() and not args.force:
        print(f"{target} exists; --force replaces it with new values", file=sys.stderr)
        return 1
    template = yaml.safe_load((ROOT / args.like).read_text())
    template.pop("sops", None)
    plaintext = yaml.safe_dump(fresh(template), sort_keys=False)
    sops = os.environ.get("SOPS", "sops")
    # Recipients from .sops.yaml's rule for the target path, unless given explicitly after `--`.
    rule = [] if sops_args else ["--filename-override", f"secrets/{args.env}/platform.sops.yaml"]
    proc = subprocess.run(
        [sops, "--disable-version-check", "encrypt", *rule,
         "--input-type", "yaml", "--output-type", "yaml", *sops_args, "/dev/stdin"],
        input=plaintext, capture_output=True, text=True, cwd=ROOT if rule else "/")
    if proc.returncode != 0:
        print(f"sops encrypt failed: {proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else proc.returncode}", file=sys.stderr)
        return 1
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(proc.stdout)
    print(f"wrote {target.relative_to(ROOT) if target.is_relative_to(ROOT) else target}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
