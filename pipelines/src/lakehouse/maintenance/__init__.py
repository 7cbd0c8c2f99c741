"""Table maintenance over delta-rs: OPTIMIZE (compaction, Z-order), VACUUM, checkpoints, restore.
The CLI (`lakehouse maintain ...`) and the Airflow maintenance DAG call these."""

from lakehouse.maintenance.consistent_restore import restore
from lakehouse.maintenance.ops import (
    MaintenanceResult,
    checkpoint,
    discover_tables,
    maintain,
    optimize,
    vacuum,
)

__all__ = [
    "MaintenanceResult",
    "checkpoint",
    "discover_tables",
    "maintain",
    "optimize",
    "restore",
    "vacuum",
]
