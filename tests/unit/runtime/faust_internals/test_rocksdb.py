"""The table's RocksDB memory is one budget set by the settings, not Faust's per-partition
defaults (stream.runtime.faust_internals.rocksdb)."""

from __future__ import annotations

import inspect

import rocksdict
from faust.stores.rocksdb import RocksDBOptions

from stream import metrics
from stream.runtime import tables  # noqa: F401 -- installs the shared budget
from stream.runtime.faust_internals import rocksdb as faust_rocksdb
from stream.settings import load_settings

MIB = 1024 * 1024


def test_the_rocksdb_budgets_are_read_from_the_environment(monkeypatch):
    monkeypatch.setenv("STREAM_ROCKSDB__BLOCK_CACHE_MIB", "128")
    monkeypatch.setenv("STREAM_ROCKSDB__WRITE_BUFFERS_MIB", "48")
    settings = load_settings().rocksdb
    assert (settings.block_cache_mib, settings.write_buffers_mib) == (128, 48)


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


def _table_readers_memory(path, options) -> int:
    """Bytes the open database holds for its SST files outside the block cache."""
    db = rocksdict.Rdict(str(path), options=options)
    try:
        for n in range(50_000):
            db[f"customer-{n:08d}".encode()] = b"p" * 200
        db.flush()
    finally:
        db.close()
    db = rocksdict.Rdict(str(path), options=options)
    try:
        assert db[b"customer-00000001"] == b"p" * 200
        return int(db.property_int_value("rocksdb.estimate-table-readers-mem"))
    finally:
        db.close()


def test_index_and_filter_blocks_live_in_the_shared_cache_not_beside_it(tmp_path):
    # Faust's own options keep every file's index and filter outside any budget: memory that
    # grows with the number of profiles. With ours they are in the block cache.
    options = RocksDBOptions(use_rocksdict=True)
    faust_own = _table_readers_memory(
        tmp_path / "faust", faust_rocksdb._original_as_options(options)
    )
    ours = _table_readers_memory(tmp_path / "ours", options.as_options())
    assert faust_own > 50_000  # bytes: an index entry per block and a bloom filter per key
    assert ours < faust_own / 10


def test_metrics_show_what_the_two_budgets_hold(tmp_path):
    def sample(part: str) -> float:
        value = metrics.REGISTRY.get_sample_value("loyalty_rocksdb_memory_bytes", {"part": part})
        assert value is not None
        return value

    db = RocksDBOptions(use_rocksdict=True).open(tmp_path / "p0")
    try:
        before = sample("memtables")
        for n in range(1000):
            db[f"m{n}".encode()] = b"z" * 1000
        assert sample("memtables") >= before + 1000 * 1000
        db.flush()
        cached = sample("block_cache")
        assert db[b"m1"] == b"z" * 1000
        assert sample("block_cache") > cached
    finally:
        db.close()
