"""The trigger scan's walk over a RocksDB partition, slice by slice
(stream.runtime.faust_internals.context.key_slices)."""

from __future__ import annotations

import inspect
import types

import pytest
import rocksdict
from faust.stores import rocksdb as faust_rocksdb

from stream.runtime.faust_internals.context import key_slices


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
