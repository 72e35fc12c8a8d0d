"""The table's RocksDB memory is bounded by the settings, not by Faust's defaults."""

from __future__ import annotations

from faust.stores.rocksdb import RocksDBOptions, Store

from stream.runtime.tables import customer_to_profile
from stream.settings import RocksDBSettings, load_settings

MIB = 1024 * 1024


def test_the_table_takes_its_rocksdb_memory_from_the_settings():
    settings = RocksDBSettings(block_cache_mib=8, write_buffer_mib=4, write_buffers=3)
    assert settings.faust_options() == {
        "block_cache_size": 8 * MIB,
        "write_buffer_size": 4 * MIB,
        "max_write_buffer_number": 3,
    }
    assert customer_to_profile.options == RocksDBSettings().faust_options()


def test_the_rocksdb_memory_settings_are_read_from_the_environment(monkeypatch):
    monkeypatch.setenv("STREAM_ROCKSDB__BLOCK_CACHE_MIB", "64")
    assert load_settings().rocksdb.block_cache_mib == 64


def test_faust_builds_each_partition_database_with_the_table_options(tmp_path):
    # The assumption the settings rely on: Faust's RocksDB store passes the table's options
    # to RocksDBOptions, which opens every partition's database with them.
    app = customer_to_profile.app
    store = Store(
        f"rocksdb://{tmp_path}",
        app,
        customer_to_profile,
        options=dict(RocksDBSettings(block_cache_mib=8).faust_options()),
    )
    options: RocksDBOptions = store.rocksdb_options
    assert options.block_cache_size == 8 * MIB
    assert options.write_buffer_size == 16 * MIB
    assert options.max_write_buffer_number == 2
    # Faust's defaults, which the table overrides: 2 GiB of block cache per partition.
    assert RocksDBOptions().block_cache_size == 2 * 1024 * MIB
