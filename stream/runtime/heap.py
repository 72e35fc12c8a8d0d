"""The garbage collector's settings for a long-running process.

The worker keeps tens of thousands of decoded profiles (stream.domain.profile_cache) and the
pusher its coalescing buffers: with CPython's default thresholds (700, 10, 10) a young
collection runs every few hundred events and a full one walks that whole heap every few
seconds. Measured in the bench's full pipeline (100,000 events, 10,000 customers), collection
took 3.5 s of the worker's 27 s of CPU, 2.8 s of it in 23 full collections. Almost nothing the
fold allocates is cyclic (reference counting frees it), so collecting rarely costs only the
few cycles that wait longer; the objects that exist at start-up (modules, settings, the
mapping) are never garbage and are taken out of every collection.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
from typing import Any

# Allocations minus deallocations between young collections; then the counts of younger
# collections between older ones.
YOUNG_THRESHOLD = 100_000
MIDDLE_THRESHOLD = 20
OLD_THRESHOLD = 20

# RocksDB's background threads (flushes, compactions) and the recovery's writer each allocate
# from their own glibc arena, which keeps what they free: at a million customers that was
# 60-80 MiB more resident memory than at ten thousand. A trim of a few hundred MiB of heap
# takes milliseconds.
TRIM_EVERY = 10.0


def tune_collector() -> None:
    """Collect rarely, and never walk what exists now; call once start-up has imported all."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG_THRESHOLD, MIDDLE_THRESHOLD, OLD_THRESHOLD)


def _libc_trim() -> object:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    return getattr(ctypes.CDLL(name), "malloc_trim", None)


_malloc_trim = _libc_trim()


def release_freed_memory() -> bool:
    """Hand the memory freed since to the system; True if the C library could.

    A table recovery allocates and frees gigabytes of small records: glibc keeps what was
    freed in its arenas, so the process's resident memory would stay at the recovery's peak
    for good. Elsewhere (musl, macOS) there is nothing to call, and nothing is done.
    """
    if _malloc_trim is None:
        return False
    _malloc_trim(0)  # type: ignore[operator]
    return True


def declare(faust_app: Any) -> None:
    """Hand freed memory back to the system every TRIM_EVERY seconds while `faust_app` runs."""

    async def trim() -> None:
        release_freed_memory()

    faust_app.timer(TRIM_EVERY, name=f"{__name__}.trim")(trim)
