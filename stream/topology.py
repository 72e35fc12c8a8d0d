"""Create the topics the worker writes to and check the ones it reads (auto-creation is off)."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError, for_code

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
        bootstrap_servers=settings.kafka.bootstrap_servers, client_id=f"{settings.app_id}-admin"
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
