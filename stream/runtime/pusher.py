"""The pusher: delivers the outbox to Ometria as a consumer group of its own.

See docs/architecture.md#delivery.

It reads the outbox with a plain aiokafka consumer, not Faust's stream machinery, so that it can
hold a partition for as long as Ometria needs (an outage, a revoked key) without Faust's
rebalance quirks, and commits an outbox offset only once every record before it was accepted by
Ometria or dead-lettered. It runs inside each worker by default and alone as
`python -m stream push`.

One round: read what waits (up to `coalesce_records` when a backlog waits, else whatever
arrives within the flush interval), keep the newest contact per customer and each distinct
custom event, deliver in full requests, remember the contact versions delivered, commit.

- **One account, one rate.** The account's requests per second are slots on the wall clock,
  each owned by one outbox partition (stream.ometria.pacing.Slots): a pusher sends only in the
  slots of the partitions it owns, so the deployment as a whole never exceeds the rate, however the
  partitions are split. The price: a pusher whose partitions are quiet leaves its slots unused.
- **Never stale.** Contacts carry a version (stream.domain.records.VERSION_FIELD). The newest
  version delivered per customer is kept in a compacted topic partitioned like the outbox, per
  deployment (stream.runtime.contact_versions); a pusher writes to it before it commits the
  outbox offsets, and reads its partitions of it when it is assigned them: with
  STREAM_STORE=rocksdb:// into an on-disk store under the data directory
  (stream.runtime.version_store), only the tail written since the store's checkpoint; else into
  memory, whole. A contact older than one delivered is dropped, whichever path brought it.
- **An erasure is never sent.** The worker follows an erased customer's records with an erasure
  record (stream.domain.erasure.erasure_record): the customer's records before it in the round
  are dropped, and their contact version is deleted (a tombstone on the versions topic, before
  the offsets move), so nothing of them is queued for Ometria and a re-enrolment starts afresh.
- **Pause obeys the control topic** (stream.runtime.control): while paused no round starts, the
  partitions stay assigned and uncommitted, so the outbox holds the backlog; resuming reads it
  from the committed offsets in full rounds, coalesced. A round in flight when the pause
  arrives finishes first.
- **Its place outlives the group's offsets.** After each commit the offsets also go to the
  compacted progress topic (stream.runtime.outbox_progress), and a partition the group has no
  committed offset for starts there: the broker drops an empty group's offsets after a week,
  and a deployment disabled or stopped that long must re-send nothing it had delivered.
- **A rebalance cancels the round in flight**: the records go to their new owner from the last
  committed offset, so an old batch is never retried by a pusher that no longer owns it.
- **Ometria's errors list** is account-wide: the pusher that owns outbox partition 0 reads it
  every `errors_poll_interval`, in one of its own request slots, and reports new entries.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError
from aiokafka.structs import ConsumerRecord

from stream import metrics
from stream.domain.batching import Erasure, coalesce
from stream.domain.dlq import DeadLetter
from stream.domain.erasure import erased_id
from stream.domain.records import Version, decode, encode_version
from stream.errors import LoyaltyStreamError
from stream.ometria.client import OmetriaClient
from stream.ometria.delivery import Delivery
from stream.ometria.errors_watch import ErrorsWatch
from stream.ometria.pacing import Slots
from stream.runtime import outbox_progress
from stream.runtime.contact_versions import (
    DeliveredVersions,
    KnownVersions,
    MemoryVersions,
    version_record,
)
from stream.runtime.control import ControlWatch
from stream.runtime.kafka_auth import client_options
from stream.runtime.outbox import occurred_at
from stream.runtime.reading import group_less_consumer, partition_batches, topic_ends
from stream.runtime.topology import (
    KAFKA_MAX_MESSAGE_BYTES,
    PRODUCER_MAX_REQUEST_BYTES,
    admin_client,
    delete_retention,
    message_limits,
)
from stream.runtime.version_store import Checkpoint, PartitionVersions, store_path
from stream.settings import Settings

logger = logging.getLogger(__name__)

# While a round is delivered the partitions are paused and polled this often, so that the group
# keeps the pusher (aiokafka leaves the group after max_poll_interval without a poll).
KEEPALIVE = 0.5
VERSIONS_READ_TIMEOUT = 60.0
UNUSABLE_ERASURE = "UnusableErasure"


# The outbox records of one round, by partition, in offset order.
Round = dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]]


class PusherStopped(LoyaltyStreamError):
    """The pusher cannot go on safely; nothing past the failed round was committed."""


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, pusher: Pusher) -> None:
        self._pusher = pusher

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        await self._pusher.revoked(revoked)

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        await self._pusher.assigned(assigned)


class Pusher:
    """Delivers the outbox partitions the pusher group assigns to this process."""

    def __init__(self, settings: Settings, client: OmetriaClient) -> None:
        self._settings = settings
        self._topic = settings.topics.outbox
        conf = settings.ometria
        self._rate = conf.max_requests_per_second
        self._flush = conf.flush_interval.total_seconds()
        self._max_records = conf.coalesce_records
        options = client_options(settings.kafka)
        self._consumer = AIOKafkaConsumer(
            **options,
            group_id=settings.pusher_group,
            client_id=f"{settings.app_id}-pusher",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            session_timeout_ms=int(settings.kafka.session_timeout.total_seconds() * 1000),
            heartbeat_interval_ms=int(settings.kafka.session_timeout.total_seconds() * 100),
        )
        # Versions and dead letters must be stored before an outbox offset is committed.
        self._producer = AIOKafkaProducer(
            **options, acks="all", linger_ms=5, max_request_size=PRODUCER_MAX_REQUEST_BYTES
        )
        # The outbox dead-letter topic's max.message.bytes, read at start.
        self._dead_letter_limit = KAFKA_MAX_MESSAGE_BYTES
        self._reader = group_less_consumer(settings)
        self.delivery = Delivery(
            client,
            max_requests_per_second=self._rate,
            dead_letter=self._dead_letter,
            auth_retry_interval=conf.auth_retry_interval.total_seconds(),
        )
        # outbox partition -> its contacts' newest versions delivered (on disk with RocksDB)
        self._delivered: dict[int, KnownVersions] = {}
        self._on_disk = settings.store.startswith("rocksdb://")
        # How long the versions topic keeps a tombstone: a store caught up longer ago than
        # that may have missed one, read at start.
        self._tombstones_kept = 0.0
        # Versions-topic records read by the latest assignment (a figure for tests and logs).
        self.versions_read = 0
        self._committed: dict[TopicPartition, int] = {}
        self._in_flight: asyncio.Task[None] | None = None
        self._failure: BaseException | None = None
        self._stopping = False
        self.joined = asyncio.Event()
        # aiokafka fetches for a new assignment while `assigned` still reads the versions: no
        # round starts before that is done, and a round read across a rebalance is dropped.
        self._settled = asyncio.Event()
        self._generation = 0
        self.control = ControlWatch(settings)
        # End offsets read while paused: paused partitions are not fetched, so their highwater
        # marks stand still while the backlog grows.
        self._ends: dict[TopicPartition, int] = {}
        self._errors_every = conf.errors_poll_interval.total_seconds()
        self._errors_watch = ErrorsWatch()
        self._errors_task: asyncio.Task[None] | None = None

    # --- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        # Before joining the group: a pusher started while paused must not send a round first.
        await self.control.start()
        self._dead_letter_limit = (await message_limits(self._settings)).outbox_dead_letter
        if self._on_disk:
            topic = self._settings.topics.outbox_versions
            self._tombstones_kept = (await delete_retention(self._settings, topic)).total_seconds()
        await self._producer.start()
        await self._reader.start()
        self._consumer.subscribe([self._topic], listener=_Rebalance(self))
        await self._consumer.start()
        metrics.PUSH_RATE.set(0.0)
        if self._errors_every > 0:
            self._errors_task = asyncio.create_task(self._watch_errors())

    async def close(self) -> None:
        """Leave the group and close every client (nothing is committed here)."""
        if self._errors_task is not None:
            self._errors_task.cancel()
            await asyncio.wait({self._errors_task})
        for close in (
            self._consumer.stop,
            self._reader.stop,
            self._producer.stop,
            self.control.stop,
        ):
            try:
                await close()
            except KafkaError as exc:  # closing anyway
                logger.warning("closing a pusher client failed: %r", exc)
        for versions in self._delivered.values():
            versions.close()
        self._delivered.clear()

    @property
    def stopping(self) -> bool:
        return self._stopping

    def stop_soon(self) -> None:
        """Finish the round in flight, commit it, then return from `run`."""
        self._stopping = True

    async def run(self) -> None:
        """Deliver rounds until `stop_soon`; raises PusherStopped when it cannot go on safely."""
        while not self._stopping:
            if self._failure is not None:
                raise PusherStopped(str(self._failure)) from self._failure
            if not self._settled.is_set():
                with contextlib.suppress(TimeoutError):  # look at stop and failure again
                    await asyncio.wait_for(self._settled.wait(), timeout=1.0)
                continue
            if self.control.paused:
                await self._hold()
                continue
            generation = self._generation
            batch = await self._gather()
            current = generation == self._generation and self._settled.is_set()
            if batch and current and not self.control.paused:
                await self._round(batch)
            elif batch:
                await self._rewind(batch)
            self.measure()

    async def _hold(self) -> None:
        """While paused: stay in the group (it polls), send nothing, commit nothing."""
        consumer = self._consumer
        consumer.pause(*consumer.assignment())
        try:
            await self.control.wait_for_change(KEEPALIVE)
            # Records of partitions a rebalance assigned meanwhile: read again after resuming.
            await self._rewind(await consumer.getmany(timeout_ms=0))
            mine = list(consumer.assignment())
            if mine:
                self._ends = await consumer.end_offsets(mine)
        except KafkaError as exc:  # only the backlog figure is missing; try again next time
            logger.warning("cannot read the outbox end offsets while paused: %r", exc)
        finally:
            if not self.control.paused:
                consumer.resume(*consumer.assignment())

    async def _watch_errors(self) -> None:
        """Report Ometria's errors list every interval while this pusher owns outbox partition
        0: one reader per deployment, and its reads count against this pusher's slots."""
        first = TopicPartition(self._topic, 0)
        while True:
            await asyncio.sleep(self._errors_every)
            if self._settled.is_set() and first in self._consumer.assignment():
                await self._errors_watch.poll(self.delivery.errors)

    # --- one round ---------------------------------------------------------------------------

    async def _gather(self) -> Round:
        """What waits: up to `coalesce_records` entries (see `entries`), or what arrives within
        the flush interval."""
        gathered: Round = {}
        count = 0
        deadline: float | None = None
        while count < self._max_records and not self._stopping:
            now = time.monotonic()
            if deadline is not None and now >= deadline:
                break
            wait = self._flush if deadline is None else deadline - now
            got = await self._consumer.getmany(
                timeout_ms=int(wait * 1000), max_records=self._max_records - count
            )
            if self._failure is not None:
                return {}
            for tp, records in got.items():
                for record in records:
                    if count >= self._max_records:
                        # A message may carry many entries: the rest waits for the next round
                        # (or for the partition's new owner, if a rebalance took it meanwhile).
                        with contextlib.suppress(IllegalStateError):
                            self._consumer.seek(tp, record.offset)
                        break
                    gathered.setdefault(tp, []).append(record)
                    count += entries(record)
            if count and deadline is None:
                deadline = now + self._flush
            if deadline is None and not got:
                return {}  # idle: let run() check for stop and failure
        return gathered

    async def _round(self, batch: Round) -> None:
        consumer = self._consumer
        task = asyncio.create_task(self._deliver(batch))
        self._in_flight = task
        consumer.pause(*consumer.assignment())
        try:
            while not task.done():
                await asyncio.wait({task}, timeout=KEEPALIVE)
                # Records of partitions a rebalance assigned meanwhile: read again next round.
                await self._rewind(await consumer.getmany(timeout_ms=0))
        except asyncio.CancelledError:
            task.cancel()  # stopped from outside: nothing of this round is committed
            raise
        finally:
            self._in_flight = None
            consumer.resume(*consumer.assignment())
        if task.cancelled():
            logger.info("outbox round cancelled by a rebalance; its new owner delivers it")
            return
        error = task.exception()
        if error is not None:
            raise PusherStopped(f"an outbox round failed: {error!r}") from error
        await self._commit(batch)

    async def _rewind(self, batch: Round) -> None:
        """Records read across a rebalance: their partitions start again from their commits."""
        mine = self._consumer.assignment()
        for tp, records in batch.items():
            if tp not in mine or not records:
                continue
            # Not aiokafka's seek_to_committed: it leaves a partition without a commit where it is.
            committed = await self._consumer.committed(tp)
            if committed is None:
                committed = self._committed.get(tp)
            # Another rebalance may have taken the partition during the await: its new owner
            # starts from the commit anyway.
            with contextlib.suppress(IllegalStateError):
                if committed is None:
                    await self._consumer.seek_to_beginning(tp)
                else:
                    self._consumer.seek(tp, committed)

    async def _deliver(self, batch: Round) -> None:
        entries: list[tuple[int, dict[str, Any]]] = []
        for tp, messages in batch.items():
            for message in messages:
                try:
                    records = decode(message.value or b"")
                    entries.extend((tp.partition, record) for record in records)
                except ValueError as exc:  # orjson.JSONDecodeError is one
                    await self._dead_letter(_unreadable(message, exc))
        plan = coalesce(entries, self._delivered_version)
        if plan.stale:
            metrics.STALE_CONTACTS.inc(plan.stale)
            logger.info("dropped %d contacts older than ones already delivered", plan.stale)
        for record in plan.unusable:
            metrics.DEAD_LETTERS.labels("push", UNUSABLE_ERASURE).inc()
            await self._dead_letter(_unusable_erasure(record))
        await self.delivery.deliver(plan.records)
        await self._forget(plan.erasures, plan.erased)
        await self._remember(plan.versions)
        _observe_latency(batch, datetime.now(UTC))

    def _delivered_version(self, partition: int, contact_id: str) -> Version | None:
        versions = self._delivered.get(partition)
        return None if versions is None else versions.get(contact_id)

    async def _remember(self, versions: Mapping[tuple[int, str], Version]) -> None:
        """Store the newest contact versions delivered, before the outbox offsets move."""
        topic = self._settings.topics.outbox_versions
        sent = []
        for (partition, contact_id), version in versions.items():
            known = self._delivered_version(partition, contact_id)
            if known is not None and known >= version:
                continue
            key, headers = version_record(self._settings.app_id, contact_id)
            value = encode_version(version)
            sent.append(
                await self._producer.send(
                    topic, key=key, value=value, partition=partition, headers=headers
                )
            )
        await asyncio.gather(*sent)
        for (partition, contact_id), version in versions.items():
            delivered = self._delivered.get(partition)
            if delivered is not None:  # else revoked meanwhile: its new owner reads the topic
                delivered.remember(contact_id, version)

    async def _forget(self, erasures: list[Erasure], dropped: int) -> None:
        """Delete the erased customers' contact versions, before the outbox offsets move.

        A tombstone, as `_load_versions` reads it (and compaction keeps it), forgets the
        version; forgotten here too, a re-enrolled customer's first contact is not stale.
        """
        topic = self._settings.topics.outbox_versions
        sent = []
        for erasure in erasures:
            for contact_id in erasure.contact_ids:
                key, headers = version_record(self._settings.app_id, contact_id)
                sent.append(
                    await self._producer.send(
                        topic, key=key, value=None, partition=erasure.partition, headers=headers
                    )
                )
        await asyncio.gather(*sent)
        for erasure in erasures:
            delivered = self._delivered.get(erasure.partition)
            for contact_id in erasure.contact_ids:
                if delivered is not None:
                    delivered.forget(contact_id)
            metrics.ERASURES_APPLIED.inc()
            # The hashed id only: the customer id is personal data.
            logger.info(
                "erased customer %s (outbox partition %d): nothing of them is sent after this",
                erased_id(self._settings.erasure_hash_key, erasure.customer_id),
                erasure.partition,
            )
        if dropped:
            logger.info("dropped %d records of erased customers, never sent", dropped)

    async def _commit(self, batch: Round) -> None:
        mine = self._consumer.assignment()
        offsets = {tp: records[-1].offset + 1 for tp, records in batch.items() if tp in mine}
        if not offsets:
            return
        try:
            await self._consumer.commit(offsets)
        except (CommitFailedError, IllegalStateError) as exc:
            # The partitions moved meanwhile: their new owner re-sends from the last commit.
            logger.info("outbox offsets not committed (%r); the new owner re-sends them", exc)
            return
        self._committed.update(offsets)
        await outbox_progress.record(self._producer, self._settings, offsets)

    async def _dead_letter(self, letter: DeadLetter) -> None:
        # A foreign message near the outbox's limit does not fit with the dlq.* headers.
        letter = letter.fitted(self._dead_letter_limit)
        await self._producer.send_and_wait(
            self._settings.topics.outbox_dead_letter,
            key=letter.key,
            value=letter.value,
            headers=letter.headers(),
        )
        logger.error("dead-lettered an Ometria record: %s", letter.reason)

    # --- rebalancing -------------------------------------------------------------------------

    async def revoked(self, revoked: set[TopicPartition]) -> None:
        self._settled.clear()
        self._generation += 1
        task = self._in_flight
        if task is not None and not task.done():
            task.cancel()
            await asyncio.wait({task})
        for tp in revoked:
            versions = self._delivered.pop(tp.partition, None)
            if versions is not None:
                versions.close()
            self._committed.pop(tp, None)
            self._ends.pop(tp, None)
            with contextlib.suppress(KeyError):  # never measured
                metrics.OUTBOX_LAG.remove(str(tp.partition))

    async def assigned(self, assigned: set[TopicPartition]) -> None:
        try:
            await self._start_where_delivery_stopped(assigned)
            await self._load_versions({tp.partition for tp in assigned})
        except (
            KafkaError,
            TimeoutError,
            PusherStopped,
            outbox_progress.UnreadableProgress,
        ) as exc:
            # Sending without the versions could put an older contact back, and starting
            # without the recorded offsets re-send what was delivered: stop instead.
            self._failure = exc
            self._settled.set()  # run() sees the failure
            return
        total = len(self._consumer.partitions_for_topic(self._topic) or ()) or len(assigned)
        slots = Slots(self._rate, total, frozenset(tp.partition for tp in assigned))
        self.delivery.pacer.use_slots(slots)
        metrics.PUSH_RATE.set(slots.share())
        self.joined.set()
        self._settled.set()
        logger.info(
            "pushing outbox partitions %s at %.2f requests/s (%d of %d partitions)",
            sorted(slots.owned),
            slots.share(),
            len(assigned),
            total,
        )

    async def _start_where_delivery_stopped(self, assigned: set[TopicPartition]) -> None:
        """Partitions this group has no committed offset for start at the offset last recorded
        on the progress topic, else where the workers' group got to, else at the beginning.

        The broker drops the offsets of a group left empty for a week (a deployment disabled
        that long), and the progress topic keeps them (stream.runtime.outbox_progress). Before
        the pusher had a group of its own, the workers' group consumed the outbox; an upgraded
        deployment must neither re-send nor skip what it had reached.
        """
        fresh = []
        for tp in assigned:
            committed = await self._consumer.committed(tp)
            if committed is None:
                fresh.append(tp)
            else:
                self._committed[tp] = committed
        if not fresh:
            return
        recorded = await outbox_progress.recorded(
            self._reader, self._settings, (tp.partition for tp in fresh)
        )
        offsets = {
            TopicPartition(self._topic, partition): offset for partition, offset in recorded.items()
        }
        if len(offsets) < len(fresh):
            async with admin_client(self._settings) as admin:
                workers = await admin.list_consumer_group_offsets(self._settings.app_id)
            for tp in fresh:
                at = workers.get(tp)
                if tp not in offsets and at is not None and at.offset >= 0:
                    offsets[tp] = at.offset
        for tp in fresh:
            if tp in offsets:
                self._consumer.seek(tp, offsets[tp])
                self._committed[tp] = offsets[tp]

    async def _load_versions(self, partitions: set[int]) -> None:
        """Read this pusher's partitions of the versions topic to their current end.

        As after compaction, a contact's latest record counts and a tombstone forgets it. A
        latest value that is not a version raises PusherStopped: that contact's newest
        delivery is unknown.
        """
        topic = self._settings.topics.outbox_versions
        wanted = [TopicPartition(topic, p) for p in sorted(partitions)]
        if not wanted:
            return
        # Tombstones written after this moment lie at or past the ends read next.
        asked_at = time.time()
        ends = await self._reader.end_offsets(wanted)
        inputs = await topic_ends(self._settings, self._settings.topics.events, self._reader)
        ceiling = max(inputs.values(), default=0)
        self.versions_read = 0
        async with asyncio.timeout(VERSIONS_READ_TIMEOUT):
            for tp in wanted:
                stale = self._delivered.pop(tp.partition, None)
                if stale is not None:
                    stale.close()
                if self._on_disk:
                    versions = await self._catch_up(tp, ends[tp], asked_at, ceiling)
                else:
                    versions = await self._read_whole(tp, ends[tp], ceiling)
                self._delivered[tp.partition] = versions

    async def _read_whole(self, tp: TopicPartition, end: int, ceiling: int) -> KnownVersions:
        found = DeliveredVersions(self._settings.app_id, ceiling)
        async for records in partition_batches(self._reader, tp, end):
            self.versions_read += len(records)
            found.add(records)
        unreadable = found.unreadable()
        if unreadable:
            first = unreadable[0]
            raise PusherStopped(
                _not_a_version(
                    tp, first.offset, first.key or b"", first.value or b"", len(unreadable)
                )
            )
        return MemoryVersions(found.newest())

    async def _catch_up(
        self, tp: TopicPartition, end: int, asked_at: float, ceiling: int
    ) -> KnownVersions:
        """The partition's on-disk store, brought up to `end` from its checkpoint.

        Another pusher may have owned the partition since this store was written: the tail
        from the checkpoint holds what it wrote. A store that cannot be caught up that way
        (none yet, a checkpoint past the topic's end or before its start, or older than the
        topic keeps tombstones) is filled again from the partition's beginning.
        """
        app_id = self._settings.app_id
        path = store_path(self._settings.data_dir, app_id, tp.partition)
        try:
            store = PartitionVersions(path, app_id)
        except Exception as exc:  # rocksdict raises plain Exception (a lock held, a bad file)
            raise PusherStopped(
                f"cannot open the pusher's versions store at {path}: {exc} (another process "
                "using the same STREAM_DATA_DIR? delete the directory to have it read again)"
            ) from exc
        try:
            checkpoint = store.checkpoint()
            begin = (await self._reader.beginning_offsets([tp]))[tp]
            usable = (
                checkpoint is not None
                and begin <= checkpoint.offset <= end
                and asked_at - checkpoint.since_ms / 1000 < self._tombstones_kept
            )
            if checkpoint is None or not usable:
                store.close()
                store = PartitionVersions.fresh(path, app_id)
                start, since_ms = None, int(asked_at * 1000)
            else:
                start, since_ms = checkpoint.offset, checkpoint.since_ms
            read = 0
            async for records in partition_batches(self._reader, tp, end, start=start):
                read += len(records)
                # A read cut short resumes here, still bound by the first read's tombstones.
                store.apply(records, Checkpoint(records[-1].offset + 1, since_ms), ceiling)
            store.apply([], Checkpoint(end, int(asked_at * 1000)), ceiling)
            self.versions_read += read
            logger.info(
                "versions of outbox partition %d: read %d records of %s from offset %s to %d "
                "into the store at %s",
                tp.partition,
                read,
                tp.topic,
                "the beginning" if start is None else start,
                end,
                path,
            )
            unreadable = store.unreadable()
            if unreadable:
                first = unreadable[0]
                raise PusherStopped(
                    _not_a_version(tp, first.offset, first.key, first.value, len(unreadable))
                )
        except BaseException:
            store.close()
            raise
        return store

    # --- observation -------------------------------------------------------------------------

    def measure(self) -> None:
        """Outbox lag per owned partition, and the backlog they add up to."""
        backlog = 0
        for tp in self._consumer.assignment():
            fetched, read = self._consumer.highwater(tp), self._ends.get(tp)
            if fetched is None and read is None:
                continue
            end = max(fetched or 0, read or 0)
            lag = max(0, end - self._committed.get(tp, 0))
            metrics.OUTBOX_LAG.labels(str(tp.partition)).set(lag)
            backlog += lag
        metrics.OUTBOX_BACKLOG.set(backlog)

    def not_ready(self) -> str | None:
        """Why the pusher is not delivering now, or None."""
        if self._failure is not None:
            return f"stopped: {self._failure!r}"
        if not self.joined.is_set():
            return "not yet assigned outbox partitions"
        blocked = self.delivery.blocked
        return None if blocked is None else blocked.reason


