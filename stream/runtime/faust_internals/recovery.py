"""Recover tables' active changelog partitions in bulk, outside Faust's per-message path.

faust-streaming 0.15.3 recovers a table one message at a time: the fetcher hands each
changelog record to the conductor (a decode, an `Event`, a queue put), and
`Recovery._slurp_changelogs` takes each one off the queue with its own `asyncio.wait_for`
task and recomputes every partition's remaining count before applying buffers of 1,000; the
store's own write batch is a small part of that cost (docs/architecture.md, Scaling).

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
`Recovery.standby_offsets`, so Faust's slower per-message path is left only the records written
from then on, which it applies as they come (a standby may lag an active at full speed, and a
takeover reads that lag here, in bulk).

Semantics kept: tombstones delete keys (the store's batch does it), a RocksDB store
records the offset it reached (a restart reads only what came after), the highwater
bookkeeping is Faust's own counters.

Bounds: `_restart_recovery` awaits `_seek_offsets` under `broker_request_timeout`, and mode's
`wait_first` treats a timeout as the service stopping; so the bulk read stops after
`BUDGET_SHARE` of that timeout (stream.runtime.faust_internals.changelog_reader) and leaves the
rest to Faust's path, from the offset it reached. A rebalance (Faust's `signal_recovery_start`)
or a stopping service ends it early the same way. Each assumption about faust has a test in
tests/unit/runtime/faust_internals/test_recovery_bulk.py.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from typing import Any

from aiokafka import TopicPartition
from faust.tables.recovery import Recovery
from faust.types import TP

from stream.runtime.faust_internals.changelog_reader import open_reader, read_changelogs
from stream.runtime.faust_internals.recovery_status import RecoveryProgress, start_progress

logger = logging.getLogger(__name__)


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
    start_progress(recovery, progress)
    plan = _plan(recovery, tps, recovery.active_offsets, recovery.active_highwaters)
    if not plan:
        progress.running = False
        progress.finished_at = progress.started_at
        return
    async with open_reader(recovery, client_options) as consumer:
        try:
            await read_changelogs(
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
    async with open_reader(recovery, client_options) as consumer:
        ends = await consumer.end_offsets([TopicPartition(tp.topic, tp.partition) for tp in wanted])
        # Faust's highwater: the offset of the last record, as its `_build_highwaters` has it.
        highwaters = {tp: ends[TopicPartition(tp.topic, tp.partition)] - 1 for tp in wanted}
        plan = _plan(recovery, wanted, recovery.standby_offsets, highwaters)
        if not plan:
            return
        try:
            await read_changelogs(
                recovery, consumer, plan, recovery.standby_offsets, highwaters, progress
            )
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


__all__ = ["bulk_catch_up_standbys", "bulk_recover", "install"]
