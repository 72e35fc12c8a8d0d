"""Topic creation against the real broker (auto-creation is off there)."""

from __future__ import annotations

import asyncio
import time

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from stream.settings import SettingsError, load_settings
from stream.topology import ensure_topics
from tests.integration.conftest import BOOTSTRAP


def _settings(names, **topics):
    return load_settings(
        kafka={"bootstrap_servers": BOOTSTRAP},
        app_id=names.app_id,
        topics={
            "events": names.events,
            "dead_letter": names.dead_letter,
            "outbox": names.outbox,
            "outbox_dead_letter": names.outbox_dead_letter,
            **topics,
        },
    )


async def _partitions(topic: str) -> int:
    """A new topic's partition count, once the broker's metadata has it."""
    admin = AIOKafkaAdminClient(bootstrap_servers=BOOTSTRAP)
    await admin.start()
    try:
        deadline = time.monotonic() + 30
        while True:
            (described,) = await admin.describe_topics([topic])
            if described["partitions"] or time.monotonic() > deadline:
                return len(described["partitions"])
            await asyncio.sleep(0.1)  # polling the broker's metadata with a deadline
    finally:
        await admin.close()


async def _create(topic: str, partitions: int) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=BOOTSTRAP)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, partitions, 1)])
    finally:
        await admin.close()


async def test_ensure_topics_creates_every_topic_once(names):
    first = await ensure_topics(_settings(names, partitions=3))
    assert set(first.created) == {
        names.events,
        names.dead_letter,
        names.outbox,
        names.outbox_dead_letter,
    }
    assert await _partitions(names.outbox) == 3
    again = await ensure_topics(_settings(names, partitions=3))
    assert again.created == []


async def test_ensure_topics_existing_events_topic_sets_the_partition_count(names):
    await _create(names.events, 2)
    report = await ensure_topics(_settings(names))
    assert report.partitions == 2
    assert await _partitions(names.outbox) == 2


async def test_ensure_topics_conflicting_partition_setting_names_the_fix(names):
    await _create(names.events, 2)
    with pytest.raises(SettingsError, match="set STREAM_TOPICS__PARTITIONS=2 or leave it unset"):
        await ensure_topics(_settings(names, partitions=5))
