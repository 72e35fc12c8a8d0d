"""Create the topics the worker writes to and check the ones it reads (auto-creation is off)."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError, for_code
from aiokafka.structs import OffsetAndMetadata

from stream.kafka_auth import client_options
from stream.settings import Settings, SettingsError

logger = logging.getLogger(__name__)

DEAD_LETTER_RETENTION_MS = 30 * 24 * 3600 * 1000  # a month to notice, fix and redrive


@dataclass(frozen=True, slots=True)
class TopicSpec:
    name: str
    partitions: int
    configs: dict[str, str]


@dataclass(frozen=True, slots=True)
class TopicsReport:
    created: list[str]
    partitions: int  # of the events topic, which the profile table must match


def topic_specs(settings: Settings, partitions: int) -> list[TopicSpec]:
    topics = settings.topics
    dead = {"retention.ms": str(DEAD_LETTER_RETENTION_MS)}
    return [
        TopicSpec(topics.events, partitions, {}),
        TopicSpec(topics.outbox, partitions, {}),
        TopicSpec(topics.dead_letter, partitions, dead),
        TopicSpec(topics.outbox_dead_letter, partitions, dead),
    ]


async def ensure_topics(settings: Settings) -> TopicsReport:
    """Create missing topics and learn the events topic's partition count.

    Raises:
        SettingsError: STREAM_TOPICS__PARTITIONS is set and differs from the partitions of an
            existing events topic (the profile table must be partitioned like its input).
    """
    admin = AIOKafkaAdminClient(
        **client_options(settings.kafka), client_id=f"{settings.app_id}-admin"
    )
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        events = settings.topics.events
        configured = settings.topics.partitions
        partitions = settings.topics.partition_count
        if events in existing:
            (described,) = await admin.describe_topics([events])
            partitions = len(described["partitions"])
            if configured is not None and configured != partitions:
                raise SettingsError(
                    f"topic {events} has {partitions} partitions but STREAM_TOPICS__PARTITIONS="
                    f"{configured}; set STREAM_TOPICS__PARTITIONS={partitions} or leave it unset "
                    "(the profile table is partitioned like its input)"
                )
        specs = topic_specs(settings, partitions)
        missing = [spec for spec in specs if spec.name not in existing]
        if not missing:
            return TopicsReport([], partitions)
        response = await admin.create_topics(
            [
                NewTopic(
                    spec.name,
                    spec.partitions,
                    settings.topics.replication_factor,
                    topic_configs=spec.configs,
                )
                for spec in missing
            ]
        )
        created = []
        for name, code, *_ in response.topic_errors:
            if code == TopicAlreadyExistsError.errno:
                continue  # another worker created it first
            if code:
                raise for_code(code)(f"cannot create topic {name}")
            created.append(name)
            logger.info("created topic %s", name)
        return TopicsReport(created, partitions)
    finally:
        await admin.close()


async def partition_ids(settings: Settings, topic: str) -> list[int]:
    """The partitions of a topic (none if it does not exist)."""
    admin = AIOKafkaAdminClient(
        **client_options(settings.kafka), client_id=f"{settings.app_id}-admin"
    )
    await admin.start()
    try:
        if topic not in set(await admin.list_topics()):
            return []
        (described,) = await admin.describe_topics([topic])
        return sorted(p["partition"] for p in described["partitions"])
    finally:
        await admin.close()


async def ensure_committed_offsets(settings: Settings) -> int:
    """Give every partition the worker consumes a committed offset (its earliest) if it has none.

    Faust seeks to the committed offsets after recovering its tables, while its streams may
    already be running; for a partition with no committed offset that seek drops the records
    fetched so far without moving back, so they are skipped until the next restart. A worker
    killed before its first commit leaves exactly that behind. Committing the earliest offsets
    up front, while the group is empty, closes the gap. Returns how many were committed.
    """
    topics = [settings.topics.events, settings.topics.outbox]
    admin = AIOKafkaAdminClient(
        **client_options(settings.kafka), client_id=f"{settings.app_id}-admin"
    )
    await admin.start()
    try:
        committed = await admin.list_consumer_group_offsets(settings.app_id)
    finally:
        await admin.close()
    wanted = [
        TopicPartition(topic, partition)
        for topic in topics
        for partition in await partition_ids(settings, topic)
        if TopicPartition(topic, partition) not in committed
    ]
    if not wanted:
        return 0
    consumer = AIOKafkaConsumer(
        **client_options(settings.kafka),
        group_id=settings.app_id,
        enable_auto_commit=False,
    )
    await consumer.start()
    try:
        consumer.assign(wanted)
        earliest = await consumer.beginning_offsets(wanted)
        await consumer.commit(
            {tp: OffsetAndMetadata(offset, "") for tp, offset in earliest.items()}
        )
    except KafkaError as exc:
        # A running member owns the group and commits for itself.
        logger.info("initial offsets not committed (%s); the group is active", exc)
        return 0
    finally:
        await consumer.stop()
    return len(wanted)
