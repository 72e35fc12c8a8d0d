"""Notice when the consumer skipped records of a partition, so the agent can read them again.

faust-streaming can resume a partition's fetching before it seeks back to the committed offset
after a rebalance (its issues #216/#221 are of this kind); the records fetched in between are
dropped and their offsets treated as a gap, so they would never be processed. An agent that
sees an offset jump asks for one seek back to the first missing offset. Each jump is repaired
once: a genuine gap (a transaction marker, a compacted record) comes back as the same jump and
is then let through.
"""

from __future__ import annotations

from collections.abc import Hashable


class SkipWatch:
    """Per partition: the highest offset seen, and the jumps already repaired."""

    def __init__(self) -> None:
        self._last: dict[Hashable, int] = {}
        self._repaired: set[tuple[Hashable, int]] = set()

    def reset(self) -> None:
        """Forget everything, e.g. after a new partition assignment."""
        self._last.clear()
        self._repaired.clear()

    def check(self, partition: Hashable, offset: int) -> int | None:
        """Record an offset; return the offset to seek back to when records were skipped."""
        last = self._last.get(partition)
        if last is not None and offset > last + 1 and (partition, last + 1) not in self._repaired:
            self._repaired.add((partition, last + 1))
            return last + 1
        if last is None or offset > last:
            self._last[partition] = offset
        return None
