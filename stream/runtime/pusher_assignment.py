"""What a rebalance of the pusher group changes: the round in flight is cancelled, and no round
starts until the newly assigned outbox partitions know where to start and which contact
versions were delivered, and the request slots they own are set."""

from __future__ import annotations

import asyncio
import logging

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import KafkaError

from stream import metrics
from stream.ometria.delivery import Delivery
from stream.ometria.pacing import Slots
from stream.runtime import outbox_progress
from stream.runtime.pusher_offsets import OutboxOffsets
from stream.runtime.pusher_versions import ContactVersionsStore, PusherStopped
from stream.settings import Settings

logger = logging.getLogger(__name__)


class Assignment(ConsumerRebalanceListener):  # type: ignore[misc]
    """The pusher's outbox partitions, and whether a round may start on them now."""

    def __init__(
        self,
        settings: Settings,
        consumer: AIOKafkaConsumer,
        offsets: OutboxOffsets,
        versions: ContactVersionsStore,
        delivery: Delivery,
    ) -> None:
        self._topic = settings.topics.outbox
        self._rate = settings.ometria.max_requests_per_second
        self._consumer = consumer
        self._offsets = offsets
        self._versions = versions
        self._delivery = delivery
        # The round being delivered, which a rebalance cancels (its records go to their new
        # owner from the last commit).
        self.in_flight: asyncio.Task[None] | None = None
        # Why the pusher cannot go on safely, once an assignment could not be prepared.
        self.failure: BaseException | None = None
        self.joined = asyncio.Event()
        # aiokafka fetches for a new assignment while `assigned` still reads the versions: no
        # round starts before that is done, and a round read across a rebalance is dropped.
        self.settled = asyncio.Event()
        self.generation = 0

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        self.settled.clear()
        self.generation += 1
        task = self.in_flight
        if task is not None and not task.done():
            task.cancel()
            await asyncio.wait({task})
        for tp in revoked:
            self._versions.drop(tp.partition)
            self._offsets.forget(tp)

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        try:
            await self._offsets.start_where_delivery_stopped(assigned)
            await self._versions.load({tp.partition for tp in assigned})
        except (
            KafkaError,
            TimeoutError,
            PusherStopped,
            outbox_progress.UnreadableProgress,
        ) as exc:
            # Sending without the versions could put an older contact back, and starting
            # without the recorded offsets re-send what was delivered: stop instead.
            self.failure = exc
            self.settled.set()  # run() sees the failure
            return
        total = len(self._consumer.partitions_for_topic(self._topic) or ()) or len(assigned)
        slots = Slots(self._rate, total, frozenset(tp.partition for tp in assigned))
        self._delivery.pacer.use_slots(slots)
        metrics.PUSH_RATE.set(slots.share())
        self.joined.set()
        self.settled.set()
        logger.info(
            "pushing outbox partitions %s at %.2f requests/s (%d of %d partitions)",
            sorted(slots.owned),
            slots.share(),
            len(assigned),
            total,
        )
