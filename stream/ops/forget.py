"""Forget customers: `python -m stream forget` publishes their `customer.erased` events.

For platforms that cannot send the event themselves. Each erasure goes to EVERY partition of
the events topic: this command cannot know which partitioner the retailer's producer uses,
and a worker erases a profile only in the partition the erasure arrives in (where the
customer has none, it only records the erasure). Customer ids are personal data: what this
module reports is counts, never ids.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer

from stream.domain.erasure import ERASED
from stream.domain.events import InvalidEvent
from stream.domain.intake import EventWindow, admit
from stream.domain.wire import WireFormat
from stream.errors import LoyaltyStreamError
from stream.runtime.erasures import confirm_in_ometria, pending_in_ometria
from stream.runtime.kafka_admin import partition_ids
from stream.runtime.kafka_auth import client_options
from stream.settings import Settings

SOURCE = "loyalty-stream forget"


class ForgetRefused(LoyaltyStreamError):
    """Nothing was published: the reason says what to fix."""


def read_ids(lines: Iterable[str]) -> list[str]:
    """The customer ids of an id file: one a line; blank lines and `#` comment lines ignored.

    Only whole lines are comments: a `#` inside an id is part of it.
    """
    return [text for text in (line.strip() for line in lines) if text and text[0] != "#"]


def erasure_event(customer_id: str, event_id: str, now: datetime) -> dict[str, Any]:
    """The `customer.erased` event this command publishes for one customer."""
    return {
        "event_id": event_id,
        "type": ERASED,
        "occurred_at": now.isoformat(),
        "source": SOURCE,
        "customer": {"id": customer_id},
        "data": {},
    }


@dataclass(frozen=True, slots=True)
class Erasures:
    """What `forget` published (or would publish, in a dry run)."""

    topic: str
    partitions: list[int]
    customers: int

    @property
    def records(self) -> int:
        return self.customers * len(self.partitions)


def _events(
    customer_ids: Sequence[str], now: datetime, wire: WireFormat
) -> list[tuple[bytes, bytes]]:
    """(key, value) of each customer's erasure, checked as the workers check input.

    Raises:
        ForgetRefused: an id the workers would dead-letter (named by its place, not its text),
            or workers that take no plain JSON record.
    """
    events = []
    for number, customer_id in enumerate(dict.fromkeys(customer_ids), start=1):
        key = customer_id.encode()
        value = orjson.dumps(erasure_event(customer_id, f"erase-{uuid.uuid4()}", now))
        try:
            admit(value, key, now, EventWindow(), wire)
        except InvalidEvent as exc:
            if exc.error_class == "Unframed":
                raise ForgetRefused(
                    "erasures are published as plain JSON, which the workers dead-letter while "
                    "STREAM_REGISTRY__ACCEPT_UNFRAMED is false: set it to true (workers and this "
                    "command) to forget customers; nothing was published"
                ) from None
            raise ForgetRefused(
                f"customer id number {number} (after removing repeats) is not a valid customer "
                f"id ({exc.error_class}); nothing was published"
            ) from None
        events.append((key, value))
    return events


async def forget(
    settings: Settings, customer_ids: Sequence[str], *, dry_run: bool, now: datetime
) -> Erasures:
    """Publish each customer's erasure to every events partition (acknowledged by all replicas).

    Raises:
        ForgetRefused: no id, an invalid id, or no events topic; nothing was published.
    """
    topic = settings.topics.events
    if not customer_ids:
        raise ForgetRefused("no customer id given: use --customer ID or --file PATH")
    events = _events(customer_ids, now, WireFormat.from_settings(settings))
    partitions = await partition_ids(settings, topic)
    if not partitions:
        raise ForgetRefused(
            f"the events topic {topic} does not exist (STREAM_TOPICS__EVENTS): there is no "
            "customer to forget there; check the topic name and the cluster"
        )
    erasures = Erasures(topic, partitions, len(events))
    if dry_run:
        return erasures
    producer = AIOKafkaProducer(**client_options(settings.kafka), acks="all")
    await producer.start()
    try:
        sent = [
            await producer.send(topic, key=key, value=value, partition=partition)
            for key, value in events
            for partition in partitions
        ]
        await asyncio.gather(*sent)
    finally:
        await producer.stop()
    return erasures


@dataclass(frozen=True, slots=True)
class Confirmed:
    confirmed: int
    not_pending: int  # not erased by a worker yet, or confirmed already


async def confirm(settings: Settings, customer_ids: Sequence[str]) -> Confirmed:
    """Record that these customers' erasures are done in Ometria (`status` stops listing them).

    Only ids pending confirmation are confirmed: an erasure the workers have not folded yet is
    listed once they do, and confirmed then.
    """
    pending = {p.customer_id for p in await pending_in_ometria(settings)}
    wanted = list(dict.fromkeys(customer_ids))
    done = [customer_id for customer_id in wanted if customer_id in pending]
    if done:
        await confirm_in_ometria(settings, done)
    return Confirmed(len(done), len(wanted) - len(done))
