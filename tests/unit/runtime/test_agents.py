"""The fold at its seam: `fold_batch` takes fetched record lists as the feed hands them over
(stream.runtime.faust_internals.feed), with one AsyncMock per outside dependency (the producer
that writes the outbox and the changelog, and the dead-letter topic). The real broker is
exercised by tests/integration."""

from __future__ import annotations

import asyncio
import time
import types
from datetime import UTC, datetime, timedelta
from unittest.mock import AsyncMock

import orjson
import pytest
from faust.types import TP

from stream import metrics
from stream.domain import events
from stream.domain.batch_fold import FoldMarks
from stream.domain.mapping import load_mapping
from stream.domain.profile import Profile
from stream.ops.samples import SAMPLE_CUSTOMERS, sample_events
from stream.runtime import agents
from stream.runtime.app import app
from stream.runtime.faust_internals.feed import Fetched
from stream.runtime.fold_config import FoldConfig
from stream.runtime.tables import customer_to_profile
from stream.runtime.topic_configs import MessageLimits
from stream.runtime.topics import events_dead_letter_topic
from stream.runtime.topology import default_partition
from stream.settings import get_settings
from tests.support.producer import acknowledged


@pytest.fixture
def dead_letters(monkeypatch):
    send = AsyncMock(side_effect=acknowledged)
    monkeypatch.setattr(events_dead_letter_topic, "send", send)
    return send


@pytest.fixture
def fold():
    # Normally built at start-up (stream.runtime.worker.declare_worker), with no replay yet,
    # and told the outbox's partitions and the committed positions on assignment.
    settings = get_settings()
    mapping = load_mapping(settings.mapping.preset, settings.mapping.file)
    config = FoldConfig.build(settings, mapping, FoldMarks(), app, customer_to_profile)
    config.store.assigned(8, MessageLimits())
    config.skip_watch.reset({})
    config.store.positions_known.set()
    return config


def outbox_sends(send: AsyncMock) -> list[tuple[int, list[dict]]]:
    """(partition, records) of every outbox message sent."""
    topic = get_settings().topics.outbox
    return [
        (call.args[3], orjson.loads(call.args[2]))
        for call in send.call_args_list
        if call.args[0] == topic
    ]


def _fetched(key: bytes, values: list[bytes], first_offset: int) -> list[Fetched]:
    """One partition's records as one fetch delivers them to the fold."""
    topic = get_settings().topics.events
    records = [
        types.SimpleNamespace(
            topic=topic, partition=0, offset=first_offset + n, key=key, value=value, headers=[]
        )
        for n, value in enumerate(values)
    ]
    return [Fetched(TP(topic, 0), records, 0)]


def _carriers(customer_id: str, docs: list[dict], first_offset: int) -> list[Fetched]:
    return _fetched(customer_id.encode(), [orjson.dumps(doc) for doc in docs], first_offset)


async def test_a_valid_event_folds_into_the_table_and_queues_the_contact(
    fold, producer, dead_letters
):
    customer_id = SAMPLE_CUSTOMERS[0]["id"]
    enrolled = sample_events("t1", datetime.now(UTC) - timedelta(minutes=1))[0]
    assert enrolled["customer"]["id"] == customer_id
    await agents.fold_batch(fold, _carriers(customer_id, [enrolled], 0))
    stored = customer_to_profile.data[customer_id]
    assert Profile.from_bytes(stored).customer_id == customer_id
    ((partition, records),) = outbox_sends(producer)
    # The partition the customer's own key reaches (backfill and redrive key records by it).
    assert partition == default_partition(customer_id.encode(), 8)
    assert records[0]["@type"] == "contact"
    assert records[0]["id"] == customer_id
    dead_letters.assert_not_awaited()


async def test_an_invalid_record_is_dead_lettered_byte_for_byte_and_nothing_is_queued(
    fold, producer, dead_letters
):
    raw = b'{"event_id": "e1", "type": "points.earned"'
    await agents.fold_batch(fold, _fetched(b"c-1", [raw], 0))
    dead_letters.assert_awaited_once()
    letter = dead_letters.await_args.kwargs
    assert letter["value"] == raw
    assert letter["key"] == b"c-1"
    headers = dict(letter["headers"])
    assert headers["dlq.stage"] == b"parse"
    assert outbox_sends(producer) == []


async def test_a_folded_batch_stamps_the_time_its_events_were_counted(fold, producer, dead_letters):
    metrics.LAST_FOLD.set(0)
    enrolled = sample_events("t2", datetime.now(UTC) - timedelta(minutes=1))[0]
    before = time.time()
    await agents.fold_batch(fold, _carriers(enrolled["customer"]["id"], [enrolled], 0))
    stamped = metrics.REGISTRY.get_sample_value("loyalty_last_fold_timestamp_seconds")
    assert stamped is not None
    assert before <= stamped <= time.time()


def _earned(customer_id: str, points: int, at: datetime) -> dict:
    return {
        "event_id": f"earned-{customer_id}-{points}-{at.timestamp()}",
        "type": "points.earned",
        "occurred_at": at.isoformat(),
        "source": "rivo",
        "customer": {"id": customer_id},
        "data": {"points": points},
    }


