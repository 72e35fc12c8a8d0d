"""The periodic scan for time-based triggers over the profiles this worker holds.

Every `STREAM_SCHEDULE__INTERVAL` each worker walks the profiles of the events partitions
assigned to it, in slices, and asks `stream.domain.schedule.due` what falls due. What is due goes
to the outbox as the fold's records do (grouped by partition, stream.runtime.outbox), then the
profile with its fired markers is written through the table (reassigned, its changelog written,
as the fold writes it), in that order (stream.runtime.profile_store): after a crash in between,
the next scan sends the same ids again, which Ometria takes as one event. Each slice holds the
store's lock, so a fold batch and a slice never interleave on a profile; between slices the
scan yields, so folding goes on.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from stream import metrics
from stream.domain.mapping import MappingFile
from stream.domain.profile import Profile
from stream.domain.schedule import SCAN_SLICE, ScheduleConfig, due, mark_fired
from stream.runtime.app import app
from stream.runtime.faust_internals.context import key_slices
from stream.runtime.faust_internals.recovery_status import recovery_finished
from stream.runtime.profile_store import ProfileStore
from stream.runtime.tables import customer_to_profile
from stream.settings import Settings, get_settings

logger = logging.getLogger(__name__)

settings = get_settings()


def schedule_of(mapping_file: MappingFile, settings: Settings) -> ScheduleConfig:
    """The mapping's schedule with the settings' window and disabled triggers."""
    return replace(
        mapping_file.schedule,
        window=settings.schedule.window,
        disabled=frozenset(settings.triggers.disabled),
    )


def scan_clock() -> datetime:
    """The scan's clock: the wall clock plus STREAM_SCHEDULE__CLOCK_OFFSET (0 in production)."""
    return datetime.now(UTC) + settings.schedule.clock_offset


def _assigned() -> set[int]:
    return {tp.partition for tp in app.consumer.assignment() if tp.topic == settings.topics.events}


def _settled(store: ProfileStore) -> bool:
    """No rebalance or table recovery under way: a profile read now is the latest written,
    fired markers included (mid-recovery a key may still hold an older value)."""
    return (
        not app.should_stop
        and not app.rebalancing
        and not app.in_recovery
        and recovery_finished(app)
        and store.positions_known.is_set()
    )


def _holding(store: ProfileStore, mine: set[int]) -> bool:
    """Whether this worker still owns what it started scanning (no rebalance since)."""
    return _settled(store) and _assigned() == mine


async def scan_due_triggers(store: ProfileStore, config: ScheduleConfig) -> None:
    """One scan over the local profiles; an error ends it early (the next one catches up)."""
    if not _settled(store):
        return
    mine = _assigned()
    if not mine:
        return
    started = time.monotonic()
    try:
        fired = await _scan(store, config, mine)
    except Exception:
        metrics.SCAN_FAILURES.inc()
        logger.exception("the trigger scan stopped early; the next scan carries on")
        return
    elapsed = time.monotonic() - started
    metrics.SCAN_SECONDS.observe(elapsed)
    if fired:
        logger.info("trigger scan: %d custom events due, %.1fs", fired, elapsed)


async def _scan(store: ProfileStore, config: ScheduleConfig, mine: set[int]) -> int:
    fired = 0
    for partition in sorted(mine):
        # Slice by slice from the store: the fold adds and deletes keys while the scan runs. A
        # key's partition is where its events are, which the producer's partitioner chose:
        # the store knows it, a hash of the key may not.
        for keys in key_slices(customer_to_profile, partition, SCAN_SLICE):
            await asyncio.sleep(0)
            async with store.lock:
                # Checked under the lock: a revocation waits for the slice holding it.
                if not _holding(store, mine):
                    return fired  # the partitions' new owner scans them
                fired += await _scan_slice(store, config, keys, partition)
    return fired


async def _scan_slice(
    store: ProfileStore, config: ScheduleConfig, keys: list[str], partition: int
) -> int:
    now = scan_clock()
    outbox = store.outbox()
    fired = 0
    written: list[tuple[str, Profile | None, int]] = []
    for key in keys:
        profile = store.read_in_partition(key, partition)
        if profile is None:
            continue
        items = due(profile, now, config)
        if not items:
            continue
        for item in items:
            metrics.SCHEDULED.labels(item.record["event_type"]).inc()
        fired += len(items)
        outbox.add(key, [item.record for item in items], now)
        written.append((key, mark_fired(profile, items, now, config.window), partition))
    # The outbox holds the records before the markers say they fired (see the module doc).
    await store.write(await store.send_outbox(outbox), written)
    return fired


def declare(faust_app: Any, store: ProfileStore, config: ScheduleConfig) -> None:
    """Declare the scan on the app as a timer, if the schedule is enabled."""
    if not settings.schedule.enabled:
        return

    async def scan() -> None:
        await scan_due_triggers(store, config)

    interval = settings.schedule.interval.total_seconds()
    faust_app.timer(interval, name=f"{__name__}.scan_due_triggers")(scan)
