"""What existing topics are configured with, as the broker applies them: retention, the
largest record, how long a tombstone stays (their own settings or the broker's defaults)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import for_code

from stream.runtime.kafka_admin import admin_client
from stream.settings import Settings

# Kafka's default delete.retention.ms: how long a compacted topic keeps a tombstone at least.
KAFKA_DELETE_RETENTION = timedelta(days=1)
# Kafka's default message.max.bytes, for a topic whose limit is not known (yet).
KAFKA_MAX_MESSAGE_BYTES = 1_048_588
# The producers' own bound on one record: the broker's default socket.request.max.bytes, the
# largest request it reads at all. The topics' max.message.bytes are the limits that matter
# (MessageLimits); a producer's default (Faust's 1,000,000, aiokafka's 1,048,576) is below the
# broker's default message.max.bytes, so a record the broker takes could not even be sent.
PRODUCER_MAX_REQUEST_BYTES = 104_857_600


@dataclass(frozen=True, slots=True)
class Retention:
    """How long a topic keeps records by time and by size; None = unbounded."""

    period: timedelta | None
    bytes_per_partition: int | None


@dataclass(frozen=True, slots=True)
class MessageLimits:
    """The largest record (max.message.bytes) of each topic that may get a large one.

    A record over its topic's limit is refused by the broker; refused, the batch that wrote it
    stops the worker, which then reads the same input again: a crash loop. Outbox messages are
    split under the outbox's limit and dead letters cut to their topic's.
    """

    outbox: int = KAFKA_MAX_MESSAGE_BYTES
    dead_letter: int = KAFKA_MAX_MESSAGE_BYTES
    outbox_dead_letter: int = KAFKA_MAX_MESSAGE_BYTES


async def _topic_configs(
    admin: AIOKafkaAdminClient, topics: list[str]
) -> dict[str, dict[str, str]]:
    """The effective configuration of existing topics (their own or the broker's defaults)."""
    resources = [ConfigResource(ConfigResourceType.TOPIC, topic) for topic in topics]
    (response,) = await admin.describe_configs(resources)
    configs = {}
    for result in response.resources:
        error_code, error_message, _type, name, entries = result[:5]
        if error_code:
            raise for_code(error_code)(f"cannot read the configuration of {name}: {error_message}")
        configs[name] = {entry[0]: entry[1] for entry in entries}
    return configs


async def topic_retention(admin: AIOKafkaAdminClient, topic: str) -> Retention:
    """The effective retention of an existing topic (its own or the broker's default)."""
    values = (await _topic_configs(admin, [topic]))[topic]
    millis = int(values.get("retention.ms") or -1)
    size = int(values.get("retention.bytes") or -1)
    return Retention(
        None if millis < 0 else timedelta(milliseconds=millis), None if size < 0 else size
    )


async def delete_retention(settings: Settings, topic: str) -> timedelta:
    """How long the compacted `topic` keeps a tombstone at least (delete.retention.ms)."""
    async with admin_client(settings) as admin:
        values = (await _topic_configs(admin, [topic]))[topic]
    millis = values.get("delete.retention.ms")
    return KAFKA_DELETE_RETENTION if not millis else timedelta(milliseconds=int(millis))


async def message_limits(settings: Settings) -> MessageLimits:
    """The topics' max.message.bytes as the broker applies them (the broker's own default
    message.max.bytes where a topic sets none)."""
    topics = settings.topics
    names = [topics.outbox, topics.dead_letter, topics.outbox_dead_letter]
    async with admin_client(settings) as admin:
        configs = await _topic_configs(admin, names)
    outbox, dead_letter, outbox_dead_letter = (
        int(configs[name].get("max.message.bytes") or KAFKA_MAX_MESSAGE_BYTES) for name in names
    )
    return MessageLimits(outbox, dead_letter, outbox_dead_letter)
