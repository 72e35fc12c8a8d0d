"""The fold agent: loyalty events into profiles and outbox records, in batches.

Nothing escapes the loop: Faust acks a message whose processing raised, so every failure is
caught per event and dead-lettered with the original bytes, or stops the worker before the
batch's offsets commit. The fold itself is pure (stream.domain.batch_fold); this module reads
what it needs and writes what it returns through the profile store (stream.runtime.profile_store).
The outbox is delivered by the pusher (stream.runtime.pusher), which runs inside the worker
unless told otherwise (stream.runtime.ometria_jobs).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Mapping
from datetime import UTC, datetime
from typing import Any

import faust

from stream import metrics
from stream.domain.batch_fold import Admitted, BatchFold, Fault, admit_record
from stream.domain.dlq import DeadLetter
from stream.domain.profile import Profile
from stream.domain.wire import WireFormat, WriterSchema
from stream.runtime.app import app, app_feed, feeding_consumer
from stream.runtime.erasures import erasure_records
from stream.runtime.failstop import stop_before_commit
from stream.runtime.faust_internals.feed import Fetched, RecordFeed
from stream.runtime.fold_config import FoldConfig
from stream.runtime.outbox import OutboxBatch
from stream.runtime.profile_store import ProfileStore
from stream.runtime.schema_registry import writer_schemas
from stream.runtime.skips import read_skipped
from stream.runtime.topics import events_dead_letter_topic, loyalty_events_topic

logger = logging.getLogger(__name__)

YIELD_EVERY = 200
# The longest the contacts of a batch are built without letting the loop run: a mapping with
# hundreds of lists or rules costs milliseconds a customer, and a batch of thousands of them
# would hold back the group's heartbeats past the session timeout (the group then drops the
# worker mid-batch, and every rejoin folds the same batch again).
CONTACTS_WITHOUT_YIELD = 0.05

ReadBack = tuple[Any, int, int]  # (partition, first, end): offsets read back after a skip
Write = tuple[str, Profile | None, int]  # (customer id, profile or None, partition)
Profiles = dict[str, Profile | Exception | None]  # customer id -> stored profile, or the error


async def _dead_letter_input(fold: FoldConfig, fault: Fault) -> Awaitable[Any]:
    """Queue a dead letter for an input record; the returned future says when it is stored."""
    message: Any = fault.record
    if fault.exc is not None:
        logger.error(
            "failed to process %s offset %s", message.topic, message.offset, exc_info=fault.exc
        )
    letter = DeadLetter.of_record(
        message,
        stage="parse",
        error_class=fault.error_class,
        reason=fault.reason,
        failed_at=datetime.now(UTC),
    ).fitted(fold.store.limits.dead_letter)
    stored = await events_dead_letter_topic.send(
        key=letter.key, value=letter.value, headers=letter.headers()
    )
    metrics.DEAD_LETTERS.labels("parse", fault.error_class).inc()
    kept = len(letter.value or b"")
    size = len(message.value or b"")
    logger.warning(
        "dead-lettered %s[%s] offset %s%s: %s",
        message.topic,
        message.partition,
        message.offset,
        "" if kept == size else f" (cut to fit its topic: {kept} of {size} bytes kept)",
        fault.reason,
    )
    return stored


async def _admit_fetched(
    fold: FoldConfig, fetched: list[Fetched], wire: WireFormat, now: datetime, profiles: Profiles
) -> tuple[list[Admitted], list[ReadBack]]:
    """Every record of the batch admitted in offset order, the skipped ones read back first;
    a record repeating the email of its key's stored profile does not have it checked again
    (the profiles are read into `profiles`, see `_stored_email`)."""
    admitted: list[Admitted] = []
    read_back: list[ReadBack] = []
    n = 0
    for item in fetched:
        topic, partition = item.tp
        fold.batch_progress.step()
        for message in item.records:
            n += 1
            if n % YIELD_EVERY == 0:
                # Folding a batch takes seconds: let the pusher keep its request slots
                # meanwhile, and the web views answer.
                fold.batch_progress.step()
                await asyncio.sleep(0)
            # Awaited only until the positions are known: no coroutine per record after that.
            if not fold.store.positions_known.is_set():
                await fold.store.positions_known.wait()
            first_missing = fold.skip_watch.check((topic, partition), message.offset)
            if first_missing is not None:
                # Records read back after a skip share the partition of the one that showed it.
                skipped = await read_skipped(fold.settings, message, first_missing)
                found = await writer_schemas(r.value for r in skipped)
                if found:
                    wire = wire.with_schemas({**wire.schemas, **found})
                admitted += [
                    admit_record(r, now, fold.window, wire, _stored_email(fold.store, profiles, r))
                    for r in skipped
                ]
                read_back.append((item.tp, first_missing, message.offset))
            email = _stored_email(fold.store, profiles, message)
            admitted.append(admit_record(message, now, fold.window, wire, email))
    return admitted, read_back


def _stored_email(store: ProfileStore, profiles: Profiles, record: Any) -> str | None:
    """The email of the stored profile of the record key's customer, the profile read into
    `profiles` first (once per key, or the error reading it: that customer's events are then
    dead-lettered, as a bug's). An admitted event's customer id is its key: its profile is there.
    """
    if record.key is None:
        return None
    customer_id = record.key.decode("utf-8", "replace")  # as `check_key` compares them
    if customer_id not in profiles:
        try:
            profiles[customer_id] = store.read(customer_id, record.partition)
        except Exception as exc:
            profiles[customer_id] = exc
    stored = profiles[customer_id]
    return stored.email if isinstance(stored, Profile) else None


async def _fold_admitted(
    fold: FoldConfig, batch: BatchFold, admitted: list[Admitted]
) -> list[Awaitable[Any]]:
    """Fold the admitted records in order; the futures of the dead letters queued meanwhile."""
    stored: list[Awaitable[Any]] = []
    for n, item in enumerate(admitted, 1):
        if n % YIELD_EVERY == 0:
            fold.batch_progress.step()
            await asyncio.sleep(0)
        fault = batch.fold(item)
        if fault is not None:
            stored.append(await _dead_letter_input(fold, fault))
    for (event_type, outcome), count in batch.counts.items():
        metrics.EVENTS.labels(event_type, outcome).inc(count)
    metrics.LAST_FOLD.set_to_current_time()
    for reason, count in batch.suppressed.items():
        metrics.TRIGGERS_SUPPRESSED.labels(reason).inc(count)
    for customer_id in batch.enrolled_again:
        logger.info(
            "customer %s enrols again after their erasure: a new profile starts",
            fold.erasures.erased(customer_id),
        )
    # Later batches see the erasures at once; the topic has them before the commit.
    for customer_id, (partition, offset, _) in batch.erased.items():
        fold.erasures.add(fold.erasures.erased(customer_id), partition, offset)
    return stored


async def _outbox_of(fold: FoldConfig, batch: BatchFold) -> tuple[list[Write], OutboxBatch]:
    """The batch's profile writes and outbox records, contacts mapped customer by customer."""
    outbox = fold.store.outbox()
    writes: list[Write] = []
    yielded = time.monotonic()
    for write in batch.writes():
        fold.batch_progress.step()
        if time.monotonic() - yielded > CONTACTS_WITHOUT_YIELD:
            await asyncio.sleep(0)
            yielded = time.monotonic()
        writes.append((write.customer_id, write.profile, write.partition))
        outbox.add(write.customer_id, write.records, write.occurred)
    return writes, outbox


async def _record_erasures(
    fold: FoldConfig, batch: BatchFold, now: datetime
) -> list[Awaitable[Any]]:
    """Queue the batch's erasures on the erasures topic; the futures say when they are stored."""
    settings = fold.settings
    sent = []
    for customer_id, (partition, offset, _) in batch.erased.items():
        erased = fold.erasures.erased(customer_id)
        topic = settings.topics.erasures
        for key, value in erasure_records(
            settings.app_id, erased, customer_id, partition, offset, now
        ):
            sent.append(await app.producer.send(topic, key, value, 0, None, None))
        logger.info(
            "customer %s erased at %s[%s] offset %s: profile deleted, nothing more is sent",
            erased,
            settings.topics.events,
            partition,
            offset,
        )
    return sent


async def fold_batch(
    fold: FoldConfig, fetched: list[Fetched], schemas: Mapping[int, WriterSchema] | None = None
) -> None:
    """Fold a batch of input records; return only once every write protecting them is stored.

    `schemas` holds the writer schema of every framed record of `fetched`
    (stream.runtime.schema_registry.writer_schemas).
    Raises whatever a read or write raised; the caller must then not let the offsets commit.
    """
    now = datetime.now(UTC)
    # How records are framed, with the writer schemas of the batch's framed records.
    wire = fold.wire.with_schemas(schemas or {})
    # Each customer's stored profile, read by record key as the records are admitted.
    profiles: Profiles = {}
    admitted, read_back = await _admit_fetched(fold, fetched, wire, now, profiles)
    batch = BatchFold(fold.rules, fold.marks, profiles, fold.erasures, now)
    stored = await _fold_admitted(fold, batch, admitted)
    writes, outbox = await _outbox_of(fold, batch)
    stored += await fold.store.send_outbox(outbox)
    stored += await _record_erasures(fold, batch, now)
    await fold.store.write(stored, writes, fold.batch_progress.step)
    # Stored: Faust may now commit past the records read back (it never saw them).
    consumer = feeding_consumer()
    for tp, first, end in read_back:
        consumer.handled_range(tp, first, end)


async def fold_forever(fold: FoldConfig, feed: RecordFeed) -> None:
    """Fold the feed's batches as they come; stop the worker if one is not safely stored."""
    consumer = feeding_consumer()
    # A batch is what arrived within the window, or all there was to read, at most a batch
    # size of records (STREAM_FOLD__*): each customer's profile is read and written once per
    # batch and its contact sent once, and the broker's acknowledgements awaited once per batch.
    size, within = fold.settings.fold.batch_size, fold.settings.fold.window.total_seconds()
    async for fetched in feed.batches(size, within):
        try:
            # Before the lock: a rebalance (which takes the lock) must not wait for the registry.
            schemas = await writer_schemas(m.value for item in fetched for m in item.records)
        except asyncio.CancelledError:
            raise  # a stop while the registry is awaited: nothing of the batch was handled
        except BaseException as exc:
            stop_before_commit("the writer schemas of a batch could not be fetched", exc)
        try:
            async with fold.store.lock:
                with feed.folding():
                    # A list fetched before a rebalance is fetched again from the committed
                    # offset.
                    current = [item for item in fetched if consumer.is_current(item)]
                    if current:
                        with fold.batch_progress.batch():
                            await fold_batch(fold, current, schemas)
                        consumer.handled(current)
        except BaseException as exc:
            # Nothing past the last batch stored may commit: leave without Faust's shutdown.
            stop_before_commit("a batch of input records was not safely stored", exc)


async def _refuse(stream: faust.StreamT[bytes]) -> None:
    async for event in stream.events():
        stop_before_commit(
            f"{event.message.topic}[{event.message.partition}] offset {event.message.offset} "
            "reached Faust's per-record path, which nothing acknowledges (see "
            "stream.runtime.faust_internals.feed: has faust-streaming changed?)"
        )


def declare(faust_app: faust.App, fold: FoldConfig) -> None:
    """Declare the fold agent on the app, folding with `fold` (before the worker starts)."""

    async def sync_loyalty_profiles(stream: faust.StreamT[bytes]) -> None:
        """Fold loyalty events into their customers' profiles and queue the Ometria records.

        Faust subscribes a topic once a stream iterates it, so this agent's stream does; the
        records themselves reach the fold through the feed (stream.runtime.faust_internals.feed).
        """
        refusing = asyncio.ensure_future(_refuse(stream))
        try:
            await fold_forever(fold, app_feed())
        finally:
            refusing.cancel()

    faust_app.agent(loyalty_events_topic, concurrency=1)(sync_loyalty_profiles)
