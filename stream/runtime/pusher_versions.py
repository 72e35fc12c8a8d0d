"""The pusher's contact-versions store: the newest version delivered per contact, for the outbox
partitions this pusher owns, read from the versions topic on assignment and written to it before
the outbox offsets move.

The versions topic (compacted, partitioned like the outbox, per deployment:
stream.runtime.contact_versions) is the source of truth. With STREAM_STORE=rocksdb:// a
partition's versions are kept in an on-disk store under the data directory
(stream.runtime.version_store) and only the tail written since its checkpoint is read; else the
partition is read whole into memory. An erased customer's version is deleted with a tombstone.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from typing import Protocol

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.structs import ConsumerRecord

from stream.domain.batching import Erasure
from stream.domain.records import Version, encode_version
from stream.errors import LoyaltyStreamError
from stream.runtime.contact_versions import (
    DeliveredVersions,
    KnownVersions,
    MemoryVersions,
    version_record,
)
from stream.runtime.reading import ranges_batches, topic_ends
from stream.runtime.topic_configs import delete_retention
from stream.runtime.version_store import Checkpoint, PartitionVersions, store_path
from stream.settings import Settings

logger = logging.getLogger(__name__)

VERSIONS_READ_TIMEOUT = 60.0


class PusherStopped(LoyaltyStreamError):
    """The pusher cannot go on safely; nothing past the failed round was committed."""


class ContactVersionsStore:
    """The newest contact versions delivered, per outbox partition this pusher owns.

    `producer` writes the versions topic and `reader` (a consumer without a group) reads it;
    the pusher starts and stops both.
    """

    def __init__(
        self, settings: Settings, producer: AIOKafkaProducer, reader: AIOKafkaConsumer
    ) -> None:
        self._settings = settings
        self._producer = producer
        self._reader = reader
        # outbox partition -> its contacts' newest versions delivered (on disk with RocksDB)
        self._delivered: dict[int, KnownVersions] = {}
        self._on_disk = settings.store.startswith("rocksdb://")
        # How long the versions topic keeps a tombstone: a store caught up longer ago than
        # that may have missed one, read at start.
        self._tombstones_kept = 0.0
        # Versions-topic records read by the latest assignment (a figure for tests and logs).
        self.read = 0

    async def start(self) -> None:
        if self._on_disk:
            topic = self._settings.topics.outbox_versions
            self._tombstones_kept = (await delete_retention(self._settings, topic)).total_seconds()

    def close(self) -> None:
        for versions in self._delivered.values():
            versions.close()
        self._delivered.clear()

    def drop(self, partition: int) -> None:
        """Close a revoked partition's versions; its new owner reads the topic."""
        versions = self._delivered.pop(partition, None)
        if versions is not None:
            versions.close()

    def delivered(self, partition: int, contact_id: str) -> Version | None:
        versions = self._delivered.get(partition)
        return None if versions is None else versions.get(contact_id)

    async def remember(self, versions: Mapping[tuple[int, str], Version]) -> None:
        """Store the newest contact versions delivered, before the outbox offsets move."""
        topic = self._settings.topics.outbox_versions
        sent = []
        for (partition, contact_id), version in versions.items():
            known = self.delivered(partition, contact_id)
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

    async def forget(self, erasures: list[Erasure]) -> None:
        """Delete the erased customers' contact versions, before the outbox offsets move.

        A tombstone, as `load` reads it (and compaction keeps it), forgets the version;
        forgotten here too, a re-enrolled customer's first contact is not stale.
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

    async def load(self, partitions: set[int]) -> None:
        """Read these partitions of the versions topic to their current end.

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
        # Every offset asked before any partition is read: a request waits behind the fetch
        # in flight once the reader is assigned partitions.
        begins = await self._reader.beginning_offsets(wanted)
        ends = await self._reader.end_offsets(wanted)
        inputs = await topic_ends(self._settings, self._settings.topics.events, self._reader)
        ceiling = max(inputs.values(), default=0)
        self.read = 0
        loading: dict[TopicPartition, _Loading] = {}
        try:
            for tp in wanted:
                self.drop(tp.partition)
                if self._on_disk:
                    loading[tp] = self._caught_up_from(tp.partition, begins[tp], ends[tp], asked_at)
                else:
                    loading[tp] = _InMemory(self._settings.app_id, begins[tp], ceiling)
            ranges = {tp: (load.start, ends[tp]) for tp, load in loading.items()}
            async with asyncio.timeout(VERSIONS_READ_TIMEOUT):
                async for tp, records in ranges_batches(self._reader, ranges):
                    self.read += len(records)
                    loading[tp].add(records, ceiling)
            for tp in wanted:
                self._delivered[tp.partition] = loading[tp].finish(tp, asked_at, ceiling)
                del loading[tp]  # handed over
        finally:
            for load in loading.values():
                load.abandon()

    def _caught_up_from(self, partition: int, begin: int, end: int, asked_at: float) -> _OnDisk:
        """The partition's on-disk store and where to read it from.

        Another pusher may have owned the partition since this store was written: the tail
        from the checkpoint holds what it wrote. A store that cannot be caught up that way
        (none yet, a checkpoint past the topic's end or before its start, or older than the
        topic keeps tombstones) is filled again from the partition's beginning.
        """
        store = self._open(partition)
        checkpoint = store.checkpoint()
        if (
            checkpoint is not None
            and begin <= checkpoint.offset <= end
            and asked_at - checkpoint.since_ms / 1000 < self._tombstones_kept
        ):
            return _OnDisk(store, checkpoint.offset, end, checkpoint.since_ms, from_checkpoint=True)
        store.close()
        fresh = PartitionVersions.fresh(store.path, self._settings.app_id)
        return _OnDisk(fresh, begin, end, int(asked_at * 1000), from_checkpoint=False)

    def _open(self, partition: int) -> PartitionVersions:
        app_id = self._settings.app_id
        path = store_path(self._settings.data_dir, app_id, partition)
        try:
            return PartitionVersions(path, app_id)
        except Exception as exc:  # rocksdict raises plain Exception (a lock held, a bad file)
            raise PusherStopped(
                f"cannot open the pusher's versions store at {path}: {exc} (another process "
                "using the same STREAM_DATA_DIR? delete the directory to have it read again)"
            ) from exc


