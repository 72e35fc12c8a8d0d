"""Recover tables' active changelog partitions in bulk, outside Faust's per-message path.

faust-streaming 0.15.3 recovers a table one message at a time: the fetcher hands each
changelog record to the conductor (a decode, an `Event`, a queue put), and
`Recovery._slurp_changelogs` takes each one off the queue with its own `asyncio.wait_for`
task and recomputes every partition's remaining count before applying buffers of 1,000.
Measured on a 2-core machine that is 2,500 to 3,600 profiles/s; the store's own write batch is
under 5% of it.

`install()` wraps `faust.tables.recovery.Recovery._seek_offsets` (faust 0.15.3,
faust/tables/recovery.py), which `_restart_recovery` calls once highwaters and start offsets
of the active changelog partitions are known and before it resumes them. For the actives
only, the wrapper first reads each partition from its start offset up to its highwater with
a plain aiokafka consumer of its own (`getmany`, thousands of records per call) and applies
each fetch with the table's own `apply_changelog_batch` (one RocksDB write batch per
partition, persisted offsets set by the store; the memory store as Faust applies it), then
advances `Recovery.active_offsets` as Faust's loop would. A RocksDB fetch is written in a
thread while the next one is fetched and unpacked, one at a time, in the changelog's order.
Faust's seek then lands at the highwater, `need_recovery()` is false and Faust goes on
exactly as after its own recovery: standbys, `on_recovery_completed`, the tables' recover
callbacks, the stream partitions.

Standby partitions take the same path once, to catch up: Faust seeks them (`_seek_offsets`
with `standby_offsets`) after the actives are recovered and before it resumes them; the
wrapper first reads each from its start offset up to its current end in bulk and advances
`Recovery.standby_offsets`, so Faust's per-message path (a catch-up through it measured 570 to
1,150 profiles/s on the same machine) is left only the records written from then on, which it
applies as they come (1,500 to 4,000/s measured while the changelog was written faster than a
fold writes it: a standby may lag an active at full speed, and a takeover reads that lag here,
in bulk).

Semantics kept: tombstones delete keys (the store's batch does it), a RocksDB store
records the offset it reached (a restart reads only what came after), the highwater
bookkeeping is Faust's own counters.

Bounds: `_restart_recovery` awaits `_seek_offsets` under `broker_request_timeout`, and mode's
`wait_first` treats a timeout as the service stopping; so the bulk read stops after
`BUDGET_SHARE` of that timeout and leaves the rest to Faust's path, from the offset it
reached. A rebalance (Faust's `signal_recovery_start`) or a stopping service ends it early
the same way. Each assumption about faust has a test in tests/unit/test_faust_recovery.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import weakref
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from faust.stores.memory import Store as MemoryStore
from faust.tables.recovery import Recovery
from faust.types import TP

from stream.runtime.heap import release_freed_memory

logger = logging.getLogger(__name__)

# Share of `broker_request_timeout` the bulk read may take (see the module docstring).
BUDGET_SHARE = 0.6
# Bytes one fetch may return per partition: several hundred 2.5 KB profiles per request.
FETCH_BYTES_PER_PARTITION = 4 * 1024 * 1024


@dataclass
class RecoveryProgress:
    """How far the bulk recovery of the current assignment is: counts only, no keys."""

    started_at: float = 0.0
    applied: int = 0
    running: bool = False
    finished_at: float | None = None

    def rate(self, now: float) -> float:
        """Records applied per second since the bulk read started."""
        end = self.finished_at if self.finished_at is not None else now
        return self.applied / (end - self.started_at) if end > self.started_at else 0.0


_progress: weakref.WeakKeyDictionary[Recovery, RecoveryProgress] = weakref.WeakKeyDictionary()


def progress_of(recovery: Any) -> RecoveryProgress | None:
    """The bulk recovery's progress for this Recovery service, if one ran."""
    return _progress.get(recovery)


