"""The worker's watchdogs: stop it when its input stalls, a table recovery reads nothing, or the
Kafka password file changes; and the rebalance signal handlers that hold the fold's positions.

Each stop leaves before Faust can commit past a record not folded (stream.runtime.failstop), so
the restart reads it again. Declared on the app by stream.runtime.worker, with the fold's
configuration (stream.runtime.fold_config).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from typing import Any

from aiokafka.errors import KafkaError
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_delay, wait_exponential

from stream.runtime.app import app
from stream.runtime.erasures import UnreadableErasure
from stream.runtime.failstop import stop_before_commit
from stream.runtime.faust_internals.recovery_status import recovery_status
from stream.runtime.fold_config import FoldConfig
from stream.runtime.kafka_admin import partition_ids
from stream.runtime.profile_store import ProfileStore
from stream.runtime.reading import IncompleteRead, holds_records
from stream.runtime.schema_registry import schema_registry
from stream.runtime.secret_watch import CHECK_EVERY as PASSWORD_CHECK_EVERY
from stream.runtime.secret_watch import password_file_watch
from stream.runtime.skips import BlindWatch, RecoveryWatch, StallWatch
from stream.runtime.topic_configs import message_limits
from stream.runtime.worker_offsets import committed_offsets
from stream.settings import get_settings

logger = logging.getLogger(__name__)

COMMITTED_OFFSETS_PATIENCE = 30.0

settings = get_settings()
stall_watch = StallWatch(settings.kafka.stall_timeout.total_seconds())
commit_watch = StallWatch(settings.kafka.stall_timeout.total_seconds())
recovery_watch = RecoveryWatch(settings.kafka.stall_timeout.total_seconds())
# A rebalance completes within a session timeout or two (a dead member's session must end).
blind_watch = BlindWatch(
    (settings.kafka.stall_timeout + 2 * settings.kafka.session_timeout).total_seconds()
)


# How long a stopping worker waits for the fold batch or scan slice in flight to store its writes.
FINISH_WRITES_PATIENCE = 30.0


async def _hold_checks(store: ProfileStore) -> None:
    # The partitions' next owner recovers their profiles from the changelog once this returns.
    # A trigger-scan slice in flight (a timer: Faust does not wait for it) that wrote its
    # changelog after that recovery would leave the next owner without its fired markers, and
    # the same campaigns would fire twice. Holding the lock waits for it to store its writes.
    async with store.lock:
        store.positions_known.clear()


async def _finish_writes(store: ProfileStore) -> None:
    # Stopping, Faust revokes nothing and cancels its timers only after the consumer has left
    # the group: the slice in flight finishes here first, for the reason above.
    try:
        async with asyncio.timeout(FINISH_WRITES_PATIENCE), store.lock:
            pass
    except TimeoutError:
        logger.warning("stopping with a profile write in flight; the next owner repeats it")


async def _forget_positions(fold: FoldConfig) -> None:
    fold.store.positions_known.clear()
    try:
        async for attempt in AsyncRetrying(
            retry=retry_if_exception_type(KafkaError),
            stop=stop_after_delay(COMMITTED_OFFSETS_PATIENCE),
            wait=wait_exponential(multiplier=0.2, max=2),
            reraise=True,
        ):
            # Each attempt is bounded too: an admin request that never returns would leave
            # positions_known unset, and with it the fold and the stall watch, for good.
            with attempt:
                async with asyncio.timeout(COMMITTED_OFFSETS_PATIENCE):
                    committed = await committed_offsets(settings)
                    outbox = await partition_ids(settings, settings.topics.outbox)
                    limits = await message_limits(settings)
                    await fold.erasures.catch_up()
    except (KafkaError, TimeoutError) as exc:
        stop_before_commit(
            "cannot read the group's committed offsets (to check for skips), the outbox's "
            "partitions, the topics' max.message.bytes or the erasures",
            exc,
        )
    except UnreadableErasure as exc:
        stop_before_commit("the erasures topic holds a record this service did not write", exc)
    # What the fold needs of this assignment before its first record (stream.runtime.agents).
    fold.store.assigned(len(outbox), limits)
    fold.skip_watch.reset(committed)
    stall_watch.reset()
    commit_watch.reset()
    fold.store.positions_known.set()


STALL_CHECK_EVERY = 10.0
# The longest one stall check may take (its longest read: stream.runtime.reading.READ_TIMEOUT).
CHECK_PATIENCE = 60.0


async def watch_for_stalls(fold: FoldConfig) -> None:
    """Run one stall check; a check that cannot finish counts as one that could not look.

    Every read in a check has its own bound, and this one holds whatever the check awaits
    (a client start, a stop): a watch blocked in an await would never stop the worker.
    """
    now = time.monotonic()
    try:
        async with asyncio.timeout(CHECK_PATIENCE):
            await _check_for_stalls(fold)
    except TimeoutError:
        logger.warning("a stall check did not finish within %.0fs", CHECK_PATIENCE)
        _blind(now, "stall checks did not finish")


async def _check_for_stalls(fold: FoldConfig) -> None:
    """Stop the worker when an assigned events partition stalls (stream.runtime.skips.StallWatch).

    Two stalls: records that stop arriving while more wait, and a group commit that stops
    below records already folded (Faust's commit stuck behind an offset it never acked).
    Nothing past either was committed, so the restart reads them again, and their effect on
    state applies once. Whether records wait is judged by the consumer's position: offsets it
    read past without delivering anything may be transaction markers or compacted away.
    Neither is judged while a fold batch still moves (skips.BatchProgress): its records wait
    on it, however long a slow mapping makes it.
    """
    now = time.monotonic()
    _watch_recovery(now)
    if app.in_recovery:
        blind_watch.saw()  # the recovery watch looks meanwhile
        return
    if app.rebalancing or not fold.store.positions_known.is_set():
        _blind(now, "the group's rebalance has not completed")
        return
    if schema_registry is not None and schema_registry.problem is not None:
        # The fold waits for the registry on purpose (readiness and /metrics say so): records
        # wait, and no commit moves, until it answers; the clocks start again from then.
        blind_watch.saw()
        stall_watch.reset()
        commit_watch.reset()
        return
    mine = [tp for tp in app.consumer.assignment() if tp.topic == settings.topics.events]
    if not mine:
        blind_watch.saw()
        return
    if fold.batch_progress.moved():
        # Records wait on a batch that is still folding or storing (skips.BatchProgress).
        for tp in mine:
            stall_watch.forget((tp.topic, tp.partition))
            commit_watch.forget((tp.topic, tp.partition))
        blind_watch.saw()
        return
    try:
        async with asyncio.timeout(STALL_CHECK_EVERY):
            ends = await app.consumer.highwaters(*mine)
            committed = await committed_offsets(settings)
    except (KafkaError, TimeoutError) as exc:
        logger.warning("cannot read offsets to watch for stalls: %r", exc)
        _blind(now, "the offsets could not be read")
        return
    blind_watch.saw()
    now = time.monotonic()
    for tp in mine:
        key = (tp.topic, tp.partition)
        seen = fold.skip_watch.seen(key)
        await _check_delivery(tp, seen, ends, now)
        _check_commit(tp, seen, committed.get(key), now)


async def _check_delivery(tp: Any, seen: int | None, ends: Mapping[Any, int], now: float) -> None:
    """Stop the worker when records of `tp` past `seen` wait, undelivered, for too long."""
    key = (tp.topic, tp.partition)
    waited = stall_watch.stalled(key, seen, ends.get(tp, 0), now)
    if waited is not None:
        try:
            if not await _records_wait(tp, seen, ends[tp]):
                stall_watch.settle(key, seen, ends[tp])
                waited = None
                logger.info(
                    "%s[%s]: no record after offset %s below the end %s (transaction "
                    "markers or compacted): nothing waits",
                    tp.topic,
                    tp.partition,
                    seen,
                    ends[tp],
                )
        except (KafkaError, IncompleteRead, TimeoutError) as exc:
            # Nothing is committed past a record that was not folded: judged next check.
            logger.warning("cannot tell whether records wait on %s: %r", tp, exc)
            waited = None
    if waited is not None:
        stop_before_commit(
            f"{tp.topic}[{tp.partition}] delivered no record for {waited:.0f}s while "
            f"offsets up to {ends[tp] - 1} wait (STREAM_KAFKA__STALL_TIMEOUT)"
        )


def _check_commit(tp: Any, seen: int | None, at: int | None, now: float) -> None:
    """Stop the worker when the group's commit `at` stays below the folded `seen` too long."""
    # The commit's "seen" is the last committed offset; it should reach the folded ones.
    folded_end = seen + 1 if seen is not None else 0
    waited = commit_watch.stalled(
        (tp.topic, tp.partition), at - 1 if at is not None else None, folded_end, now
    )
    if waited is not None:
        stop_before_commit(
            f"{tp.topic}[{tp.partition}]: the group's committed offset stayed at {at} for "
            f"{waited:.0f}s while records up to {folded_end - 1} were read "
            "(STREAM_KAFKA__STALL_TIMEOUT)"
        )


def _blind(now: float, why: str) -> None:
    waited = blind_watch.blind(now)
    if waited is not None:
        stop_before_commit(
            f"no events partition could be watched for stalls for {waited:.0f}s: {why} "
            "(STREAM_KAFKA__STALL_TIMEOUT plus twice STREAM_KAFKA__SESSION_TIMEOUT)"
        )


async def _records_wait(tp: Any, seen: int | None, end: int) -> bool:
    """Whether records below `end` wait for the agent, past the last offset it saw.

    The high watermark alone cannot tell: a partition whose last offset is a transaction's
    commit marker, or whose last records compaction removed, has its end past every record
    the consumer will ever deliver. Once the consumer's position reached the end, what it read
    past is read back: no record there means nothing waits. A consumer short of the end has
    itself stopped reading.
    """
    async with asyncio.timeout(STALL_CHECK_EVERY):
        position = await app.consumer.position(tp)
    if position is None or position < end:
        return True
    first = seen + 1 if seen is not None else 0
    return await holds_records(settings, tp.topic, tp.partition, first, end)


def _watch_recovery(now: float) -> None:
    """Stop the worker when a table recovery reads nothing for too long (a restart recovers
    again); see stream.runtime.skips.RecoveryWatch."""
    recovery = recovery_status(app)
    remaining = recovery.active_remaining
    waited = recovery_watch.stalled(recovery.running, remaining, now)
    if waited is not None:
        stop_before_commit(
            f"table recovery read no changelog record for {waited:.0f}s while {remaining} "
            "remain (STREAM_KAFKA__STALL_TIMEOUT)"
        )


password_watch = password_file_watch(settings.kafka)


async def watch_kafka_password() -> None:
    """Stop cleanly once the Kafka password file changes (see stream.runtime.secret_watch)."""
    if password_watch is not None:
        password_watch.check()


def declare(faust_app: Any, fold: FoldConfig) -> None:
    """Connect the rebalance handlers and declare the watch timers, for the fold of `fold`."""

    async def hold_checks(sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
        await _hold_checks(fold.store)

    async def finish_writes(sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
        await _finish_writes(fold.store)

    async def forget_positions(sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
        await _forget_positions(fold)

    async def stalls() -> None:
        await watch_for_stalls(fold)

    faust_app.on_partitions_revoked.connect(hold_checks)
    faust_app.on_before_shutdown.connect(finish_writes)
    faust_app.on_partitions_assigned.connect(forget_positions)
    faust_app.timer(STALL_CHECK_EVERY, name=f"{__name__}.watch_for_stalls")(stalls)
    if password_watch is not None:
        faust_app.timer(PASSWORD_CHECK_EVERY)(watch_kafka_password)
