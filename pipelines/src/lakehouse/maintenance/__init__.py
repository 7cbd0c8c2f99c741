"""Table maintenance over delta-rs: OPTIMIZE (compaction, Z-order), VACUUM, checkpoints, restore,
backfill. The CLI (`lakehouse maintain ...`) and the Airflow maintenance DAG call these."""

from lakehouse.maintenance.ops import (
    MaintenanceResult,
    backfill,
    checkpoint,
    discover_tables,
    maintain,
    optimize,
    restore,
    vacuum,
)

__all__ = [
    "MaintenanceResult",
    "backfill",
    "checkpoint",
    "discover_tables",
    "maintain",
    "optimize",
    "restore",
    "vacuum",
]
