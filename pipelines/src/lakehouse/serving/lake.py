"""The lake's Delta tables by name, and their versions in time (for snapshots and the SQL shell)."""

from __future__ import annotations

from datetime import datetime

import pyarrow.fs as pafs

from lakehouse.core.storage import LAYERS, Lake


def lake_tables(lake: Lake, layers: list[str] | tuple[str, ...] = LAYERS) -> list[str]:
    """Every Delta table of `layers` in the lake, as layer.name, sorted."""
    out = []
    for layer in layers:
        fs, root = lake.filesystem(layer)
        try:
            infos = fs.get_file_info(pafs.FileSelector(root, allow_not_found=True))
        except OSError:
            continue
        for info in infos:
            if info.type == pafs.FileType.Directory and not info.base_name.startswith((".", "_")):
                name = f"{layer}.{info.base_name}"
                if lake.exists(name):
                    out.append(name)
    return sorted(out)


def version_at(lake: Lake, table: str, when: datetime) -> int | None:
    """The table's version as of `when`: its last commit at or before it (commit times from the
    log's commitInfo); None when the table had no commit yet then."""
    stamp_ms = when.timestamp() * 1000
    versions = [
        int(entry["version"])
        for entry in lake.table(table).history()
        if entry.get("timestamp") is not None and entry["timestamp"] <= stamp_ms
    ]
    return max(versions) if versions else None
