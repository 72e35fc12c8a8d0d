"""The fold agent: loyalty events into profiles and outbox records, in batches.

Nothing escapes the loop: Faust acks a message whose processing raised, so every failure is
caught per event and dead-lettered with the original bytes, or stops the worker before the
batch's offsets commit. The outbox is delivered by the pusher (stream.runtime.pusher), which runs
inside the worker unless told otherwise (stream.runtime.ometria_jobs).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

import faust

from stream import metrics
from stream.domain.dlq import DeadLetter
from stream.domain.erasure import ERASED, AfterErasure, after_erasure, erasure_for
from stream.domain.events import InvalidEvent
from stream.domain.intake import EventWindow, SchemaNotResolved, admit
from stream.domain.mapping import MappingFile
from stream.domain.profile import Profile
from stream.domain.profile_cache import ProfileCache
from stream.domain.records import with_version
from stream.domain.sync import SyncRules, apply_event, contact_update
from stream.domain.wire import WireFormat, WriterSchema, schema_ids
from stream.runtime.app import app, app_feed, feeding_consumer
from stream.runtime.erasures import (
    ErasureIndex,
    erased_key,
    erased_value,
    ometria_key,
    pending_value,
)
from stream.runtime.failstop import stop_before_commit
from stream.runtime.faust_internals.context import get_in, write_through_changelog
from stream.runtime.faust_internals.feed import Fetched, RecordFeed
from stream.runtime.outbox import OutboxBatch
from stream.runtime.reading import read_range
from stream.runtime.schema_registry import schema_registry
from stream.runtime.skips import (
    BatchProgress,
    SkipWatch,
)
from stream.runtime.tables import customer_to_profile
from stream.runtime.topic_configs import MessageLimits
from stream.runtime.topics import events_dead_letter_topic, loyalty_events_topic
from stream.settings import get_settings

logger = logging.getLogger(__name__)

YIELD_EVERY = 200
# The longest the contacts of a batch are built without letting the loop run: a mapping with
# hundreds of lists or rules costs milliseconds a customer, and a batch of thousands of them
# would hold back the group's heartbeats past the session timeout (the group then drops the
# worker mid-batch, and every rejoin folds the same batch again).
CONTACTS_WITHOUT_YIELD = 0.05

settings = get_settings()
# A batch is whatever arrived within the window, at most a batch size of records
# (STREAM_FOLD__*): each customer's profile is read and written once per batch and its contact
# sent once, and the broker's acknowledgements are awaited once per batch, not per event. The
# window is the record cache of Kafka Streams: a backlog folds in batches of thousands, where
# most customers have several events, and the messages written per event drop with it.
FOLD_BATCH = settings.fold.batch_size
FOLD_WITHIN = settings.fold.window.total_seconds()
# Read once from the settings, when the agents are declared (Faust declares agents at import).
window = EventWindow.from_settings(settings)
wire = WireFormat.from_settings(settings)
# Built from the mapping in force: see configure (stream.runtime.worker calls it at start-up).
rules: SyncRules


async def _dead_letter_input(message: Any, error_class: str, reason: str) -> Awaitable[Any]:
    """Queue a dead letter for an input record; the returned future says when it is stored."""
    letter = DeadLetter.of_record(
        message, stage="parse", error_class=error_class, reason=reason, failed_at=datetime.now(UTC)
    ).fitted(topic_limits.dead_letter)
    stored = await events_dead_letter_topic.send(
        key=letter.key, value=letter.value, headers=letter.headers()
    )
    metrics.DEAD_LETTERS.labels("parse", error_class).inc()
    kept = len(letter.value or b"")
    size = len(message.value or b"")
    logger.warning(
        "dead-lettered %s[%s] offset %s%s: %s",
        message.topic,
        message.partition,
        message.offset,
        "" if kept == size else f" (cut to fit its topic: {kept} of {size} bytes kept)",
        reason,
    )
    return stored


# Input partition -> its end offset when the last replay ran (stream.ops.replay); see configure.
replayed_until: Mapping[int, int] = {}
# The generation of the contact versions mapped here (stream.domain.records.Version): the last
# replay's; see configure.
version_generation = 0


def configure(mapping_file: MappingFile, until: Mapping[int, int], generation: int) -> None:
    """Set the rules of the mapping in force and the last replay's marks, before the worker runs."""
    global rules, replayed_until, version_generation
    rules = SyncRules.from_settings(settings, mapping_file)
    replayed_until = dict(until)
    version_generation = generation


