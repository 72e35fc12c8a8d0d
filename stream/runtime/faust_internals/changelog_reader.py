"""Read changelog partitions in bulk with a plain aiokafka consumer into their tables' stores.

The reader behind stream.runtime.faust_internals.recovery: it applies each fetch with the
table's own `apply_changelog_batch` and advances Faust's recovery counters to what is stored.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from faust.stores.memory import Store as MemoryStore
from faust.tables.recovery import Recovery
from faust.types import TP

from stream.runtime.faust_internals import rocksdb
from stream.runtime.faust_internals.changelog_events import (
    ChangelogEvent,
    ChangelogMessage,
    Decoder,
    changelog_decoders,
)
from stream.runtime.faust_internals.recovery_status import RecoveryProgress
from stream.runtime.heap import release_freed_memory

# Share of `broker_request_timeout` the bulk read may take: Faust awaits the seek it wraps
# under that timeout and treats running out as the service stopping.
BUDGET_SHARE = 0.6
# Bytes one fetch may return per partition: several hundred 2.5 KB profiles per request.
FETCH_BYTES_PER_PARTITION = 4 * 1024 * 1024


@contextlib.asynccontextmanager
async def open_reader(
    recovery: Recovery, client_options: dict[str, Any]
) -> AsyncIterator[AIOKafkaConsumer]:
    """A started group-less consumer that reads changelogs as Faust's own consumer would."""
    app: Any = recovery.app
    consumer = AIOKafkaConsumer(
        **client_options,
        enable_auto_commit=False,
        group_id=None,
        auto_offset_reset="earliest",
        # As Faust's own consumer reads: committed records only when it runs transactions.
        isolation_level="read_committed" if app.in_transaction else "read_uncommitted",
        max_partition_fetch_bytes=FETCH_BYTES_PER_PARTITION,
        fetch_max_bytes=FETCH_BYTES_PER_PARTITION * 4,
    )
    await consumer.start()
    try:
        yield consumer
    finally:
        await consumer.stop()
        # A read of a whole changelog frees gigabytes of records; glibc would keep them.
        release_freed_memory()


async def read_changelogs(
    recovery: Recovery,
    consumer: AIOKafkaConsumer,
    plan: dict[TP, int],
    offsets: Any,
    highwaters: Any,
    progress: RecoveryProgress,
) -> None:
    """Read `plan`'s partitions up to `highwaters`, advancing `offsets` (Faust's counters)."""
    app: Any = recovery.app
    deadline = progress.started_at + BUDGET_SHARE * float(app.conf.broker_request_timeout)
    by_kafka = _seek_plan(consumer, plan)
    decoders = {tp: changelog_decoders(app, recovery.tp_to_table[tp]) for tp in plan}
    pending = set(by_kafka)
    # One fetch's writes run in a thread (RocksDB's write releases the GIL) while the loop
    # fetches and unpacks the next; never more than one, so writes keep the changelog's order.
    writing: asyncio.Future[None] | None = None
    try:
        while pending:
            if _interrupted(recovery, deadline):
                return  # Faust's own path goes on from the offsets reached
            fetched = await consumer.getmany(*pending, timeout_ms=500)
            by_table, reached = _unpack(recovery, fetched, by_kafka, highwaters, decoders)
            await _drop_finished(consumer, pending, by_kafka, highwaters, reached)
            if writing is not None:
                # Shielded: a cancelled read must not cancel a write whose thread goes on.
                await asyncio.shield(writing)
            writing = asyncio.ensure_future(_apply(by_table, reached, offsets, progress))
        if writing is not None:
            await asyncio.shield(writing)
        await _flush({recovery.tp_to_table[tp] for tp in plan})
    finally:
        if writing is not None and not writing.done():
            # A rebalance cancelled the read: let the write in flight land before a new
            # recovery reads the store's persisted offsets.
            await asyncio.wait([writing])


async def _flush(tables: set[Any]) -> None:
    """Flush what the read wrote: the thread that wrote it allocated its memtables, and the
    memory a flush frees there is handed back (release_freed_memory) only once it is free."""
    for table in tables:
        if not isinstance(table.data, MemoryStore):
            await asyncio.to_thread(rocksdb.flush_memtables, table.data)


def _seek_plan(consumer: AIOKafkaConsumer, plan: dict[TP, int]) -> dict[TopicPartition, TP]:
    """Assign `plan`'s partitions to the reader, each at the record after the last applied."""
    by_kafka = {TopicPartition(tp.topic, tp.partition): tp for tp in plan}
    consumer.assign(list(by_kafka))
    for ktp, tp in by_kafka.items():
        # The offset Faust holds is the last one applied (-1: none), as its own seek reads it.
        consumer.seek(ktp, plan[tp] + 1)
    return by_kafka


def _interrupted(recovery: Recovery, deadline: float) -> bool:
    """Whether the bulk read must leave the rest to Faust (stopping, rebalancing, out of time)."""
    return bool(
        recovery.should_stop
        or recovery.signal_recovery_start.is_set()
        or time.monotonic() > deadline
    )


def _unpack(
    recovery: Recovery,
    fetched: dict[TopicPartition, list[Any]],
    by_kafka: dict[TopicPartition, TP],
    highwaters: Any,
    decoders: dict[TP, tuple[Decoder, Decoder]],
) -> tuple[dict[Any, list[ChangelogEvent]], dict[TP, int]]:
    """One fetch's records up to the highwaters, by table, and the offset each partition reached."""
    by_table: dict[Any, list[ChangelogEvent]] = {}
    reached: dict[TP, int] = {}
    for ktp, records in fetched.items():
        tp = by_kafka[ktp]
        highwater = highwaters[tp]
        decode_key, decode_value = decoders[tp]
        batch = [
            ChangelogEvent(ChangelogMessage(tp, r.offset, r.key, r.value), decode_key, decode_value)
            for r in records
            if r.offset <= highwater
        ]
        if batch:
            by_table.setdefault(recovery.tp_to_table[tp], []).extend(batch)
            reached[tp] = batch[-1].message.offset
    return by_table, reached


async def _drop_finished(
    consumer: AIOKafkaConsumer,
    pending: set[TopicPartition],
    by_kafka: dict[TopicPartition, TP],
    highwaters: Any,
    reached: dict[TP, int],
) -> None:
    """Take the partitions read past their highwater out of `pending`, as reached it."""
    for ktp in list(pending):
        tp = by_kafka[ktp]
        if await consumer.position(ktp) > highwaters[tp]:
            # Past the highwater: whatever follows the last record read was compacted
            # away or is a marker, as Faust's own reader would find.
            reached[tp] = highwaters[tp]
            pending.discard(ktp)


async def _apply(
    by_table: dict[Any, list[ChangelogEvent]],
    reached: dict[TP, int],
    offsets: Any,
    progress: RecoveryProgress,
) -> None:
    """Apply one fetch per table, then advance Faust's offsets to what is now in the store."""
    for table, batch in by_table.items():
        if isinstance(table.data, MemoryStore):
            table.apply_changelog_batch(batch)  # pure Python: a thread would only contend
        else:
            await asyncio.to_thread(table.apply_changelog_batch, batch)
        progress.applied += len(batch)
    for tp, offset in reached.items():
        offsets[tp] = offset


__all__ = ["BUDGET_SHARE", "FETCH_BYTES_PER_PARTITION", "open_reader", "read_changelogs"]
