"""Topic creation against the real broker (auto-creation is off there)."""

from __future__ import annotations

import asyncio
import time

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from stream.runtime.topology import ensure_topics
from stream.settings import SettingsError
from tests.support.kafka import BOOTSTRAP, names_settings


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
    first = await ensure_topics(names_settings(names, partitions=3))
    assert set(first.created) == {
        names.events,
        names.dead_letter,
        names.outbox,
        names.outbox_dead_letter,
        names.outbox_versions,
        names.outbox_progress,
        names.control,
        names.redriven,
        names.erasures,
    }
    assert await _partitions(names.outbox) == 3
    assert await _partitions(names.outbox_versions) == 3, "partitioned like the outbox"
    assert await _partitions(names.outbox_progress) == 3, "partitioned like the outbox"
    assert await _partitions(names.control) == 1, "one ordered partition every process reads"
    assert await _partitions(names.redriven) == 1, "one partition redrive reads whole"
    assert await _partitions(names.erasures) == 1, "one partition every worker reads whole"
    again = await ensure_topics(names_settings(names, partitions=3))
    assert again.created == []


async def test_ensure_topics_existing_events_topic_sets_the_partition_count(names):
    await _create(names.events, 2)
    report = await ensure_topics(names_settings(names))
    assert report.partitions == 2
    assert await _partitions(names.outbox) == 2


async def test_ensure_topics_conflicting_partition_setting_names_the_fix(names):
    await _create(names.events, 2)
    with pytest.raises(SettingsError, match="set STREAM_TOPICS__PARTITIONS=2 or leave it unset"):
        await ensure_topics(names_settings(names, partitions=5))


async def test_created_topics_have_their_retention_on_the_broker(names):
    from stream.runtime.kafka_admin import admin_client
    from stream.runtime.topic_configs import topic_retention

    settings = names_settings(names, partitions=3, outbox_retention="20d")
    report = await ensure_topics(settings)
    assert report.replay_reach is None, "a created events topic keeps the whole history"
    async with admin_client(settings) as admin:
        outbox = await topic_retention(admin, names.outbox)
        events = await topic_retention(admin, names.events)
        dead = await topic_retention(admin, names.dead_letter)
    assert outbox.period is not None
    assert outbox.period.days == 20
    assert events.period is None
    assert dead.period is not None
    assert dead.period.days == 30


async def test_an_existing_dead_letter_topic_kept_for_ever_is_reported_past_the_erasure_deadline(
    names,
):
    admin = AIOKafkaAdminClient(bootstrap_servers=BOOTSTRAP)
    await admin.start()
    try:
        await admin.create_topics(
            [NewTopic(names.dead_letter, 3, 1, topic_configs={"retention.ms": "-1"})]
        )
    finally:
        await admin.close()
    report = await ensure_topics(names_settings(names, partitions=3))
    (warning,) = report.over_erasure_deadline
    assert f"topic {names.dead_letter} keeps records for ever" in warning
    assert "30 days erasure deadline" in warning


async def test_events_topic_with_finite_retention_reports_how_far_replay_reaches(names):
    admin = AIOKafkaAdminClient(bootstrap_servers=BOOTSTRAP)
    await admin.start()
    try:
        week = str(7 * 86400 * 1000)
        await admin.create_topics(
            [NewTopic(names.events, 3, 1, topic_configs={"retention.ms": week})]
        )
    finally:
        await admin.close()
    report = await ensure_topics(names_settings(names))
    assert report.replay_reach is not None
    assert "older than 7 days" in report.replay_reach
