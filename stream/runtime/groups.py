"""What the consumer groups look like from outside: live members, and how far behind they are."""

from __future__ import annotations

from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import for_code

from stream.runtime.kafka_auth import client_options
from stream.runtime.topology import admin_client, partition_ids
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


async def backlog(settings: Settings, topic: str, group: str, fallback_group: str) -> Backlog:
    """End offset minus `group`'s committed offset per partition of `topic`.

    A partition `group` never committed counts from `fallback_group`'s offset (where the pusher
    starts such a partition, see stream.runtime.pusher), else from the partition's beginning.
    """
    ids = await partition_ids(settings, topic)
    if not ids:
        return Backlog(topic, {})
    async with admin_client(settings) as admin:
        own = await admin.list_consumer_group_offsets(group)
        fallback = await admin.list_consumer_group_offsets(fallback_group)
    partitions = [TopicPartition(topic, p) for p in ids]
    consumer = AIOKafkaConsumer(**client_options(settings.kafka), enable_auto_commit=False)
    await consumer.start()
    try:
        starts = await consumer.beginning_offsets(partitions)
        ends = await consumer.end_offsets(partitions)
    finally:
        await consumer.stop()
    per_partition = {}
    for tp in partitions:
        at = next((o.offset for o in (own.get(tp), fallback.get(tp)) if o and o.offset >= 0), None)
        per_partition[tp.partition] = max(0, ends[tp] - max(at or 0, starts[tp]))
    return Backlog(topic, per_partition)
