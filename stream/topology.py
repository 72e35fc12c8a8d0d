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


def topic_specs(settings: Settings) -> list[TopicSpec]:
    topics = settings.topics
    dead = {"retention.ms": str(DEAD_LETTER_RETENTION_MS)}
    return [
        TopicSpec(topics.events, topics.partitions, {}),
        TopicSpec(topics.outbox, topics.partitions, {}),
        TopicSpec(topics.dead_letter, topics.partitions, dead),
        TopicSpec(topics.outbox_dead_letter, topics.partitions, dead),
    ]


async def ensure_topics(settings: Settings) -> list[str]:
    """Create missing topics; return the names created.

    Raises:
        SettingsError: the events topic exists with another partition count than configured
            (the profile table must be partitioned exactly like its input).
    """
    admin = AIOKafkaAdminClient(
        bootstrap_servers=settings.kafka.bootstrap_servers, client_id=f"{settings.app_id}-admin"
    )
    await admin.start()
    try:
        specs = topic_specs(settings)
        existing = set(await admin.list_topics())
        present = [s.name for s in specs if s.name in existing]
        described = await admin.describe_topics(present) if present else []
        counts = {d["topic"]: len(d["partitions"]) for d in described}
        events = settings.topics.events
        if events in counts and counts[events] != settings.topics.partitions:
            raise SettingsError(
                f"topic {events} has {counts[events]} partitions but STREAM_TOPICS__PARTITIONS="
                f"{settings.topics.partitions}; set STREAM_TOPICS__PARTITIONS={counts[events]} "
                "(the profile table is partitioned like its input)"
            )
        missing = [spec for spec in specs if spec.name not in existing]
        if not missing:
            return []
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
        return created
    finally:
        await admin.close()
