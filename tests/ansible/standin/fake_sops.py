#!/usr/bin/env python3
"""A stand-in for `sops decrypt` used by the playbook tests: it answers with the key tree of the
real encrypted file (SOPS leaves keys in plaintext) and a fake value at every leaf, so the
playbooks load secrets through the real community.sops action plugin without any real value
reaching the recordings or the disk. `fake-<dotted.path>` is what a test sees."""

import json
import sys

import yaml


def fake(node, path=()):
    if isinstance(node, dict):
        return {key: fake(value, path + (str(key),)) for key, value in node.items()}
    if isinstance(node, list):
        return [fake(value, path + (str(i),)) for i, value in enumerate(node)]
    return "fake-" + ".".join(path)


def main(argv: list[str]) -> int:
    if "--version" in argv or argv[:1] == ["version"]:
        print("sops 3.11.0 (latest)")
        return 0
    if "decrypt" not in argv and "--decrypt" not in argv:
        print(f"fake_sops: only decrypt is supported, got {argv}", file=sys.stderr)
        return 2
    output_type = argv[argv.index("--output-type") + 1] if "--output-type" in argv else "yaml"
    with open(argv[-1], encoding="utf-8") as handle:
        doc = yaml.safe_load(handle)
    doc.pop("sops", None)
    data = fake(doc)
    sys.stdout.write(json.dumps(data) if output_type == "json" else yaml.safe_dump(data, sort_keys=False))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
