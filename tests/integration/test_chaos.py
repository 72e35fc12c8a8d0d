"""Chaos against the real broker: workers killed at random moments, alone and in a group.

Every run must end with every contact equal to the reference model (no points counted twice,
none lost) and every events partition committed to its end (none stalls). A worker that stops
by itself (it does so rather than commit past a record it could not store) is restarted, as
Kubernetes would.
"""

from __future__ import annotations

import asyncio
import random
import signal

from tests.support.catalogue import arrival_balances, generate
from tests.support.processes import second_worker, start_ready
from tests.support.scenarios import produce_all
from tests.support.waiting import poll, sandbox_get, settle

CUSTOMERS = 400
KILLS = 10


async def test_sigkill_ten_times_at_random_moments_ends_in_the_reference_contacts(
    names, sandbox, worker, producer
):
    events, expected = generate(seed=99, customers=CUSTOMERS)
    waves = [events[n::KILLS] for n in range(KILLS)]  # fresh work for every life of the worker
    expected = arrival_balances(expected, [event for wave in waves for event in wave])
    await produce_all(producer, names, waves[0])
    rng = random.Random(7)
    for kill in range(KILLS):
        worker.start()
        if kill % 2 == 0:
            # Within the first seconds: before the worker is ready or has committed anything.
            await asyncio.sleep(rng.uniform(0.3, 3.0))
        else:
            # While it folds and pushes a wave of events.
            await worker.wait_ready()
            await asyncio.sleep(rng.uniform(0.0, 1.5))
        if kill + 1 < KILLS:
            await produce_all(producer, names, waves[kill + 1])
        await worker.stop_async(signal.SIGKILL)
    worker.start()
    await settle(sandbox, names, expected, worker)
    log = worker.text()
    assert log.count("Traceback") == log.count("stopping before committing"), "no unexpected crash"


async def test_two_workers_one_killed_mid_stream_the_other_takes_over(
    names, sandbox, worker, producer, tmp_path
):
    events, expected = generate(seed=123, customers=CUSTOMERS)
    other = second_worker(worker.env, tmp_path)
    await start_ready(worker, other)
    await produce_all(producer, names, events)
    await poll(lambda: sandbox_get(sandbox, "/_sandbox/stats"), lambda s: s["contacts"] > 30)
    other.stop(signal.SIGKILL)
    try:
        await settle(sandbox, names, expected, worker)
    finally:
        await other.stop_async()


async def test_two_workers_one_killed_before_its_first_commit_no_partition_stalls(
    names, sandbox, worker, producer, tmp_path
):
    events, expected = generate(seed=321, customers=CUSTOMERS)
    await produce_all(producer, names, events)
    other = second_worker(worker.env, tmp_path)
    worker.start()
    other.start()
    # About two seconds in: the group has formed (or is forming), nothing is committed yet.
    await asyncio.sleep(2.0)
    other.stop(signal.SIGKILL)
    try:
        await settle(sandbox, names, expected, worker)
    finally:
        await other.stop_async()
