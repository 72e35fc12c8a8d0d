"""The profile store: every read and write of customers' profiles by the fold and the trigger scan.

It owns the decoded-profile cache, the lock both writers hold, what an assignment tells them
(the outbox's partitions, the topics' message limits, that the committed positions are known),
and the one write order: the outbox and every other queued send stored, then the changelog
written through, then the cache. After a crash between any two steps, the redelivered events
(or the next scan) send the same records again, which the pusher and Ometria take as one.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any

from stream.domain.profile import Profile
from stream.domain.profile_cache import ProfileCache
from stream.runtime.faust_internals.context import get_in, get_in_partition, write_through_changelog
from stream.runtime.outbox import OutboxBatch
from stream.runtime.topic_configs import MessageLimits


class ProfileStore:
    """Customer id -> profile, over the `customer_to_profile` table and its changelog."""

    def __init__(self, app: Any, table: Any, outbox_topic: str, cache_size: int) -> None:
        self._app = app
        self._table = table
        self._outbox_topic = outbox_topic
        # Decoded profiles of recently written customers, exactly as last written to the table:
        # reading and validating a profile from the store costs more than folding an event into
        # it. Emptied on every assignment, when another worker may have written the keys.
        self.recent = ProfileCache(cache_size)
        # Held while a fold batch or a scan slice reads, changes and writes profiles across
        # awaits: neither may overwrite the other's write.
        self.lock = asyncio.Lock()
        # Set once the committed offsets of the current assignment are known: until then no
        # record is checked for skips (a record checked against stale positions could hide a
        # skip for good).
        self.positions_known = asyncio.Event()
        # The outbox's partition count and the topics' largest records, read on every
        # assignment: a batch groups its outbox records by partition (stream.runtime.outbox).
        self.outbox_partitions = 0
        self.limits = MessageLimits()

    def assigned(self, outbox_partitions: int, limits: MessageLimits) -> None:
        """Take what a new assignment read; forget the profiles cached before it."""
        self.outbox_partitions = outbox_partitions
        self.limits = limits
        self.recent.clear()

    def read(self, customer_id: str, partition: int) -> Profile | None:
        """The customer's profile as last written; `partition` holds the customer's records."""
        cached = self.recent.get(customer_id)
        if cached is not None:
            return cached
        stored = get_in(self._table, customer_id, partition)
        return Profile.from_bytes(stored) if stored is not None else None

    def read_in_partition(self, key: str, partition: int) -> Profile | None:
        """A profile of a key known to be in `partition` (the scan walks the store's keys)."""
        cached = self.recent.get(key)
        if cached is not None:
            return cached
        raw = get_in_partition(self._table, key, partition)
        return Profile.from_bytes(raw) if raw is not None else None

    def outbox(self) -> OutboxBatch:
        """An empty outbox batch for this assignment's outbox partitions."""
        return OutboxBatch(self.outbox_partitions, self.limits.outbox)

    async def send_outbox(self, outbox: OutboxBatch) -> list[Awaitable[Any]]:
        """Queue the batch's outbox messages; the futures say when each is stored."""
        # Straight to Faust's producer: the topic object's send path (channels, future messages,
        # callbacks) cost more than the fold itself, and nothing here needs it.
        return [
            await self._app.producer.send(self._outbox_topic, None, value, partition, None, headers)
            for partition, value, headers in outbox.messages()
        ]

    async def write(
        self,
        queued: Iterable[Awaitable[Any]],
        writes: Sequence[tuple[str, Profile | None, int]],
        on_stored: Callable[[], None] = lambda: None,
    ) -> None:
        """Wait for every queued send, then write the profiles (None deletes one) through.

        Args:
            queued: the futures of the sends the profiles depend on (the outbox's first).
            writes: (customer id, profile or None, the partition of its records).
            on_stored: called as each queued send is stored (the batch moves meanwhile).
        """
        # The outbox must hold the records before the table says their events were applied:
        # after a crash in between, the redelivered events are folded again and their records
        # re-sent.
        for stored in queued:
            await stored
            on_stored()
        # And the changelog holds the profiles before the batch ends (when Faust acks its
        # events); the store takes them only once the changelog has them.
        await write_through_changelog(
            self._table,
            [
                (key, profile.to_bytes() if profile is not None else None, partition)
                for key, profile, partition in writes
            ],
        )
        for key, profile, _ in writes:
            if profile is None:
                self.recent.forget(key)
            else:
                self.recent.put(key, profile)
