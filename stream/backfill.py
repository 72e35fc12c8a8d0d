"""`backfill` ("Sync Customers"): queue every known customer's current contact for Ometria again.

It reads the profile table's changelog (compacted: the latest profile per customer) one
partition at a time, maps each profile with the mapping in force and puts the contacts on the
outbox, where the pushers send them with the usual coalescing and rate limit. Each contact
carries its profile's version, so one read before a newer one was delivered is dropped by the
pusher rather than sent. Custom events are never re-sent: campaigns do not re-fire. The
cooldown between runs is kept in the control topic (stream.control) by the command.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from stream.kafka_auth import client_options
from stream.ometria.mapping import ContactMapping, map_contact
from stream.ometria.records import encode, with_version
from stream.profile import Profile
from stream.reading import partition_batches
from stream.settings import Settings
from stream.topology import partition_ids


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


# done, total (changelog records read of all), contacts queued so far
Progress = Callable[[int, int, int], None]


def cooldown_left(last: datetime | None, now: datetime, cooldown: timedelta) -> timedelta | None:
    """How long until the next backfill is allowed, or None when it is allowed now."""
    if last is None or now - last >= cooldown:
        return None
    return cooldown - (now - last)


def _contact(
    customer: str, stored: bytes, mapping: ContactMapping, settings: Settings
) -> dict[str, Any] | None:
    profile = Profile.from_bytes(stored)
    contact = map_contact(profile, mapping, settings.ometria.collection)
    # Versioned like the workers' contacts: the pusher never lets it replace a newer one.
    return None if contact is None else with_version(contact, profile.input_offset)


async def backfill(
    settings: Settings,
    mapping: ContactMapping,
    *,
    dry_run: bool,
    customers: frozenset[str] | None = None,
    progress: Progress | None = None,
) -> BackfillReport:
    """Queue the current contact of every stored profile with an email on the outbox.

    The changelog is read one partition at a time, keeping only that partition's latest stored
    profile per customer (as bytes): memory is bounded by the largest partition, not by the
    number of customers. `customers` limits it to those ids.
    """
    topic = changelog_topic(settings)
    partitions = [TopicPartition(topic, p) for p in await partition_ids(settings, topic)]
    profiles = contacts = 0
    found: set[str] = set()
    producer = None if dry_run else AIOKafkaProducer(**client_options(settings.kafka), acks="all")
    consumer = AIOKafkaConsumer(
        **client_options(settings.kafka), enable_auto_commit=False, auto_offset_reset="earliest"
    )
    await consumer.start()
    if producer is not None:
        await producer.start()
    try:
        starts = await consumer.beginning_offsets(partitions) if partitions else {}
        ends = await consumer.end_offsets(partitions) if partitions else {}
        total = sum(ends[tp] - starts[tp] for tp in partitions)
        done = 0
        for tp in partitions:
            latest: dict[bytes, bytes] = {}
            async for records in partition_batches(consumer, tp, ends[tp]):
                for record in records:
                    if record.key is None:
                        continue
                    if record.value is None:
                        latest.pop(record.key, None)  # deleted
                    else:
                        latest[record.key] = record.value
                done += len(records)
                if progress is not None:
                    progress(done, total, contacts)
            queued = []
            for key, stored in latest.items():
                customer = changelog_key(key)
                if customers is not None and customer not in customers:
                    continue
                found.add(customer)
                profiles += 1
                contact = _contact(customer, stored, mapping, settings)
                if contact is None:
                    continue
                contacts += 1
                if producer is not None:
                    queued.append(
                        await producer.send(
                            settings.topics.outbox, key=customer.encode(), value=encode(contact)
                        )
                    )
            # Every send must be acknowledged: a failed one raises here instead of vanishing.
            await asyncio.gather(*queued)
            del latest
            if progress is not None:
                progress(done, total, contacts)
    finally:
        await consumer.stop()
        if producer is not None:
            await producer.stop()
    return BackfillReport(
        profiles=profiles,
        contacts=contacts,
        without_email=profiles - contacts,
        missing=tuple(sorted((customers or frozenset()) - found)),
    )
