"""The feed between Faust's fetcher and the fold (stream.runtime.faust_internals.feed), and every
faust-streaming behaviour it relies on: an upgrade that changes one fails here."""

from __future__ import annotations

import asyncio
import inspect
import types

import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.consumer.fetcher import Fetcher
from faust.app.base import App
from faust.tables.recovery import Recovery
from faust.transport.consumer import Consumer, ThreadDelegateConsumer
from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread
from faust.types import TP

from stream.runtime.app import app
from stream.runtime.faust_internals.feed import (
    FETCH_MAX_WAIT_MS,
    FeedingConsumer,
    Fetched,
    RecordFeed,
)

EVENTS = app.conf.id + "-events-under-test"
OTHER = "another-topic"


def _record(topic: str, offset: int) -> types.SimpleNamespace:
    return types.SimpleNamespace(
        topic=topic,
        partition=0,
        offset=offset,
        key=b"k",
        value=b"v",
        headers=[],
        timestamp=0,
        timestamp_type=0,
        checksum=None,
        serialized_key_size=1,
        serialized_value_size=1,
    )


def _fetched(offsets: range, generation: int = 1) -> Fetched:
    return Fetched(TP(EVENTS, 0), [_record(EVENTS, offset) for offset in offsets], generation)


@pytest.fixture
def consumer(monkeypatch):
    """A real FeedingConsumer (never started) whose fetch returns what a test gives it."""
    made = app._new_consumer()
    assert isinstance(made, FeedingConsumer)
    made.feed = RecordFeed(EVENTS, capacity=100)
    made.resume_flow()
    monkeypatch.setattr(app, "consumer_generation_id", 1, raising=False)
    monkeypatch.setattr(made, "highwater", lambda tp: 1000)
    return made


def _fetching(consumer, records: dict) -> None:
    async def fetch(timeout):
        return records, set(records)

    consumer._wait_next_records = fetch


async def _drain(consumer) -> list:
    return [item async for item in consumer.getmany(timeout=0)]


# What the feed relies on in faust-streaming


def test_faust_fetcher_takes_every_record_from_the_consumer_getmany():
    source = inspect.getsource(Consumer._drain_messages)
    assert "getmany = self.getmany" in source
    assert "callback(message)" in source


def test_faust_getmany_checks_flow_generation_and_active_partitions_before_delivering():
    source = inspect.getsource(Consumer.getmany)
    for check in (
        "_wait_next_records(timeout)",
        "self.flow_active",
        "consumer_generation_id",
        "self._buffered_partitions",
        "perform_seek()",
    ):
        assert check in source, check


def test_a_revocation_waits_for_the_consumer_to_be_empty_before_the_signal():
    source = inspect.getsource(App._on_partitions_revoked)
    assert source.index("T(consumer.stop_flow)") < source.index("_consumer_wait_empty")
    assert source.index("_consumer_wait_empty") < source.index("on_partitions_revoked.send")
    assert "consumer.wait_empty()" in inspect.getsource(App._consumer_wait_empty)
    assert app.conf.stream_wait_empty


def test_recovery_seeks_to_the_committed_offsets_before_the_flow_resumes():
    source = inspect.getsource(Recovery._resume_streams)
    assert source.index("perform_seek()") < source.index("consumer.resume_flow()")


def test_aiokafka_seeks_only_partitions_with_a_committed_offset_above_zero():
    source = inspect.getsource(AIOKafkaConsumer.seek_to_committed)
    assert "if offset and offset > 0:" in source
    assert "_thread.seek_to_committed()" in inspect.getsource(ThreadDelegateConsumer)


def test_faust_builds_the_worker_consumer_in_its_thread_and_aiokafka_reads_the_wait_at_start():
    assert "fetch_max_wait_ms=1500" in inspect.getsource(
        AIOKafkaConsumerThread._create_worker_consumer
    )
    assert "fetch_max_wait_ms=self._fetch_max_wait_ms" in inspect.getsource(AIOKafkaConsumer.start)


def test_the_highwater_faust_hands_over_is_the_one_aiokafka_fetches_with_the_records():
    assert "self._thread.highwater(tp)" in inspect.getsource(ThreadDelegateConsumer.highwater)
    assert ".highwater(tp)" in inspect.getsource(AIOKafkaConsumerThread.highwater)
    assert "tp_state.highwater = highwater" in inspect.getsource(Fetcher._proc_fetch_request)


class _Message:
    def __init__(self, tp: TP, offset: int) -> None:
        self.acked = False
        self.tp = tp
        self.topic = tp.topic
        self.offset = offset


def test_ack_enters_the_offset_where_handled_ranges_enter_theirs(consumer, monkeypatch):
    tp = TP(EVENTS, 0)
    monkeypatch.setattr(app.topics, "acks_enabled_for", lambda topic: True)
    consumer.ack(_Message(tp, 5))
    assert consumer._acked[tp] == [5]
    assert 5 in consumer._acked_index[tp]
    assert consumer._n_acked == 1
    assert consumer._new_offset(tp) == 6


