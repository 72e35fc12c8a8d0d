"""Read a topic from its start to its end as of now, without a consumer group.

Records that arrive meanwhile are left for the next run; nothing is committed.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.structs import ConsumerRecord

from stream.runtime.kafka_auth import client_options
from stream.runtime.topology import partition_ids
from stream.settings import Settings


async def read_to_end(
    settings: Settings, topic: str, progress: Callable[[int, int], None] | None = None
) -> AsyncIterator[Any]:
    """Yield every record of `topic`; `progress(done, total)` is called after each fetch."""
    partitions = [TopicPartition(topic, p) for p in await partition_ids(settings, topic)]
    if not partitions:
        return
    # "earliest": a reset lookup that lands after the seek must not move past the range.
    consumer = AIOKafkaConsumer(
        **client_options(settings.kafka), enable_auto_commit=False, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        starts = await consumer.beginning_offsets(partitions)
        ends = await consumer.end_offsets(partitions)
        total = sum(ends[tp] - starts[tp] for tp in partitions)
        remaining = {tp for tp in partitions if ends[tp] > starts[tp]}
        done = 0
        while remaining:
            batch = await consumer.getmany(*remaining, timeout_ms=1000)
            for tp, records in batch.items():
                for record in records:
                    if record.offset < ends[tp]:
                        done += 1
                        yield record
                if records and records[-1].offset + 1 >= ends[tp]:
                    remaining.discard(tp)
            if progress is not None:
                progress(done, total)
    finally:
        await consumer.stop()


async def partition_batches(
    consumer: AIOKafkaConsumer, tp: TopicPartition, end: int
) -> AsyncIterator[list[ConsumerRecord[bytes, bytes]]]:
    """The records of one partition from its beginning to `end` (exclusive), fetch by fetch.

    `consumer` is assigned this partition alone for the duration.
    """
    consumer.assign([tp])
    await consumer.seek_to_beginning(tp)
    while await consumer.position(tp) < end:
        got = await consumer.getmany(tp, timeout_ms=1000)
        records = [record for record in got.get(tp, []) if record.offset < end]
        if records:
            yield records
