"""Stand-in for the machines and the cluster, at the last step of a real ansible-playbook run.

The playbooks run unchanged: real inventory and group_vars, real variable scopes (role defaults,
role dependencies, include_role/include_tasks, set_fact, register, loops, `when`), real action
plugins (template, copy, assert, set_fact, load_vars). Only the step where an action plugin hands a
module to a target host (`ActionBase._execute_module`) is answered here instead: the call is
recorded with the arguments Ansible templated for it, and a plausible result comes back. What the
tests read is therefore exactly what a real run would have sent to the nodes and the cluster.

Kubernetes objects applied through kubernetes.core.k8s are kept in a small object store (a JSON
file shared by Ansible's forked workers) so that k8s_info answers what an earlier task applied;
a scenario can seed objects that "already exist" (STANDIN_SEED).

Environment:
  STANDIN_DIR    folder for calls.jsonl and objects.json (required)
  STANDIN_STATE  fresh | converged: whether the nodes already run Kubernetes
  STANDIN_SEED   optional JSON file with objects to start from
  STANDIN_SERVER_VERSION  control-plane version answered to `kubectl version` (default: the pin)
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import re
from contextlib import contextmanager
from pathlib import Path

from ansible.plugins.action import ActionBase
from ansible.plugins.callback import CallbackBase

DOCUMENTATION = """
    name: cluster_standin
    type: aggregate
    short_description: answers module calls in place of the target hosts (tests only)
    description: Records every module call with its templated arguments and answers it.
    requirements: [STANDIN_DIR in the environment]
