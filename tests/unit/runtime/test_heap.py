"""Freed memory goes back to the system after a recovery (stream.runtime.heap)."""

from __future__ import annotations

import os

from stream.runtime import heap
from stream.runtime.heap import release_freed_memory


def _resident_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def test_memory_freed_between_records_still_held_is_handed_back():
    # What a recovery leaves: many profile-sized values freed, a few still held among them,
    # so no freed block sits at the top of the heap where glibc would trim it by itself.
    values = [os.urandom(2500) for _ in range(80_000)]
    kept = values[::64]
    del values
    before = _resident_bytes()
    assert release_freed_memory()
    after = _resident_bytes()
    assert before - after > 50 * 1024 * 1024, (before, after)
    assert len(kept) == 1250


class _TimerApp:
    """What `heap.declare` asks of a Faust app: `timer(interval, name=...)` as a decorator."""

    def __init__(self) -> None:
        self.timers: dict[float, object] = {}

    def timer(self, interval: float, *, name: str):
        def register(function):
            self.timers[interval] = function
            return function

        return register


async def test_the_worker_trims_freed_memory_every_trim_interval(monkeypatch):
    trims: list[int] = []
    monkeypatch.setattr(heap, "_malloc_trim", trims.append)
    app = _TimerApp()
    heap.declare(app)
    assert list(app.timers) == [heap.TRIM_EVERY]
    await app.timers[heap.TRIM_EVERY]()  # type: ignore[operator]
    assert trims == [0]
