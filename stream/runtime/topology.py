"""Declare the topics the worker uses and create the missing ones (auto-creation is off); report
what an existing events, outbox or dead-letter topic's retention means for replays and erasures."""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass, replace
from datetime import timedelta

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError, UnknownTopicOrPartitionError, for_code
from aiokafka.partitioner import murmur2
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_delay, wait_exponential

from stream.domain.durations import duration_text
from stream.runtime.kafka_admin import admin_client
from stream.runtime.topic_configs import Retention, topic_retention
from stream.settings import Settings, SettingsError

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class TopicSpec:
    name: str
    partitions: int
    configs: dict[str, str]


@dataclass(frozen=True, slots=True)
class TopicsReport:
    created: list[str]
    partitions: int  # of the events topic, which the profile table must match
    replay_reach: str | None = None  # set when the events topic deletes old events
    # Outbox and dead-letter topics that keep records past the erasure deadline.
    over_erasure_deadline: tuple[str, ...] = ()


# How long personal data may outlive a customer's erasure in a topic that no erasure reaches
# (docs/privacy.md#privacy): a month, GDPR Art. 12(3)'s time to answer a request.
ERASURE_DEADLINE = timedelta(days=30)


def _retention(period: timedelta | None) -> dict[str, str]:
    """Explicit time retention (never the broker's default, which may be a week)."""
    millis = -1 if period is None else int(period.total_seconds() * 1000)
    return {"cleanup.policy": "delete", "retention.ms": str(millis), "retention.bytes": "-1"}


def topic_specs(settings: Settings, partitions: int) -> list[TopicSpec]:
    topics = settings.topics
    dead = _retention(topics.dead_letter_retention)
    return [
        TopicSpec(topics.events, partitions, _retention(topics.events_retention)),
        TopicSpec(topics.outbox, partitions, _retention(topics.outbox_retention)),
        TopicSpec(topics.dead_letter, partitions, dead),
        TopicSpec(topics.outbox_dead_letter, partitions, dead),
        # Partitioned like the outbox: a pusher reads the partitions it owns there.
        TopicSpec(topics.outbox_versions, partitions, {"cleanup.policy": "compact"}),
        # A record per partition and pusher round: compaction cleans closed segments only, so
        # daily ones keep a partition to about a day of them.
        TopicSpec(
            topics.outbox_progress,
            partitions,
            {"cleanup.policy": "compact", "segment.ms": str(86_400_000)},
        ),
        # One partition: every process reads all of it, and its few records stay in order.
        TopicSpec(topics.control, 1, {"cleanup.policy": "compact"}),
        # One partition, read by every worker (and by `redrive`, `status`); kept for good.
        TopicSpec(topics.erasures, 1, {"cleanup.policy": "compact"}),
        # One partition, read whole by `redrive`; a marker goes with its dead letter.
        TopicSpec(
            topics.redriven,
            1,
            {**dead, "cleanup.policy": "compact,delete"},
        ),
    ]


def replay_reach(topic: str, retention: Retention) -> str | None:
    """A sentence on how far back a replay of `topic` can go, when its retention is finite."""
    limits = []
    if retention.period is not None:
        limits.append(
            f"events older than {duration_text(retention.period)} are deleted (retention.ms)"
        )
    if retention.bytes_per_partition is not None:
        size = retention.bytes_per_partition / 2**20
        limits.append(f"each partition keeps at most {size:,.0f} MiB (retention.bytes)")
    if not limits:
        return None
    return (
        f"topic {topic} has finite retention: {'; '.join(limits)}. A replay or a rebuilt table "
        "can only reach what is left; set retention.ms=-1 on it to keep the whole history"
    )


