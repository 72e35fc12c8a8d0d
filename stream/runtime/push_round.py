"""One outbox round sent to Ometria: decoded, coalesced against the contact versions delivered,
what cannot be sent dead-lettered, delivered, then the erasures' tombstones and the new versions
stored, all before the pusher's consumer loop (stream.runtime.pusher) commits the round."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.structs import ConsumerRecord

from stream import metrics
from stream.domain.batching import Erasure, coalesce
from stream.domain.dlq import DeadLetter
from stream.domain.erasure import erased_id
from stream.domain.records import decode
from stream.ometria.client import OmetriaClient
from stream.ometria.delivery import Delivery
from stream.runtime.outbox import occurred_at
from stream.runtime.pusher_versions import ContactVersionsStore
from stream.runtime.topic_configs import KAFKA_MAX_MESSAGE_BYTES, message_limits
from stream.settings import Settings

logger = logging.getLogger(__name__)

UNUSABLE_ERASURE = "UnusableErasure"

# The outbox records of one round, by partition, in offset order.
Round = dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]]


class RoundSender:
    """Sends the pusher's rounds to Ometria; `producer` stores its dead letters (and `versions`
    its versions) before an outbox offset is committed."""

    def __init__(
        self,
        settings: Settings,
        client: OmetriaClient,
        producer: AIOKafkaProducer,
        versions: ContactVersionsStore,
    ) -> None:
        self._settings = settings
        self._producer = producer
        self._versions = versions
        # The outbox dead-letter topic's max.message.bytes, read at start.
        self.dead_letter_limit = KAFKA_MAX_MESSAGE_BYTES
        conf = settings.ometria
        self.delivery = Delivery(
            client,
            max_requests_per_second=conf.max_requests_per_second,
            dead_letter=self.dead_letter,
            auth_retry_interval=conf.auth_retry_interval.total_seconds(),
        )

    async def start(self) -> None:
        self.dead_letter_limit = (await message_limits(self._settings)).outbox_dead_letter

    async def deliver(self, batch: Round) -> None:
        """Send one round; raises what Delivery raises when it cannot go on (nothing of the
        round may then be committed)."""
        entries: list[tuple[int, dict[str, Any]]] = []
        for tp, messages in batch.items():
            for message in messages:
                try:
                    records = decode(message.value or b"")
                    entries.extend((tp.partition, record) for record in records)
                except ValueError as exc:  # orjson.JSONDecodeError is one
                    await self.dead_letter(_unreadable(message, exc))
        plan = coalesce(entries, self._versions.delivered)
        if plan.stale:
            metrics.STALE_CONTACTS.inc(plan.stale)
            logger.info("dropped %d contacts older than ones already delivered", plan.stale)
        for record in plan.unusable:
            metrics.DEAD_LETTERS.labels("push", UNUSABLE_ERASURE).inc()
            await self.dead_letter(_unusable_erasure(record))
        await self.delivery.deliver(plan.records)
        await self._forget(plan.erasures, plan.erased)
        await self._versions.remember(plan.versions)
        observe_latency(batch, datetime.now(UTC))

    async def _forget(self, erasures: list[Erasure], dropped: int) -> None:
        """Forget the erased customers' contact versions, before the outbox offsets move."""
        await self._versions.forget(erasures)
        for erasure in erasures:
            metrics.ERASURES_APPLIED.inc()
            # The hashed id only: the customer id is personal data.
            logger.info(
                "erased customer %s (outbox partition %d): nothing of them is sent after this",
                erased_id(self._settings.erasure_hash_key, erasure.customer_id),
                erasure.partition,
            )
        if dropped:
            logger.info("dropped %d records of erased customers, never sent", dropped)

    async def dead_letter(self, letter: DeadLetter) -> None:
        # A foreign message near the outbox's limit does not fit with the dlq.* headers.
        letter = letter.fitted(self.dead_letter_limit)
        await self._producer.send_and_wait(
            self._settings.topics.outbox_dead_letter,
            key=letter.key,
            value=letter.value,
            headers=letter.headers(),
        )
        logger.error("dead-lettered an Ometria record: %s", letter.reason)


def entries(record: ConsumerRecord[bytes, bytes]) -> int:
    """The entries an outbox message carries: one customer's records of one fold batch each
    (one occurred-at header per customer, stream.runtime.outbox), else one (a backfilled or
    redriven record)."""
    return max(1, len(occurred_at(record.headers)))


def observe_latency(batch: Round, now: datetime) -> None:
    """Observe each customer's push latency; a header that is not a time with an offset (any
    producer may write to the outbox) is left out: the round was delivered all the same."""
    unreadable = 0
    for records in batch.values():
        for record in records:
            for raw in occurred_at(record.headers):
                occurred = _occurred(raw)
                if occurred is not None:
                    metrics.PUSH_LATENCY.observe(max(0.0, (now - occurred).total_seconds()))
                elif raw:
                    unreadable += 1
    if unreadable:
        logger.warning(
            "%d of this round's occurred-at headers are not ISO 8601 times with an offset "
            "(written by another producer?); their push latency is not observed",
            unreadable,
        )


def _occurred(raw: bytes) -> datetime | None:
    try:
        occurred = datetime.fromisoformat(raw.decode())
    except ValueError:  # UnicodeDecodeError is one
        return None
    return occurred if occurred.utcoffset() is not None else None


def _unusable_erasure(record: dict[str, Any]) -> DeadLetter:
    return DeadLetter.of_ometria_record(
        record,
        error_class=UNUSABLE_ERASURE,
        reason="an erasure record in the outbox names no customer_id: nobody could be forgotten "
        "(the worker writes stream.domain.erasure.erasure_record; redrive a fixed copy)",
        failed_at=datetime.now(UTC),
    )


def _unreadable(message: ConsumerRecord[bytes, bytes], exc: Exception) -> DeadLetter:
    return DeadLetter.of_record(
        message,
        stage="push",
        error_class=type(exc).__name__,
        reason=f"the outbox message is not a JSON record or list of records: {exc}",
        failed_at=datetime.now(UTC),
    )