skip_watch = SkipWatch()
batch_progress = BatchProgress()
# Decoded profiles of recently folded customers, exactly as last written to the table: reading
# and validating a profile from the store costs more than folding an event into it. Emptied on
# every rebalance, when another worker may have written the keys.
recent_profiles = ProfileCache(settings.fold.profile_cache)
# Every erasure on record (stream.runtime.erasures), caught up on every assignment before a
# record is folded: an erasure another worker recorded holds here from the first record on.
erasures = ErasureIndex(settings)


# The outbox's partition count, read with the committed offsets on every assignment: a fold
# batch groups its records by partition (stream.runtime.outbox).
outbox_partitions = 0
# The largest records the outbox and dead-letter topics take, read with them.
topic_limits = MessageLimits()


# Set once the committed offsets of the current assignment are known: until then no record is
# checked for skips (a record checked against stale positions could hide a skip for good).
positions_known = asyncio.Event()
# Held while a batch folds and while the trigger scan (stream.runtime.scanner) handles a slice: both
# read, change and write profiles across awaits, and neither may overwrite the other's write.
profiles_lock = asyncio.Lock()


async def _read_skipped(message: Any, first_missing: int) -> list[Any]:
    """The records the consumer skipped just before this one (see stream.runtime.skips).

    Read again with a separate, group-less consumer: seeking Faust's own consumer back does
    not help, as records it fetched before the seek move its read position past them again.
    """
    missing = await read_range(
        settings, message.topic, message.partition, first_missing, message.offset
    )
    logger.warning(
        "%s[%s] jumped from offset %s to %s; read %d skipped records again",
        message.topic,
        message.partition,
        first_missing - 1,
        message.offset,
        len(missing),
    )
    return missing


class _Batch:
    """One batch's working state: the profiles it touched and the writes it queued."""

    def __init__(self, schemas: Mapping[int, WriterSchema]) -> None:
        # How records are framed, with the writer schemas of the batch's framed records.
        self.wire = wire.with_schemas(schemas)
        self.profiles: dict[str, Profile | None] = {}
        self.changed: dict[str, datetime] = {}  # customer id -> occurred_at of its latest event
        self.partition: dict[str, int] = {}  # customer id -> the partition of its records
        self.records: dict[str, list[dict[str, Any]]] = {}  # customer id -> its custom events
        self.stored: list[Awaitable[Any]] = []
        # (partition, first, end): offsets read back after a skip, for Faust's commit.
        self.read_back: list[tuple[Any, int, int]] = []
        # (type, outcome) -> events: counted once per batch, not once per event.
        self.counts: dict[tuple[str, str], int] = {}
        self.suppressed: dict[str, int] = {}  # reason -> custom events held back
        # customer id -> (its erasure's partition and offset, the outbox record that says so)
        self.erased: dict[str, tuple[int, int, dict[str, Any]]] = {}

    def count(self, event_type: str, outcome: str) -> None:
        key = (event_type, outcome)
        self.counts[key] = self.counts.get(key, 0) + 1

    def profile(self, customer_id: str, partition: int) -> Profile | None:
        """The customer's profile as folded so far; `partition` holds the record to fold."""
        if customer_id not in self.profiles:
            cached = recent_profiles.get(customer_id)
            if cached is None:
                stored = get_in(customer_to_profile, customer_id, partition)
                cached = Profile.from_bytes(stored) if stored is not None else None
            self.profiles[customer_id] = cached
        return self.profiles[customer_id]


def _fold_one(batch: _Batch, message: Any, now: datetime) -> InvalidEvent | None:
    """Fold one record into the batch; the reason to dead-letter it if it is not an event.

    Synchronous: a coroutine per event cost more than some of the steps it runs.
    """
    try:
        event = admit(message.value, message.key, now, window, batch.wire)
    except InvalidEvent as exc:
        if _erased_before(message):
            batch.count("unknown", "erased")  # read again: dead-lettered the first time
            return None
        batch.count("unknown", "invalid")
        return exc
    customer_id = event.customer.id
    before = batch.profile(customer_id, message.partition)
    erased_at = None
    if before is None or event.type == ERASED:
        # Looked up for customers without a profile only (and erasures): a customer erased
        # has none, until an enrolment after the erasure starts one.
        erased_at = erasures.erased_at(customer_id, message.partition)
    if erased_at is not None:
        offset = before.input_offset if before is not None else None
        judged = after_erasure(event, offset, message.offset, erased_at)
        if judged is not AfterErasure.FOLD:
            batch.count(event.type, "erased")
            return None
        if before is None and event.type != ERASED:
            logger.info(
                "customer %s enrols again after their erasure: a new profile starts",
                erasures.erased(customer_id),
            )
    if event.type == ERASED:
        _erase(batch, customer_id, before, message)
        return None
    # An event the last replay folds again fired its campaigns the first time it was folded.
    replayed = message.offset < replayed_until.get(message.partition, 0)
    outcome = apply_event(before, event, rules, now, offset=message.offset, replayed=replayed)
    if not outcome.applied:
        batch.count(event.type, "duplicate")
        return None
    batch.count(event.type, "applied")
    for reason in outcome.suppressed:
        batch.suppressed[reason] = batch.suppressed.get(reason, 0) + 1
    batch.profiles[customer_id] = outcome.profile
    batch.changed[customer_id] = event.occurred_at
    batch.partition[customer_id] = message.partition
    if outcome.records:
        batch.records.setdefault(customer_id, []).extend(outcome.records)
    return None


