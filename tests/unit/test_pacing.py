from __future__ import annotations

import asyncio
import itertools

import pytest

from stream.pacing import QUEUE_LOW_WATER, RATE_MARGIN, Pacer


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
