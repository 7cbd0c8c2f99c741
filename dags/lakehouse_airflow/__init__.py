"""Wiring shared by the DAG files in dags/: where the pipeline lives, how a step runs per
environment (subprocess locally, KubernetesPodOperator on the cluster),
Assets between layers, defaults (owner, retries, timeouts) and failure notifications.

No pipeline logic lives here: every step is a `lakehouse ...` command of the pipeline package.
"""
