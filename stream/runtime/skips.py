"""Notice when the consumer skipped records of a partition, and read them again.

faust-streaming can resume a partition's fetching before it seeks back to the committed offset
after a rebalance (its issues #216/#221 are of this kind); the records fetched in between are
dropped and their offsets treated as a gap, so they would never be processed. An agent that
sees an offset jump reads the missing range itself and processes it first. A genuine gap (a
transaction marker, a compacted record) simply reads back nothing.

Records read back this way were never delivered, so nothing acks them, and Faust's commit
stops for good below them: `Consumer._new_offset` refuses to commit while the lowest acked
offset is more than one above the committed one (the head-gap guard of faust-streaming #312;
#606 discusses the same guard). The fold enters them as handled once stored
(`FeedingConsumer.handled_range`). Both go when the skip itself is fixed upstream
(faust-streaming pinned < 0.16).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Hashable, Iterator
from typing import Any

from stream.runtime.reading import read_range
from stream.settings import Settings

logger = logging.getLogger(__name__)


class SkipWatch:
    """Per partition: the highest offset seen."""

    def __init__(self) -> None:
        self._last: dict[Hashable, int] = {}

    def reset(self, committed: dict[Hashable, int] | None = None) -> None:
        """Start over after a new assignment, from the committed offsets when known.

        A partition's first record is then checked too: one beyond its committed offset means
        the records in between were skipped.
        """
        self._last = {partition: offset - 1 for partition, offset in (committed or {}).items()}

    def seen(self, partition: Hashable) -> int | None:
        """The highest offset seen (or the committed offset - 1), None when nothing is known."""
        return self._last.get(partition)

    def check(self, partition: Hashable, offset: int) -> int | None:
        """Record an offset; return the first skipped offset when records before it are missing."""
        # The highest offset only grows, so each jump is reported once.
        last = self._last.get(partition)
        if last is None or offset > last:
            self._last[partition] = offset
        return last + 1 if last is not None and offset > last + 1 else None


class StallWatch:
    """Notice a partition whose records stop reaching the agent while more are waiting.

    After some rebalances faust-streaming stops delivering a partition it was assigned (seen:
    minutes without a record while the log held hundreds). A skip that falls at the end of a
    partition also shows only this way: no later record reveals it. The end offset can lie past
    every record, though: a transaction's commit marker and a record compaction removed take
    offsets that nothing is delivered at. Once those offsets are known to hold no record (the
    consumer read past them and they read back empty), `settle` says so.
    """

    def __init__(self, patience: float) -> None:
        self._patience = patience
        self._since: dict[Hashable, tuple[int | None, float]] = {}
        # partition -> (seen, end): the offsets after seen, below end, hold no record.
        self._settled: dict[Hashable, tuple[int | None, int]] = {}

    def reset(self) -> None:
        self._since.clear()
        self._settled.clear()

    def forget(self, partition: Hashable) -> None:
        """Start the partition's clock again (its records wait on something legitimate)."""
        self._since.pop(partition, None)

    def settle(self, partition: Hashable, seen: int | None, end: int) -> None:
        """Count the partition caught up while it stays at `seen` and its end at `end`: the
        offsets between them hold no record."""
        self._since.pop(partition, None)
        self._settled[partition] = (seen, end)

    def stalled(self, partition: Hashable, seen: int | None, end: int, now: float) -> float | None:
        """Seconds without progress while records wait at offsets below `end`, once too long."""
        settled = self._settled.get(partition)
        if settled is not None:
            if settled[0] == seen and end <= settled[1]:
                return None
            del self._settled[partition]  # progress, or newer offsets to judge
        if end <= (seen if seen is not None else -1) + 1:
            self._since.pop(partition, None)  # caught up
            return None
        last = self._since.get(partition)
        if last is None or last[0] != seen:
            self._since[partition] = (seen, now)
            return None
        waited = now - last[1]
        return waited if waited >= self._patience else None


class BatchProgress:
    """Whether the fold batch in flight did anything since the stall watch last looked.

    A batch reads its records, builds their contacts and waits for its writes before Faust
    may commit them: a large batch behind a slow mapping takes longer than the stall timeout,
    while no record is delivered and the commit stays below records already read. That is no
    stall while the batch moves (each record, contact and stored write is a step); a batch
    that stops moving is judged by the offsets as before.
    """

    def __init__(self) -> None:
        self._in_flight = False
        self._steps = 0
        self._looked_at = 0

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        """Hold while a batch folds and stores its writes."""
        self._in_flight = True
        self.step()
        try:
            yield
        finally:
            self._in_flight = False

    def step(self) -> None:
        self._steps += 1

    def moved(self) -> bool:
        """A batch is in flight and did something since the last call."""
        moved = self._in_flight and self._steps != self._looked_at
        self._looked_at = self._steps
        return moved


class RecoveryWatch:
    """Notice a table recovery that reads nothing while changelog records remain.

    Seen after a takeover: faust-streaming's recovery resumed its changelog partitions, then
    received no record for minutes while the group counted as rebalancing (so no events
    partition counts as stalled, and none is folded).
    """

    def __init__(self, patience: float) -> None:
        self._watch = StallWatch(patience)

    def stalled(self, in_recovery: bool, remaining: int, now: float) -> float | None:
        """Seconds the remaining count stood still above zero, once too long."""
        left = remaining if in_recovery else 0
        # Progress is the count changing; records wait while it is above zero.
        return self._watch.stalled("recovery", -left - 1, 0, now)


class BlindWatch:
    """Notice a stall watch that has been kept from looking for too long.

    The stall checks above need a settled group and readable offsets. A rebalance that never
    completes (faust-streaming leaves the app rebalancing when a recovery sees a newer
    generation and no later one finishes), or offset reads that fail on every check, would
    keep them silent for good while nothing commits. A table recovery under way has its own
    watch (RecoveryWatch).
    """

    def __init__(self, patience: float) -> None:
        self._patience = patience
        self._since: float | None = None

    def blind(self, now: float) -> float | None:
        """Another check that could not look; the seconds since the first, once too long."""
        if self._since is None:
            self._since = now
        waited = now - self._since
        return waited if waited > self._patience else None

    def saw(self) -> None:
        """A check that looked."""
        self._since = None


async def read_skipped(settings: Settings, message: Any, first_missing: int) -> list[Any]:
    """The records the consumer skipped just before `message`, read again.

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
