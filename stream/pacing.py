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
    """Spaces requests evenly at an adaptive rate (requests per second)."""

    def __init__(
        self,
        max_rate: float,
        *,
        hold: float = 60.0,
        floor: float = 0.2,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.max_rate = max_rate
        self.rate = max_rate
        self._hold = hold
        self._floor = min(floor, max_rate)
        self._clock = clock
        self._sleep = sleep
        self._next_at = 0.0
        self._hold_until = 0.0

    async def wait(self) -> None:
        """Return when the next request may go out, and book its slot."""
        now = self._clock()
        start = max(now, self._next_at)
        self._next_at = start + RATE_MARGIN / self.rate
        if start > now:
            await self._sleep(start - now)

    def pause(self, seconds: float) -> None:
        """Send nothing for `seconds` from now (e.g. while budgets change after a rebalance)."""
        self._next_at = max(self._next_at, self._clock() + seconds)

    def set_max_rate(self, max_rate: float) -> None:
        """Change the configured rate at run time; a lower, throttled rate is kept."""
        self.max_rate = max_rate
        self.rate = min(self.rate, max_rate)
        self._floor = min(self._floor, max_rate)

    def throttled(self, retry_after: float | None = None) -> None:
        """Ometria said slow down: halve the rate, honour Retry-After, hold for a while."""
        now = self._clock()
        self.rate = max(self._floor, self.rate / 2)
        if retry_after is not None:
            self._next_at = max(self._next_at, now + retry_after)
        self._hold_until = now + self._hold

    def accepted(self, queue_remaining: int | None = None) -> None:
        """A request went through; creep back towards the configured rate once the hold ends."""
        if queue_remaining is not None and queue_remaining < QUEUE_LOW_WATER:
            self.throttled()
            return
        if self.rate < self.max_rate and self._clock() >= self._hold_until:
            self.rate = min(self.max_rate, self.rate + self.max_rate / 10)
