"""Queue every known customer's contact for Ometria again: `backfill` and `replay`.

`backfill` ("Sync Customers") reads the profile table's changelog (compacted: the latest profile
per customer); `replay` rebuilds the profiles from the events topic itself, with the same pure
fold, without touching the workers' table (for when the table is suspect). Both map each profile
with the mapping in force and put the contacts on the outbox, where the workers push them with
the usual batching and rate limit. Each contact carries its profile's version, so one that was
read before a newer one was delivered is dropped by the pusher rather than sent. Custom events
are never re-sent: campaigns do not re-fire.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer

from stream.events import InvalidEvent
from stream.intake import EventWindow, admit
from stream.kafka_auth import client_options
from stream.ometria.mapping import ContactMapping, map_contact
from stream.ometria.records import encode, with_version
from stream.profile import Profile, fold
from stream.reading import read_to_end
from stream.settings import Settings


@dataclass(frozen=True, slots=True)
class BackfillReport:
    profiles: int
    contacts: int
    without_email: int


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


async def read_profiles(
    settings: Settings, progress: Callable[[int, int], None] | None = None
) -> dict[str, dict[str, Any]]:
    """The latest stored profile of every customer, read from the table's changelog."""
    profiles: dict[str, dict[str, Any]] = {}

    async for record in read_to_end(settings, changelog_topic(settings), progress):
        if record.key is None:
            continue
        customer = changelog_key(record.key)
        if record.value is None:
            profiles.pop(customer, None)  # deleted
        else:
            profiles[customer] = orjson.loads(record.value)
    return profiles


async def replay_profiles(
    settings: Settings, progress: Callable[[int, int], None] | None = None
) -> dict[str, dict[str, Any]]:
    """Every customer's profile folded from the events topic; invalid records are skipped.

    A record is judged as the workers judge it (`stream.intake.admit`, event time against the
    clock now), so the ones they dead-lettered are skipped here.
    """
    profiles: dict[str, Profile] = {}
    window = EventWindow.from_settings(settings)
    now = datetime.now(UTC)

    async for record in read_to_end(settings, settings.topics.events, progress):
        try:
            event = admit(record.value, record.key, now, window)
        except InvalidEvent:
            continue  # the workers dead-lettered it already
        customer = event.customer.id
        # The offset makes the profile's version the same as the workers' fold gives it.
        profiles[customer] = fold(profiles.get(customer), event, offset=record.offset).profile
    return {customer: profile.to_json() for customer, profile in profiles.items()}


async def backfill(
    settings: Settings,
    mapping: ContactMapping,
    *,
    dry_run: bool,
    from_events: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> BackfillReport:
    """Queue the contact of every profile with an email on the outbox (see the module doc)."""
    read = replay_profiles if from_events else read_profiles
    profiles = await read(settings, progress)
    contacts = []
    for customer, stored in profiles.items():
        profile = Profile.from_json(stored)
        contact = map_contact(profile, mapping, settings.ometria.collection)
        if contact is not None:
            # Versioned like the workers' contacts: the pusher never lets it replace a newer one.
            contacts.append((customer, with_version(contact, profile.input_offset)))
    if contacts and not dry_run:
        producer = AIOKafkaProducer(**client_options(settings.kafka), acks="all")
        await producer.start()
        try:
            outbox = settings.topics.outbox
            delivered = [
                await producer.send(outbox, key=customer.encode(), value=encode(contact))
                for customer, contact in contacts
            ]
            # Every send must be acknowledged: a failed one raises here instead of vanishing.
            await asyncio.gather(*delivered)
        finally:
            await producer.stop()
    return BackfillReport(
        profiles=len(profiles), contacts=len(contacts), without_email=len(profiles) - len(contacts)
    )
