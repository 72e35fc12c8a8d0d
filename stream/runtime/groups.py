"""What the consumer groups look like from outside: live members, and how far behind they are."""

from __future__ import annotations

from dataclasses import dataclass

from aiokafka import TopicPartition
from aiokafka.errors import for_code
from aiokafka.structs import OffsetAndMetadata

from stream.runtime import outbox_progress
from stream.runtime.kafka_admin import admin_client, partition_ids
from stream.runtime.reading import group_less_consumer
from stream.settings import Settings


@dataclass(frozen=True, slots=True)
class GroupState:
    group: str
    state: str  # Kafka's: Empty, Stable, PreparingRebalance, CompletingRebalance, Dead
    members: list[str]  # client id @ host of each live member


async def describe_group(settings: Settings, group: str) -> GroupState:
    async with admin_client(settings) as admin:
        (response,) = await admin.describe_consumer_groups([group])
    error_code, group_id, state, _protocol_type, _protocol, members, *_ = response.groups[0]
    if error_code:
        raise for_code(error_code)(f"cannot describe consumer group {group}")
    return GroupState(group_id, state, [f"{m[1]}@{m[2]}" for m in members])


@dataclass(frozen=True, slots=True)
class Backlog:
    """Records of a topic a group has not committed yet, per partition."""

    topic: str
    per_partition: dict[int, int]

    @property
    def total(self) -> int:
        return sum(self.per_partition.values())


async def outbox_backlog(settings: Settings) -> Backlog:
    """End offset minus the pusher group's committed offset per outbox partition.

    A partition the group has no committed offset for counts from where the pusher starts it
    (stream.runtime.pusher): the offset recorded on the progress topic, else the workers'
    group's, else the partition's beginning.
    """
    topic = settings.topics.outbox
    ids = await partition_ids(settings, topic)
    if not ids:
        return Backlog(topic, {})
    async with admin_client(settings) as admin:
        own = await admin.list_consumer_group_offsets(settings.pusher_group)
        fallback = await admin.list_consumer_group_offsets(settings.app_id)
    partitions = [TopicPartition(topic, p) for p in ids]
    consumer = group_less_consumer(settings)
    await consumer.start()
    try:
        starts = await consumer.beginning_offsets(partitions)
        ends = await consumer.end_offsets(partitions)
        fresh = [tp.partition for tp in partitions if _offset(own.get(tp)) is None]
        recorded = {}
        # Workers older than the progress topic have not created it yet.
        if fresh and await partition_ids(settings, settings.topics.outbox_progress):
            recorded = await outbox_progress.recorded(consumer, settings, fresh)
    finally:
        await consumer.stop()
    per_partition = {}
    for tp in partitions:
        at = _offset(own.get(tp))
        if at is None:
            at = recorded.get(tp.partition)
        if at is None:
            at = _offset(fallback.get(tp))
        per_partition[tp.partition] = max(0, ends[tp] - max(at or 0, starts[tp]))
    return Backlog(topic, per_partition)


def _offset(committed: OffsetAndMetadata | None) -> int | None:
    return committed.offset if committed is not None and committed.offset >= 0 else None
