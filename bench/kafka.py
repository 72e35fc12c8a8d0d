"""Kafka plumbing for the benchmarks: topics, fast producing, offsets and topic scans."""

from __future__ import annotations

import asyncio
import contextlib
import os
import statistics
import time
from collections.abc import Iterable
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError
from aiokafka.partitioner import DefaultPartitioner

BOOTSTRAP = os.environ.get(
    "STREAM_KAFKA__BOOTSTRAP_SERVERS", os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
)
PARTITIONER = DefaultPartitioner()  # what aiokafka producers (Faust's too) use for keyed records


def partition_of(key: bytes, partitions: int) -> int:
    """The partition a keyed record lands on with the default partitioner."""
    every = list(range(partitions))
    return int(PARTITIONER(key, every, every))


async def create_topic(name: str, partitions: int, configs: dict[str, str] | None = None) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=BOOTSTRAP)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, partitions, 1, topic_configs=configs or {})])
        # The broker knows the topic a moment after the call returns.
        deadline = time.monotonic() + 30
        while name not in await admin.list_topics():
            if time.monotonic() > deadline:
                raise TimeoutError(f"topic {name} not visible after 30 s")
            await asyncio.sleep(0.1)
    finally:
        await admin.close()


async def delete_topics(prefix: str) -> list[str]:
    """Delete every topic whose name starts with `prefix` (this run's topics)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=BOOTSTRAP)
    await admin.start()
    try:
        doomed = [t for t in await admin.list_topics() if t.startswith(prefix)]
        if doomed:
            # Best effort: a leftover benchmark topic harms nobody.
            with contextlib.suppress(KafkaError):
                await admin.delete_topics(doomed)
        return doomed
    finally:
        await admin.close()


async def produce(topic: str, records: Iterable[tuple[bytes, bytes]], partitions: int) -> int:
    """Send keyed records as fast as the broker takes them (whole batches per partition)."""
    producer = AIOKafkaProducer(
        bootstrap_servers=BOOTSTRAP, acks="all", linger_ms=5, max_request_size=4 << 20
    )
    await producer.start()
    sent = 0
    try:
        batches = {p: producer.create_batch() for p in range(partitions)}
        pending: list[asyncio.Future[object]] = []
        for key, value in records:
            p = partition_of(key, partitions)
            if batches[p].append(key=key, value=value, timestamp=None) is None:
                pending.append(await producer.send_batch(batches[p], topic, partition=p))
                batches[p] = producer.create_batch()
                batches[p].append(key=key, value=value, timestamp=None)
            sent += 1
            if len(pending) > 200:
                await asyncio.gather(*pending)
                pending.clear()
        for p, batch in batches.items():
            if batch.record_count():
                pending.append(await producer.send_batch(batch, topic, partition=p))
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return sent


async def end_offsets(topic: str) -> dict[int, int]:
    consumer = AIOKafkaConsumer(bootstrap_servers=BOOTSTRAP, enable_auto_commit=False)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in await _partitions(consumer, topic)]
        ends = await consumer.end_offsets(tps)
        return {tp.partition: offset for tp, offset in ends.items()}
    finally:
        await consumer.stop()


async def committed(group: str, topic: str, partitions: Iterable[int]) -> dict[int, int]:
    """The group's committed offsets on a topic (-1 where it committed nothing)."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=BOOTSTRAP, group_id=group, enable_auto_commit=False
    )
    await consumer.start()
    try:
        result = {}
        for p in partitions:
            offset = await consumer.committed(TopicPartition(topic, p))
            result[p] = -1 if offset is None else offset
        return result
    finally:
        await consumer.stop()


@dataclass(frozen=True)
class Scan:
    records: int
    key_bytes: int
    value_bytes: int
    latest_value_sizes: list[int]  # one per key: the size of its newest value

    @property
    def median_latest_value(self) -> float:
        return statistics.median(self.latest_value_sizes) if self.latest_value_sizes else 0.0


async def scan(topic: str, within: float = 300.0) -> Scan:
    """Read a topic from the start to its current end; count records and bytes."""
    # "earliest" too: the position lookup that assign() starts may land after the seek.
    consumer = AIOKafkaConsumer(
        bootstrap_servers=BOOTSTRAP,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=4 << 20,
    )
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in await _partitions(consumer, topic)]
        consumer.assign(tps)
        ends = await consumer.end_offsets(tps)
        await consumer.seek_to_beginning(*tps)
        waiting = {tp for tp in tps if ends[tp] > 0}
        records = key_bytes = value_bytes = 0
        latest: dict[bytes, int] = {}
        deadline = time.monotonic() + within
        while waiting:
            if time.monotonic() > deadline:
                raise TimeoutError(f"reading {topic} took over {within:.0f} s")
            batch = await consumer.getmany(*waiting, timeout_ms=500, max_records=10_000)
            for tp, items in batch.items():
                for item in items:
                    if item.offset >= ends[tp]:
                        continue
                    records += 1
                    key_bytes += len(item.key or b"")
                    value_bytes += len(item.value or b"")
                    latest[item.key or b""] = len(item.value or b"")
            # Positions, not last offsets: compaction may have removed the last records.
            for tp in list(waiting):
                if await consumer.position(tp) >= ends[tp]:
                    waiting.discard(tp)
        return Scan(records, key_bytes, value_bytes, list(latest.values()))
    finally:
        await consumer.stop()


async def _partitions(consumer: AIOKafkaConsumer, topic: str) -> list[int]:
    deadline = time.monotonic() + 30
    while not (found := consumer.partitions_for_topic(topic)):
        if time.monotonic() > deadline:
            raise TimeoutError(f"no metadata for topic {topic}")
        await consumer._client.force_metadata_update()
    return sorted(found)
