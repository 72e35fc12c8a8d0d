"""The garbage collector's settings for a long-running process.

The worker keeps tens of thousands of decoded profiles (stream.domain.profile_cache) and the
pusher its coalescing buffers: with CPython's default thresholds (700, 10, 10) a young
collection runs every few hundred events and a full one walks that whole heap every few
seconds. Measured in the bench's full pipeline (100,000 events, 10,000 customers), collection
took 3.5 s of the worker's 27 s of CPU, 2.8 s of it in 23 full collections. Almost nothing the
fold allocates is cyclic (reference counting frees it), so collecting rarely costs only the
few cycles that wait longer; the objects that exist at start-up (modules, settings, the
mapping) are never garbage and are taken out of every collection.

The worker goes further. A fold batch allocates about 100,000 tracked objects (parsed events,
profile versions, outbox records) that all live until the batch is stored: a young collection
in the middle of a batch walks them all and frees nothing. Measured on figure c (100,000
events, pusher apart): 14 young collections during the fold, 0 objects freed, 0.9 s of the
worker's 11 s of CPU. So the worker's young threshold sits above a batch's working set, and
what the fold's batches never trigger is done on a timer instead: the young generations every
few seconds and everything every minute, so a reference cycle (an exception holding its
frames, the in-worker pusher's HTTP objects) is freed within seconds, whatever the load.
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
# The worker's young threshold: above a fold batch's working set (about 20 tracked objects per
# record of a 5,000-record batch), so only growth or garbage reaches it. Only with `declare`.
WORKER_YOUNG_THRESHOLD = 1_000_000

# RocksDB's background threads (flushes, compactions) and the recovery's writer each allocate
# from their own glibc arena, which keeps what they free: at a million customers that was
# 60-80 MiB more resident memory than at ten thousand. A trim of a few hundred MiB of heap
# takes milliseconds. Every 2 s, not 10: a batch's freed memory is handed back before the
# next few batches pile more on it (figure s at a million customers: a worker peak of
# 339-348 MiB with a trim every 10 s, 295-314 with one every 2 s).
TRIM_EVERY = 2.0
# The worker's timed collections (see the module): the young generations every
# COLLECT_EVERY seconds (one costs tens of milliseconds mid-batch), all of them at every
# FULL_EVERY-th.
COLLECT_EVERY = 10.0
FULL_EVERY = 6


def tune_collector(young: int = YOUNG_THRESHOLD) -> None:
    """Collect rarely, and never walk what exists now; call once start-up has imported all.

    `young`: WORKER_YOUNG_THRESHOLD in a process that runs `declare`'s timer.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(young, MIDDLE_THRESHOLD, OLD_THRESHOLD)


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
    """While `faust_app` runs: collect every COLLECT_EVERY seconds (the young generations, or
    all of them every FULL_EVERY-th time), and hand freed memory back to the system every
    TRIM_EVERY seconds."""
    collections = 0

    async def collect() -> None:
        nonlocal collections
        collections += 1
        gc.collect(2 if collections % FULL_EVERY == 0 else 1)

    async def trim() -> None:
        release_freed_memory()

    faust_app.timer(COLLECT_EVERY, name=f"{__name__}.collect")(collect)
    faust_app.timer(TRIM_EVERY, name=f"{__name__}.trim")(trim)
