"""The worker group's committed offsets on the events topic: read them, and give every
partition one before the workers start."""

from __future__ import annotations

import logging
from collections.abc import Hashable

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError
from aiokafka.structs import OffsetAndMetadata
from tenacity import AsyncRetrying, retry_if_exception, stop_after_delay, wait_exponential

from stream.runtime.kafka_admin import admin_client, partition_ids
from stream.runtime.kafka_auth import client_options
from stream.settings import Settings

logger = logging.getLogger(__name__)


async def ensure_committed_offsets(settings: Settings) -> int:
    """Give every events partition a committed offset (its earliest) if it has none.

    Faust seeks to the committed offsets after recovering its tables, while its streams may
    already be running; for a partition with no committed offset that seek drops the records
    fetched so far without moving back, so they are skipped until the next restart. A worker
    killed before its first commit leaves exactly that behind. Committing the earliest offsets
    up front, while the group is empty, closes the gap. Returns how many were committed.

    A fresh cluster may need a moment before it has a group coordinator, so retriable errors are
    retried for a while; a running group (whose members commit for themselves) is left alone.
    """
    retrying = AsyncRetrying(
        retry=retry_if_exception(lambda exc: isinstance(exc, KafkaError) and exc.retriable),
        stop=stop_after_delay(60),
        wait=wait_exponential(multiplier=0.2, max=2),
        reraise=True,
    )
    try:
        async for attempt in retrying:
            with attempt:
                return await _commit_earliest(settings)
    except KafkaError as exc:
        logger.info("initial offsets not committed (%r); the group is active", exc)
    return 0


async def _commit_earliest(settings: Settings) -> int:
    topics = [settings.topics.events]
    committed = await committed_offsets(settings)
    wanted = [
        TopicPartition(topic, partition)
        for topic in topics
        for partition in await partition_ids(settings, topic)
        if (topic, partition) not in committed
    ]
    if not wanted:
        return 0
    consumer = AIOKafkaConsumer(
        **client_options(settings.kafka), group_id=settings.app_id, enable_auto_commit=False
    )
    await consumer.start()
    try:
        consumer.assign(wanted)
        earliest = await consumer.beginning_offsets(wanted)
        await consumer.commit(
            {tp: OffsetAndMetadata(offset, "") for tp, offset in earliest.items()}
        )
    finally:
        await consumer.stop()
    return len(wanted)


async def committed_offsets(settings: Settings) -> dict[Hashable, int]:
    """The worker group's committed offsets, keyed by (topic, partition)."""
    async with admin_client(settings) as admin:
        offsets = await admin.list_consumer_group_offsets(settings.app_id)
    return {(tp.topic, tp.partition): at.offset for tp, at in offsets.items() if at.offset >= 0}
