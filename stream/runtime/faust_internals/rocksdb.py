"""One memory budget for all of the table's RocksDB databases, whatever the partition count.

Faust opens one database per table partition a worker holds (active and standby) and gives
each its own block cache (2 GiB by default) and memtables (three of 64 MiB): the worker's
memory grows with its partitions and with the profiles read, past a pod's limit. Here every
database Faust opens shares one block cache and one write-buffer manager (RocksDB's budget for
the memtables of several databases), both sized by the settings.

The SST files' index and bloom-filter blocks go into that cache too: RocksDB otherwise keeps
them for every open file outside any budget (they grow with the profiles stored). They are
partitioned, so that only a small top level stays pinned and a cache smaller than all of them
holds the partitions in use.

Relies on faust-streaming 0.15 opening each database with `RocksDBOptions.as_options()` and,
with rocksdict, building a block-based table factory there (checked by
tests/unit/runtime/faust_internals/test_rocksdb.py).
"""

from __future__ import annotations

from typing import Any

import rocksdict
from faust.stores.rocksdb import RocksDBOptions

from stream import metrics
from stream.settings import RocksDBSettings

# Per database: a memtable fills to this before it is flushed; the shared budget flushes the
# largest earlier when the databases together reach it.
MEMTABLE_BYTES = 16 * 1024 * 1024
MEMTABLES = 2

_original_as_options = RocksDBOptions.as_options


def install(settings: RocksDBSettings) -> None:
    """Make every RocksDB database Faust opens from now on share the settings' budget."""
    mib = 1024 * 1024
    cache = rocksdict.Cache(settings.block_cache_mib * mib)
    # No stall: past the budget RocksDB flushes sooner, it does not block the writes.
    manager = rocksdict.WriteBufferManager(settings.write_buffers_mib * mib, False)

    def as_options(self: RocksDBOptions) -> Any:
        options = _original_as_options(self)
        if not self.use_rocksdict:
            return options
        table = rocksdict.BlockBasedOptions()
        # A full (not block-based) filter: only those can be partitioned.
        table.set_bloom_filter(self.bloom_filter_size, False)
        table.set_block_cache(cache)
        table.set_index_type(rocksdict.BlockBasedIndexType.two_level_index_search())
        table.set_partition_filters(True)
        table.set_cache_index_and_filter_blocks(True)
        table.set_pin_top_level_index_and_filter(True)
        table.set_pin_l0_filter_and_index_blocks_in_cache(True)
        options.set_block_based_table_factory(table)
        options.set_write_buffer_size(MEMTABLE_BYTES)
        options.set_max_write_buffer_number(MEMTABLES)
        options.set_write_buffer_manager(manager)
        return options

    RocksDBOptions.as_options = as_options  # type: ignore[method-assign]
    installed.update(cache=cache, manager=manager)
    metrics.ROCKSDB_MEMORY.labels("block_cache").set_function(cache.get_usage)
    metrics.ROCKSDB_MEMORY.labels("memtables").set_function(manager.get_usage)


def flush_memtables(store: Any) -> None:
    """Write the memtables of every database `store` holds open to disk (nothing if it is not
    a RocksDB store): what a recovery wrote then leaves memory at once, not at the next flush."""
    for db in list(getattr(store, "_dbs", {}).values()):
        db.flush(True)  # rocksdict: wait for it


# What `install` made, for /metrics and the tests.
installed: dict[str, Any] = {}
