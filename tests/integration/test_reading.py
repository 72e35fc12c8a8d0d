"""The one group-less reader of topic ranges, against the real broker."""

from __future__ import annotations

import pytest
from aiokafka import AIOKafkaProducer, TopicPartition

from stream.runtime import control
from stream.runtime.reading import (
    IncompleteRead,
    group_less_consumer,
    holds_records,
    ranges_batches,
    read_range,
    read_to_end,
)
from stream.runtime.topology import ensure_topics
from tests.support.kafka import BOOTSTRAP, names_settings


@pytest.fixture
async def settings(names):
    settings = names_settings(names, partitions=2)
    await ensure_topics(settings)
    return settings


async def test_read_range_returns_exactly_the_offsets_asked_for(settings, names, producer):
    for n in range(10):
        await producer.send_and_wait(names.events, key=b"k", value=b"%d" % n, partition=1)
    records = await read_range(settings, names.events, 1, 3, 7)
    assert [r.offset for r in records] == [3, 4, 5, 6]
    assert [r.value for r in records] == [b"3", b"4", b"5", b"6"]
    assert await read_range(settings, names.events, 0, 0, 0) == []


async def test_read_range_beyond_the_end_is_an_incomplete_read(
    settings, names, producer, monkeypatch
):
    monkeypatch.setattr("stream.runtime.reading.READ_TIMEOUT", 1.0)
    await producer.send_and_wait(names.events, key=b"k", value=b"0", partition=0)
    with pytest.raises(IncompleteRead, match=r"read offsets 0\.\.4 back only up to 0"):
        await read_range(settings, names.events, 0, 0, 5)


async def test_holds_records_sees_a_record_but_not_a_transaction_marker(settings, names):
    producer = AIOKafkaProducer(bootstrap_servers=BOOTSTRAP, transactional_id=f"{names.run}-tx")
    await producer.start()
    try:
        async with producer.transaction():
            await producer.send_and_wait(names.events, key=b"k", value=b"0", partition=1)
    finally:
        await producer.stop()
    # Offset 0 holds the record, offset 1 the transaction's commit marker.
    assert await holds_records(settings, names.events, 1, 0, 2)
    assert not await holds_records(settings, names.events, 1, 1, 2)
    assert not await holds_records(settings, names.events, 1, 2, 2)


async def test_read_to_end_yields_every_partition_s_records_in_order(settings, names, producer):
    sent = {0: [b"a0", b"a1", b"a2"], 1: [b"b0", b"b1"]}
    for partition, values in sent.items():
        for value in values:
            await producer.send_and_wait(names.events, value=value, partition=partition)
    got: dict[int, list[bytes]] = {0: [], 1: []}
    async for record in read_to_end(settings, names.events):
        got[record.partition].append(record.value)
    assert got == sent


async def test_control_read_keeps_the_latest_value_of_each_key(settings, names):
    await control.write(settings, b"pause", b"1")
    await control.write(settings, b"backfill", b"x")
    await control.write(settings, b"pause", b"2")
    records = await control.read(settings)
    assert (records.get(b"pause"), records.get(b"backfill")) == (b"2", b"x")
    prefix = settings.app_id.encode()
    assert records.latest == {prefix + b"/pause": b"2", prefix + b"/backfill": b"x"}


async def test_ranges_of_several_partitions_are_read_in_one_assignment_and_left_paused(
    settings, names, producer
):
    for n in range(6):
        await producer.send_and_wait(names.events, key=b"k", value=b"a%d" % n, partition=0)
        await producer.send_and_wait(names.events, key=b"k", value=b"b%d" % n, partition=1)
    a, b = TopicPartition(names.events, 0), TopicPartition(names.events, 1)
    consumer = group_less_consumer(settings)
    await consumer.start()
    assignments = []
    assign = consumer.assign
    consumer.assign = lambda partitions: (assignments.append(set(partitions)), assign(partitions))
    try:
        got: dict[int, list[bytes]] = {0: [], 1: []}
        async for tp, records in ranges_batches(consumer, {a: (2, 5), b: (4, 4)}):
            got[tp.partition] += [record.value for record in records]
        assert got == {0: [b"a2", b"a3", b"a4"], 1: []}, "only the offsets asked for"
        assert assignments == [{a}], "an empty range is not read"
        async for tp, records in ranges_batches(consumer, {a: (0, 1), b: (5, 6)}):
            got[tp.partition] += [record.value for record in records]
        assert got == {0: [b"a2", b"a3", b"a4", b"a0"], 1: [b"b5"]}
        assert assignments == [{a}, {a, b}], "both partitions in one assignment"
        # Nothing left fetching: a fetch in flight would hold up the consumer's next request.
        assert consumer.paused() == {a, b}
    finally:
        await consumer.stop()