# The consumer


async def test_the_events_topic_goes_to_the_feed_in_lists_and_other_topics_to_faust(consumer):
    events = [_record(EVENTS, offset) for offset in (10, 11, 13)]
    other = [_record(OTHER, 4)]
    _fetching(consumer, {TP(EVENTS, 0): events, TP(OTHER, 0): other})
    delivered = await _drain(consumer)
    assert [(tp.topic, message.offset) for tp, message in delivered] == [(OTHER, 4)]
    assert len(consumer.feed) == 3
    async for batch in consumer.feed.batches(3, within=1):
        assert [record.offset for record in batch[0].records] == [10, 11, 13]
        assert batch[0].generation == 1
        break


async def test_a_list_is_at_its_partitions_end_when_its_last_offset_is_below_the_highwater(
    consumer,
):
    # The fixture's highwater is 1000: the next offset to be written.
    _fetching(
        consumer, {TP(EVENTS, 0): [_record(EVENTS, 998)], TP(EVENTS, 1): [_record(EVENTS, 999)]}
    )
    await _drain(consumer)
    batch = await anext(consumer.feed.batches(2, within=0))
    assert [(fetched.tp.partition, fetched.at_end) for fetched in batch] == [(0, False), (1, True)]


async def test_records_below_the_read_offset_are_not_fed_again(consumer):
    consumer._read_offset[TP(EVENTS, 0)] = 11
    _fetching(consumer, {TP(EVENTS, 0): [_record(EVENTS, offset) for offset in (10, 11, 12)]})
    await _drain(consumer)
    async for batch in consumer.feed.batches(2, within=1):
        assert [record.offset for record in batch[0].records] == [11, 12]
        break
    assert consumer._read_offset[TP(EVENTS, 0)] == 12


async def test_nothing_is_fed_while_the_flow_is_stopped(consumer, monkeypatch):
    seeks = []

    async def perform_seek():
        seeks.append(True)

    monkeypatch.setattr(consumer, "perform_seek", perform_seek)
    consumer.stop_flow()
    _fetching(consumer, {TP(EVENTS, 0): [_record(EVENTS, 1)]})
    await _drain(consumer)
    assert len(consumer.feed) == 0
    assert seeks == [True]


async def test_a_list_of_an_older_generation_is_not_current(consumer, monkeypatch):
    monkeypatch.setattr(consumer, "assignment", lambda: {TP(EVENTS, 0)})
    assert consumer.is_current(_fetched(range(3), generation=1))
    monkeypatch.setattr(app, "consumer_generation_id", 2, raising=False)
    assert not consumer.is_current(_fetched(range(3), generation=1))


async def test_a_list_of_a_partition_no_longer_held_is_not_current(consumer, monkeypatch):
    monkeypatch.setattr(consumer, "assignment", lambda: {TP(EVENTS, 1)})
    assert not consumer.is_current(_fetched(range(3)))


async def test_the_worker_consumer_fetches_wait_at_most_a_tenth_of_a_second(consumer):
    made = consumer._new_consumer_thread()._create_worker_consumer(app.transport)
    try:
        assert made._fetch_max_wait_ms == FETCH_MAX_WAIT_MS == 100
        assert made._group_id == app.conf.id
    finally:
        await made.stop()  # never started: nothing to leave, but aiokafka warns otherwise


async def test_a_seek_back_reads_never_committed_partitions_of_the_events_topic_again(
    consumer, monkeypatch
):
    committed = {TP(EVENTS, 0): None, TP(EVENTS, 1): 5, TP(EVENTS, 2): 0, TP(OTHER, 0): None}
    sought: list = []

    class Thread:
        async def seek_to_committed(self):
            return committed

        async def seek_to_beginning(self, *partitions):
            sought.extend(partitions)

    monkeypatch.setattr(consumer, "_thread", Thread())
    assert await consumer.seek_to_committed() == committed
    assert sought == [TP(EVENTS, 0), TP(EVENTS, 2)]


async def test_handled_lists_commit_past_their_last_offset_and_gaps_in_them(consumer):
    tp = TP(EVENTS, 0)
    consumer._committed_offset[tp] = 10
    fetched = Fetched(tp, [_record(EVENTS, offset) for offset in (8, 9, 10, 11, 14)], 1)
    consumer.handled([fetched])
    # Offsets below the committed one are not entered; 12 and 13 held no record.
    assert consumer._new_offset(tp) == 15


async def test_a_gap_before_the_handled_offsets_holds_the_commit(consumer):
    tp = TP(EVENTS, 0)
    consumer._committed_offset[tp] = 10
    consumer.handled_range(tp, 12, 20)
    assert consumer._new_offset(tp) is None


