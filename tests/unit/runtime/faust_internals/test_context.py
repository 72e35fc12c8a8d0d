"""Reading and writing a table key as inside its partition (stream.runtime.faust_internals.context),
and the trigger scan's walk over a RocksDB partition, slice by slice (`key_slices`)."""

from __future__ import annotations

import asyncio
import inspect
import types
import weakref

import faust
import pytest
import rocksdict
from faust.stores import rocksdb as faust_rocksdb
from faust.stores.memory import Store as MemoryStore
from faust.streams import _current_event
from faust.transport.drivers.aiokafka import Producer as AIOKafkaProducer
from faust.types import TP

from stream.runtime.faust_internals.context import (
    get_in,
    get_in_partition,
    key_slices,
    keys_in_partition,
    write_through_changelog,
)
from tests.support.faust_tables import profile_table


@pytest.fixture
def table(tmp_path):
    """A stand-in for a Faust table on RocksDB: what key_slices reads of Faust's store."""
    db = rocksdict.Rdict(str(tmp_path / "p0"), rocksdict.Options(raw_mode=True))
    store = types.SimpleNamespace(
        _dbs={0: db},
        offset_key=faust_rocksdb.Store.offset_key,
        _decode_key=lambda raw: raw.decode(),
    )
    yield types.SimpleNamespace(data=store)
    db.close()


def test_a_partition_is_walked_in_slices_in_key_order_without_the_offset_key(table):
    db = table.data._dbs[0]
    for key in ("e", "a", "c", "b", "d"):
        db[key.encode()] = b"{}"
    db[table.data.offset_key] = b"42"
    assert list(key_slices(table, 0, 2)) == [["a", "b"], ["c", "d"], ["e"]]
    assert list(key_slices(table, 1, 2)) == [], "a partition this store does not hold"


def test_keys_written_and_deleted_between_slices_are_seen_as_they_are_then(table):
    db = table.data._dbs[0]
    for key in ("a", "b", "c", "d"):
        db[key.encode()] = b"{}"
    walk = key_slices(table, 0, 2)
    assert next(walk) == ["a", "b"]
    del db[b"c"]  # erased meanwhile
    db[b"cc"] = b"{}"  # enrolled meanwhile, after the position reached
    db[b"aa"] = b"{}"  # before it: the next scan sees it
    assert list(walk) == [["cc", "d"]]


def test_faust_rocksdb_store_still_has_what_key_slices_reads():
    source = inspect.getsource(faust_rocksdb.Store)
    assert isinstance(faust_rocksdb.Store.offset_key, bytes)
    assert "self._dbs: MutableMapping[int, DB] = {}" in source or "self._dbs = {}" in source
    assert callable(faust_rocksdb.Store._decode_key)


# What the partition-scoped reads and writes rely on in faust-streaming


class _Event:
    """What a store reads of the current event: its message's partition."""

    def __init__(self, partition: int) -> None:
        self.message = types.SimpleNamespace(partition=partition)


def test_current_event_reads_the_context_variable_the_stand_in_is_set_in():
    stand_in = _Event(0)
    token = _current_event.set(weakref.ref(stand_in))  # type: ignore[arg-type]
    try:
        assert faust.current_event() is stand_in
    finally:
        _current_event.reset(token)
    assert faust.current_event() is None


def test_a_rocksdb_store_writes_and_reads_the_current_events_partition(tmp_path):
    _, table = profile_table(
        "t-context-rocksdb", "rocksdb://", tmp_path, partitions=4, raw_app=True
    )
    store = table.data  # type: ignore[attr-defined]
    stand_in = _Event(2)
    token = _current_event.set(weakref.ref(stand_in))  # type: ignore[arg-type]
    try:
        store["a"] = b"a1"
    finally:
        _current_event.reset(token)
    assert set(store._dbs) == {2}
    assert get_in(table, "a", 2) == b"a1"
    assert get_in_partition(table, "a", 2) == b"a1"
    assert get_in_partition(table, "a", 1) is None
    assert keys_in_partition(table, 2) == ["a"]
    assert store._key_index[store._encode_key("a")] == 2


def test_a_memory_store_keeps_one_dict_and_each_recovered_keys_partition(tmp_path):
    _, table = profile_table("t-context-memory", "memory://", tmp_path, partitions=4, raw_app=True)
    store = table.data  # type: ignore[attr-defined]
    assert isinstance(store, MemoryStore)
    message = types.SimpleNamespace(partition=3, offset=0, value=b"a1")
    event = types.SimpleNamespace(key="a", value=b"a1", message=message)
    table.apply_changelog_batch([event])  # type: ignore[attr-defined]
    assert store.data == {"a": b"a1"}
    assert store._key_partition == {"a": 3}
    assert get_in_partition(table, "a", 3) == b"a1"
    assert get_in_partition(table, "a", 0) is None


def test_the_changelog_message_is_the_one_faust_makes_and_sends(tmp_path):
    _, table = profile_table(
        "t-context-changelog", "memory://", tmp_path, partitions=4, raw_app=True
    )
    changelog = table.changelog_topic  # type: ignore[attr-defined]
    assert changelog.get_topic_name() == "t-context-changelog-customer_to_profile-changelog"
    raw_key, _ = changelog.prepare_key("a", table.key_serializer, None, None)  # type: ignore[attr-defined]
    raw_value, _ = changelog.prepare_value(b"a1", table.value_serializer, None, None)  # type: ignore[attr-defined]
    # The key as JSON (what `backfill` reads back), the value as the raw bytes given.
    assert (raw_key, raw_value) == (b'"a"', b"a1")
    send = inspect.signature(AIOKafkaProducer.send)
    assert list(send.parameters)[:7] == [
        "self",
        "topic",
        "key",
        "value",
        "partition",
        "timestamp",
        "headers",
    ]


@pytest.mark.parametrize("store", ["rocksdb://", "memory://"])
async def test_writes_go_to_the_changelog_first_then_to_the_partitions_store(tmp_path, store):
    app, table = profile_table("t-context-write", store, tmp_path, partitions=4, raw_app=True)
    sent: list[tuple] = []

    async def send(topic, key, value, partition, timestamp, headers):
        sent.append((topic, key, value, partition))
        done = asyncio.get_running_loop().create_future()
        done.set_result(types.SimpleNamespace(partition=partition, offset=len(sent) - 1))
        return done

    app.producer = types.SimpleNamespace(send=send)  # type: ignore[method-assign]
    await write_through_changelog(table, [("a", b"a1", 1), ("b", b"b1", 2), ("a", None, 1)])
    topic = table.changelog_topic.get_topic_name()  # type: ignore[attr-defined]
    assert sent == [
        (topic, b'"a"', b"a1", 1),
        (topic, b'"b"', b"b1", 2),
        (topic, b'"a"', None, 1),
    ]
    assert get_in_partition(table, "a", 1) is None, "the tombstone deleted the key"
    assert get_in_partition(table, "b", 2) == b"b1"
    assert get_in_partition(table, "b", 1) is None, "only the key's own partition holds it"
    assert keys_in_partition(table, 2) == ["b"]
    if store == "rocksdb://":
        # Only a local store remembers how far its changelog is written.
        persisted = table.data.persisted_offset  # type: ignore[attr-defined]
        assert (persisted(TP(topic, 1)), persisted(TP(topic, 2))) == (2, 1)