class _Message:
    """What a store's `apply_changelog_batch` reads of a changelog message."""

    __slots__ = ("key", "offset", "partition", "tp", "value")

    def __init__(self, tp: TP, offset: int, key: bytes | None, value: bytes | None) -> None:
        self.tp = tp
        self.partition = tp.partition
        self.offset = offset
        self.key = key
        self.value = value


class _Event:
    """A changelog record as Faust's Event shows it to a store, decoded only when read.

    The RocksDB store reads `message` only; the memory store reads `key` and `value`.
    """

    __slots__ = ("_decode_key", "_decode_value", "message")

    def __init__(
        self,
        message: _Message,
        decode_key: Callable[[_Message], Any],
        decode_value: Callable[[_Message], Any],
    ) -> None:
        self.message = message
        self._decode_key = decode_key
        self._decode_value = decode_value

    @property
    def key(self) -> Any:
        return self._decode_key(self.message)

    @property
    def value(self) -> Any:
        return self._decode_value(self.message)


def install(client_options: dict[str, Any]) -> None:
    """Wrap `Recovery._seek_offsets` once; the bulk reader connects with `client_options`
    (AIOKafkaConsumer keyword arguments: servers and security)."""
    original = Recovery._seek_offsets
    if getattr(original, "_bulk_recovery", False):
        original = original.__wrapped__  # type: ignore[attr-defined]

    async def _seek_offsets(
        self: Recovery, consumer: Any, tps: set[TP], offsets: Any, title: str
    ) -> None:
        if offsets is self.active_offsets and tps:
            await bulk_recover(self, tps, client_options)
        elif offsets is self.standby_offsets and tps:
            await bulk_catch_up_standbys(self, tps, client_options)
        await original(self, consumer, tps, offsets, title)

    _seek_offsets._bulk_recovery = True  # type: ignore[attr-defined]
    _seek_offsets.__wrapped__ = original  # type: ignore[attr-defined]
    Recovery._seek_offsets = _seek_offsets  # type: ignore[method-assign]


async def bulk_recover(
    recovery: Recovery, tps: Iterable[TP], client_options: dict[str, Any]
) -> None:
    """Apply the active changelog partitions `tps` up to their highwaters (see the docstring)."""
    progress = RecoveryProgress(started_at=time.monotonic(), running=True)
    _progress[recovery] = progress
    plan = _plan(recovery, tps, recovery.active_offsets, recovery.active_highwaters)
    if not plan:
        progress.running = False
        progress.finished_at = progress.started_at
        return
    async with _reader(recovery, client_options) as consumer:
        try:
            await _read(
                recovery,
                consumer,
                plan,
                recovery.active_offsets,
                recovery.active_highwaters,
                progress,
            )
        finally:
            progress.running = False
            progress.finished_at = time.monotonic()
    logger.info(
        "bulk recovery applied %d changelog records of %d partitions in %.1f s (%.0f/s); "
        "%d left to Faust's own reader",
        progress.applied,
        len(plan),
        progress.finished_at - progress.started_at,
        progress.rate(progress.finished_at),
        recovery.active_remaining_total(),
    )


async def bulk_catch_up_standbys(
    recovery: Recovery, tps: Iterable[TP], client_options: dict[str, Any]
) -> None:
    """Apply the standby changelog partitions `tps` up to their current ends (the docstring)."""
    progress = RecoveryProgress(started_at=time.monotonic(), running=True)
    wanted = [
        tp
        for tp in tps
        if tp in recovery.tp_to_table and recovery.standby_offsets.get(tp) is not None
    ]
    if not wanted:
        return
    async with _reader(recovery, client_options) as consumer:
        ends = await consumer.end_offsets([TopicPartition(tp.topic, tp.partition) for tp in wanted])
        # Faust's highwater: the offset of the last record, as its `_build_highwaters` has it.
        highwaters = {tp: ends[TopicPartition(tp.topic, tp.partition)] - 1 for tp in wanted}
        plan = _plan(recovery, wanted, recovery.standby_offsets, highwaters)
        if not plan:
            return
        try:
            await _read(recovery, consumer, plan, recovery.standby_offsets, highwaters, progress)
        finally:
            progress.finished_at = time.monotonic()
    logger.info(
        "standby catch-up applied %d changelog records of %d partitions in %.1f s (%.0f/s)",
        progress.applied,
        len(plan),
        progress.finished_at - progress.started_at,
        progress.rate(progress.finished_at),
    )


