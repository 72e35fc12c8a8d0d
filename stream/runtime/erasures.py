"""The erasures topic: every customer erasure of the deployment, kept for good.

One compacted partition, shared by deployments (keys start with the app id). Two kinds of
record, both keyed by the customer's erased id (stream.domain.erasure.erased_id), never the id:

- `<app id>/erased/<erased id>/<partition>` -> `{"offset": E, "erased_at": ...}`: the customer
  was erased at offset E of that events partition. Written by the worker that folds the
  `customer.erased` event, acknowledged before its offset commits; read by every worker before
  it folds (`ErasureIndex`), and by `redrive`.
- `<app id>/ometria/<erased id>` -> `{"customer_id": ..., "erased_at": ...}`: the erasure is not
  yet confirmed done in Ometria (which this service cannot do itself, see
  docs/privacy.md#privacy). The only record that holds the id; `forget --confirm-ometria` deletes it
  (a tombstone, which compaction removes).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

import orjson
from aiokafka import AIOKafkaProducer, TopicPartition
from pydantic import AwareDatetime, BaseModel, ConfigDict, ValidationError

from stream.domain.erasure import erased_id
from stream.errors import LoyaltyStreamError
from stream.runtime.kafka_admin import partition_ids
from stream.runtime.kafka_auth import client_options
from stream.runtime.reading import (
    READ_TIMEOUT,
    group_less_consumer,
    latest_values,
    partition_batches,
)
from stream.settings import Settings

_ERASED = "erased"
_OMETRIA = "ometria"


class UnreadableErasure(LoyaltyStreamError):
    """A record of this deployment in the erasures topic that this code did not write."""


class _Body(BaseModel):
    model_config = ConfigDict(strict=True, frozen=True, extra="forbid")


_B = TypeVar("_B", bound=_Body)


class Erased(_Body):
    offset: int
    erased_at: AwareDatetime


class PendingInOmetria(_Body):
    customer_id: str
    erased_at: AwareDatetime


def erased_key(app_id: str, erased: str, partition: int) -> bytes:
    return f"{app_id}/{_ERASED}/{erased}/{partition}".encode()


def ometria_key(app_id: str, erased: str) -> bytes:
    return f"{app_id}/{_OMETRIA}/{erased}".encode()


def erased_value(offset: int, at: datetime) -> bytes:
    return orjson.dumps({"offset": offset, "erased_at": at.isoformat()})


def pending_value(customer_id: str, at: datetime) -> bytes:
    return orjson.dumps({"customer_id": customer_id, "erased_at": at.isoformat()})


def erasure_records(
    app_id: str, erased: str, customer_id: str, partition: int, offset: int, at: datetime
) -> list[tuple[bytes, bytes]]:
    """(key, value) of both records of one erasure: where it was, and pending in Ometria."""
    return [
        (erased_key(app_id, erased, partition), erased_value(offset, at)),
        (ometria_key(app_id, erased), pending_value(customer_id, at)),
    ]


def _parse(model: type[_B], key: bytes, raw: bytes) -> _B:
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        field = ".".join(str(p) for p in exc.errors()[0]["loc"]) or "the value"
        raise UnreadableErasure(
            f"erasures record {key.decode(errors='replace')!r}: {field} is not what this "
            f"service writes ({exc.errors()[0]['type']})"
        ) from None


class ErasureIndex:
    """(erased id, events partition) -> the offset of the erasure, for this deployment.

    Read from the topic's beginning once, then only what was added since (`catch_up`): a
    worker catches up on every assignment, before it folds, so an erasure another worker
    recorded is known before its partition is folded here. Holds one small entry per erasure
    and partition (about 150 bytes), not per customer.
    """

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._hash_key = settings.erasure_hash_key
        self._prefix = f"{settings.app_id}/{_ERASED}/".encode()
        self._offsets: dict[str, int] = {}
        self._position = 0  # the next offset of the erasures topic to read

    def __len__(self) -> int:
        return len(self._offsets)

    def erased(self, customer_id: str) -> str:
        """The customer's erased id (for keys and log lines)."""
        return erased_id(self._hash_key, customer_id)

    def erased_at(self, customer_id: str, partition: int) -> int | None:
        """The offset of the customer's latest erasure in `partition`, if any."""
        if not self._offsets:
            return None
        return self._offsets.get(f"{self.erased(customer_id)}/{partition}")

    def add(self, erased: str, partition: int, offset: int) -> None:
        key = f"{erased}/{partition}"
        self._offsets[key] = max(offset, self._offsets.get(key, offset))

    async def catch_up(self) -> None:
        """Read what the topic gained since the last call (the whole topic the first time).

        Raises:
            UnreadableErasure: a record of this deployment that this code did not write.
            KafkaError, TimeoutError: the topic could not be read; nothing may be folded yet.
        """
        topic = self._settings.topics.erasures
        if not await partition_ids(self._settings, topic):
            return
        tp = TopicPartition(topic, 0)
        consumer = group_less_consumer(self._settings)
        await consumer.start()
        try:
            end = (await consumer.end_offsets([tp]))[tp]
            if end <= self._position:
                return
            async with asyncio.timeout(READ_TIMEOUT):
                async for records in partition_batches(consumer, tp, end, start=self._position):
                    for record in records:
                        self._take(record.key, record.value)
            self._position = end
        finally:
            await consumer.stop()

    def _take(self, key: bytes | None, value: bytes | None) -> None:
        if key is None or value is None or not key.startswith(self._prefix):
            return  # another deployment's, a pending-in-Ometria record, or a tombstone
        erased, _, partition = key[len(self._prefix) :].decode(errors="replace").rpartition("/")
        if not erased or not partition.isdigit():
            raise UnreadableErasure(f"erasures record {key!r}: not <erased id>/<partition>")
        self.add(erased, int(partition), _parse(Erased, key, value).offset)


@dataclass(frozen=True, slots=True)
class Pending:
    """An erasure not yet confirmed done in Ometria."""

    erased: str
    customer_id: str
    erased_at: datetime


async def pending_in_ometria(settings: Settings) -> list[Pending]:
    """The erasures `forget --confirm-ometria` has not confirmed yet, oldest first."""
    topic = settings.topics.erasures
    if not await partition_ids(settings, topic):
        return []
    prefix = f"{settings.app_id}/{_OMETRIA}/".encode()
    consumer = group_less_consumer(settings)
    await consumer.start()
    try:
        latest = await latest_values(consumer, TopicPartition(topic, 0), prefix)
    finally:
        await consumer.stop()
    pending = []
    for key, value in latest.items():
        if value is None:
            continue
        body = _parse(PendingInOmetria, key, value)
        pending.append(Pending(key[len(prefix) :].decode(), body.customer_id, body.erased_at))
    return sorted(pending, key=lambda p: p.erased_at)


async def confirm_in_ometria(settings: Settings, customer_ids: Iterable[str]) -> None:
    """Delete the pending-in-Ometria records of these customers (acknowledged by all replicas)."""
    key = settings.erasure_hash_key
    producer = AIOKafkaProducer(**client_options(settings.kafka), acks="all")
    await producer.start()
    try:
        for customer_id in customer_ids:
            name = ometria_key(settings.app_id, erased_id(key, customer_id))
            await producer.send_and_wait(
                settings.topics.erasures, key=name, value=None, partition=0
            )
    finally:
        await producer.stop()
