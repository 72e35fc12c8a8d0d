"""`replay`: rewind the workers' group on the events topic, optionally rebuilding the table.

What Kafka Streams' application-reset tool and `faust reset` do, for this app:

- The worker group's committed input offsets move to `earliest` or to the first event at or
  after a time (the broker's offsets for times); the workers fold from there when they start.
- `--reset-state` (only with `earliest`: a table rebuilt from a later point would lack
  everything before it) deletes the profile table's changelog topic, which Faust recreates
  empty, and leaves a reset id in the control topic: each worker wipes its local table files
  (RocksDB) at start-up when its data directory has not seen that id yet.
- A replay mark in the control topic records the end of every input partition at the time of
  the replay: the workers fire no campaign event for an event before it (it fired the first
  time), whatever its age; the horizon suppresses older ones anyway. The mark is the
  deployment's own (keyed by its app id, see stream.runtime.control); an unscoped one written
  before marks named the deployment is taken only where it can be this deployment's (see
  `stream.runtime.replay_mark.last_replay`).
- The contact versions delivered (the versions topic) stay. `--reset-state` starts a new
  version generation, kept in the mark (stream.domain.records.Version): the workers stamp it
  on every contact they map, so the rebuilt contacts are newer than any delivered before,
  even where a fold or mapping fix makes a customer's content last change at an earlier
  input offset than it did (input offsets alone would count that contact stale and drop it).
  The states a rebuilt profile passes through are sent too, in order, as coalesced as the
  fold batches and push rounds make them. A rewind without the reset keeps the generation:
  its profiles, and so their versions, stay. The outbox and its pending records stay too:
  what they carry is versioned.

It refuses while members of the worker group are alive: their commits would undo the rewind,
and a running worker's table would not be rebuilt.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.structs import OffsetAndMetadata

from stream.errors import LoyaltyStreamError
from stream.ops.backfill import changelog_topic
from stream.runtime import control
from stream.runtime.groups import describe_group
from stream.runtime.kafka_admin import admin_client, partition_ids
from stream.runtime.kafka_auth import client_options
from stream.runtime.replay_mark import REPLAY, ReplayMark, contact_generation, current_mark
from stream.settings import Settings

DELETE_PATIENCE = 60.0

logger = logging.getLogger(__name__)


class ReplayRefused(LoyaltyStreamError):
    """The replay cannot run now; the message says why and what to do."""


def parse_from(value: str) -> datetime | None:
    """`earliest` (None) or an ISO 8601 time (UTC when it names no zone).

    Raises:
        ValueError: neither.
    """
    if value.strip().lower() == "earliest":
        return None
    moment = datetime.fromisoformat(value)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


async def replay(
    settings: Settings, since: datetime | None, *, reset_state: bool, dry_run: bool, now: datetime
) -> ReplayMark:
    """Rewind the worker group (see the module doc); returns the mark it stored.

    Raises:
        ReplayRefused: workers of the group are running, or `reset_state` with a time.
    """
    if reset_state and since is not None:
        raise ReplayRefused(
            "--reset-state rebuilds the table from the whole history: use it with --from "
            "earliest (a table rebuilt from a later time would lack everything before it)"
        )
    group = await describe_group(settings, settings.app_id)
    if group.members:
        raise ReplayRefused(
            f"{len(group.members)} workers of group {group.group} are running "
            f"({', '.join(group.members)}); stop them all (e.g. kubectl scale statefulset "
            "--replicas=0), run the replay, then start them again"
        )
    topic = settings.topics.events
    partitions = [TopicPartition(topic, p) for p in await partition_ids(settings, topic)]
    if not partitions:
        raise ReplayRefused(f"topic {topic} does not exist: nothing to replay")
    generation = await _next_generation(settings, reset_state=reset_state, now=now)
    consumer = AIOKafkaConsumer(
        **client_options(settings.kafka), group_id=settings.app_id, enable_auto_commit=False
    )
    await consumer.start()
    try:
        ends = await consumer.end_offsets(partitions)
        if since is None:
            starts = await consumer.beginning_offsets(partitions)
        else:
            found = await consumer.offsets_for_times(
                {tp: int(since.timestamp() * 1000) for tp in partitions}
            )
            starts = {tp: ends[tp] if at is None else at.offset for tp, at in found.items()}
        mark = ReplayMark(
            at=now,
            start={tp.partition: starts[tp] for tp in partitions},
            until={tp.partition: ends[tp] for tp in partitions},
            reset=uuid.uuid4().hex if reset_state else None,
            source="earliest" if since is None else since.isoformat(),
            generation=generation,
        )
        if dry_run:
            return mark
        # The mark first: a worker started after the rewind must never fire for old events.
        await control.write(settings, REPLAY, mark.to_bytes())
        consumer.assign(partitions)
        await consumer.commit({tp: OffsetAndMetadata(starts[tp], "") for tp in partitions})
    finally:
        await consumer.stop()
    if reset_state:
        await _delete_topic(settings, changelog_topic(settings))
    return mark


async def _next_generation(settings: Settings, *, reset_state: bool, now: datetime) -> int:
    """The contact version generation the replayed contacts are stamped with."""
    try:
        return contact_generation(await current_mark(settings), reset_state=reset_state)
    except control.UnreadableControlRecord as exc:
        # The generation the last mark held is unknown; the replay's time in seconds is above
        # any generation counted one by one, so no contact mapped from now on is stale.
        logger.warning("%s; the contact version generation starts again from the time", exc)
        return int(now.timestamp())


async def _delete_topic(settings: Settings, topic: str) -> None:
    """Delete `topic` and wait until the cluster no longer lists it."""
    async with admin_client(settings) as admin:
        if topic not in set(await admin.list_topics()):
            return
        await admin.delete_topics([topic])
        deadline = time.monotonic() + DELETE_PATIENCE
        while topic in set(await admin.list_topics()):
            if time.monotonic() > deadline:
                raise ReplayRefused(f"topic {topic} still exists {DELETE_PATIENCE:.0f}s later")
            await asyncio.sleep(0.5)  # polling the cluster's metadata with a deadline


def wipe_local_tables(tabledir: Path, data_dir: Path, mark: ReplayMark | None) -> bool:
    """At a worker's start: remove its local table files if a state reset happened since.

    The data directory remembers the last reset id it has seen; True when the files went.
    """
    if mark is None or mark.reset is None:
        return False
    seen = data_dir / "state-reset"
    if seen.is_file() and seen.read_text(encoding="utf-8").strip() == mark.reset:
        return False
    shutil.rmtree(tabledir, ignore_errors=True)
    seen.write_text(mark.reset, encoding="utf-8")
    return True


async def replay_progress(settings: Settings, mark: ReplayMark) -> int:
    """How many of the replayed input records the worker group has committed past."""
    async with admin_client(settings) as admin:
        offsets = await admin.list_consumer_group_offsets(settings.app_id)
    topic = settings.topics.events
    done = 0
    for partition, until in mark.until.items():
        at = offsets.get(TopicPartition(topic, partition))
        committed = at.offset if at is not None and at.offset >= 0 else 0
        done += max(0, min(committed, until) - mark.start.get(partition, until))
    return done
