"""SOPS + age: what is committed under secrets/ is encrypted, dev/CI decrypts with the committed
dev/CI age key, .sops.yaml routes prod to Azure Key Vault and dev to age, and the secret scanner
finds nothing outside its audited baseline (and does find a planted secret)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from ansible_helpers import DEV_AGE_KEY, ROOT, VENV_BIN, tool_env

SOPS = [str(VENV_BIN / "sops"), "--disable-version-check"]
SECRET_FILES = sorted(p for p in (ROOT / "secrets").rglob("*") if p.is_file())
DEV_FILES = [p for p in SECRET_FILES if p.relative_to(ROOT).parts[1] in ("dev", "ci")]
SOPS_CONFIG = yaml.safe_load((ROOT / ".sops.yaml").read_text())


def leaves(node, path=()):
    if isinstance(node, dict):
        for key, value in node.items():
            yield from leaves(value, path + (key,))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from leaves(value, path + (index,))
    else:
        yield path, node


def test_secrets_folder_is_not_empty():
    assert DEV_FILES, "secrets/dev must hold the dev platform secrets"


@pytest.mark.parametrize("path", SECRET_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_file_under_secrets_is_sops_encrypted(path: Path):
    assert path.name.endswith((".sops.yaml", ".sops.yml")), "secrets/ holds only *.sops.yaml files"
    doc = yaml.safe_load(path.read_text())
    meta = doc.pop("sops")
    assert meta.get("mac", "").startswith("ENC[AES256_GCM,")
    assert meta.get("age") or meta.get("azure_kv"), "encrypted for an age recipient or an Azure Key Vault key"
    values = list(leaves(doc))
    assert values
    for key_path, value in values:
        assert isinstance(value, str) and value.startswith("ENC[AES256_GCM,data:"), f"plaintext at {key_path}"


@pytest.mark.parametrize("path", DEV_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_dev_files_decrypt_with_the_dev_ci_age_key(path: Path):
    out = subprocess.run(
        SOPS + ["decrypt", "--output-type", "json", str(path)],
        env=tool_env(SOPS_AGE_KEY_FILE=str(DEV_AGE_KEY)), capture_output=True, text=True, check=True,
    ).stdout
    data = json.loads(out)
    for key_path, value in leaves(data):
        assert isinstance(value, str) and value and not value.startswith("ENC["), key_path
    # What the roles read must be there (roles/secrets/defaults/main.yml).
    assert {"s3", "postgresql", "airflow", "grafana", "kafka", "backup"} <= set(data)
    assert set(data["s3"]["layer_secret_keys"]) == {
        "lakehouse-bronze-writer", "lakehouse-silver-writer", "lakehouse-gold-writer", "lakehouse-bi-reader",
        "airflow-logs-writer"}


@pytest.mark.parametrize("path", DEV_FILES[:1], ids=lambda p: str(p.relative_to(ROOT)))
def test_decryption_fails_without_the_key(path: Path, tmp_path: Path):
    env = tool_env(SOPS_AGE_KEY_FILE=str(tmp_path / "none.txt"), HOME=str(tmp_path))
    env.pop("SOPS_AGE_KEY", None)
    proc = subprocess.run(SOPS + ["decrypt", str(path)], env=env, capture_output=True, text=True)
    assert proc.returncode != 0
    assert "ENC[" not in proc.stdout


def rule_for(relative: str) -> dict:
    for rule in SOPS_CONFIG["creation_rules"]:
        if re.search(rule["path_regex"], relative):
            return rule
    raise AssertionError(f"no creation rule for {relative}")


def test_sops_routes_prod_to_azure_key_vault_and_dev_to_age():
    prod = rule_for("secrets/prod/platform.sops.yaml")
    assert re.match(r"^https://[a-z0-9-]+\.vault\.azure\.net/keys/[A-Za-z0-9-]+/", prod["azure_keyvault"])
    assert "age" not in prod, "prod is encrypted to Key Vault only; no age key can open it"
    dev = rule_for("secrets/dev/platform.sops.yaml")
    recipient = DEV_AGE_KEY.read_text().split("public key: ")[1].split()[0]
    assert dev["age"] == recipient and "azure_keyvault" not in dev
    with pytest.raises(AssertionError):
        rule_for("ansible/site.yml")


def test_sops_applies_the_dev_rule_when_encrypting(tmp_path: Path):
    """Encrypt a new dev file with the repository's .sops.yaml (in a scratch copy of the layout):
    SOPS itself picks the dev/CI age recipient from the path."""
    shutil.copy(ROOT / ".sops.yaml", tmp_path / ".sops.yaml")
    target = tmp_path / "secrets/dev/new.sops.yaml"
    target.parent.mkdir(parents=True)
    target.write_text("token: not-a-real-value\n")
    subprocess.run(SOPS + ["encrypt", "--in-place", str(target.relative_to(tmp_path))],
                   cwd=tmp_path, env=tool_env(), check=True, capture_output=True, text=True)
    meta = yaml.safe_load(target.read_text())["sops"]
    assert [entry["recipient"] for entry in meta["age"]] == [rule_for("secrets/dev/x.sops.yaml")["age"]]
    decrypted = subprocess.run(SOPS + ["decrypt", str(target)], env=tool_env(SOPS_AGE_KEY_FILE=str(DEV_AGE_KEY)),
                               check=True, capture_output=True, text=True).stdout
    assert "not-a-real-value" in decrypted


def test_no_secret_outside_the_audited_baseline():
    proc = subprocess.run([str(VENV_BIN / "python"), str(ROOT / "tests/ansible/secret_scan.py"), "check"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    baseline = json.loads((ROOT / ".secrets.baseline").read_text())
    flagged = {name for name, items in baseline["results"].items() for item in items if item.get("is_secret")}
    # The only real secret committed on purpose: the dev/CI age key that lets CI decrypt dev.
    assert flagged == {"tests/ansible/fixtures/dev-ci.agekey"}


def test_scanner_catches_planted_secrets(tmp_path: Path):
    """The same scan, on a scratch tree with plaintext secrets planted, reports them."""
    import sys
    sys.path.insert(0, str(ROOT / "tests/ansible"))
    import secret_scan  # noqa: PLC0415

    (tmp_path / "ansible").mkdir()
    # Built from pieces so that this file itself does not carry the literals.
    aws_key = "AKIA" + "IOSFODNN7EXAMPLE"
    age_key = "AGE-SECRET-KEY-1" + "Q" * 58
    keyword = "pass" + "word"
    (tmp_path / "ansible/leak.yml").write_text(
        f"aws_access_key_id: {aws_key}\n"
        f"db_{keyword}: 'Zx8#kq2!LmP0w9sT'\n"
        f"age: {age_key}\n")
    (tmp_path / "secrets/dev").mkdir(parents=True)
    (tmp_path / "secrets/dev/plain.sops.yaml").write_text(f"s3:\n    admin_{keyword}: 'hunter2-plaintext-Q9x!'\n")
    found = {(name, kind) for name, kind, _ in secret_scan.findings(secret_scan.scan(["ansible", "secrets"], root=tmp_path))}
    assert ("ansible/leak.yml", "AWS Access Key") in found
    assert ("ansible/leak.yml", "age Secret Key") in found
    assert ("ansible/leak.yml", "Secret Keyword") in found
    assert ("secrets/dev/plain.sops.yaml", "Secret Keyword") in found


def _load_dev_secrets(state: Path, **env: str) -> None:
    """The secrets role as a real play runs it (repository ansible.cfg, real sops, dev/CI key)."""
    playbook = state / "load.yml"
    playbook.write_text(yaml.safe_dump([{
        "name": "Load the dev secrets", "hosts": "all", "gather_facts": False,
        "vars": {"lakehouse_repo_root": str(ROOT), "lakehouse_environment": "dev", "secrets_age_keyfile": str(DEV_AGE_KEY),
                 "secrets_kubernetes_apply": False, "ansible_python_interpreter": str(VENV_BIN / "python")},
        "roles": [{"role": "secrets"}]}]))
    proc = subprocess.run([str(VENV_BIN / "ansible-playbook"), "-i", "controller,", "-c", "local", str(playbook)],
                          env=tool_env(ANSIBLE_ROLES_PATH=str(ROOT / "ansible/roles"), ANSIBLE_LOCAL_TEMP=str(state / "tmp"), **env),
                          capture_output=True, text=True, cwd=ROOT / "ansible")
    assert proc.returncode == 0, proc.stdout[-3000:]


def test_defect11_no_decrypted_secret_reaches_the_disk(tmp_path: Path):
    """Defect 11: facts cached as JSON files held every value community.sops.load_vars decrypted."""
    import sys
    sys.path.insert(0, str(ROOT / "tests/ansible"))
    import secret_scan  # noqa: PLC0415

    _load_dev_secrets(tmp_path)  # the repository's ansible.cfg as it is, wherever it caches
    assert secret_scan.scan_state(tmp_path) == []
    assert secret_scan.scan_state(ROOT / ".state") == []
    # The scan sees a file fact cache (the old configuration), so the check above can fail.
    leaky = tmp_path / "leaky"
    leaky.mkdir()
    try:
        _load_dev_secrets(leaky, ANSIBLE_CACHE_PLUGIN="jsonfile", ANSIBLE_CACHE_PLUGIN_CONNECTION=str(leaky / "facts"))
        found = secret_scan.scan_state(leaky)
        assert any("facts" in name for name, _ in found)
    finally:
        shutil.rmtree(leaky)  # the decrypted values of this control leave no copy behind
