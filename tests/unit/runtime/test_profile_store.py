"""The profile store (stream.runtime.profile_store): reads from its cache first, and writes in one
order for every writer: the queued sends stored, then the changelog, then the cache."""

from __future__ import annotations

import asyncio
from unittest.mock import AsyncMock

import pytest

from stream.domain.profile import Profile, fold
from stream.runtime.app import app
from stream.runtime.profile_store import ProfileStore
from stream.runtime.tables import customer_to_profile
from stream.runtime.topic_configs import MessageLimits
from stream.settings import get_settings
from tests.support.events import make_event


@pytest.fixture
def store():
    store = ProfileStore(app, customer_to_profile, get_settings().topics.outbox, 16)
    store.assigned(8, MessageLimits())
    return store


def profile(customer_id: str) -> Profile:
    enrolled = make_event("customer.enrolled", customer_id=customer_id, email="a@b.io")
    return fold(None, enrolled, offset=0).profile


def changelog_sends(send: AsyncMock) -> list:
    topic = customer_to_profile.changelog_topic.get_topic_name()
    return [call for call in send.call_args_list if call.args[0] == topic]


async def test_write_sends_the_changelog_only_once_every_queued_send_is_stored(producer, store):
    outbox_stored = asyncio.get_running_loop().create_future()
    writing = asyncio.create_task(store.write([outbox_stored], [("ps-1", profile("ps-1"), 0)]))
    for _ in range(20):
        await asyncio.sleep(0)
    assert changelog_sends(producer) == []
    assert store.recent.get("ps-1") is None
    outbox_stored.set_result(None)
    await asyncio.wait_for(writing, 5)
    assert len(changelog_sends(producer)) == 1
    assert store.recent.get("ps-1") is not None


async def test_write_a_deletion_forgets_the_cached_profile(producer, store):
    store.recent.put("ps-2", profile("ps-2"))
    await store.write([], [("ps-2", None, 0)])
    assert store.recent.get("ps-2") is None
    assert store.read("ps-2", 0) is None


async def test_a_failed_queued_send_writes_neither_the_changelog_nor_the_cache(producer, store):
    failed = asyncio.get_running_loop().create_future()
    failed.set_exception(OSError("broker gone"))
    with pytest.raises(OSError, match="broker gone"):
        await store.write([failed], [("ps-3", profile("ps-3"), 0)])
    assert changelog_sends(producer) == []
    assert store.recent.get("ps-3") is None


def test_read_takes_the_cached_profile_before_the_table(store):
    cached = profile("ps-4")
    store.recent.put("ps-4", cached)
    assert store.read("ps-4", 0) is cached
    assert store.read_in_partition("ps-4", 0) is cached


def test_an_assignment_forgets_the_cache_and_sets_the_outbox_partitions(store):
    store.recent.put("ps-5", profile("ps-5"))
    store.assigned(3, MessageLimits())
    assert len(store.recent) == 0
    assert store.outbox_partitions == 3