def _erased_before(message: Any) -> bool:
    """Whether a record that is not an event is keyed by a customer erased after it."""
    if message.key is None or not len(erasures):
        return False
    try:
        customer_id = message.key.decode()
    except UnicodeDecodeError:
        return False
    erased_at = erasures.erased_at(customer_id, message.partition)
    return erased_at is not None and message.offset < erased_at


def _erase(batch: _Batch, customer_id: str, before: Profile | None, message: Any) -> None:
    """Forget the customer: nothing folded for them so far in the batch is written or sent."""
    batch.count(ERASED, "applied")
    erasure = erasure_for(customer_id, before)
    batch.erased[customer_id] = (message.partition, message.offset, erasure)
    batch.profiles[customer_id] = None
    batch.partition[customer_id] = message.partition
    batch.changed.pop(customer_id, None)
    batch.records.pop(customer_id, None)
    # Later events of the batch see the erasure at once; the topic has it before the commit.
    erasures.add(erasures.erased(customer_id), message.partition, message.offset)


async def _record_erasures(batch: _Batch, now: datetime) -> list[Awaitable[Any]]:
    """Queue the batch's erasures on the erasures topic; the futures say when they are stored."""
    topic = settings.topics.erasures
    sent = []
    for customer_id, (partition, offset, _) in batch.erased.items():
        erased = erasures.erased(customer_id)
        for key, value in (
            (erased_key(settings.app_id, erased, partition), erased_value(offset, now)),
            (ometria_key(settings.app_id, erased), pending_value(customer_id, now)),
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


async def send_outbox(outbox: OutboxBatch) -> list[Awaitable[Any]]:
    """Queue the batch's outbox messages; the futures say when each is stored."""
    # Straight to Faust's producer: the topic object's send path (channels, future messages,
    # callbacks) cost more than the fold itself, and nothing here needs it.
    return [
        await app.producer.send(settings.topics.outbox, None, value, partition, None, headers)
        for partition, value, headers in outbox.messages()
    ]


def _fold_or_fault(batch: _Batch, record: Any, now: datetime) -> tuple[str, str] | None:
    """Fold one record; the error class and reason to dead-letter it with if it cannot be."""
    try:
        invalid = _fold_one(batch, record, now)
    except SchemaNotResolved:
        raise  # neither folded nor dead-lettered: the batch must not be stored
    except Exception as exc:
        # A bug must not lose the event: keep its bytes with the error for a redrive.
        batch.count("unknown", "failed")
        logger.exception("failed to process %s offset %s", record.topic, record.offset)
        return type(exc).__name__, f"internal error: {exc}"
    return None if invalid is None else (invalid.error_class, invalid.reason)


async def writer_schemas(values: Iterable[bytes | None]) -> Mapping[int, WriterSchema]:
    """The writer schemas of the framed values among `values`: one look-up per unknown id, and
    a wait for as long as the registry does not answer (stream.runtime.schema_registry)."""
    if schema_registry is None:
        return {}
    ids = schema_ids(values)
    return await schema_registry.resolve(ids) if ids else {}


async def fold_batch(
    fetched: list[Fetched], schemas: Mapping[int, WriterSchema] | None = None
) -> None:
    """Fold a batch of input records; return only once every write protecting them is stored.

    `schemas` holds the writer schema of every framed record of `fetched` (`writer_schemas`).
    Raises whatever a read or write raised; the caller must then not let the offsets commit.
    """
    batch = _Batch(schemas or {})
    now = datetime.now(UTC)
    n = 0
    for item in fetched:
        topic, partition = item.tp
        batch_progress.step()
        for message in item.records:
            n += 1
            if n % YIELD_EVERY == 0:
                # Folding a batch takes seconds: let the pusher keep its request slots
                # meanwhile, and the web views answer.
                batch_progress.step()
                await asyncio.sleep(0)
            # Awaited only until the positions are known: no coroutine per record after that.
            if not positions_known.is_set():
                await positions_known.wait()
            first_missing = skip_watch.check((topic, partition), message.offset)
            if first_missing is not None:
                # Records read back after a skip share the partition of the one that showed it.
                skipped = await _read_skipped(message, first_missing)
                if schema_registry is not None and schema_ids([r.value for r in skipped]):
                    found = await writer_schemas([r.value for r in skipped])
                    batch.wire = batch.wire.with_schemas({**batch.wire.schemas, **found})
                for record in skipped:
                    fault = _fold_or_fault(batch, record, now)
                    if fault is not None:
                        batch.stored.append(await _dead_letter_input(record, *fault))
                batch.read_back.append((item.tp, first_missing, message.offset))
            fault = _fold_or_fault(batch, message, now)
            if fault is not None:
                batch.stored.append(await _dead_letter_input(message, *fault))
    for (event_type, outcome), count in batch.counts.items():
        metrics.EVENTS.labels(event_type, outcome).inc(count)
    metrics.LAST_FOLD.set_to_current_time()
    for reason, count in batch.suppressed.items():
        metrics.TRIGGERS_SUPPRESSED.labels(reason).inc(count)
    written: dict[str, Profile | None] = {}
    outbox = OutboxBatch(outbox_partitions, topic_limits.outbox)
    for customer_id, (_, _, erasure) in batch.erased.items():
        if customer_id not in batch.changed:  # else an enrolment after it: that comes below
            written[customer_id] = None
            outbox.add(customer_id, [erasure], now)
    yielded = time.monotonic()
    for customer_id, occurred in batch.changed.items():
        batch_progress.step()
        if time.monotonic() - yielded > CONTACTS_WITHOUT_YIELD:
            await asyncio.sleep(0)
            yielded = time.monotonic()
        profile = batch.profiles[customer_id]
        assert profile is not None  # changed means folded
        profile, contact = contact_update(profile, rules)
        written[customer_id] = profile
        records = (
            [with_version(contact, profile.input_offset, version_generation)]
            if contact is not None
            else []
        )
        records += batch.records.get(customer_id, [])
        if customer_id in batch.erased:  # the pusher forgets what came before, then this
            records.insert(0, batch.erased[customer_id][2])
        outbox.add(customer_id, records, occurred)
    batch.stored += await send_outbox(outbox)
    batch.stored += await _record_erasures(batch, now)
    # The outbox must hold the records before the table says their events were applied: after
    # a crash in between, the redelivered events are folded again and their records re-sent.
    for stored in batch.stored:
        await stored
        batch_progress.step()
    # And the changelog holds the profiles before the batch ends (when Faust acks its events);
    # the store takes them only once the changelog has them.
    await write_through_changelog(
        customer_to_profile,
        [
            (
                customer_id,
                profile.to_bytes() if profile is not None else None,
                batch.partition[customer_id],
            )
            for customer_id, profile in written.items()
        ],
    )
    for customer_id, profile in written.items():
        if profile is None:
            recent_profiles.forget(customer_id)
        else:
            recent_profiles.put(customer_id, profile)
    # Stored: Faust may now commit past the records read back (it never saw them).
    consumer = feeding_consumer()
    for tp, first, end in batch.read_back:
        consumer.handled_range(tp, first, end)


async def fold_forever(feed: RecordFeed) -> None:
    """Fold the feed's batches as they come; stop the worker if one is not safely stored."""
    consumer = feeding_consumer()
    async for fetched in feed.batches(FOLD_BATCH, FOLD_WITHIN):
        try:
            # Before the lock: a rebalance (which takes the lock) must not wait for the registry.
            schemas = await writer_schemas(m.value for item in fetched for m in item.records)
        except asyncio.CancelledError:
            raise  # a stop while the registry is awaited: nothing of the batch was handled
        except BaseException as exc:
            stop_before_commit("the writer schemas of a batch could not be fetched", exc)
        try:
            async with profiles_lock:
                with feed.folding():
                    # A list fetched before a rebalance is fetched again from the committed
                    # offset.
                    current = [item for item in fetched if consumer.is_current(item)]
                    if current:
                        with batch_progress.batch():
                            await fold_batch(current, schemas)
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


@app.agent(loyalty_events_topic, concurrency=1)
async def sync_loyalty_profiles(stream: faust.StreamT[bytes]) -> None:
    """Fold loyalty events into their customers' profiles and queue the Ometria records.

    Faust subscribes a topic once a stream iterates it, so this agent's stream does; the
    records themselves reach the fold through the feed (stream.runtime.faust_internals.feed).
    """
    refusing = asyncio.ensure_future(_refuse(stream))
    try:
        await fold_forever(app_feed())
    finally:
        refusing.cancel()
