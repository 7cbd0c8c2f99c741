"""`lakehouse demo` end to end, as a user runs it, in a fresh state folder."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from lakehouse.services import all_services

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]


def test_demo_runs_end_to_end_and_proves_its_counts(settings_factory: Any) -> None:
    settings = settings_factory({"generator.events": 8000}, fresh_state=True)
    env = {
        **os.environ,
        "LAKEHOUSE_LAKE_ROOT": settings.lake_uri,
        "LAKEHOUSE_STATE_DIR": str(settings.state_path),
        "LAKEHOUSE_PG_PORT": str(settings.postgres.port),
        "LAKEHOUSE_EVENTS": "8000",
        "LAKEHOUSE_CUSTOMERS": "500",
    }
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "lakehouse.cli", "demo"],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        out = proc.stdout + proc.stderr
        assert proc.returncode == 0, out[-3000:]
        for heading in ("Tables", "Quarantine by reason", "Reconciliation (this demo)", "Timings"):
            assert heading in out
        assert "every run's counts add up" in out
        assert "silver.dim_customer" in out
        # Running it again is idempotent: same data, nothing new ingested.
        again = subprocess.run(
            [sys.executable, "-m", "lakehouse.cli", "demo"],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert again.returncode == 0, (again.stdout + again.stderr)[-3000:]
        assert "every run's counts add up" in again.stdout
    finally:
        for service in reversed(all_services(settings)):
            service.stop()