"""

_ORIGINAL = ActionBase._execute_module


def _dir() -> Path:
    return Path(os.environ["STANDIN_DIR"])


@contextmanager
def _locked():
    lock = (_dir() / ".lock").open("a")
    fcntl.flock(lock, fcntl.LOCK_EX)
    try:
        yield
    finally:
        fcntl.flock(lock, fcntl.LOCK_UN)
        lock.close()


def _plain(value):
    """Module args as plain JSON (Ansible's tagged strings and lazy containers included)."""
    return json.loads(json.dumps(value, default=str))


def _objects() -> dict:
    path = _dir() / "objects.json"
    return json.loads(path.read_text()) if path.exists() else {}


def _save_objects(objects: dict) -> None:
    (_dir() / "objects.json").write_text(json.dumps(objects, indent=1, sort_keys=True))


def _key(kind: str, namespace: str | None, name: str | None) -> str:
    return f"{kind}/{namespace or ''}/{name or ''}"


def _with_status(obj: dict, objects: dict) -> dict:
    """What the operators would have written into status once they reconciled the object."""
    obj = json.loads(json.dumps(obj))
    kind = obj.get("kind")
    status = obj.setdefault("status", {})
    if kind == "Cluster":
        roles = [r["name"] for r in obj.get("spec", {}).get("managed", {}).get("roles", [])]
        status.update({"phase": "Cluster in healthy state",
                       "managedRolesStatus": {"byStatus": {"reconciled": roles}}})
    elif kind == "Service":
        spec = obj.setdefault("spec", {})
        spec.setdefault("clusterIP", "10.96.0.42")
        if spec.get("type") == "LoadBalancer":
            status["loadBalancer"] = {"ingress": [{"ip": spec.get("loadBalancerIP") or "10.42.10.100"}]}
    elif kind == "Job":
        status.update({"succeeded": 1, "conditions": [{"type": "Complete", "status": "True"}]})
    return obj


def _k8s_definitions(args: dict) -> list[dict]:
    definition = args.get("resource_definition") or args.get("definition")
    if definition is None:
        return []
    if isinstance(definition, str):
        import yaml  # noqa: PLC0415 - only needed for string definitions

        definition = list(yaml.safe_load_all(definition))
    if isinstance(definition, dict):
        definition = [definition]
    return [d for d in definition if d]


def _answer_k8s(args: dict) -> dict:
    state = args.get("state", "present")
    with _locked():
        objects = _objects()
        results = []
        for doc in _k8s_definitions(args):
            meta = doc.setdefault("metadata", {})
            namespace = meta.get("namespace") or args.get("namespace")
            key = _key(doc.get("kind", args.get("kind")), namespace, meta.get("name") or args.get("name"))
            if state == "absent":
                objects.pop(key, None)
            elif state == "patched":
                if key in objects:
                    _merge(objects[key], doc)
            else:
                objects[key] = doc
            results.append(doc)
        _save_objects(objects)
    return {"changed": True, "result": results[0] if len(results) == 1 else {"results": results}}


def _merge(target: dict, patch: dict) -> None:
    for key, value in patch.items():
        if isinstance(value, dict) and isinstance(target.get(key), dict):
            _merge(target[key], value)
        else:
            target[key] = value


def _answer_k8s_info(args: dict) -> dict:
    kind, name, namespace = args.get("kind"), args.get("name"), args.get("namespace")
    objects = _objects()
    found = []
    for key, obj in objects.items():
        okind, onamespace, oname = key.split("/", 2)
        if okind != kind or (name and oname != name) or (namespace and onamespace != namespace):
            continue
        found.append(_with_status(obj, objects))
    if not found and kind == "Service" and name:
        # Services a Helm chart created (the stand-in keeps only what kubernetes.core.k8s applied).
        found = [_with_status({"kind": "Service", "metadata": {"name": name, "namespace": namespace},
                               "spec": {"type": "ClusterIP"}}, objects)]
    if not found and kind == "Node":
        found = [{"kind": "Node", "metadata": {"name": name or "node"},
                  "status": {"conditions": [{"type": "Ready", "status": "True"}]}}]
    return {"changed": False, "resources": found, "api_found": True}


def _facts(task_vars: dict) -> dict:
    host = task_vars.get("inventory_hostname")
    address = task_vars.get("node_ip") or task_vars.get("ansible_host") or "127.0.0.1"
    return {"ansible_facts": {
        "ansible_hostname": host, "ansible_nodename": host, "ansible_fqdn": host,
        "ansible_default_ipv4": {"interface": "enp1s0", "address": address},
        "ansible_all_ipv4_addresses": [address],
        "ansible_distribution": "Ubuntu", "ansible_distribution_release": "noble",
        "ansible_distribution_version": "24.04", "ansible_distribution_major_version": "24",
        "ansible_os_family": "Debian", "ansible_system": "Linux", "ansible_architecture": "x86_64",
        "ansible_processor_vcpus": 4, "ansible_memtotal_mb": 8192,
        "ansible_service_mgr": "systemd", "ansible_pkg_mgr": "apt",
        "ansible_python": {"executable": "/usr/bin/python3", "version": {"major": 3, "minor": 12}},
        "module_setup": True}, "changed": False}


def _answer_command(args: dict, task_vars: dict) -> dict:
    line = str(args.get("_raw_params") or args.get("cmd") or " ".join(args.get("argv") or []))
    converged = os.environ.get("STANDIN_STATE") == "converged"
    out = ""
    if "kubeadm token create" in line:
        endpoint = task_vars.get("kubernetes_control_plane_endpoint", "10.0.0.1")
        out = f"kubeadm join {str(endpoint).strip()}:6443 --token abcdef.0123456789abcdef --discovery-token-ca-cert-hash sha256:{'0' * 64}"
    elif "upload-certs" in line:
        out = "[upload-certs] Storing the certificates in Secret\n[upload-certs] Using certificate key:\n" + "ab" * 32
    elif re.search(r"kubectl .*version", line):
        version = os.environ.get("STANDIN_SERVER_VERSION") or "v" + str(task_vars.get("kubernetes_version", "1.33.5"))
        out = json.dumps({"serverVersion": {"gitVersion": version}})
    elif "kubelet --version" in line:
        out = "Kubernetes " + (os.environ.get("STANDIN_SERVER_VERSION") or "v" + str(task_vars.get("kubernetes_version", "1.33.5")))
    elif "helm version" in line:
        out = (task_vars.get("kubernetes_helm_version", "v3.19.0") + "+g0000000") if converged else ""
    elif line.startswith("age-keygen"):
        out = "# public key: age1standin\nAGE-SECRET-KEY-STANDIN"
    return {"changed": True, "rc": 0, "stdout": out, "stdout_lines": out.splitlines(), "stderr": "", "stderr_lines": []}


def _answer(module: str, args: dict, task_vars: dict) -> dict:
    short = module.rsplit(".", 1)[-1]
    converged = os.environ.get("STANDIN_STATE") == "converged"
    if short in ("setup", "gather_facts"):
        return _facts(task_vars)
    if short == "stat":
        path = str(args.get("path", ""))
        # Kubernetes' own files exist once the node runs Kubernetes; other files do not yet, and
        # system folders are those a Debian-family host has (this machine's layout).
        isdir = os.path.isdir(path)
        exists = converged if path.startswith(("/etc/kubernetes/", "/root/.kube/")) else isdir
        return {"changed": False, "stat": {"exists": exists, "isdir": isdir and exists, "path": path,
                                           "mode": "0600", "checksum": ""}}
    if short in ("command", "shell"):
        return _answer_command(args, task_vars)
    if short == "slurp":
        content = "Filename\tType\tSize\tUsed\tPriority\n" if str(args.get("src")) == "/proc/swaps" else ""
        return {"changed": False, "content": base64.b64encode(content.encode()).decode(), "encoding": "base64"}
    if short == "k8s":
        return _answer_k8s(args)
    if short == "k8s_info":
        return _answer_k8s_info(args)
    if short in ("helm", "helm_info"):
        return {"changed": short == "helm", "status": {"status": "deployed", "name": args.get("release_name")}}
    if short == "iam_access_key_info":
        return {"changed": False, "access_keys": []}
    if short == "iam_access_key":
        return {"changed": True, "access_key": {"access_key_id": "STANDINKEYID"}, "secret_access_key": "standin-secret"}
    if short == "postgresql_query":
        return {"changed": False, "query_result": [{"count": 0}], "rowcount": 1}
    return {"changed": True, "rc": 0}


def _execute_module(self, module_name=None, module_args=None, tmp=None, task_vars=None, *args, **kwargs):
    task_vars = task_vars or {}
    module = module_name or self._task.action
    plain = _plain(module_args if module_args is not None else self._task.args)
    source = plain.get("src")
    if module.rsplit(".", 1)[-1] == "copy" and source and Path(str(source)).is_file():
        plain["_content"] = Path(str(source)).read_text(errors="replace")
    record = {
        "host": task_vars.get("inventory_hostname"),
        "play": self._task.play.get_name() if getattr(self._task, "play", None) else None,
        "task": self._task.get_name(),
        "module": module,
        "args": plain,
        "delegate_to": self._task.delegate_to,
    }
    with _locked():
        with (_dir() / "calls.jsonl").open("a") as out:
            out.write(json.dumps(record) + "\n")
    result = _answer(module, plain, task_vars)
    result.setdefault("invocation", {"module_args": plain})
    return result


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "cluster_standin"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if "STANDIN_DIR" not in os.environ:
            raise RuntimeError("cluster_standin needs STANDIN_DIR")
        seed = os.environ.get("STANDIN_SEED")
        with _locked():
            if seed and not (_dir() / "objects.json").exists():
                _save_objects(json.loads(Path(seed).read_text()))
        ActionBase._execute_module = _execute_module
