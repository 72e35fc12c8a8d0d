from __future__ import annotations

import pytest

from stream.pacing import QUEUE_LOW_WATER, RATE_MARGIN, Pacer


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    async def sleep(self, delay: float) -> None:
        self.now += delay


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