async def test_a_revocation_drops_the_queued_lists_and_waits_for_the_batch_folding(consumer):
    feed = consumer.feed
    await feed.put(_fetched(range(0, 5)))
    await feed.put(_fetched(range(5, 10)))
    taken = await anext(feed.batches(5, within=0))
    assert len(taken) == 1
    with feed.folding():
        waited = asyncio.ensure_future(consumer.wait_empty())
        await asyncio.sleep(0)
        assert len(feed) == 0
        assert not waited.done()
    await asyncio.wait_for(waited, timeout=5)


async def test_a_batch_taken_but_not_folding_does_not_hold_a_revocation(consumer, monkeypatch):
    # E.g. a batch waiting for its writer schemas: it is found stale once it may fold.
    feed = consumer.feed
    await feed.put(_fetched(range(0, 5)))
    await anext(feed.batches(5, within=0))
    await asyncio.wait_for(consumer.wait_empty(), timeout=5)


# The feed


async def test_a_full_feed_blocks_the_fetcher_until_the_fold_takes_a_list():
    feed = RecordFeed(EVENTS, capacity=5)
    await feed.put(_fetched(range(0, 5)))
    blocked = asyncio.ensure_future(feed.put(_fetched(range(5, 10))))
    await asyncio.sleep(0)
    assert not blocked.done()
    batches = feed.batches(5, within=0)
    assert [r.offset for r in (await anext(batches))[0].records] == [0, 1, 2, 3, 4]
    await asyncio.wait_for(blocked, timeout=5)
    assert len(feed) == 5


async def test_a_batch_collects_lists_up_to_its_size():
    feed = RecordFeed(EVENTS, capacity=100)
    for start in range(0, 30, 10):
        await feed.put(_fetched(range(start, start + 10)))
    batch = await anext(feed.batches(20, within=5))
    assert [len(fetched.records) for fetched in batch] == [10, 10]
    assert len(feed) == 10


async def test_a_batch_ends_after_its_window_with_what_came():
    feed = RecordFeed(EVENTS, capacity=100)
    await feed.put(_fetched(range(3)))
    batch = await asyncio.wait_for(anext(feed.batches(20_000, within=0.05)), timeout=5)
    assert sum(len(fetched.records) for fetched in batch) == 3


def _listed(partition: int, offsets: range, at_end: bool) -> Fetched:
    records = [_record(EVENTS, offset) for offset in offsets]
    return Fetched(TP(EVENTS, partition), records, 1, at_end)


async def test_a_batch_ends_at_once_when_every_partition_was_read_to_its_end():
    feed = RecordFeed(EVENTS, capacity=100)
    await feed.put(_listed(0, range(0, 3), at_end=False))
    await feed.put(_listed(1, range(0, 2), at_end=True))
    await feed.put(_listed(0, range(3, 5), at_end=True))
    # A window of a minute: the batch is only handed over within the timeout if it is not waited.
    batch = await asyncio.wait_for(anext(feed.batches(20_000, within=60)), timeout=5)
    assert [len(fetched.records) for fetched in batch] == [3, 2, 2]


async def test_a_batch_waits_for_a_partition_whose_latest_list_did_not_reach_its_end():
    feed = RecordFeed(EVENTS, capacity=100)
    await feed.put(_listed(0, range(0, 3), at_end=True))
    await feed.put(_listed(1, range(0, 2), at_end=False))
    taking = asyncio.ensure_future(anext(feed.batches(20_000, within=60)))
    for _ in range(5):
        await asyncio.sleep(0)  # let the batch take both lists and wait for more
    assert not taking.done()
    await feed.put(_listed(1, range(2, 4), at_end=True))
    batch = await asyncio.wait_for(taking, timeout=5)
    assert [(fetched.tp.partition, len(fetched.records)) for fetched in batch] == [
        (0, 3),
        (1, 2),
        (1, 2),
    ]


async def test_a_clear_forgets_the_partitions_that_were_behind():
    feed = RecordFeed(EVENTS, capacity=100)
    await feed.put(_listed(1, range(0, 2), at_end=False))
    feed.clear()  # a revocation: partition 1 may be another worker's now
    await feed.put(_listed(0, range(0, 3), at_end=True))
    batch = await asyncio.wait_for(anext(feed.batches(20_000, within=60)), timeout=5)
    assert [fetched.tp.partition for fetched in batch] == [0]


async def test_a_clear_releases_a_fetcher_waiting_for_room():
    feed = RecordFeed(EVENTS, capacity=5)
    await feed.put(_fetched(range(0, 5)))
    blocked = asyncio.ensure_future(feed.put(_fetched(range(5, 10))))
    await asyncio.sleep(0)
    feed.clear()
    await asyncio.wait_for(blocked, timeout=5)
