"""The events topic's fetched records, straight to the fold as per-partition lists.

Faust hands every fetched record over on its own: its fetcher awaits one callback per record
(mode's `wait_first`: four futures, an `asyncio.wait` and three cancellations), the conductor
builds an Event under a lock, the stream acks it. At full speed that is most of the worker's
CPU. Here the consumer's `getmany` keeps the events topic's records: each fetch's list for a
partition goes to a bounded `RecordFeed` (a full feed blocks the fetcher, as a full stream
buffer would), the fold takes lists from it in batches, and once a batch's writes are stored
its offsets are entered as acknowledged in one step. Every other topic's records (changelogs
of standby partitions, Faust's own) take Faust's path unchanged. Faust keeps the group, the
assignor's co-partitioning, tables, recovery, standbys, commits and the web server.

What this relies on in faust-streaming 0.15 (each checked by
tests/unit/runtime/faust_internals/test_feed.py):
- The fetcher (`Consumer._drain_messages`) iterates `self.getmany(timeout=...)` on each fetch:
  records it is not given are never delivered to a stream, nor acked.
- `Consumer._wait_next_records(timeout)` returns the fetched records by partition and the
  partitions active then; `flow_active`, `app.consumer_generation_id`, `_buffered_partitions`
  and `perform_seek` are what Faust's own `getmany` checks before delivering a record.
- A revocation awaits `Consumer.wait_empty()` (which then commits) after stopping the flow, and
  Faust seeks every partition back to its committed offset once the assignment completes: a
  list still queued then is dropped and fetched again.
- aiokafka's `seek_to_committed` leaves a partition with no committed offset (or offset 0)
  where the last fetch left it, so this consumer seeks such partitions of the feed's topic to
  the beginning itself (see `seek_to_committed`).
- The worker's aiokafka consumer is built by `AIOKafkaConsumerThread._create_worker_consumer`
  (with `fetch_max_wait_ms=1500`), and aiokafka hands `_fetch_max_wait_ms` to its fetcher only
  when the consumer starts: `_ConsumerThread` lowers it in between (see FETCH_MAX_WAIT_MS).
- `ack()` enters an offset in `_acked` and `_acked_index` (when at or above
  `_committed_offset`), and the commit takes the consecutive run from `_acked`.
- `Consumer.highwater(tp)` is aiokafka's, which its fetcher sets from each fetch response: a
  list whose last offset is just below it leaves nothing more to fetch for now, and a batch
  stops waiting for more once every partition's latest list did (a transactional producer's
  commit marker sits past the last record, so its partitions wait the window, as all did before).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import aiokafka
from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread, Consumer

# How long the broker may hold a fetch that finds no new record. Faust fixes 1,500 ms, and a
# broker answers one connection's requests in order: each offset lookup of a rebalance's
# recovery (highwaters, earliest offsets, positions) waited behind an idle partition's fetch,
# adding seconds to every rebalance and standby takeover. Idle, a worker fetches 10 times a second.
FETCH_MAX_WAIT_MS = 100


@dataclass(frozen=True, slots=True)
class Fetched:
    """One fetch's records of one partition (aiokafka's ConsumerRecords, in offset order)."""

    tp: Any
    records: list[Any]
    generation: int
    # Whether the list reached the partition's end (its high watermark) as of the fetch.
    at_end: bool = False


class RecordFeed:
    """A bounded queue of fetched record lists between Faust's fetcher and the fold.

    `capacity` bounds the records queued (not counting the batch being folded): the fetcher
    waits while the feed is full, which is what stops it fetching.
    """

    def __init__(self, topic: str, capacity: int) -> None:
        self.topic = topic
        self._capacity = capacity
        self._queued: deque[Fetched] = deque()
        self._count = 0
        self._changed = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        # Partitions whose latest list did not reach their end: more is coming for them.
        self._behind: set[Any] = set()

    def __len__(self) -> int:
        """The records queued."""
        return self._count

    async def put(self, fetched: Fetched) -> None:
        """Queue a list; waits while the feed is full (a clear also ends the wait)."""
        while self._count >= self._capacity:
            self._changed.clear()
            await self._changed.wait()
        self._queued.append(fetched)
        self._count += len(fetched.records)
        if fetched.at_end:
            self._behind.discard(fetched.tp)
        else:
            self._behind.add(fetched.tp)
        self._changed.set()

    def clear(self) -> None:
        """Drop every queued list (a rebalance: Faust seeks back to the committed offsets)."""
        self._queued.clear()
        self._count = 0
        self._behind.clear()
        self._changed.set()

    async def wait_idle(self) -> None:
        """Return once no batch taken from the feed is being folded."""
        await self._idle.wait()

    @contextlib.contextmanager
    def folding(self) -> Iterator[None]:
        """Hold while a batch taken from the feed is folded and acknowledged.

        A batch taken but not yet folding (waiting for a lock, or for the writer schemas) does
        not hold a revocation: it is found stale afterwards and fetched again.
        """
        self._idle.clear()
        try:
            yield
        finally:
            self._idle.set()

    async def batches(self, size: int, within: float) -> AsyncIterator[list[Fetched]]:
        """Lists in batches of about `size` records, or what came within `within` seconds, or
        everything there was once every partition's latest list reached its end."""
        while True:
            batch = [await self._take()]
            count = len(batch[0].records)
            deadline = time.monotonic() + within
            while count < size:
                if not self._queued:
                    if not self._behind:
                        # Nothing more to read: waiting would only delay what was read (at the
                        # end of a backlog, its last batch; live, each event by the window).
                        break
                    try:
                        async with asyncio.timeout(deadline - time.monotonic()):
                            await self._wait_for_more()
                    except TimeoutError:
                        break
                    continue
                fetched = self._pop()
                batch.append(fetched)
                count += len(fetched.records)
            yield batch

    async def _take(self) -> Fetched:
        while not self._queued:
            await self._wait_for_more()
        return self._pop()

    async def _wait_for_more(self) -> None:
        self._changed.clear()
        await self._changed.wait()

    def _pop(self) -> Fetched:
        fetched = self._queued.popleft()
        self._count -= len(fetched.records)
        self._changed.set()  # room for the fetcher
        return fetched


