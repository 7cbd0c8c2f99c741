"""Keep the process's memory flat across chunks (the glibc parts are no-ops elsewhere).

delta-rs and DuckDB allocate from many threads; glibc gives each thread its own malloc arena and
returns little of it, and Arrow's allocator keeps freed blocks in its own pool, so resident memory
creeps up chunk after chunk although the live data does not grow. Two arenas, and handing both
pools back after each chunk, keep RSS at the working set.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys
from functools import cache

import pyarrow as pa

M_ARENA_MAX = -8  # mallopt parameter, from glibc's malloc.h


@cache
def _libc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name or "libc.so.6")
        return libc if hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim") else None
    except OSError:
        return None


def cap_arenas(arenas: int = 2) -> None:
    """Limit glibc to `arenas` malloc arenas (call before the worker threads start)."""
    libc = _libc()
    if libc is not None:
        libc.mallopt(M_ARENA_MAX, arenas)


def release() -> None:
    """Hand freed heap memory back to the OS (between chunks): Arrow's allocator pool, then
    glibc's heap."""
    pa.default_memory_pool().release_unused()
    libc = _libc()
    if libc is not None:
        libc.malloc_trim(0)
