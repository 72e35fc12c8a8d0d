"""Pace push requests: at most the configured rate, slower after Ometria pushes back.

Ometria's limit is per account and shared with every other integration on it, so a 429 (or a
low `X-QueueSize-Remaining`) means the configured rate is too high right now: the pacer halves
its rate, waits out any `Retry-After`, and holds the lower rate for a while before creeping back
up. aiolimiter's leaky bucket cannot change its rate at run time, hence this small class.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

# Spacing requests a little wider than 1/rate keeps a strict sliding-window limit on
# Ometria's side from counting one request too many when network delays bunch them up.
RATE_MARGIN = 1.05
# The third-party Ometria client waits when fewer than 10k records may still be queued.
QUEUE_LOW_WATER = 10_000


class Pacer:
    """Spaces requests evenly at an adaptive rate (requests per second).

    The spacing counts from the moment `wait()` returns (when the request goes out), not from
    the slot it was meant to have: an event loop that oversleeps then delays the next request
    too, instead of letting it follow at once.
    """

    def __init__(
        self,
        max_rate: float,
        *,
        hold: float = 60.0,
        floor: float = 0.2,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        _check_rate(max_rate)
        self.max_rate = max_rate
        self.rate = max_rate
        self._hold = hold
        self._floor_setting = floor
        self._clock = clock
        self._sleep = sleep
        self._last_sent: float | None = None
        self._not_before = 0.0
        self._hold_until = 0.0
        # Callers waiting together take turns in order instead of all waking for the same gap.
        self._turn = asyncio.Lock()

    @property
    def _floor(self) -> float:
        return min(self._floor_setting, self.max_rate)

    def _due(self) -> float:
        spaced = 0.0 if self._last_sent is None else self._last_sent + RATE_MARGIN / self.rate
        return max(spaced, self._not_before)

    async def wait(self) -> None:
        """Return when the next request may go out; the caller sends it right away."""
        async with self._turn:
            now, due = self._clock(), self._due()
            while now < due:
                await self._sleep(due - now)
                now, was_due, due = self._clock(), due, self._due()
                # Sleep again only if a 429 or a lower rate moved the due time meanwhile.
                if due <= was_due:
                    break
            self._last_sent = now

    def set_max_rate(self, max_rate: float) -> None:
        """Change the budget at run time (e.g. this worker's share of the account's rate).

        A pacer running at its old maximum moves to the new one; one slowed down by Ometria
        keeps its lower rate, capped at the new maximum, and recovers towards the new maximum.
        """
        _check_rate(max_rate)
        at_full_rate = self.rate >= self.max_rate
        self.max_rate = max_rate
        self.rate = max_rate if at_full_rate else max(self._floor, min(self.rate, max_rate))

    def throttled(self, retry_after: float | None = None) -> None:
        """Ometria said slow down: halve the rate, honour Retry-After, hold for a while."""
        now = self._clock()
        self.rate = max(self._floor, self.rate / 2)
        if retry_after is not None:
            self._not_before = max(self._not_before, now + retry_after)
        self._hold_until = now + self._hold

    def accepted(self, queue_remaining: int | None = None) -> None:
        """A request went through; creep back towards the configured rate once the hold ends."""
        if queue_remaining is not None and queue_remaining < QUEUE_LOW_WATER:
            self.throttled()
            return
        if self.rate < self.max_rate and self._clock() >= self._hold_until:
            self.rate = min(self.max_rate, self.rate + self.max_rate / 10)


def _check_rate(rate: float) -> None:
    if not rate > 0:
        raise ValueError(f"a pacer needs a rate above 0 requests per second, got {rate}")
