"""Where the pusher group got to in each outbox partition, kept where Kafka does not expire it.

The broker drops the committed offsets of a group that has had no member for
`offsets.retention.minutes` (7 days by default): with STREAM_OMETRIA__ENABLED=false, the pushers
scaled to zero or the deployment stopped for longer than that, the pusher group would start the
outbox again from its beginning and re-send every contact and campaign event it still holds. So
after each commit the pusher writes the committed offset to a compacted topic partitioned like
the outbox (record key: the outbox's name, value: the offset as a decimal), and a partition the
group has no committed offset for starts where that record says.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from stream.errors import LoyaltyStreamError
from stream.runtime.kafka_admin import admin_client
from stream.runtime.reading import ranges_batches
from stream.settings import Settings

READ_TIMEOUT = 60.0


class UnreadableProgress(LoyaltyStreamError):
    """A progress record that is not an offset: where to start that partition is unknown."""


def encode_offset(offset: int) -> bytes:
    return str(offset).encode()


def parse_offset(raw: bytes) -> int:
    """An offset as the progress topic stores it.

    Raises:
        ValueError: not a decimal offset.
    """
    if not raw.isdigit():
        raise ValueError(f"not an outbox offset: {raw[:40]!r}")
    return int(raw)


async def record(
    producer: AIOKafkaProducer, settings: Settings, committed: Mapping[TopicPartition, int]
) -> None:
    """Store the outbox offsets the pusher group just committed."""
    key = settings.topics.outbox.encode()
    sent = [
        await producer.send(
            settings.topics.outbox_progress,
            key=key,
            value=encode_offset(offset),
            partition=tp.partition,
        )
        for tp, offset in committed.items()
    ]
    await asyncio.gather(*sent)


async def recorded(
    reader: AIOKafkaConsumer, settings: Settings, partitions: Iterable[int]
) -> dict[int, int]:
    """The last offset recorded for each of these outbox partitions (none: left out).

    A tombstone (a null value) forgets a partition's offset.

    Raises:
        UnreadableProgress: a partition's last record is not an offset.
        TimeoutError: the records could not be read within READ_TIMEOUT.
    """
    topic = settings.topics.outbox_progress
    key = settings.topics.outbox.encode()
    wanted = [TopicPartition(topic, p) for p in sorted(set(partitions))]
    if not wanted:
        return {}
    starts = await reader.beginning_offsets(wanted)
    ends = await reader.end_offsets(wanted)
    latest: dict[int, tuple[int, bytes | None]] = {}
    async with asyncio.timeout(READ_TIMEOUT):
        ranges = {tp: (starts[tp], ends[tp]) for tp in wanted}
        async for tp, records in ranges_batches(reader, ranges):
            for found in records:
                # Another key: an outbox this deployment had under another name.
                if found.key == key:
                    latest[tp.partition] = (found.offset, found.value)
    offsets = {}
    for partition, (at, value) in latest.items():
        if value is None:
            continue
        try:
            offsets[partition] = parse_offset(value)
        except ValueError as exc:
            raise UnreadableProgress(
                f"the progress topic {topic} partition {partition} offset {at} holds "
                f"{value[:40]!r}, not an outbox offset (the pusher writes decimal integers): "
                f"produce a tombstone (a null value) with key {key.decode()!r} to that "
                "partition, which forgets it (the outbox partition then starts where the "
                "workers' group got to, else at its beginning), or a record with the offset to "
                "start from, then restart the pusher"
            ) from exc
    return offsets


async def where_delivery_stopped(
    reader: AIOKafkaConsumer, settings: Settings, fresh: list[TopicPartition]
) -> dict[TopicPartition, int]:
    """Where these outbox partitions, which the pusher group has no committed offset for,
    start: the offset last recorded on the progress topic, else where the workers' group got
    to (neither: left out).

    The broker drops the offsets of a group left empty for a week (a deployment disabled that
    long), and the progress topic keeps them. Before the pusher had a group of its own, the
    workers' group consumed the outbox; an upgraded deployment must neither re-send nor skip
    what it had reached.

    Raises:
        UnreadableProgress, TimeoutError: as `recorded`.
    """
    found = await recorded(reader, settings, (tp.partition for tp in fresh))
    outbox = settings.topics.outbox
    offsets = {TopicPartition(outbox, partition): offset for partition, offset in found.items()}
    if len(offsets) < len(fresh):
        async with admin_client(settings) as admin:
            workers = await admin.list_consumer_group_offsets(settings.app_id)
        for tp in fresh:
            at = workers.get(tp)
            if tp not in offsets and at is not None and at.offset >= 0:
                offsets[tp] = at.offset
    return offsets
