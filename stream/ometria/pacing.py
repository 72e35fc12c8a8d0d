"""Pace push requests: at most the configured rate, slower after Ometria pushes back.

Ometria's limit is per account and shared with every other integration on it, so a 429 (or a
low `X-QueueSize-Remaining`) means the configured rate is too high right now: the pacer halves
its rate, waits out any `Retry-After`, and holds the lower rate for a while before creeping back
up. aiolimiter's leaky bucket cannot change its rate at run time, hence this small class.

Several pushers share the account's rate through `Slots`: request slots on the wall clock, each
owned by one outbox partition, so pushers that own different partitions never send in the same
slot and no second carries more requests than the account allows, whatever the split.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

# Spacing requests a little wider than 1/rate keeps a strict sliding-window limit on
# Ometria's side from counting one request too many when network delays bunch them up.
RATE_MARGIN = 1.05
# The third-party Ometria client waits when fewer than 10k records may still be queued.
QUEUE_LOW_WATER = 10_000
# Ometria documents no Retry-After: a longer one is taken as this long, so that a bogus value
# (`inf`, a year) cannot stop delivery for good; a request every few minutes costs nothing.
MAX_RETRY_AFTER = 300.0


# On the account's slot grid, N requests per second are spaced (1 + 0.1)/N apart: a request may
# then reach Ometria up to 100 ms after its slot starts (a busy event loop, a busy host, the
# network) and N + 1 of them still never fall within one second.
SLOT_MARGIN = 1.1
# A slot is used only if its request goes out within this share of the slot spacing after the
# slot starts; a later wake-up takes a later slot, so late requests cannot bunch up.
SLOT_TOLERANCE = 0.2
# A host so busy that every wake-up is late still sends, in the slot it last aimed at (a later
# slot than the previous request's, so requests stay spaced).
MAX_LATE_WAKES = 3


@dataclass(frozen=True, slots=True)
class Slots:
    """The account's request slots: slot g starts at g * spacing seconds of Unix time and
    belongs to outbox partition g mod `partitions`; a pusher uses the slots of its own.

    Every pusher derives the same grid from the wall clock, so they need no messages to agree.
    The failure mode: hosts whose clocks disagree by more than a small part of the spacing can
    both send in what Ometria counts as one second; Ometria's 429 then slows them down.
    """

    account_rate: float
    partitions: int
    owned: frozenset[int]

    @property
    def spacing(self) -> float:
        return SLOT_MARGIN / self.account_rate

    def share(self) -> float:
        """The requests per second these slots allow (the configured rate's share)."""
        return self.account_rate * len(self.owned) / self.partitions

    def next_slot(self, after: float, used: int) -> tuple[int, float] | None:
        """The first owned slot starting at or after Unix time `after` and later than slot
        `used`: (its number, its start), or None when no partition is owned."""
        if not self.owned:
            return None
        first = max(math.ceil(after / self.spacing), used + 1)
        for number in range(first, first + self.partitions):
            if number % self.partitions in self.owned:
                return number, number * self.spacing
        raise AssertionError("unreachable: some partition is owned")  # pragma: no cover


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
        wall: Callable[[], float] = time.time,
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
        self._wall = wall
        self._slots: Slots | None = None
        self._used_slot = -1
        # Callers waiting together take turns in order instead of all waking for the same gap.
        self._turn = asyncio.Lock()

    @property
    def _floor(self) -> float:
        return min(self._floor_setting, self.max_rate)

    def _due(self) -> float:
        # On the slot grid the slots space requests; the rate spaces them only once throttled.
        on_grid = self._slots is not None and self.rate >= self.max_rate
        if self._last_sent is None or on_grid:
            spaced = 0.0
        else:
            spaced = self._last_sent + RATE_MARGIN / self.rate
        return max(spaced, self._not_before)

    def use_slots(self, slots: Slots | None) -> None:
        """Send only in these slots of the account (None: pace alone, at `max_rate`)."""
        self._slots = slots
        if slots is not None and slots.owned:
            self.set_max_rate(slots.share())

    async def wait(self) -> None:
        """Return when the next request may go out; the caller sends it right away."""
        async with self._turn:
            now, due = self._clock(), self._due()
            target = self._slot_start(now, due)
            late = 0
            while now < target:
                await self._sleep(target - now)
                now, was_due, due = self._clock(), due, self._due()
                if due > was_due:  # a 429 or a lower rate moved the due time meanwhile
                    target = self._slot_start(now, due)
                elif self._missed(now, target) and late < MAX_LATE_WAKES:
                    late += 1
                    target = self._slot_start(now, now)
                else:
                    break
            self._last_sent = now

    def _missed(self, now: float, target: float) -> bool:
        """Woke too late for the slot aimed at."""
        slots = self._slots
        return slots is not None and now - target > SLOT_TOLERANCE * slots.spacing

    def _slot_start(self, now: float, due: float) -> float:
        """When the request may go out: `due`, or the start of the first free slot after it
        (on the monotonic clock); books that slot."""
        slots = self._slots
        if slots is None:
            return due
        wall_now = self._wall()
        found = slots.next_slot(wall_now + max(0.0, due - now), self._used_slot)
        if found is None:
            return due
        self._used_slot, start = found
        return now + (start - wall_now)

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
        delay = bounded_retry_after(retry_after)
        if delay is not None:
            self._not_before = max(self._not_before, now + delay)
        self._hold_until = now + self._hold

    def accepted(self, queue_remaining: int | None = None) -> None:
        """A request went through; creep back towards the configured rate once the hold ends."""
        if queue_remaining is not None and queue_remaining < QUEUE_LOW_WATER:
            self.throttled()
            return
        if self.rate < self.max_rate and self._clock() >= self._hold_until:
            self.rate = min(self.max_rate, self.rate + self.max_rate / 10)


def bounded_retry_after(seconds: float | None) -> float | None:
    """A Retry-After delay fit to wait out: at most MAX_RETRY_AFTER, not negative; None for
    none or not a number."""
    if seconds is None or math.isnan(seconds):
        return None
    return min(MAX_RETRY_AFTER, max(0.0, seconds))


def _check_rate(rate: float) -> None:
    if not rate > 0:
        raise ValueError(f"a pacer needs a rate above 0 requests per second, got {rate}")
