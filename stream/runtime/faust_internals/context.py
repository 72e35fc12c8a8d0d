"""Read and write a table key after a batch as if inside that key's own partition.

A Faust table sends each write to the changelog partition of the *current event* (the one the
stream is iterating), and a RocksDB store reads and writes the current event's partition; the
fold reads its records without Faust events (stream.runtime.faust_internals.feed), a batch at a
time, of several partitions. Making a stand-in for the key's partition current keeps the
changelog and the store co-partitioned with the input. This leans
on `faust.streams._current_event`, the context variable `faust.current_event()` reads, and on
the table's store, changelog topic and codecs; revisit it when upgrading faust-streaming
(pinned < 0.16).
"""

from __future__ import annotations

import types
import weakref
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from faust.stores.memory import Store as MemoryStore
from faust.streams import _current_event
from faust.types import TP


def get_in(table: Any, key: str, partition: int) -> Any:
    """`table.get(key)` as inside an event of `partition`: the store looks in that partition only.

    Without a current event a RocksDB store looks a key it has not seen in every partition.
    """
    stand_in: Any = _InPartition(partition)
    token = _current_event.set(weakref.ref(stand_in))
    try:
        return table.get(key)
    finally:
        _current_event.reset(token)


async def write_through_changelog(table: Any, writes: Sequence[tuple[str, Any, int]]) -> None:
    """`table[key] = value` for each (key, value, partition): the changelog first, the store after.

    A value of None deletes the key: a tombstone in the changelog (compaction then removes
    every earlier value of the key) and the key gone from the store.

    The store is written only once the broker has acknowledged every changelog message. A
    store ahead of its changelog loses data for good: after a failed send or a kill in
    between, the redelivered events fall at or below the stored profile's input offset, count
    as duplicates and are never written to the changelog, so the next owner of the partition
    recovers the older profile. Written this way, a failure leaves the store as it was and the
    redelivered events are folded and sent again.

    Faust's own `__setitem__` writes the store first and queues the changelog message in its
    producer buffer, which it drains one message at a time: several times the cost of the send
    itself for a batch's worth of writes. The message (key, value, partition and codecs) is the
    one Faust makes; the partition is the key's input partition, so the changelog stays
    co-partitioned with the input.
    """
    changelog = table.changelog_topic
    topic = changelog.get_topic_name()
    sent = []
    for key, value, partition in writes:
        raw_key, _ = changelog.prepare_key(key, table.key_serializer, None, None)
        raw_value = None
        if value is not None:
            raw_value, _ = changelog.prepare_value(value, table.value_serializer, None, None)
        sent.append(await table.app.producer.send(topic, raw_key, raw_value, partition, None, None))
    acknowledged = [await future for future in sent]
    store = table.data
    memory = isinstance(store, MemoryStore)
    for key, value, partition in writes:
        if value is None:
            _delete(store, key, partition)
            continue
        stand_in: Any = _InPartition(partition)
        token = _current_event.set(weakref.ref(stand_in))
        try:
            store[key] = value  # the store only: the changelog holds it already
        finally:
            _current_event.reset(token)
        if memory:
            _written_partitions.setdefault(id(store), {})[key] = partition
    mark_persisted(table, acknowledged)


def _delete(store: Any, key: str, partition: int) -> None:
    """Remove `key` from the store's `partition` only (as its changelog tombstone does)."""
    if isinstance(store, MemoryStore):
        if _memory_partition(store, key) == partition:
            store.data.pop(key, None)
            store._key_partition.pop(key, None)
            _written_partitions.get(id(store), {}).pop(key, None)
        return
    # RocksDB: `del store[key]` would look a key it has not indexed up in every partition's DB.
    raw = store._encode_key(key)
    db = store._dbs.get(partition)
    if db is not None:
        db.delete(raw)
    store._key_index.pop(raw, None)


# Memory store -> the partition of each key this process wrote. The store learns a key's
# partition only from the changelog it recovers (`_key_partition`), and drops the recovered
# keys of partitions it no longer holds when a recovery completes; entered there, the keys
# written here would be dropped too, and a partition that comes back would lack them.
_written_partitions: dict[int, dict[str, int]] = {}


def _memory_partition(store: Any, key: str) -> int | None:
    written = _written_partitions.get(id(store), {}).get(key)
    return written if written is not None else store._key_partition.get(key)


def get_in_partition(table: Any, key: str, partition: int) -> Any:
    """`table.get(key)` if the local store holds the key in `partition`, else None."""
    store = table.data
    if isinstance(store, MemoryStore):
        # One dict for every partition, and each key's partition beside it.
        return store.data.get(key) if _memory_partition(store, key) == partition else None
    return get_in(table, key, partition)


def keys_in_partition(table: Any, partition: int) -> list[str]:
    """The keys the local store holds in one partition of the table.

    A key is in the partition its events came from, which need not be the one Kafka's default
    partitioner gives it: a producer's partitioner decides (librdkafka's is CRC32).
    """
    store = table.data
    if isinstance(store, MemoryStore):
        return [key for key in list(store.data) if _memory_partition(store, key) == partition]
    db = store._dbs.get(partition)
    if db is None:
        return []
    return [store._decode_key(raw) for raw in store._visible_keys(db)]


def key_slices(table: Any, partition: int, size: int) -> Iterator[list[str]]:
    """The keys the local store holds in one partition, `size` at a time, in key order.

    A RocksDB partition is read slice by slice, each from just after the last key of the one
    before, so no list of every key is ever held (it would grow with the customers).
    Keys written between slices are seen if they sort after the position reached; keys
    deleted meanwhile are skipped. A memory store holds every profile in memory anyway: its
    slices are cut from one list of the partition's keys (references, not copies).
    """
    store = table.data
    if isinstance(store, MemoryStore):
        keys = keys_in_partition(table, partition)
        for start in range(0, len(keys), size):
            yield keys[start : start + size]
        return
    after: bytes | None = None
    while True:
        db = store._dbs.get(partition)
        if db is None:
            return  # the partition went (a rebalance)
        raw: list[bytes] = []
        for key in db.keys() if after is None else db.keys(from_key=after):
            if key == after or key == store.offset_key:
                continue
            raw.append(key)
            if len(raw) >= size:
                break
        if not raw:
            return
        yield [store._decode_key(key) for key in raw]
        after = raw[-1]


class _InPartition:
    """Stands in for an event of a partition: a store writes to the current event's partition."""

    def __init__(self, partition: int) -> None:
        self.message = types.SimpleNamespace(partition=partition)


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
