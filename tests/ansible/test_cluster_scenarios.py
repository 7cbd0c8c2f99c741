"""Molecule scenarios that need a real Kubernetes cluster (roles kubernetes, cluster_addons,
platform, pipeline_deploy, backup). They cannot run on the CI machines - no VMs, no Kubernetes,
no container registries - so they skip unless AMPERE_CLUSTER_INVENTORY names the inventory of a
disposable cluster's nodes (e.g. a dev environment after `terraform apply`). Order matters:
bootstrap first, then the platform, then a release, then a backup."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ansible_helpers import ROOT, run_molecule

INVENTORY = os.environ.get("AMPERE_CLUSTER_INVENTORY", "")
SCENARIOS = ["kubernetes", "cluster_addons", "platform", "pipeline_deploy", "backup"]

pytestmark = pytest.mark.skipif(
    not INVENTORY,
    reason="needs a Kubernetes cluster: set AMPERE_CLUSTER_INVENTORY to a disposable cluster's inventory",
)


@pytest.mark.parametrize("role", SCENARIOS)
def test_cluster_scenario(role):
    inventory = (ROOT / INVENTORY).resolve() if not Path(INVENTORY).is_absolute() else Path(INVENTORY)
    assert inventory.is_file(), f"{inventory} does not exist"
    run_molecule(role, "cluster", timeout=3600,
                 AMPERE_CLUSTER_INVENTORY=str(inventory),
                 AMPERE_CLUSTER_GROUP_VARS=str(inventory.parent / "group_vars"))
