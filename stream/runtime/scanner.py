"""The periodic scan for time-based triggers over the profiles this worker holds (issue 13).

Every `STREAM_SCHEDULE__INTERVAL` each worker walks the profiles of the events partitions
assigned to it, in slices, and asks `stream.domain.schedule.due` what falls due. What is due goes
to the outbox as the fold's records do (grouped by partition, stream.runtime.outbox), then the
profile with its fired markers is written through the table (reassigned, its changelog written,
as the fold writes it), in that order: after a crash in between, the next scan sends the same
ids again, which Ometria takes as one event. Each slice holds `agents.profiles_lock`, so a fold
batch and a slice never interleave on a profile; between slices the scan yields, so folding
goes on.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import replace
from datetime import UTC, datetime

from stream import metrics
from stream.domain.mapping import MappingFile
from stream.domain.profile import Profile
from stream.domain.schedule import SCAN_SLICE, ScheduleConfig, due, mark_fired
from stream.runtime import agents
from stream.runtime.agents import (
    positions_known,
    profiles_lock,
    recent_profiles,
    send_outbox,
)
from stream.runtime.app import app
from stream.runtime.faust_internals.context import (
    get_in_partition,
    key_slices,
    write_through_changelog,
)
from stream.runtime.faust_internals.recovery_status import recovery_finished
from stream.runtime.outbox import OutboxBatch
from stream.runtime.tables import customer_to_profile
from stream.settings import get_settings

logger = logging.getLogger(__name__)

settings = get_settings()
# The mapping's schedule with the settings' window and disabled triggers: set at start-up.
config: ScheduleConfig


def configure(mapping_file: MappingFile) -> None:
    """Set the schedule the scan follows from the mapping in force, before the worker runs."""
    global config
    config = replace(
        mapping_file.schedule,
        window=settings.schedule.window,
        disabled=frozenset(settings.triggers.disabled),
    )


def scan_clock() -> datetime:
    """The scan's clock: the wall clock plus STREAM_SCHEDULE__CLOCK_OFFSET (0 in production)."""
    return datetime.now(UTC) + settings.schedule.clock_offset


def _assigned() -> set[int]:
    return {tp.partition for tp in app.consumer.assignment() if tp.topic == settings.topics.events}


def _settled() -> bool:
    """No rebalance or table recovery under way: a profile read now is the latest written,
    fired markers included (mid-recovery a key may still hold an older value)."""
    return (
        not app.should_stop
        and not app.rebalancing
        and not app.in_recovery
        and recovery_finished(app)
        and positions_known.is_set()
    )


def _holding(mine: set[int]) -> bool:
    """Whether this worker still owns what it started scanning (no rebalance since)."""
    return _settled() and _assigned() == mine


async def scan_due_triggers() -> None:
    """One scan over the local profiles; an error ends it early (the next one catches up)."""
    if not _settled():
        return
    mine = _assigned()
    if not mine:
        return
    started = time.monotonic()
    try:
        fired = await _scan(mine)
    except Exception:
        metrics.SCAN_FAILURES.inc()
        logger.exception("the trigger scan stopped early; the next scan carries on")
        return
    elapsed = time.monotonic() - started
    metrics.SCAN_SECONDS.observe(elapsed)
    if fired:
        logger.info("trigger scan: %d custom events due, %.1fs", fired, elapsed)


async def _scan(mine: set[int]) -> int:
    fired = 0
    for partition in sorted(mine):
        # Slice by slice from the store: the fold adds and deletes keys while the scan runs. A
        # key's partition is where its events are, which the producer's partitioner chose:
        # the store knows it, a hash of the key may not.
        for keys in key_slices(customer_to_profile, partition, SCAN_SLICE):
            await asyncio.sleep(0)
            async with profiles_lock:
                # Checked under the lock: a revocation waits for the slice holding it.
                if not _holding(mine):
                    return fired  # the partitions' new owner scans them
                fired += await _scan_slice(keys, partition)
    return fired


async def _scan_slice(keys: list[str], partition: int) -> int:
    now = scan_clock()
    outbox = OutboxBatch(agents.outbox_partitions, agents.topic_limits.outbox)
    fired = 0
    written: list[tuple[str, int, Profile]] = []
    for key in keys:
        profile = recent_profiles.get(key)
        if profile is None:
            raw = get_in_partition(customer_to_profile, key, partition)
            if raw is None:
                continue
            profile = Profile.from_bytes(raw)
        items = due(profile, now, config)
        if not items:
            continue
        for item in items:
            metrics.SCHEDULED.labels(item.record["event_type"]).inc()
        fired += len(items)
        outbox.add(key, [item.record for item in items], now)
        written.append((key, partition, mark_fired(profile, items, now, config.window)))
    # The outbox holds the records before the markers say they fired (see the module doc).
    for future in await send_outbox(outbox):
        await future
    await write_through_changelog(
        customer_to_profile,
        [(key, profile.to_bytes(), partition) for key, partition, profile in written],
    )
    for key, _, profile in written:
        recent_profiles.put(key, profile)
    return fired


if settings.schedule.enabled:
    app.timer(settings.schedule.interval.total_seconds())(scan_due_triggers)
