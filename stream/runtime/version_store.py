"""The pusher's delivered contact versions of one outbox partition, on disk (RocksDB).

The versions topic (stream.runtime.contact_versions) stays the source of truth: other pushers
write it when they take a partition over. This store is a cache of one partition of it, with
the offset it has read the topic up to (the checkpoint) written in the same write batch as the
versions that reading brought, so a crash leaves either both or neither. On assignment the
pusher reads only the topic's tail from the checkpoint; a store with no usable checkpoint is
wiped and filled from the partition's beginning, batch by batch, never holding it in memory.

One RocksDB per partition (`<data dir>/pusher-versions/<app id>/<partition>`): a revoked
partition's files are closed, and a stale one wiped, without touching the others'.

Keys: `o<contact id>` the deployment's own versions, `u<contact id>` unscoped (legacy) ones,
`x<o|u><contact id>` contacts whose latest record is not a version, `#checkpoint`. A lookup
takes the own version, else the unscoped one, as `DeliveredVersions.newest` does.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import orjson
from aiokafka.structs import ConsumerRecord
from rocksdict import BlockBasedOptions, Cache, Options, Rdict, WriteBatch

from stream.domain.records import Version, encode_version, parse_version
from stream.runtime.contact_versions import APP_HEADER

_OWN, _UNSCOPED, _UNREADABLE = b"o", b"u", b"x"
_CHECKPOINT = b"#checkpoint"
# Small memtables and one shared block cache: the store's memory is set here, not by the
# number of customers.
WRITE_BUFFER_BYTES = 4 * 2**20
BLOCK_CACHE_BYTES = 16 * 2**20
_cache: Cache | None = None


@dataclass(frozen=True)
class Checkpoint:
    """The versions topic was read up to `offset` (exclusive); every tombstone written after
    `since_ms` (epoch milliseconds) at or past it is still in the topic until `since_ms` plus
    the topic's delete.retention.ms."""

    offset: int
    since_ms: int


@dataclass(frozen=True)
class Unreadable:
    """A contact's latest record whose value is not a version."""

    offset: int
    key: bytes
    value: bytes


def store_path(data_dir: Path, app_id: str, partition: int) -> Path:
    return data_dir / "pusher-versions" / app_id / str(partition)


def _options() -> Options:
    global _cache
    if _cache is None:
        _cache = Cache(BLOCK_CACHE_BYTES)
    table = BlockBasedOptions()
    table.set_block_cache(_cache)
    options = Options(raw_mode=True)
    options.create_if_missing(True)
    options.set_write_buffer_size(WRITE_BUFFER_BYTES)
    options.set_max_write_buffer_number(2)
    options.set_block_based_table_factory(table)
    return options


class PartitionVersions:
    """One outbox partition's newest delivered versions, for one deployment."""

    def __init__(self, path: Path, app_id: str) -> None:
        path.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._app = app_id.encode()
        self._prefix = self._app + b"/"
        self._db = Rdict(str(path), _options())

    @classmethod
    def fresh(cls, path: Path, app_id: str) -> PartitionVersions:
        """An empty store at `path`, whatever was there."""
        shutil.rmtree(path, ignore_errors=True)
        return cls(path, app_id)

    def close(self) -> None:
        self._db.close()

    # --- lookups and the pusher's own writes ---------------------------------------------

    def get(self, contact_id: str) -> Version | None:
        cid = contact_id.encode()
        raw = self._db.get(_OWN + cid)
        if raw is None:
            raw = self._db.get(_UNSCOPED + cid)
        return None if raw is None else parse_version(raw)

    def remember(self, contact_id: str, version: Version) -> None:
        """Keep `version` (or the newer one already kept) as the contact's own."""
        known = self.get(contact_id)
        if known is None or known < version:
            self._db[_OWN + contact_id.encode()] = encode_version(version)

    def forget(self, contact_id: str) -> None:
        """An erasure: no version of the contact is kept, own or unscoped."""
        cid = contact_id.encode()
        batch = WriteBatch(raw_mode=True)
        for scope in (_OWN, _UNSCOPED):
            batch.delete(scope + cid)
        self._db.write(batch)

    # --- reading the versions topic ------------------------------------------------------

    def checkpoint(self) -> Checkpoint | None:
        raw = self._db.get(_CHECKPOINT)
        if raw is None:
            return None
        offset, since_ms = orjson.loads(raw)
        return Checkpoint(offset, since_ms)

    def apply(
        self, records: Iterable[ConsumerRecord[bytes, bytes]], checkpoint: Checkpoint, ceiling: int
    ) -> None:
        """Take the records in topic order, as `DeliveredVersions.add` does, and the checkpoint
        they bring the store to, in one write batch.

        `ceiling` is the largest end offset of the deployment's input partitions: an unscoped
        version at or beyond it is another deployment's.
        """
        batch = WriteBatch(raw_mode=True)
        # Later records of a contact in this batch override earlier ones; the store is only
        # read once the batch is written.
        for record in records:
            if record.key is None:
                continue
            app = next((value for name, value in record.headers if name == APP_HEADER), None)
            if app is None:
                scope, cid = _UNSCOPED, record.key
            elif app == self._app and record.key.startswith(self._prefix):
                scope, cid = _OWN, record.key[len(self._prefix) :]
            else:
                continue
            batch.delete(_UNREADABLE + scope + cid)
            if record.value is None:
                batch.delete(scope + cid)
                continue
            try:
                version = parse_version(record.value)
            except ValueError:
                batch.delete(scope + cid)
                unreadable = [record.offset, record.key.hex(), record.value[:40].hex()]
                batch.put(_UNREADABLE + scope + cid, orjson.dumps(unreadable))
                continue
            if scope == _UNSCOPED and version.offset >= ceiling:
                batch.delete(scope + cid)  # beyond this deployment's input: another's
                continue
            batch.put(scope + cid, encode_version(version))
        batch.put(_CHECKPOINT, orjson.dumps([checkpoint.offset, checkpoint.since_ms]))
        self._db.write(batch)

    def unreadable(self) -> list[Unreadable]:
        """The contacts whose latest record read is not a version (their newest delivery is
        unknown)."""
        found = []
        for key, value in self._db.items(from_key=_UNREADABLE):
            if not isinstance(key, bytes) or not key.startswith(_UNREADABLE):
                break
            offset, raw_key, raw_value = orjson.loads(value)
            found.append(Unreadable(offset, bytes.fromhex(raw_key), bytes.fromhex(raw_value)))
        return found
