"""Every use of faust-streaming's, mode's and aiokafka's private internals, and nothing else.

The rest of `stream/` uses their public API only (`faust.App`, `faust.Schema`, `faust.web`'s
View/Request/Response, `aiokafka.AIOKafkaConsumer`/`AIOKafkaProducer`/`TopicPartition`) and
reaches the internals through these modules; an import-linter contract in pyproject.toml keeps
faust's and aiokafka's internal modules out of every other module. faust-streaming is pinned
< 0.16 and aiokafka < 0.15: an upgrade that changes one of the assumptions below fails its test
in tests/unit/runtime/faust_internals/ (test_<module>.py; test_recovery_bulk.py for the bulk
recovery's three modules).

What is relied on (module here: the assumption, where in faust-streaming 0.15.3):

- `app`: Faust builds its consumer in `App._new_consumer` (from the `consumer` property) with
  the callback and rebalance callbacks of `transport.create_consumer`, and its web server in
  `App._new_web` (`faust.web.drivers.by_url(conf.web)`, from the `web` property); a web
  server's `blueprints` is a `faust.web.base.BlueprintManager` whose `_enabled` list is what
  it mounts (faust/app/base.py, faust/web/base.py).
- `feed`: the fetcher (`Consumer._drain_messages`) takes every record from
  `Consumer.getmany`; `_wait_next_records`, `flow_active`, `_buffered_partitions`,
  `perform_seek`, `_read_offset`, `_to_message` are what Faust's own `getmany` uses; a
  revocation awaits `wait_empty()`; `ack()` fills `_acked`, `_acked_index`, `_n_acked` above
  `_committed_offset` (faust/transport/consumer.py). The worker's aiokafka consumer is built by
  `AIOKafkaConsumerThread._create_worker_consumer` and aiokafka reads `_fetch_max_wait_ms` when
  it starts (faust/transport/drivers/aiokafka.py, aiokafka/consumer/consumer.py). aiokafka's
  `seek_to_committed` skips partitions never committed. The skip Faust's fetcher can make after
  a rebalance and the commit's head-gap guard (`Consumer._new_offset`) are faust-streaming
  issues #216, #221, #312 and #606 (stream.runtime.skips).
- `context`: a table store reads and writes the partition of `faust.current_event()`, which
  reads the context variable `faust.streams._current_event` (faust/streams.py,
  faust/stores/rocksdb.py); `table.data` is the store; the memory store keeps one `data` dict
  and each recovered key's partition in `_key_partition`; the RocksDB store keeps a database per
  partition in `_dbs`, a `_key_index`, `_encode_key`/`_decode_key`, `_visible_keys` and
  `offset_key`; the changelog message is made by the changelog topic's `prepare_key` and
  `prepare_value` and sent with `app.producer.send(topic, key, value, partition, timestamp,
  headers)`; `set_persisted_offset` records how far the changelog is written.
- `recovery`, `changelog_reader`, `changelog_events`: `Recovery._restart_recovery` calls
  `_seek_offsets` for the actives once their highwaters (the last record's offset) and start
  offsets (the last applied) are known, and for the standbys after the actives are recovered;
  a step timing out under `broker_request_timeout` stops the service; `need_recovery()` is
  false once the offsets reach the highwaters; `_slurp_changelogs` applies only records past
  the offset already applied; a table with `_on_changelog_event` needs Faust's per-event path;
  a store's `apply_changelog_batch` reads only `message` (RocksDB) or `key`/`value` (memory)
  of each event; Faust reads changelogs `read_committed` only in transactions
  (faust/tables/recovery.py).
- `recovery_status`: the table manager's `Recovery` service is `app.tables.recovery` (not
  declared by `TableManagerT`), with `completed`, `in_recovery`, `active_remaining_total()` and
  `standby_remaining_total()`.
- `rocksdb`: Faust opens every RocksDB database with `RocksDBOptions.as_options()`, which with
  rocksdict builds the options a block-based table factory can be set on
  (faust/stores/rocksdb.py).
"""

__all__ = [
    "app",
    "changelog_events",
    "changelog_reader",
    "context",
    "feed",
    "recovery",
    "recovery_status",
    "rocksdb",
]
