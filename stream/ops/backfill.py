"""`backfill` ("Sync Customers"): queue every known customer's current contact for Ometria again.

It reads the profile table's changelog (compacted: the latest profile per customer) one
partition at a time, maps each profile with the mapping in force and puts the contacts on the
outbox, where the pushers send them with the usual coalescing and rate limit. Each contact
carries its profile's version, so one read before a newer one was delivered is dropped by the
pusher rather than sent. Custom events are never re-sent: campaigns do not re-fire. The
cooldown between runs is kept in the control topic (stream.runtime.control) by the command.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from stream.domain.contact_mapping import ContactMapping, map_contact
from stream.domain.profile import Profile
from stream.domain.records import encode, with_version
from stream.runtime import control
from stream.runtime.kafka_admin import partition_ids
from stream.runtime.kafka_auth import client_options
from stream.runtime.reading import partition_batches
from stream.runtime.replay_mark import REPLAY, generation_of
from stream.settings import Settings


def changelog_key(key: bytes) -> str:
    """The customer id of a changelog record's key.

    Faust writes the table's str keys with its JSON codec (`"7294851236742"`, quotes included),
    while the input and the outbox are keyed by the id's own bytes: a backfilled contact keyed
    with the quotes would land on another outbox partition than the customer's live records.
    """
    decoded = orjson.loads(key)
    if not isinstance(decoded, str):
        raise ValueError(f"changelog key {key!r} is not a JSON string")
    return decoded


def changelog_topic(settings: Settings) -> str:
    """The Faust changelog topic of the `customer_to_profile` table."""
    return f"{settings.app_id}-customer_to_profile-changelog"


@dataclass(frozen=True, slots=True)
class BackfillReport:
    profiles: int
    contacts: int
    without_email: int
    missing: tuple[str, ...] = ()  # customers asked for (--customer) without a profile
    changed_meanwhile: int = 0  # profiles rewritten by the workers while it read: queued by them


# Sends awaited together: bounds the unacknowledged futures held at once.
ACK_EVERY = 5000

# done, total (changelog records read, both passes), contacts queued so far
Progress = Callable[[int, int, int], None]


def _contact(
    customer: str, stored: bytes, mapping: ContactMapping, settings: Settings, generation: int
) -> dict[str, Any] | None:
    profile = Profile.from_bytes(stored)
    contact = map_contact(profile, mapping, settings.ometria.collection)
    # Versioned like the workers' contacts: the pusher never lets it replace a newer one.
    return None if contact is None else with_version(contact, profile.input_offset, generation)


@dataclass(slots=True)
class _Tally:
    """A run's counts as it goes, reported to `progress` after each batch read."""

    total: int
    progress: Progress | None
    done: int = 0
    profiles: int = 0
    contacts: int = 0
    changed: int = 0
    found: set[str] = field(default_factory=set)  # only with --customer: a full run keeps no ids

    def read(self, records: int) -> None:
        self.done += records
        if self.progress is not None:
            self.progress(self.done, self.total, self.contacts)


@dataclass(frozen=True, slots=True)
class _Job:
    """What every partition's second pass maps and where it queues."""

    settings: Settings
    mapping: ContactMapping
    generation: int
    customers: frozenset[str] | None
    producer: AIOKafkaProducer | None


