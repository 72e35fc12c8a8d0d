"""A rebalance: the trigger scan and the fold give way without leaving a write half done, and
an assignment never waits for good.

The partitions' next owner recovers their profiles from the changelog as soon as this worker's
revocation returns; a scan slice that wrote its fired markers after that would fire the same
campaigns twice on the next owner.
"""

from __future__ import annotations

import asyncio
from unittest.mock import AsyncMock

import pytest

from stream.domain.batch_fold import FoldMarks
from stream.domain.mapping import load_mapping
from stream.runtime import scanner, skips, watchdogs
from stream.runtime.app import app
from stream.runtime.fold_config import FoldConfig
from stream.runtime.tables import customer_to_profile
from stream.settings import get_settings


@pytest.fixture
def fold():
    # One per test: an asyncio.Lock binds to the loop it is first contended on, and each test
    # has its own loop.
    settings = get_settings()
    mapping = load_mapping(settings.mapping.preset, settings.mapping.file)
    return FoldConfig.build(settings, mapping, FoldMarks(), app, customer_to_profile)


@pytest.fixture
def store(fold):
    return fold.store


async def until(condition, turns: int = 100) -> None:
    """Let other tasks run until `condition()` holds (bounded)."""
    for _ in range(turns):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError("never happened")


async def waits_for_the_write_in_flight(store, hook) -> None:
    """`hook(store)` (a Faust signal handler's) returns only once a slice holding the lock is
    done."""
    stored = asyncio.Event()

    async def slice_in_flight() -> None:
        async with store.lock:
            await stored.wait()

    writing = asyncio.create_task(slice_in_flight())
    await until(store.lock.locked)
    waiting = asyncio.create_task(hook(store))
    for _ in range(20):
        await asyncio.sleep(0)
    assert not waiting.done()  # the next owner may not recover yet
    stored.set()
    await asyncio.wait_for(waiting, 5)
    await writing


async def test_a_revocation_returns_only_once_the_write_in_flight_is_stored(store):
    store.positions_known.set()
    await waits_for_the_write_in_flight(store, watchdogs._hold_checks)
    assert not store.positions_known.is_set()


async def test_a_stopping_worker_lets_the_write_in_flight_finish_first(store):
    await waits_for_the_write_in_flight(store, watchdogs._finish_writes)


async def test_a_slice_that_waited_out_a_revocation_writes_nothing(monkeypatch, store):
    assigned = {0}
    monkeypatch.setattr(scanner, "_settled", lambda store: True)
    monkeypatch.setattr(scanner, "_assigned", lambda: set(assigned))
    monkeypatch.setattr(scanner, "key_slices", lambda table, partition, size: iter([["c-1"]]))
    scan_slice = AsyncMock(return_value=1)
    monkeypatch.setattr(scanner, "_scan_slice", scan_slice)

    async with store.lock:  # a fold batch, then the revocation
        scanning = asyncio.create_task(scanner._scan(store, None, {0}))
        for _ in range(20):
            await asyncio.sleep(0)
        assigned.clear()  # partition 0 went to another worker
    assert await asyncio.wait_for(scanning, 5) == 0
    scan_slice.assert_not_awaited()


class Stopped(Exception):
    pass


@pytest.fixture
def stops(monkeypatch):
    """stop_before_commit raises instead of ending the process."""

    def stop(reason, exc=None):
        raise Stopped(reason)

    monkeypatch.setattr(watchdogs, "stop_before_commit", stop)


async def test_an_assignment_whose_offset_reads_never_return_stops_the_worker(
    monkeypatch, stops, fold
):
    async def never(*args, **kwargs):
        await asyncio.Event().wait()

    monkeypatch.setattr(watchdogs, "COMMITTED_OFFSETS_PATIENCE", 0.2)
    monkeypatch.setattr(watchdogs, "committed_offsets", never)
    with pytest.raises(Stopped, match="cannot read the group's committed offsets"):
        await asyncio.wait_for(watchdogs._forget_positions(fold), 10)
    assert not fold.store.positions_known.is_set()


async def test_a_rebalance_that_never_completes_stops_the_worker_once_past_its_patience(
    monkeypatch, stops, fold
):
    monkeypatch.setattr(watchdogs, "_watch_recovery", lambda now: None)
    monkeypatch.setattr(app, "rebalancing", True)
    monkeypatch.setattr(app, "in_recovery", False)
    monkeypatch.setattr(watchdogs, "blind_watch", skips.BlindWatch(0.05))
    await watchdogs.watch_for_stalls(fold)  # the first check that cannot look: patience starts
    await asyncio.sleep(0.1)
    with pytest.raises(Stopped, match="rebalance has not completed"):
        await watchdogs.watch_for_stalls(fold)


async def test_a_table_recovery_under_way_is_left_to_its_own_watch(monkeypatch, stops, fold):
    monkeypatch.setattr(watchdogs, "_watch_recovery", lambda now: None)
    monkeypatch.setattr(app, "rebalancing", True)
    monkeypatch.setattr(app, "in_recovery", True)
    monkeypatch.setattr(watchdogs, "blind_watch", skips.BlindWatch(0.05))
    for _ in range(3):
        await watchdogs.watch_for_stalls(fold)
        await asyncio.sleep(0.05)


async def test_a_stall_check_blocked_in_an_await_stops_the_worker_once_past_its_patience(
    monkeypatch, stops, fold
):
    async def blocked(fold):
        await asyncio.Event().wait()

    monkeypatch.setattr(watchdogs, "_check_for_stalls", blocked)
    monkeypatch.setattr(watchdogs, "CHECK_PATIENCE", 0.05)
    monkeypatch.setattr(watchdogs, "blind_watch", skips.BlindWatch(0.05))
    await watchdogs.watch_for_stalls(fold)  # times out: the patience starts
    with pytest.raises(Stopped, match="stall checks did not finish"):
        await watchdogs.watch_for_stalls(fold)
