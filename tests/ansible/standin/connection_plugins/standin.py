"""Connection for the playbook tests: runs Ansible's own housekeeping (temporary folders) on the
controller like `local`, but reports itself as a remote transport, so that action plugins treat
paths such as a kubeconfig as paths on the target host, as they do over SSH. Module executions
never reach it: the cluster_standin callback answers them."""

from ansible.plugins.connection.local import Connection as LocalConnection

DOCUMENTATION = """
    name: standin
    short_description: local execution that action plugins see as a remote host (tests only)
    description: Used with the cluster_standin callback by tests/ansible/playbook_runs.py.
    extends_documentation_fragment: [connection_pipelining]
"""


class Connection(LocalConnection):
    transport = "standin"