class _Loading(Protocol):
    """A partition's versions being read; `start`: the first offset to read."""

    start: int

    def add(self, records: list[ConsumerRecord[bytes, bytes]], ceiling: int) -> None: ...

    def finish(self, tp: TopicPartition, asked_at: float, ceiling: int) -> KnownVersions:
        """The versions read; raises PusherStopped if a contact's latest is not a version."""
        ...

    def abandon(self) -> None: ...


class _InMemory:
    """A partition read whole into memory (STREAM_STORE=memory://)."""

    def __init__(self, app_id: str, begin: int, ceiling: int) -> None:
        self.start = begin
        self._found = DeliveredVersions(app_id, ceiling)

    def add(self, records: list[ConsumerRecord[bytes, bytes]], ceiling: int) -> None:
        self._found.add(records)

    def finish(self, tp: TopicPartition, asked_at: float, ceiling: int) -> KnownVersions:
        unreadable = self._found.unreadable()
        if unreadable:
            first = unreadable[0]
            raise PusherStopped(
                _not_a_version(
                    tp, first.offset, first.key or b"", first.value or b"", len(unreadable)
                )
            )
        return MemoryVersions(self._found.newest())

    def abandon(self) -> None:
        pass


class _OnDisk:
    """A partition's on-disk store, read from `start` (its checkpoint, or the beginning)."""

    def __init__(
        self, store: PartitionVersions, start: int, end: int, since_ms: int, from_checkpoint: bool
    ) -> None:
        self._store = store
        self.start, self._end = start, end
        self._since_ms = since_ms
        self._from_checkpoint = from_checkpoint
        self._read = 0

    def add(self, records: list[ConsumerRecord[bytes, bytes]], ceiling: int) -> None:
        self._read += len(records)
        # A read cut short resumes here, still bound by the first read's tombstones.
        self._store.apply(records, Checkpoint(records[-1].offset + 1, self._since_ms), ceiling)

    def finish(self, tp: TopicPartition, asked_at: float, ceiling: int) -> KnownVersions:
        store = self._store
        store.apply([], Checkpoint(self._end, int(asked_at * 1000)), ceiling)
        logger.info(
            "versions of outbox partition %d: read %d records of %s from offset %s to %d "
            "into the store at %s",
            tp.partition,
            self._read,
            tp.topic,
            self.start if self._from_checkpoint else "the beginning",
            self._end,
            store.path,
        )
        unreadable = store.unreadable()
        if unreadable:
            first = unreadable[0]
            raise PusherStopped(
                _not_a_version(tp, first.offset, first.key, first.value, len(unreadable))
            )
        return store

    def abandon(self) -> None:
        self._store.close()


def _not_a_version(tp: TopicPartition, offset: int, key: bytes, value: bytes, count: int) -> str:
    return (
        f"the versions topic {tp.topic} partition {tp.partition} offset "
        f"{offset} holds {value[:40]!r} for contact "
        f"{key.decode(errors='replace')!r}, not a version (the pusher writes "
        f"an offset or [generation, offset]; {count} such contacts in all): produce a "
        "tombstone (a null value) for each such key to the topic, which forgets the contact's "
        "version, then restart the pusher"
    )