def _plan(recovery: Recovery, tps: Iterable[TP], offsets: Any, highwaters: Any) -> dict[TP, int]:
    """Partition -> the last offset applied, for the partitions with records left to read."""
    plan: dict[TP, int] = {}
    for tp in tps:
        table = recovery.tp_to_table.get(tp)
        start = offsets.get(tp)
        highwater = highwaters.get(tp)
        if table is None or start is None or highwater is None or highwater <= start:
            continue
        if getattr(table, "_on_changelog_event", None) is not None:
            continue  # a per-event callback: Faust's own path calls it for each record
        plan[tp] = start
    return plan


@contextlib.asynccontextmanager
async def _reader(
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


async def _read(
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
    by_kafka = {TopicPartition(tp.topic, tp.partition): tp for tp in plan}
    consumer.assign(list(by_kafka))
    for ktp, tp in by_kafka.items():
        # The offset Faust holds is the last one applied (-1: none), as its own seek reads it.
        consumer.seek(ktp, plan[tp] + 1)
    decoders = {tp: _decoders(app, recovery.tp_to_table[tp]) for tp in plan}
    pending = set(by_kafka)
    # One fetch's writes run in a thread (RocksDB's write releases the GIL) while the loop
    # fetches and unpacks the next; never more than one, so writes keep the changelog's order.
    writing: asyncio.Future[None] | None = None
    try:
        while pending:
            if (
                recovery.should_stop
                or recovery.signal_recovery_start.is_set()
                or time.monotonic() > deadline
            ):
                return  # Faust's own path goes on from the offsets reached
            fetched = await consumer.getmany(*pending, timeout_ms=500)
            by_table: dict[Any, list[_Event]] = {}
            reached: dict[TP, int] = {}
            for ktp, records in fetched.items():
                tp = by_kafka[ktp]
                highwater = highwaters[tp]
                decode_key, decode_value = decoders[tp]
                batch = [
                    _Event(_Message(tp, r.offset, r.key, r.value), decode_key, decode_value)
                    for r in records
                    if r.offset <= highwater
                ]
                if batch:
                    by_table.setdefault(recovery.tp_to_table[tp], []).extend(batch)
                    reached[tp] = batch[-1].message.offset
            for ktp in list(pending):
                tp = by_kafka[ktp]
                if await consumer.position(ktp) > highwaters[tp]:
                    # Past the highwater: whatever follows the last record read was compacted
                    # away or is a marker, as Faust's own reader would find.
                    reached[tp] = highwaters[tp]
                    pending.discard(ktp)
            if writing is not None:
                # Shielded: a cancelled read must not cancel a write whose thread goes on.
                await asyncio.shield(writing)
            writing = asyncio.ensure_future(_apply(by_table, reached, offsets, progress))
        if writing is not None:
            await asyncio.shield(writing)
    finally:
        if writing is not None and not writing.done():
            # A rebalance cancelled the read: let the write in flight land before a new
            # recovery reads the store's persisted offsets.
            await asyncio.wait([writing])


async def _apply(
    by_table: dict[Any, list[_Event]],
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


def _decoders(app: Any, table: Any) -> tuple[Callable[[_Message], Any], Callable[[_Message], Any]]:
    """Key and value decoders of the table's changelog, as Faust's conductor decodes them."""
    schema = table.changelog_topic.schema
    loads_key = app.serializers.loads_key
    loads_value = app.serializers.loads_value

    def key(message: _Message) -> Any:
        return schema.loads_key(app, message, loads=loads_key)

    def value(message: _Message) -> Any:
        return schema.loads_value(app, message, loads=loads_value)

    return key, value


__all__ = ["RecoveryProgress", "bulk_catch_up_standbys", "bulk_recover", "install", "progress_of"]