async def backfill(
    settings: Settings,
    mapping: ContactMapping,
    *,
    dry_run: bool,
    customers: frozenset[str] | None = None,
    progress: Progress | None = None,
) -> BackfillReport:
    """Queue the current contact of every stored profile with an email on the outbox.

    The changelog is read one partition at a time, twice: first to learn the offset of each
    customer's latest profile, then to map and queue the profiles at those offsets as they come.
    Memory holds one key and offset per customer of the largest partition, never the profiles
    of a whole partition nor more than ACK_EVERY unacknowledged sends. `customers` limits it to
    those ids.
    """
    generation = await _stored_generation(settings)
    topic = changelog_topic(settings)
    partitions = [TopicPartition(topic, p) for p in await partition_ids(settings, topic)]
    producer = None if dry_run else AIOKafkaProducer(**client_options(settings.kafka), acks="all")
    consumer = AIOKafkaConsumer(
        **client_options(settings.kafka), enable_auto_commit=False, auto_offset_reset="earliest"
    )
    job = _Job(settings, mapping, generation, customers, producer)
    await consumer.start()
    if producer is not None:
        await producer.start()
    try:
        starts = await consumer.beginning_offsets(partitions) if partitions else {}
        ends = await consumer.end_offsets(partitions) if partitions else {}
        # Two passes over every partition.
        tally = _Tally(2 * sum(ends[tp] - starts[tp] for tp in partitions), progress)
        for tp in partitions:
            latest = await _latest_offsets(consumer, tp, ends[tp], tally)
            await _queue_latest(consumer, tp, ends[tp], latest, job, tally)
    finally:
        await consumer.stop()
        if producer is not None:
            await producer.stop()
    return BackfillReport(
        profiles=tally.profiles,
        contacts=tally.contacts,
        without_email=tally.profiles - tally.contacts,
        missing=tuple(sorted((customers or frozenset()) - tally.found)),
        changed_meanwhile=tally.changed,
    )


async def _stored_generation(settings: Settings) -> int:
    """The contact version generation the stored profiles were mapped in.

    The last replay's (a state reset rebuilds them all), so their contacts carry it, as the
    workers' do.
    """
    generation = generation_of((await control.read(settings)).get(REPLAY))
    if generation is None:
        raise control.UnreadableControlRecord(
            "the replay record of the control topic is not JSON, so the contact version "
            "generation is unknown and every contact could be dropped as stale: run `replay` "
            "(it writes a good record) before a backfill"
        )
    return generation


async def _latest_offsets(
    consumer: AIOKafkaConsumer, tp: TopicPartition, end: int, tally: _Tally
) -> dict[bytes, int]:
    """Pass 1: the offset of each customer's latest stored profile (a deletion removes it)."""
    latest: dict[bytes, int] = {}
    async for records in partition_batches(consumer, tp, end):
        for record in records:
            if record.key is None:
                continue
            if record.value is None:
                latest.pop(record.key, None)
            else:
                latest[record.key] = record.offset
        tally.read(len(records))
    return latest


async def _queue_latest(
    consumer: AIOKafkaConsumer,
    tp: TopicPartition,
    end: int,
    latest: dict[bytes, int],
    job: _Job,
    tally: _Tally,
) -> None:
    """Pass 2: map and queue exactly the profiles at `latest`'s offsets, as they come."""
    queued: list[asyncio.Future[Any]] = []
    async for records in partition_batches(consumer, tp, end):
        for record in records:
            if record.key is None or latest.get(record.key) != record.offset:
                continue
            del latest[record.key]
            customer = changelog_key(record.key)
            if job.customers is not None:
                if customer not in job.customers:
                    continue
                tally.found.add(customer)
            tally.profiles += 1
            assert record.value is not None  # pass 1 keeps no deletion
            contact = _contact(customer, record.value, job.mapping, job.settings, job.generation)
            if contact is None:
                continue
            tally.contacts += 1
            if job.producer is not None:
                key, value = customer.encode(), encode(contact)
                outbox = job.settings.topics.outbox
                queued.append(await job.producer.send(outbox, key=key, value=value))
            if len(queued) >= ACK_EVERY:
                # Every send must be acknowledged: a failed one raises here.
                await asyncio.gather(*queued)
                queued = []
        tally.read(len(records))
    await asyncio.gather(*queued)
    # Left: compacted away between the passes, so a newer profile of theirs was stored
    # meanwhile and its contact queued by the workers.
    left = [changelog_key(key) for key in latest]
    if job.customers is not None:
        left = [customer for customer in left if customer in job.customers]
        tally.found.update(left)
    tally.changed += len(left)
