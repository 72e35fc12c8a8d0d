from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import Coroutine
from typing import Any

import pytest

from stream.ometria.pacing import (
    MAX_RETRY_AFTER,
    QUEUE_LOW_WATER,
    RATE_MARGIN,
    SLOT_MARGIN,
    SLOT_TOLERANCE,
    Pacer,
    Slots,
)


class Clock:
    """Time that moves only when the pacer sleeps; `oversleep` makes every sleep run late."""

    def __init__(self, oversleep: float = 0.0) -> None:
        self.now = 0.0
        self.oversleep = oversleep

    def __call__(self) -> float:
        return self.now

    async def sleep(self, delay: float) -> None:
        wake_at = self.now + delay + self.oversleep
        await asyncio.sleep(0)  # others run meanwhile, as they would during a real sleep
        self.now = max(self.now, wake_at)


@pytest.fixture
def clock() -> Clock:
    return Clock()


async def send_times(pacer: Pacer, clock: Clock, count: int) -> list[float]:
    times = []
    for _ in range(count):
        await pacer.wait()
        times.append(clock.now)
    return times


def most_in_one_second(times: list[float]) -> int:
    return max(sum(1 for t in times if start <= t < start + 1.0) for start in times)


def smallest_gap(times: list[float]) -> float:
    ordered = sorted(times)
    # rounded: float sums of equal spacings differ from each other in the last digits
    return round(min(later - earlier for earlier, later in itertools.pairwise(ordered)), 9)


async def test_pacer_spaces_requests_under_the_configured_rate(clock):
    pacer = Pacer(4, clock=clock, sleep=clock.sleep)
    times = await send_times(pacer, clock, 40)
    assert most_in_one_second(times) <= 4
    assert times[-1] == pytest.approx(39 * RATE_MARGIN / 4)


async def test_pacer_throttled_halves_the_rate_and_waits_out_retry_after(clock):
    pacer = Pacer(8, clock=clock, sleep=clock.sleep)
    await pacer.wait()
    pacer.throttled(retry_after=5)
    assert pacer.rate == 4
    await pacer.wait()
    assert clock.now >= 5
    times = await send_times(pacer, clock, 20)
    assert most_in_one_second(times) <= 4


@pytest.mark.parametrize("retry_after", [float("inf"), 1e9, MAX_RETRY_AFTER * 2])
async def test_pacer_throttled_retry_after_beyond_the_maximum_waits_only_the_maximum(
    clock, retry_after
):
    pacer = Pacer(4, clock=clock, sleep=clock.sleep)
    pacer.throttled(retry_after=retry_after)

    await pacer.wait()

    assert clock.now == pytest.approx(MAX_RETRY_AFTER)


@pytest.mark.parametrize("retry_after", [float("nan"), -30.0])
async def test_pacer_throttled_retry_after_not_a_delay_adds_no_wait(clock, retry_after):
    pacer = Pacer(4, clock=clock, sleep=clock.sleep)
    pacer.throttled(retry_after=retry_after)

    await pacer.wait()
    await pacer.wait()

    assert clock.now == pytest.approx(RATE_MARGIN / 2), "only the halved rate's spacing"


async def test_pacer_holds_the_lower_rate_then_recovers_to_the_maximum(clock):
    pacer = Pacer(4, hold=60, clock=clock, sleep=clock.sleep)
    pacer.throttled()
    pacer.accepted()
    assert pacer.rate == 2, "no recovery while the hold lasts"
    clock.now += 61
    for _ in range(30):
        pacer.accepted()
    assert pacer.rate == 4, "recovers, but never above the configured rate"


async def test_pacer_never_drops_below_its_floor(clock):
    pacer = Pacer(4, floor=0.5, clock=clock, sleep=clock.sleep)
    for _ in range(10):
        pacer.throttled()
    assert pacer.rate == 0.5


async def test_pacer_low_queue_allowance_slows_down(clock):
    pacer = Pacer(4, clock=clock, sleep=clock.sleep)
    pacer.accepted(queue_remaining=QUEUE_LOW_WATER + 1)
    assert pacer.rate == 4
    pacer.accepted(queue_remaining=QUEUE_LOW_WATER - 1)
    assert pacer.rate == 2


async def test_pacer_oversleeping_loop_never_sends_two_requests_closer_than_the_spacing():
    clock = Clock(oversleep=0.3)
    pacer = Pacer(4, clock=clock, sleep=clock.sleep)

    times = await send_times(pacer, clock, 20)

    assert smallest_gap(times) >= RATE_MARGIN / 4
    assert most_in_one_second(times) <= 4


async def test_pacer_one_late_wake_up_pushes_the_next_request_back_by_a_full_spacing(clock):
    pacer = Pacer(8, clock=clock, sleep=clock.sleep)
    await pacer.wait()
    clock.oversleep = 0.5  # one long stall of the event loop
    await pacer.wait()
    late, clock.oversleep = clock.now, 0.0

    await pacer.wait()

    assert clock.now - late == pytest.approx(RATE_MARGIN / 8)


async def test_pacer_callers_waiting_together_are_spaced_apart(clock):
    pacer = Pacer(4, clock=clock, sleep=clock.sleep)
    times: list[float] = []

    async def send() -> None:
        await pacer.wait()
        times.append(clock.now)

    await asyncio.gather(*(send() for _ in range(5)))

    assert smallest_gap(times) >= RATE_MARGIN / 4