def _stored_balance(customer_id: str) -> int:
    return Profile.from_bytes(customer_to_profile.data[customer_id]).points.balance


def _changelog_balances(send: AsyncMock, customer_id: str) -> list[int]:
    changelog = customer_to_profile.changelog_topic
    key, _ = changelog.prepare_key(customer_id, customer_to_profile.key_serializer, None, None)
    return [
        Profile.from_bytes(call.args[2]).points.balance
        for call in send.call_args_list
        if call.args[0] == changelog.get_topic_name() and call.args[1] == key
    ]


async def _fold_first_100_points(fold, customer_id: str, at: datetime) -> None:
    await agents.fold_batch(fold, _carriers(customer_id, [_earned(customer_id, 100, at)], 0))
    assert _stored_balance(customer_id) == 100


async def test_a_failed_changelog_write_leaves_the_store_as_it_was_and_the_redelivery_writes_it(
    fold, producer, dead_letters
):
    customer_id = "store-after-changelog-1"
    at = datetime.now(UTC) - timedelta(minutes=1)
    await _fold_first_100_points(fold, customer_id, at)
    changelog = customer_to_profile.changelog_topic.get_topic_name()

    def changelog_fails(*args, **kwargs):
        if args[0] != changelog:
            return acknowledged(*args, **kwargs)
        future = asyncio.get_running_loop().create_future()
        future.set_exception(OSError("broker gone"))
        return future

    fifty = _carriers(customer_id, [_earned(customer_id, 50, at)], 1)
    producer.side_effect = changelog_fails
    with pytest.raises(OSError, match="broker gone"):
        await agents.fold_batch(fold, fifty)
    assert _stored_balance(customer_id) == 100

    # The worker stops before committing; the restarted one reads the record again.
    fold.store.recent.clear()
    producer.reset_mock(side_effect=True)
    producer.side_effect = acknowledged
    await agents.fold_batch(fold, fifty)
    assert _changelog_balances(producer, customer_id) == [150]
    assert _stored_balance(customer_id) == 150


async def test_a_kill_before_the_changelog_acknowledges_finds_the_store_as_it_was(
    fold, producer, dead_letters
):
    customer_id = "store-after-changelog-2"
    at = datetime.now(UTC) - timedelta(minutes=1)
    await _fold_first_100_points(fold, customer_id, at)
    changelog = customer_to_profile.changelog_topic.get_topic_name()
    # What a SIGKILL while the changelog message is in flight would leave on disk.
    stored_in_flight: list[int] = []

    def watch_the_store(*args, **kwargs):
        if args[0] == changelog:
            stored_in_flight.append(_stored_balance(customer_id))
        return acknowledged(*args, **kwargs)

    producer.side_effect = watch_the_store
    await agents.fold_batch(fold, _carriers(customer_id, [_earned(customer_id, 50, at)], 1))
    assert stored_in_flight == [100]
    assert _stored_balance(customer_id) == 150


async def test_a_later_batch_does_not_check_the_email_its_customer_s_profile_holds_again(
    fold, producer, dead_letters, monkeypatch
):
    # At a million customers most addresses have left email-validator's cache by the time
    # their customer's next event comes: the stored profile's is not checked a second time.
    asked: list[str] = []
    real = events.validate_email

    def counting(address, **options):
        asked.append(address)
        return real(address, **options)

    monkeypatch.setattr(events, "validate_email", counting)
    at = datetime.now(UTC) - timedelta(minutes=1)
    customer = {"id": "known-email-1", "email": "kim@example.com"}
    with_email = {**_earned("known-email-1", 5, at), "customer": customer}
    events._is_email.cache_clear()
    await agents.fold_batch(fold, _carriers("known-email-1", [with_email], 0))
    assert asked == ["kim@example.com"]
    events._is_email.cache_clear()
    later = {**with_email, "event_id": "later-1", "data": {"points": 7}}
    await agents.fold_batch(fold, _carriers("known-email-1", [later], 1))
    assert asked == ["kim@example.com"]
    assert _stored_balance("known-email-1") == 12
    dead_letters.assert_not_awaited()


async def test_records_read_back_after_a_skip_fold_onto_their_customer_s_stored_profile(
    fold, producer, dead_letters, monkeypatch
):
    at = datetime.now(UTC) - timedelta(minutes=1)
    await _fold_first_100_points(fold, "read-back-1", at)  # offset 0
    topic = get_settings().topics.events
    skipped = [
        types.SimpleNamespace(
            topic=topic,
            partition=0,
            offset=offset,
            key=b"read-back-1",
            value=orjson.dumps(_earned("read-back-1", points, at)),
            headers=[],
        )
        for offset, points in ((1, 5), (2, 7))
    ]
    asked = []

    async def read_skipped(settings, message, first_missing):
        asked.append((message.offset, first_missing))
        return skipped

    monkeypatch.setattr(agents, "read_skipped", read_skipped)
    # The next record the consumer hands over is at offset 3: 1 and 2 were skipped.
    await agents.fold_batch(fold, _carriers("read-back-2", [_earned("read-back-2", 1, at)], 3))
    assert asked == [(3, 1)]
    assert _stored_balance("read-back-1") == 112
    assert _stored_balance("read-back-2") == 1
    dead_letters.assert_not_awaited()
