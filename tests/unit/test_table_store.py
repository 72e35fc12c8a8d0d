"""The table's RocksDB memory is one budget set by the settings, not Faust's per-partition
defaults (stream.runtime.faust_rocksdb)."""

from __future__ import annotations

import inspect

from faust.stores.rocksdb import RocksDBOptions

from stream.runtime import faust_rocksdb, tables  # noqa: F401 -- installs the shared budget
from stream.settings import load_settings

MIB = 1024 * 1024


def test_the_rocksdb_budgets_are_read_from_the_environment(monkeypatch):
    monkeypatch.setenv("STREAM_ROCKSDB__BLOCK_CACHE_MIB", "128")
    monkeypatch.setenv("STREAM_ROCKSDB__WRITE_BUFFERS_MIB", "32")
    settings = load_settings().rocksdb
    assert (settings.block_cache_mib, settings.write_buffers_mib) == (128, 32)


def test_faust_opens_every_database_with_as_options():
    # The assumption the budget relies on: each partition's database is opened with
    # RocksDBOptions.as_options(), whose block cache and memtables are replaced here.
    assert "self.as_options()" in inspect.getsource(RocksDBOptions.open)
    assert RocksDBOptions.as_options is not faust_rocksdb._original_as_options


def test_every_database_shares_one_block_cache_and_one_memtable_budget(tmp_path):
    cache = faust_rocksdb.installed["cache"]
    manager = faust_rocksdb.installed["manager"]
    assert manager.get_buffer_size() == load_settings().rocksdb.write_buffers_mib * MIB
    options = RocksDBOptions(use_rocksdict=True)
    first = options.open(tmp_path / "p0")
    second = options.open(tmp_path / "p1")
    try:
        before = manager.get_usage()
        for n in range(2000):
            first[f"a{n}".encode()] = b"x" * 1000
            second[f"b{n}".encode()] = b"y" * 1000
        # Both databases' memtables count against the one budget.
        assert manager.get_usage() > before + 2 * 2000 * 1000 * 0.9
        first.flush()
        second.flush()
        cached = cache.get_usage()
        assert first[b"a1"] == b"x" * 1000
        assert second[b"b1"] == b"y" * 1000
        assert cache.get_usage() > cached  # both read through the one cache
    finally:
        first.close()
        second.close()
