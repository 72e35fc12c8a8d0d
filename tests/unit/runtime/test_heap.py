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


async def test_the_worker_collects_and_trims_on_their_own_timers(monkeypatch):
    done: list[str] = []
    monkeypatch.setattr(heap, "_malloc_trim", lambda pad: done.append(f"trim {pad}"))
    monkeypatch.setattr(heap.gc, "collect", lambda generation: done.append(f"gc {generation}"))
    app = _TimerApp()
    heap.declare(app)
    assert sorted(app.timers) == sorted([heap.TRIM_EVERY, heap.COLLECT_EVERY])
    await app.timers[heap.TRIM_EVERY]()  # type: ignore[operator]
    assert done == ["trim 0"]
    done.clear()
    for _ in range(heap.FULL_EVERY):
        await app.timers[heap.COLLECT_EVERY]()  # type: ignore[operator]
    # The young generations every time, everything every FULL_EVERY-th.
    assert done == ["gc 1"] * (heap.FULL_EVERY - 1) + ["gc 2"]


async def test_the_worker_timer_frees_a_reference_cycle_the_threshold_leaves_alone():
    # The worker's threshold sits above a batch's working set: a cycle left behind (here an
    # exception holding the frame that holds it), even one a young collection has already
    # moved on, waits for the timer, which frees it.
    freed: list[str] = []

    class Held:
        def __del__(self) -> None:
            freed.append("held")

    def raise_and_keep() -> ValueError:
        held = Held()  # noqa: F841 - a local of the frame the traceback holds
        try:
            raise ValueError("kept")
        except ValueError as exc:
            kept = exc  # the frame -> the exception -> its traceback -> the frame
        return kept

    app = _TimerApp()
    heap.declare(app)
    thresholds = heap.gc.get_threshold()
    try:
        heap.gc.set_threshold(heap.WORKER_YOUNG_THRESHOLD, heap.MIDDLE_THRESHOLD)
        kept = raise_and_keep()
        heap.gc.collect(0)  # survives a young collection: now in the middle generation
        del kept
        assert freed == []  # a cycle: reference counting alone cannot free it
        await app.timers[heap.COLLECT_EVERY]()  # type: ignore[operator]
        assert freed == ["held"]
    finally:
        heap.gc.set_threshold(*thresholds)
