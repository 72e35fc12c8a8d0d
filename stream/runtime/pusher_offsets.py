"""Where each outbox partition the pusher owns stands: its commit, the rewind to it, the
offset an uncommitted partition starts at, and the lag behind the partition's end."""

from __future__ import annotations

import contextlib
import logging

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError

from stream import metrics
from stream.runtime import outbox_progress
from stream.runtime.push_round import Round
from stream.settings import Settings

logger = logging.getLogger(__name__)


class OutboxOffsets:
    """The pusher group's offsets on the outbox partitions this process owns."""

    def __init__(
        self,
        settings: Settings,
        consumer: AIOKafkaConsumer,
        producer: AIOKafkaProducer,
        reader: AIOKafkaConsumer,
    ) -> None:
        self._settings = settings
        self._consumer = consumer
        self._producer = producer
        self._reader = reader
        self._committed: dict[TopicPartition, int] = {}
        # End offsets read while paused: paused partitions are not fetched, so their highwater
        # marks stand still while the backlog grows.
        self._ends: dict[TopicPartition, int] = {}

    async def rewind(self, batch: Round) -> None:
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

    async def commit(self, batch: Round) -> None:
        """Commit past a delivered round's records, then record it on the progress topic."""
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

    async def start_where_delivery_stopped(self, assigned: set[TopicPartition]) -> None:
        """Partitions this group has no committed offset for start where delivery stopped
        (stream.runtime.outbox_progress.where_delivery_stopped), else at the beginning."""
        fresh = []
        for tp in assigned:
            committed = await self._consumer.committed(tp)
            if committed is None:
                fresh.append(tp)
            else:
                self._committed[tp] = committed
        if not fresh:
            return
        offsets = await outbox_progress.where_delivery_stopped(self._reader, self._settings, fresh)
        for tp in fresh:
            if tp in offsets:
                self._consumer.seek(tp, offsets[tp])
                self._committed[tp] = offsets[tp]

    async def read_ends(self) -> None:
        """Read the owned partitions' end offsets (for the lag while they are not fetched)."""
        mine = list(self._consumer.assignment())
        if mine:
            self._ends = await self._consumer.end_offsets(mine)

    def forget(self, tp: TopicPartition) -> None:
        """A revoked partition: its offsets and its lag are its new owner's."""
        self._committed.pop(tp, None)
        self._ends.pop(tp, None)
        with contextlib.suppress(KeyError):  # never measured
            metrics.OUTBOX_LAG.remove(str(tp.partition))

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