def entries(record: ConsumerRecord[bytes, bytes]) -> int:
    """The entries an outbox message carries: one customer's records of one fold batch each
    (one occurred-at header per customer, stream.runtime.outbox), else one (a backfilled or
    redriven record)."""
    return max(1, len(occurred_at(record.headers)))


def _observe_latency(batch: Round, now: datetime) -> None:
    """Observe each customer's push latency; a header that is not a time with an offset (any
    producer may write to the outbox) is left out: the round was delivered all the same."""
    unreadable = 0
    for records in batch.values():
        for record in records:
            for raw in occurred_at(record.headers):
                occurred = _occurred(raw)
                if occurred is not None:
                    metrics.PUSH_LATENCY.observe(max(0.0, (now - occurred).total_seconds()))
                elif raw:
                    unreadable += 1
    if unreadable:
        logger.warning(
            "%d of this round's occurred-at headers are not ISO 8601 times with an offset "
            "(written by another producer?); their push latency is not observed",
            unreadable,
        )


def _occurred(raw: bytes) -> datetime | None:
    try:
        occurred = datetime.fromisoformat(raw.decode())
    except ValueError:  # UnicodeDecodeError is one
        return None
    return occurred if occurred.utcoffset() is not None else None


def _not_a_version(tp: TopicPartition, offset: int, key: bytes, value: bytes, count: int) -> str:
    return (
        f"the versions topic {tp.topic} partition {tp.partition} offset "
        f"{offset} holds {value[:40]!r} for contact "
        f"{key.decode(errors='replace')!r}, not a version (the pusher writes "
        f"an offset or [generation, offset]; {count} such contacts in all): produce a "
        "tombstone (a null value) for each such key to the topic, which forgets the contact's "
        "version, then restart the pusher"
    )


def _unusable_erasure(record: dict[str, Any]) -> DeadLetter:
    return DeadLetter.of_ometria_record(
        record,
        error_class=UNUSABLE_ERASURE,
        reason="an erasure record in the outbox names no customer_id: nobody could be forgotten "
        "(the worker writes stream.domain.erasure.erasure_record; redrive a fixed copy)",
        failed_at=datetime.now(UTC),
    )


def _unreadable(message: ConsumerRecord[bytes, bytes], exc: Exception) -> DeadLetter:
    return DeadLetter.of_record(
        message,
        stage="push",
        error_class=type(exc).__name__,
        reason=f"the outbox message is not a JSON record or list of records: {exc}",
        failed_at=datetime.now(UTC),
    )