async def test_pacer_retry_after_given_while_waiting_delays_the_waiting_request(clock):
    pacer = Pacer(4, clock=clock, sleep=clock.sleep)
    await pacer.wait()
    waiting = asyncio.ensure_future(pacer.wait())
    await asyncio.sleep(0)  # the waiter is asleep now
    pacer.throttled(retry_after=10)

    await waiting

    assert clock.now >= 10


async def test_pacer_set_max_rate_higher_at_full_rate_moves_to_the_new_maximum(clock):
    pacer = Pacer(4, clock=clock, sleep=clock.sleep)

    pacer.set_max_rate(8)

    assert (pacer.max_rate, pacer.rate) == (8, 8)
    times = await send_times(pacer, clock, 9)
    assert times[-1] == pytest.approx(8 * RATE_MARGIN / 8)


async def test_pacer_set_max_rate_higher_while_throttled_keeps_the_lower_rate(clock):
    pacer = Pacer(4, hold=60, clock=clock, sleep=clock.sleep)
    pacer.throttled()

    pacer.set_max_rate(8)

    assert (pacer.max_rate, pacer.rate) == (8, 2)
    clock.now += 61
    for _ in range(30):
        pacer.accepted()
    assert pacer.rate == 8, "recovers to the new maximum"


async def test_pacer_set_max_rate_lower_caps_the_rate_and_the_very_next_gap(clock):
    pacer = Pacer(8, clock=clock, sleep=clock.sleep)
    await pacer.wait()

    pacer.set_max_rate(2)
    await pacer.wait()

    assert (pacer.max_rate, pacer.rate) == (2, 2)
    assert clock.now == pytest.approx(RATE_MARGIN / 2)
    pacer.accepted()
    assert pacer.rate == 2


async def test_pacer_set_max_rate_below_a_throttled_rate_caps_it(clock):
    pacer = Pacer(8, clock=clock, sleep=clock.sleep)
    pacer.throttled()

    pacer.set_max_rate(3)

    assert (pacer.max_rate, pacer.rate) == (3, 3)


@pytest.mark.parametrize("rate", [0, -1])
def test_pacer_rate_not_above_zero_raises_value_error(rate):
    with pytest.raises(ValueError, match="above 0"):
        Pacer(rate)
    with pytest.raises(ValueError, match="above 0"):
        Pacer(4).set_max_rate(rate)


class VirtualTime:
    """Time for several concurrent pacers: each sleeper wakes at its own due time, in order."""

    def __init__(self) -> None:
        self.now = 0.0
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._count = itertools.count()

    def __call__(self) -> float:
        return self.now

    async def sleep(self, delay: float) -> None:
        woken: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self.now + delay, next(self._count), woken))
        await woken

    async def run(self, *work: Coroutine[Any, Any, None]) -> None:
        tasks = [asyncio.ensure_future(job) for job in work]
        while not all(task.done() for task in tasks):
            for _ in range(20):  # let every runnable task reach its next sleep
                await asyncio.sleep(0)
            if self._sleepers:
                wake_at, _, woken = heapq.heappop(self._sleepers)
                self.now = max(self.now, wake_at)
                woken.set_result(None)
        for task in tasks:
            task.result()


async def test_pushers_owning_different_partitions_never_share_a_second_beyond_the_rate():
    # One time for all, as the wall clock is for pushers on different hosts.
    shared = VirtualTime()
    owners = [frozenset({0, 2}), frozenset({1}), frozenset({3, 4, 5, 6})]
    times: list[float] = []

    async def pusher(owned: frozenset[int]) -> None:
        pacer = Pacer(4, clock=shared, sleep=shared.sleep, wall=shared)
        pacer.use_slots(Slots(4, 7, owned))
        for _ in range(12):
            await pacer.wait()
            times.append(shared.now)

    await shared.run(*(pusher(owned) for owned in owners))
    assert len(times) == 36
    assert most_in_one_second(times) <= 4
    assert smallest_gap(times) == pytest.approx(SLOT_MARGIN / 4)


class LateOnce(Clock):
    """Oversleeps its first sleep only."""

    async def sleep(self, delay: float) -> None:
        await super().sleep(delay)
        self.oversleep = 0.0


async def test_a_pusher_that_wakes_too_late_for_its_slot_takes_a_later_one():
    late = LateOnce(oversleep=0.2)
    pacer = Pacer(4, clock=late, sleep=late.sleep, wall=late)
    pacer.use_slots(Slots(4, 1, frozenset({0})))
    times = await send_times(pacer, late, 10)
    spacing = SLOT_MARGIN / 4
    assert all(
        min(t % spacing, spacing - t % spacing) <= SLOT_TOLERANCE * spacing for t in times
    ), "every request goes out at the start of a slot"
    assert most_in_one_second(times) <= 4


async def test_a_pusher_always_late_still_sends_and_keeps_its_spacing():
    late = Clock(oversleep=0.2)
    pacer = Pacer(4, clock=late, sleep=late.sleep, wall=late)
    pacer.use_slots(Slots(4, 1, frozenset({0})))
    times = await asyncio.wait_for(send_times(pacer, late, 10), timeout=5)
    assert most_in_one_second(times) <= 4


def test_slots_give_each_pusher_the_share_of_its_partitions():
    assert Slots(8, 8, frozenset({1, 5})).share() == 2
    assert Slots(8, 8, frozenset()).next_slot(0.0, -1) is None
    found = Slots(4, 3, frozenset({2})).next_slot(1.0, -1)
    assert found is not None
    number, start = found
    assert number % 3 == 2
    assert start >= 1.0