class _ConsumerThread(AIOKafkaConsumerThread):
    """Faust's thread around the aiokafka consumer, with fetches held FETCH_MAX_WAIT_MS."""

    def _create_worker_consumer(self, transport: Any) -> aiokafka.AIOKafkaConsumer:
        consumer = super()._create_worker_consumer(transport)
        consumer._fetch_max_wait_ms = FETCH_MAX_WAIT_MS  # the fetcher reads it at start()
        return consumer


class FeedingConsumer(Consumer):
    """Faust's aiokafka consumer, with the events topic's records diverted to a RecordFeed."""

    feed: RecordFeed | None = None

    def _new_consumer_thread(self) -> AIOKafkaConsumerThread:
        return _ConsumerThread(self, loop=self.loop, beacon=self.beacon)

    async def getmany(self, timeout: float) -> AsyncIterator[tuple[Any, Any]]:  # noqa: ASYNC109 -- Faust's signature
        """Faust's `getmany`, except that the feed's topic goes to the feed in lists."""
        feed = self.feed
        records, active = await self._wait_next_records(timeout)
        generation = self.app.consumer_generation_id
        if records is None or self.should_stop:
            return
        if not self.flow_active:
            # As Faust does: records fetched while the flow stopped are read again from the
            # committed offsets.
            try:
                await self.perform_seek()
            except Exception as exc:  # as in Faust's own getmany: a warning, and the next fetch
                self.log.warning("exception performing seek when flow not active %r", exc)
            return
        for tp, fetched in records.items():
            if not self._still_current(generation):
                return
            if active is not None and tp not in active and tp not in self._buffered_partitions:
                continue
            highwater = self.highwater(tp)
            self.app.monitor.track_tp_end_offset(tp, highwater)
            if feed is not None and tp.topic == feed.topic:
                fresh = self._unread(tp, fetched)
                if fresh:
                    at_end = highwater is not None and fresh[-1].offset + 1 >= highwater
                    await feed.put(Fetched(tp, fresh, generation, at_end))
                continue
            to_message = self._to_message
            for record in fetched:
                if not self._still_current(generation):
                    return
                yield tp, to_message(tp, record)

    def _still_current(self, generation: int) -> bool:
        return bool(self.flow_active) and self.app.consumer_generation_id == generation

    def _unread(self, tp: Any, fetched: list[Any]) -> list[Any]:
        """The records at or after the read offset (as Faust's fetcher drops the others)."""
        read = self._read_offset[tp]
        if read is not None and fetched and fetched[0].offset < read:
            fetched = [record for record in fetched if record.offset >= read]
        if fetched:
            self._read_offset[tp] = fetched[-1].offset
        return fetched

    async def seek_to_committed(self) -> Mapping[Any, int]:
        """Faust's seek back to the committed offsets, including partitions never committed.

        aiokafka seeks only partitions with a committed offset above 0. Records of another
        partition fetched and dropped while the flow was stopped (a rebalance before the first
        commit) would then never be read again, and the partition would stall.
        """
        committed = await super().seek_to_committed()
        feed = self.feed
        if feed is not None:
            unread = [tp for tp, at in committed.items() if tp.topic == feed.topic and not at]
            if unread:
                await self._thread.seek_to_beginning(*unread)
        return committed

    async def wait_empty(self) -> None:
        """Before Faust's commit on a revocation: the batch in flight is folded and acked."""
        if self.feed is not None:
            self.feed.clear()
            await self.feed.wait_idle()
        await super().wait_empty()

    def is_current(self, fetched: Fetched) -> bool:
        """Whether a list may still be folded: fetched in this generation, partition still held."""
        return self._still_current(fetched.generation) and fetched.tp in self.assignment()

    def handled(self, items: Iterable[Fetched]) -> None:
        """Let Faust commit past these lists: their effects are stored."""
        for fetched in items:
            if fetched.records:
                first, last = fetched.records[0].offset, fetched.records[-1].offset
                self.handled_range(fetched.tp, first, last + 1)

    def handled_range(self, tp: Any, first: int, end: int) -> None:
        """Enter offsets first..end-1 as acknowledged, as `ack()` does one at a time."""
        committed = self._committed_offset[tp]
        start = first if committed is None else max(first, committed)
        if start >= end:
            return
        index = self._acked_index[tp]
        offsets = [offset for offset in range(start, end) if offset not in index]
        self._acked[tp].extend(offsets)
        index.update(offsets)
        self._n_acked += len(offsets)
