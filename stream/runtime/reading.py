"""Read a range of a topic without a consumer group: the one reader every command shares.

`partition_batches` is the loop (`ranges_batches` for several partitions at once);
`read_range` (the records a consumer skipped, read back exactly), `holds_records` (whether
offsets a consumer passed held any record), `read_to_end` (a whole topic as of now, for
`redrive`) and the control topic's reader are built on it.
Nothing is committed; records that arrive meanwhile are left for the next run.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.structs import ConsumerRecord

from stream.errors import LoyaltyStreamError
from stream.runtime.kafka_admin import partition_ids
from stream.runtime.kafka_auth import client_options
from stream.settings import Settings

READ_TIMEOUT = 30.0


class IncompleteRead(LoyaltyStreamError):
    """A missing range could not be read back whole; processing past it would lose records."""


def group_less_consumer(settings: Settings) -> AIOKafkaConsumer:
    """A consumer (not started) that reads assigned partitions and never commits."""
    # "earliest": a reset lookup that lands after a seek must not move past the range.
    return AIOKafkaConsumer(
        **client_options(settings.kafka), enable_auto_commit=False, auto_offset_reset="earliest"
    )


async def partition_batches(
    consumer: AIOKafkaConsumer, tp: TopicPartition, end: int, start: int | None = None
) -> AsyncGenerator[list[ConsumerRecord[bytes, bytes]], None]:
    """The records of one partition with start <= offset < end, fetch by fetch.

    From the partition's beginning when `start` is None. `consumer` is assigned this partition
    alone for the duration. Ends when the read position reaches `end`: offsets it passes
    without a record are transaction markers or compacted away, never records.
    """
    consumer.assign([tp])
    if start is None:
        await consumer.seek_to_beginning(tp)
    else:
        consumer.seek(tp, start)
    lowest = start or 0
    while await consumer.position(tp) < end:
        got = await consumer.getmany(tp, timeout_ms=500)
        records = [record for record in got.get(tp, []) if lowest <= record.offset < end]
        if records:
            yield records


async def ranges_batches(
    consumer: AIOKafkaConsumer, ranges: Mapping[TopicPartition, tuple[int, int]]
) -> AsyncGenerator[tuple[TopicPartition, list[ConsumerRecord[bytes, bytes]]], None]:
    """The records of several partitions at once, each with start <= offset < end, fetch by
    fetch; the partitions are left assigned but paused at the end.

    One assignment for all: each assignment a consumer changes waits out the fetch it has in
    flight (`fetch_max_wait_ms`, 500 ms), and the broker answers a connection's requests in
    order, so a partition read alone cost a second of waiting even when it was empty. Ranges
    with nothing in them are not read.
    """
    todo = {tp: span for tp, span in ranges.items() if span[0] < span[1]}
    if not todo:
        return
    consumer.assign(list(todo))
    paused = list(todo)
    try:
        for tp, (start, _) in todo.items():
            consumer.seek(tp, start)
        while todo:
            got = await consumer.getmany(*todo, timeout_ms=500)
            for tp, found in got.items():
                start, end = todo[tp]
                records = [record for record in found if start <= record.offset < end]
                if records:
                    yield tp, records
            for tp, (_, end) in list(todo.items()):
                if await consumer.position(tp) >= end:
                    del todo[tp]
    finally:
        # Left fetching, the partitions would keep a fetch in flight that every later request
        # of this consumer waits behind. (Unassigned, the consumer would ask for the metadata
        # of every topic in the cluster.)
        consumer.pause(*paused)


async def read_range(
    settings: Settings, topic: str, partition: int, start: int, end: int
) -> list[Any]:
    """The records of one partition with start <= offset < end; exact or IncompleteRead."""
    if start >= end:
        return []
    tp = TopicPartition(topic, partition)
    consumer = group_less_consumer(settings)
    await consumer.start()
    records: list[Any] = []
    try:
        try:
            async with asyncio.timeout(READ_TIMEOUT):
                async for batch in partition_batches(consumer, tp, end, start=start):
                    records.extend(batch)
        except TimeoutError:
            raise IncompleteRead(
                f"{topic}[{partition}]: read offsets {start}..{end - 1} back only up to "
                f"{await consumer.position(tp) - 1} within {READ_TIMEOUT:.0f}s"
            ) from None
    finally:
        await consumer.stop()
    return records


async def holds_records(
    settings: Settings, topic: str, partition: int, start: int, end: int
) -> bool:
    """Whether any record lies at start <= offset < end, not only transaction markers or
    offsets compaction removed; stops at the first record found.

    Raises:
        IncompleteRead: the read did not get through the range in time.
    """
    if start >= end:
        return False
    tp = TopicPartition(topic, partition)
    consumer = group_less_consumer(settings)
    await consumer.start()
    try:
        async with (
            asyncio.timeout(READ_TIMEOUT),
            contextlib.aclosing(partition_batches(consumer, tp, end, start=start)) as batches,
        ):
            async for _ in batches:
                return True
        return False
    except TimeoutError:
        raise IncompleteRead(
            f"{topic}[{partition}]: looked for records at offsets {start}..{end - 1} only up "
            f"to {await consumer.position(tp) - 1} within {READ_TIMEOUT:.0f}s"
        ) from None
    finally:
        await consumer.stop()


async def topic_ends(
    settings: Settings, topic: str, consumer: AIOKafkaConsumer | None = None
) -> dict[int, int]:
    """The end offset of every partition of `topic` (empty if it does not exist), asked with
    `consumer` when given (started), else with one of its own."""
    partitions = [TopicPartition(topic, p) for p in await partition_ids(settings, topic)]
    if not partitions:
        return {}
    if consumer is not None:
        ends = await consumer.end_offsets(partitions)
    else:
        consumer = group_less_consumer(settings)
        await consumer.start()
        try:
            ends = await consumer.end_offsets(partitions)
        finally:
            await consumer.stop()
    return {tp.partition: offset for tp, offset in ends.items()}


async def read_to_end(settings: Settings, topic: str) -> AsyncIterator[Any]:
    """Yield every record of `topic`, partition by partition."""
    partitions = [TopicPartition(topic, p) for p in await partition_ids(settings, topic)]
    if not partitions:
        return
    consumer = group_less_consumer(settings)
    await consumer.start()
    try:
        ends = await consumer.end_offsets(partitions)
        for tp in partitions:
            async for records in partition_batches(consumer, tp, ends[tp]):
                for record in records:
                    yield record
    finally:
        await consumer.stop()


async def latest_values(
    consumer: AIOKafkaConsumer, tp: TopicPartition, prefix: bytes = b""
) -> dict[bytes, bytes | None]:
    """The latest value of every key starting with `prefix`, from the partition's beginning to
    its end as of now (a compacted topic as compaction leaves it; None: a tombstone)."""
    latest: dict[bytes, bytes | None] = {}
    end = (await consumer.end_offsets([tp]))[tp]
    async with asyncio.timeout(READ_TIMEOUT):
        async for records in partition_batches(consumer, tp, end):
            for record in records:
                if record.key is not None and record.key.startswith(prefix):
                    latest[record.key] = record.value
    return latest
