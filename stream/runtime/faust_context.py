"""Read and write a table key after a batch as if inside that key's own event.

A Faust table sends each write to the changelog partition of the *current event* (the one the
stream is iterating); `take_events` yields a whole batch, after which there is no current
event, and a batch holds events of several partitions anyway. Making the key's own (last)
event current for the write keeps the changelog co-partitioned with the input. This leans on
`faust.streams._current_event`, the context variable `faust.current_event()` reads, and on the
table's store, changelog topic and codecs; revisit it when upgrading faust-streaming (pinned
< 0.16).
"""

from __future__ import annotations

import types
import weakref
from collections.abc import Awaitable, Iterable
from typing import Any

from faust.streams import _current_event
from faust.types import TP


def get_in_event(table: Any, key: str, event: Any) -> Any:
    """`table.get(key)` as inside `event`: the store looks in the event's partition only.

    Without a current event a RocksDB store looks a key it has not seen in every partition.
    """
    token = _current_event.set(weakref.ref(event))
    try:
        return table.get(key)
    finally:
        _current_event.reset(token)


async def write_in_event(table: Any, key: str, value: Any, event: Any) -> Awaitable[Any]:
    """`table[key] = value` in `event`'s partition, the changelog message sent straight away.

    Faust's own `__setitem__` queues the changelog message in its producer buffer, which it
    drains one message at a time, stops event delivery for while it holds more than 100, and
    answers with a write to the store per acknowledged message: several times the cost of the
    send itself for a batch's worth of writes. The store write and the message (key, value,
    partition and codecs) are the ones Faust makes. Returns the future of the message's
    acknowledgement; pass the acknowledgements to `mark_persisted` once they are all in.
    """
    token = _current_event.set(weakref.ref(event))
    try:
        table.data[key] = value  # the store only: what __setitem__ does besides the changelog
    finally:
        _current_event.reset(token)
    changelog = table.changelog_topic
    raw_key, _ = changelog.prepare_key(key, table.key_serializer, None, None)
    raw_value, _ = changelog.prepare_value(value, table.value_serializer, None, None)
    stored: Awaitable[Any] = await table.app.producer.send(
        changelog.get_topic_name(), raw_key, raw_value, event.message.partition, None, None
    )
    return stored


class _InPartition:
    """Stands in for an event of a partition, for a write that no event carried."""

    def __init__(self, partition: int) -> None:
        self.message = types.SimpleNamespace(partition=partition)


async def write_in_partition(table: Any, key: str, value: Any, partition: int) -> Awaitable[Any]:
    """`write_in_event` for a key of a known partition, outside any event (the trigger scan)."""
    return await write_in_event(table, key, value, _InPartition(partition))


def mark_persisted(table: Any, acknowledged: Iterable[Any]) -> None:
    """Record in the table's store how far its changelog partitions are written.

    Faust does this per acknowledged changelog message (a local store remembers the offset
    its data reaches, so a restart recovers only what came after); once per partition with
    the highest offset is the same.
    """
    highest: dict[int, int] = {}
    for metadata in acknowledged:
        highest[metadata.partition] = max(highest.get(metadata.partition, -1), metadata.offset)
    topic = table.changelog_topic.get_topic_name()
    for partition, offset in highest.items():
        table.data.set_persisted_offset(TP(topic, partition), offset)
