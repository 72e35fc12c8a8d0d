"""Notice when the consumer skipped records of a partition, and read them again.

faust-streaming can resume a partition's fetching before it seeks back to the committed offset
after a rebalance (its issues #216/#221 are of this kind); the records fetched in between are
dropped and their offsets treated as a gap, so they would never be processed. An agent that
sees an offset jump reads the missing range itself and processes it first. Each jump is checked
once: a genuine gap (a transaction marker, a compacted record) simply reads back nothing.
"""

from __future__ import annotations

import time
from collections.abc import Hashable
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from stream.kafka_auth import client_options
from stream.settings import Settings

READ_TIMEOUT = 30.0


class SkipWatch:
    """Per partition: the highest offset seen, and the jumps already repaired."""

    def __init__(self) -> None:
        self._last: dict[Hashable, int] = {}
        self._repaired: set[tuple[Hashable, int]] = set()

    def reset(self, committed: dict[Hashable, int] | None = None) -> None:
        """Start over after a new assignment, from the committed offsets when known.

        A partition's first record is then checked too: one beyond its committed offset means
        the records in between were skipped.
        """
        self._last = {partition: offset - 1 for partition, offset in (committed or {}).items()}
        self._repaired.clear()

    def check(self, partition: Hashable, offset: int) -> int | None:
        """Record an offset; return the first skipped offset when records before it are missing."""
        last = self._last.get(partition)
        if last is None or offset > last:
            self._last[partition] = offset
        if last is not None and offset > last + 1 and (partition, last + 1) not in self._repaired:
            self._repaired.add((partition, last + 1))
            return last + 1
        return None


async def committed_offsets(settings: Settings) -> dict[Hashable, int]:
    """The worker group's committed offsets, keyed by (topic, partition)."""
    admin = AIOKafkaAdminClient(**client_options(settings.kafka))
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(settings.app_id)
    finally:
        await admin.close()
    return {
        (tp.topic, tp.partition): meta.offset for tp, meta in offsets.items() if meta.offset >= 0
    }


async def read_range(
    settings: Settings, topic: str, partition: int, start: int, end: int
) -> list[Any]:
    """The records of one partition with start <= offset < end, read without a group."""
    tp = TopicPartition(topic, partition)
    consumer = AIOKafkaConsumer(**client_options(settings.kafka), enable_auto_commit=False)
    await consumer.start()
    records: list[Any] = []
    try:
        consumer.assign([tp])
        consumer.seek(tp, start)
        deadline = time.monotonic() + READ_TIMEOUT
        while await consumer.position(tp) < end and time.monotonic() < deadline:
            batch = await consumer.getmany(tp, timeout_ms=500)
            records.extend(r for r in batch.get(tp, []) if r.offset < end)
    finally:
        await consumer.stop()
    return records