def over_erasure_deadline(topic: str, retention: Retention) -> str | None:
    """A warning when `topic`, which an erasure does not reach, keeps records longer than the
    erasure deadline (or for ever)."""
    if retention.period is not None and retention.period <= ERASURE_DEADLINE:
        return None
    kept = "for ever" if retention.period is None else f"for {duration_text(retention.period)}"
    return (
        f"topic {topic} keeps records {kept} (retention.ms), longer than the "
        f"{duration_text(ERASURE_DEADLINE)} erasure deadline: an erased customer's data "
        "stays there that long; set retention.ms to at most "
        f"{int(ERASURE_DEADLINE.total_seconds() * 1000)} on it (see docs/privacy.md in the "
        "loyalty-stream repository)"
    )


async def ensure_topics(settings: Settings) -> TopicsReport:
    """Create missing topics and learn the events topic's partition count.

    Raises:
        SettingsError: STREAM_TOPICS__PARTITIONS is set and differs from the partitions of an
            existing events topic (the profile table must be partitioned like its input).
    """
    async with admin_client(settings) as admin:
        existing = set(await admin.list_topics())
        events, *others = topic_specs(settings, settings.topics.partition_count)
        created = await _create(admin, settings, [events], existing)
        # The table needs the events topic's own count, whoever created it and when.
        partitions = await _partition_count(admin, events.name)
        configured = settings.topics.partitions
        if configured is not None and configured != partitions:
            raise SettingsError(
                f"topic {events.name} has {partitions} partitions but "
                f"STREAM_TOPICS__PARTITIONS={configured}; set STREAM_TOPICS__PARTITIONS="
                f"{partitions} or leave it unset (the profile table is partitioned like its input)"
            )
        single = {settings.topics.control, settings.topics.redriven, settings.topics.erasures}
        others = [
            spec if spec.name in single else replace(spec, partitions=partitions) for spec in others
        ]
        created += await _create(admin, settings, others, existing)
        reach = replay_reach(events.name, await topic_retention(admin, events.name))
        topics = settings.topics
        warnings = [
            warning
            for name in (topics.outbox, topics.dead_letter, topics.outbox_dead_letter)
            if (warning := over_erasure_deadline(name, await _retention_of(admin, name)))
        ]
        return TopicsReport(created, partitions, reach, tuple(warnings))


async def _retention_of(admin: AIOKafkaAdminClient, topic: str) -> Retention:
    """A topic's effective retention, waiting briefly for a new topic's configuration (which
    the broker shows a moment after creating it; the workers read it next)."""
    async for attempt in AsyncRetrying(
        retry=retry_if_exception_type(UnknownTopicOrPartitionError),
        stop=stop_after_delay(30),
        wait=wait_exponential(multiplier=0.1, max=1),
        reraise=True,
    ):
        with attempt:
            return await topic_retention(admin, topic)
    raise AssertionError("unreachable")  # pragma: no cover


async def _create(
    admin: AIOKafkaAdminClient, settings: Settings, specs: list[TopicSpec], existing: set[str]
) -> list[str]:
    """Create the topics not in `existing`; return those this call created."""
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
            continue  # created meanwhile, by a producer or another worker
        if code:
            raise for_code(code)(f"cannot create topic {name}")
        created.append(name)
        logger.info("created topic %s", name)
    return created


async def _partition_count(admin: AIOKafkaAdminClient, topic: str) -> int:
    """The partitions of an existing topic, waiting briefly for a new one's metadata."""
    async for attempt in AsyncRetrying(
        retry=retry_if_exception_type(LookupError),
        stop=stop_after_delay(30),
        wait=wait_exponential(multiplier=0.1, max=1),
        reraise=True,
    ):
        with attempt:
            (described,) = await admin.describe_topics([topic])
            if described.get("error_code") or not described["partitions"]:
                raise LookupError(f"no metadata for topic {topic} yet")
            return len(described["partitions"])
    raise AssertionError("unreachable")  # pragma: no cover


@functools.lru_cache(maxsize=65_536)
def default_partition(key: bytes, partitions: int) -> int:
    """The partition Kafka's default partitioner (murmur2, as aiokafka's) gives a keyed record:
    the producers' for a customer's events, and the outbox's for their Ometria records."""
    hashed: int = murmur2(key)
    return (hashed & 0x7FFFFFFF) % partitions
