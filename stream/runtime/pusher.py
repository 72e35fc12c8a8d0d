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
  version delivered per customer is kept by the contact-versions store
  (stream.runtime.pusher_versions), which writes it to its topic before the pusher commits the
  outbox offsets and reads its partitions when the pusher is assigned them. A contact older
  than one delivered is dropped, whichever path brought it.
- **An erasure is never sent.** The worker follows an erased customer's records with an erasure
  record (stream.domain.erasure.erasure_record): the customer's records before it in the round
  are dropped, and their contact version is deleted (a tombstone on the versions topic, before
  the offsets move), so nothing of them is queued for Ometria and a re-enrolment starts afresh.
- **Pause obeys the control topic** (stream.runtime.control): while paused no round starts, the
  partitions stay assigned and uncommitted, so the outbox holds the backlog; resuming reads it
  from the committed offsets in full rounds, coalesced. A round in flight when the pause
  arrives finishes first.
- **Its place outlives the group's offsets** (stream.runtime.pusher_offsets). After each commit
  the offsets also go to the compacted progress topic (stream.runtime.outbox_progress), and a
  partition the group has no committed offset for starts there: the broker drops an empty
  group's offsets after a week, and a deployment disabled or stopped that long must re-send
  nothing it had delivered.
- **A rebalance cancels the round in flight** (stream.runtime.pusher_assignment): the records
  go to their new owner from the last committed offset, so an old batch is never retried by a
  pusher that no longer owns it.
- **Ometria's errors list** is account-wide: the pusher that owns outbox partition 0 reads it
  every `errors_poll_interval`, in one of its own request slots, and reports new entries.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import IllegalStateError, KafkaError

from stream import metrics
from stream.ometria.client import OmetriaClient
from stream.ometria.delivery import Delivery
from stream.ometria.errors_watch import ErrorsWatch
from stream.runtime.control import ControlWatch
from stream.runtime.kafka_auth import client_options
from stream.runtime.push_round import Round, RoundSender, entries
from stream.runtime.pusher_assignment import Assignment
from stream.runtime.pusher_offsets import OutboxOffsets
from stream.runtime.pusher_versions import ContactVersionsStore, PusherStopped
from stream.runtime.reading import group_less_consumer
from stream.runtime.topic_configs import PRODUCER_MAX_REQUEST_BYTES
from stream.settings import Settings

logger = logging.getLogger(__name__)

# While a round is delivered the partitions are paused and polled this often, so that the group
# keeps the pusher (aiokafka leaves the group after max_poll_interval without a poll).
KEEPALIVE = 0.5


class Pusher:
    """Delivers the outbox partitions the pusher group assigns to this process."""

    def __init__(self, settings: Settings, client: OmetriaClient) -> None:
        self._topic = settings.topics.outbox
        conf = settings.ometria
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
        self._reader = group_less_consumer(settings)
        self.versions = ContactVersionsStore(settings, self._producer, self._reader)
        self.rounds = RoundSender(settings, client, self._producer, self.versions)
        self.offsets = OutboxOffsets(settings, self._consumer, self._producer, self._reader)
        self._assignment = Assignment(
            settings, self._consumer, self.offsets, self.versions, self.rounds.delivery
        )
        self._stopping = False
        self.control = ControlWatch(settings)
        self._errors_every = conf.errors_poll_interval.total_seconds()
        self._errors_watch = ErrorsWatch()
        self._errors_task: asyncio.Task[None] | None = None

    # --- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        # Before joining the group: a pusher started while paused must not send a round first.
        await self.control.start()
        await self.rounds.start()
        await self.versions.start()
        await self._producer.start()
        await self._reader.start()
        self._consumer.subscribe([self._topic], listener=self._assignment)
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
        self.versions.close()

    @property
    def delivery(self) -> Delivery:
        return self.rounds.delivery

    @property
    def joined(self) -> asyncio.Event:
        """Set once the pusher was first assigned outbox partitions and ready to deliver them."""
        return self._assignment.joined

    @property
    def stopping(self) -> bool:
        return self._stopping

    def stop_soon(self) -> None:
        """Finish the round in flight, commit it, then return from `run`."""
        self._stopping = True

    async def run(self) -> None:
        """Deliver rounds until `stop_soon`; raises PusherStopped when it cannot go on safely."""
        assignment = self._assignment
        while not self._stopping:
            if assignment.failure is not None:
                raise PusherStopped(str(assignment.failure)) from assignment.failure
            if not assignment.settled.is_set():
                with contextlib.suppress(TimeoutError):  # look at stop and failure again
                    await asyncio.wait_for(assignment.settled.wait(), timeout=1.0)
                continue
            if self.control.paused:
                await self._hold()
                continue
            generation = assignment.generation
            batch = await self._gather()
            current = generation == assignment.generation and assignment.settled.is_set()
            if batch and current and not self.control.paused:
                await self._round(batch)
            elif batch:
                await self.offsets.rewind(batch)
            self.measure()

    async def _hold(self) -> None:
        """While paused: stay in the group (it polls), send nothing, commit nothing."""
        consumer = self._consumer
        consumer.pause(*consumer.assignment())
        try:
            await self.control.wait_for_change(KEEPALIVE)
            # Records of partitions a rebalance assigned meanwhile: read again after resuming.
            await self.offsets.rewind(await consumer.getmany(timeout_ms=0))
            await self.offsets.read_ends()
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
            if self._assignment.settled.is_set() and first in self._consumer.assignment():
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
            if self._assignment.failure is not None:
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
        task = asyncio.create_task(self.rounds.deliver(batch))
        self._assignment.in_flight = task
        consumer.pause(*consumer.assignment())
        try:
            while not task.done():
                await asyncio.wait({task}, timeout=KEEPALIVE)
                # Records of partitions a rebalance assigned meanwhile: read again next round.
                await self.offsets.rewind(await consumer.getmany(timeout_ms=0))
        except asyncio.CancelledError:
            task.cancel()  # stopped from outside: nothing of this round is committed
            raise
        finally:
            self._assignment.in_flight = None
            consumer.resume(*consumer.assignment())
        if task.cancelled():
            logger.info("outbox round cancelled by a rebalance; its new owner delivers it")
            return
        error = task.exception()
        if error is not None:
            raise PusherStopped(f"an outbox round failed: {error!r}") from error
        await self.offsets.commit(batch)

    # --- observation -------------------------------------------------------------------------

    def measure(self) -> None:
        """Outbox lag per owned partition, and the backlog they add up to."""
        self.offsets.measure()

    def not_ready(self) -> str | None:
        """Why the pusher is not delivering now, or None."""
        if self._assignment.failure is not None:
            return f"stopped: {self._assignment.failure!r}"
        if not self.joined.is_set():
            return "not yet assigned outbox partitions"
        blocked = self.delivery.blocked
        return None if blocked is None else blocked.reason
